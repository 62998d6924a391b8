/**
 * npm run bench:index — indexing throughput, ANN recall/latency against FAISS, filtered search,
 * and retrieval quality of the default model. Sections (BENCH_SECTIONS, comma-separated):
 *   indexing     tessera index over the shared slides and --tiles over LC25000 lung, each against
 *                the model alone in the same run; reading alone per format (tiles/s per core and
 *                ms of CPU a tile, tile-library images included); on CPU the bound that sharing
 *                the cores sets (model CPU ÷ (model + reading CPU)); peak RSS. BENCH_DEVICE (cpu),
 *                BENCH_MODEL (default model), BENCH_TILES_LIMIT, BENCH_INDEXING=slides,tiles,reading
 *   ann-real     recall@10 and latency on the real embeddings of the shared data
 *   ann-synthetic  BENCH_ANN_N (default 1,000,000) 384-d vectors from a Gaussian mixture on the
 *                sphere; hnswlib vs FAISS HNSW (python3-faiss) at equal M and efConstruction, one
 *                query at a time on one thread; build time, bytes per vector, load time. The built
 *                indexes and ground truth are cached in .cache/bench (a 1M build takes ~20 min here)
 *   filtered     BENCH_FILTER_N (200,000) tiles in one LocalShard: search at 50%, 5%, 0.5% and 0.05%
 *                of tiles admitted against unfiltered at equal recall, with and without sub-graphs,
 *                and the sub-graphs' build time and bytes (see filtered.ts)
 *   quality      precision@1, majority vote@5, mAP@5 on LC25000 (group-aware) and Kather
 *   growth       how a shard's costs grow with it: per-commit time and bytes early vs late, total
 *                vs one bulk build, a shard past 2.5 GiB, a 1M-tile shard served (see growth.ts)
 * Writes benchmarks/results/index-<time>.json.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { pino } from 'pino';
import { DEFAULT_TILE_CACHE_BYTES, DEFAULT_TILE_SPEC, Embedder, PreprocessPool, configureDecoding, openSlide, parseDevice, readGridTile, resolveModel, slideMppOf, tileCache, tileGrid } from '../../engine/index.js';
import { runIndex } from '../../indexer/pipeline.js';
import { ensureSyntheticSlide } from '../slides/synthetic-slide.js';
import { filteredSearch } from './filtered.js';
import { incrementalGrowth, largeShard, servingShard } from './growth.js';
import { qualityWithD8 } from './quality-d8.js';
import { PROJECT_ROOT, SLIDES, SYSTEM_PYTHON, TILES, hasSharedData } from '../../test/shared-data.js';

const { HierarchicalNSW } = hnswlib;
const SECTIONS = new Set((process.env.BENCH_SECTIONS ?? 'indexing,ann-real,ann-synthetic,filtered,quality,growth').split(','));
const ANN_N = Number(process.env.BENCH_ANN_N ?? 1_000_000);
// FAISS 1.7.3 from Debian builds HNSW slowly here (57 s for 20k vectors on 2 threads): above this
// size only its exact ground truth is used unless BENCH_FAISS_MAX_N says otherwise.
const FAISS_MAX_N = Number(process.env.BENCH_FAISS_MAX_N ?? 200_000);
const CACHE = join(PROJECT_ROOT, '.cache', 'bench');
const EFS = [16, 32, 64, 128, 256];
const results: Record<string, unknown> = {};

if (!hasSharedData) {
  console.log(`bench:index skipped: shared data not found at ${SLIDES}`);
  process.exit(0);
}
mkdirSync(CACHE, { recursive: true });
console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}\n`);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
let seed = 20261123;
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());

function normalize(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const v of vector) sum += v * v;
  const norm = Math.sqrt(sum) || 1;
  for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}

function dot(a: Float32Array, aOffset: number, b: Float32Array, bOffset: number, dim: number): number {
  let sum = 0;
  for (let d = 0; d < dim; d++) sum += (a[aOffset + d] ?? 0) * (b[bOffset + d] ?? 0);
  return sum;
}

/** Exact top-k by inner product for each query (brute force). */
function exactTopK(data: Float32Array, n: number, queries: Float32Array, q: number, dim: number, k: number): Int32Array {
  const out = new Int32Array(q * k);
  for (let qi = 0; qi < q; qi++) {
    const best: Array<[number, number]> = [];
    for (let i = 0; i < n; i++) {
      const score = dot(queries, qi * dim, data, i * dim, dim);
      if (best.length < k || score > (best[best.length - 1] as [number, number])[0]) {
        best.push([score, i]);
        best.sort((a, b) => b[0] - a[0]);
        if (best.length > k) best.pop();
      }
    }
    best.forEach(([, index], j) => (out[qi * k + j] = index));
  }
  return out;
}

