/**
 * npm run bench:load — the query API under load, on 127.0.0.1, driven by autocannon.
 *
 * Index: 1,100,000 synthetic 384-d tiles in 2 shards (benchmarks/load/synthetic-index.ts; the
 * graph of bench:index's 1M synthetic set plus 100k more), served with --no-model; uploaded-image
 * search runs on the bundled sample index with the real model (embedding dominates it).
 * Scenarios: region search by tile reference, single node and router + 2 shard nodes; slide
 * search; region search by uploaded 224×224 PNG; a router run during which the node of shard 1
 * is killed (SIGKILL) and restarted. Each: maximum throughput (autocannon, closed loop), then
 * fixed rates of 25/50/75/90% of it sent open loop (each request due at its time, latency counted
 * from then: corrected for coordinated omission by construction; see openLoop for why not
 * autocannon's fixed-rate mode).
 * Also recall@10 of served results against exact search, and API latency ÷ in-process HNSW time.
 * Env: BENCH_SECONDS (per rate, default 8); BENCH_SCENARIOS (comma list of single, cluster,
 * upload; default all). Writes benchmarks/results/load-<time>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Agent, request as httpRequest } from 'node:http';
import autocannon from 'autocannon';
import { LocalShardGroup } from '../../engine/cluster/index.js';
import { IndexStore } from '../../engine/index.js';
import { PROJECT_ROOT } from '../../test/shared-data.js';
import { DIMENSION, TILES_PER_SLIDE, loadIndex, tileRect } from './synthetic-index.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
/** Which scenarios run: single (one node: references and slide search), cluster (router + 2 nodes, kill and restart), upload. */
const SCENARIOS = new Set((process.env.BENCH_SCENARIOS ?? 'single,cluster,upload').split(',').map((name) => name.trim()));
const CACHE = join(PROJECT_ROOT, '.cache', 'bench');
const BIN = join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js');
const results: Record<string, unknown> = {};
const log = (line: string) => console.log(line);

let seed = 99;
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

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

interface RunResult {
  rate: number | null;
  achievedRps: number;
  p50: number;
  p95: number;
  p99: number;
  errors: number;
  non2xx: number;
  partial: number;
}

/** Closed loop with autocannon: as many requests as `connections` keep in flight (maximum throughput). */
async function closedLoop(url: string, path: string, body: () => unknown, seconds: number, connections: number): Promise<RunResult> {
  const result = await autocannon({
    url,
    connections,
    duration: seconds,
    requests: [{ method: 'POST', path, headers: { 'content-type': 'application/json' }, setupRequest: (request: any) => ({ ...request, body: JSON.stringify(body()) }) }],
  } as autocannon.Options);
  return { rate: null, achievedRps: result.requests.average, p50: result.latency.p50, p95: result.latency.p97_5, p99: result.latency.p99, errors: result.errors + result.timeouts, non2xx: result.non2xx, partial: 0 };
}

const AGENT = new Agent({ keepAlive: true, maxSockets: 512 });

/**
 * Open loop at a fixed rate: request i is due at start + i / rate and its latency runs from that
 * moment, so time spent waiting behind a slow request counts (no coordinated omission). autocannon's
 * own fixed rate sends each connection's quota for a second in a burst at the start of the second,
 * which measures bursts, not a steady rate.
 */
async function openLoop(url: string, path: string, body: () => unknown, options: { rate: number; seconds: number; checkCoverage?: boolean }): Promise<RunResult> {
  const total = Math.round(options.rate * options.seconds);
  const latencies: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let partial = 0;
  const pending: Array<Promise<void>> = [];
  const started = performance.now() + 20;
  const send = (due: number) =>
    new Promise<void>((resolve) => {
      const data = Buffer.from(JSON.stringify(body()));
      const outgoing = httpRequest(`${url}${path}`, { method: 'POST', agent: AGENT, headers: { 'content-type': 'application/json', 'content-length': data.length } }, (incoming) => {
        const chunks: Buffer[] = [];
        incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
        incoming.on('end', () => {
          latencies.push(performance.now() - due);
          const status = incoming.statusCode ?? 0;
          if (status < 200 || status >= 300) non2xx++;
          else if (options.checkCoverage) {
            const { coverage } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { coverage: { answered: number; total: number } };
            if (coverage.answered < coverage.total) partial++;
          }
          resolve();
        });
      });
      outgoing.setTimeout(10_000, () => outgoing.destroy(new Error('timeout')));
      outgoing.on('error', () => {
        errors++;
        resolve();
      });
      outgoing.end(data);
    });
  // Requests go out on timer ticks, every one due by then at once. Spinning until each due time
  // instead would burn a core that the server shares with this generator.
  for (let i = 0; i < total; ) {
    const now = performance.now();
    for (; i < total && started + (i * 1000) / options.rate <= now; i++) pending.push(send(started + (i * 1000) / options.rate));
    if (i < total) await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + (i * 1000) / options.rate - performance.now())));
  }
  await Promise.all(pending);
  latencies.sort((a, b) => a - b);
  return { rate: options.rate, achievedRps: total / ((performance.now() - started) / 1000), p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95), p99: percentile(latencies, 0.99), errors, non2xx, partial };
}

