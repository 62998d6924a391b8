/**
 * RemoteShardGroup: the shards of one shard node, over HTTP, with replicas. A call goes to the
 * node, then to each replica in turn, until one answers before the deadline; only then is the
 * group reported missing.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { ERROR_CODES, TesseraError, type ErrorCode } from '../errors.js';
import type { RgbImage } from '../slide/index.js';
import type { QueryExclusions, SlidePageQuery } from '../index/index.js';
import type { BaseRect, GroupHealth, GroupSearchResult, GroupSlidePage, ScopedSearch, ShardGroup, SlideSummary, SlideVectors, StoredTileSearch } from './shard-group.js';
import { CLUSTER_TOKEN_HEADER, decodeFramed, encodeSearch, hitsFromWire, type WireExactRequest, type WireHits, REGION_HEIGHT_HEADER, REGION_WIDTH_HEADER, SEARCH_CONTENT_TYPE, vectorsFromBytes } from './wire.js';

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
    return this.send('/internal/v1/search', { contentType: SEARCH_CONTENT_TYPE, data: encodeSearch(queries, request) }, deadline, (answer) => hitsFromWire(parseJson(answer)));
  }

  async exactSearch(queries: Float32Array[], request: ScopedSearch, perQuery: QueryExclusions[], deadline?: number): Promise<GroupSearchResult> {
    const exact: WireExactRequest = { ...request, perQuery };
    return this.send<GroupSearchResult>('/internal/v1/exact-search', { contentType: SEARCH_CONTENT_TYPE, data: encodeSearch(queries, exact) }, deadline ?? Date.now() + EXACT_TIMEOUT_MS);
  }

  /** Vectors come back as float32 bytes; 204 when there are none (null). */
  async storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null> {
    return this.send('/internal/v1/vectors', json({ slideId, selection, datasets }), undefined, (answer) => {
      if (answer.status === 204) return null;
      const vectors = vectorsFromBytes(answer.bytes, this.dimension);
      if (!vectors) throw new Error(`vectors of ${answer.bytes.length} bytes are not ${this.dimension}-d float32`);
      return vectors;
    });
  }

  /** The record comes back framed before the vectors (wire.ts): `{ slide, vectors: boolean }`, then the float32 bytes. */
  async slideVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<SlideVectors | undefined> {
    return this.send('/internal/v1/slide-vectors', json({ slideId, selection, datasets }), undefined, (answer) => {
      const framed = decodeFramed(answer.bytes, this.dimension);
      if ('problem' in framed) throw new Error(`the slide's vectors: ${framed.problem}`);
      const head = framed.head as { slide: SlideSummary | null; vectors: boolean };
      return head.slide ? { slide: head.slide, vectors: head.vectors ? framed.vectors : null } : undefined;
    });
  }

  /** Framed as slideVectors' answer, with the group's hits (as rows) in the head. */
  async searchFromStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<StoredTileSearch | undefined> {
    return this.send('/internal/v1/stored-tile-search', json({ slideId, rect, request }), undefined, (answer) => {
      const framed = decodeFramed(answer.bytes, this.dimension);
      if ('problem' in framed) throw new Error(`the tile's search: ${framed.problem}`);
      const head = framed.head as { slide: SlideSummary | null; hits: WireHits | null };
      if (!head.slide) return undefined;
      return head.hits ? { slide: head.slide, vectors: framed.vectors, result: hitsFromWire(head.hits) } : { slide: head.slide, vectors: null, result: null };
    });
  }

  async slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
    return (await this.post<{ slide: SlideSummary | null }>('/internal/v1/slide', { slideId, datasets })).slide ?? undefined;
  }

  async slidePage(query: SlidePageQuery): Promise<GroupSlidePage> {
    return this.post<GroupSlidePage>('/internal/v1/slide-page', query);
  }

  async slideTotals(datasets: string[] | null): Promise<{ slides: number; tiles: number }> {
    return this.post<{ slides: number; tiles: number }>('/internal/v1/slide-totals', { datasets });
  }

  /** The node reads and reduces the region; its raw RGB comes back with the size in headers. */
  async readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage> {
    return this.send('/internal/v1/region', json({ slideId, rect, datasets }), undefined, (answer) => {
      const width = Number(answer.headers[REGION_WIDTH_HEADER]);
      const height = Number(answer.headers[REGION_HEIGHT_HEADER]);
      if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || answer.bytes.length !== width * height * 3) throw new Error(`region pixels of ${answer.bytes.length} bytes do not match ${width}×${height} RGB`);
      return { width, height, data: answer.bytes };
    });
  }

  async health(): Promise<GroupHealth> {
    return { ...(await call<GroupHealth>(this.urls, '/internal/v1/health', undefined, Date.now() + (this.options.timeoutMs ?? 2000), this.options.clusterToken)), location: this.location };
  }

  /** Reloads the node and each of its replicas (a reload of 1M tiles takes tens of seconds). */
  async reload(): Promise<GroupHealth> {
    const answers = await Promise.all(this.urls.map((url) => call<GroupHealth>([url], '/internal/v1/reload', json({}), Date.now() + RELOAD_TIMEOUT_MS, this.options.clusterToken)));
    return { ...(answers[0] as GroupHealth), location: this.location };
  }

  async close(): Promise<void> {}

  private post<T>(path: string, body: unknown, deadline?: number): Promise<T> {
    return this.send<T>(path, json(body), deadline);
  }

  private send<T>(path: string, body: Outgoing, deadline?: number, read?: (answer: Answer) => T): Promise<T> {
    return call<T>(this.urls, path, body, deadline ?? Date.now() + (this.options.timeoutMs ?? 2000), this.options.clusterToken, read);
  }
}

