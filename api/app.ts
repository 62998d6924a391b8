/**
 * buildApp: the Fastify app for a set of services, without listening (tests and the server start
 * it the same way). Plugins: OpenAPI (/docs), multipart uploads, per-key rate limits; hooks for
 * authentication and metrics; routes grouped by resource; the viewer at /.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import rateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import { CLUSTER_TOKEN_HEADER } from '../engine/index.js';
import { hashKey, KeyRing, type Access } from './auth.js';
import { ApiError, installErrorHandler } from './errors.js';
import { answerConnect, capConnectionsPerClient, installHandlerDeadline, serverOptions } from './http-limits.js';
import { caseRoutes } from './routes/cases.js';
import { adminRoutes } from './routes/admin.js';
import { cohortRoutes } from './routes/cohorts.js';
import { hardNegativeRoutes } from './routes/hard-negatives.js';
import { ReloadGate } from './reload-gate.js';
import { internalRoutes } from './routes/internal.js';
import { searchRoutes } from './routes/search.js';
import { slideRoutes } from './routes/slides.js';
import { systemRoutes } from './routes/system.js';
import type { Services } from './services.js';

export const VIEWER_DIST = fileURLToPath(new URL('./viewer/dist/', import.meta.url));

/** Routes open without a key: probes, metrics, docs, the viewer's files and the session check. */
function needsKey(url: string): boolean {
  return url.startsWith('/v1/') && !url.startsWith('/v1/session');
}

export interface AppOptions {
  ready: () => boolean;
}

export async function buildApp(services: Services, options: AppOptions): Promise<FastifyInstance> {
  const { config } = services;
  const keys = new KeyRing(config.keys);
  const app = Fastify({
    logger: {
      level: config.logLevel,
      // Request lines carry the route pattern, never the URL: slide ids and paths can hold patient identifiers.
      serializers: { req: (request: FastifyRequest) => ({ method: request.method, route: request.routeOptions?.url, id: request.id }) },
      redact: ['req.headers.authorization', 'req.headers["x-api-key"]'],
    },
    // One debug line per request (onResponse below) instead of two info lines: logging costs throughput under load.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.bodyBytes,
    ...serverOptions(config.limits),
    routerOptions: { maxParamLength: 700 },
    return503OnClosing: true,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Bodies are checked as sent (no coercion, unknown fields refused); query strings are text, so they are coerced.
  const bodyAjv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: true, strict: false });
  const textAjv = new Ajv({ coerceTypes: 'array', removeAdditional: false, useDefaults: true, strict: false });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object));

  installErrorHandler(app, (code) => services.metrics.errors.inc({ code }));
  capConnectionsPerClient(app.server, config.limits.connectionsPerClient);
  answerConnect(app.server);
  installHandlerDeadline(app, config.limits.handlerTimeoutMs);

  await app.register(swagger, {
    openapi: {
      info: { title: 'Tessera', version: '0.1.0', description: 'Content-based image retrieval for digital pathology: similar regions, similar slides, cohorts and hard negatives.' },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: keys.open ? [] : [{ apiKey: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  // Multipart bodies are read whole (under bodyLimit) and parsed by the route: see multipart.ts.
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  await app.register(rateLimit, {
    global: true,
    timeWindow: 60_000,
    max: (request: FastifyRequest) => (request as FastifyRequest & { access?: Access }).access?.rateLimitPerMinute ?? config.rateLimit.perMinute,
    keyGenerator: (request: FastifyRequest) => {
      const header = request.headers.authorization ?? request.headers['x-api-key'];
      return typeof header === 'string' ? `key:${hashKey(header).slice(0, 32)}` : `ip:${request.ip}`;
    },
    allowList: (request: FastifyRequest) => !needsKey(request.url),
    errorResponseBuilder: (_request, context) => new ApiError('RATE_LIMITED', `rate limit of ${context.max} requests a minute reached; retry in ${context.after}`),
    hook: 'preHandler',
  });

  app.decorateRequest('access', null);
  app.addHook('onRequest', async (request) => {
    if (request.url.startsWith('/internal/')) {
      if (config.clusterToken && request.headers[CLUSTER_TOKEN_HEADER] !== config.clusterToken) throw new ApiError('UNAUTHORIZED', 'internal routes need the cluster token');
      return;
    }
    if (needsKey(request.url)) (request as FastifyRequest & { access: Access }).access = keys.authenticate(request);
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    services.metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    services.metrics.requestSeconds.observe({ route, method: request.method }, reply.elapsedTime / 1000);
    request.log.debug({ route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 10) / 10 }, 'request done');
  });

  const reloads = new ReloadGate();
  await app.register(async (scope) => systemRoutes(scope, services, keys, options.ready, reloads));
  if (config.role !== 'shard') {
    await app.register(async (scope) => searchRoutes(scope, services));
    await app.register(async (scope) => cohortRoutes(scope, services));
    await app.register(async (scope) => hardNegativeRoutes(scope, services));
    await app.register(async (scope) => adminRoutes(scope, services));
  }
  await app.register(async (scope) => slideRoutes(scope, services));
  if (config.role === 'all' && services.local) await app.register(async (scope) => caseRoutes(scope, services));
  if (config.role === 'shard' && services.local) {
    const local = services.local;
    await app.register(async (scope) => internalRoutes(scope, services, local, reloads));
  }
  if (config.viewer) await registerViewer(app);
  return app;
}

async function registerViewer(app: FastifyInstance): Promise<void> {
  if (existsSync(`${VIEWER_DIST}index.html`)) {
    // Revalidated on every visit (ETag): the file names carry no content hash, so a rebuild must show at once.
    await app.register(fastifyStatic, { root: VIEWER_DIST, prefix: '/', index: 'index.html', cacheControl: true, maxAge: 0 });
    return;
  }
  app.get('/', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html').send('<!doctype html><title>Tessera</title><p>The viewer is not built: run <code>npm run build</code>. The API is at <a href="/docs">/docs</a>.</p>'),
  );
}