/** Max throughput, then 25/50/75/90% of it. */
async function sweep(name: string, url: string, path: string, body: () => unknown, connections = 32): Promise<{ max: number; runs: RunResult[] }> {
  await closedLoop(url, path, body, 2, connections); // warm-up
  const max = (await closedLoop(url, path, body, SECONDS, connections)).achievedRps;
  const runs: RunResult[] = [];
  for (const fraction of [0.25, 0.5, 0.75, 0.9]) runs.push(await openLoop(url, path, body, { seconds: SECONDS, rate: Math.max(1, Math.round(max * fraction)) }));
  console.log(`\n${name}: max ${max.toFixed(0)} requests/s (autocannon, closed loop, ${connections} connections); fixed rates open loop`);
  console.log('  load   rate/s  achieved  p50 ms  p95 ms  p99 ms  errors  non-2xx');
  runs.forEach((run, i) => console.log(`  ${String([25, 50, 75, 90][i]).padStart(3)}%  ${String(run.rate).padStart(7)}  ${run.achievedRps.toFixed(0).padStart(8)}  ${run.p50.toFixed(2).padStart(6)}  ${run.p95.toFixed(2).padStart(6)}  ${run.p99.toFixed(2).padStart(6)}  ${String(run.errors).padStart(6)}  ${String(run.non2xx).padStart(7)}`));
  results[name] = { max, runs };
  return { max, runs };
}

console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; load generator and servers share these cores`);
mkdirSync(CACHE, { recursive: true });
log('load index (built once into .cache/bench/load-index):');
const { dir, slides } = await loadIndex(CACHE, join(CACHE, 'ann-1000000-subspace'), log);
const referenceBody = () => {
  const slide = slides[Math.floor(random() * slides.length)]!;
  return { slideId: slide.slideId, ...tileRect(Math.floor(random() * TILES_PER_SLIDE)), k: 10 };
};

// ── exact ground truth and raw in-process HNSW time ───────────────────────────────────────────
const recallQueries = Array.from({ length: 100 }, () => {
  const slide = slides[Math.floor(random() * slides.length)]!;
  const j = Math.floor(random() * TILES_PER_SLIDE);
  return { slide, j, label: slide.firstLabel + j };
});
const store = IndexStore.open(dir, { readOnly: true });
const queryVectors = recallQueries.map((query) => store.shards.find((shard) => shard.index === query.slide.shard)!.vector(query.label));
// Exact top 10 by brute force over all 1.1M tiles (a few minutes in JavaScript): cached beside the index.
const exactPath = join(dir, 'exact-top10.json');
if (!existsSync(exactPath)) {
  log('computing exact top-10 for 100 queries by brute force…');
  const all = store.shards.map((shard) => {
    const count = shard.tileCount;
    const vectors = new Float32Array(count * DIMENSION);
    for (let label = 0; label < count; label++) vectors.set(shard.vector(label), label * DIMENSION);
    return { shard: shard.index, vectors, count };
  });
  const tops = queryVectors.map((query) => {
    const top: Array<{ key: string; score: number }> = [];
    for (const { shard, vectors, count } of all) {
      for (let label = 0; label < count; label++) {
        let score = 0;
        const offset = label * DIMENSION;
        for (let d = 0; d < DIMENSION; d++) score += (query[d] as number) * (vectors[offset + d] as number);
        if (top.length < 10 || score > (top[9] as { score: number }).score) {
          top.push({ key: `${shard}/${label}`, score });
          top.sort((a, b) => b.score - a.score);
          if (top.length > 10) top.pop();
        }
      }
    }
    return top.map((entry) => entry.key);
  });
  writeFileSync(exactPath, JSON.stringify({ queries: recallQueries.map((query) => `${query.slide.shard}/${query.label}`), tops }));
}
const exactFile = JSON.parse(readFileSync(exactPath, 'utf8')) as { queries: string[]; tops: string[][] };
if (exactFile.queries.join() !== recallQueries.map((query) => `${query.slide.shard}/${query.label}`).join()) throw new Error(`${exactPath} was computed for other queries: delete it`);
const exact = exactFile.tops.map((keys) => new Set(keys));
const rawMs: number[] = [];
for (let round = 0; round < 5; round++) {
  for (const query of queryVectors) {
    const started = performance.now();
    store.search(query, { k: 10, ef: 64 });
    rawMs.push(performance.now() - started);
  }
}
rawMs.sort((a, b) => a - b);
const rawP50 = percentile(rawMs, 0.5);
await store.close();
console.log(`\nin-process HNSW search (both shards, k 10, ef 64): p50 ${rawP50.toFixed(3)} ms, p99 ${percentile(rawMs, 0.99).toFixed(3)} ms`);

// The same searches with no HTTP: tile references straight into the search threads (32 in
// flight, as the closed-loop runs keep), the ceiling the API's throughput is measured against.
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
console.log(`search threads alone (no HTTP, ${cpus().length} threads, 32 in flight): ${engineMax.toFixed(0)} tile-reference searches/s`);

async function servedRecall(url: string): Promise<number> {
  let found = 0;
  for (const [i, query] of recallQueries.entries()) {
    const response = await fetch(`${url}/v1/search/region`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ slideId: query.slide.slideId, ...tileRect(query.j), k: 10, exclude: { ownSlide: false } }) });
    const { results: hits } = (await response.json()) as { results: Array<{ slideId: string; x: number; y: number; shard: number }> };
    const firstLabel = new Map(slides.map((slide) => [slide.slideId, slide.firstLabel]));
    for (const hit of hits) {
      const label = (firstLabel.get(hit.slideId) ?? 0) + hit.x / 224 + (hit.y / 224) * 40;
      if (exact[i]?.has(`${hit.shard}/${label}`)) found++;
    }
  }
  return found / (recallQueries.length * 10);
}

type Sweep = Awaited<ReturnType<typeof sweep>>;

// ── single node ───────────────────────────────────────────────────────────────────────────────
async function singleNode(): Promise<{ recall: number; reference: Sweep; slideSearch: Sweep }> {
  log('\nstarting a single node (role all) on the 1.1M-tile index…');
  const started = performance.now();
  const single = await startNode(['--index', dir, '--no-model'], 18180);
  console.log(`  ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const recall = await servedRecall(single.url);
  const reference = await sweep('region search by tile reference, single node', single.url, '/v1/search/region', referenceBody);
  const slideSearch = await sweep('slide search (16-tile mosaic), single node', single.url, '/v1/search/slide', () => ({ slideId: slides[Math.floor(random() * slides.length)]!.slideId, k: 10 }), 8);
  await single.stop();
  return { recall, reference, slideSearch };
}

