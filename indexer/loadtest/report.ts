/**
 * The loadtest report: the figures as JSON, a table for the terminal, and one self-contained HTML
 * file with latency-vs-load and throughput-vs-load plots per scenario, drawn by uPlot (its script
 * and stylesheet inlined from node_modules: nothing is fetched when the file is opened).
 *
 * A report names the deployment by origin and path only: never a key, never URL credentials.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { RecallResult } from './recall.js';
import { failures, type ClosedLoopResult, type OpenLoopResult } from './runner.js';
import type { ScenarioName } from './scenarios.js';

export interface RateRun extends OpenLoopResult {
  /** As asked: `75%` of the maximum, or `40/s`. */
  label: string;
}

export interface ScenarioReport {
  name: ScenarioName;
  description: string;
  max: ClosedLoopResult;
  rates: RateRun[];
  recall: RecallResult;
}

export interface LoadtestReport {
  tool: 'tessera loadtest';
  /** Origin and path of the deployment (no credentials). */
  target: string;
  startedAt: string;
  machine: { cpu: string; cores: number; node: string };
  settings: { durationSeconds: number; connections: number; rates: string[]; k: number; ef: number | null; recallQueries: number };
  scenarios: ScenarioReport[];
  skipped: Array<{ name: ScenarioName; reason: string }>;
}

/** The deployment's URL as a report may show it: no user, password, query or fragment. */
export function displayTarget(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

const fixed = (value: number, digits = 2) => value.toFixed(digits);
const statusText = (statuses: Record<string, number>) => {
  const failed = Object.entries(failures(statuses));
  return failed.length === 0 ? '0' : failed.map(([status, count]) => `${count}×${status}`).join(' ');
};

/** The report as the terminal shows it. */
export function reportTable(report: LoadtestReport): string {
  const lines = [`tessera loadtest ${report.target} (${report.machine.cpu}, ${report.machine.cores} cores, Node ${report.machine.node}; the generator shares this machine's cores)`];
  for (const scenario of report.scenarios) {
    const { max, recall } = scenario;
    lines.push(
      '',
      `${scenario.name}: ${scenario.description}`,
      `  max ${fixed(max.achievedRps, 0)} requests/s (closed loop, ${max.connections} connections, ${max.seconds} s): p50 ${fixed(max.p50, 0)} ms, p99 ${fixed(max.p99, 0)} ms, failed ${statusText(max.statuses)}, partial ${max.partial}`,
      '  load     offered/s  achieved/s  p50 ms  p95 ms  p99 ms  failed        partial',
    );
    for (const run of scenario.rates) {
      lines.push(`  ${run.label.padEnd(7)}  ${fixed(run.offeredRps, 0).padStart(9)}  ${fixed(run.achievedRps, 0).padStart(10)}  ${fixed(run.p50).padStart(6)}  ${fixed(run.p95).padStart(6)}  ${fixed(run.p99).padStart(6)}  ${statusText(run.statuses).padEnd(12)}  ${String(run.partial).padStart(7)}`);
    }
    lines.push(`  recall@${recall.k} served vs exact: ${recall.recall === null ? `not measured (${recall.reason ?? 'no queries'})` : `${fixed(recall.recall, 3)} over ${recall.queries} queries`}`);
  }
  for (const { name, reason } of report.skipped) lines.push('', `${name}: skipped: ${reason}`);
  return `${lines.join('\n')}\n`;
}

const require = createRequire(import.meta.url);

/** The report as one HTML file that opens offline. */
export function reportHtml(report: LoadtestReport): string {
  const script = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const style = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  // JSON inside <script>: "<" escaped so that no value can close the element.
  const data = JSON.stringify(report).replace(/</g, '\\u003c');
  const escape = (text: string) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
  const sections = report.scenarios
    .map((scenario, i) => {
      const rows = scenario.rates
        .map((run) => `<tr><td>${escape(run.label)}</td><td>${fixed(run.offeredRps, 0)}</td><td>${fixed(run.achievedRps, 0)}</td><td>${fixed(run.p50)}</td><td>${fixed(run.p95)}</td><td>${fixed(run.p99)}</td><td>${escape(statusText(run.statuses))}</td><td>${run.partial}</td></tr>`)
        .join('');
      const recall = scenario.recall.recall === null ? `not measured (${escape(scenario.recall.reason ?? 'no queries')})` : `${fixed(scenario.recall.recall, 3)} over ${scenario.recall.queries} queries`;
      return `<section><h2>${escape(scenario.name)}: ${escape(scenario.description)}</h2>
<p>Maximum ${fixed(scenario.max.achievedRps, 0)} requests/s (closed loop, ${scenario.max.connections} connections); recall@${scenario.recall.k} served vs exact: ${recall}.</p>
<div class="plots"><div id="latency-${i}" class="plot"></div><div id="throughput-${i}" class="plot"></div></div>
<table><thead><tr><th>load</th><th>offered/s</th><th>achieved/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>failed</th><th>partial</th></tr></thead><tbody>${rows}</tbody></table></section>`;
    })
    .join('\n');
  const skipped = report.skipped.map(({ name, reason }) => `<li>${escape(name)}: ${escape(reason)}</li>`).join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tessera loadtest ${escape(report.target)}</title>
<style>${style}
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
.plots { display: flex; flex-wrap: wrap; gap: 24px; }
table { border-collapse: collapse; margin: 12px 0 32px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
</style></head>
<body><h1>tessera loadtest</h1>
<p>${escape(report.target)}, ${escape(report.startedAt)}; ${escape(report.machine.cpu)}, ${report.machine.cores} cores, Node ${escape(report.machine.node)}. Open-loop latency counts from each request's due time.</p>
${sections}
${skipped ? `<h2>Skipped</h2><ul>${skipped}</ul>` : ''}
<script id="report" type="application/json">${data}</script>
<script>${script}</script>
<script>
const report = JSON.parse(document.getElementById('report').textContent);
const axes = (y) => [{ label: 'offered requests/s' }, { label: y }];
report.scenarios.forEach((scenario, i) => {
  const runs = [...scenario.rates].sort((a, b) => a.offeredRps - b.offeredRps);
  const x = runs.map((run) => run.offeredRps);
  const points = { show: true, size: 6 };
  new uPlot({ title: scenario.name + ': latency vs load', width: 560, height: 300, scales: { x: { time: false } }, axes: axes('ms'),
    series: [{}, { label: 'p50', stroke: '#1b7837', points }, { label: 'p95', stroke: '#f1a340', points }, { label: 'p99', stroke: '#b2182b', points }] },
    [x, runs.map((run) => run.p50), runs.map((run) => run.p95), runs.map((run) => run.p99)], document.getElementById('latency-' + i));
  new uPlot({ title: scenario.name + ': throughput vs load', width: 560, height: 300, scales: { x: { time: false } }, axes: axes('requests/s'),
    series: [{}, { label: 'achieved', stroke: '#2166ac', points }, { label: 'offered', stroke: '#999', dash: [4, 4] }, { label: 'closed-loop max', stroke: '#762a83', dash: [2, 6] }] },
    [x, runs.map((run) => run.achievedRps), x, runs.map(() => scenario.max.achievedRps)], document.getElementById('throughput-' + i));
});
</script></body></html>
`;
}
