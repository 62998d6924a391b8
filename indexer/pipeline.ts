/**
 * The indexing run: discover → skip unchanged → open → tissue → tiles → embed → commit per slide.
 * Upcoming slides are opened, masked and gridded on planning threads (plan-worker.mjs) while the
 * model embeds earlier ones; this thread only routes tiles and commits.
 * One bad slide is recorded and skipped; a failure to write the index stops the run.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import {
  augmentedRef,
  DEFAULT_TILE_SPEC,
  Embedder,
  IndexStore,
  TesseraError,
  asSlideId,
  createOrCheckIndex,
  dicomWebSettings,
  embedTiles,
  isTesseraError,
  mosaicOf,
  isDicomWebSeriesUrl,
  openSlide,
  readGridTile,
  readIndexInfo,
  recordSources,
  resolveModel,
  shardOf,
  type DeviceRequest,
  type ErrorCode,
  type Fingerprint,
  type GridTile,
  type IndexInfo,
  type NewTile,
  type RgbImage,
  type Slide,
  type SlideTile,
  type TileSpec,
} from '../engine/index.js';
import { discoverSlides, discoverTiles, sourcesOf, type SlideItem, type TileItem } from './discover.js';
import { Progress } from './progress.js';

/** Tile images (one tile each) commit in groups of this many tiles… */
const LIBRARY_COMMIT_TILES = 2048;
/** …or after this many seconds. */
const LIBRARY_COMMIT_SECONDS = 10;
/** Slides (or tile images) embedded and waiting to be written before the stream pauses for writing. */
const MAX_WAITING_WRITES = 256;
/** Slides with more tiles than this cluster their mosaic on a worker thread. */
const MOSAIC_ON_WORKER_TILES = 256;

export interface IndexRunOptions {
  slides?: string;
  metadata?: string;
  /** Slides found elsewhere (a DICOMweb server's series), indexed instead of --slides/--metadata. */
  items?: SlideItem[];
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
  /** Worker threads for decoding and preprocessing, and slides planned ahead (default: one per core). */
  readThreads?: number;
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
  /**
   * Where the run's time went, in ms. Inference and the sessions' wait for tiles are summed over
   * sessions; `planWaitMs` is wall time the stream stood waiting for the next slide's plan; `writeMs`
   * is this thread's time in commits (graph inserts and the LMDB transaction), `mosaicMs` the wall
   * time of mosaic clustering (on a worker for large slides); `startupMs` the wall time before the
   * first tile could be embedded (loading the model into every session, opening the index).
   */
  stages: { startupMs: number; embedInferenceMs: number; embedWaitMs: number; planWaitMs: number; writeMs: number; mosaicMs: number };
  failures: SlideFailure[];
}