/** A request body: JSON, or bytes of a binary content type (see wire.ts). */
type Outgoing = { contentType: string; data: Buffer } | undefined;

/** A node's 2xx answer, as bytes. */
interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  bytes: Buffer;
}

const json = (body: unknown): Outgoing => (body === undefined ? undefined : { contentType: 'application/json', data: Buffer.from(JSON.stringify(body)) });
const parseJson = <T>(answer: Answer): T => JSON.parse(answer.bytes.toString('utf8')) as T;

/**
 * Calls each URL in turn until one answers 2xx before the deadline, and reads the answer with
 * `read`. A 4xx from a node is the caller's fault and is passed on as is (as a TesseraError with
 * the node's code); network errors, timeouts, 5xx and answers `read` cannot read move on to the
 * next replica. A 401 is this router's fault (its cluster token is not the node's): the next
 * replica is tried, and when none answers the error says so rather than "unavailable".
 * @throws TesseraError SHARD_UNAVAILABLE (transient), CLUSTER_TOKEN_REJECTED, or the node's own code
 */
async function call<T>(urls: string[], path: string, body: Outgoing, deadline: number, token: string | undefined, read: (answer: Answer) => T = parseJson): Promise<T> {
  const failures: string[] = [];
  const tokenRefusedBy: string[] = [];
  for (const url of urls) {
    const remainingMs = deadline - Date.now();
    if (remainingMs <= 0) {
      failures.push(`${url}: deadline passed`);
      break;
    }
    try {
      const answer = await request(`${url}${path}`, body, remainingMs, token);
      if (answer.status >= 200 && answer.status < 300) {
        try {
          return read(answer);
        } catch (error) {
          failures.push(`${url}: the answer could not be read: ${(error as Error).message}`);
          continue;
        }
      }
      if (answer.status === 401) {
        tokenRefusedBy.push(url);
        failures.push(`${url}: HTTP 401`);
        continue;
      }
      const refusal = answer.status >= 400 && answer.status < 500 ? errorOf(answer) : null;
      if (refusal && isErrorCode(refusal.error)) throw new TesseraError(refusal.error, refusal.message ?? `${url} refused the request`);
      failures.push(`${url}: HTTP ${answer.status}`);
    } catch (error) {
      if (error instanceof TesseraError) throw error;
      failures.push(`${url}: ${(error as Error).message}`);
    }
  }
  if (tokenRefusedBy.length > 0) {
    const how = token ? "refused this router's cluster token" : 'requires a cluster token and this router has none';
    throw new TesseraError('CLUSTER_TOKEN_REJECTED', `shard node ${tokenRefusedBy.join(', ')} ${how}: give the router the nodes' TESSERA_CLUSTER_TOKEN (${failures.join('; ')})`);
  }
  throw new TesseraError('SHARD_UNAVAILABLE', `no node answered ${path}: ${failures.join('; ')}`, { transient: true });
}

function errorOf(answer: Answer): { error?: string; message?: string } | null {
  try {
    return parseJson(answer);
  } catch {
    return null;
  }
}

/**
 * One request over a kept-alive connection. node:http rather than fetch: fetch costs about
 * 3 ms a call here against 0.3 ms, and a router makes several calls per query.
 */
function request(url: string, body: Outgoing, timeoutMs: number, token: string | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      url,
      {
        method: body ? 'POST' : 'GET',
        agent: AGENT,
        headers: { ...(body ? { 'content-type': body.contentType, 'content-length': body.data.length } : {}), ...(token ? { [CLUSTER_TOKEN_HEADER]: token } : {}) },
      },
      (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('end', () => resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, bytes: Buffer.concat(chunks) }));
        incoming.on('error', reject);
      },
    );
    const timer = setTimeout(() => outgoing.destroy(new Error('timed out')), timeoutMs);
    outgoing.on('close', () => clearTimeout(timer));
    outgoing.on('error', reject);
    outgoing.end(body?.data);
  });
}

const RELOAD_TIMEOUT_MS = 120_000;
/** An exact scan of a node's shards for a few hundred queries takes seconds to minutes at 1M tiles. */
const EXACT_TIMEOUT_MS = 600_000;

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && (ERROR_CODES as readonly string[]).includes(value);
}
