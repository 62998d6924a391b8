/** Turns a model's output tensor into one L2-normalized vector per tile (see Pooling in models/). */
import type { Pooling } from '../../models/index.js';

/**
 * @param data output values, row-major
 * @param dims output shape: [N, D] for `none`, [N, T, D] for `cls` and `cls+mean`
 * @returns N vectors, each of unit length (a zero vector stays zero)
 */
export function poolAndNormalize(data: Float32Array, dims: readonly number[], pooling: Pooling, patchTokensFrom = 1): Float32Array[] {
  const count = dims[0] ?? 0;
  const vectors: Float32Array[] = [];
  for (let n = 0; n < count; n++) {
    let vector: Float32Array;
    if (pooling === 'none') {
      const width = dims[1] ?? 0;
      vector = data.slice(n * width, (n + 1) * width);
    } else {
      const tokens = dims[1] ?? 0;
      const width = dims[2] ?? 0;
      const start = n * tokens * width;
      const cls = data.subarray(start, start + width);
      if (pooling === 'cls') {
        vector = Float32Array.from(cls);
      } else {
        vector = new Float32Array(2 * width);
        vector.set(cls, 0);
        const patches = tokens - patchTokensFrom;
        for (let t = patchTokensFrom; t < tokens; t++) {
          const at = start + t * width;
          for (let d = 0; d < width; d++) vector[width + d] = (vector[width + d] ?? 0) + (data[at + d] ?? 0) / patches;
        }
      }
    }
    vectors.push(l2Normalize(vector));
  }
  return vectors;
}

export function l2Normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += (vector[i] ?? 0) ** 2;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}

/** The embedding length a pooled output of these dims has. */
export function pooledDimension(dims: readonly number[], pooling: Pooling): number {
  if (pooling === 'none') return dims.length === 2 ? (dims[1] ?? 0) : -1;
  if (dims.length !== 3) return -1;
  return pooling === 'cls' ? (dims[2] ?? 0) : 2 * (dims[2] ?? 0);
}
