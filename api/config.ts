/**
 * The service's configuration: built once at start-up from flags, environment and an optional
 * JSON file, then trusted everywhere else. Nothing below reads process.env.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { readIndexInfo, TesseraError, type SlideSources } from '../engine/index.js';

export type Role = 'all' | 'shard' | 'router';

/** One API key as stored in the keys file: its sha256, never the key itself. */
export interface ApiKeyEntry {
  /** A name for logs and rate limits (never the key). */
  id: string;
  /** Hex sha256 of the key. */
  sha256: string;
  /** Datasets the key may search and see; ["*"] for all. */
  datasets: string[];
  /** May call admin routes (reload). */
  admin: boolean;
  /** Requests per minute (default: the config's rateLimit.perMinute). */
  rateLimitPerMinute?: number;
}

export interface ServeConfig {
  role: Role;
  host: string;
  port: number;
  /** Index directory (roles all and shard). */
  indexDir?: string;
  /** Shards this node serves (role shard; default all present). */
  shards?: number[];
  /** Shard node URLs (role router), one per group of shards. */
  nodes: string[];
  /** Replica URLs: `replicas[i]` serves the same shards as `nodes[i]` (comma-separated lists per node with `|`). */
  replicas: string[][];
  /**
   * Folders slide files must lie in. Default: the slide folders recorded in the index when it
   * was built; for an index without them (or a router), the working directory.
   */
  slideRoots: string[];
  /** DICOMweb service roots slides and new-case series may be read from (config file `dicomWebServers`). Default: those recorded in the index. */
  dicomWebServers: string[];
  /** Where slideRoots came from, for the start-up log. */
  slideRootsFrom: 'flag' | 'config' | 'index' | 'working directory';
  /** API keys; empty: open access, allowed on a loopback host only. */
  keys: ApiKeyEntry[];
  /** Shared secret router → shard nodes (env TESSERA_CLUSTER_TOKEN). */
  clusterToken?: string;
  modelsDir: string;
  device: string;
  /** Search threads (default: one per core). */
  searchThreads?: number;
  /**
   * Worker threads decoding JPEG 2000 and JPEG-LS tiles (WebAssembly, synchronous); 1 decodes on
   * the event loop. Default: half the cores, at least 2 (so decoding never blocks requests), at most 4.
   */
  decodeThreads: number;
  /** Worker threads resizing and normalizing query images for the model; 0: on the event loop. Default: half the cores, 1 to 2. */
  preprocessThreads: number;
  /** Time a fan-out may take before a node counts as missing. */
  deadlineMs: number;
  limits: {
    /** Largest request body (uploads included), bytes. */
    bodyBytes: number;
    /** Largest decoded upload, pixels (width × height). */
    uploadPixels: number;
    /** Most images in one request (slide search by regions, hard negatives). */
    imagesPerRequest: number;
    /** Most queries in one hard-negative request. */
    queriesPerRequest: number;
    /** Time for a request's headers to arrive, from its first byte (node's headersTimeout). */
    headersTimeoutMs: number;
    /** Time for a whole request, headers and body, to arrive (node's requestTimeout): 408 after it. */
    requestTimeoutMs: number;
    /** Time a handler may take before the request is answered 503 DEADLINE_EXCEEDED (reloads get longer). */
    handlerTimeoutMs: number;
    /** Time an idle kept-alive connection stays open between requests. */
    keepAliveTimeoutMs: number;
    /** Time a socket may stay silent in any phase before it is closed (a backstop for the above; at least handlerTimeoutMs + 1 s). */
    idleTimeoutMs: number;
    /** Open connections one client address may hold; past it a connection gets 429 and is closed. */
    connectionsPerClient: number;
  };
  rateLimit: { perMinute: number };
  /** Serve the web viewer at / (off for shard nodes). */
  viewer: boolean;
  /**
   * Load the model to embed query images (roles all and router). Off: only queries by stored
   * vectors (tile references, slide mosaics) are served; image queries get 503.
   */
  embed: boolean;
  logLevel: string;
}

