/**
 * bench:index quality, with and without `augment: "d8"`: retrieval quality of the default model
 * measured inside Tessera (each dataset indexed with `runIndex`, then `evaluateIndex`, leave one
 * patient out: LC25000's `group` marks augmentations of one image; Kather tiles are each their
 * own), and what d8 costs: model-only tiles/s (preloaded tiles through Embedder.embed) and the
 * indexing run's tiles/s. Run on its own with `node --import tsx benchmarks/index/quality-d8.ts`
 * or as bench:index's `quality` section.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { DEFAULT_TILE_SPEC, Embedder, IndexStore, evaluateIndex, openSlide, resolveModel, type RgbImage } from '../../engine/index.js';
import { installModel } from '../../models/index.js';
import { runIndex } from '../../indexer/pipeline.js';
import { TILES } from '../../test/shared-data.js';

export interface QualityRow {
  dataset: string;
  augment: 'none' | 'd8';
  queries: number;
  precisionAt1: number;
  majorityVoteAt5: number;
  mapAt5: number;
  indexTilesPerSecond: number;
  evaluateSeconds: number;
}

export interface QualityResult {
  rows: QualityRow[];
  /** Model-only tiles/s (best of 2 runs over the same preloaded tiles). */
  modelTilesPerSecond: { none: number; d8: number };
}

async function readTiles(files: string[]): Promise<RgbImage[]> {
  const images: RgbImage[] = [];
  for (const file of files) {
    const slide = await openSlide(file);
    images.push(await slide.readRegion(0, 0, 0, slide.width, slide.height));
    slide.close();
  }
  return images;
}

/** Measures both settings on the LC25000 lung dev split and the Kather samples. */
export async function qualityWithD8(log: (line: string) => void = console.log): Promise<QualityResult> {
  const scratch = mkdtempSync(join(tmpdir(), 'tessera-quality-'));
  const model = resolveModel();
  const modelsDir = join(scratch, 'models');
  // The bundled model under another id with d8 on: a separate model as far as indexes go.
  const d8Id = `${model.manifest.id}-d8`;
  installModel(model.onnxPath, { ...model.manifest, id: d8Id, augment: 'd8' }, modelsDir);
  const lung = join(TILES, 'lc25000-lung-dev');
  const kather = join(TILES, 'kather2016-samples-24');
  const datasets = [
    { name: 'LC25000 lung dev', tiles: lung, labels: join(lung, 'labels.csv'), by: 'patient' as const, patientField: 'group' },
    { name: 'Kather samples', tiles: kather, by: 'slide' as const },
  ];

  const sample = readFileSync(join(lung, 'labels.csv'), 'utf8').trim().split('\n').slice(1, 257).map((row) => join(lung, row.split(',')[0] as string));
  const modelTilesPerSecond = { none: 0, d8: 0 };
  for (const augment of ['none', 'd8'] as const) {
    const embedder = await Embedder.create(augment === 'd8' ? { ...model, manifest: { ...model.manifest, augment: 'd8' } } : model, { device: { kind: 'cpu' } });
    for (let round = 0; round < 2; round++) {
      const images = await readTiles(sample);
      const started = performance.now();
      await embedder.embed(images);
      modelTilesPerSecond[augment] = Math.max(modelTilesPerSecond[augment], images.length / ((performance.now() - started) / 1000));
    }
    await embedder.close();
  }

  const rows: QualityRow[] = [];
  for (const dataset of datasets) {
    for (const augment of ['none', 'd8'] as const) {
      const out = join(scratch, `${dataset.name.replace(/\W+/g, '-')}-${augment}`);
      const report = await runIndex({
        tiles: dataset.tiles,
        ...(dataset.labels ? { labels: dataset.labels } : {}),
        out,
        modelId: augment === 'd8' ? d8Id : model.manifest.id,
        modelsDir,
        shards: 1,
        device: { kind: 'cpu' },
        tile: DEFAULT_TILE_SPEC,
        minTissue: 0,
        logger: pino({ level: 'warn' }),
        interactive: false,
      });
      const store = IndexStore.open(out, { readOnly: true });
      // ef 512 over at most 1,890 tiles: as good as exact, so the rows compare with a brute-force script.
      const evaluation = evaluateIndex(store, { labelField: 'label', by: dataset.by, k: 5, ef: 512, modes: ['region'], ...(dataset.patientField ? { patientField: dataset.patientField } : {}) });
      await store.close();
      const overall = evaluation.region!.overall;
      rows.push({ dataset: dataset.name, augment, queries: overall.queries, precisionAt1: overall.acc1, majorityVoteAt5: overall.majorityK, mapAt5: overall.mapK, indexTilesPerSecond: report.tilesPerSecond, evaluateSeconds: evaluation.seconds });
    }
  }

  log('quality of the default model with and without augment "d8" (leave one patient/group out, k 5):');
  log('  dataset             augment  queries   P@1    MV@5   mAP@5  index tiles/s  evaluate s');
  for (const row of rows) {
    log(`  ${row.dataset.padEnd(18)}  ${row.augment.padEnd(7)}  ${String(row.queries).padStart(7)}  ${row.precisionAt1.toFixed(3)}  ${row.majorityVoteAt5.toFixed(3)}  ${row.mapAt5.toFixed(3)}  ${row.indexTilesPerSecond.toFixed(1).padStart(13)}  ${row.evaluateSeconds.toFixed(2).padStart(10)}`);
  }
  log(`  model only (256 LC25000 tiles, ${cpus().length} cores): ${modelTilesPerSecond.none.toFixed(1)} tiles/s plain, ${modelTilesPerSecond.d8.toFixed(1)} tiles/s d8 (${(modelTilesPerSecond.none / modelTilesPerSecond.d8).toFixed(1)}× the cost)`);
  return { rows, modelTilesPerSecond };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}\n`);
  const result = await qualityWithD8();
  const dir = join(process.cwd(), 'benchmarks', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `quality-d8-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), `${JSON.stringify(result, null, 2)}\n`);
}