/** Runs an indexing job and writes its report under INDEX/reports/. */
export async function runIndex(options: IndexRunOptions): Promise<RunReport> {
  const startedAt = new Date();
  const model = resolveModel(options.modelId, options.modelsDir);
  const info = createOrCheckIndex(options.out, { shards: options.shards, model: augmentedRef(model.manifest), tile: { mpp: options.tile.mpp, sizePx: options.tile.sizePx } });
  const { items, mine } = itemsOf(options, info.shards);
  // A server started anywhere reads these by default (issue 15).
  await recordSources(options.out, sourcesOf(items, options.tiles ?? options.slides));
  const owned = ownedShards(info.shards, options.partition);
  const store = IndexStore.open(options.out, { shards: owned });
  const readThreads = options.readThreads ?? availableParallelism();
  let embedder: Embedder;
  try {
    embedder = await Embedder.create(model, { device: options.device, preprocessThreads: readThreads });
  } catch (error) {
    await store.close();
    throw error;
  }
  if (embedder.fallbackReason && options.device.kind === 'auto') options.logger.info({ reason: embedder.fallbackReason }, 'embedding on CPU');
  options.logger.info({ slides: mine.length, otherPartitions: items.length - mine.length, shards: owned.length, model: model.manifest.id, provider: embedder.provider, readThreads }, 'indexing started');
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
    stages: { startupMs: Date.now() - startedAt.getTime(), embedInferenceMs: 0, embedWaitMs: 0, planWaitMs: 0, writeMs: 0, mosaicMs: 0 },
    failures: [],
  };
  // The thread starts with the first large slide, not with the run: a thread still loading the
  // engine's native addons when a short run destroys the pool aborts the process (napi_throw in
  // hnswlib's Init; seen in a SLURM resubmission that had nothing to index).
  const mosaics = new Piscina({ filename: fileURLToPath(new URL('./mosaic-worker.mjs', import.meta.url)), minThreads: 0, maxThreads: 1, idleTimeout: 30_000 });
  const planner = planningPool(readThreads);
  const lastFlush = new Map<number, number>();
  const recordFailure = (job: { ordinal: number; slideId: string }, error: unknown): void => {
    report.slides.failed++;
    const code = isTesseraError(error) ? error.code : 'SLIDE_CORRUPT';
    report.failures.push({ slideId: job.slideId, code, reason: error instanceof Error ? error.message : String(error) });
    options.logger.warn({ slide: job.ordinal + 1, code }, 'slide failed');
  };
  // Writing is chained: slides commit one after another in the order their last tile comes back,
  // while reading and inference go on (k-means runs on a worker; graph inserts and the commit
  // are the only writing left on this thread).
  let writing: Promise<void> = Promise.resolve();
  let waitingWrites = 0;
  let writeError: unknown;
  const finish = (job: PlannedJob): void => {
    job.slide?.close();
    waitingWrites++;
    writing = writing.then(async () => {
      waitingWrites--;
      if (writeError) return;
      try {
        if (job.outcome === 'skipped') report.slides.skipped++;
        else if (job.failure !== undefined) recordFailure(job, job.failure);
        else await commitSlide(job);
      } catch (error) {
        if (isTesseraError(error) && error.code === 'INDEX_WRITE_FAILED') {
          writeError = error;
          return;
        }
        recordFailure(job, error);
        job.failure = error;
      }
      progress.slideDone(job.ordinal + 1, job.failure === undefined && job.outcome === 'indexed' ? job.tiles.length : 0, job.failure !== undefined ? 'failed' : job.outcome, performance.now() - job.started);
    });
  };
  const commitSlide = async (job: PlannedJob): Promise<void> => {
    const shard = store.shardFor(job.slideId);
    if (!shard) return;
    const tiles = job.tiles as NewTile[];
    const dimension = model.manifest.dimension;
    const packed = new Float32Array(tiles.length * dimension);
    tiles.forEach((tile, i) => packed.set(tile.vector, i * dimension));
    // A few hundred tiles cluster in milliseconds: only larger slides are worth the hand-off.
    const clustering = performance.now();
    const mosaic = tiles.length > MOSAIC_ON_WORKER_TILES ? ((await mosaics.run({ vectors: packed, dimension }, { transferList: [packed.buffer] })) as number[]) : mosaicOf(tiles.map((tile) => tile.vector));
    const clustered = performance.now();
    report.stages.mosaicMs += clustered - clustering;
    const { item } = job;
    const record = { slideId: asSlideId(job.slideId), path: item.path, metadata: item.metadata, fingerprint: job.fingerprint as Fingerprint, mppSupplied: job.mppSupplied, mpp: job.mpp, width: job.width, height: job.height, indexedAt: new Date().toISOString() };
    // One commit per slide: it writes the slide's records and vectors, not the shard, so it
    // costs the same at any shard size; segment builds run on a builder thread meanwhile. A tile
    // library's items are one tile each: they commit in groups of LIBRARY_COMMIT_TILES or every
    // LIBRARY_COMMIT_SECONDS, so a run does not pay one LMDB transaction per image.
    if (!options.tiles) {
      shard.putSlide(record, tiles, mosaic);
    } else {
      shard.putSlide(record, tiles, mosaic, { defer: true });
      if (shard.pendingTiles >= LIBRARY_COMMIT_TILES || Date.now() - (lastFlush.get(shard.index) ?? 0) > LIBRARY_COMMIT_SECONDS * 1000) {
        shard.flush();
        lastFlush.set(shard.index, Date.now());
      }
    }
    report.stages.writeMs += performance.now() - clustered;
    report.slides.indexed++;
    report.tiles += tiles.length;
  };
  const planned = planAhead(mine, (slideId) => store.shardFor(slideId)?.slide(slideId)?.fingerprint, options, { planner, lookahead: lookaheadOf(options, readThreads, embedder.batchSize), openToRead: true });
  try {
    // Jobs whose tiles have entered the stream and are not all embedded yet.
    const inStream = new Set<PlannedJob>();
    const entered = (job: PlannedJob): void => void inStream.add(job);
    const done = (job: PlannedJob): void => {
      inStream.delete(job);
      finish(job);
    };
    const waitedForPlans = { ms: 0 };
    for await (const batch of embedTiles(tileStream(planned, done, entered, waitedForPlans), embedder, options.tile, { read: readStreamTile })) {
      const slidesInBatch = new Set(batch.map(({ ref }) => ref.job)).size;
      for (const { ref, embedding } of batch) {
        const job = ref.job;
        if (job.failure === undefined) (job.tiles as NewTile[])[ref.position] = { tile: ref.record, vector: embedding };
        if (--job.remaining === 0) done(job);
      }
      options.logger.debug({ tiles: batch.length, slidesInBatch, slidesInFlight: inStream.size }, 'batch embedded');
      // Slides waiting to be written hold their vectors: when writing falls behind, the stream
      // waits for it rather than letting them pile up.
      if (waitingWrites > MAX_WAITING_WRITES) await writing;
      if (writeError) throw writeError;
    }
    await writing;
    if (writeError) throw writeError;
    for (const shard of store.shards) shard.flush();
    report.stages.planWaitMs = waitedForPlans.ms;
  } finally {
    progress.stop();
    report.stages = {
      startupMs: report.stages.startupMs,
      embedInferenceMs: Math.round(embedder.stats.inferenceMs),
      embedWaitMs: Math.round(embedder.stats.preprocessWaitMs),
      planWaitMs: Math.round(report.stages.planWaitMs),
      writeMs: Math.round(report.stages.writeMs),
      mosaicMs: Math.round(report.stages.mosaicMs),
    };
    await writing.catch(() => undefined);
    // A run that stopped early leaves slides in planning: they finish (and close) before the pool goes.
    await planned.return(undefined);
    await planner.destroy();
    await embedder.close();
    await mosaics.destroy();
    await store.close();
    report.finishedAt = new Date().toISOString();
    report.seconds = (Date.now() - startedAt.getTime()) / 1000;
    report.tilesPerSecond = report.tiles / Math.max(report.seconds, 1e-3);
    writeReport(options.out, report);
  }
  return report;
}

