/**
 * npm run bench:embed — embedding throughput of the default model on this machine.
 *
 * Prints model-only tiles/s at batch 1, 8 and 32 (preprocessed tensors straight into ONNX
 * Runtime) and, per slide and over all slides together, end-to-end tiles/s (tissue grid → read
 * with a cold tile cache → preprocess → embed, batch 32) as a share of model-only (target ≥ 85%),
 * with the wall time by stage. Each end-to-end run is paired with a model-only run over the
 * same number of tiles right before it, and the ratio is the median of the pairs: this machine is
 * shared and its speed drifts by ±20% between minutes. Writes benchmarks/results/embed-<time>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TILE_CACHE_BYTES, DEFAULT_TILE_SPEC, Embedder, configureDecoding, PreprocessPool, embedTiles, openSlide, readGridTile, resolveModel, tileCache, tileGrid, type EmbedTilesStats, type RgbImage, type SlideTile } from '../../engine/index.js';
import { DEFAULT_MODEL_ID } from '../../models/index.js';
import { PROJECT_ROOT, SLIDES, hasSharedData } from '../../test/shared-data.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BATCH = 32;

if (!hasSharedData) {
  console.log(`bench:embed skipped: shared data not found at ${SLIDES}`);
  process.exit(0);
}

// JPEG 2000 tiles decode on worker threads, as the indexer does, so the main thread keeps feeding the model.
configureDecoding({ decodeThreads: cpus().length });

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
const model = resolveModel(DEFAULT_MODEL_ID);
console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`);
console.log(`model: ${model.manifest.id} (${model.manifest.dimension}-d, ${model.manifest.inputSize} px), ONNX Runtime on CPU, medians of ${RUNS} runs`);

// Every tile of the grid (224 px at 0.5 µm/px) of four slides, opened for sequential reading.
const sources: Array<{ file: string; slideMpp?: [number, number] }> = [
  { file: 'CMU-1-Small-Region.svs' },
  { file: 'derived/cmu1-small-pyramid-jpeg.tif' },
  { file: 'ndpi/test3-DAPI-2-387.ndpi' },
  { file: 'tcga-cr-7395-01a-01-ts1.svs', slideMpp: [0.25, 0.25] },
];
const groups: Array<{ name: string; tiles: SlideTile[] }> = [];
for (const source of sources) {
  const slide = await openSlide(join(SLIDES, source.file), { access: 'sequential' });
  const grid = await tileGrid(slide, source.file, { minTissue: 0, ...(source.slideMpp ? { slideMpp: source.slideMpp } : {}) });
  groups.push({ name: source.file, tiles: grid.map((tile) => ({ slide, tile })) });
}
groups.push({ name: 'all four slides, one stream', tiles: groups.flatMap((group) => group.tiles) });

const copyOf = (image: RgbImage): RgbImage => ({ ...image, data: Buffer.from(image.data) });
const first = groups[0]!.tiles;
const samples = await Promise.all(first.slice(0, BATCH).map(({ slide, tile }) => readGridTile(slide, tile, DEFAULT_TILE_SPEC)));
const inline = new PreprocessPool(0);
const prepared = await inline.batch(samples.map(copyOf), model.manifest);
const perTile = 3 * model.manifest.inputSize ** 2;
const tensors = Array.from({ length: BATCH }, (_, i) => prepared.data.slice(i * perTile, (i + 1) * perTile));
const preprocessStarted = performance.now();
for (let i = 0; i < 64; i++) await inline.batch([copyOf(samples[i % samples.length]!)], model.manifest);
const preprocessMsPerTile = (performance.now() - preprocessStarted) / 64;

const embedder = await Embedder.create(model, { device: { kind: 'cpu' }, batchSize: BATCH });
console.log(`${embedder.parallelism} ONNX Runtime session(s) side by side, batch ${BATCH}\n`);
await embedder.embedPreprocessed(tensors);
await embedder.prepare(samples.slice(0, 2).map(copyOf)); // start the preprocessing workers

/** Model only: every session kept busy with preprocessed batches (one queued per session). */
async function modelOnly(batchSize: number, tiles: number): Promise<number> {
  const started = performance.now();
  const queued: Array<Promise<unknown>> = [];
  for (let done = 0; done < tiles; done += batchSize) {
    queued.push(embedder.embedPreprocessed(tensors.slice(0, Math.min(batchSize, tiles - done))));
    if (queued.length > embedder.parallelism) await queued.shift();
  }
  await Promise.all(queued);
  return tiles / ((performance.now() - started) / 1000);
}

