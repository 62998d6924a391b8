/**
 * Prometheus metrics (prom-client): request rate and latency per route, search latency per shard,
 * embedding latency, errors by code. One registry per app, so tests can start several apps.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 'tessera_http_requests_total', help: 'HTTP requests by route, method and status', labelNames: ['route', 'method', 'status'], registers: [this.registry] });
  readonly requestSeconds = new Histogram({ name: 'tessera_http_request_duration_seconds', help: 'HTTP request latency by route', labelNames: ['route', 'method'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly shardSearchSeconds = new Histogram({ name: 'tessera_shard_search_seconds', help: 'Search time inside each shard, per request', labelNames: ['shard'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly embedSeconds = new Histogram({ name: 'tessera_embed_seconds', help: 'Query embedding latency (decode, preprocess, inference)', buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly errors = new Counter({ name: 'tessera_errors_total', help: 'Error answers by code', labelNames: ['code'], registers: [this.registry] });
  readonly partialResults = new Counter({ name: 'tessera_partial_results_total', help: 'Searches answered without every shard', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tessera_' });
  }

  observeShards(shardMs: Record<number, number>): void {
    for (const [shard, ms] of Object.entries(shardMs)) this.shardSearchSeconds.observe({ shard }, ms / 1000);
  }
}
