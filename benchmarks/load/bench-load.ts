/**
 * npm run bench:load — the query API under load on 127.0.0.1, driven by `tessera loadtest`'s
 * runner (indexer/loadtest): this script only starts deployments and compares their figures.
 *
 * Index: synthetic 384-d tiles in 2 shards (benchmarks/load/synthetic-index.ts; BENCH_TILES,
 * default 1,100,000: bench:index's cached 1M graph plus 100k), served with --no-model;
 * uploaded-image search runs on the bundled sample index with the real model.
 * Deployments: a single node; a router + 2 shard nodes, during which the node of shard 1 is killed
 * (SIGKILL) and restarted under load; the sample index with its model. Each scenario: maximum
 * throughput (closed loop), then 25/50/75/90% of it sent open loop (latency from each request's
 * due time), and recall@10 of served results against the admin exact-search route (a full scan).
 * Also the search threads alone (no HTTP) on the same cores, the ceiling the API is measured
 * against, and each node's memory.
 * The p50 a router adds is compared at a light load both sustain (BENCH_LIGHT_RATE, 20 requests/s).
 * Env: BENCH_SECONDS (per rate, default 8); BENCH_TILES (a multiple of 11,000); BENCH_SCENARIOS
 * (comma list of single, cluster, upload; default all). Writes benchmarks/results/load-<time>.json
 * and each loadtest's HTML report beside it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { LocalShardGroup } from '../../engine/cluster/index.js';
import { failures, openLoop, reportHtml, reportTable, runLoadtest, type LoadtestOptions, type LoadtestReport, type OpenLoopResult, type ScenarioReport } from '../../indexer/loadtest/index.js';
import { PROJECT_ROOT } from '../../test/shared-data.js';
import { FULL_TILES, TILES_PER_SLIDE, loadIndex, tileRect } from './synthetic-index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const TILES = Number(process.env.BENCH_TILES ?? FULL_TILES);
/** Which deployments run: single (one node: references, filtered and slide search), cluster (router + 2 nodes, kill and restart), upload. */
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS ?? 'single,cluster,upload').split(',').map((name) => name.trim()));
const CACHE = join(PROJECT_ROOT, '.cache', 'bench');
const BIN = join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js');
const RATES = [{ fraction: 0.25 }, { fraction: 0.5 }, { fraction: 0.75 }, { fraction: 0.9 }];
/** A light load both deployments sustain, where the p50 the router adds is compared (requests/s). */
const LIGHT_RATE = Number(process.env.BENCH_LIGHT_RATE ?? 20);
const LIGHT = `${LIGHT_RATE}/s`;
const results: Record<string, unknown> = {};
const log = (line: string) => console.log(line);

let seed = 99;
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);

interface Node {
  url: string;
  process: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `tessera serve …` as a child process and waits for its URL. */
function startNode(args: string[], port: number): Promise<Node> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', ...args, '--port', String(port), '--no-viewer'], { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr = (stderr + String(chunk)).slice(-4000)));
    child.stdout?.on('data', (chunk) => {
      const match = /serving at (http:\/\/\S+?)\/ /.exec(String(chunk));
      if (match) resolve({ url: match[1] as string, process: child, stop: (signal = 'SIGTERM') => new Promise((done) => (child.exitCode !== null ? done() : (child.once('exit', () => done()), child.kill(signal)))) });
    });
    child.once('exit', (code) => reject(new Error(`tessera serve ${args.join(' ')} exited ${code}: ${stderr}`)));
  });
}

/** A node's resident memory now and at its peak, MiB (Linux /proc). */
function memoryOf(node: Node): { rssMiB: number; peakRssMiB: number } | null {
  try {
    const status = readFileSync(`/proc/${node.process.pid}/status`, 'utf8');
    const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
    return { rssMiB: Math.round(kib('VmRSS') / 1024), peakRssMiB: Math.round(kib('VmHWM') / 1024) };
  } catch {
    return null;
  }
}

const memoryText = (memory: ReturnType<typeof memoryOf>) => (memory ? `${memory.rssMiB} MiB (peak ${memory.peakRssMiB})` : 'unknown');

