/**
 * npm run bench:wire — what a router adds: bytes on the wire between router and shard nodes per
 * request, and the router's p50 over a single node's, for region search by tile reference
 * (stored vector + search), by a region's pixels (read and reduced on the node, embedded on the
 * router) and slide search (mosaic vectors + a multi-query search). Real `tessera serve`
 * processes over the bundled samples (2 shards, the bundled model). The bytes are counted by a
 * second router that reaches the nodes through counting TCP proxies (what crossed the sockets,
 * headers included); the latencies come from a router connected to the nodes directly, since the
 * proxies run in this process and would add two hops to every router → node call.
 *
 * BENCH_COMPARE_REF=<git commit>: the same with that commit's code (its tree exported under
 * .cache/bench, as bench:catalogue does), for before/after figures in one run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../test/shared-data.js';
import { tesseraAtCommit } from '../commit-tree.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 60);
/** Requests through the counting router per scenario (the bytes do not vary between requests). */
const BYTE_REQUESTS = 10;
const CACHE = join(PROJECT_ROOT, '.cache', 'bench');
const SAMPLES = join(PROJECT_ROOT, 'indexer', 'samples');
const SLIDE = 'CMU-1-Small-Region.svs';

interface Node {
  url: string;
  stop(): Promise<void>;
}

function startNode(bin: string, args: string[], port: number): Promise<Node> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [bin, 'serve', ...args, '--port', String(port), '--no-viewer', '--threads', '1', '--slide-roots', SAMPLES], { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr = (stderr + String(chunk)).slice(-4000)));
    child.stdout?.on('data', (chunk) => {
      const match = /serving at (http:\/\/\S+?)\/ /.exec(String(chunk));
      if (match) resolve({ url: match[1] as string, stop: () => new Promise((done) => (child.exitCode !== null ? done() : (child.once('exit', () => done()), child.kill('SIGTERM')))) });
    });
    child.once('exit', (code) => reject(new Error(`tessera serve ${args.join(' ')} exited ${code}: ${stderr}`)));
  });
}

