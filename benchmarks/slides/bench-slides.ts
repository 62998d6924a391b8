/**
 * npm run bench:slides — region reads per second, Tessera against OpenSlide 3.4.1.
 *
 * The same 500 random 224×224 level-0 regions are read by each reader in a fresh process:
 * OpenSlide through python3-openslide, pinned to one core; Tessera pinned to one core with one
 * decode thread; and Tessera on two cores with two reads in flight. Each figure is the median of
 * RUNS runs. Prints a table and writes benchmarks/results/slides-<time>.json.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { hasNativeJpeg, openSlide } from '../../engine/index.js';
import { PROJECT_ROOT, SLIDES, SYSTEM_PYTHON, hasOpenSlide, hasSharedData } from '../../test/shared-data.js';
import { ensureSyntheticSlide, SYNTHETIC_SIZE } from './synthetic-slide.js';

const REGIONS = 500;
const SIZE = 224;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CACHE = join(PROJECT_ROOT, '.cache', 'bench');

interface Measurement {
  regionsPerSecond: number;
  peakRssMiB: number;
}

if (!hasSharedData) {
  console.log(`bench:slides skipped: shared data not found at ${SLIDES}`);
  process.exit(0);
}
const hasTaskset = (() => {
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    return true;
  } catch {
    return false;
  }
})();

mkdirSync(CACHE, { recursive: true });
console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`);
console.log(`OpenSlide: ${hasOpenSlide ? execFileSync(SYSTEM_PYTHON, ['-c', 'import openslide; print(openslide.__library_version__)']).toString().trim() : 'not installed (python3-openslide): Tessera only'}`);
console.log(`JPEG decoder: ${hasNativeJpeg ? 'native libjpeg-turbo with partial decoding' : 'sharp (the native decoder is not built: see README)'}`);
console.log(`${REGIONS} random ${SIZE}×${SIZE} regions at level 0, median of ${RUNS} runs each${hasTaskset ? '; one-core runs pinned with taskset -c 0' : ''}\n`);

console.log(`preparing the ${SYNTHETIC_SIZE}×${SYNTHETIC_SIZE} synthetic slide (cached in .cache/bench)…`);
const synthetic = await ensureSyntheticSlide(join(CACHE, `synthetic-${SYNTHETIC_SIZE}.tif`), [join(SLIDES, 'CMU-1-Small-Region.svs'), join(SLIDES, 'derived', 'cmu1-small-pyramid-jpeg.tif')]);

const slides = [
  { name: 'CMU-1-Small-Region.svs (JPEG)', path: join(SLIDES, 'CMU-1-Small-Region.svs'), codec: 'jpeg' },
  { name: 'tcga-cr-7395 SVS (JPEG 2000)', path: join(SLIDES, 'tcga-cr-7395-01a-01-ts1.svs'), codec: 'jpeg2000' },
  { name: 'test3-DAPI NDPI (JPEG)', path: join(SLIDES, 'ndpi', 'test3-DAPI-2-387.ndpi'), codec: 'jpeg' },
  { name: `synthetic ${SYNTHETIC_SIZE / 1000}k² TIFF (JPEG)`, path: synthetic, codec: 'jpeg' },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

function measure(command: string, args: string[], env: NodeJS.ProcessEnv, pinned: boolean): Measurement {
  const runs: Measurement[] = [];
  for (let run = 0; run < RUNS; run++) {
    const [file, fileArgs] = pinned && hasTaskset ? ['taskset', ['-c', '0', command, ...args]] : [command, args];
    const stdout = execFileSync(file as string, fileArgs as string[], { env: { ...process.env, ...env }, maxBuffer: 1 << 20 }).toString();
    runs.push(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Measurement);
  }
  return { regionsPerSecond: median(runs.map((r) => r.regionsPerSecond)), peakRssMiB: median(runs.map((r) => r.peakRssMiB)) };
}

const tesseraReader = ['--import', 'tsx', join(PROJECT_ROOT, 'benchmarks', 'slides', 'tessera-reader.ts')];
const results = [];
for (const slide of slides) {
  if (!existsSync(slide.path)) continue;
  const opened = await openSlide(slide.path);
  let seed = 20261123;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const regions = Array.from({ length: REGIONS }, () => [Math.floor(random() * (opened.width - SIZE)), Math.floor(random() * (opened.height - SIZE)), SIZE, SIZE]);
  opened.close();
  const regionsFile = join(CACHE, `regions-${results.length}.json`);
  writeFileSync(regionsFile, JSON.stringify(regions));
  const openslide = hasOpenSlide ? measure(SYSTEM_PYTHON, [join(PROJECT_ROOT, 'benchmarks', 'slides', 'openslide_reader.py'), slide.path, regionsFile], {}, true) : null;
  const oneCore = measure(process.execPath, [...tesseraReader, slide.path, regionsFile, '--concurrency', '1'], { UV_THREADPOOL_SIZE: '1' }, true);
  const twoCores = measure(process.execPath, [...tesseraReader, slide.path, regionsFile, '--concurrency', '2'], { UV_THREADPOOL_SIZE: '2' }, false);
  results.push({ slide: slide.name, codec: slide.codec, openslide, tessera1: oneCore, tessera2: twoCores });
}

const pad = (text: string, width: number) => text.padEnd(width);
const num = (value: number | undefined) => (value === undefined ? '—' : value.toFixed(0));
const ratio = (ours: number, theirs: number | undefined) => (theirs ? `${(ours / theirs).toFixed(2)}×` : '—');
console.log(`\n${pad('slide', 34)}${pad('OpenSlide r/s', 15)}${pad('Tessera 1 core', 16)}${pad('ratio', 8)}${pad('Tessera 2 cores', 17)}${pad('ratio', 8)}peak RSS MiB (OpenSlide / Tessera 1 / 2)`);
for (const r of results) {
  console.log(
    `${pad(r.slide, 34)}${pad(num(r.openslide?.regionsPerSecond), 15)}${pad(num(r.tessera1.regionsPerSecond), 16)}${pad(ratio(r.tessera1.regionsPerSecond, r.openslide?.regionsPerSecond), 8)}${pad(num(r.tessera2.regionsPerSecond), 17)}${pad(ratio(r.tessera2.regionsPerSecond, r.openslide?.regionsPerSecond), 8)}${num(r.openslide?.peakRssMiB)} / ${num(r.tessera1.peakRssMiB)} / ${num(r.tessera2.peakRssMiB)}`,
  );
}
const targets = results.map((r) => ({ slide: r.slide, target: r.codec === 'jpeg' ? 1.5 : 1.0, ratio: r.openslide ? r.tessera1.regionsPerSecond / r.openslide.regionsPerSecond : null }));
console.log(`\ntargets (one core): JPEG ≥ 1.5×, JPEG 2000 ≥ 1.0× OpenSlide`);
for (const t of targets) console.log(`  ${t.ratio === null ? 'n/a ' : t.ratio >= t.target ? 'met ' : 'MISS'} ${t.slide}: ${t.ratio === null ? 'no OpenSlide' : `${t.ratio.toFixed(2)}× (target ${t.target}×)`}`);
const resultsDir = join(PROJECT_ROOT, 'benchmarks', 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, `slides-${new Date().toISOString().replaceAll(':', '-')}.json`);
writeFileSync(out, JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, regions: REGIONS, size: SIZE, runs: RUNS, results }, null, 2));
console.log(`\nwritten ${out}`);
