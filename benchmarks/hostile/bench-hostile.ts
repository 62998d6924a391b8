/**
 * npm run bench:hostile — the fuzz corpus of issue 12 as a regression, against a real server
 * (`tessera serve`, a child process on 127.0.0.1 over the bundled sample index).
 *
 * The corpus is generated from a seed (BENCH_SEED, default 12): for every route and method of the
 * server's OpenAPI document, requests with random and wrong parameters, malformed JSON, wrong
 * content types, malformed multipart bodies (each case of the issue), random bytes, bad headers
 * and path tricks; then requests that never finish (a body shorter than its Content-Length, a
 * 7fffffffffffffff chunk, headers that never end), which the server must end itself. Everything
 * is sent over raw sockets, 8 at a time (the held ones all at once), with an admin key, a key
 * scoped to a dataset the samples are not in, or no key. Prints requests sent, the statuses, 5xx (must be 0),
 * requests over 10 s (must be 0), the server's RSS before and after, and its peak RSS during 8
 * concurrent 8192² → 8 px region requests; exits 1 when a 5xx or a request over 10 s was seen.
 * Env: BENCH_REQUESTS (default 2000). Writes benchmarks/results/hostile-<time>.json.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { hashKey } from '../../api/index.js';
import { PROJECT_ROOT } from '../../test/shared-data.js';

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = 8;
const SLOW_MS = 10_000;
const CACHE = join(PROJECT_ROOT, '.cache');
const BIN = join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js');
/** An admin key that sees every dataset, and a key scoped to a dataset the samples are not in. */
const ADMIN_KEY = 'bench-hostile-admin-0123456789';
const SCOPED_KEY = 'bench-hostile-scoped-0123456789';
/** Shorter than the defaults so held requests end well inside SLOW_MS; README states the defaults. */
const LIMITS = { headersTimeoutMs: 4000, requestTimeoutMs: 5000 };

let seed = Number(process.env.BENCH_SEED ?? 12);
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

interface Server {
  url: string;
  port: number;
  child: ChildProcess;
}

/** `tessera serve` on 127.0.0.1, port chosen by the system. */
function startServer(index: string, config: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'serve', '--index', index, '--host', '127.0.0.1', '--port', '0', '--no-viewer', '--config', config, '--slide-roots', join(PROJECT_ROOT, 'indexer', 'samples')], {
      env: { ...process.env, TESSERA_LOG_LEVEL: 'fatal' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk) => (stderr = (stderr + String(chunk)).slice(-4000)));
    child.stdout?.on('data', (chunk) => {
      const match = /serving at (http:\/\/127\.0\.0\.1:(\d+))\//.exec(String(chunk));
      if (match) resolve({ url: match[1] as string, port: Number(match[2]), child });
    });
    child.once('exit', (code) => reject(new Error(`tessera serve exited ${code}: ${stderr}`)));
  });
}

/** The process's resident set and its peak (VmHWM), MiB. */
function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/** Resets VmHWM so that the next peak is this phase's (Linux: clear_refs 5). False where not allowed. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

interface Sent {
  label: string;
  status: number;
  ms: number;
}

/** Sends bytes on a fresh connection; the status of the answer (0: closed without one). */
function send(port: number, label: string, bytes: Buffer, limitMs = 30_000): Promise<Sent> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    let head = '';
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ label, status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), ms: performance.now() - started });
    };
    const timer = setTimeout(finish, limitMs);
    socket.on('data', (chunk: Buffer) => {
      if (head.length < 64) head += chunk.toString('latin1', 0, 64);
    });
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

/** Most requests carry the admin key, some the scoped key, some none (scope and 401 paths). */
function credentials(): Record<string, string> {
  const draw = random();
  return draw < 0.6 ? { Authorization: `Bearer ${ADMIN_KEY}` } : draw < 0.8 ? { Authorization: `Bearer ${SCOPED_KEY}` } : {};
}

