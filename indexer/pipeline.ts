/**
 * The indexing run: discover → skip unchanged → open → tissue → tiles → embed → commit per slide.
 * One bad slide is recorded and skipped; a failure to write the index stops the run.
 */
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  augmentedRef,
  DEFAULT_TILE_SPEC,
  Embedder,
  IndexStore,
  TesseraError,
  asSlideId,
  createOrCheckIndex,
  embedTiles,
  isTesseraError,
  mosaicOf,
  openSlide,
  readGridTile,
  resolveModel,
  shardOf,
  slideMppOf,
  tileGrid,
  type DeviceRequest,
  type Fingerprint,
  type NewTile,
  type TileSpec,
} from '../engine/index.js';
import { discoverSlides, discoverTiles, type SlideItem, type TileItem } from './discover.js';
import { Progress } from './progress.js';

export interface IndexRunOptions {
  slides?: string;
  metadata?: string;
  tiles?: string;
  labels?: string;
  out: string;
  modelId?: string;
  modelsDir: string;
  shards: number;
  /** Process only the shards of partition `index` of `count` (shard % count === index). */
  partition?: { index: number; count: number };
  device: DeviceRequest;
  tile: TileSpec;
  minTissue: number;
  logger: Logger;
  interactive: boolean;
}

export interface SlideFailure {
  slideId: string;
  code: string;
  reason: string;
}

export interface RunReport {
  startedAt: string;
  finishedAt: string;
  index: string;
  model: string;
  provider: string;
  partition: string;
  slides: { total: number; indexed: number; skipped: number; failed: number; otherPartitions: number };
  tiles: number;
  seconds: number;
  tilesPerSecond: number;
  stages: { embedInferenceMs: number; embedWaitMs: number };
  failures: SlideFailure[];
}

/** Runs an indexing job and writes its report under INDEX/reports/. */
export async function runIndex(options: IndexRunOptions): Promise<RunReport> {
  const startedAt = new Date();
  const model = resolveModel(options.modelId, options.modelsDir);
  const info = createOrCheckIndex(options.out, { shards: options.shards, model: augmentedRef(model.manifest), tile: { mpp: options.tile.mpp, sizePx: options.tile.sizePx } });
  const owned = Array.from({ length: info.shards }, (_, shard) => shard).filter((shard) => !options.partition || shard % options.partition.count === options.partition.index);
  const items: Array<SlideItem | TileItem> = options.tiles ? discoverTiles(options.tiles, options.labels) : discoverSlides(options.slides, options.metadata);
  const idOf = (item: SlideItem | TileItem): string => ('slideId' in item ? item.slideId : item.tileId);
  const mine = items.filter((item) => owned.includes(shardOf(idOf(item), info.shards)));
  const store = IndexStore.open(options.out, { shards: owned });
  const embedder = await Embedder.create(model, { device: options.device });
  if (embedder.fallbackReason && options.device.kind === 'auto') options.logger.info({ reason: embedder.fallbackReason }, 'embedding on CPU');
  options.logger.info({ slides: mine.length, otherPartitions: items.length - mine.length, shards: owned.length, model: model.manifest.id, provider: embedder.provider }, 'indexing started');
  const progress = new Progress(mine.length, options.logger, options.interactive);
  const report: RunReport = {
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    index: options.out,
    model: `${model.manifest.id} ${model.manifest.version}`,
    provider: embedder.provider,
    partition: options.partition ? `${options.partition.index}/${options.partition.count}` : 'all',
    slides: { total: items.length, indexed: 0, skipped: 0, failed: 0, otherPartitions: items.length - mine.length },
    tiles: 0,
    seconds: 0,
    tilesPerSecond: 0,
    stages: { embedInferenceMs: 0, embedWaitMs: 0 },
    failures: [],
  };
  try {
    for (const [ordinal, item] of mine.entries()) {
      const started = performance.now();
      const slideId = idOf(item);
      const shard = store.shardFor(slideId);
      if (!shard) continue;
      let tiles = 0;
      let outcome: 'indexed' | 'skipped' | 'failed' = 'indexed';
      try {
        const fingerprint = fingerprintOf(item.path);
        const existing = shard.slide(slideId);
        if (existing && sameFingerprint(existing.fingerprint, fingerprint)) {
          outcome = 'skipped';
          report.slides.skipped++;
        } else {
          const embedded = 'slideId' in item ? await embedSlide(item, embedder, options) : await embedTileImage(item, embedder);
          const mosaic = mosaicOf(embedded.tiles.map((tile) => tile.vector));
          // One commit per slide: it writes the slide's records and vectors, not the shard, so it
          // costs the same at any shard size; segment builds run on a builder thread meanwhile.
          shard.putSlide({ slideId: asSlideId(slideId), path: item.path, metadata: item.metadata, fingerprint, mppSupplied: embedded.mppSupplied, mpp: embedded.mpp, width: embedded.width, height: embedded.height, indexedAt: new Date().toISOString() }, embedded.tiles, mosaic);
          tiles = embedded.tiles.length;
          report.slides.indexed++;
          report.tiles += tiles;
        }
      } catch (error) {
        if (isTesseraError(error) && error.code === 'INDEX_WRITE_FAILED') throw error;
        outcome = 'failed';
        report.slides.failed++;
        const code = isTesseraError(error) ? error.code : 'SLIDE_CORRUPT';
        const reason = error instanceof Error ? error.message : String(error);
        report.failures.push({ slideId, code, reason });
        options.logger.warn({ slide: ordinal + 1, code }, 'slide failed');
      }
      progress.slideDone(ordinal + 1, tiles, outcome, performance.now() - started);
    }
    for (const shard of store.shards) shard.flush();
  } finally {
    progress.stop();
    report.stages = { embedInferenceMs: Math.round(embedder.stats.inferenceMs), embedWaitMs: Math.round(embedder.stats.preprocessWaitMs) };
    await embedder.close();
    await store.close();
    report.finishedAt = new Date().toISOString();
    report.seconds = (Date.now() - startedAt.getTime()) / 1000;
    report.tilesPerSecond = report.tiles / Math.max(report.seconds, 1e-3);
    writeReport(options.out, report);
  }
  return report;
}