function ownedShards(shards: number, partition: IndexRunOptions['partition']): number[] {
  return Array.from({ length: shards }, (_, shard) => shard).filter((shard) => !partition || shard % partition.count === partition.index);
}

function itemsOf(options: Pick<IndexRunOptions, 'tiles' | 'labels' | 'slides' | 'metadata' | 'items' | 'partition'>, shards: number): { items: Array<SlideItem | TileItem>; mine: Array<SlideItem | TileItem> } {
  const owned = new Set(ownedShards(shards, options.partition));
  const items: Array<SlideItem | TileItem> = options.tiles ? discoverTiles(options.tiles, options.labels) : (options.items ?? discoverSlides(options.slides, options.metadata));
  return { items, mine: items.filter((item) => owned.has(shardOf(idOf(item), shards))) };
}

function idOf(item: SlideItem | TileItem): string {
  return 'slideId' in item ? item.slideId : item.tileId;
}

/**
 * How many slides may be opened and planned ahead of the model: enough to hide a slow open and
 * tissue mask behind the current slide's tiles, few enough that memory stays flat (an open slide
 * holds its file and a few decoded tiles). A tile library's items are one tile each, so more of
 * them are opened ahead: four batches.
 */
function lookaheadOf(options: IndexRunOptions, readThreads: number, batchSize: number): number {
  return options.tiles ? 4 * batchSize : Math.max(2, readThreads + 1);
}

/** A slide (or tile image) on its way through the stream: planned, then filled tile by tile. */
interface PlannedJob {
  ordinal: number;
  slideId: string;
  item: SlideItem | TileItem;
  started: number;
  outcome: 'indexed' | 'skipped';
  /** Set when opening, planning, a tile read or writing failed: the slide is recorded, not written. */
  failure?: unknown;
  fingerprint?: Fingerprint;
  slide?: Slide;
  /** The tiles to embed, with their records; vectors fill `tiles` as they come back. */
  grid: Array<{ tile: GridTile; record: NewTile['tile'] }>;
  spec: TileSpec;
  resize: boolean;
  tiles: Array<NewTile | undefined>;
  remaining: number;
  mpp: [number, number];
  mppSupplied: boolean;
  width: number;
  height: number;
}

