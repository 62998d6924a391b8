/**
 * Recall@k of what a deployment serves: each recall query is asked as users ask it (the served,
 * approximate search) and through the admin exact-search route (a full scan, batched over many
 * queries per request), and the served tiles found among the exact ones are counted.
 */
import type { Deployment, RegionQuery, Scenario } from './scenarios.js';
import { refusal } from './scenarios.js';

export interface RecallResult {
  /** Found ÷ expected over every query; null when it could not be measured (see `reason`). */
  recall: number | null;
  queries: number;
  k: number;
  reason?: string;
}

interface TileHitJson {
  slideId: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Exact queries per request: one scan of every shard serves them all; 32 keep a request well
 * within its 125 s deadline at 1M 384-d tiles on two loaded cores (about 1 s a query there).
 */
const EXACT_BATCH = 32;

const keyOf = (hit: TileHitJson) => `${hit.slideId}@${hit.x},${hit.y},${hit.width}x${hit.height}`;

/** Served against exact recall@k for the scenario's recall queries (at the scenario's ef, if any). */
export async function measureRecall(deployment: Deployment, scenario: Scenario, options: { k: number; ef?: number; maxQueries: number }): Promise<RecallResult> {
  const k = options.k;
  if (!scenario.recall) return { recall: null, queries: 0, k, reason: 'recall applies to region searches' };
  const queries = scenario.recall.queries.slice(0, options.maxQueries);
  const filter = scenario.recall.filter;
  const exact: TileHitJson[][] = [];
  for (let offset = 0; offset < queries.length; offset += EXACT_BATCH) {
    const reply = await deployment.post('/v1/admin/exact-search', { queries: queries.slice(offset, offset + EXACT_BATCH), k, ...(filter ? { filter } : {}) });
    if (reply.status !== 200) return { recall: null, queries: 0, k, reason: `exact search was refused (${refusal(reply)})${reply.status === 403 ? ': recall needs an admin key' : ''}` };
    for (const result of (reply.body as { results: Array<{ hits: TileHitJson[] }> }).results) exact.push(result.hits);
  }
  let found = 0;
  let expected = 0;
  for (const [i, query] of queries.entries()) {
    const served = await servedHits(deployment, query, { k, ...(options.ef === undefined ? {} : { ef: options.ef }), ...(filter ? { filter } : {}) });
    if (typeof served === 'string') return { recall: null, queries: 0, k, reason: served };
    const truth = new Set((exact[i] ?? []).map(keyOf));
    expected += truth.size;
    for (const hit of served) if (truth.has(keyOf(hit))) found++;
  }
  return { recall: expected === 0 ? null : found / expected, queries: queries.length, k, ...(expected === 0 ? { reason: 'exact search found no tiles for these queries' } : {}) };
}

async function servedHits(deployment: Deployment, query: RegionQuery, options: Record<string, unknown>): Promise<TileHitJson[] | string> {
  const reply = await deployment.post('/v1/search/region', { ...query, ...options });
  if (reply.status !== 200) return `the served search was refused (${refusal(reply)})`;
  return (reply.body as { results: TileHitJson[] }).results;
}
