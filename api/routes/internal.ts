/**
 * /internal/v1/*: what a router asks of a shard node. Requests carry the caller's dataset scope
 * (already authenticated by the router) and, when the cluster has one, the cluster token.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { vectorFromBase64, vectorToBase64, type LocalShardGroup, type ScopedSearch, type WireExactRequest } from '../../engine/index.js';
import { ApiError } from '../errors.js';
import type { ReloadGate } from '../reload-gate.js';
import type { Services } from '../services.js';
import { EXACT_DEADLINE, EXACT_QUERIES_LIMIT } from './admin.js';
import { RELOAD_DEADLINE } from './system.js';

const Datasets = Type.Union([Type.Array(Type.String()), Type.Null()]);
const Rect = Type.Object({ x: Type.Integer({ minimum: 0 }), y: Type.Integer({ minimum: 0 }), width: Type.Integer({ minimum: 1 }), height: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });
const hide = { hide: true };

export async function internalRoutes(app: FastifyInstance, services: Services, local: LocalShardGroup, reloads: ReloadGate): Promise<void> {
  const dimension = services.cluster.index.model.dimension;

  app.post<{ Body: { queries: string[]; request: ScopedSearch } }>(
    '/internal/v1/search',
    { schema: { ...hide, body: Type.Object({ queries: Type.Array(Type.String(), { maxItems: 4096 }), request: Type.Object({ k: Type.Integer({ minimum: 1, maximum: 1000 }) }, { additionalProperties: true }) }) } },
    async (request) => {
      const vectors = request.body.queries.map((text) => vectorOf(text, dimension));
      const result = await local.search(vectors, request.body.request);
      services.metrics.observeShards(result.shardMs);
      return result;
    },
  );

  // Ground truth for the admin exact-search route: the router has checked the caller is an admin.
  app.post(
    '/internal/v1/exact-search',
    {
      schema: {
        ...hide,
        body: Type.Object({
          queries: Type.Array(Type.String(), { maxItems: EXACT_QUERIES_LIMIT }),
          request: Type.Object({ k: Type.Integer({ minimum: 1, maximum: 1000 }) }, { additionalProperties: true }),
          perQuery: Type.Array(Type.Object({ slides: Type.Optional(Type.Array(Type.String())), patients: Type.Optional(Type.Array(Type.String())) }, { additionalProperties: false }), { maxItems: EXACT_QUERIES_LIMIT }),
        }),
      },
      config: EXACT_DEADLINE,
    },
    async (request) => {
      const body = request.body as WireExactRequest;
      return local.exactSearch(body.queries.map((text) => vectorOf(text, dimension)), body.request, body.perQuery);
    },
  );

  app.post<{ Body: { slideId: string; selection: { rect: { x: number; y: number; width: number; height: number } } | { mosaic: true }; datasets: string[] | null } }>(
    '/internal/v1/vectors',
    { schema: { ...hide, body: Type.Object({ slideId: Type.String(), selection: Type.Union([Type.Object({ rect: Rect }), Type.Object({ mosaic: Type.Literal(true) })]), datasets: Datasets }) } },
    async (request) => {
      const vectors = await local.storedVectors(request.body.slideId, request.body.selection, request.body.datasets);
      return { vectors: vectors && vectors.map(vectorToBase64) };
    },
  );

  app.post<{ Body: { slideId: string; datasets: string[] | null } }>('/internal/v1/slide', { schema: { ...hide, body: Type.Object({ slideId: Type.String(), datasets: Datasets }) } }, async (request) => ({
    slide: (await local.slide(request.body.slideId, request.body.datasets)) ?? null,
  }));

  app.post<{ Body: { datasets: string[] | null } }>('/internal/v1/slides', { schema: { ...hide, body: Type.Object({ datasets: Datasets }) } }, async (request) => ({
    slides: await local.slides(request.body.datasets),
  }));

  app.post<{ Body: { slideId: string; rect: { x: number; y: number; width: number; height: number }; datasets: string[] | null } }>(
    '/internal/v1/region',
    { schema: { ...hide, body: Type.Object({ slideId: Type.String(), rect: Rect, datasets: Datasets }) } },
    async (request) => {
      const image = await local.readRegion(request.body.slideId, request.body.rect, request.body.datasets);
      return { width: image.width, height: image.height, pixels: image.data.toString('base64') };
    },
  );

  // What a router learns of a node (shards, counts, model); public /health says only that it is alive.
  app.get('/internal/v1/health', { schema: { ...hide } }, async () => local.health());

  app.post('/internal/v1/reload', { schema: { ...hide }, config: RELOAD_DEADLINE }, async () => reloads.run(() => local.reload()));
}

function vectorOf(text: string, dimension: number): Float32Array {
  const vector = vectorFromBase64(text, dimension);
  if (!vector) throw new ApiError('BAD_REQUEST', `query vectors must be ${dimension} float32 values, base64`);
  return vector;
}