/** One tile in the stream, pointing back at its slide's job. */
interface StreamTile extends SlideTile {
  job: PlannedJob;
  position: number;
  record: NewTile['tile'];
}

/** The fingerprint an index holds for a slide id, if it holds the slide. */
type IndexedFingerprint = (slideId: string) => Fingerprint | undefined;

interface PlanningOptions {
  planner: Piscina;
  /** Slides planned (and held open) ahead of the consumer at most. */
  lookahead: number;
  /** Open each slide with tiles on this thread for reading them (a dry run reads none). */
  openToRead: boolean;
}

/**
 * Plans slides in order, up to `lookahead` of them at once ahead of the consumer: fingerprint,
 * skip check, open, calibration and tissue grid. Yields each job when it is planned (or skipped,
 * or failed), in input order.
 */
async function* planAhead(items: Array<SlideItem | TileItem>, indexed: IndexedFingerprint, options: IndexRunOptions, { planner, lookahead, openToRead }: PlanningOptions): AsyncGenerator<PlannedJob> {
  const queue: Array<Promise<PlannedJob>> = [];
  let next = 0;
  try {
    for (;;) {
      while (next < items.length && queue.length < lookahead) {
        const planning = planJob(items[next] as SlideItem | TileItem, next, indexed, options, planner, openToRead);
        planning.catch(() => undefined);
        queue.push(planning);
        next++;
      }
      const job = queue.shift();
      if (!job) return;
      yield await job;
    }
  } finally {
    // Jobs planned but never consumed (the run stopped): close their slides once planned.
    for (const planned of await Promise.all(queue)) planned.slide?.close();
  }
}

async function planJob(item: SlideItem | TileItem, ordinal: number, indexed: IndexedFingerprint, options: IndexRunOptions, planner: Piscina, openToRead: boolean): Promise<PlannedJob> {
  const slideId = idOf(item);
  const job: PlannedJob = { ordinal, slideId, item, started: performance.now(), outcome: 'indexed', grid: [], spec: options.tile, resize: false, tiles: [], remaining: 0, mpp: [0, 0], mppSupplied: false, width: 0, height: 0 };
  try {
    job.fingerprint = fingerprintOf(item.path);
    const existing = indexed(slideId);
    if (existing && sameFingerprint(existing, job.fingerprint)) {
      job.outcome = 'skipped';
      return job;
    }
    if ('slideId' in item) await planSlide(job, item, options, planner, openToRead);
    else await planTileImage(job, item);
    job.tiles = new Array(job.grid.length);
    job.remaining = job.grid.length;
  } catch (error) {
    job.slide?.close();
    delete job.slide;
    job.failure = error;
  }
  return job;
}

/** What plan-worker.mjs answers for a slide. */
type SlidePlan =
  | { ok: true; grid: Array<GridTile & { level: number }>; mpp: [number, number]; mppSupplied: boolean; width: number; height: number }
  | { ok: false; code: ErrorCode; message: string };

/**
 * Opening, calibration, tissue mask and grid of upcoming slides, on worker threads. Threads start
 * with the first slide to plan (a run with nothing to plan starts none); the queue of slides
 * planned ahead (`lookaheadOf`) bounds what they hold.
 */
function planningPool(threads: number): Piscina {
  // workerData must be set: geotiff's web-worker module, loaded by the TIFF reader, takes a
  // worker thread without workerData for one of its own and fails to load.
  return new Piscina({ filename: fileURLToPath(new URL('./plan-worker.mjs', import.meta.url)), minThreads: 0, maxThreads: Math.max(1, threads), idleTimeout: 30_000, workerData: {} });
}

/**
 * Plans a slide on a planning thread, then opens it here to read its tiles (opening reads the
 * file's structure, which is I/O; the tissue mask's decoding is what had to leave this thread).
 */
async function planSlide(job: PlannedJob, item: SlideItem, options: IndexRunOptions, planner: Piscina, openToRead: boolean): Promise<void> {
  const name = item.path.split('/').pop() ?? item.slideId;
  const plan = (await planner.run({ path: item.path, name, explicitMpp: item.mpp, tile: options.tile, minTissue: options.minTissue, dicomWeb: dicomWebSettings() })) as SlidePlan;
  if (!plan.ok) throw new TesseraError(plan.code, plan.message);
  const { mpp } = plan;
  job.grid = plan.grid.map(({ level, ...tile }) => ({ tile, record: { x: tile.baseX, y: tile.baseY, width: tile.baseWidth, height: tile.baseHeight, mpp: mpp[0], tissue: tile.tissue, level } }));
  Object.assign(job, { mpp, mppSupplied: plan.mppSupplied, width: plan.width, height: plan.height });
  if (openToRead && job.grid.length > 0) job.slide = await openSlide(item.path, { access: 'sequential' });
}

