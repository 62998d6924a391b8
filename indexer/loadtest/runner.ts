/**
 * The load runner of `tessera loadtest` and bench:load: a closed loop for the maximum throughput
 * (autocannon: `connections` requests kept in flight) and an open loop at a fixed rate (its own:
 * each request due at its time, latency counted from then). Counts answers by HTTP status and
 * search replies that came back without every shard (`coverage`).
 *
 * It knows HTTP and timing only: what to send comes from the scenarios; it never logs a header
 * (the API key travels in one).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import autocannon from 'autocannon';

/** A deployment's base URL and the headers every request carries (the API key). */
export interface Target {
  url: string;
  headers: Record<string, string>;
}

/** One kind of request: POST `path` with a fresh JSON body each time. */
export interface LoadRequest {
  path: string;
  body: () => string;
}

/** Answers by outcome: HTTP status as text (`200`, `503`…), `network` or `timeout`. */
export type StatusCounts = Record<string, number>;

export interface ClosedLoopResult {
  connections: number;
  seconds: number;
  /** Requests answered a second (any status). */
  achievedRps: number;
  /** Latency of 2xx answers, ms (autocannon's histogram: 1 ms resolution). */
  p50: number;
  p99: number;
  requests: number;
  statuses: StatusCounts;
  /** 2xx search replies whose coverage was short of every shard. */
  partial: number;
}

export interface OpenLoopResult {
  /** Requests sent a second, as offered. */
  offeredRps: number;
  seconds: number;
  /** Requests answered a second over the run, waiting for the last answer. */
  achievedRps: number;
  /** Latency from each request's due time, ms, every answer counted. */
  p50: number;
  p95: number;
  p99: number;
  requests: number;
  statuses: StatusCounts;
  partial: number;
}

const MAX_SOCKETS = 128;
/** Per-request time limit: a request unanswered by then counts as `timeout`. */
const REQUEST_TIMEOUT_MS = 10_000;
const COVERAGE = /"coverage":\{"answered":(\d+),"total":(\d+)/;

/** Whether a reply body says some shards did not answer. */
function isPartial(body: string): boolean {
  const match = COVERAGE.exec(body);
  return match !== null && Number(match[1]) < Number(match[2]);
}

/** Closed loop: `connections` requests always in flight for `seconds` (the maximum throughput). */
export async function closedLoop(target: Target, load: LoadRequest, options: { seconds: number; connections: number }): Promise<ClosedLoopResult> {
  let partial = 0;
  const url = endpoint(target, load.path);
  const result = await autocannon({
    url: url.origin,
    connections: options.connections,
    duration: options.seconds,
    timeout: REQUEST_TIMEOUT_MS / 1000,
    requests: [
      {
        method: 'POST',
        path: url.pathname + url.search,
        headers: { ...target.headers, 'content-type': 'application/json' },
        setupRequest: (request: autocannon.Request) => ({ ...request, body: load.body() }),
        onResponse: (status: number, body: string) => {
          if (status >= 200 && status < 300 && isPartial(body)) partial++;
        },
      },
    ],
  } as autocannon.Options);
  const statuses: StatusCounts = {};
  for (const [status, stats] of Object.entries(result.statusCodeStats ?? {})) statuses[status] = stats?.count ?? 0;
  if (result.errors - result.timeouts > 0) statuses.network = result.errors - result.timeouts;
  if (result.timeouts > 0) statuses.timeout = result.timeouts;
  const requests = Object.values(statuses).reduce((sum, count) => sum + count, 0);
  return { connections: options.connections, seconds: options.seconds, achievedRps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, requests, statuses, partial };
}

/**
 * Open loop at a fixed rate: request i is due at start + i / rate and its latency runs from that
 * moment, so time spent waiting behind a slow request counts (no coordinated omission).
 * autocannon's own fixed rate sends each connection's quota for a second in a burst at the start
 * of the second, which measures bursts, not a steady rate.
 */
export async function openLoop(target: Target, load: LoadRequest, options: { rate: number; seconds: number }): Promise<OpenLoopResult> {
  const total = Math.max(1, Math.round(options.rate * options.seconds));
  const url = endpoint(target, load.path);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  // A server takes 256 connections per client address by default (more get 429), and an
  // overloaded one counts a closed connection only when its event loop gets to it: at most 128
  // open here, so overload queues in this agent (latency still counted from each due time).
  const agent = url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }) : new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS });
  const latencies: number[] = [];
  const statuses: StatusCounts = {};
  let partial = 0;
  const count = (outcome: string) => (statuses[outcome] = (statuses[outcome] ?? 0) + 1);
  const pending: Array<Promise<void>> = [];
  const started = performance.now() + 20;
  const dueAt = (i: number) => started + (i * 1000) / options.rate;
  const fire = (due: number) =>
    new Promise<void>((resolve) => {
      const data = Buffer.from(load.body());
      const outgoing = send(url, { method: 'POST', agent, headers: { ...target.headers, 'content-type': 'application/json', 'content-length': data.length } }, (incoming: IncomingMessage) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('end', () => {
          latencies.push(performance.now() - due);
          const status = incoming.statusCode ?? 0;
          count(String(status));
          if (status >= 200 && status < 300 && isPartial(Buffer.concat(chunks).toString('utf8'))) partial++;
          resolve();
        });
        incoming.on('error', () => {
          count('network');
          resolve();
        });
      });
      outgoing.setTimeout(REQUEST_TIMEOUT_MS, () => outgoing.destroy(new TimeoutError()));
      outgoing.on('error', (error) => {
        count(error instanceof TimeoutError ? 'timeout' : 'network');
        resolve();
      });
      outgoing.end(data);
    });
  // Requests go out on timer ticks, every one due by then at once. Spinning until each due time
  // instead would burn a core that the server may share with this generator.
  for (let i = 0; i < total; ) {
    const now = performance.now();
    for (; i < total && dueAt(i) <= now; i++) pending.push(fire(dueAt(i)));
    if (i < total) await new Promise((resolve) => setTimeout(resolve, Math.max(0, dueAt(i) - performance.now())));
  }
  await Promise.all(pending);
  const elapsedSeconds = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    offeredRps: options.rate,
    seconds: options.seconds,
    achievedRps: total / elapsedSeconds,
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
    p99: percentile(latencies, 0.99),
    requests: total,
    statuses,
    partial,
  };
}

/** The value at fraction `p` of ascending `sorted` (nearest rank); 0 when empty. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/** Answers that were not 2xx, by outcome. */
export function failures(statuses: StatusCounts): StatusCounts {
  return Object.fromEntries(Object.entries(statuses).filter(([status]) => !/^2\d\d$/.test(status)));
}

class TimeoutError extends Error {
  constructor() {
    super('timed out');
  }
}

/** `path` under the deployment's URL, which may itself have a path (a proxy prefix). */
export function endpoint(target: Target, path: string): URL {
  return new URL(path.replace(/^\/+/, ''), target.url.endsWith('/') ? target.url : `${target.url}/`);
}
