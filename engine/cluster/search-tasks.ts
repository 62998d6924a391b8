/**
 * What a search thread does with a task: search the parts of the group's shards it holds (some
 * segments, perhaps a tail; see planParts). Every part is held by exactly one thread of a node,
 * so a graph is in memory once however many threads search. Tasks come in batches
 * (SearchQueue); answers go back by structured clone.
 */
import { TesseraError, type ErrorCode } from '../errors.js';
import { IndexStore, mergeHits, parseFilter, type PartSelection, type QueryExclusions, type SearchOptions, type TileHit } from '../index/index.js';
import type { ScopedSearch } from './shard-group.js';

/** What one request asks of a search thread. */
export type SearchJob = { op: 'search'; queries: Float32Array; dimension: number; request: ScopedSearch };

export type SearchTask =
  | { op: 'ping'; delayMs: number }
  /** Jobs in one hand-off (see SearchQueue), each with its deadline (epoch ms) or null. */
  | { op: 'batch'; jobs: SearchJob[]; deadlines: Array<number | null> }
  /** Exact top k of every query over the parts held (ground truth for recall): one scan for all of them. */
  | { op: 'exact'; queries: Float32Array; dimension: number; request: ScopedSearch; perQuery: QueryExclusions[] };

/** One job's answer in a batch: its value, or its error (code null: not a TesseraError). */
export type TaskOutcome = { value: unknown } | { error: { code: ErrorCode | null; message: string; transient: boolean } };

export interface SearchTasks {
  run(task: SearchTask): unknown;
  /** Closes the thread's store (a search thread never does: it ends with its thread). */
  close(): Promise<void>;
}

/** Opens the thread's parts: `parts` as [shard, selection] pairs (what planParts gave this thread). */
export function openSearchTasks(indexDir: string, shards: number[], parts: Array<[number, PartSelection]>): SearchTasks {
  const store = IndexStore.open(indexDir, { readOnly: true, shards, parts: new Map(parts) });
  for (const shard of store.shards) shard.preload();
  return {
    async run(task: SearchTask) {
      if (task.op === 'ping') {
        // Pings linger a moment so that concurrent pings land on different threads.
        await new Promise((resolve) => setTimeout(resolve, task.delayMs));
        return { tiles: store.shards.reduce((sum, shard) => sum + shard.tileCount, 0) };
      }
      if (task.op === 'exact') return exactAll(store, task.queries, task.dimension, task.request, task.perQuery);
      return task.jobs.map((job, i): TaskOutcome => {
        const deadline = task.deadlines[i] ?? null;
        // A job whose caller has given up is skipped: its answer would be dropped anyway.
        if (deadline !== null && Date.now() > deadline) return { error: { code: 'SHARD_UNAVAILABLE', message: 'missed the deadline', transient: true } };
        try {
          return { value: searchAll(store, job.queries, job.dimension, job.request) };
        } catch (error) {
          return { error: error instanceof TesseraError ? { code: error.code, message: error.message, transient: error.transient } : { code: null, message: (error as Error).message, transient: false } };
        }
      });
    },
    close: () => store.close(),
  };
}

/** Each query's hits across the thread's parts, and the time each shard took (ms, all queries). */
function searchAll(store: IndexStore, flat: Float32Array, dimension: number, request: ScopedSearch): { hits: TileHit[][]; shardMs: Record<number, number> } {
  const options = searchOptionsOf(request);
  const shardMs: Record<number, number> = {};
  const hits: TileHit[][] = [];
  for (let offset = 0; offset < flat.length; offset += dimension) {
    const query = flat.subarray(offset, offset + dimension);
    const perShard = store.shards.map((shard) => {
      const started = performance.now();
      const shardHits = shard.search(query, options);
      shardMs[shard.index] = (shardMs[shard.index] ?? 0) + performance.now() - started;
      return shardHits;
    });
    hits.push(mergeHits(perShard, request.k));
  }
  return { hits, shardMs };
}

/** Each query's exact hits across the thread's parts, and the time each shard's scan took (ms). */
function exactAll(store: IndexStore, flat: Float32Array, dimension: number, request: ScopedSearch, perQuery: QueryExclusions[]): { hits: TileHit[][]; shardMs: Record<number, number> } {
  const options = searchOptionsOf(request);
  const shardMs: Record<number, number> = {};
  const perShard = store.shards.map((shard) => {
    const started = performance.now();
    const hits = shard.exactSearch(flat, options, perQuery);
    shardMs[shard.index] = performance.now() - started;
    return hits;
  });
  return { hits: Array.from({ length: flat.length / dimension }, (_, q) => mergeHits(perShard.map((lists) => lists[q] ?? []), request.k)), shardMs };
}

function searchOptionsOf(request: ScopedSearch): SearchOptions {
  return {
    k: request.k,
    ...(request.ef === undefined ? {} : { ef: request.ef }),
    filter: parseFilter(request.filter),
    excludeSlides: new Set(request.excludeSlides ?? []),
    excludePatients: new Set(request.excludePatients ?? []),
    ...(request.datasets ? { datasets: new Set(request.datasets) } : {}),
  };
}
