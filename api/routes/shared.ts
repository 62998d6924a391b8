/** What the search routes share: the scoped search they send to shards, and hits as the API shows them. */
import type { FastifyRequest } from 'fastify';
import { parseFilter, type ClusterSearchResult, type ScopedSearch, type SlideSummary, type TileHit } from '../../engine/index.js';
import type { Access } from '../auth.js';
import { ApiError } from '../errors.js';
import type { Hit } from '../schemas.js';
import type { Services } from '../services.js';

/** The request's access (set by the auth hook on every /v1 route). */
export function accessOf(request: FastifyRequest): Access {
  const access = (request as FastifyRequest & { access?: Access }).access;
  if (!access) throw new ApiError('UNAUTHORIZED', 'no credentials were checked for this route');
  return access;
}

export interface QueryOptions {
  k: number;
  ef?: number | undefined;
  filter?: Record<string, unknown> | undefined;
  exclude?: { slides?: string[] | undefined; ownSlide?: boolean | undefined; ownPatient?: boolean | undefined } | undefined;
}

/**
 * The search shards run for this caller: the user's filter (checked here, so a bad one is a 400
 * before any fan-out), exclusions, and the caller's datasets.
 */
export function scopedSearch(access: Access, options: QueryOptions, querySlide?: SlideSummary): ScopedSearch {
  try {
    parseFilter(options.filter);
  } catch (error) {
    throw new ApiError('BAD_REQUEST', (error as Error).message);
  }
  const excludeSlides = [...(options.exclude?.slides ?? [])];
  if (querySlide && (options.exclude?.ownSlide ?? true)) excludeSlides.push(querySlide.slideId);
  const patient = querySlide?.metadata.patient_id;
  const excludePatients = querySlide && options.exclude?.ownPatient && patient ? [patient] : [];
  return {
    k: options.k,
    ...(options.ef === undefined ? {} : { ef: options.ef }),
    ...(options.filter ? { filter: options.filter } : {}),
    ...(excludeSlides.length ? { excludeSlides } : {}),
    ...(excludePatients.length ? { excludePatients } : {}),
    datasets: access.datasets,
  };
}

export function slideUrl(slideId: string): string {
  return `/v1/slides/${encodeURIComponent(slideId)}`;
}

export function hitJson(hit: TileHit): Hit {
  const { tile } = hit;
  return {
    slideId: tile.slideId,
    x: tile.x,
    y: tile.y,
    width: tile.width,
    height: tile.height,
    mpp: tile.mpp,
    score: Number(hit.score.toFixed(6)),
    shard: hit.shard,
    metadata: { ...hit.slideMetadata, ...tile.metadata },
    imageUrl: `${slideUrl(tile.slideId)}/region?x=${tile.x}&y=${tile.y}&width=${tile.width}&height=${tile.height}&size=224`,
    slideUrl: slideUrl(tile.slideId),
  };
}

/** Records a fan-out's time per shard, and counts it when it came back without every shard. */
export function observeSearch(services: Services, result: Pick<ClusterSearchResult, 'shardMs' | 'coverage'>): void {
  services.metrics.observeShards(result.shardMs);
  if (result.coverage.answered < result.coverage.total) services.metrics.partialResults.inc();
}