interface EfResult {
  ef: number;
  recall10: number;
  p50Ms: number;
  p99Ms: number;
  qps: number;
}

function measureHnsw(index: InstanceType<typeof HierarchicalNSW>, queries: Float32Array, q: number, dim: number, gt: Int32Array): EfResult[] {
  return EFS.map((ef) => {
    index.setEf(ef);
    const latencies: number[] = [];
    let hits = 0;
    for (let qi = 0; qi < q; qi++) {
      const query = Array.from(queries.subarray(qi * dim, (qi + 1) * dim));
      const started = performance.now();
      const { neighbors } = index.searchKnn(query, 10);
      latencies.push(performance.now() - started);
      const truth = new Set(gt.subarray(qi * 10, qi * 10 + 10));
      hits += neighbors.filter((label) => truth.has(label)).length;
    }
    latencies.sort((a, b) => a - b);
    return { ef, recall10: hits / (q * 10), p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99), qps: q / (latencies.reduce((s, v) => s + v, 0) / 1000) };
  });
}

function printEf(name: string, rows: EfResult[]): void {
  for (const row of rows) console.log(`  ${name.padEnd(8)} ef ${String(row.ef).padStart(3)}: recall@10 ${row.recall10.toFixed(3)}  p50 ${row.p50Ms.toFixed(3)} ms  p99 ${row.p99Ms.toFixed(3)} ms  ${row.qps.toFixed(0)} QPS/core`);
}

