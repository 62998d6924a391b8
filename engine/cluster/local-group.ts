/**
 * LocalShardGroup: shards of an index on this machine. Records, metadata and stored vectors are
 * read on the calling thread (LMDB, opened without graphs); searches run on search threads, each
 * holding a disjoint share of the shards' segments (planParts), so every graph is in memory once
 * whatever the thread count. A search goes to every thread holding a part and their hits are
 * merged. All of it is one "generation" of the index: a reload opens the next and swaps it in.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import sharp from 'sharp';
import { TesseraError } from '../errors.js';
import { datasetOf, IndexStore, mergeHits, planParts, type Label, type LocalShard, type QueryExclusions, type SlidePageQuery, type SlideRecord, type TileHit } from '../index/index.js';
import type { RgbImage } from '../slide/index.js';
import { readGridTile } from '../tiling/index.js';
import { shardRecall } from './recall.js';
import { SearchQueue, type SearchRunner } from './search-queue.js';
import { openSearchTasks, type SearchTask, type SearchTasks } from './search-tasks.js';
import { mergeSlidePages, summaryOf, type BaseRect, type GroupHealth, type GroupSlidePage, type GroupSearchResult, type ScopedSearch, type ShardGroup, type SlideSummary, type SlideVectors, type StoredTileSearch } from './shard-group.js';
import { SlideFiles } from './slide-files.js';

const WORKER = fileURLToPath(new URL('./search-worker.mjs', import.meta.url));

export interface LocalGroupOptions {
  /** Shards to serve (default: those present). */
  shards?: number[];
  /**
   * Search threads (default: one per core). 0: search on the calling thread, for one-shot commands
   * (starting a search thread costs more than their few searches: ~1.4 s on the loaded 2-core
   * machine), never for a server, whose event loop must stay free.
   */
  threads?: number;
  /** Folders slide files must lie in; undefined: anywhere. */
  slideRoots?: string[];
  /** DICOMweb service roots that slides indexed over DICOMweb may be read from. */
  dicomWebServers?: string[];
}

/** One opening of the index: records, search threads and slide files. A reload swaps in a new one. */
interface Generation {
  store: IndexStore;
  /** One pool of one thread per share of the parts; threads that were given no part are not started. */
  pools: SearchRunner[];
  queues: SearchQueue[];
  /** Exact scans running on the threads (they bypass the queues): waited for before the threads stop. */
  scans: Set<Promise<unknown>>;
  slideFiles: SlideFiles;
}

/** Opening a generation again when a merge replaced segments between planning and loading them. */
const OPEN_ATTEMPTS = 3;

/** How long a replaced generation stays open for requests that started on it (beyond any deadline). */
const RETIRE_GRACE_MS = 5000;

export class LocalShardGroup implements ShardGroup {
  readonly location = 'local';
  /** Counts reloads: caches of anything read through this group key on it. */
  generation = 0;
  /** Replaced generations still open for the requests that started on them. */
  private readonly retired = new Set<Generation>();

  private constructor(
    private readonly indexDir: string,
    private readonly options: LocalGroupOptions,
    private current: Generation,
  ) {}

  get store(): IndexStore {
    return this.current.store;
  }

  get slideFiles(): SlideFiles {
    return this.current.slideFiles;
  }

  get shardIds(): number[] {
    return this.store.shards.map((shard) => shard.index);
  }

  /**
   * Opens the shards and starts the search threads; resolves once every thread holds them.
   * @throws TesseraError INDEX_NOT_FOUND, INDEX_CORRUPT, MODEL_MISMATCH, INVALID_ARGUMENT
   */
  static async open(indexDir: string, options: LocalGroupOptions = {}): Promise<LocalShardGroup> {
    return new LocalShardGroup(indexDir, options, await openGeneration(indexDir, options));
  }

