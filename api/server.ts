/**
 * startServer: opens what the role needs (local shards, remote shard nodes, the model), builds
 * the app and listens. Refuses an open (keyless) server on a non-loopback host.
 */
import { availableParallelism } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { augmentedRef, Cluster, configureDecoding, Embedder, LocalShardGroup, parseDevice, RemoteShardGroup, resolveModel, TesseraError, type GroupHealth, type ShardGroup } from '../engine/index.js';
import type { InstalledModel } from '../models/index.js';
import { buildApp } from './app.js';
import { isLoopback, type ServeConfig } from './config.js';
import { Metrics } from './metrics.js';
import type { Services } from './services.js';

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  services: Services;
  close(): Promise<void>;
}

export async function startServer(config: ServeConfig): Promise<RunningServer> {
  if (config.keys.length === 0 && !isLoopback(config.host)) {
    throw new TesseraError('INVALID_ARGUMENT', `no API keys are configured: an open server may listen on 127.0.0.1 only, not ${config.host}; give --config FILE with keys (see api/README.md)`);
  }
  const services = await openServices(config);
  let app: FastifyInstance;
  try {
    app = await buildApp(services, { ready: () => true });
    await app.listen({ host: config.host, port: config.port });
  } catch (error) {
    await closeServices(services);
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  if (config.keys.length === 0) app.log.warn({ host: config.host }, 'no API keys configured: open access, listening on a loopback address only');
  if (config.role === 'shard' && !config.clusterToken) app.log.warn('TESSERA_CLUSTER_TOKEN is not set: internal shard routes are open to anyone who can reach this node');
  app.log.info({ role: config.role, port, shards: services.cluster.groups.flatMap((group) => group.shardIds) }, 'serving');
  if (services.local) logSlidesOutsideRoots(app, config, services.local.slidesOutsideRoots());
  return {
    url: `http://${host}:${port}`,
    app,
    services,
    async close() {
      await app.close();
      await closeServices(services);
    },
  };
}

/** The start-up line on slide roots: a count only, never a path (paths can hold patient identifiers). */
function logSlidesOutsideRoots(app: FastifyInstance, config: ServeConfig, outside: number): void {
  const fields = { slidesOutsideRoots: outside, slideRoots: config.slideRoots.length, dicomWebServers: config.dicomWebServers.length, slideRootsFrom: config.slideRootsFrom };
  if (outside === 0) app.log.info(fields, 'every indexed slide lies under the slide roots');
  else app.log.warn(fields, 'indexed slides lie outside the slide roots: their images answer 403 SLIDE_ACCESS_DENIED; serve with --slide-roots (or the config file\'s slideRoots and dicomWebServers) covering the folders they were indexed from');
}

async function openServices(config: ServeConfig): Promise<Services> {
  const metrics = new Metrics();
  const threads = config.searchThreads ?? availableParallelism();
  // JPEG 2000 and JPEG-LS decoders are synchronous WebAssembly: off the event loop unless told otherwise.
  configureDecoding({ decodeThreads: config.decodeThreads });
  if (config.role === 'router') {
    const groups = await connectNodes(config);
    const first = (groups[0] as RemoteShardGroup).reported;
    const cluster = new Cluster(groups, first.index && { ...first.index, model: first.model }, { deadlineMs: config.deadlineMs });
    if (!config.embed) return { config, cluster, metrics };
    const { model, embedder } = await loadModel(config, first.model);
    return { config, cluster, embedder, model, metrics };
  }
  const local = await LocalShardGroup.open(config.indexDir as string, { threads, slideRoots: config.slideRoots, dicomWebServers: config.dicomWebServers, ...(config.shards ? { shards: config.shards } : {}) });
  try {
    const info = local.store.info;
    const cluster = new Cluster([local], { shards: info.shards, model: info.model, tile: info.tile, hnsw: info.hnsw, metric: info.metric }, { deadlineMs: config.deadlineMs });
    if (config.role === 'shard' || !config.embed) return { config, cluster, local, metrics };
    const { model, embedder } = await loadModel(config, info.model);
    return { config, cluster, local, embedder, model, metrics };
  } catch (error) {
    await local.close();
    throw error;
  }
}

/** The index's model, installed here, with an embedder for query images. @throws TesseraError MODEL_NOT_FOUND, MODEL_MISMATCH */
async function loadModel(config: ServeConfig, expected: GroupHealth['model']): Promise<{ model: InstalledModel; embedder: Embedder }> {
  const model = resolveModel(expected.id, config.modelsDir);
  const installed = augmentedRef(model.manifest);
  if (installed.version !== expected.version || installed.dimension !== expected.dimension) {
    throw new TesseraError('MODEL_MISMATCH', `the index was built with ${expected.id} ${expected.version} (${expected.dimension}-d); installed here is ${installed.version} (${installed.dimension}-d)`);
  }
  const embedder = await Embedder.create(model, { device: parseDevice(config.device), preprocessThreads: config.preprocessThreads });
  return { model, embedder };
}

/**
 * Connects to every shard node; all must serve one index with one model, and no shard twice.
 * @throws TesseraError SHARD_UNAVAILABLE, MODEL_MISMATCH, INVALID_ARGUMENT
 */
async function connectNodes(config: ServeConfig): Promise<ShardGroup[]> {
  const groups = await Promise.all(config.nodes.map((url, i) => RemoteShardGroup.connect(url, { replicas: config.replicas[i] ?? [], timeoutMs: Math.max(config.deadlineMs, 5000), ...(config.clusterToken ? { clusterToken: config.clusterToken } : {}) })));
  const first = (groups[0] as RemoteShardGroup).reported;
  const seen = new Map<number, string>();
  for (const group of groups) {
    const { model, index } = group.reported;
    if (model.id !== first.model.id || model.version !== first.model.version || model.dimension !== first.model.dimension) {
      throw new TesseraError('MODEL_MISMATCH', `node ${group.location} serves model ${model.id} ${model.version}; ${groups[0]?.location} serves ${first.model.id} ${first.model.version}: refusing to merge their results`);
    }
    if (index.shards !== first.index.shards) throw new TesseraError('INVALID_ARGUMENT', `node ${group.location} belongs to an index of ${index.shards} shards, ${groups[0]?.location} to one of ${first.index.shards}`);
    for (const shard of group.shardIds) {
      const other = seen.get(shard);
      if (other) throw new TesseraError('INVALID_ARGUMENT', `shard ${shard} is served by both ${other} and ${group.location}; list the second as a replica (--replicas)`);
      seen.set(shard, group.location);
    }
  }
  return groups;
}

async function closeServices(services: Services): Promise<void> {
  await services.embedder?.close();
  await services.cluster.close();
}
