/**
 * RemoteShardGroup: the shards of one shard node, over HTTP, with replicas. A call goes to the
 * node, then to each replica in turn, until one answers before the deadline; only then is the
 * group reported missing.
 */
import { Agent, request as httpRequest } from 'node:http';
import { ERROR_CODES, TesseraError, type ErrorCode } from '../errors.js';
import type { QueryExclusions } from '../index/index.js';
import type { RgbImage } from '../slide/index.js';
import type { BaseRect, GroupHealth, GroupSearchResult, ScopedSearch, ShardGroup, SlideSummary } from './shard-group.js';
import { CLUSTER_TOKEN_HEADER, vectorFromBase64, vectorToBase64, type WireExactRequest, type WireSearchRequest } from './wire.js';

/** Connections to shard nodes stay open between calls. */
const AGENT = new Agent({ keepAlive: true, maxSockets: 256 });

export interface RemoteGroupOptions {
  /** Nodes serving the same shards, tried in order after the first. */
  replicas?: string[];
  /** Sent to shard nodes that require it. */
  clusterToken?: string;
  /** Per-call time limit when the caller gives no deadline (default 2000 ms). */
  timeoutMs?: number;
}

export class RemoteShardGroup implements ShardGroup {
  private constructor(
    private readonly urls: string[],
    readonly shardIds: readonly number[],
    private readonly dimension: number,
    private readonly options: RemoteGroupOptions,
    private readonly healthAtConnect: GroupHealth,
  ) {}

  get location(): string {
    return this.urls[0] as string;
  }

  /**
   * Asks the node (or a replica) which shards and model it serves.
   * @throws TesseraError SHARD_UNAVAILABLE when neither answers, INVALID_ARGUMENT when a replica serves other shards
   */
  static async connect(url: string, options: RemoteGroupOptions = {}): Promise<RemoteShardGroup> {
    const urls = [url, ...(options.replicas ?? [])].map((entry) => entry.replace(/\/+$/, ''));
    const health = await call<GroupHealth>(urls, '/internal/v1/health', undefined, Date.now() + (options.timeoutMs ?? 2000), options.clusterToken);
    const shardIds = health.shards.map((shard) => shard.shard);
    return new RemoteShardGroup(urls, shardIds, health.model.dimension, options, { ...health, location: urls[0] as string });
  }

  /** The model and index the node reported when connected (the router checks them). */
  get reported(): GroupHealth {
    return this.healthAtConnect;
  }

  async search(queries: Float32Array[], request: ScopedSearch, deadline?: number): Promise<GroupSearchResult> {
    const body: WireSearchRequest = { queries: queries.map(vectorToBase64), request };
    return this.post<GroupSearchResult>('/internal/v1/search', body, deadline);
  }

  async exactSearch(queries: Float32Array[], request: ScopedSearch, perQuery: QueryExclusions[], deadline?: number): Promise<GroupSearchResult> {
    const body: WireExactRequest = { queries: queries.map(vectorToBase64), request, perQuery };
    return this.post<GroupSearchResult>('/internal/v1/exact-search', body, deadline ?? Date.now() + EXACT_TIMEOUT_MS);
  }

  async storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null> {
    const { vectors } = await this.post<{ vectors: string[] | null }>('/internal/v1/vectors', { slideId, selection, datasets });
    if (!vectors) return null;
    return vectors.map((text) => {
      const vector = vectorFromBase64(text, this.dimension);
      if (!vector) throw new TesseraError('SHARD_UNAVAILABLE', `${this.location} sent a vector of the wrong size`);
      return vector;
    });
  }

  async slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
    return (await this.post<{ slide: SlideSummary | null }>('/internal/v1/slide', { slideId, datasets })).slide ?? undefined;
  }

  async slides(datasets: string[] | null): Promise<SlideSummary[]> {
    return (await this.post<{ slides: SlideSummary[] }>('/internal/v1/slides', { datasets })).slides;
  }

  async readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage> {
    const { width, height, pixels } = await this.post<{ width: number; height: number; pixels: string }>('/internal/v1/region', { slideId, rect, datasets });
    return { width, height, data: Buffer.from(pixels, 'base64') };
  }

  async health(): Promise<GroupHealth> {
    return { ...(await call<GroupHealth>(this.urls, '/internal/v1/health', undefined, Date.now() + (this.options.timeoutMs ?? 2000), this.options.clusterToken)), location: this.location };
  }

  /** Reloads the node and each of its replicas (a reload of 1M tiles takes tens of seconds). */
  async reload(): Promise<GroupHealth> {
    const answers = await Promise.all(this.urls.map((url) => call<GroupHealth>([url], '/internal/v1/reload', {}, Date.now() + RELOAD_TIMEOUT_MS, this.options.clusterToken)));
    return { ...(answers[0] as GroupHealth), location: this.location };
  }

  async close(): Promise<void> {}

  private post<T>(path: string, body: unknown, deadline?: number): Promise<T> {
    return call<T>(this.urls, path, body, deadline ?? Date.now() + (this.options.timeoutMs ?? 2000), this.options.clusterToken);
  }
}

/**
 * Calls each URL in turn until one answers 2xx before the deadline. A 4xx from a node is the
 * caller's fault and is passed on as is (as a TesseraError with the node's code); network
 * errors, timeouts and 5xx move on to the next replica.
 */
async function call<T>(urls: string[], path: string, body: unknown, deadline: number, token: string | undefined): Promise<T> {
  const failures: string[] = [];
  for (const url of urls) {
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) {
      failures.push(`${url}: deadline passed`);
      break;
    }
    try {
      const { status, payload } = await request<T & { error?: string; message?: string }>(`${url}${path}`, body, remainingMs, token);
      if (status >= 200 && status < 300) return payload;
      if (status >= 400 && status < 500 && isErrorCode(payload.error)) {
        throw new TesseraError(payload.error, payload.message ?? `${url} refused the request`);
      }
      failures.push(`${url}: HTTP ${status}`);
    } catch (error) {
      if (error instanceof TesseraError) throw error;
      failures.push(`${url}: ${(error as Error).message}`);
    }
  }
  throw new TesseraError('SHARD_UNAVAILABLE', `no node answered ${path}: ${failures.join('; ')}`, { transient: true });
}

/**
 * One JSON request over a kept-alive connection. node:http rather than fetch: fetch costs about
 * 3 ms a call here against 0.3 ms, and a router makes several calls per query.
 */
function request<T>(url: string, body: unknown, timeoutMs: number, token: string | undefined): Promise<{ status: number; payload: T }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const outgoing = httpRequest(
      url,
      {
        method: data ? 'POST' : 'GET',
        agent: AGENT,
        headers: { ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}), ...(token ? { [CLUSTER_TOKEN_HEADER]: token } : {}) },
      },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('end', () => {
          try {
            resolve({ status: incoming.statusCode ?? 0, payload: JSON.parse(Buffer.concat(chunks).toString('utf8')) as T });
          } catch (error) {
            reject(new Error(`the answer was not JSON: ${(error as Error).message}`));
          }
        });
        incoming.on('error', reject);
      },
    );
    const timer = setTimeout(() => outgoing.destroy(new Error('timed out')), timeoutMs);
    outgoing.on('close', () => clearTimeout(timer));
    outgoing.on('error', reject);
    outgoing.end(data);
  });
}

const RELOAD_TIMEOUT_MS = 120_000;
/** An exact scan of a node's shards for a few hundred queries takes seconds to minutes at 1M tiles. */
const EXACT_TIMEOUT_MS = 600_000;

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
