/**
 * POST /v1/admin/exact-search: the true nearest tiles of many queries, by an exact scan of every
 * live vector of every shard (Cluster.exactSearch), for measuring the recall of served results
 * (`tessera loadtest`, bench:load). Admin keys only: a scan costs seconds of every search thread.
 * Queries take the forms region search takes (a tile reference or region, an image) or a vector;
 * scope, filter and exclusions are those of the served search, so the two answers compare.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { vectorsFromBytes, type TileQuery, type VectorQuery } from '../../engine/index.js';
import { ApiError } from '../errors.js';
import { decodeQueryImage, bytesFromBase64 } from '../query-images.js';
import { Coverage, ErrorBody, ExcludeSchema, FilterSchema, Hit } from '../schemas.js';
import { queryService, type Services } from '../services.js';
import { RELOAD_DEADLINE } from './system.js';
import { accessOf, hitJson, querySettings } from './shared.js';

/** Queries in one exact search (one scan of every shard serves all of them). */
export const EXACT_QUERIES_LIMIT = 1000;
/** A scan of 1M 384-d tiles for a few hundred queries takes tens of seconds on two cores: as long as a reload. */
export const EXACT_DEADLINE = RELOAD_DEADLINE;

const ExactQuery = Type.Union(
  [
    Type.Object({ slideId: Type.String({ minLength: 1, maxLength: 512 }), x: Type.Integer({ minimum: 0 }), y: Type.Integer({ minimum: 0 }), width: Type.Integer({ minimum: 1 }), height: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
    Type.Object({ image: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
    Type.Object({ vector: Type.String({ minLength: 1, description: 'A unit vector of the index dimension, float32 little-endian, base64' }) }, { additionalProperties: false }),
  ],
  { description: 'A region of an indexed slide (level-0 pixels; an indexed tile uses its stored vector), an image (base64), or a query vector' },
);

const ExactSearchBody = Type.Object(
  {
    queries: Type.Array(ExactQuery, { minItems: 1, maxItems: EXACT_QUERIES_LIMIT }),
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Results per query (default 10)' })),
    filter: Type.Optional(FilterSchema),
    exclude: Type.Optional(ExcludeSchema),
  },
  { additionalProperties: false },
);
type ExactSearchBody = Static<typeof ExactSearchBody>;

const ExactSearchReply = Type.Object({
  results: Type.Array(Type.Object({ hits: Type.Array(Hit) })),
  coverage: Coverage,
  tookMs: Type.Number(),
});

export async function adminRoutes(app: FastifyInstance, services: Services): Promise<void> {
  app.post(
    '/v1/admin/exact-search',
    {
      schema: {
        summary: 'Exact nearest tiles by a full scan, for recall measurements (admin keys only)',
        description: 'Each query is scored against every live tile of every shard; one scan serves all queries of a request. Slow by design: ground truth for the served (HNSW) search, not a search route.',
        tags: ['admin'],
        body: ExactSearchBody,
        response: { 200: ExactSearchReply, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 422: ErrorBody, 503: ErrorBody },
      },
      config: EXACT_DEADLINE,
    },
    async (request) => {
      const started = performance.now();
      const access = accessOf(request);
      if (!access.admin) throw new ApiError('FORBIDDEN', 'exact search is for admin keys only');
      const body = request.body as ExactSearchBody;
      const dimension = services.cluster.index.model.dimension;
      const queries = await Promise.all(
        body.queries.map(async (query, i): Promise<TileQuery | VectorQuery> => {
          if ('vector' in query) {
            const [vector, ...rest] = vectorsFromBytes(bytesFromBase64(query.vector, `queries[${i}].vector`), dimension) ?? [];
            if (!vector || rest.length > 0) throw new ApiError('BAD_REQUEST', `queries[${i}].vector must be ${dimension} float32 values, base64`);
            return { vector };
          }
          if ('image' in query) return { image: await decodeQueryImage(bytesFromBase64(query.image, `queries[${i}].image`), services.config.limits.uploadPixels) };
          return query;
        }),
      );
      const result = await queryService(services).exactSearch(queries, querySettings(body, body.k ?? 10), access.datasets);
      return { results: result.hits.map((hits) => ({ hits: hits.map(hitJson) })), coverage: result.coverage, tookMs: Math.round((performance.now() - started) * 100) / 100 };
    },
  );
}