interface EmbeddedSlide {
  tiles: NewTile[];
  mpp: [number, number];
  mppSupplied: boolean;
  width: number;
  height: number;
}

async function embedSlide(item: SlideItem, embedder: Embedder, options: IndexRunOptions): Promise<EmbeddedSlide> {
  const slide = await openSlide(item.path, { access: 'sequential' });
  try {
    const name = item.path.split('/').pop() ?? item.slideId;
    const mpp = slideMppOf(slide, name, item.mpp);
    const grid = await tileGrid(slide, name, { ...options.tile, minTissue: options.minTissue, slideMpp: mpp });
    const tiles: NewTile[] = [];
    for await (const batch of embedTiles(grid.map((tile) => ({ slide, tile })), embedder, options.tile)) {
      for (const { tile, embedding } of batch) {
        const level = slide.levelForDownsample(tile.baseWidth / options.tile.sizePx);
        tiles.push({ tile: { x: tile.baseX, y: tile.baseY, width: tile.baseWidth, height: tile.baseHeight, mpp: mpp[0], tissue: tile.tissue, level }, vector: embedding });
      }
    }
    return { tiles, mpp, mppSupplied: slide.mpp === null, width: slide.width, height: slide.height };
  } finally {
    slide.close();
  }
}

/** A tile image is its own "slide" with one tile covering it. */
async function embedTileImage(item: TileItem, embedder: Embedder): Promise<EmbeddedSlide> {
  const slide = await openSlide(item.path);
  try {
    const tile = { baseX: 0, baseY: 0, baseWidth: slide.width, baseHeight: slide.height, tissue: 1 };
    const image = await readGridTile(slide, tile, { ...DEFAULT_TILE_SPEC, sizePx: slide.width }, { resize: false });
    const [vector] = await embedder.embed([image]);
    if (!vector) throw new TesseraError('SLIDE_CORRUPT', `${item.tileId}: no embedding produced`);
    const mpp: [number, number] = slide.mpp ?? [0, 0];
    return { tiles: [{ tile: { x: 0, y: 0, width: slide.width, height: slide.height, mpp: mpp[0], tissue: 1, level: 0, metadata: item.metadata }, vector }], mpp, mppSupplied: false, width: slide.width, height: slide.height };
  } finally {
    slide.close();
  }
}

/** Size, mtime and a sha256 of the first and last MiB: cheap, and it changes when the content does. */
export function fingerprintOf(path: string): Fingerprint {
  const stat = statSync(path);
  if (stat.isDirectory()) return { size: 0, mtimeMs: stat.mtimeMs, hash: createHash('sha256').update(path).digest('hex') };
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const chunk = Buffer.alloc(Math.min(1 << 20, stat.size));
    readSync(fd, chunk, 0, chunk.length, 0);
    hash.update(chunk);
    if (stat.size > chunk.length) {
      readSync(fd, chunk, 0, chunk.length, Math.max(0, stat.size - chunk.length));
      hash.update(chunk);
    }
  } finally {
    closeSync(fd);
  }
  hash.update(String(stat.size));
  return { size: stat.size, mtimeMs: stat.mtimeMs, hash: hash.digest('hex') };
}

function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.hash === b.hash;
}

function writeReport(indexDir: string, report: RunReport): void {
  try {
    const dir = join(indexDir, 'reports');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `run-${report.startedAt.replaceAll(':', '-')}.json`), `${JSON.stringify(report, null, 2)}\n`);
  } catch {
    // A report that cannot be written must not hide the run's own outcome.
  }
}