export const DEFAULT_LIMITS: ServeConfig['limits'] = {
  bodyBytes: 16 * 2 ** 20,
  uploadPixels: 4096 * 4096,
  imagesPerRequest: 64,
  queriesPerRequest: 10_000,
  headersTimeoutMs: 10_000,
  // 16 MiB at about 1 MB/s, with room to spare.
  requestTimeoutMs: 30_000,
  handlerTimeoutMs: 30_000,
  // Fastify's default: longer than the idle timeouts of common load balancers and of the router's
  // kept-alive sockets to shard nodes, so a reused socket is not closed under a request in flight.
  keepAliveTimeoutMs: 72_000,
  // Longer than a reload (up to 120 s on a router), during which the socket is silent.
  idleTimeoutMs: 130_000,
  // A router keeps up to 256 sockets open to each shard node.
  connectionsPerClient: 256,
};

/** Options of the config file (all optional); flags override it. */
interface ConfigFile {
  keys?: ApiKeyEntry[];
  slideRoots?: string[];
  dicomWebServers?: string[];
  limits?: Partial<ServeConfig['limits']>;
  rateLimit?: { perMinute?: number };
  deadlineMs?: number;
}

/** Reads and checks a config file. @throws TesseraError INVALID_ARGUMENT naming the file and field */
export function readConfigFile(path: string): ConfigFile {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new TesseraError('INVALID_ARGUMENT', `${path}: cannot read the config: ${(error as Error).message}`, { cause: error });
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new TesseraError('INVALID_ARGUMENT', `${path}: the config must be a JSON object`);
  const file = parsed as ConfigFile;
  for (const [i, key] of (file.keys ?? []).entries()) {
    if (typeof key.id !== 'string' || !key.id) throw new TesseraError('INVALID_ARGUMENT', `${path}: keys[${i}].id must be a non-empty string`);
    if (typeof key.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(key.sha256)) throw new TesseraError('INVALID_ARGUMENT', `${path}: keys[${i}].sha256 must be 64 lowercase hex digits (the sha256 of the key, never the key)`);
    if (!Array.isArray(key.datasets) || !key.datasets.every((d) => typeof d === 'string')) throw new TesseraError('INVALID_ARGUMENT', `${path}: keys[${i}].datasets must be a list of dataset names, or ["*"]`);
    key.admin = key.admin === true;
  }
  for (const [name, value] of Object.entries(file.limits ?? {})) {
    if (!(name in DEFAULT_LIMITS)) throw new TesseraError('INVALID_ARGUMENT', `${path}: limits.${name} is not a limit; known: ${Object.keys(DEFAULT_LIMITS).join(', ')}`);
    if (!Number.isInteger(value) || (value as number) < 1) throw new TesseraError('INVALID_ARGUMENT', `${path}: limits.${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  if (file.dicomWebServers !== undefined && !(Array.isArray(file.dicomWebServers) && file.dicomWebServers.every((url) => typeof url === 'string' && /^https?:\/\//.test(url)))) {
    throw new TesseraError('INVALID_ARGUMENT', `${path}: dicomWebServers must be a list of http(s) DICOMweb service roots`);
  }
  return { ...file, slideRoots: file.slideRoots?.map((root) => resolve(root)) };
}

export interface ServeFlags {
  role?: string;
  host?: string;
  port?: string;
  index?: string;
  shards?: string;
  nodes?: string;
  replicas?: string;
  config?: string;
  'slide-roots'?: string;
  'models-dir'?: string;
  device?: string;
  threads?: string;
  'decode-threads'?: string;
  'preprocess-threads'?: string;
  'deadline-ms'?: string;
  'no-viewer'?: boolean;
  'no-model'?: boolean;
}

/**
 * Builds the config from flags, the config file they name and the environment.
 * @throws TesseraError INVALID_ARGUMENT naming the flag and what it expects
 */
export function buildConfig(flags: ServeFlags, env: NodeJS.ProcessEnv, defaultModelsDir: string): ServeConfig {
  const role = (flags.role ?? 'all') as Role;
  if (!['all', 'shard', 'router'].includes(role)) throw invalid(`--role must be all, shard or router, got '${flags.role}'`);
  const file = flags.config ? readConfigFile(flags.config) : {};
  const port = integer(flags.port ?? '8080', '--port', 0, 65535);
  if ((role === 'all' || role === 'shard') && !flags.index) throw invalid(`--index INDEX is required for role ${role}`);
  const nodes = (flags.nodes ?? '').split(',').map((url) => url.trim()).filter(Boolean);
  if (role === 'router' && nodes.length === 0) throw invalid('--nodes URL,URL… is required for role router');
  for (const url of nodes) checkUrl(url, '--nodes');
  // --replicas lists, per node and in the same order, that node's replicas separated by '|'.
  const replicas = (flags.replicas ?? '').split(',').map((group) => group.split('|').map((url) => url.trim()).filter(Boolean));
  if (flags.replicas !== undefined && replicas.length > nodes.length) throw invalid(`--replicas lists ${replicas.length} groups for ${nodes.length} nodes`);
  for (const url of replicas.flat()) checkUrl(url, '--replicas');
  const shards = flags.shards === undefined ? undefined : flags.shards.split(',').map((value) => integer(value.trim(), '--shards', 0, 4095));
  const recorded = flags.index ? recordedSourcesOf(resolve(flags.index)) : undefined;
  const slideRoots = flags['slide-roots']
    ? { slideRoots: flags['slide-roots'].split(',').map((root) => resolve(root)), slideRootsFrom: 'flag' as const }
    : file.slideRoots
      ? { slideRoots: file.slideRoots, slideRootsFrom: 'config' as const }
      : recorded
        ? { slideRoots: recorded.folders, slideRootsFrom: 'index' as const }
        : { slideRoots: [process.cwd()], slideRootsFrom: 'working directory' as const };
  return {
    role,
    host: flags.host ?? '127.0.0.1',
    port,
    ...(flags.index ? { indexDir: resolve(flags.index) } : {}),
    ...(shards ? { shards } : {}),
    nodes,
    replicas: nodes.map((_, i) => replicas[i] ?? []),
    ...slideRoots,
    dicomWebServers: (file.dicomWebServers ?? recorded?.dicomWebServers ?? []).map((url) => url.replace(/\/+$/, '')),
    keys: file.keys ?? [],
    ...(env.TESSERA_CLUSTER_TOKEN ? { clusterToken: env.TESSERA_CLUSTER_TOKEN } : {}),
    modelsDir: flags['models-dir'] ?? defaultModelsDir,
    device: flags.device ?? 'auto',
    ...(flags.threads ? { searchThreads: integer(flags.threads, '--threads', 1, 256) } : {}),
    decodeThreads: flags['decode-threads'] ? integer(flags['decode-threads'], '--decode-threads', 1, 64) : Math.min(4, Math.max(2, Math.floor(availableParallelism() / 2))),
    preprocessThreads: flags['preprocess-threads'] ? integer(flags['preprocess-threads'], '--preprocess-threads', 0, 64) : Math.min(2, Math.max(1, Math.floor(availableParallelism() / 2))),
    deadlineMs: flags['deadline-ms'] ? integer(flags['deadline-ms'], '--deadline-ms', 1, 600_000) : (file.deadlineMs ?? 2000),
    limits: { ...DEFAULT_LIMITS, ...file.limits },
    rateLimit: { perMinute: file.rateLimit?.perMinute ?? 600_000 },
    viewer: role !== 'shard' && !flags['no-viewer'],
    embed: role !== 'shard' && !flags['no-model'],
    logLevel: env.TESSERA_LOG_LEVEL ?? 'info',
  };
}

/**
 * The slide sources index.json records, or undefined: no index there (startServer reports it),
 * or one built before sources were recorded.
 */
function recordedSourcesOf(indexDir: string): SlideSources | undefined {
  try {
    return readIndexInfo(indexDir).sources;
  } catch {
    return undefined;
  }
}

function integer(value: string, flag: string, min: number, max: number): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < min || parsed > max) throw invalid(`${flag} must be an integer from ${min} to ${max}, got '${value}'`);
  return parsed;
}

function checkUrl(url: string, flag: string): void {
  try {
    const parsed = new URL(url);
    // Shard nodes speak plain HTTP inside the cluster network (TLS ends at the router's ingress).
    if (parsed.protocol !== 'http:') throw new Error('not http');
  } catch {
    throw invalid(`${flag}: '${url}' is not an http:// URL`);
  }
}

function invalid(message: string): TesseraError {
  return new TesseraError('INVALID_ARGUMENT', message);
}

/** True for hosts only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === 'localhost' || host === '::1' || host.startsWith('127.');
}
