/** Health, readiness, metrics, models, the index and the caller's session. */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { indexRecall } from '../../engine/index.js';
import { listModels } from '../../models/index.js';
import type { KeyRing } from '../auth.js';
import { ApiError } from '../errors.js';
import type { RouteDeadline } from '../http-limits.js';
import type { ReloadGate } from '../reload-gate.js';
import { ErrorBody } from '../schemas.js';
import type { Services } from '../services.js';
import { accessOf } from './shared.js';

/** Reloads take tens of seconds on a large index: they get this deadline instead of the default. */
export const RELOAD_DEADLINE: RouteDeadline = { handlerTimeoutMs: 125_000 };

export async function systemRoutes(app: FastifyInstance, services: Services, keys: KeyRing, isReady: () => boolean, reloads: ReloadGate): Promise<void> {
  // Liveness only: it needs no key, so it says nothing of what the index holds (counts are at /v1/index).
  app.get(
    '/health',
    { schema: { summary: 'Liveness and role (no key needed; shards and counts are at /v1/index)', tags: ['system'], response: { 200: Type.Object({ status: Type.Literal('ok'), role: Type.String() }) } } },
    async () => ({ status: 'ok' as const, role: services.config.role }),
  );

  app.get('/ready', { schema: { summary: 'Ready to serve (shards loaded, nodes reachable)', tags: ['system'], response: { 503: ErrorBody } } }, async (_request, reply) => {
    if (!isReady()) return reply.status(503).send({ error: 'NOT_READY', message: 'still loading' });
    return { status: 'ready' };
  });

  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['system'], produces: ['text/plain'] } }, async (_request, reply) => {
    return reply.type(services.metrics.registry.contentType).send(await services.metrics.registry.metrics());
  });

  app.get('/v1/session', { schema: { summary: 'Whether a key is required, and what the presented key may see', tags: ['system'] } }, async (request) => {
    let key: { id: string; datasets: string[] | null; admin: boolean } | null = null;
    try {
      const access = keys.authenticate(request);
      key = { id: access.keyId, datasets: access.datasets, admin: access.admin };
    } catch {
      key = null;
    }
    return { authRequired: !keys.open, key };
  });

  app.get('/v1/models', { schema: { summary: 'Installed models and the one this index uses', tags: ['system'], response: { 401: ErrorBody } } }, async (request) => {
    accessOf(request);
    const inUse = services.cluster.index.model;
    const installed = services.config.role === 'shard' ? [] : listModels(services.config.modelsDir).map(({ manifest, bundled }) => ({ id: manifest.id, version: manifest.version, dimension: manifest.dimension, inputSize: manifest.inputSize, license: manifest.license, bundled }));
    return { inUse, loaded: services.embedder ? { id: services.embedder.manifest.id, provider: services.embedder.provider } : null, installed };
  });

  app.get(
    '/v1/index',
    {
      schema: {
        summary: 'Shards, counts, model, tile grid and served recall (per-shard counts and recall for keys that see every dataset)',
        description: 'recall: over the shards that answered, the lowest and the tile-weighted mean recall@10 their segments measured against exact search when built (exact tails count as 1); per shard, each segment\'s tuned ef and recall under groups[].shards[].recall.',
        tags: ['system'],
        response: {
          200: Type.Object({
            index: Type.Unknown(),
            groups: Type.Unknown(),
            totals: Type.Object({ slides: Type.Integer(), tiles: Type.Integer() }),
            recall: Type.Object({ min: Type.Union([Type.Number(), Type.Null()]), mean: Type.Union([Type.Number(), Type.Null()]), targets: Type.Array(Type.Number()), unmeasuredVectors: Type.Integer() }),
          }),
          401: ErrorBody,
        },
      },
    },
    async (request) => {
      const access = accessOf(request);
      const groups = await services.cluster.health();
      // Counts per dataset would say what exists outside a key's scope: scoped keys see their own totals only.
      const { slides, tiles } = await services.cluster.slideTotals(access.datasets);
      // Recall says nothing of what a dataset holds: every key sees the index-wide figures.
      const recall = indexRecall(groups.flatMap((group) => ('error' in group ? [] : group.shards.map((shard) => shard.recall))));
      return { index: services.cluster.index, groups: access.datasets ? [] : groups, totals: { slides, tiles }, recall };
    },
  );

  app.post(
    '/v1/admin/reload',
    {
      schema: {
        summary: 'Serve slides indexed since the server started (admin keys only)',
        description: 'Opens the index again and swaps it in; requests already running finish on the old one. On a router, every shard node (and replica) reloads. Refused (409) when the index now has another model or shard count: restart instead; and (409 RELOAD_IN_PROGRESS) while another reload runs.',
        tags: ['admin'],
        response: { 401: ErrorBody, 403: ErrorBody, 409: ErrorBody, 503: ErrorBody },
      },
      config: RELOAD_DEADLINE,
    },
    async (request) => {
      const access = accessOf(request);
      if (!access.admin) throw new ApiError('FORBIDDEN', 'this key may not administer the server');
      const started = performance.now();
      await reloads.run(async () => {
        if (services.local) await services.local.reload();
        else {
          const failed = (await services.cluster.reload()).filter((outcome) => outcome.error !== undefined);
          if (failed.length > 0) throw new ApiError('SHARD_UNAVAILABLE', `reload failed on ${failed.map((outcome) => `${outcome.location} (shards ${outcome.shards.join(',')}): ${outcome.error}`).join('; ')}; the others reloaded`);
        }
      });
      const { slides, tiles, coverage } = await services.cluster.slideTotals(null);
      request.log.info({ slides, ms: Math.round(performance.now() - started) }, 'index reloaded');
      return { slides, tiles, coverage, tookMs: Math.round(performance.now() - started) };
    },
  );
}
