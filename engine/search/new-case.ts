/**
 * A new case: the mosaic of a slide that is not in the index, computed on the fly (tissue grid,
 * embed, k-means) so that "slides like this one" can be asked before the slide is indexed. Tiles
 * are sampled evenly across the tissue when there are many, so that the answer comes in seconds
 * however large the slide; the mosaic of a sample of a few hundred tiles covers the same tissue
 * types as the whole slide's.
 */
import type { Embedder } from '../embed/index.js';
import { embedTiles } from '../embed/index.js';
import type { Slide } from '../slide/index.js';
import { slideMppOf, tileGrid, type TileSpec } from '../tiling/index.js';
import { mosaicOf } from './mosaic.js';

export interface NewCaseOptions {
  /** The tile grid of the index the slide will be compared with. */
  tile: TileSpec;
  /** Tissue fraction a tile needs (default 0.5, as indexing). */
  minTissue?: number;
  /** Calibration for a slide without one, µm/px. */
  slideMpp?: [number, number];
  /** Tiles embedded at most (default 256), sampled evenly over the tissue tiles. */
  maxTiles?: number;
}

export interface NewCaseMosaic {
  /** The mosaic's vectors (unit length), the query tiles of a slide search. */
  vectors: Float32Array[];
  /** Tissue tiles of the slide, tiles embedded, tiles in the mosaic. */
  tissueTiles: number;
  embeddedTiles: number;
  /** Where the time went, in ms. */
  ms: { grid: number; embed: number; mosaic: number; total: number };
}

/**
 * Computes the mosaic of an open slide with the index's model and tile grid.
 * @throws TesseraError MPP_MISSING (no calibration and no slideMpp), SLIDE_CORRUPT
 */
export async function newCaseMosaic(slide: Slide, name: string, embedder: Embedder, options: NewCaseOptions): Promise<NewCaseMosaic> {
  const started = performance.now();
  const mpp = slideMppOf(slide, name, options.slideMpp);
  const grid = await tileGrid(slide, name, { ...options.tile, minTissue: options.minTissue ?? 0.5, slideMpp: mpp });
  const gridDone = performance.now();
  const maxTiles = options.maxTiles ?? 256;
  const step = grid.length / maxTiles;
  const sample = grid.length <= maxTiles ? grid : Array.from({ length: maxTiles }, (_, i) => grid[Math.floor(i * step)] ?? grid[0]).filter((tile) => tile !== undefined);
  const vectors: Float32Array[] = [];
  for await (const batch of embedTiles(sample.map((tile) => ({ slide, tile })), embedder, options.tile)) for (const { embedding } of batch) vectors.push(embedding);
  const embedDone = performance.now();
  const mosaic = mosaicOf(vectors).map((index) => vectors[index] as Float32Array);
  const done = performance.now();
  return {
    vectors: mosaic,
    tissueTiles: grid.length,
    embeddedTiles: vectors.length,
    ms: { grid: Math.round(gridDone - started), embed: Math.round(embedDone - gridDone), mosaic: Math.round(done - embedDone), total: Math.round(done - started) },
  };
}