  /**
   * Opens the index again (slides indexed since are then served) and swaps it in; requests
   * already running finish on the old opening, which closes a few seconds later. Both are in
   * memory meanwhile. Refused, with the old index still served, when the model or shard count
   * changed.
   * @throws TesseraError MODEL_MISMATCH, INVALID_ARGUMENT, INDEX_CORRUPT, INDEX_NOT_FOUND
   */
  async reload(): Promise<GroupHealth> {
    const next = await openGeneration(this.indexDir, { ...this.options, shards: this.options.shards ?? this.shardIds });
    const before = this.store.info;
    const after = next.store.info;
    if (after.model.id !== before.model.id || after.model.version !== before.model.version || after.model.dimension !== before.model.dimension || after.shards !== before.shards) {
      await closeGeneration(next);
      throw new TesseraError('MODEL_MISMATCH', `${this.indexDir} now holds an index of ${after.shards} shards built with ${after.model.id} ${after.model.version}; this server serves ${before.shards} shards of ${before.model.id} ${before.model.version}: restart it instead`);
    }
    const previous = this.current;
    this.current = next;
    this.generation++;
    this.retired.add(previous);
    setTimeout(() => {
      if (this.retired.delete(previous)) void closeGeneration(previous).catch(() => undefined);
    }, RETIRE_GRACE_MS).unref();
    return this.health();
  }

  async search(queries: Float32Array[], request: ScopedSearch, deadline?: number): Promise<GroupSearchResult> {
    const { store, queues } = this.current;
    const dimension = store.info.model.dimension;
    if (queries.length === 0 || queues.length === 0) return { hits: queries.map(() => []), shardMs: {} };
    const answers = await Promise.all(
      queues.map((queue) => {
        const flat = new Float32Array(queries.length * dimension);
        queries.forEach((query, i) => flat.set(query, i * dimension));
        return queue.run<GroupSearchResult>({ op: 'search', queries: flat, dimension, request }, deadline);
      }),
    );
    if (answers.length === 1) return answers[0] as GroupSearchResult;
    const shardMs: Record<number, number> = {};
    for (const answer of answers) for (const [shard, ms] of Object.entries(answer.shardMs)) shardMs[Number(shard)] = (shardMs[Number(shard)] ?? 0) + ms;
    return { hits: queries.map((_, i) => mergeHits(answers.map((answer) => answer.hits[i] ?? []), request.k)), shardMs };
  }

  async exactSearch(queries: Float32Array[], request: ScopedSearch, perQuery: QueryExclusions[], deadline?: number): Promise<GroupSearchResult> {
    const generation = this.current;
    const { store, pools } = generation;
    const dimension = store.info.model.dimension;
    if (queries.length === 0 || pools.length === 0) return { hits: queries.map(() => []), shardMs: {} };
    const flat = new Float32Array(queries.length * dimension);
    queries.forEach((query, i) => flat.set(query, i * dimension));
    // Sent to each thread's pool directly, not through the search queue: a scan has nothing to be
    // batched with, and the searches that arrive meanwhile wait behind it in piscina's own queue.
    const scans = Promise.all(pools.map((pool) => pool.run({ op: 'exact', queries: flat, dimension, request, perQuery } satisfies SearchTask) as Promise<GroupSearchResult>));
    generation.scans.add(scans);
    void scans.catch(() => undefined).finally(() => generation.scans.delete(scans));
    const answers = await (deadline === undefined ? scans : withDeadline(scans, deadline));
    const shardMs: Record<number, number> = {};
    for (const answer of answers) for (const [shard, ms] of Object.entries(answer.shardMs)) shardMs[Number(shard)] = (shardMs[Number(shard)] ?? 0) + ms;
    return { hits: queries.map((_, i) => mergeHits(answers.map((answer) => answer.hits[i] ?? []), request.k)), shardMs };
  }

  async storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null> {
    const found = recordIn(this.current.store, slideId, datasets);
    return found ? vectorsOf(found, selection) : null;
  }

  async slideVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<SlideVectors | undefined> {
    const found = recordIn(this.current.store, slideId, datasets);
    return found && { slide: summaryOf(found.record, found.shard.index), vectors: vectorsOf(found, selection) };
  }

  async searchFromStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<StoredTileSearch | undefined> {
    const found = await this.slideVectors(slideId, { rect }, request.datasets ?? null);
    return found && { ...found, result: found.vectors ? await this.search(found.vectors, request) : null };
  }