function request(method: string, path: string, headers: Record<string, string>, body?: Buffer | string, rawHead?: string): Buffer {
  const data = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body, 'latin1');
  const lines = Object.entries({ Host: '127.0.0.1', Connection: 'close', ...credentials(), ...(body === undefined ? {} : { 'Content-Length': String(data.length) }), ...headers }).map(([name, value]) => `${name}: ${value}\r\n`);
  return Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.1\r\n${lines.join('')}${rawHead ?? ''}\r\n`, 'latin1'), data]);
}

const VALUES: unknown[] = [null, true, false, -1, 0, 1, 7, 224, 1e308, -1e308, 2 ** 53, 0.5, 'S1', '', '💥', '\u0000', '../../etc/passwd', 'A'.repeat(5000), [], {}, [1, 'a'], { in: 3 }, { not: { not: {} } }, { $where: 1 }];
const FIELDS = ['slideId', 'x', 'y', 'width', 'height', 'k', 'ef', 'filter', 'exclude', 'image', 'images', 'queries', 'label', 'labelField', '__proto__', 'constructor', 'size', 'level', 'format'];
const TEXT = ['', '0', '-1', '1', '1.5', 'abc', '99999999999999999999', '%00', '%zz', '..%2F..', '💥', 'A'.repeat(2000), 'true', '[]', '{}'];

function randomJson(): string {
  const body: Record<string, unknown> = {};
  for (let i = 1 + Math.floor(random() * 5); i > 0; i--) body[pick(FIELDS)] = pick(VALUES);
  return JSON.stringify(body);
}

function randomBytes(length: number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

/** The multipart cases of issue 12 and a few more. */
function malformedMultipart(): { contentType: string; body: string | Buffer } {
  const field = (name: string, value: string, eol = '\r\n') => `Content-Disposition: form-data; name="${name}"${eol}${eol}${value}${eol}`;
  const cases = [
    { contentType: 'multipart/form-data; boundary=XX', body: `--XX\r\n${field('k', '5')}` },
    { contentType: 'multipart/form-data; boundary=XX', body: '--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n' },
    { contentType: 'multipart/form-data', body: `--XX\r\n${field('k', '5')}--XX--\r\n` },
    { contentType: 'multipart/form-data; boundary=a b', body: `--a b\r\n${field('k', '5')}--a b--\r\n` },
    { contentType: 'multipart/form-data; boundary=XX', body: randomBytes(64 + Math.floor(random() * 4096)) },
    { contentType: 'multipart/form-data; boundary=XX', body: `--XX\n${field('k', '5', '\n')}--XX--\n` },
    { contentType: 'multipart/form-data; boundary=XX', body: `--XX\r\nContent-Type: text/plain\r\n\r\n${'a'.repeat(16_000 + Math.floor(random() * 34_000))}\r\n--XX--\r\n` },
    { contentType: 'multipart/form-data; boundary=XX', body: `--XX\r\n${field('filter', '{not json')}--XX--\r\n` },
    { contentType: 'multipart/form-data; boundary=XX', body: `--XX\r\n${field('image', 'not a file')}--XX--\r\n` },
    { contentType: 'multipart/form-data; boundary=XX', body: `--XX\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n${randomBytes(300).toString('latin1')}\r\n--XX--\r\n` },
    { contentType: 'multipart/form-data; boundary="' + 'b'.repeat(80) + '"', body: '--b\r\n' },
  ];
  return pick(cases);
}

/** A path of the OpenAPI document with its parameters filled: sensibly, randomly or wrongly. */
function fillPath(template: string): string {
  return template.replace(/\{(\w+)\}/g, () => encodeURIComponent(pick(['S1', 'S2', 'nope', 'CMU-1-Small-Region.svs', ...TEXT])));
}

function queryString(): string {
  if (random() < 0.3) return '';
  const parts = Array.from({ length: 1 + Math.floor(random() * 5) }, () => `${pick(FIELDS)}=${encodeURIComponent(pick(TEXT))}`);
  return `?${parts.join('&')}`;
}

function corpus(paths: Array<{ path: string; method: string }>, count: number): Array<{ label: string; bytes: Buffer }> {
  const out: Array<{ label: string; bytes: Buffer }> = [];
  for (let i = 0; i < count; i++) {
    const route = paths[i % paths.length] as { path: string; method: string };
    const path = fillPath(route.path);
    const kind = Math.floor(random() * 10);
    const label = `${route.method} ${route.path} #${kind}`;
    const method = route.method.toUpperCase();
    let bytes: Buffer;
    if (kind === 0) bytes = request(method, path + queryString(), {});
    else if (kind === 1) bytes = request(method, path, { 'Content-Type': 'application/json' }, randomJson());
    else if (kind === 2) bytes = request(method, path, { 'Content-Type': 'application/json' }, randomJson().slice(0, Math.floor(random() * 20)));
    else if (kind === 3) {
      const { contentType, body } = malformedMultipart();
      bytes = request(method === 'GET' ? 'POST' : method, path, { 'Content-Type': contentType }, body);
    } else if (kind === 4) bytes = request(method, path, { 'Content-Type': pick(['text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'image/png', '', ';;;', 'application/json; charset=utf-7']) }, randomBytes(Math.floor(random() * 2048)));
    else if (kind === 5) bytes = request(method, path, { Authorization: pick(['Bearer', 'Bearer  x y', 'Basic abc', 'A'.repeat(9000)]), 'X-Api-Key': pick(['', '💥', 'k']) });
    else if (kind === 6) bytes = request(pick(['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'CONNECT', 'FOO']), path, {});
    else if (kind === 7) bytes = Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.1\r\n`), randomBytes(Math.floor(random() * 512)), Buffer.from('\r\n\r\n')]);
    else if (kind === 8) bytes = request(method, pick([`${path}/../../..`, `${path}%00`, `${path}?${'a=1&'.repeat(500)}`, `/${'x'.repeat(8000)}`, `${path}/%E0%A4%A`, '*', `//${path}`]), {});
    else bytes = request(method, path, { 'Content-Type': 'application/json', 'Transfer-Encoding': pick(['chunked', 'gzip', 'chunked, chunked']) }, `${pick(['5', 'zz', '-1', '0'])}\r\nhello\r\n0\r\n\r\n`);
    out.push({ label, bytes });
  }
  return out;
}

/** Requests that never complete, with a valid key so they get past authentication: the server must end them itself. */
function heldRequests(): Array<{ label: string; bytes: Buffer }> {
  const held = [
    { label: 'held: body shorter than Content-Length', bytes: Buffer.from(`POST /v1/search/region HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"slideId"`) },
    { label: 'held: chunk size 7fffffffffffffff', bytes: Buffer.from(`POST /v1/search/region HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc`) },
    { label: 'held: headers never end', bytes: Buffer.from(`GET /v1/slides HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nX-Slow: 1`) },
    { label: 'held: multipart part without Content-Disposition, cut short', bytes: Buffer.from(`POST /v1/search/region HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nContent-Type: multipart/form-data; boundary=XX\r\nContent-Length: 60000\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n${'a'.repeat(30_000)}`) },
  ];
  return held.flatMap((entry) => Array.from({ length: 25 }, () => entry));
}

async function runAll(port: number, items: Array<{ label: string; bytes: Buffer }>, concurrency = CONCURRENCY): Promise<Sent[]> {
  const results: Sent[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++] as { label: string; bytes: Buffer };
        results.push(await send(port, item.label, item.bytes));
      }
    }),
  );
  return results;
}

// --- run ---------------------------------------------------------------------------------------
console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; client and server share these cores`);
const index = join(CACHE, 'sample-index');
if (!existsSync(join(index, 'index.json'))) {
  console.log('indexing the bundled samples into .cache/sample-index…');
  await new Promise<void>((resolve, reject) => spawn(process.execPath, [BIN, 'index', '--slides', join(PROJECT_ROOT, 'indexer', 'samples'), '--out', index], { stdio: 'ignore' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`indexing failed (${code})`)))));
}
mkdirSync(join(CACHE, 'bench'), { recursive: true });
const config = join(CACHE, 'bench', 'hostile-config.json');
writeFileSync(
  config,
  JSON.stringify({
    keys: [
      { id: 'admin', sha256: hashKey(ADMIN_KEY), datasets: ['*'], admin: true },
      { id: 'scoped', sha256: hashKey(SCOPED_KEY), datasets: ['elsewhere'], admin: false },
    ],
    limits: LIMITS,
  }),
);
const auth = { authorization: `Bearer ${ADMIN_KEY}` };
const server = await startServer(index, config);
const pid = server.child.pid as number;
const started = performance.now();
try {
  const openapi = (await (await fetch(`${server.url}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
  const routes = Object.entries(openapi.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => ({ path, method })));
  const slides = ((await (await fetch(`${server.url}/v1/slides`, { headers: auth })).json()) as { slides: Array<{ slideId: string }> }).slides.map((slide) => slide.slideId);
  const before = memoryOf(pid);
  console.log(`server pid ${pid} at ${server.url}: ${routes.length} routes in its OpenAPI document, ${slides.length} slides; RSS ${before.rssMb.toFixed(0)} MiB`);

  const fuzzed = await runAll(server.port, corpus(routes, REQUESTS));
  // All held at once (100 sockets, under the per-client cap of 256): they cost the server nothing but a descriptor each.
  const held = await runAll(server.port, heldRequests(), 100);
  const all = [...fuzzed, ...held];
  const after = memoryOf(pid);

  // 8 concurrent 8192² → 8 px region reads of every slide, peak RSS sampled every 10 ms (and VmHWM).
  const peakReset = resetPeak(pid);
  const regionBase = memoryOf(pid).rssMb;
  let sampledPeak = regionBase;
  const sampler = setInterval(() => (sampledPeak = Math.max(sampledPeak, memoryOf(pid).rssMb)), 10);
  const regionStatuses: number[] = [];
  const regionStarted = performance.now();
  for (const slideId of slides) {
    const answers = await Promise.all(Array.from({ length: 8 }, () => fetch(`${server.url}/v1/slides/${encodeURIComponent(slideId)}/region?x=0&y=0&width=8192&height=8192&size=8`, { headers: auth }).then(async (response) => (await response.arrayBuffer(), response.status))));
    regionStatuses.push(...answers);
  }
  clearInterval(sampler);
  const regionMs = performance.now() - regionStarted;
  const regionPeak = Math.max(sampledPeak, peakReset ? memoryOf(pid).peakMb : 0);
  const health = await fetch(`${server.url}/health`);

  const statuses: Record<string, number> = {};
  for (const result of all) statuses[result.status === 0 ? 'closed' : String(result.status)] = (statuses[String(result.status === 0 ? 'closed' : result.status)] ?? 0) + 1;
  const fiveXx = all.filter((result) => result.status >= 500);
  const slow = all.filter((result) => result.ms > SLOW_MS);
  const heldMaxMs = Math.max(...held.map((result) => result.ms));
  const sorted = fuzzed.map((result) => result.ms).sort((a, b) => a - b);

  console.log(`\nrequests sent: ${all.length} (${fuzzed.length} fuzzed over ${routes.length} routes, seed ${process.env.BENCH_SEED ?? 12}; ${held.length} held open), ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log(`statuses: ${Object.entries(statuses).sort().map(([status, count]) => `${status}×${count}`).join('  ')}`);
  console.log(`5xx: ${fiveXx.length} (must be 0)${fiveXx.length ? `: ${[...new Set(fiveXx.map((result) => `${result.label} → ${result.status}`))].slice(0, 10).join('; ')}` : ''}`);
  console.log(`requests over ${SLOW_MS / 1000} s: ${slow.length} (must be 0); fuzzed p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(0)} ms; held requests ended by ${(heldMaxMs / 1000).toFixed(1)} s (request timeout ${LIMITS.requestTimeoutMs / 1000} s)`);
  console.log(`server RSS: ${before.rssMb.toFixed(0)} MiB before, ${after.rssMb.toFixed(0)} MiB after`);
  console.log(`8 concurrent 8192² → 8 px region requests × ${slides.length} slides: statuses ${[...new Set(regionStatuses)].join(',')}, ${regionMs.toFixed(0)} ms; RSS ${regionBase.toFixed(0)} MiB before, peak ${regionPeak.toFixed(0)} MiB (+${(regionPeak - regionBase).toFixed(0)} MiB)`);
  console.log('  (issue 12, before block reads: +219 MB for one such request, 1,089 MB for six at once)');
  console.log(`/health afterwards: ${health.status}`);

  const out = join(PROJECT_ROOT, 'benchmarks', 'results');
  mkdirSync(out, { recursive: true });
  const file = join(out, `hostile-${new Date().toISOString().replace(/:/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version },
        seed: Number(process.env.BENCH_SEED ?? 12),
        limits: LIMITS,
        routes: routes.length,
        requests: all.length,
        fuzzed: fuzzed.length,
        held: held.length,
        statuses,
        fiveXx: fiveXx.length,
        fiveXxSamples: [...new Set(fiveXx.map((result) => `${result.label} → ${result.status}`))].slice(0, 50),
        overTenSeconds: slow.length,
        heldMaxMs: Math.round(heldMaxMs),
        rssMb: { before: Math.round(before.rssMb), after: Math.round(after.rssMb) },
        region8192To8: { concurrent: 8, slides: slides.length, statuses: [...new Set(regionStatuses)], baseMb: Math.round(regionBase), peakMb: Math.round(regionPeak), ms: Math.round(regionMs) },
      },
      null,
      2,
    )}\n`,
  );
  console.log(`wrote ${file}`);
  process.exitCode = fiveXx.length > 0 || slow.length > 0 || health.status !== 200 ? 1 : 0;
} finally {
  server.child.kill('SIGTERM');
}
