/**
 * Refine by example for the search routes: resolves `positives` and `negatives` (tile references
 * or images) to vectors and moves each query vector with Rocchio (engine/search refineQuery).
 */
import { refineQuery } from '../engine/index.js';
import type { Access } from './auth.js';
import { bytesFromBase64, decodeQueryImage } from './query-images.js';
import type { Example } from './schemas.js';
import { embedImages, regionVector, type Services } from './services.js';

export interface Feedback {
  positives?: Example[] | undefined;
  negatives?: Example[] | undefined;
}

/** Whether a body asks for refinement. */
export function hasFeedback(body: Feedback): boolean {
  return (body.positives?.length ?? 0) + (body.negatives?.length ?? 0) > 0;
}

/**
 * Each query vector refined by the body's examples; the query as given when it has none.
 * @throws TesseraError SLIDE_NOT_FOUND, REGION_*, IMAGE_INVALID for an example that cannot be resolved
 */
export async function refineByExamples(services: Services, access: Access, queries: Float32Array[], body: Feedback): Promise<Float32Array[]> {
  if (!hasFeedback(body)) return queries;
  const [positives, negatives] = await Promise.all([exampleVectors(services, access, body.positives ?? [], 'positives'), exampleVectors(services, access, body.negatives ?? [], 'negatives')]);
  return queries.map((query) => refineQuery(query, positives, negatives));
}

async function exampleVectors(services: Services, access: Access, examples: Example[], field: string): Promise<Float32Array[]> {
  const references = examples.flatMap((example) => ('image' in example ? [] : [example]));
  const images = await Promise.all(examples.flatMap((example, i) => ('image' in example ? [decodeQueryImage(bytesFromBase64(example.image, `${field}[${i}].image`), services.config.limits.uploadPixels)] : [])));
  const [stored, embedded] = await Promise.all([Promise.all(references.map(async (ref) => (await regionVector(services, access, ref)).vector)), images.length > 0 ? embedImages(services, images) : Promise.resolve([])]);
  return [...stored, ...embedded];
}