  async searchStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<GroupSearchResult | null> {
    const vectors = await this.storedVectors(slideId, { rect }, request.datasets ?? null);
    return vectors ? this.search(vectors, request) : null;
  }

  async slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
    const found = this.record(slideId, datasets);
    return found && summaryOf(found.record, found.shard.index);
  }

  async slidePage(query: SlidePageQuery): Promise<GroupSlidePage> {
    const pages = this.current.store.shards.map((shard) => {
      const page = shard.slidePage(query);
      return { slides: page.records.map((record) => summaryOf(record, shard.index)), total: page.total, facets: page.facets, more: page.more };
    });
    return mergeSlidePages(pages, query.limit);
  }

  async slideTotals(datasets: string[] | null): Promise<{ slides: number; tiles: number }> {
    const totals = { slides: 0, tiles: 0 };
    for (const shard of this.current.store.shards) {
      const counts = shard.slideTotals(datasets);
      totals.slides += counts.slides;
      totals.tiles += counts.tiles;
    }
    return totals;
  }

  async readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage> {
    const { store, slideFiles } = this.current;
    const found = recordIn(store, slideId, datasets);
    if (!found) throw new TesseraError('SLIDE_NOT_FOUND', `slide "${slideId}" is not in this index`);
    const slide = await slideFiles.get(slideId, found.record.path);
    const tile = { baseX: rect.x, baseY: rect.y, baseWidth: rect.width, baseHeight: rect.height, tissue: 1 };
    const spec = store.info.tile;
    const sizePx = Math.max(1, Math.round((rect.width * found.record.mpp[0]) / spec.mpp));
    const region = await readGridTile(slide, tile, { mpp: spec.mpp, sizePx }, { resize: false });
    return reducedToTile(region, spec.sizePx);
  }

  /** Indexed slides whose files (or series) lie outside the slide roots (or DICOMweb servers): their images cannot be served. */
  slidesOutsideRoots(): number {
    const { store, slideFiles } = this.current;
    return slideFiles.countUnreadable(store.shards.flatMap((shard) => shard.slideIds().map((id) => (shard.slide(id) as SlideRecord).path)));
  }

  /** The record and shard of a slide in scope, for the API's image routes. */
  record(slideId: string, datasets: string[] | null): { shard: LocalShard; record: SlideRecord } | undefined {
    return recordIn(this.current.store, slideId, datasets);
  }

  async health(): Promise<GroupHealth> {
    const { info } = this.store;
    return {
      location: this.location,
      shards: this.store.shards.map((shard) => ({ shard: shard.index, slides: shard.slideCount, tiles: shard.tileCount, recall: shardRecall(shard.segments, shard.tailTiles) })),
      model: info.model,
      index: { shards: info.shards, tile: info.tile, hnsw: info.hnsw, metric: info.metric },
    };
  }

  async close(): Promise<void> {
    const open = [this.current, ...this.retired];
    this.retired.clear();
    await Promise.all(open.map(closeGeneration));
  }
}

/**
 * A region read at the index's resolution, stretched to the tile size as the embedder stretches
 * its input (fit fill): what a tile of the index was when it was embedded. Done where the region
 * is read, so a router gets 224² pixels rather than up to 64 MP. With the default grid (224 px)
 * and a 224 px model this is the one resize the embedder would have done itself.
 */
async function reducedToTile(region: RgbImage, sizePx: number): Promise<RgbImage> {
  if (region.width === sizePx && region.height === sizePx) return region;
  const data = await sharp(region.data, { raw: { width: region.width, height: region.height, channels: 3 } }).resize(sizePx, sizePx, { fit: 'fill' }).raw().toBuffer();
  return { data, width: sizePx, height: sizePx };
}

