/**
 * `tessera loadtest` as a library: scenarios learnt from a deployment, a closed-loop maximum, open
 * loops at fixed rates, served-against-exact recall, and the report. bench:load drives its
 * deployments through it.
 */
import { cpus } from 'node:os';
import { TesseraError } from '../../engine/index.js';
import { measureRecall } from './recall.js';
import { displayTarget, type LoadtestReport, type RateRun, type ScenarioReport } from './report.js';
import { closedLoop, openLoop, type Target } from './runner.js';
import { buildScenarios, Deployment, type ScenarioName, type ScenarioOptions } from './scenarios.js';

export { closedLoop, openLoop, failures, percentile, type ClosedLoopResult, type LoadRequest, type OpenLoopResult, type StatusCounts, type Target } from './runner.js';
export { reportHtml, reportTable, displayTarget, type LoadtestReport, type RateRun, type ScenarioReport } from './report.js';
export { SCENARIO_NAMES, Deployment, derivedFilter, type Scenario, type ScenarioName } from './scenarios.js';
export { measureRecall, type RecallResult } from './recall.js';

/** A fixed rate: a fraction of the measured maximum, or requests a second. */
export type RateSpec = { fraction: number } | { perSecond: number };

export interface LoadtestOptions extends Omit<ScenarioOptions, 'seed' | 'references'> {
  url: string;
  apiKey?: string;
  scenarios: ScenarioName[];
  durationSeconds: number;
  connections: number;
  rates: RateSpec[];
  /** Recall queries per scenario (0: none). */
  recallQueries: number;
  /** Closed-loop warm-up before the maximum is measured, seconds (default: a quarter of the duration, 1 to 2 s). */
  warmupSeconds?: number;
  seed?: number;
  log?: (line: string) => void;
}

/**
 * Parses `--rates`: a comma list of `N%` (of the measured maximum) or `N` / `N/s` (requests a
 * second). @throws TesseraError INVALID_ARGUMENT naming the bad entry
 */
export function parseRates(text: string): RateSpec[] {
  return text.split(',').map((entry) => {
    const trimmed = entry.trim();
    const match = /^(\d+(?:\.\d+)?)(%|\/s)?$/.exec(trimmed);
    const value = match ? Number(match[1]) : Number.NaN;
    if (!match || !(value > 0) || (match[2] === '%' && value > 1000)) throw new TesseraError('INVALID_ARGUMENT', `--rates: "${trimmed}" is neither a percentage of the maximum (75%) nor requests a second (40 or 40/s)`);
    return match[2] === '%' ? { fraction: value / 100 } : { perSecond: value };
  });
}

export function rateLabel(rate: RateSpec): string {
  return 'fraction' in rate ? `${Math.round(rate.fraction * 1000) / 10}%` : `${rate.perSecond}/s`;
}

/** Runs every scenario against the deployment and returns the report (writing nothing). */
export async function runLoadtest(options: LoadtestOptions): Promise<LoadtestReport> {
  const log = options.log ?? (() => undefined);
  const target: Target = { url: options.url, headers: options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {} };
  const deployment = new Deployment(target);
  const startedAt = new Date().toISOString();
  log(`discovering scenarios on ${displayTarget(options.url)}…`);
  const { scenarios, skipped } = await buildScenarios(deployment, options.scenarios, {
    k: options.k,
    ...(options.ef === undefined ? {} : { ef: options.ef }),
    ...(options.images ? { images: options.images } : {}),
    ...(options.filter ? { filter: options.filter } : {}),
    references: Math.max(200, options.recallQueries),
    seed: options.seed ?? 99,
  });
  const reports: ScenarioReport[] = [];
  for (const scenario of scenarios) {
    log(`${scenario.name}: ${scenario.description}`);
    const load = { path: scenario.path, body: scenario.body };
    const warmup = options.warmupSeconds ?? Math.min(2, Math.max(1, Math.round(options.durationSeconds / 4)));
    if (warmup > 0) await closedLoop(target, load, { seconds: warmup, connections: options.connections });
    const max = await closedLoop(target, load, { seconds: options.durationSeconds, connections: options.connections });
    log(`  max ${max.achievedRps.toFixed(0)} requests/s`);
    const rates: RateRun[] = [];
    for (const rate of options.rates) {
      const perSecond = 'fraction' in rate ? Math.max(1, Math.round(max.achievedRps * rate.fraction)) : rate.perSecond;
      const run = await openLoop(target, load, { rate: perSecond, seconds: options.durationSeconds });
      rates.push({ label: rateLabel(rate), ...run });
      log(`  ${rateLabel(rate)}: ${perSecond} requests/s offered, p99 ${run.p99.toFixed(2)} ms`);
    }
    const recall = options.recallQueries > 0 ? await measureRecall(deployment, scenario, { k: options.k, maxQueries: options.recallQueries, ...(options.ef === undefined ? {} : { ef: options.ef }) }) : { recall: null, queries: 0, k: options.k, reason: 'no recall queries asked for' };
    reports.push({ name: scenario.name, description: scenario.description, max, rates, recall });
  }
  return {
    tool: 'tessera loadtest',
    target: displayTarget(options.url),
    startedAt,
    machine: { cpu: cpus()[0]?.model ?? 'unknown CPU', cores: cpus().length, node: process.version },
    settings: { durationSeconds: options.durationSeconds, connections: options.connections, rates: options.rates.map(rateLabel), k: options.k, ef: options.ef ?? null, recallQueries: options.recallQueries },
    scenarios: reports,
    skipped,
  };
}