/**
 * A tile image is its own "slide" with one tile covering it. Planned on this thread: opening an
 * image reads its header asynchronously (a few KiB), cheaper than a hop to a planning thread.
 */
async function planTileImage(job: PlannedJob, item: TileItem): Promise<void> {
  const slide = await openSlide(item.path);
  job.slide = slide;
  const mpp: [number, number] = slide.mpp ?? [0, 0];
  const tile = { baseX: 0, baseY: 0, baseWidth: slide.width, baseHeight: slide.height, tissue: 1 };
  job.grid = [{ tile, record: { x: 0, y: 0, width: slide.width, height: slide.height, mpp: mpp[0], tissue: 1, level: 0, metadata: item.metadata } }];
  job.spec = { ...DEFAULT_TILE_SPEC, sizePx: slide.width };
  Object.assign(job, { mpp, mppSupplied: false, width: slide.width, height: slide.height });
}

/**
 * The tiles of planned jobs as one stream. A job with nothing to embed (skipped, failed while
 * planning, or without tissue) is finished as soon as it comes out of planning.
 */
async function* tileStream(planned: AsyncIterable<PlannedJob>, finish: (job: PlannedJob) => void, entered: (job: PlannedJob) => void, waited: { ms: number }): AsyncGenerator<StreamTile> {
  const iterator = planned[Symbol.asyncIterator]();
  for (;;) {
    const asked = performance.now();
    const next = await iterator.next();
    waited.ms += performance.now() - asked;
    if (next.done) return;
    const job = next.value;
    if (job.outcome === 'skipped' || job.failure !== undefined || job.grid.length === 0) {
      finish(job);
      continue;
    }
    entered(job);
    const slide = job.slide as Slide;
    for (const [position, { tile, record }] of job.grid.entries()) yield { slide, tile, job, position, record };
  }
}

/** A stand-in for a tile that would not read: its slide is marked failed and the batch goes on. */
const UNREADABLE_TILE: () => RgbImage = () => ({ data: Buffer.alloc(3 * 8 * 8, 255), width: 8, height: 8 });

async function readStreamTile(ref: StreamTile): Promise<RgbImage> {
  if (ref.job.failure !== undefined) return UNREADABLE_TILE();
  try {
    return await readGridTile(ref.slide, ref.tile, ref.job.spec, { resize: false });
  } catch (error) {
    ref.job.failure ??= error;
    return UNREADABLE_TILE();
  }
}

/** Size, mtime and a sha256 of the first and last MiB: cheap, and it changes when the content does. */
export function fingerprintOf(path: string): Fingerprint {
  // A DICOMweb series is immutable once stored (new pixels get a new series UID): its URL is its identity.
  if (isDicomWebSeriesUrl(path)) return { size: 0, mtimeMs: 0, hash: createHash('sha256').update(path).digest('hex') };
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
    // Array tasks start at the same moment: the partition keeps their reports apart.
    const partition = report.partition === 'all' ? '' : `-part-${report.partition.replace('/', '-of-')}`;
    writeFileSync(join(dir, `run-${report.startedAt.replaceAll(':', '-')}${partition}.json`), `${JSON.stringify(report, null, 2)}\n`);
  } catch {
    // A report that cannot be written must not hide the run's own outcome.
  }
}

export interface DryRunReport {
  slides: { total: number; toIndex: number; skipped: number; failed: number; otherPartitions: number };
  tiles: number;
  failures: SlideFailure[];
  /** Model-only tiles/s measured on this machine with this device and batch size. */
  modelTilesPerSecond: number;
  provider: string;
  projectedSeconds: number;
  projectedBytes: number;
  seconds: number;
}

/**
 * Plans a run without embedding or writing anything: opens every slide, counts its tissue tiles
 * (skipping slides an existing index already holds unchanged), measures the model alone for a
 * few batches, and projects the index size and the run's time at that rate.
 * @throws TesseraError MODEL_MISMATCH, INVALID_ARGUMENT (as a real run would)
 */
