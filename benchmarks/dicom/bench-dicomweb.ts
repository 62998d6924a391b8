/**
 * npm run bench:dicomweb — indexing the same DICOM slides from files and over DICOMweb, same run.
 *
 * Converts (cached) three shared slides with OrthancWSIDicomizer (JPEG 2000 pyramidal TIFF in
 * 1 MB instances, JPEG SVS, uncompressed NDPI), starts a real Orthanc with its DICOMweb plugin on
 * 127.0.0.1 (loopback: the figure is the protocol's cost, not a network's), uploads them, then
 * alternates `tessera index --slides LIST` over the files and `tessera index --dicomweb` over the
 * server (fresh index each, default model, CPU) and reports tiles/s. A second figure isolates
 * reading: every tissue tile of every slide read and resized in-process, with a cold cache.
 * BENCH_RUNS sets the runs per side (default 2). Writes benchmarks/results/dicomweb-<time>.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_TILE_SPEC, configureDecoding, dicomWebStats, listDicomWebSeries, openSlide, readGridTile, tileGrid } from '../../engine/index.js';
import { convertedSlide, hasDicomizer, type Conversion } from '../../test/reference/dicomizer.js';
import { hasOrthanc, startOrthanc } from '../../test/reference/orthanc.js';
import { TESSERA_BIN } from '../../test/run-cli.js';
import { PROJECT_ROOT, hasSharedData } from '../../test/shared-data.js';

if (!hasSharedData || !hasDicomizer || !hasOrthanc) {
  console.error('bench:dicomweb needs ../shared/data, orthanc-wsi, orthanc and orthanc-dicomweb');
  process.exit(1);
}
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
const CONVERSIONS: Conversion[] = [
  { source: 'derived/cmu1-small-pyramid-jpeg.tif', compression: 'jpeg2000', layout: 'split' },
  { source: 'CMU-1-Small-Region.svs', compression: 'jpeg', layout: 'one' },
  { source: 'ndpi/test3-DAPI-2-387.ndpi', compression: 'none', layout: 'one', viaOpenSlide: true },
];
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const folders: string[] = [];
for (const conversion of CONVERSIONS) folders.push(await convertedSlide(conversion));
const orthanc = await startOrthanc();
const work = mkdtempSync(join(tmpdir(), 'tessera-bench-dicomweb-'));
try {
  const series: string[] = [];
  for (const folder of folders) series.push(...(await orthanc.upload(folder)));
  const list = join(work, 'slides.txt');
  writeFileSync(list, `${folders.join('\n')}\n`);
  const records = await listDicomWebSeries(orthanc.dicomWeb);

  const indexOnce = (side: 'files' | 'dicomweb', run: number): { tiles: number; seconds: number; tilesPerSecond: number } => {
    const out = join(work, `${side}-${run}`);
    const args = side === 'files' ? ['index', '--slides', list, '--out', out] : ['index', '--dicomweb', orthanc.dicomWeb, '--out', out];
    const stdout = execFileSync(process.execPath, [TESSERA_BIN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const match = /\((\d+) tiles\).* in ([\d.]+) s \(([\d.]+) tiles\/s\)/.exec(stdout);
    if (!match) throw new Error(`unexpected tessera output: ${stdout}`);
    rmSync(out, { recursive: true, force: true });
    return { tiles: Number(match[1]), seconds: Number(match[2]), tilesPerSecond: Number(match[3]) };
  };

  const readOnce = async (locators: string[]): Promise<{ tiles: number; tilesPerSecond: number }> => {
    let tiles = 0;
    const started = performance.now();
    for (const locator of locators) {
      const slide = await openSlide(locator, { access: 'sequential' });
      const grid = await tileGrid(slide, 'bench', { mpp: DEFAULT_TILE_SPEC.mpp, sizePx: DEFAULT_TILE_SPEC.sizePx, minTissue: 0.5 });
      await Promise.all(grid.map((tile) => readGridTile(slide, tile)));
      tiles += grid.length;
      slide.close();
    }
    return { tiles, tilesPerSecond: tiles / ((performance.now() - started) / 1000) };
  };

  configureDecoding({ decodeThreads: cpus().length });
  const runs: Record<string, Array<{ tiles: number; tilesPerSecond: number }>> = { 'index files': [], 'index dicomweb': [], 'read files': [], 'read dicomweb': [] };
  for (let run = 0; run < RUNS; run++) {
    // Alternate which side goes first: the machine is shared and drifts.
    const order: Array<'files' | 'dicomweb'> = run % 2 === 0 ? ['files', 'dicomweb'] : ['dicomweb', 'files'];
    for (const side of order) {
      runs[`read ${side}`]?.push(await readOnce(side === 'files' ? folders : records.map((record) => record.url)));
      runs[`index ${side}`]?.push(indexOnce(side, run));
    }
  }
  const rows = Object.entries(runs).map(([name, values]) => ({ name, tiles: values[0]?.tiles ?? 0, tilesPerSecond: median(values.map((value) => value.tilesPerSecond)) }));
  const ratio = (what: string) => (rows.find((row) => row.name === `${what} dicomweb`)?.tilesPerSecond ?? 0) / (rows.find((row) => row.name === `${what} files`)?.tilesPerSecond ?? 1);
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}; Orthanc on 127.0.0.1; ${series.length} slides; median of ${RUNS}`);
  console.log('| | tiles | files tiles/s | DICOMweb tiles/s | DICOMweb / files |');
  console.log('|---|---|---|---|---|');
  for (const what of ['index', 'read']) {
    const files = rows.find((row) => row.name === `${what} files`);
    const web = rows.find((row) => row.name === `${what} dicomweb`);
    console.log(`| ${what === 'index' ? 'tessera index (tile, read, embed, write)' : 'tile reads only (grid + read + resize)'} | ${files?.tiles} | ${files?.tilesPerSecond.toFixed(1)} | ${web?.tilesPerSecond.toFixed(1)} | ${ratio(what).toFixed(2)}× |`);
  }
  console.log(`DICOMweb requests in this process: ${dicomWebStats.requests} for ${dicomWebStats.frames} frames (${(dicomWebStats.bytes / 2 ** 20).toFixed(1)} MiB), ${dicomWebStats.retries} retries`);
  const outDir = join(PROJECT_ROOT, 'benchmarks', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `dicomweb-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version }, runs, rows, stats: dicomWebStats }, null, 2));
  console.log(`wrote ${file}`);
} finally {
  await orthanc.stop();
  rmSync(work, { recursive: true, force: true });
}
