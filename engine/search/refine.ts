/**
 * Refine by example (Rocchio, as in SMILY's "refine by example", Cai et al. CHI 2019): the query
 * moves toward the mean of the examples marked "more like this" and away from the mean of those
 * marked "not like this", and is renormalized so cosine scores stay comparable. Pure arithmetic on
 * unit vectors; resolving examples to vectors is the caller's business.
 */
import { TesseraError } from '../errors.js';

/** Rocchio's weights: the query, the positives' mean, the negatives' mean. */
export interface RocchioWeights {
  alpha: number;
  beta: number;
  gamma: number;
}

/** The textbook weights (Manning et al., Introduction to Information Retrieval, 9.1.1). */
export const ROCCHIO_WEIGHTS: RocchioWeights = { alpha: 1, beta: 0.75, gamma: 0.25 };

/**
 * α·query + β·mean(positives) − γ·mean(negatives), L2-normalized; a new vector (inputs untouched).
 * An empty list contributes nothing.
 * @throws TesseraError INVALID_ARGUMENT when dimensions differ or the result is the zero vector
 */
export function refineQuery(query: Float32Array, positives: readonly Float32Array[], negatives: readonly Float32Array[], weights: RocchioWeights = ROCCHIO_WEIGHTS): Float32Array {
  const refined = new Float32Array(query.length);
  const add = (vectors: readonly Float32Array[], weight: number) => {
    if (vectors.length === 0) return;
    for (const vector of vectors) {
      if (vector.length !== query.length) throw new TesseraError('INVALID_ARGUMENT', `an example has ${vector.length} dimensions, the query ${query.length}`);
      for (let d = 0; d < refined.length; d++) refined[d] = (refined[d] as number) + (weight * (vector[d] as number)) / vectors.length;
    }
  };
  add([query], weights.alpha);
  add(positives, weights.beta);
  add(negatives, -weights.gamma);
  let norm = 0;
  for (const value of refined) norm += value * value;
  norm = Math.sqrt(norm);
  if (!(norm > 1e-12)) throw new TesseraError('INVALID_ARGUMENT', 'the refined query is the zero vector: the negative examples cancel the query');
  for (let d = 0; d < refined.length; d++) refined[d] = (refined[d] as number) / norm;
  return refined;
}
