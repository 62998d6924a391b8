/** `tessera index …`: embeds slides (files, a DICOMweb server) or tile images into a sharded index. */
import { availableParallelism } from 'node:os';
import { pino } from 'pino';
import { DEFAULT_TILE_SPEC, TesseraError, configureDecoding, parseDevice } from '../../engine/index.js';
import { discoverDicomWeb, type SlideItem } from '../discover.js';
import { withDicomWebMetadata } from '../dicomweb-metadata.js';
import { dryRun, runIndex } from '../pipeline.js';
import type { Command } from './command.js';
import { UsageError, modelsDir, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { DICOMWEB_DETAILS } from './slides.js';

export const indexCommand: Command = {
  name: 'index',
  usage: `  index --slides DIR|LIST [--metadata slides.csv|METAFLEX_DIR] --out INDEX [--model ID] [--shards N]
        [--partition i/n] [--device auto|cpu|cuda[:N]] [--mpp 0.5] [--size 224] [--min-tissue 0.5]
        [--read-threads N] [--dry-run]
  index --dicomweb URL [--study UID]… [--series UID]… [--metadata slides.csv|METAFLEX_DIR] --out INDEX …
                                     index the slide-microscopy series of a DICOMweb server (metadata
                                     rows matched by dicom_series_uid, slide_id or dicom_study_uid)
  index --tiles DIR [--labels labels.csv] --out INDEX …
                                     embed every tissue tile (or tile image) into sharded HNSW indexes`,
  details: `${MODELS_DETAILS}\n\n${DICOMWEB_DETAILS}`,
  async run(args) {
    const { values } = parseFlags(args, {
      slides: { type: 'string' },
      metadata: { type: 'string' },
      dicomweb: { type: 'string' },
      study: { type: 'string', multiple: true },
      series: { type: 'string', multiple: true },
      tiles: { type: 'string' },
      labels: { type: 'string' },
      out: { type: 'string' },
      model: { type: 'string' },
      shards: { type: 'string' },
      partition: { type: 'string' },
      device: { type: 'string' },
      mpp: { type: 'string' },
      size: { type: 'string' },
      'min-tissue': { type: 'string' },
      'models-dir': { type: 'string' },
      'read-threads': { type: 'string' },
      'dry-run': { type: 'boolean' },
    });
    if (!values.out) throw new UsageError('--out INDEX is required');
    if (!values.slides && !values.metadata && !values.tiles && !values.dicomweb) throw new UsageError('give --slides DIR|LIST, --metadata slides.csv, --dicomweb URL or --tiles DIR');
    if (values.dicomweb && (values.slides || values.tiles)) throw new UsageError('--dicomweb indexes a server\'s series, not --slides or --tiles');
    if ((values.study || values.series) && !values.dicomweb) throw new UsageError('--study and --series select series of a --dicomweb server');
    const readThreads = numberFlag(values['read-threads'], 'read-threads', availableParallelism());
    if (!Number.isInteger(readThreads) || readThreads < 1 || readThreads > 256) throw new UsageError(`--read-threads must be an integer from 1 to 256, got '${values['read-threads']}'`);
    const items = values.dicomweb ? await dicomWebItems(values.dicomweb, values.study ?? [], values.series ?? [], values.metadata) : undefined;
    // Indexing decodes JPEG 2000 / JPEG-LS tiles on these threads while the model runs.
    configureDecoding({ decodeThreads: readThreads });
    const partition = parsePartition(values.partition);
    const options = {
      ...(values.slides ? { slides: values.slides } : {}),
      ...(values.metadata ? { metadata: values.metadata } : {}),
      ...(items ? { items } : {}),
      ...(values.tiles ? { tiles: values.tiles } : {}),
      ...(values.labels ? { labels: values.labels } : {}),
      out: values.out,
      ...(values.model ? { modelId: values.model } : {}),
      modelsDir: modelsDir(values['models-dir']),
      shards: numberFlag(values.shards, 'shards', 1),
      ...(partition ? { partition } : {}),
      device: parseDevice(values.device ?? 'auto'),
      tile: { mpp: numberFlag(values.mpp, 'mpp', DEFAULT_TILE_SPEC.mpp), sizePx: numberFlag(values.size, 'size', DEFAULT_TILE_SPEC.sizePx) },
      minTissue: numberFlag(values['min-tissue'], 'min-tissue', values.tiles ? 0 : 0.5),
      logger: logger(),
      interactive: process.stderr.isTTY === true,
      readThreads,
    };
    if (values['dry-run']) {
      const plan = await dryRun(options);
      const hours = plan.projectedSeconds / 3600;
      process.stdout.write(
        `dry run: ${plan.slides.toIndex} slides to index (${plan.tiles} tiles), ${plan.slides.skipped} already indexed, ${plan.slides.failed} failed` +
          `${plan.slides.otherPartitions ? `, ${plan.slides.otherPartitions} belong to other partitions` : ''}\n` +
          `projected: ${(plan.projectedBytes / 2 ** 30).toFixed(2)} GiB of index; ${hours >= 1 ? `${hours.toFixed(1)} h` : `${(plan.projectedSeconds / 60).toFixed(1)} min`} at ${plan.modelTilesPerSecond.toFixed(1)} tiles/s (model alone, ${plan.provider}, measured now; reading can only lower it)\n` +
          `planned in ${plan.seconds.toFixed(1)} s; nothing was embedded or written\n`,
      );
      for (const failure of plan.failures) process.stdout.write(`  failed: ${failure.slideId}: ${failure.reason} [${failure.code}]\n`);
      return;
    }
    const report = await runIndex(options);
    const { slides, tiles, seconds, tilesPerSecond, failures } = report;
    process.stdout.write(
      `indexed ${slides.indexed} slides (${tiles} tiles), skipped ${slides.skipped} unchanged, failed ${slides.failed}` +
        `${slides.otherPartitions ? `, ${slides.otherPartitions} belong to other partitions` : ''} in ${seconds.toFixed(1)} s (${tilesPerSecond.toFixed(1)} tiles/s)\n`,
    );
    for (const failure of failures) process.stdout.write(`  failed: ${failure.slideId}: ${failure.reason} [${failure.code}]\n`);
    if (slides.indexed === 0 && slides.skipped === 0 && slides.failed > 0) throw new TesseraError('SLIDE_CORRUPT', `nothing could be indexed (${slides.failed} slides failed)`);
  },
};

function logger(): pino.Logger {
  // Structured logs on stderr; stdout carries the command's output.
  return pino({ name: 'tessera', level: process.env.TESSERA_LOG_LEVEL ?? 'info' }, pino.destination(2));
}

function parsePartition(value: string | undefined): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index >= count) throw new UsageError(`--partition must be i/n with 0 ≤ i < n, got '${value}'`);
  return { index, count };
}

/** The series of a DICOMweb server, with the metadata of --metadata matched to them (a summary on stderr). */
async function dicomWebItems(base: string, studies: string[], series: string[], metadata: string | undefined): Promise<SlideItem[]> {
  const listed = await discoverDicomWeb(base, studies, series);
  if (!metadata) return listed;
  const match = withDicomWebMetadata(listed, metadata);
  process.stderr.write(`metadata: ${match.bySeries} series matched by series UID, ${match.byStudy} by study UID, ${match.unmatchedSeries} without metadata; ${match.unmatchedRows} rows matched no listed series\n`);
  return match.items;
}
