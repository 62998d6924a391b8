/**
 * bench:index section `growth`: how a shard's costs grow as it grows.
 *   incremental  BENCH_GROWTH_SLIDES (2,000) slides of 100 synthetic 1280-d tiles, one commit per
 *                slide: time and bytes written per commit, first 10% against last 10%, total time
 *                (until every segment is built) against one bulk hnswlib build of the same vectors
 *   large        a shard past 2.5 GiB of vectors (BENCH_GROWTH_LARGE, 550,000 × 1280-d, a cheap
 *                graph: M 8, efConstruction 32) commits, reopens, verifies and answers searches
 *   serving      BENCH_GROWTH_SERVE_N (1,000,000) 384-d tiles built incrementally by the merge
 *                policy: segments left, recall@10 against FAISS's exact top 10 and p50 per query at
 *                several ef, open time, serving RSS with 1 and 2 search threads
 * Needs no shared data. Prints a table per part and returns the figures for the results JSON.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { asSlideId, createOrCheckIndex, IndexStore, type LocalShard, type NewTile } from '../../engine/index.js';
import { seeded, threadBytesWritten } from '../../test/engine/index/synthetic-shards.js';
import { PROJECT_ROOT, SYSTEM_PYTHON } from '../../test/shared-data.js';

const { HierarchicalNSW } = hnswlib;

type Random = () => number;

/**
 * Vectors as the ANN section makes them: clusters on the sphere, each spread along its own
 * 16-dimensional subspace with decaying variance, plus a little noise (low intrinsic dimension).
 */
