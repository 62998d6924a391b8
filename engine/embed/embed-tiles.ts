/**
 * Embeds tiles of slides: reads tiles ahead of the model, in batches, so that decoding (libuv
 * threads), preprocessing (worker threads) and inference (ONNX Runtime threads) overlap, across
 * slide boundaries too. The indexer and the benchmarks use this; it holds one batch of pixels
 * more than the embedder runs at once.
 */
import type { RgbImage, Slide } from '../slide/index.js';
import { readGridTile, type GridTile, type TileSpec } from '../tiling/index.js';
import type { Embedder } from './embedder.js';

/** A tile of an open slide. */
export interface SlideTile {
  slide: Slide;
  tile: GridTile;
}

export interface EmbeddedTile<T extends SlideTile = SlideTile> {
  ref: T;
  embedding: Float32Array;
}

export interface EmbedTilesStats {
  tiles: number;
}

export interface EmbedTilesOptions<T extends SlideTile> {
  stats?: EmbedTilesStats;
  /**
   * Reads one tile's pixels (default: `readGridTile` at `spec`, not resized: preprocessing
   * resizes to the model's input on a worker). A reader that recovers from a bad tile (and
   * returns a stand-in image) keeps one slide's damage out of a batch shared with other slides.
   */
  read?: (ref: T) => Promise<RgbImage>;
}

/**
 * Yields each tile with its embedding, in the order given, one full batch at a time whatever
 * slide each tile belongs to (the last batch may be short). The source may be asynchronous (a
 * queue of slides being opened and planned ahead): a batch starts as soon as it is full. Keeps
 * one batch more in flight than the embedder has sessions: while the sessions infer, the next
 * batch is read and preprocessed.
 */
export async function* embedTiles<T extends SlideTile>(tiles: Iterable<T> | AsyncIterable<T>, embedder: Embedder, spec: TileSpec, options: EmbedTilesOptions<T> | EmbedTilesStats = {}): AsyncGenerator<Array<EmbeddedTile<T>>> {
  const { stats, read } = 'tiles' in options ? { stats: options, read: undefined } : options;
  const readTile = read ?? ((ref: T) => readGridTile(ref.slide, ref.tile, spec, { resize: false }));
  const iterator = Symbol.asyncIterator in tiles ? tiles[Symbol.asyncIterator]() : tiles[Symbol.iterator]();
  let exhausted = false;
  // The batch's promise is wrapped: an async function would otherwise wait for it.
  const startBatch = async (): Promise<{ embedded: Promise<Array<EmbeddedTile<T>>> } | null> => {
    const refs: T[] = [];
    while (!exhausted && refs.length < embedder.batchSize) {
      const item = await iterator.next();
      if (item.done) exhausted = true;
      else refs.push(item.value);
    }
    if (refs.length === 0) return null;
    const images = Promise.all(refs.map(readTile));
    const embedded = embedder.embedPrepared(images.then((pixels) => embedder.prepare(pixels)));
    return { embedded: embedded.then((vectors) => vectors.map((embedding, index) => ({ ref: refs[index] as T, embedding }))) };
  };
  const inFlight: Array<Promise<Array<EmbeddedTile<T>>>> = [];
  try {
    for (;;) {
      while (inFlight.length <= embedder.parallelism) {
        const batch = await startBatch();
        if (!batch) break;
        // A batch that fails before its turn must not count as unhandled meanwhile.
        batch.embedded.catch(() => undefined);
        inFlight.push(batch.embedded);
      }
      const next = inFlight.shift();
      if (!next) return;
      const batch = await next;
      if (stats) stats.tiles += batch.length;
      yield batch;
    }
  } finally {
    await Promise.allSettled(inFlight);
  }
}