// ── router + 2 shard nodes ────────────────────────────────────────────────────────────────────
async function clusterNodes(): Promise<{ recall: number; reference: Sweep; chaos: RunResult }> {
  log('\nstarting shard nodes 0 and 1 and a router…');
  const started = performance.now();
  const node0 = await startNode(['--role', 'shard', '--index', dir, '--shards', '0'], 18181);
  let node1 = await startNode(['--role', 'shard', '--index', dir, '--shards', '1', '--threads', '1'], 18182);
  const router = await startNode(['--role', 'router', '--nodes', `${node0.url},${node1.url}`, '--no-model'], 18183);
  console.log(`  ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const recall = await servedRecall(router.url);
  const reference = await sweep('region search by tile reference, router + 2 shard nodes', router.url, '/v1/search/region', referenceBody);

  // A node dies and comes back during a fixed-rate run: every request must still succeed.
  const chaosRate = Math.round(reference.max * 0.5);
  const chaosSeconds = Math.max(SECONDS * 2, 16);
  // Queries name tiles of shard 0's slides: a query whose own tile is on the dead node cannot be
  // resolved at all (a 503 naming the shard); every other query must succeed, partially.
  const shard0Slides = slides.filter((slide) => slide.shard === 0);
  const shard0Body = () => ({ slideId: shard0Slides[Math.floor(random() * shard0Slides.length)]!.slideId, ...tileRect(Math.floor(random() * TILES_PER_SLIDE)), k: 10 });
  const running = openLoop(router.url, '/v1/search/region', shard0Body, { rate: chaosRate, seconds: chaosSeconds, checkCoverage: true });
  await new Promise((resolve) => setTimeout(resolve, (chaosSeconds * 1000) / 4));
  await node1.stop('SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, (chaosSeconds * 1000) / 4));
  node1 = await startNode(['--role', 'shard', '--index', dir, '--shards', '1', '--threads', '1'], 18182);
  const chaos = await running;
  console.log(`\nshard node 1 killed (SIGKILL) and restarted during ${chaosSeconds} s at ${chaosRate} requests/s: ${chaos.errors} errors, ${chaos.non2xx} non-2xx, ${chaos.partial} partial answers (coverage 1/2), p99 ${chaos.p99.toFixed(1)} ms`);
  results.killRestart = { ...chaos, rate: chaosRate, seconds: chaosSeconds };
  await router.stop();
  await node0.stop();
  await node1.stop();
  return { recall, reference, chaos };
}

// ── uploaded images, real model ───────────────────────────────────────────────────────────────
async function uploads(): Promise<Sweep> {
  const sampleIndex = join(PROJECT_ROOT, '.cache', 'sample-index');
  if (!existsSync(join(sampleIndex, 'index.json'))) {
    log('\nindexing the bundled samples for the upload scenario…');
    await new Promise<void>((resolve, reject) => spawn(process.execPath, [BIN, 'index', '--slides', join(PROJECT_ROOT, 'indexer', 'samples'), '--out', sampleIndex], { stdio: 'ignore' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`indexing failed (${code})`)))));
  }
  const withModel = await startNode(['--index', sampleIndex, '--slide-roots', join(PROJECT_ROOT, 'indexer', 'samples')], 18184);
  const sampleSlides = ((await (await fetch(`${withModel.url}/v1/slides`)).json()) as { slides: Array<{ slideId: string; width: number; height: number }> }).slides;
  const pngs: string[] = [];
  for (let i = 0; i < 20; i++) {
    const slide = sampleSlides[i % sampleSlides.length]!;
    const x = Math.floor(random() * Math.max(1, slide.width - 224));
    const y = Math.floor(random() * Math.max(1, slide.height - 224));
    const png = await fetch(`${withModel.url}/v1/slides/${encodeURIComponent(slide.slideId)}/region?x=${x}&y=${y}&width=224&height=224&size=224&format=png`);
    pngs.push(Buffer.from(await png.arrayBuffer()).toString('base64'));
  }
  const upload = await sweep('region search by uploaded 224×224 PNG (embedding included), single node, sample index', withModel.url, '/v1/search/region', () => ({ image: pngs[Math.floor(random() * pngs.length)], k: 10 }), 8);
  await withModel.stop();
  return upload;
}

const single = SCENARIOS.has('single') ? await singleNode() : undefined;
const cluster = SCENARIOS.has('cluster') ? await clusterNodes() : undefined;
const upload = SCENARIOS.has('upload') ? await uploads() : undefined;

// ── summary ───────────────────────────────────────────────────────────────────────────────────
const at = (run: { runs: RunResult[] }, i: number) => run.runs[i] as RunResult;
const check = (label: string, ok: boolean, detail: string) => console.log(`  ${ok ? 'PASS' : 'MISS'}  ${label}: ${detail}`);
console.log('\nsummary');
console.log(`  recall@10 of served results vs exact search (ef 64, 100 queries): single node ${single?.recall.toFixed(3) ?? 'not run'}, cluster ${cluster?.recall.toFixed(3) ?? 'not run'}`);
if (single) {
  console.log(`  API p50 at 25% load ÷ in-process HNSW p50: ${(at(single.reference, 0).p50 / rawP50).toFixed(1)}× (${at(single.reference, 0).p50.toFixed(2)} ms vs ${rawP50.toFixed(3)} ms)`);
  check('reference search ≥ 1,500 requests/s', single.reference.max >= 1500, `${single.reference.max.toFixed(0)} requests/s (search threads alone, no HTTP: ${engineMax.toFixed(0)}/s)`);
  check('reference search p99 ≤ 20 ms at 75% load', at(single.reference, 2).p99 <= 20, `${at(single.reference, 2).p99.toFixed(2)} ms`);
}
if (upload) check('uploaded image p99 ≤ 60 ms at 75% load', at(upload, 2).p99 <= 60, `${at(upload, 2).p99.toFixed(2)} ms`);
if (single && cluster) {
  const addedP50 = at(cluster.reference, 0).p50 - at(single.reference, 0).p50;
  check('two-node cluster adds ≤ 3 ms to p50 (25% load)', addedP50 <= 3, `${at(cluster.reference, 0).p50.toFixed(2)} − ${at(single.reference, 0).p50.toFixed(2)} = ${addedP50.toFixed(2)} ms`);
}
if (cluster) check('no request fails while a shard node is killed and restarted', cluster.chaos.errors === 0 && cluster.chaos.non2xx === 0, `${cluster.chaos.errors} errors, ${cluster.chaos.non2xx} non-2xx, ${cluster.chaos.partial} partial`);
if (single) console.log(`  slide search: max ${single.slideSearch.max.toFixed(0)} requests/s, p99 at 75% ${at(single.slideSearch, 2).p99.toFixed(1)} ms`);
Object.assign(results, { machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, recall: { single: single?.recall, cluster: cluster?.recall }, rawHnswP50Ms: rawP50, engineSearchesPerSecond: engineMax });
const out = join(PROJECT_ROOT, 'benchmarks', 'results');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, `load-${new Date().toISOString().replace(/:/g, '-')}.json`), `${JSON.stringify(results, null, 2)}\n`);
