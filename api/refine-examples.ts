/**
 * Refine by example for the search routes: the body's `positives` and `negatives` (tile
 * references or base64 images) decoded into the engine's Feedback; the query service resolves
 * them and moves each query vector with Rocchio.
 */
import type { Feedback, TileQuery } from '../engine/index.js';
import { bytesFromBase64, decodeQueryImage } from './query-images.js';
import type { Example } from './schemas.js';

export interface FeedbackBody {
  positives?: Example[] | undefined;
  negatives?: Example[] | undefined;
}

/** The examples of a body, images decoded. @throws ApiError IMAGE_INVALID, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE */
export async function feedbackOf(body: FeedbackBody, uploadPixels: number): Promise<Feedback> {
  const [positives, negatives] = await Promise.all([examples(body.positives ?? [], 'positives', uploadPixels), examples(body.negatives ?? [], 'negatives', uploadPixels)]);
  return { positives, negatives };
}

/** What a reply says of the refinement: how many examples each way, or nothing. */
export function refinedJson(body: FeedbackBody): { refined?: { positives: number; negatives: number } } {
  const positives = body.positives?.length ?? 0;
  const negatives = body.negatives?.length ?? 0;
  return positives + negatives > 0 ? { refined: { positives, negatives } } : {};
}

function examples(list: Example[], field: string, uploadPixels: number): Promise<TileQuery[]> {
  return Promise.all(list.map(async (example, i) => ('image' in example ? { image: await decodeQueryImage(bytesFromBase64(example.image, `${field}[${i}].image`), uploadPixels) } : example)));
}