export async function dryRun(options: IndexRunOptions): Promise<DryRunReport> {
  const started = performance.now();
  const model = resolveModel(options.modelId, options.modelsDir);
  const exists = existsSync(join(options.out, 'index.json'));
  const info = exists ? readIndexInfo(options.out) : { shards: options.shards, hnsw: { M: 16 } };
  if (exists && (info as IndexInfo).model.id !== model.manifest.id) throw new TesseraError('MODEL_MISMATCH', `${options.out} was built with model ${(info as IndexInfo).model.id}; refusing to plan ${model.manifest.id} embeddings`);
  if (exists && info.shards !== options.shards) throw new TesseraError('INVALID_ARGUMENT', `${options.out} has ${info.shards} shards, fixed at creation; got --shards ${options.shards}`);
  const { items, mine } = itemsOf(options, info.shards);
  const store = exists ? IndexStore.open(options.out, { readOnly: true, graph: false }) : undefined;
  const report: DryRunReport = { slides: { total: items.length, toIndex: 0, skipped: 0, failed: 0, otherPartitions: items.length - mine.length }, tiles: 0, failures: [], modelTilesPerSecond: 0, provider: '', projectedSeconds: 0, projectedBytes: 0, seconds: 0 };
  const progress = new Progress(mine.length, options.logger, options.interactive);
  const readThreads = options.readThreads ?? availableParallelism();
  const planner = planningPool(readThreads);
  try {
    for await (const job of planAhead(mine, (slideId) => store?.shardFor(slideId)?.slide(slideId)?.fingerprint, options, { planner, lookahead: lookaheadOf(options, readThreads, 32), openToRead: false })) {
      job.slide?.close();
      if (job.outcome === 'skipped') report.slides.skipped++;
      else if (job.failure !== undefined) {
        report.slides.failed++;
        report.failures.push({ slideId: job.slideId, code: isTesseraError(job.failure) ? job.failure.code : 'SLIDE_CORRUPT', reason: job.failure instanceof Error ? job.failure.message : String(job.failure) });
      } else {
        report.slides.toIndex++;
        report.tiles += job.grid.length;
      }
      progress.slideDone(job.ordinal + 1, job.grid.length, job.failure !== undefined ? 'failed' : job.outcome, performance.now() - job.started);
    }
  } finally {
    progress.stop();
    await planner.destroy();
    await store?.close();
  }
  const measured = await modelOnlyRate(model, options.device);
  report.modelTilesPerSecond = measured.tilesPerSecond;
  report.provider = measured.provider;
  report.projectedSeconds = report.tiles / Math.max(measured.tilesPerSecond, 1e-9);
  report.projectedBytes = report.tiles * bytesPerTile(model.manifest.dimension, info.hnsw.M);
  report.seconds = (performance.now() - started) / 1000;
  return report;
}

/**
 * Bytes one tile adds to a shard: its vector twice (the LMDB commit point keeps each committed
 * vector, the HNSW segment its own copy), the segment's level-0 links (2·M + a count), and the
 * tile record with LMDB's page overhead (about 3.5 KB: bench:index growth measured 845 KiB per
 * 100-tile 1280-d commit). Merges rewrite segments, so a shard briefly needs more while one runs.
 */
function bytesPerTile(dimension: number, M: number): number {
  return 2 * dimension * 4 + (2 * M + 1) * 4 + 3600;
}

/** The model's own throughput here: every session busy with batches of zeros, after a warm-up. */
async function modelOnlyRate(model: ReturnType<typeof resolveModel>, device: DeviceRequest): Promise<{ tilesPerSecond: number; provider: string }> {
  const embedder = await Embedder.create(model, { device, preprocessThreads: 0 });
  try {
    const size = 3 * model.manifest.inputSize ** 2;
    const batch = () => Array.from({ length: embedder.batchSize }, () => new Float32Array(size));
    const round = () => Promise.all(Array.from({ length: embedder.parallelism }, () => embedder.embedPreprocessed(batch())));
    await round();
    const started = performance.now();
    const rounds = 2;
    for (let i = 0; i < rounds; i++) await round();
    return { tilesPerSecond: (rounds * embedder.parallelism * embedder.batchSize) / ((performance.now() - started) / 1000), provider: embedder.provider };
  } finally {
    await embedder.close();
  }
}