const OUT = join(PROJECT_ROOT, 'benchmarks', 'results');
const RUN = new Date().toISOString().replace(/:/g, '-');

/** One loadtest run against a deployment of this benchmark, printed as loadtest prints it; its HTML report beside the JSON. */
async function loadtest(name: string, url: string, options: Partial<LoadtestOptions> & Pick<LoadtestOptions, 'scenarios'>): Promise<LoadtestReport> {
  const report = await runLoadtest({ url, durationSeconds: SECONDS, connections: 32, rates: RATES, k: 10, recallQueries: 100, ...options });
  process.stdout.write(`\n${reportTable(report)}`);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, `load-${RUN}-${name}.html`), reportHtml(report));
  return report;
}

const scenario = (report: LoadtestReport, name: string): ScenarioReport => {
  const found = report.scenarios.find((candidate) => candidate.name === name);
  if (!found) throw new Error(`scenario ${name} did not run: ${report.skipped.map((skip) => `${skip.name}: ${skip.reason}`).join('; ')}`);
  return found;
};
const at = (report: ScenarioReport, label: string): OpenLoopResult => {
  const run = report.rates.find((candidate) => candidate.label === label);
  if (!run) throw new Error(`no run at ${label}`);
  return run;
};

console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load generator and servers share these cores`);
mkdirSync(CACHE, { recursive: true });
log(`load index, ${TILES.toLocaleString('en')} tiles (built once into .cache/bench):`);
const { dir, slides } = await loadIndex(CACHE, join(CACHE, 'ann-1000000-subspace'), log, TILES);
const referenceBody = () => {
  const slide = slides[Math.floor(random() * slides.length)]!;
  return { slideId: slide.slideId, ...tileRect(Math.floor(random() * TILES_PER_SLIDE)), k: 10 };
};

// ── the ceiling: the same searches with no HTTP ───────────────────────────────────────────────
// Tile references straight into the search threads (32 in flight, as the closed-loop runs keep),
// at each segment's tuned ef, as the API searches by default.
const engine = await LocalShardGroup.open(dir);
const engineSearches = async (seconds: number) => {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  const lane = async () => {
    while (performance.now() < until) {
      const { slideId, ...rect } = referenceBody();
      await engine.searchStoredTile(slideId, { x: rect.x, y: rect.y, width: rect.width, height: rect.height }, { k: 10, excludeSlides: [slideId] });
      done++;
    }
  };
  await Promise.all(Array.from({ length: 32 }, lane));
  return done / seconds;
};
await engineSearches(2);
const engineMax = await engineSearches(SECONDS);
await engine.close();
console.log(`\nsearch threads alone (no HTTP, ${cpus().length} threads, 32 in flight, default ef): ${engineMax.toFixed(0)} tile-reference searches/s`);

// ── single node ───────────────────────────────────────────────────────────────────────────────
interface SingleFigures {
  reference: ScenarioReport;
  ef64: ScenarioReport;
  filtered: ScenarioReport;
  slideSearch: ScenarioReport;
  memory: ReturnType<typeof memoryOf>;
}

async function singleNode(): Promise<SingleFigures> {
  log('\nstarting a single node (role all)…');
  const started = performance.now();
  const single = await startNode(['--index', dir, '--no-model'], 18180);
  console.log(`  ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const main = await loadtest('single', single.url, { scenarios: ['reference'], rates: [{ perSecond: LIGHT_RATE }, ...RATES] });
  const filtered = await loadtest('single-filtered', single.url, { scenarios: ['filtered'] });
  // ef 64 (the old default) for comparison: its maximum and recall only.
  const ef64 = await loadtest('single-ef64', single.url, { scenarios: ['reference'], ef: 64, rates: [] });
  const slideSearch = await loadtest('single-slide', single.url, { scenarios: ['slide'], connections: 8, recallQueries: 0 });
  const memory = memoryOf(single);
  console.log(`  single node memory: ${memoryText(memory)}`);
  await single.stop();
  const figures = { reference: scenario(main, 'reference'), ef64: scenario(ef64, 'reference'), filtered: scenario(filtered, 'filtered'), slideSearch: scenario(slideSearch, 'slide'), memory };
  results.single = figures;
  return figures;
}

