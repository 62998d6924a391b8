/**
 * /internal/v1/*: what a router asks of a shard node. Requests carry the caller's dataset scope
 * (already authenticated by the router) and, when the cluster has one, the cluster token.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { BINARY_CONTENT_TYPE, decodeSearch, encodeFramed, hitsToWire, REGION_HEIGHT_HEADER, REGION_WIDTH_HEADER, SEARCH_CONTENT_TYPE, vectorsToBytes, type LocalShardGroup, type QueryExclusions, type ScopedSearch, type SlidePageQuery, type WireExactRequest } from '../../engine/index.js';
import { ApiError } from '../errors.js';
import type { ReloadGate } from '../reload-gate.js';
import type { Services } from '../services.js';
import { EXACT_DEADLINE, EXACT_QUERIES_LIMIT } from './admin.js';
import { RELOAD_DEADLINE } from './system.js';

const Datasets = Type.Union([Type.Array(Type.String()), Type.Null()]);
const Rect = Type.Object({ x: Type.Integer({ minimum: 0 }), y: Type.Integer({ minimum: 0 }), width: Type.Integer({ minimum: 1 }), height: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
const hide = { hide: true };
/** Most query vectors in one search (hard negatives send them in batches). */
const MAX_QUERIES = 4096;

export async function internalRoutes(app: FastifyInstance, services: Services, local: LocalShardGroup, reloads: ReloadGate): Promise<void> {
  const dimension = services.cluster.index.model.dimension;

  // Binary bodies (engine/cluster/wire.ts): searches framed with their queries, read whole here.
  app.addContentTypeParser(SEARCH_CONTENT_TYPE, { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.post<{ Body: Buffer }>('/internal/v1/search', { schema: { ...hide } }, async (request, reply) => {
    if (!Buffer.isBuffer(request.body)) throw new ApiError('BAD_REQUEST', `a search body is ${SEARCH_CONTENT_TYPE}`);
    const search = decodeSearch(request.body, dimension);
    if ('problem' in search) throw new ApiError('BAD_REQUEST', search.problem);
    if (search.queries.length > MAX_QUERIES) throw new ApiError('BAD_REQUEST', `at most ${MAX_QUERIES} queries a search, got ${search.queries.length}`);
    const result = await local.search(search.queries, search.request);
    services.metrics.observeShards(result.shardMs);
    // Rows of numbers, each slide once (wire.ts): a slide search's hits as objects were most of what crossed.
    return reply.type('application/json').send(JSON.stringify(hitsToWire(result)));
  });

  // Ground truth for the admin exact-search route (the router has checked the caller is an admin):
  // framed as a search, its JSON request also saying what each query alone leaves out.
  app.post('/internal/v1/exact-search', { schema: { ...hide }, config: EXACT_DEADLINE }, async (request) => {
    if (!Buffer.isBuffer(request.body)) throw new ApiError('BAD_REQUEST', `an exact search body is ${SEARCH_CONTENT_TYPE}`);
    const search = decodeSearch(request.body, dimension);
    if ('problem' in search) throw new ApiError('BAD_REQUEST', search.problem);
    if (search.queries.length > EXACT_QUERIES_LIMIT) throw new ApiError('BAD_REQUEST', `at most ${EXACT_QUERIES_LIMIT} queries an exact search, got ${search.queries.length}`);
    return local.exactSearch(search.queries, search.request, perQueryOf((search.request as Partial<WireExactRequest>).perQuery, search.queries.length));
  });

  app.post<{ Body: { slideId: string; selection: { rect: { x: number; y: number; width: number; height: number } } | { mosaic: true }; datasets: string[] | null } }>(
    '/internal/v1/vectors',
    { schema: { ...hide, body: Type.Object({ slideId: Type.String(), selection: Type.Union([Type.Object({ rect: Rect }), Type.Object({ mosaic: Type.Literal(true) })]), datasets: Datasets }) } },
    async (request, reply) => {
      const vectors = await local.storedVectors(request.body.slideId, request.body.selection, request.body.datasets);
      if (!vectors) return reply.status(204).send();
      return reply.type(BINARY_CONTENT_TYPE).send(vectorsToBytes(vectors));
    },
  );

  // A query by an indexed slide: its record and stored vectors in one answer (RemoteShardGroup.slideVectors).
  app.post<{ Body: { slideId: string; selection: { rect: { x: number; y: number; width: number; height: number } } | { mosaic: true }; datasets: string[] | null } }>(
    '/internal/v1/slide-vectors',
    { schema: { ...hide, body: Type.Object({ slideId: Type.String(), selection: Type.Union([Type.Object({ rect: Rect }), Type.Object({ mosaic: Type.Literal(true) })]), datasets: Datasets }) } },
    async (request, reply) => {
      const found = await local.slideVectors(request.body.slideId, request.body.selection, request.body.datasets);
      return reply.type(BINARY_CONTENT_TYPE).send(encodeFramed({ slide: found?.slide ?? null, vectors: Boolean(found?.vectors) }, found?.vectors ?? []));
    },
  );

  // A tile reference resolved and searched here in one call (Cluster.searchFromStoredTile): record and hits in the head, the vector after.
  app.post<{ Body: { slideId: string; rect: { x: number; y: number; width: number; height: number }; request: ScopedSearch } }>(
    '/internal/v1/stored-tile-search',
    { schema: { ...hide, body: Type.Object({ slideId: Type.String(), rect: Rect, request: Type.Object({ k: Type.Integer({ minimum: 1, maximum: 1000 }), datasets: Type.Optional(Datasets) }) }) } },
    async (request, reply) => {
      const found = await local.searchFromStoredTile(request.body.slideId, request.body.rect, request.body.request);
      services.metrics.observeShards(found?.result?.shardMs ?? {});
      const head = { slide: found?.slide ?? null, hits: found?.result ? hitsToWire(found.result) : null };
      return reply.type(BINARY_CONTENT_TYPE).send(encodeFramed(head, found?.result ? (found.vectors ?? []) : []));
    },
  );

  app.post<{ Body: { slideId: string; datasets: string[] | null } }>('/internal/v1/slide', { schema: { ...hide, body: Type.Object({ slideId: Type.String(), datasets: Datasets }) } }, async (request) => ({
    slide: (await local.slide(request.body.slideId, request.body.datasets)) ?? null,
  }));

  app.post<{ Body: SlidePageQuery }>(
    '/internal/v1/slide-page',
    {
      schema: {
        ...hide,
        body: Type.Object({
          after: Type.Optional(Type.String()),
          limit: Type.Integer({ minimum: 0, maximum: 100_000 }),
          where: Type.Optional(Type.Record(Type.String(), Type.String())),
          text: Type.Optional(Type.String()),
          datasets: Datasets,
        }),
      },
    },
    async (request) => local.slidePage(request.body),
  );

  app.post<{ Body: { datasets: string[] | null } }>('/internal/v1/slide-totals', { schema: { ...hide, body: Type.Object({ datasets: Datasets }) } }, async (request) => local.slideTotals(request.body.datasets));

  app.post<{ Body: { slideId: string; rect: { x: number; y: number; width: number; height: number }; datasets: string[] | null } }>(
    '/internal/v1/region',
    { schema: { ...hide, body: Type.Object({ slideId: Type.String(), rect: Rect, datasets: Datasets }) } },
    async (request, reply) => {
      // Reduced on this node to what the embedder takes (LocalShardGroup.readRegion): raw RGB, not base64 JSON.
      const image = await local.readRegion(request.body.slideId, request.body.rect, request.body.datasets);
      return reply.type(BINARY_CONTENT_TYPE).header(REGION_WIDTH_HEADER, image.width).header(REGION_HEIGHT_HEADER, image.height).send(image.data);
    },
  );

  // What a router learns of a node (shards, counts, model); public /health says only that it is alive.
  app.get('/internal/v1/health', { schema: { ...hide } }, async () => local.health());

  app.post('/internal/v1/reload', { schema: { ...hide }, config: RELOAD_DEADLINE }, async () => reloads.run(() => local.reload()));
}

/** Each query's own exclusions, checked: none, or one entry a query, each with string lists only. @throws ApiError BAD_REQUEST */
function perQueryOf(value: unknown, queries: number): QueryExclusions[] {
  const strings = (list: unknown) => list === undefined || (Array.isArray(list) && list.every((item) => typeof item === 'string'));
  const valid = Array.isArray(value) && (value.length === 0 || value.length === queries) && value.every((entry) => typeof entry === 'object' && entry !== null && strings((entry as QueryExclusions).slides) && strings((entry as QueryExclusions).patients));
  if (!valid) throw new ApiError('BAD_REQUEST', `an exact search's perQuery is empty or one {slides?, patients?} of strings for each of its ${queries} queries`);
  return value as QueryExclusions[];
}