export function subspaceMixture(dim: number, random: Random, clusters = 2000): () => Float32Array {
  const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const normalize = (vector: Float32Array) => {
    let sum = 0;
    for (const v of vector) sum += v * v;
    const norm = Math.sqrt(sum) || 1;
    for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] as number) / norm;
    return vector;
  };
  const rank = 16;
  const centres = Array.from({ length: clusters }, () => normalize(Float32Array.from({ length: dim }, gaussian)));
  const bases = Array.from({ length: clusters }, () => Array.from({ length: rank }, () => normalize(Float32Array.from({ length: dim }, gaussian))));
  const scales = Array.from({ length: clusters }, () => 0.2 + random() * 0.4);
  return () => {
    const c = Math.floor(random() * clusters);
    const vector = Float32Array.from(centres[c] as Float32Array, (v) => v + gaussian() * 0.01);
    (bases[c] as Float32Array[]).forEach((axis, j) => {
      const amount = (gaussian() * (scales[c] as number)) / Math.sqrt(j + 1);
      for (let d = 0; d < dim; d++) vector[d] = (vector[d] as number) + amount * (axis[d] as number);
    });
    return normalize(vector);
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / Math.max(1, values.length);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

function slideOf(shard: LocalShard, slideId: string, vectors: Float32Array[]): void {
  const tiles: NewTile[] = vectors.map((vector, i) => ({ tile: { x: (i % 100) * 224, y: Math.floor(i / 100) * 224, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0 }, vector }));
  shard.putSlide({ slideId: asSlideId(slideId), path: '', metadata: { dataset: 'bench' }, fingerprint: { size: 0, mtimeMs: 0, hash: slideId }, mppSupplied: true, mpp: [0.5, 0.5], width: 22_400, height: 224, indexedAt: '' }, tiles, [0]);
}

function newShardIndex(dim: number, hnsw: { M: number; efConstruction: number }, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  createOrCheckIndex(dir, { shards: 1, model: { id: `bench-${dim}`, version: '1', dimension: dim }, tile: { mpp: 0.5, sizePx: 224 }, hnsw });
  return dir;
}

/** Part 1: one commit per slide, from an empty shard to slides × 100 tiles. */
export async function incrementalGrowth(slides: number): Promise<Record<string, unknown>> {
  const dim = 1280;
  const hnsw = { M: 16, efConstruction: 100 };
  const tilesPerSlide = 100;
  const next = subspaceMixture(dim, seeded(11));
  const vectors = Array.from({ length: slides * tilesPerSlide }, next);
  console.log(`growth/incremental: ${slides} slides × ${tilesPerSlide} tiles of ${dim}-d (M ${hnsw.M}, efConstruction ${hnsw.efConstruction}), one commit per slide`);

  const dir = newShardIndex(dim, hnsw, 'tessera-growth-');
  const store = IndexStore.open(dir);
  const shard = store.shards[0] as LocalShard;
  const slideMs: number[] = [];
  const slideBytes: number[] = [];
  const started = performance.now();
  for (let s = 0; s < slides; s++) {
    const began = performance.now();
    const before = threadBytesWritten();
    slideOf(shard, `slide-${s}`, vectors.slice(s * tilesPerSlide, (s + 1) * tilesPerSlide));
    slideBytes.push(threadBytesWritten() - before);
    slideMs.push(performance.now() - began);
    // An indexer awaits reads and inference between slides: builder results are taken in then.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const committedSeconds = (performance.now() - started) / 1000;
  await store.close();
  const totalSeconds = (performance.now() - started) / 1000;
  const reader = IndexStore.open(dir, { readOnly: true, graph: false });
  const segments = reader.shards[0]?.segments ?? [];
  await reader.close();

  const bulkStarted = performance.now();
  const bulk = new HierarchicalNSW('cosine', dim);
  bulk.initIndex(vectors.length, hnsw.M, hnsw.efConstruction, 100, false);
  vectors.forEach((vector, label) => bulk.addPoint(Array.from(vector), label));
  const bulkSeconds = (performance.now() - bulkStarted) / 1000;
  rmSync(dir, { recursive: true, force: true });

  const tenth = Math.max(1, Math.floor(slides / 10));
  const first = slideMs.slice(0, tenth);
  const last = slideMs.slice(-tenth);
  const row = {
    slides,
    tiles: vectors.length,
    firstTenthMsPerSlide: { median: median(first), mean: mean(first) },
    lastTenthMsPerSlide: { median: median(last), mean: mean(last) },
    lateOverEarly: mean(last) / mean(first),
    bytesPerCommit: { first: median(slideBytes.slice(0, tenth)), last: median(slideBytes.slice(-tenth)) },
    committedSeconds,
    totalSeconds,
    bulkBuildSeconds: bulkSeconds,
    totalOverBulk: totalSeconds / bulkSeconds,
    segments: segments.map((ref) => ref.vectors),
  };
  console.log(`  per slide: first 10% ${row.firstTenthMsPerSlide.mean.toFixed(1)} ms (median ${row.firstTenthMsPerSlide.median.toFixed(1)}), last 10% ${row.lastTenthMsPerSlide.mean.toFixed(1)} ms (median ${row.lastTenthMsPerSlide.median.toFixed(1)}): ${row.lateOverEarly.toFixed(2)}× (target ≤ 1.5×)`);
  console.log(`  bytes written per commit (median): first 10% ${(row.bytesPerCommit.first / 1024).toFixed(0)} KiB, last 10% ${(row.bytesPerCommit.last / 1024).toFixed(0)} KiB (a slide's vectors are ${((tilesPerSlide * dim * 4) / 1024).toFixed(0)} KiB)`);
  console.log(`  total ${totalSeconds.toFixed(0)} s (commits done at ${committedSeconds.toFixed(0)} s, then the last fold) vs one bulk build ${bulkSeconds.toFixed(0)} s on one thread: ${row.totalOverBulk.toFixed(2)}× (target ≤ 1.3×); segments left: ${row.segments.join(', ')}\n`);
  return row;
}

/** Part 2: a shard whose vectors pass 2.5 GiB, in one segment file past 2 GiB. */
export async function largeShard(count: number): Promise<Record<string, unknown>> {
  const dim = 1280;
  const hnsw = { M: 8, efConstruction: 32 };
  const random = seeded(12);
  const centres = Array.from({ length: 256 }, () => Float32Array.from({ length: dim }, () => random() - 0.5));
  const vectorOf = () => {
    const centre = centres[Math.floor(random() * centres.length)] as Float32Array;
    const vector = Float32Array.from(centre, (v) => v + (random() - 0.5) * 0.3);
    let norm = 0;
    for (const v of vector) norm += v * v;
    norm = Math.sqrt(norm);
    for (let d = 0; d < dim; d++) vector[d] = (vector[d] as number) / norm;
    return vector;
  };
  console.log(`growth/large: ${count} × ${dim}-d = ${((count * dim * 4) / 2 ** 30).toFixed(2)} GiB of vectors, 1,000 tiles a commit, folded into one segment (M ${hnsw.M}, efConstruction ${hnsw.efConstruction})`);
  const dir = newShardIndex(dim, hnsw, 'tessera-large-');
  const started = performance.now();
  const store = IndexStore.open(dir, { policy: { foldTiles: count + 1, segmentsPerTier: 10, floorVectors: 50_000, maxTombstoneShare: 0.3 } });
  const shard = store.shards[0] as LocalShard;
  const probes: Float32Array[] = [];
  for (let s = 0; s * 1000 < count; s++) {
    const vectors = Array.from({ length: Math.min(1000, count - s * 1000) }, vectorOf);
    if (s % 50 === 0) probes.push(vectors[7] as Float32Array);
    slideOf(shard, `large-${s}`, vectors);
  }
  const commitSeconds = (performance.now() - started) / 1000;
  await store.close();
  const buildSeconds = (performance.now() - started) / 1000 - commitSeconds;
  const openStarted = performance.now();
  const reader = IndexStore.open(dir, { readOnly: true });
  const openSeconds = (performance.now() - openStarted) / 1000;
  const verifyStarted = performance.now();
  const problems = reader.shards[0]?.verify() ?? ['no shard'];
  const verifySeconds = (performance.now() - verifyStarted) / 1000;
  const segment = reader.shards[0]?.segments[0];
  let found = 0;
  // At the ef the segment measured for recall@10 ≥ 0.95 when it was built (no ef given).
  for (const probe of probes) if ((reader.search(probe, { k: 1 })[0]?.score ?? 0) > 0.9999) found++;
  await reader.close();
  rmSync(dir, { recursive: true, force: true });
  const row = { tuned: segment?.tuned, tiles: count, vectorGiB: (count * dim * 4) / 2 ** 30, segmentGiB: (segment?.bytes ?? 0) / 2 ** 30, commitSeconds, buildSeconds, openSeconds, verifySeconds, problems, probesFound: `${found}/${probes.length}` };
  console.log(`  committed in ${commitSeconds.toFixed(0)} s, segment of ${row.segmentGiB.toFixed(2)} GiB built in ${buildSeconds.toFixed(0)} s, reopened in ${openSeconds.toFixed(1)} s, verified in ${verifySeconds.toFixed(0)} s: ${problems.length === 0 ? 'every invariant holds' : problems.join('; ')}; ${row.probesFound} probes found themselves at the tuned ef ${segment?.tuned?.ef} (recall@10 ${segment?.tuned?.recall10.toFixed(3)} measured at build)\n`);
  return row;
}

/** Part 3: a large 384-d shard built by the merge policy, then served. */
export async function servingShard(count: number, cacheDir: string): Promise<Record<string, unknown>> {
  const dim = 384;
  const hnsw = { M: 16, efConstruction: 100 };
  const next = subspaceMixture(dim, seeded(13));
  const dir = join(cacheDir, `growth-serving-${count}`);
  const vectorsPath = join(dir, 'vectors.f32');
  const queriesPath = join(dir, 'queries.f32');
  const gtPath = join(dir, 'gt.i32');
  let buildSeconds: number | null = null;
  if (!existsSync(join(dir, 'ready'))) {
    rmSync(dir, { recursive: true, force: true });
    createOrCheckIndex(dir, { shards: 1, model: { id: `bench-${dim}`, version: '1', dimension: dim }, tile: { mpp: 0.5, sizePx: 224 }, hnsw });
    console.log(`growth/serving: building ${count} × ${dim}-d through the merge policy (1,000 tiles a commit)…`);
    const all = new Float32Array(count * dim);
    const started = performance.now();
    const store = IndexStore.open(dir);
    const shard = store.shards[0] as LocalShard;
    for (let s = 0; s * 1000 < count; s++) {
      const vectors = Array.from({ length: Math.min(1000, count - s * 1000) }, next);
      vectors.forEach((vector, i) => all.set(vector, (s * 1000 + i) * dim));
      slideOf(shard, `serve-${s}`, vectors);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await store.close();
    buildSeconds = (performance.now() - started) / 1000;
    writeFileSync(vectorsPath, Buffer.from(all.buffer));
    const queries = new Float32Array(500 * dim);
    for (let q = 0; q < 500; q++) queries.set(next(), q * dim);
    writeFileSync(queriesPath, Buffer.from(queries.buffer));
    execFileSync(SYSTEM_PYTHON, [join(PROJECT_ROOT, 'benchmarks', 'index', 'faiss_peer.py'), vectorsPath, queriesPath, String(dim), join(dir, 'gt.json'), '--gt', gtPath, '--gt-only'], { stdio: 'inherit' });
    writeFileSync(join(dir, 'build.json'), JSON.stringify({ buildSeconds }));
    writeFileSync(join(dir, 'ready'), '');
  } else buildSeconds = (JSON.parse(readFileSync(join(dir, 'build.json'), 'utf8')) as { buildSeconds: number }).buildSeconds;
  const queries = new Float32Array(readFileSync(queriesPath).buffer.slice(0));
  const gt = new Int32Array(readFileSync(gtPath).buffer.slice(0));
  const openStarted = performance.now();
  const store = IndexStore.open(dir, { readOnly: true });
  store.shards[0]?.preload();
  const openSeconds = (performance.now() - openStarted) / 1000;
  const segments = store.shards[0]?.segments.map((ref) => ref.vectors) ?? [];
  const tunedEfs = store.shards[0]?.segments.map((ref) => ref.tuned?.ef ?? 'none') ?? [];
  const rows = [];
  // undefined: each segment at the ef it measured for recall@10 ≥ 0.95 when it was built (the default).
  for (const ef of [undefined, 32, 64, 96, 128, 192]) {
    const latencies: number[] = [];
    let found = 0;
    for (let q = 0; q < queries.length / dim; q++) {
      const query = queries.subarray(q * dim, (q + 1) * dim);
      const began = performance.now();
      const hits = store.search(query, ef === undefined ? { k: 10 } : { k: 10, ef });
      latencies.push(performance.now() - began);
      const truth = new Set(gt.subarray(q * 10, q * 10 + 10));
      found += hits.filter((hit) => truth.has(hit.label)).length;
    }
    latencies.sort((a, b) => a - b);
    rows.push({ ef: ef ?? 'tuned', recall10: found / latencies.length / 10, p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) });
  }
  await store.close();
  const rss = (threads: number) => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'benchmarks', 'index', 'serving-rss.ts'), dir, String(threads)], { cwd: PROJECT_ROOT, encoding: 'utf8' });
    return JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { rssMiB: number; openSeconds: number };
  };
  const one = rss(1);
  const two = rss(2);
  console.log(`growth/serving: ${count} × ${dim}-d built incrementally in ${buildSeconds?.toFixed(0)} s; segments left: ${segments.join(', ')} (tuned ef ${tunedEfs.join(', ')}); opened (records and graphs, one thread) in ${openSeconds.toFixed(1)} s`);
  for (const row of rows) console.log(`  ef ${String(row.ef).padStart(5)}: recall@10 ${row.recall10.toFixed(3)}  p50 ${row.p50Ms.toFixed(3)} ms  p99 ${row.p99Ms.toFixed(3)} ms (one thread)`);
  const atTarget = rows.find((row) => row.ef !== 'tuned' && row.recall10 >= 0.95);
  console.log(`  at recall ≥ 0.95: ${atTarget ? `ef ${atTarget.ef}, p50 ${atTarget.p50Ms.toFixed(3)} ms (target ≤ 1 ms)` : 'not reached'}`);
  console.log(`  serving RSS (LocalShardGroup): 1 search thread ${one.rssMiB.toFixed(0)} MiB (open ${one.openSeconds.toFixed(1)} s), 2 threads ${two.rssMiB.toFixed(0)} MiB (open ${two.openSeconds.toFixed(1)} s): ${(((two.rssMiB - one.rssMiB) / one.rssMiB) * 100).toFixed(1)}% apart (target ≤ 10%)\n`);
  return { count, dim, buildSeconds, segments, openSeconds, ef: rows, rss: { oneThread: one, twoThreads: two } };
}
