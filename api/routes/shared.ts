/** What the search routes share: the caller's access, the filter check, and hits as the API shows them. */
import type { FastifyRequest } from 'fastify';
import { parseFilter, type QuerySettings, type TileHit } from '../../engine/index.js';
import type { Access } from '../auth.js';
import { ApiError } from '../errors.js';
import type { Hit } from '../schemas.js';

/** The request's access (set by the auth hook on every /v1 route). */
export function accessOf(request: FastifyRequest): Access {
  const access = (request as FastifyRequest & { access?: Access }).access;
  if (!access) throw new ApiError('UNAUTHORIZED', 'no credentials were checked for this route');
  return access;
}

/**
 * The settings of a search body, its filter checked first so that a bad one is a 400
 * BAD_REQUEST before anything is read or embedded.
 * @throws ApiError BAD_REQUEST
 */
export function querySettings(body: Omit<QuerySettings, 'k'>, k: number): QuerySettings {
  try {
    parseFilter(body.filter);
  } catch (error) {
    throw new ApiError('BAD_REQUEST', (error as Error).message);
  }
  return { k, ef: body.ef, filter: body.filter, exclude: body.exclude };
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