console.log('model only (preprocessed tensors → ONNX Runtime):');
const modelOnlyRates: Record<number, number> = {};
for (const batchSize of [1, 8, 32]) {
  const runs = [];
  for (let run = 0; run < RUNS; run++) runs.push(await modelOnly(batchSize, batchSize === 1 ? 64 : 256));
  modelOnlyRates[batchSize] = median(runs);
  console.log(`  batch ${String(batchSize).padStart(2)}: ${modelOnlyRates[batchSize]!.toFixed(1)} tiles/s`);
}

console.log(`\nend to end (grid → read, cold cache → preprocess on workers → embed; batch ${BATCH}), paired with model-only:`);
const results = [];
for (const group of groups) {
  const ratios = [];
  const rates = [];
  let stages = { inference: 0, preprocessWait: 0 };
  for (let run = 0; run < RUNS; run++) {
    const reference = await modelOnly(BATCH, group.tiles.length);
    tileCache.setMaxBytes(0);
    tileCache.setMaxBytes(DEFAULT_TILE_CACHE_BYTES);
    embedder.stats.inferenceMs = 0;
    embedder.stats.preprocessWaitMs = 0;
    const stats: EmbedTilesStats = { tiles: 0 };
    const started = performance.now();
    for await (const _batch of embedTiles(group.tiles, embedder, DEFAULT_TILE_SPEC, stats));
    const wallMs = performance.now() - started;
    const rate = stats.tiles / (wallMs / 1000);
    rates.push(rate);
    ratios.push(rate / reference);
    // Shares of each session's time (sessions run side by side).
    const sessionMs = wallMs * embedder.parallelism;
    stages = { inference: embedder.stats.inferenceMs / sessionMs, preprocessWait: embedder.stats.preprocessWaitMs / sessionMs };
  }
  const ratio = median(ratios);
  results.push({ slides: group.name, tiles: group.tiles.length, tilesPerSecond: median(rates), shareOfModelOnly: ratio, stages });
  const pct = (value: number) => `${(value * 100).toFixed(0)}%`;
  console.log(
    `  ${group.name.padEnd(38)} ${String(group.tiles.length).padStart(4)} tiles  ${median(rates).toFixed(1).padStart(6)} tiles/s  ${pct(ratio).padStart(4)} of model-only  ` +
      `(sessions: inferring ${pct(stages.inference)}, waiting for read + preprocess ${pct(stages.preprocessWait)})`,
  );
}
const overall = results[results.length - 1]!;
console.log(`\ntarget: end to end ≥ 85% of model-only; all slides together: ${(overall.shareOfModelOnly * 100).toFixed(0)}% — ${overall.shareOfModelOnly >= 0.85 ? 'met' : 'MISS'}`);
console.log(`preprocessing alone: ${preprocessMsPerTile.toFixed(2)} ms per 224 px tile on one thread; inference: ${(1000 / modelOnlyRates[32]!).toFixed(2)} ms per tile on ${cpus().length} cores`);
await embedder.close();
await inline.close();
for (const group of groups.slice(0, -1)) group.tiles[0]?.slide.close();

const resultsDir = join(PROJECT_ROOT, 'benchmarks', 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, `embed-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(out, JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, model: model.manifest.id, modelOnly: modelOnlyRates, endToEnd: results, preprocessMsPerTile }, null, 2));
console.log(`written ${out}`);
