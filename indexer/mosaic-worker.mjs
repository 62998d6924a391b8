// Mosaic k-means for the indexer on a worker thread: clustering a large slide's embeddings takes
// seconds of CPU, which on the main thread would stop tile reading and starve the model.
// Plain JavaScript (worker threads load no TypeScript loader of their own): it registers tsx
// and calls the engine's mosaicOf, so the clustering is the same code the engine tests.
import { register } from 'tsx/esm/api';

register();
const { mosaicOf } = await import('../engine/search/index.ts');

/** { vectors: Float32Array (count × dimension, row-major), dimension } → mosaic tile indices. */
export default function mosaic({ vectors, dimension }) {
  const count = vectors.length / dimension;
  return mosaicOf(Array.from({ length: count }, (_, i) => vectors.subarray(i * dimension, (i + 1) * dimension)));
}
