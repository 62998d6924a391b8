/**
 * Test-time augmentation for rotation robustness: tissue has no up or down, so `augment: "d8"`
 * embeds the 8 elements of the dihedral group (4 rotations × optional mirror) of each model input
 * and keeps the mean of their unit vectors, renormalized. It works on the preprocessed tensor
 * (square, channels first), so it is the same at index and at query time whatever the tile size.
 */
import type { ModelManifest } from '../../models/index.js';
import { l2Normalize } from './pooling.js';

/**
 * The model an index records: the manifest's id, version and dimension, with `+d8` appended to
 * the version when the manifest augments. Embeddings with and without augmentation are not
 * comparable, so an index built one way refuses queries and additions made the other way with
 * MODEL_MISMATCH, through the same version check as another model.
 */
export function augmentedRef(manifest: Pick<ModelManifest, 'id' | 'version' | 'dimension' | 'augment'>): { id: string; version: string; dimension: number } {
  return { id: manifest.id, version: manifest.augment === 'd8' ? `${manifest.version}+d8` : manifest.version, dimension: manifest.dimension };
}

/** Writes view `view` (0–7) of one channels-first S×S tensor into `out`. */
export function d8View(input: Float32Array, size: number, view: number, out: Float32Array): void {
  const rotation = view % 4;
  const mirror = view >= 4;
  const plane = size * size;
  const last = size - 1;
  for (let channel = 0; channel < 3; channel++) {
    const base = channel * plane;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const mx = mirror ? last - x : x;
        // Output (y, mx) of the rotation reads input (sy, sx); rotation 1 turns 90° clockwise.
        const sy = rotation === 0 ? y : rotation === 1 ? last - mx : rotation === 2 ? last - y : mx;
        const sx = rotation === 0 ? mx : rotation === 1 ? y : rotation === 2 ? last - mx : last - y;
        out[base + y * size + x] = input[base + sy * size + sx] as number;
      }
    }
  }
}

/**
 * Embeds `count` preprocessed inputs (3 × size² floats each, back to back) through `run` with
 * their 8 views each, at most `maxInputs` inputs per run (rounded to whole tiles).
 */
export async function embedD8(data: Float32Array, count: number, size: number, maxInputs: number, run: (data: Float32Array, count: number) => Promise<Float32Array[]>): Promise<Float32Array[]> {
  const length = 3 * size * size;
  const tilesPerRun = Math.max(1, Math.floor(maxInputs / 8));
  const out: Float32Array[] = [];
  for (let start = 0; start < count; start += tilesPerRun) {
    const tiles = Math.min(tilesPerRun, count - start);
    const views = new Float32Array(tiles * 8 * length);
    for (let tile = 0; tile < tiles; tile++) {
      const input = data.subarray((start + tile) * length, (start + tile + 1) * length);
      for (let view = 0; view < 8; view++) d8View(input, size, view, views.subarray((tile * 8 + view) * length, (tile * 8 + view + 1) * length));
    }
    const embedded = await run(views, tiles * 8);
    for (let tile = 0; tile < tiles; tile++) {
      const mean = new Float32Array((embedded[0] as Float32Array).length);
      for (let view = 0; view < 8; view++) {
        const vector = embedded[tile * 8 + view] as Float32Array;
        for (let d = 0; d < mean.length; d++) mean[d] = (mean[d] as number) + (vector[d] as number);
      }
      out.push(l2Normalize(mean));
    }
  }
  return out;
}
