/**
 * npm run bench:catalogue — GET /v1/slides at 1,000,000 slides: pages of 50 (first page, a deep
 * cursor, filtered, filtered and deep), each answer with its total and facets, served by a real
 * `tessera serve` (single node; then router + 2 shard nodes), one request at a time over a
 * kept-alive connection. p50/p99 over BENCH_REQUESTS requests each (default 500).
 *
 * The catalogue (2 shards, one 8-d tile a slide, metadata over five facet fields) is written
 * straight into LMDB in the shard's format (as benchmarks/load/synthetic-index.ts does), once,
 * into .cache/bench/catalogue-index. BENCH_SLIDES changes the size (a new cache per size).
 *
 * BENCH_COMPARE_REF=<git commit>: also serves the same index with the code of that commit (its
 * tree exported under .cache/bench) and times its first page (fewer requests: each lists every slide).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { asSlideId, createOrCheckIndex, INDEX_FORMAT_VERSION, shardDir, shardOf, type SlideRecord, type TileRecord } from '../../engine/index.js';
import { PROJECT_ROOT } from '../../test/shared-data.js';
import { tesseraAtCommit } from '../commit-tree.js';

const SLIDES = Number(process.env.BENCH_SLIDES ?? 1_000_000);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 500);
const SHARDS = 2;
const DIMENSION = 8;
const CACHE = join(PROJECT_ROOT, '.cache', 'bench');
const BIN = join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js');
const DATASETS = ['tcga', 'bigpicture', 'local', 'external'];
const ORGANS = ['lung', 'kidney', 'skin', 'breast', 'colon', 'prostate', 'liver', 'brain'];
const STAINS = ['HE', 'IHC', 'PAS'];
const SPECIES = ['human', 'mouse'];
const DIAGNOSES = Array.from({ length: 20 }, (_, i) => `dx-${i}`);

const slideIdOf = (i: number) => `cat-${String(i).padStart(7, '0')}`;
/** A value of `values` for slide i, hashed (murmur3's finalizer) so that fields are independent. */
const pick = <T>(values: readonly T[], i: number, salt: number): T => {
  let h = Math.imul(i ^ Math.imul(salt, 0x9e3779b9), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return values[((h ^ (h >>> 16)) >>> 0) % values.length] as T;
};
const metadataOf = (i: number): Record<string, string> => ({
  dataset: pick(DATASETS, i, 1),
  organ: pick(ORGANS, i, 2),
  stain: pick(STAINS, i, 3),
  species: pick(SPECIES, i, 4),
  diagnosis: pick(DIAGNOSES, i, 5),
  patient_id: `P${Math.floor(i / 3)}`,
});

/** Writes (once) the synthetic catalogue: slide records, one tile and its vector each, counters. */
async function catalogueIndex(): Promise<string> {
  const dir = join(CACHE, `catalogue-index-${SLIDES}`);
  if (existsSync(join(dir, 'ready'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  const started = performance.now();
  console.log(`writing a synthetic catalogue of ${SLIDES.toLocaleString('en')} slides into ${dir}…`);
  createOrCheckIndex(dir, { shards: SHARDS, model: { id: 'synthetic-8', version: '1', dimension: DIMENSION }, tile: { mpp: 0.5, sizePx: 224 }, hnsw: { M: 12, efConstruction: 100 } });
  for (let shard = 0; shard < SHARDS; shard++) {
    const path = shardDir(dir, shard);
    mkdirSync(join(path, 'segments'), { recursive: true });
    // The databases LocalShard keeps (engine/index/shard-store.ts); no segment: every tile is in the exact tail.
    const env = open({ path: join(path, 'lmdb'), maxDbs: 8, compression: false });
    const tiles = env.openDB<TileRecord, number>({ name: 'tiles', keyEncoding: 'uint32' });
    const vectors = env.openDB<Buffer, number>({ name: 'vectors', keyEncoding: 'uint32', encoding: 'binary' });
    const slides = env.openDB<SlideRecord, string>({ name: 'slides' });
    const meta = env.openDB<number, string>({ name: 'meta' });
    // Empty, but a read-only open expects it.
    const tombstones = env.openDB<boolean, number>({ name: 'tombstones', keyEncoding: 'uint32' });
    let label = 0;
    const vector = Buffer.alloc(DIMENSION * 4);
    const BATCH = 50_000;
    for (let from = 0; from < SLIDES; from += BATCH) {
      await env.transaction(() => {
        for (let i = from; i < Math.min(SLIDES, from + BATCH); i++) {
          const slideId = slideIdOf(i);
          if (shardOf(slideId, SHARDS) !== shard) continue;
          for (let d = 0; d < DIMENSION; d++) vector.writeFloatLE(d === i % DIMENSION ? 1 : 0, d * 4);
          tiles.put(label, { slideId: asSlideId(slideId), x: 0, y: 0, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0 });
          vectors.put(label, Buffer.from(vector));
          const record: SlideRecord = { slideId: asSlideId(slideId), path: `/nonexistent/${slideId}.svs`, metadata: metadataOf(i), fingerprint: { size: 0, mtimeMs: 0, hash: '' }, labels: [label], mosaic: [label], mppSupplied: true, mpp: [0.5, 0.5], width: 224, height: 224, indexedAt: new Date(0).toISOString() };
          slides.put(slideId, record);
          label++;
        }
      });
    }
    await env.transaction(() => {
      meta.put('formatVersion', INDEX_FORMAT_VERSION);
      meta.put('nextLabel', label);
      meta.put('commit', 1);
      meta.put('nextSegmentId', 1);
      meta.put('segmentedEnd', 0);
      tombstones.put(0, true);
    });
    await env.transaction(() => void tombstones.remove(0));
    await env.close();
    console.log(`  shard ${shard}: ${label.toLocaleString('en')} slides`);
  }
  writeFileSync(join(dir, 'ready'), '');
  console.log(`  written in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return dir;
}

interface Node {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `tessera serve …` (of `bin`) as a child process and waits for its URL. */
function startNode(bin: string, args: string[], port: number): Promise<Node> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'serve', ...args, '--port', String(port), '--no-viewer', '--threads', '1'], { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr = (stderr + String(chunk)).slice(-4000)));
    child.stdout?.on('data', (chunk) => {
      const match = /serving at (http:\/\/\S+?)\/ /.exec(String(chunk));
      if (match) resolve({ url: match[1] as string, process: child, stop: () => new Promise((done) => (child.exitCode !== null ? done() : (child.once('exit', () => done()), child.kill('SIGTERM')))) });
    });
    child.once('exit', (code) => reject(new Error(`tessera serve ${args.join(' ')} exited ${code}: ${stderr}`)));
  });
}

const AGENT = new Agent({ keepAlive: true, maxSockets: 1 });

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpRequest(url, { agent: AGENT }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => resolve({ status: incoming.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      incoming.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

let seed = 11;
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
/** The cursor the API hands out after a slide (base64url of its id; see api/routes/slides.ts). */
const cursorAfter = (i: number) => Buffer.from(slideIdOf(i), 'utf8').toString('base64url');

const SCENARIOS: Array<{ name: string; path: () => string }> = [
  { name: 'first page', path: () => '/v1/slides?limit=50' },
  { name: 'deep cursor', path: () => `/v1/slides?limit=50&cursor=${cursorAfter(Math.floor(random() * SLIDES))}` },
  { name: 'filtered (organ)', path: () => `/v1/slides?limit=50&organ=${pick(ORGANS, Math.floor(random() * 1000), 0)}` },
  { name: 'filtered (organ + diagnosis), deep', path: () => `/v1/slides?limit=50&organ=${pick(ORGANS, Math.floor(random() * 1000), 0)}&diagnosis=${pick(DIAGNOSES, Math.floor(random() * 1000), 0)}&cursor=${cursorAfter(Math.floor(random() * SLIDES))}` },
];

async function measure(url: string, path: () => string, requests: number): Promise<{ p50: number; p99: number; total: number; bytes: number }> {
  let total = 0;
  let bytes = 0;
  const ms: number[] = [];
  for (let i = 0; i < requests + 5; i++) {
    const started = performance.now();
    const { status, body } = await get(`${url}${path()}`);
    const took = performance.now() - started;
    if (status !== 200) throw new Error(`${path()} answered ${status}: ${body.slice(0, 300)}`);
    // The first few warm the orderings and connections up.
    if (i < 5) continue;
    ms.push(took);
    const reply = JSON.parse(body) as { total: number; slides: unknown[]; facets: Record<string, unknown> };
    if (reply.slides.length === 0 && reply.total > 0 && !path().includes('cursor')) throw new Error(`${path()}: an empty page of ${reply.total}`);
    total = reply.total;
    bytes = body.length;
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 0.5), p99: percentile(ms, 0.99), total, bytes };
}

async function run(label: string, url: string, requests: number, scenarios = SCENARIOS): Promise<Record<string, unknown>> {
  const figures: Record<string, unknown> = {};
  console.log(`\n${label}: ${requests} requests per row, one at a time`);
  for (const scenario of scenarios) {
    const result = await measure(url, scenario.path, requests);
    figures[scenario.name] = result;
    console.log(`  ${scenario.name.padEnd(36)} p50 ${result.p50.toFixed(2).padStart(8)} ms  p99 ${result.p99.toFixed(2).padStart(8)} ms  (total ${result.total.toLocaleString('en')}, ${(result.bytes / 1024).toFixed(0)} KiB a page)`);
  }
  return figures;
}

console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; client and servers share these cores`);
const dir = await catalogueIndex();
const results: Record<string, unknown> = { slides: SLIDES, requests: REQUESTS };

/** Runs `body` with the nodes `start` starts, and stops them however it ends. */
async function withNodes<T>(start: () => Promise<Node[]>, body: (nodes: Node[]) => Promise<T>): Promise<T> {
  const nodes: Node[] = [];
  try {
    nodes.push(...(await start()));
    return await body(nodes);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
}

let started = performance.now();
results.single = await withNodes(
  async () => [await startNode(BIN, ['--index', dir, '--no-model'], 18291)],
  async ([single]) => {
    console.log(`single node ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return run('single node (2 shards)', (single as Node).url, REQUESTS);
  },
);

started = performance.now();
results.cluster = await withNodes(
  async () => {
    const shardNodes = await Promise.all([startNode(BIN, ['--role', 'shard', '--index', dir, '--shards', '0'], 18292), startNode(BIN, ['--role', 'shard', '--index', dir, '--shards', '1'], 18293)]);
    return [...shardNodes, await startNode(BIN, ['--role', 'router', '--nodes', shardNodes.map((node) => node.url).join(','), '--no-model'], 18294)];
  },
  async (nodes) => {
    console.log(`\nrouter + 2 shard nodes ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return run('router + 2 shard nodes', (nodes[2] as Node).url, REQUESTS);
  },
);

const compareRef = process.env.BENCH_COMPARE_REF;
if (compareRef) {
  const oldBin = tesseraAtCommit(compareRef);
  const oldRequests = Math.min(REQUESTS, Number(process.env.BENCH_COMPARE_REQUESTS ?? 20));
  results.compare = await withNodes(
    async () => [await startNode(oldBin, ['--index', dir, '--no-model'], 18295)],
    async ([old]) => {
      try {
        return { ref: compareRef, ...(await run(`${compareRef.slice(0, 12)} (lists every slide per request), single node`, (old as Node).url, oldRequests, SCENARIOS.slice(0, 1))) };
      } catch (error) {
        console.log(`  ${(error as Error).message}`);
        return { ref: compareRef, failed: (error as Error).message };
      }
    },
  );
}

mkdirSync(join(PROJECT_ROOT, 'benchmarks', 'results'), { recursive: true });
writeFileSync(join(PROJECT_ROOT, 'benchmarks', 'results', `catalogue-${SLIDES}.json`), `${JSON.stringify(results, null, 2)}\n`);
console.log(`\nwritten to benchmarks/results/catalogue-${SLIDES}.json; target ≤ 50 ms p99 for a page of 50 at 1M slides`);