/** `work`, or SHARD_UNAVAILABLE once `deadline` (epoch ms) passes; the work itself runs on. */
function withDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TesseraError('SHARD_UNAVAILABLE', 'local shards missed the deadline of an exact search', { transient: true })), Math.max(1, deadline - Date.now()));
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/** The stored vectors of a selection of a slide's tiles: the tile at exactly a rect, or its mosaic; null when no tile has that rect. */
function vectorsOf({ shard, record }: { shard: LocalShard; record: SlideRecord }, selection: { rect: BaseRect } | { mosaic: true }): Float32Array[] | null {
  let labels: Label[];
  if ('mosaic' in selection) labels = record.mosaic.length > 0 ? record.mosaic : record.labels.slice(0, 16);
  else {
    const label = shard.tileAt(record.slideId, selection.rect);
    if (label === undefined) return null;
    labels = [label];
  }
  // Stored vectors come from the commit point (LMDB): no search thread needed.
  return labels.map((label) => shard.vector(label));
}

function recordIn(store: IndexStore, slideId: string, datasets: string[] | null): { shard: LocalShard; record: SlideRecord } | undefined {
  const shard = store.shardFor(slideId);
  const record = shard?.slide(slideId);
  if (!shard || !record) return undefined;
  if (datasets && !datasets.includes(datasetOf(record.metadata))) return undefined;
  return { shard, record };
}

async function openGeneration(indexDir: string, options: LocalGroupOptions): Promise<Generation> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await openGenerationOnce(indexDir, options);
    } catch (error) {
      // A writer merged segments between this thread's plan and a search thread's load: plan again.
      if (attempt >= OPEN_ATTEMPTS || !(error instanceof TesseraError && error.transient)) throw error;
    }
  }
}

async function openGenerationOnce(indexDir: string, options: LocalGroupOptions): Promise<Generation> {
  const store = IndexStore.open(indexDir, { readOnly: true, graph: false, ...(options.shards ? { shards: options.shards } : {}) });
  // Sorts each shard's slide listing now (0.7–1 s per 500k slides), not on the first list request after a start or reload.
  for (const shard of store.shards) shard.slidePage({ limit: 0, datasets: null });
  const threads = options.threads ?? availableParallelism();
  const shards = store.shards.map((shard) => shard.index);
  const plans = planParts(store.shards, Math.max(1, threads)).filter((plan) => plan.size > 0);
  const pools: SearchRunner[] = plans.map((plan) => {
    const workerData = { indexDir, shards: [...plan.keys()], parts: [...plan.entries()] };
    if (threads === 0) return callingThreadRunner(workerData);
    return new Piscina({ filename: WORKER, minThreads: 1, maxThreads: 1, idleTimeout: Number.POSITIVE_INFINITY, workerData });
  });
  const describe = `local shards ${shards.join(',')}`;
  const generation: Generation = { store, pools, queues: pools.map((pool) => new SearchQueue(pool, 1, describe)), scans: new Set(), slideFiles: new SlideFiles(options.slideRoots, options.dicomWebServers) };
  try {
    await Promise.all(pools.map((pool) => pool.run({ op: 'ping', delayMs: 0 } satisfies SearchTask)));
  } catch (error) {
    await closeGeneration(generation);
    const transient = error instanceof Error && /segments .* were asked for/.test(error.message);
    throw new TesseraError('INDEX_CORRUPT', `${indexDir}: a search thread could not open the shards: ${(error as Error).message}`, { cause: error, transient });
  }
  return generation;
}

/**
 * A search thread's tasks run on the calling thread: the same code without the thread. Its parts
 * open on the first task (the start-up ping), so that a failure to open them surfaces as a search
 * thread's would.
 */
function callingThreadRunner(workerData: { indexDir: string; shards: number[]; parts: Parameters<typeof openSearchTasks>[2] }): SearchRunner {
  let tasks: SearchTasks | undefined;
  return {
    run: async (task) => (tasks ??= openSearchTasks(workerData.indexDir, workerData.shards, workerData.parts)).run(task),
    destroy: async () => {
      await tasks?.close();
    },
  };
}

async function closeGeneration(generation: Generation): Promise<void> {
  // Waiting searches are failed; running ones finish first: a thread terminated inside hnswlib's
  // searchKnn aborts the whole process instead of exiting.
  await Promise.all(generation.queues.map((queue) => queue.close()));
  await Promise.allSettled([...generation.scans]);
  await Promise.all(generation.pools.map((pool) => pool.destroy()));
  await generation.slideFiles.close();
  await generation.store.close();
}

export type { TileHit };
