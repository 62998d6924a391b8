/**
 * Embeds tiles of slides: reads tiles ahead of the model, in batches, so that decoding (libuv
 * threads), preprocessing (worker threads) and inference (ONNX Runtime threads) overlap, across
 * slide boundaries too. The indexer and the benchmarks use this; it holds at most two batches of
 * pixels.
 */
import type { Slide } from '../slide/index.js';
import { readGridTile, type GridTile, type TileSpec } from '../tiling/index.js';
import type { Embedder } from './embedder.js';

/** A tile of an open slide. */
export interface SlideTile {
  slide: Slide;
  tile: GridTile;
}

export interface EmbeddedTile extends SlideTile {
  embedding: Float32Array;
}

export interface EmbedTilesStats {
  tiles: number;
  /** Wall time inference waited for tile reads (not hidden behind the previous batch). */
  readWaitMs: number;
}

/** Yields each tile with its embedding, in the order given, one batch at a time. */
export async function* embedTiles(tiles: Iterable<SlideTile>, embedder: Embedder, spec: TileSpec, stats?: EmbedTilesStats): AsyncGenerator<EmbeddedTile[]> {
  const iterator = tiles[Symbol.iterator]();
  // Each batch is read, then handed to the preprocessing workers, as one promise; the next batch
  // starts before the current one goes to the model, so the three stages overlap.
  const startBatch = () => {
    const refs: SlideTile[] = [];
    for (let item = iterator.next(); !item.done; item = refs.length < embedder.batchSize ? iterator.next() : { done: true, value: undefined }) {
      refs.push(item.value);
      if (refs.length === embedder.batchSize) break;
    }
    if (refs.length === 0) return null;
    // Preprocessing resizes to the model's input on a worker: reading need not resize first.
    const read = Promise.all(refs.map(({ slide, tile }) => readGridTile(slide, tile, spec, { resize: false })));
    return { refs, read, prepared: read.then((images) => embedder.prepare(images)) };
  };
  let next = startBatch();
  while (next) {
    const current = next;
    const waitStarted = performance.now();
    await current.read;
    if (stats) stats.readWaitMs += performance.now() - waitStarted;
    next = startBatch();
    const vectors = await embedder.embedPrepared(current.prepared);
    if (stats) stats.tiles += vectors.length;
    yield vectors.map((embedding, index) => ({ ...(current.refs[index] as SlideTile), embedding }));
  }
}