// ── indexing ────────────────────────────────────────────────────────────────────────────────
// End to end against the model alone, in the same run: the model-only rate is measured just
// before and just after each end-to-end run (this machine drifts) and their mean is the
// reference. Then reading alone (decode + preprocess, one core, per format), which says how many
// cores one accelerator needs: model tiles/s ÷ reading tiles/s per core.
if (SECTIONS.has('indexing')) {
  const device = parseDevice(process.env.BENCH_DEVICE ?? 'cpu');
  const modelId = process.env.BENCH_MODEL;
  const tileLimit = Number(process.env.BENCH_TILES_LIMIT ?? 0);
  console.log(`indexing: tessera index over the shared slides and --tiles over LC25000 lung (${process.env.BENCH_DEVICE ?? 'cpu'}, ${modelId ?? 'default model'})`);
  configureDecoding({ decodeThreads: cpus().length });
  const out = mkdtempSync(join(tmpdir(), 'tessera-bench-index-'));
  const model = resolveModel(modelId, join(out, 'models'));
  const probe = await Embedder.create(model, { device, preprocessThreads: 0 });
  const zeros = Array.from({ length: probe.batchSize }, () => new Float32Array(3 * model.manifest.inputSize ** 2));
  /** CPU time of this process in ms (every thread): what a tile costs whatever else loads the machine. */
  const cpuMs = (): number => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  /** The model's CPU per tile, from the latest model-only run (on CPU, all of the process's work then). */
  let modelCpuMsPerTile = 0;
  /** Model-only tiles/s: batches of zeros with every session busy, for about `seconds`. */
  const modelOnly = async (seconds: number): Promise<number> => {
    await probe.embedPreprocessed(zeros.map((zero) => zero.slice()));
    const cpuStarted = cpuMs();
    const started = performance.now();
    const queued: Array<Promise<unknown>> = [];
    let tiles = 0;
    while (performance.now() - started < seconds * 1000) {
      queued.push(probe.embedPreprocessed(zeros.map((zero) => zero.slice())));
      tiles += zeros.length;
      if (queued.length > probe.parallelism) await queued.shift();
    }
    await Promise.all(queued);
    modelCpuMsPerTile = (cpuMs() - cpuStarted) / tiles;
    return tiles / ((performance.now() - started) / 1000);
  };
  const files = ['CMU-1-Small-Region.svs', 'tcga-cr-7395-01a-01-ts1.svs', 'ndpi/test3-DAPI-2-387.ndpi', 'ndpi/test3-TRITC-2-560.ndpi', 'derived/cmu1-small-pyramid-jpeg.tif', 'derived/cmu1-crop1024-pyramid.ome.tif', 'tcga-small-dicom.dcm'];
  // The large slide is what makes this a throughput figure rather than start-up time: built once
  // (as bench:slides does) unless BENCH_SYNTHETIC=0.
  const synthetic = join(CACHE, 'synthetic-40960.tif');
  if (process.env.BENCH_SYNTHETIC !== '0') await ensureSyntheticSlide(synthetic, [join(SLIDES, 'CMU-1-Small-Region.svs'), join(SLIDES, 'derived', 'cmu1-small-pyramid-jpeg.tif')]);
  const csv = join(out, 'meta.csv');
  writeFileSync(csv, ['slide_id,path,mpp', ...files.map((file) => `${file},${join(SLIDES, file)},${file.startsWith('tcga') ? 0.25 : ''}`), ...(existsSync(synthetic) ? [`synthetic,${synthetic},`] : [])].join('\n'));
  const endToEnd = async (name: string, source: { metadata: string } | { tiles: string }) => {
    const before = await modelOnly(5);
    // The probe's sessions would compete with the run's: it idles meanwhile.
    const report = await runIndex({ ...source, out: join(out, name), ...(modelId ? { modelId } : {}), modelsDir: join(out, 'models'), shards: 2, device, tile: DEFAULT_TILE_SPEC, minTissue: 'tiles' in source ? 0 : 0.5, logger: pino({ level: 'warn' }), interactive: false });
    const after = await modelOnly(5);
    const reference = (before + after) / 2;
    const rss = process.resourceUsage().maxRSS / 1024;
    console.log(`  ${name}: ${report.slides.indexed} items, ${report.tiles} tiles in ${report.seconds.toFixed(1)} s: ${report.tilesPerSecond.toFixed(1)} tiles/s end to end vs ${reference.toFixed(1)} model only (${before.toFixed(1)} before, ${after.toFixed(1)} after): ${((100 * report.tilesPerSecond) / reference).toFixed(0)}%; ${report.slides.failed} failed; peak RSS so far ${rss.toFixed(0)} MiB`);
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    const { startupMs, embedInferenceMs, embedWaitMs, planWaitMs, writeMs, mosaicMs } = report.stages;
    console.log(`    stages: start-up (model into ${probe.parallelism} sessions, index) ${s(startupMs)}; inference ${s(embedInferenceMs)} summed over ${probe.parallelism} sessions (${((100 * embedInferenceMs) / (probe.parallelism * report.seconds * 1000)).toFixed(0)}% of their time), sessions waiting for tiles ${s(embedWaitMs)}; stream waiting for plans ${s(planWaitMs)}; commits on the main thread ${s(writeMs)}; mosaics ${s(mosaicMs)}`);
    return { ...report, failures: report.failures.map((failure) => failure.code), modelOnlyTilesPerSecond: reference, modelOnlyBefore: before, modelOnlyAfter: after, shareOfModelOnly: report.tilesPerSecond / reference, peakRssMiB: rss };
  };
  const parts = new Set((process.env.BENCH_INDEXING ?? 'slides,tiles,reading').split(','));
  const slides = parts.has('slides') ? await endToEnd('slides', { metadata: csv }) : { modelOnlyTilesPerSecond: await modelOnly(5) };
  if (!existsSync(synthetic)) console.log('    (without the 40 960² synthetic slide: BENCH_SYNTHETIC=0)');
  let tilesFolder = join(TILES, 'lc25000-lung-dev');
  if (tileLimit > 0) {
    // A smaller library for a quick run: the first N images, linked into a folder of their own.
    const { symlinkSync } = await import('node:fs');
    const subset = join(out, 'lung-subset');
    mkdirSync(subset);
    readdirSync(tilesFolder, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.jpeg')).sort().slice(0, tileLimit).forEach((name, i) => symlinkSync(join(tilesFolder, name), join(subset, `${i}-${name.replaceAll('/', '_')}`)));
    tilesFolder = subset;
  }
  const tiles = parts.has('tiles') ? await endToEnd('tiles', { tiles: tilesFolder }) : undefined;
  await probe.close();

  // Reading alone, one core: each tile read (fresh tile cache, one decoding thread) and
  // preprocessed on this thread, one at a time, so one core is busy at any moment.
  console.log('  reading alone (decode + resize + normalize, one tile at a time on one core), per format:');
  configureDecoding({ decodeThreads: 1 });
  const preprocess = new PreprocessPool(0);
  const reading: Record<string, number> = {};
  const readingCpuMs: Record<string, number> = {};
  const formats: Array<[string, string]> = [['SVS JPEG', 'CMU-1-Small-Region.svs'], ['SVS JPEG 2000', 'tcga-cr-7395-01a-01-ts1.svs'], ['NDPI', 'ndpi/test3-DAPI-2-387.ndpi'], ['pyramidal TIFF JPEG', 'derived/cmu1-small-pyramid-jpeg.tif'], ['OME-TIFF', 'derived/cmu1-crop1024-pyramid.ome.tif'], ['DICOM', 'tcga-small-dicom.dcm']];
  if (existsSync(synthetic)) formats.push(['TIFF JPEG 40 960²', synthetic]);
  const lungImages = readdirSync(join(TILES, 'lc25000-lung-dev'), { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.jpeg')).sort().slice(0, 500);
  for (const [format, file] of formats) {
    if (!parts.has('reading')) break;
    tileCache.setMaxBytes(0);
    tileCache.setMaxBytes(DEFAULT_TILE_CACHE_BYTES);
    // Sequential access, as the indexer reads: every source tile decoded whole once and cached.
    const slide = await openSlide(file.startsWith('/') ? file : join(SLIDES, file), { access: 'sequential' });
    try {
      const mpp = slideMppOf(slide, file, file.startsWith('tcga') ? [0.25, 0.25] : undefined);
      const grid = (await tileGrid(slide, file, { ...DEFAULT_TILE_SPEC, minTissue: 0.5, slideMpp: mpp })).slice(0, 500);
      const cpuStarted = cpuMs();
      const started = performance.now();
      for (const tile of grid) await preprocess.batch([await readGridTile(slide, tile, DEFAULT_TILE_SPEC, { resize: false })], model.manifest);
      reading[format] = grid.length / ((performance.now() - started) / 1000);
      readingCpuMs[format] = (cpuMs() - cpuStarted) / grid.length;
      console.log(`    ${format.padEnd(20)} ${String(grid.length).padStart(4)} tiles: ${reading[format]!.toFixed(1)} tiles/s per core, ${readingCpuMs[format]!.toFixed(2)} ms CPU a tile (one core feeds ${((100 * reading[format]!) / slides.modelOnlyTilesPerSecond).toFixed(0)}% of this model here)`);
    } catch (error) {
      console.log(`    ${format.padEnd(20)} skipped: ${(error as Error).message}`);
    } finally {
      slide.close();
    }
  }
  if (parts.has('reading')) {
    // A tile library's image: opened (header), decoded whole, normalized (224² needs no resize).
    const format = 'LC25000 JPEG images';
    const cpuStarted = cpuMs();
    const started = performance.now();
    for (const name of lungImages) {
      const image = await openSlide(join(TILES, 'lc25000-lung-dev', name));
      await preprocess.batch([await readGridTile(image, { baseX: 0, baseY: 0, baseWidth: image.width, baseHeight: image.height, tissue: 1 }, { ...DEFAULT_TILE_SPEC, sizePx: image.width }, { resize: false })], model.manifest);
      image.close();
    }
    reading[format] = lungImages.length / ((performance.now() - started) / 1000);
    readingCpuMs[format] = (cpuMs() - cpuStarted) / lungImages.length;
    console.log(`    ${format.padEnd(20)} ${String(lungImages.length).padStart(4)} tiles: ${reading[format]!.toFixed(1)} tiles/s per core, ${readingCpuMs[format]!.toFixed(2)} ms CPU a tile`);
    if (device.kind !== 'cuda') {
      // On CPU the model and the reading share the same cores: end to end can reach at most
      // model CPU ÷ (model CPU + reading CPU) of model-only, whatever the pipeline overlaps.
      const bound = (format: string) => (readingCpuMs[format] === undefined ? 'n/a' : `${modelCpuMsPerTile.toFixed(2)} / (${modelCpuMsPerTile.toFixed(2)} + ${readingCpuMs[format]!.toFixed(2)}) = ${((100 * modelCpuMsPerTile) / (modelCpuMsPerTile + readingCpuMs[format]!)).toFixed(0)}%`);
      console.log(`  CPU bound on shared cores: model ${modelCpuMsPerTile.toFixed(2)} ms CPU a tile; slides (the 40 960² TIFF's tiles) ${bound('TIFF JPEG 40 960²')}; --tiles ${bound(format)}`);
    }
  }
  await preprocess.close();
  const rss = process.resourceUsage().maxRSS / 1024;
  console.log(`  peak RSS ${rss.toFixed(0)} MiB${device.kind === 'cuda' ? '' : '; no GPU measured in this run (BENCH_DEVICE=cuda and BENCH_MODEL=… on a GPU machine)'}\n`);
  results.indexing = { slides, tiles, readingTilesPerSecondPerCore: reading, readingCpuMsPerTile: readingCpuMs, modelCpuMsPerTile, peakRssMiB: rss };
}

// ── embeddings for ann-real and quality ─────────────────────────────────────────────────────
interface Labelled {
  vector: Float32Array;
  label: string;
  group: string;
}
async function embedFolder(files: Array<{ path: string; label: string; group: string }>): Promise<Labelled[]> {
  const embedder = await Embedder.create(resolveModel(), { device: { kind: 'cpu' }, batchSize: 32 });
  const out: Labelled[] = [];
  for (let start = 0; start < files.length; start += 64) {
    const chunk = files.slice(start, start + 64);
    const images = [];
    for (const file of chunk) {
      const slide = await openSlide(file.path);
      images.push(await slide.readRegion(0, 0, 0, slide.width, slide.height));
      slide.close();
    }
    const vectors = await embedder.embed(images);
    vectors.forEach((vector, i) => out.push({ vector, label: chunk[i]!.label, group: chunk[i]!.group }));
  }
  await embedder.close();
  return out;
}
let lung: Labelled[] = [];
let kather: Labelled[] = [];
if (SECTIONS.has('ann-real') || SECTIONS.has('quality')) {
  const lungDir = join(TILES, 'lc25000-lung-dev');
  const rows = readFileSync(join(lungDir, 'labels.csv'), 'utf8').trim().split('\n').slice(1).map((line) => line.split(','));
  const started = performance.now();
  lung = await embedFolder(rows.map(([file, label, group]) => ({ path: join(lungDir, file!), label: label!, group: group! })));
  const katherDir = join(TILES, 'kather2016-samples-24');
  kather = await embedFolder(readdirSync(katherDir).flatMap((label) => readdirSync(join(katherDir, label)).map((file) => ({ path: join(katherDir, label, file), label, group: file }))));
  console.log(`embedded ${lung.length} LC25000 and ${kather.length} Kather tiles in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}

// ── ann-real ────────────────────────────────────────────────────────────────────────────────
if (SECTIONS.has('ann-real')) {
  const all = [...lung, ...kather].map((item) => item.vector);
  const dim = all[0]!.length;
  const n = all.length;
  const data = new Float32Array(n * dim);
  all.forEach((vector, i) => data.set(vector, i * dim));
  const index = new HierarchicalNSW('cosine', dim);
  index.initIndex(n, 16, 100, 100);
  const started = performance.now();
  all.forEach((vector, i) => index.addPoint(Array.from(vector), i));
  const buildSeconds = (performance.now() - started) / 1000;
  const q = 200;
  const queries = new Float32Array(q * dim);
  for (let i = 0; i < q; i++) queries.set(all[Math.floor(random() * n)]!, i * dim);
  const gt = exactTopK(data, n, queries, q, dim, 10);
  console.log(`ann-real: ${n} real ${dim}-d embeddings (LC25000 + Kather), hnswlib M=16 efConstruction=100, built in ${buildSeconds.toFixed(1)} s`);
  const rows = measureHnsw(index, queries, q, dim, gt);
  printEf('hnswlib', rows);
  console.log();
  results.annReal = { n, dim, buildSeconds, ef: rows };
}

// ── ann-synthetic ───────────────────────────────────────────────────────────────────────────
if (SECTIONS.has('ann-synthetic')) {
  const dim = 384;
  const dir = join(CACHE, `ann-${ANN_N}-subspace`);
  mkdirSync(dir, { recursive: true });
  const vectorsPath = join(dir, 'vectors.f32');
  const queriesPath = join(dir, 'queries.f32');
  const q = 1000;
  // A mixture of 2,000 clusters of varying size on the sphere, each spread along its own
  // 16-dimensional subspace with decaying variance, plus a little isotropic noise: embeddings of a
  // collection cluster by tissue and stain and vary along few directions within a cluster (a low
  // intrinsic dimension), unlike i.i.d. Gaussian vectors.
  if (!existsSync(vectorsPath) || !existsSync(queriesPath)) {
    const clusters = 2000;
    const rank = 16;
    const centres = Array.from({ length: clusters }, () => normalize(Float32Array.from({ length: dim }, gaussian)));
    const bases = Array.from({ length: clusters }, () => Array.from({ length: rank }, () => normalize(Float32Array.from({ length: dim }, gaussian))));
    const scales = Array.from({ length: clusters }, () => 0.2 + random() * 0.4);
    const weights = Array.from({ length: clusters }, () => random() ** 3);
    const total = weights.reduce((s, w) => s + w, 0);
    const cumulative: number[] = [];
    weights.reduce((sum, w, i) => ((cumulative[i] = (sum + w) / total), sum + w), 0);
    const sample = () => {
      const r = random();
      let c = cumulative.findIndex((value) => value >= r);
      if (c < 0) c = clusters - 1;
      const vector = Float32Array.from(centres[c]!, (v) => v + gaussian() * 0.01);
      bases[c]!.forEach((axis, j) => {
        const amount = (gaussian() * scales[c]!) / Math.sqrt(j + 1);
        for (let d = 0; d < dim; d++) vector[d] = (vector[d] ?? 0) + amount * (axis[d] ?? 0);
      });
      return normalize(vector);
    };
    const write = (path: string, count: number) => {
      const block = new Float32Array(count * dim);
      for (let i = 0; i < count; i++) block.set(sample(), i * dim);
      writeFileSync(path, Buffer.from(block.buffer));
    };
    write(vectorsPath, ANN_N);
    write(queriesPath, q);
  }
  const data = new Float32Array(readFileSync(vectorsPath).buffer.slice(0));
  const queries = new Float32Array(readFileSync(queriesPath).buffer.slice(0));
  const hasFaiss = (() => {
    try {
      execFileSync(SYSTEM_PYTHON, ['-c', 'import faiss, numpy'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const gtPath = join(dir, 'gt.i32');
  let faissResult: { buildSeconds?: number; loadSeconds?: number; bytesPerVector?: number; buildThreads?: number; ef: EfResult[] } | null = null;
  if (hasFaiss) {
    const out = join(dir, 'faiss-result.json');
    const peer = ANN_N <= FAISS_MAX_N || existsSync(join(dir, 'faiss.index'));
    if (!peer) console.log(`  FAISS HNSW skipped above ${FAISS_MAX_N} vectors (BENCH_FAISS_MAX_N); FAISS computes the exact ground truth`);
    execFileSync(SYSTEM_PYTHON, [join(PROJECT_ROOT, 'benchmarks', 'index', 'faiss_peer.py'), vectorsPath, queriesPath, String(dim), out, '--gt', gtPath, '--index', join(dir, 'faiss.index'), ...(peer ? [] : ['--gt-only'])], { stdio: 'inherit', env: { ...process.env, OMP_NUM_THREADS: String(cpus().length) } });
    faissResult = peer ? JSON.parse(readFileSync(out, 'utf8')) : null;
  } else if (!existsSync(gtPath)) {
    console.log('  python3-faiss not installed (apt-get install python3-faiss): no FAISS peer; ground truth by brute force on 200 queries');
    writeFileSync(gtPath, Buffer.from(exactTopK(data, ANN_N, queries, 200, dim, 10).buffer));
  }
  const gt = new Int32Array(readFileSync(gtPath).buffer.slice(0));
  const queryCount = gt.length / 10;
  const hnswPath = join(dir, 'hnswlib.bin');
  const metaPath = join(dir, 'hnswlib-build.json');
  const index = new HierarchicalNSW('cosine', dim);
  let loadSeconds: number | undefined;
  if (existsSync(hnswPath) && existsSync(metaPath)) {
    const started = performance.now();
    index.readIndexSync(hnswPath);
    loadSeconds = (performance.now() - started) / 1000;
  } else {
    console.log(`  building hnswlib over ${ANN_N} vectors (one thread)…`);
    index.initIndex(ANN_N, 16, 100, 100);
    const started = performance.now();
    for (let i = 0; i < ANN_N; i++) index.addPoint(Array.from(data.subarray(i * dim, (i + 1) * dim)), i);
    writeFileSync(metaPath, JSON.stringify({ buildSeconds: (performance.now() - started) / 1000 }));
    index.writeIndexSync(hnswPath);
  }
  const build = JSON.parse(readFileSync(metaPath, 'utf8')) as { buildSeconds: number };
  const bytesPerVector = statSync(hnswPath).size / ANN_N;
  console.log(`ann-synthetic: ${ANN_N} × ${dim}-d mixture vectors, ${queryCount} queries, M=16 efConstruction=100`);
  console.log(`  hnswlib: build ${build.buildSeconds.toFixed(0)} s (1 thread), ${bytesPerVector.toFixed(0)} bytes/vector, load ${loadSeconds?.toFixed(1) ?? '—'} s`);
  if (faissResult) console.log(`  FAISS:   build ${faissResult.buildSeconds?.toFixed(0) ?? '(cached)'} s (${faissResult.buildThreads ?? '?'} threads), ${faissResult.bytesPerVector?.toFixed(0) ?? '—'} bytes/vector, load ${faissResult.loadSeconds?.toFixed(1) ?? '—'} s`);
  const ours = measureHnsw(index, queries, queryCount, dim, gt);
  printEf('hnswlib', ours);
  if (faissResult) printEf('FAISS', faissResult.ef);
  const atTarget = (rows: EfResult[]) => rows.find((row) => row.recall10 >= 0.95);
  const oursAt = atTarget(ours);
  const theirsAt = faissResult ? atTarget(faissResult.ef) : undefined;
  console.log(`  target recall@10 ≥ 0.95 at p50 ≤ 1 ms: ${oursAt ? `ef ${oursAt.ef}, recall ${oursAt.recall10.toFixed(3)}, p50 ${oursAt.p50Ms.toFixed(3)} ms — ${oursAt.p50Ms <= 1 ? 'met' : 'MISS'}` : 'recall 0.95 not reached — MISS'}`);
  if (oursAt && theirsAt) console.log(`  at recall ≥ 0.95: hnswlib p50 ${oursAt.p50Ms.toFixed(3)} ms vs FAISS ${theirsAt.p50Ms.toFixed(3)} ms = ${(oursAt.p50Ms / theirsAt.p50Ms).toFixed(2)}× (target ≤ 1.2×)`);
  console.log();
  results.annSynthetic = { n: ANN_N, dim, queries: queryCount, hnswlib: { buildSeconds: build.buildSeconds, bytesPerVector, loadSeconds, ef: ours }, faiss: faissResult };
}

// ── filtered ────────────────────────────────────────────────────────────────────────────────
if (SECTIONS.has('filtered')) results.filtered = await filteredSearch(Number(process.env.BENCH_FILTER_N ?? 200_000), CACHE);

// ── quality ─────────────────────────────────────────────────────────────────────────────────
if (SECTIONS.has('quality')) {
  const evaluate = (items: Labelled[]) => {
    let p1 = 0;
    let vote5 = 0;
    let ap5 = 0;
    for (const [qi, query] of items.entries()) {
      const neighbours = items
        .map((item, i) => ({ item, i, score: dot(query.vector, 0, item.vector, 0, query.vector.length) }))
        .filter(({ item, i }) => i !== qi && item.group !== query.group)
        .sort((a, b) => b.score - a.score)
        .slice(0, 5);
      if (neighbours[0]?.item.label === query.label) p1++;
      const votes = new Map<string, number>();
      for (const { item } of neighbours) votes.set(item.label, (votes.get(item.label) ?? 0) + 1);
      const top = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
      if (top === query.label) vote5++;
      let relevant = 0;
      let sum = 0;
      neighbours.forEach(({ item }, rank) => {
        if (item.label === query.label) {
          relevant++;
          sum += relevant / (rank + 1);
        }
      });
      ap5 += relevant > 0 ? sum / relevant : 0;
    }
    return { queries: items.length, precisionAt1: p1 / items.length, majorityVoteAt5: vote5 / items.length, mapAt5: ap5 / items.length };
  };
  const lungQuality = evaluate(lung);
  const katherQuality = evaluate(kather);
  console.log('quality of the default model (exact search; a query never matches its own group):');
  for (const [name, q] of [['LC25000 lung (3 classes)', lungQuality], ['Kather (8 classes)', katherQuality]] as const) {
    console.log(`  ${name.padEnd(26)} ${q.queries} queries: precision@1 ${q.precisionAt1.toFixed(3)}, majority vote@5 ${q.majorityVoteAt5.toFixed(3)}, mAP@5 ${q.mapAt5.toFixed(3)}`);
  }
  results.quality = { lc25000: lungQuality, kather: katherQuality };
  console.log();
  results.qualityD8 = await qualityWithD8();
}

// ── growth ──────────────────────────────────────────────────────────────────────────────────
if (SECTIONS.has('growth')) {
  const parts = new Set((process.env.BENCH_GROWTH_PARTS ?? 'incremental,large,serving').split(','));
  const growth: Record<string, unknown> = {};
  if (parts.has('incremental')) growth.incremental = await incrementalGrowth(Number(process.env.BENCH_GROWTH_SLIDES ?? 2000));
  if (parts.has('large')) growth.large = await largeShard(Number(process.env.BENCH_GROWTH_LARGE ?? 550_000));
  if (parts.has('serving')) growth.serving = await servingShard(Number(process.env.BENCH_GROWTH_SERVE_N ?? 1_000_000), CACHE);
  results.growth = growth;
}

const resultsDir = join(PROJECT_ROOT, 'benchmarks', 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, `index-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(out, JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, results }, null, 2));
console.log(`\nwritten ${out}`);
process.exit(0);