/** A TCP proxy in front of a node that counts the bytes crossing it both ways. */
function countingProxy(target: string, port: number): Promise<{ url: string; bytes: () => number; reset: () => void; close: () => void }> {
  const { hostname, port: targetPort } = new URL(target);
  let bytes = 0;
  const server: Server = createServer((client) => {
    const upstream = connect(Number(targetPort), hostname);
    client.on('data', (chunk: Buffer) => (bytes += chunk.length));
    upstream.on('data', (chunk: Buffer) => (bytes += chunk.length));
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return new Promise((resolve) =>
    server.listen(port, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${port}`, bytes: () => bytes, reset: () => (bytes = 0), close: () => server.close() })),
  );
}

const AGENT = new Agent({ keepAlive: true, maxSockets: 1 });

function post(url: string, body: unknown): Promise<{ status: number; body: string }> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    httpRequest(url, { method: 'POST', agent: AGENT, headers: { 'content-type': 'application/json', 'content-length': data.length } }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.on('end', () => resolve({ status: incoming.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      incoming.on('error', reject);
    })
      .on('error', reject)
      .end(data);
  });
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

/**
 * The same request to the single node and to the router in turn, so that both p50s come from the
 * same minutes of a machine whose load from other jobs drifts; `addedP50` is the median of the
 * per-pair differences.
 */
async function pairedP50(singleUrl: string, routerUrl: string, path: string, body: unknown): Promise<{ single: number; router: number; added: number; singleAnswer: string; routerAnswer: string }> {
  const single: number[] = [];
  const router: number[] = [];
  const added: number[] = [];
  const answers = { single: '', router: '' };
  const timed = async (url: string): Promise<{ ms: number; body: string }> => {
    const started = performance.now();
    const reply = await post(`${url}${path}`, body);
    if (reply.status !== 200) throw new Error(`${url}${path} answered ${reply.status}: ${reply.body.slice(0, 300)}`);
    return { ms: performance.now() - started, body: reply.body };
  };
  for (let i = 0; i < REQUESTS + 3; i++) {
    const alone = await timed(singleUrl);
    const routed = await timed(routerUrl);
    answers.single = alone.body;
    answers.router = routed.body;
    if (i < 3) continue;
    single.push(alone.ms);
    router.push(routed.ms);
    added.push(routed.ms - alone.ms);
  }
  const median = (values: number[]) => percentile([...values].sort((a, b) => a - b), 0.5);
  return { single: median(single), router: median(router), added: median(added), singleAnswer: answers.single, routerAnswer: answers.router };
}

/** The ranked hits of an answer, to check that the router answers as the single node does. */
const ranking = (answer: string) => JSON.stringify((JSON.parse(answer) as { results: Array<{ slideId: string; x?: number; y?: number; score: number }> }).results.map((hit) => [hit.slideId, hit.x, hit.y, hit.score.toFixed(5)]));

async function ensureIndex(): Promise<string> {
  const dir = join(CACHE, 'wire-index');
  if (existsSync(join(dir, 'index.json'))) return dir;
  console.log('indexing the bundled samples into 2 shards…');
  execFileSync(process.execPath, [join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js'), 'index', '--slides', SAMPLES, '--out', dir, '--shards', '2', '--device', 'cpu'], { stdio: 'inherit' });
  return dir;
}

async function measureTree(label: string, bin: string, dir: string, portBase: number): Promise<Record<string, unknown>> {
  const single = await startNode(bin, ['--index', dir], portBase);
  const nodes = await Promise.all([0, 1].map((shard) => startNode(bin, ['--role', 'shard', '--index', dir, '--shards', String(shard)], portBase + 1 + shard)));
  const proxies = await Promise.all(nodes.map((node, i) => countingProxy(node.url, portBase + 3 + i)));
  const [router, counted] = await Promise.all([
    startNode(bin, ['--role', 'router', '--nodes', nodes.map((node) => node.url).join(',')], portBase + 5),
    startNode(bin, ['--role', 'router', '--nodes', proxies.map((proxy) => proxy.url).join(',')], portBase + 6),
  ]);
  try {
    // An indexed tile: the best hit of a region search is one (on whichever slide it lies).
    const found = JSON.parse((await post(`${single.url}/v1/search/region`, { slideId: SLIDE, x: 1000, y: 1000, width: 224, height: 224, k: 1, exclude: { ownSlide: false } })).body) as { results: Array<{ slideId: string; x: number; y: number; width: number; height: number }> };
    const tile = found.results[0] as { slideId: string; x: number; y: number; width: number; height: number };
    const scenarios: Array<{ name: string; path: string; body: unknown }> = [
      { name: 'region by tile reference', path: '/v1/search/region', body: { slideId: tile.slideId, x: tile.x, y: tile.y, width: tile.width, height: tile.height, k: 10 } },
      { name: 'region by pixels (1000² px, read on the node)', path: '/v1/search/region', body: { slideId: SLIDE, x: 905, y: 1311, width: 1000, height: 1000, k: 10 } },
      { name: 'slide search (mosaic)', path: '/v1/search/slide', body: { slideId: SLIDE, k: 5 } },
    ];
    const figures: Record<string, unknown> = {};
    console.log(`\n${label}: p50 over ${REQUESTS} requests, one at a time, alternating single node and router`);
    for (const scenario of scenarios) {
      const paired = await pairedP50(single.url, router.url, scenario.path, scenario.body);
      await post(`${counted.url}${scenario.path}`, scenario.body);
      proxies.forEach((proxy) => proxy.reset());
      for (let i = 0; i < BYTE_REQUESTS; i++) await post(`${counted.url}${scenario.path}`, scenario.body);
      const bytes = proxies.reduce((sum, proxy) => sum + proxy.bytes(), 0) / BYTE_REQUESTS;
      const same = ranking(paired.singleAnswer) === ranking(paired.routerAnswer);
      const embedded = (JSON.parse(paired.routerAnswer) as { query: { embedded?: boolean } }).query.embedded;
      if (scenario.name.includes('reference') && embedded !== false) throw new Error(`the tile reference ${JSON.stringify(scenario.body)} was embedded: not an indexed tile`);
      figures[scenario.name] = { singleP50: paired.single, routerP50: paired.router, addedP50: paired.added, wireBytesPerRequest: bytes, sameResults: same };
      console.log(`  ${scenario.name.padEnd(46)} single ${paired.single.toFixed(2).padStart(7)} ms  router ${paired.router.toFixed(2).padStart(7)} ms  (+${paired.added.toFixed(2)} ms a pair, ratio ${(paired.router / paired.single).toFixed(2)})  ${(bytes / 1024).toFixed(1).padStart(8)} KiB router↔nodes a request  ${same ? 'same results' : 'RESULTS DIFFER'}`);
    }
    return figures;
  } finally {
    proxies.forEach((proxy) => proxy.close());
    await Promise.all([router, counted, single, ...nodes].map((node) => node.stop()));
  }
}

console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; client, router and nodes share these cores`);
const dir = await ensureIndex();
const results: Record<string, unknown> = { requests: REQUESTS, current: await measureTree('this checkout', join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js'), dir, 18391) };
const compareRef = process.env.BENCH_COMPARE_REF;
if (compareRef) {
  const oldBin = tesseraAtCommit(compareRef);
  results.compare = { ref: compareRef, ...(await measureTree(`${compareRef.slice(0, 12)} (before)`, oldBin, dir, 18401)) };
}
mkdirSync(join(PROJECT_ROOT, 'benchmarks', 'results'), { recursive: true });
writeFileSync(join(PROJECT_ROOT, 'benchmarks', 'results', 'wire.json'), `${JSON.stringify(results, null, 2)}\n`);
console.log('\nwritten to benchmarks/results/wire.json');
