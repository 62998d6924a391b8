/**
 * What the routes work with: the cluster of shard groups, the embedder (roles all and router),
 * the local group (roles all and shard: slide files for images) and metrics. Also the query
 * vectors every search route starts from: a stored tile, a slide's mosaic, or embedded pixels.
 */
import type { Cluster, Embedder, LocalShardGroup, RgbImage, SlideSummary } from '../engine/index.js';
import type { InstalledModel } from '../models/index.js';
import type { Access } from './auth.js';
import type { ServeConfig } from './config.js';
import { ApiError } from './errors.js';
import type { Metrics } from './metrics.js';

export interface Services {
  config: ServeConfig;
  cluster: Cluster;
  /** Roles all and shard: the shards on this machine, with their slide files. */
  local?: LocalShardGroup;
  /** Roles all and router. */
  embedder?: Embedder;
  /** The index's model as installed here (roles all and router). */
  model?: InstalledModel;
  metrics: Metrics;
}

export interface RegionRef {
  slideId: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Largest region (level-0 px per side) a query may name: bigger boxes belong to slide search. */
const MAX_REGION_SIDE = 16384;

/** Embeds query images, timing it. @throws ApiError NOT_READY on a node without a model */
export async function embedImages(services: Services, images: RgbImage[]): Promise<Float32Array[]> {
  if (!services.embedder) throw new ApiError('NOT_READY', 'this node has no model loaded: send queries to a router or an all-in-one server');
  const started = performance.now();
  const vectors = await services.embedder.embed(images);
  services.metrics.embedSeconds.observe((performance.now() - started) / 1000);
  return vectors;
}

/**
 * The vector of a region of an indexed slide: its stored vector when the rectangle is exactly an
 * indexed tile (no embedding), else the region read at the index's resolution and embedded.
 * @throws TesseraError SLIDE_NOT_FOUND (also for slides outside the caller's datasets), REGION_*
 */
export async function regionVector(services: Services, access: Access, ref: RegionRef): Promise<{ vector: Float32Array; embedded: boolean; slide: SlideSummary }> {
  if (ref.width > MAX_REGION_SIDE || ref.height > MAX_REGION_SIDE) throw new ApiError('REGION_TOO_LARGE', `a query region is at most ${MAX_REGION_SIDE} px a side at level 0, got ${ref.width}×${ref.height}; use slide search for whole slides`);
  const rect = { x: ref.x, y: ref.y, width: ref.width, height: ref.height };
  // Both asked at once: on a router each is a call to the node holding the slide.
  const [slide, stored] = await Promise.all([services.cluster.slide(ref.slideId, access.datasets), services.cluster.storedVectors(ref.slideId, { rect }, access.datasets)]);
  if (!slide) throw notFound(ref.slideId);
  if (stored?.[0]) return { vector: stored[0], embedded: false, slide };
  if (ref.x < 0 || ref.y < 0 || ref.x + ref.width > slide.width || ref.y + ref.height > slide.height) {
    throw new ApiError('REGION_OUT_OF_BOUNDS', `region ${ref.x},${ref.y} ${ref.width}×${ref.height} lies outside slide "${ref.slideId}" (${slide.width}×${slide.height})`);
  }
  const image = await services.cluster.readRegion(ref.slideId, rect, access.datasets);
  const [vector] = await embedImages(services, [image]);
  return { vector: vector as Float32Array, embedded: true, slide };
}

/** A slide's mosaic vectors (its representative tiles). @throws ApiError SLIDE_NOT_FOUND */
export async function mosaicVectors(services: Services, access: Access, slideId: string): Promise<Float32Array[]> {
  const vectors = await services.cluster.storedVectors(slideId, { mosaic: true }, access.datasets);
  if (!vectors) throw notFound(slideId);
  return vectors;
}

export function notFound(slideId: string): ApiError {
  return new ApiError('SLIDE_NOT_FOUND', `slide "${slideId}" is not in this index`);
}
