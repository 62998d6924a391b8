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
}

/**
 * Yields each tile with its embedding, in the order given, one batch at a time. Keeps one batch
 * more in flight than the embedder has sessions: while the sessions infer, the next batch is read
 * and preprocessed.
 */
export async function* embedTiles(tiles: Iterable<SlideTile>, embedder: Embedder, spec: TileSpec, stats?: EmbedTilesStats): AsyncGenerator<EmbeddedTile[]> {
  const iterator = tiles[Symbol.iterator]();
  const startBatch = (): Promise<EmbeddedTile[]> | null => {
    const refs: SlideTile[] = [];
    while (refs.length < embedder.batchSize) {
      const item = iterator.next();
      if (item.done) break;
      refs.push(item.value);
    }
    if (refs.length === 0) return null;
    // Preprocessing resizes to the model's input on a worker: reading need not resize first.
    const read = Promise.all(refs.map(({ slide, tile }) => readGridTile(slide, tile, spec, { resize: false })));
    const embedded = embedder.embedPrepared(read.then((images) => embedder.prepare(images)));
    return embedded.then((vectors) => vectors.map((embedding, index) => ({ ...(refs[index] as SlideTile), embedding })));
  };
  const inFlight: Array<Promise<EmbeddedTile[]>> = [];
  for (;;) {
    while (inFlight.length <= embedder.parallelism) {
      const batch = startBatch();
      if (!batch) break;
      inFlight.push(batch);
    }
    const next = inFlight.shift();
    if (!next) return;
    const batch = await next;
    if (stats) stats.tiles += batch.length;
    yield batch;
  }
}