// ── router + 2 shard nodes ────────────────────────────────────────────────────────────────────
interface ClusterFigures {
  reference: ScenarioReport;
  chaos: OpenLoopResult & { rate: number; seconds: number };
  memory: { router: ReturnType<typeof memoryOf>; node0: ReturnType<typeof memoryOf>; node1: ReturnType<typeof memoryOf> };
}

async function clusterNodes(): Promise<ClusterFigures> {
  log('\nstarting shard nodes 0 and 1 and a router…');
  const started = performance.now();
  const node0 = await startNode(['--role', 'shard', '--index', dir, '--shards', '0'], 18181);
  let node1 = await startNode(['--role', 'shard', '--index', dir, '--shards', '1', '--threads', '1'], 18182);
  const router = await startNode(['--role', 'router', '--nodes', `${node0.url},${node1.url}`, '--no-model'], 18183);
  console.log(`  ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const report = await loadtest('cluster', router.url, { scenarios: ['reference'], rates: [{ perSecond: LIGHT_RATE }, ...RATES] });
  const reference = scenario(report, 'reference');
  const memory = { router: memoryOf(router), node0: memoryOf(node0), node1: memoryOf(node1) };
  console.log(`  memory: router ${memoryText(memory.router)}, shard node 0 ${memoryText(memory.node0)}, shard node 1 ${memoryText(memory.node1)}`);

  // A node dies and comes back during a fixed-rate run: every request must still succeed.
  const chaosRate = Math.max(1, Math.round(reference.max.achievedRps * 0.5));
  const chaosSeconds = Math.max(SECONDS * 2, 16);
  // Queries name tiles of shard 0's slides: a query whose own tile is on the dead node cannot be
  // resolved at all (a 503 naming the shard); every other query must succeed, partially.
  const shard0Slides = slides.filter((slide) => slide.shard === 0);
  const shard0Body = () => JSON.stringify({ slideId: shard0Slides[Math.floor(random() * shard0Slides.length)]!.slideId, ...tileRect(Math.floor(random() * TILES_PER_SLIDE)), k: 10 });
  const running = openLoop({ url: router.url, headers: {} }, { path: '/v1/search/region', body: shard0Body }, { rate: chaosRate, seconds: chaosSeconds });
  await new Promise((resolve) => setTimeout(resolve, (chaosSeconds * 1000) / 4));
  await node1.stop('SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, (chaosSeconds * 1000) / 4));
  node1 = await startNode(['--role', 'shard', '--index', dir, '--shards', '1', '--threads', '1'], 18182);
  const chaos = { ...(await running), rate: chaosRate, seconds: chaosSeconds };
  const failed = failures(chaos.statuses);
  console.log(`\nshard node 1 killed (SIGKILL) and restarted during ${chaosSeconds} s at ${chaosRate} requests/s: failed ${JSON.stringify(failed)}, ${chaos.partial} partial answers (coverage 1/2), p99 ${chaos.p99.toFixed(1)} ms`);
  await router.stop();
  await node0.stop();
  await node1.stop();
  const figures = { reference, chaos, memory };
  results.cluster = figures;
  return figures;
}

// ── uploaded images, real model ───────────────────────────────────────────────────────────────
async function uploads(): Promise<ScenarioReport> {
  const sampleIndex = join(PROJECT_ROOT, '.cache', 'sample-index');
  if (!existsSync(join(sampleIndex, 'index.json'))) {
    log('\nindexing the bundled samples for the upload scenario…');
    await new Promise<void>((resolve, reject) => spawn(process.execPath, [BIN, 'index', '--slides', join(PROJECT_ROOT, 'indexer', 'samples'), '--out', sampleIndex], { stdio: 'ignore' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`indexing failed (${code})`)))));
  }
  const withModel = await startNode(['--index', sampleIndex, '--slide-roots', join(PROJECT_ROOT, 'indexer', 'samples')], 18184);
  const report = await loadtest('upload', withModel.url, { scenarios: ['upload'], connections: 8, recallQueries: 20 });
  const memory = memoryOf(withModel);
  console.log(`  node with the model: memory ${memoryText(memory)}`);
  await withModel.stop();
  const upload = scenario(report, 'upload');
  results.upload = { ...upload, memory };
  return upload;
}

const single = SCENARIOS.has('single') ? await singleNode() : undefined;
const cluster = SCENARIOS.has('cluster') ? await clusterNodes() : undefined;
const upload = SCENARIOS.has('upload') ? await uploads() : undefined;

// ── summary ───────────────────────────────────────────────────────────────────────────────────
const check = (label: string, ok: boolean, detail: string) => console.log(`  ${ok ? 'PASS' : 'MISS'}  ${label}: ${detail}`);
const recallText = (report: ScenarioReport | undefined) => (report?.recall.recall === null || report?.recall.recall === undefined ? 'not measured' : report.recall.recall.toFixed(3));
console.log(`\nsummary (${TILES.toLocaleString('en')} tiles in 2 shards; ${SECONDS} s per rate; generator and servers on the same ${cpus().length} cores)`);
if (single) {
  const served = single.reference.recall.recall;
  check('served recall@10 ≥ 0.95 at the default setting', served !== null && served >= 0.95, `${recallText(single.reference)} (single node, ${single.reference.recall.queries} queries vs exact search); at ef 64: ${recallText(single.ef64)}`);
  console.log(`        throughput at the default setting ${single.reference.max.achievedRps.toFixed(0)} requests/s, at ef 64 ${single.ef64.max.achievedRps.toFixed(0)} requests/s`);
  const ratio = single.reference.max.achievedRps / engineMax;
  check('reference-search maximum ≥ 70% of the search threads alone', ratio >= 0.7, `${single.reference.max.achievedRps.toFixed(0)} ÷ ${engineMax.toFixed(0)} = ${(ratio * 100).toFixed(0)}%`);
  check('reference search p99 ≤ 20 ms at 75% of maximum', at(single.reference, '75%').p99 <= 20, `${at(single.reference, '75%').p99.toFixed(2)} ms at ${at(single.reference, '75%').offeredRps} requests/s`);
  console.log(`        filtered search (${single.filtered.description}): max ${single.filtered.max.achievedRps.toFixed(0)} requests/s, p99 at 75% ${at(single.filtered, '75%').p99.toFixed(2)} ms, recall@10 ${recallText(single.filtered)}`);
  console.log(`        slide search: max ${single.slideSearch.max.achievedRps.toFixed(0)} requests/s, p99 at 75% ${at(single.slideSearch, '75%').p99.toFixed(1)} ms`);
  console.log(`        memory: single node ${memoryText(single.memory)}`);
}
if (single && cluster) {
  const addedP50 = at(cluster.reference, LIGHT).p50 - at(single.reference, LIGHT).p50;
  check('router + 2 shard nodes add ≤ 2 ms to p50', addedP50 <= 2, `${at(cluster.reference, LIGHT).p50.toFixed(2)} − ${at(single.reference, LIGHT).p50.toFixed(2)} = ${addedP50.toFixed(2)} ms at ${LIGHT_RATE} requests/s`);
}
if (cluster) {
  const failed = Object.values(failures(cluster.chaos.statuses)).reduce((sum, count) => sum + count, 0);
  check('no request fails while a shard node is killed and restarted', failed === 0, `${failed} failed (${JSON.stringify(failures(cluster.chaos.statuses))}), ${cluster.chaos.partial} partial`);
  console.log(`        router + 2 nodes: max ${cluster.reference.max.achievedRps.toFixed(0)} requests/s, recall@10 ${recallText(cluster.reference)}; memory: router ${memoryText(cluster.memory.router)}, node 0 ${memoryText(cluster.memory.node0)}, node 1 ${memoryText(cluster.memory.node1)}`);
}
if (upload) console.log(`        uploaded image: max ${upload.max.achievedRps.toFixed(0)} requests/s, p99 at 75% ${at(upload, '75%').p99.toFixed(1)} ms, recall@10 ${recallText(upload)}`);
Object.assign(results, { machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, tiles: TILES, seconds: SECONDS, engineSearchesPerSecond: engineMax });
mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, `load-${RUN}.json`), `${JSON.stringify(results, null, 2)}\n`);
