/**
 * LocalShardGroup: shards of an index on this machine. Records and metadata live on the calling
 * thread (opened without their graphs); searches run on a pool of worker threads that each hold
 * the shards with their graphs, so a slow search never blocks the event loop and every core
 * searches. All of it is one "generation" of the index: a reload opens the next and swaps it in.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { TesseraError } from '../errors.js';
import { datasetOf, IndexStore, type Label, type LocalShard, type SlideRecord, type TileHit } from '../index/index.js';
import type { RgbImage } from '../slide/index.js';
import { readGridTile } from '../tiling/index.js';
import { SearchQueue } from './search-queue.js';
import type { SearchTask } from './search-tasks.js';
import { summaryOf, type BaseRect, type GroupHealth, type GroupSearchResult, type ScopedSearch, type ShardGroup, type SlideSummary } from './shard-group.js';
import { SlideFiles } from './slide-files.js';

const WORKER = fileURLToPath(new URL('./search-worker.mjs', import.meta.url));

export interface LocalGroupOptions {
  /** Shards to serve (default: those present). */
  shards?: number[];
  /** Search threads (default: one per core). */
  threads?: number;
  /** Folders slide files must lie in; undefined: anywhere. */
  slideRoots?: string[];
  /** DICOMweb service roots that slides indexed over DICOMweb may be read from. */
  dicomWebServers?: string[];
}

/** One opening of the index: records, search threads and slide files. A reload swaps in a new one. */
interface Generation {
  store: IndexStore;
  pool: Piscina;
  queue: SearchQueue;
  slideFiles: SlideFiles;
}

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
    const { store, queue } = this.current;
    const dimension = store.info.model.dimension;
    if (queries.length === 0) return { hits: [], shardMs: {} };
    const flat = new Float32Array(queries.length * dimension);
    queries.forEach((query, i) => flat.set(query, i * dimension));
    return queue.run<GroupSearchResult>({ op: 'search', queries: flat, dimension, request }, deadline);
  }

  async storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null> {
    const generation = this.current;
    const found = recordIn(generation.store, slideId, datasets);
    if (!found) return null;
    const { shard, record } = found;
    let labels: Label[];
    if ('mosaic' in selection) labels = record.mosaic.length > 0 ? record.mosaic : record.labels.slice(0, 16);
    else {
      const label = shard.tileAt(slideId, selection.rect);
      if (label === undefined) return null;
      labels = [label];
    }
    const dimension = generation.store.info.model.dimension;
    const flat = await generation.queue.run<Float32Array>({ op: 'vectors', shard: shard.index, labels });
    return labels.map((_, i) => flat.slice(i * dimension, (i + 1) * dimension));
  }

  async searchStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<GroupSearchResult | null> {
    const { store, queue } = this.current;
    const found = recordIn(store, slideId, request.datasets ?? null);
    const label = found?.shard.tileAt(slideId, rect);
    if (!found || label === undefined) return null;
    return queue.run<GroupSearchResult | null>({ op: 'searchStored', shard: found.shard.index, label, request });
  }

  async slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
    const found = this.record(slideId, datasets);
    return found && summaryOf(found.record, found.shard.index);
  }

  async slides(datasets: string[] | null): Promise<SlideSummary[]> {
    const scope = datasets && new Set(datasets);
    return this.current.store.shards.flatMap((shard) =>
      shard
        .slideIds()
        .map((id) => shard.slide(id) as SlideRecord)
        .filter((record) => !scope || scope.has(datasetOf(record.metadata)))
        .map((record) => summaryOf(record, shard.index)),
    );
  }

  async readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage> {
    const { store, slideFiles } = this.current;
    const found = recordIn(store, slideId, datasets);
    if (!found) throw new TesseraError('SLIDE_NOT_FOUND', `slide "${slideId}" is not in this index`);
    const slide = await slideFiles.get(slideId, found.record.path);
    const tile = { baseX: rect.x, baseY: rect.y, baseWidth: rect.width, baseHeight: rect.height, tissue: 1 };
    const spec = store.info.tile;
    const sizePx = Math.max(1, Math.round((rect.width * found.record.mpp[0]) / spec.mpp));
    return readGridTile(slide, tile, { mpp: spec.mpp, sizePx }, { resize: false });
  }

  /** The record and shard of a slide in scope, for the API's image routes. */
  record(slideId: string, datasets: string[] | null): { shard: LocalShard; record: SlideRecord } | undefined {
    return recordIn(this.current.store, slideId, datasets);
  }

  async health(): Promise<GroupHealth> {
    const { info } = this.store;
    return {
      location: this.location,
      shards: this.store.shards.map((shard) => ({ shard: shard.index, slides: shard.slideCount, tiles: shard.tileCount })),
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

function recordIn(store: IndexStore, slideId: string, datasets: string[] | null): { shard: LocalShard; record: SlideRecord } | undefined {
  const shard = store.shardFor(slideId);
  const record = shard?.slide(slideId);
  if (!shard || !record) return undefined;
  if (datasets && !datasets.includes(datasetOf(record.metadata))) return undefined;
  return { shard, record };
}

async function openGeneration(indexDir: string, options: LocalGroupOptions): Promise<Generation> {
  const store = IndexStore.open(indexDir, { readOnly: true, graph: false, ...(options.shards ? { shards: options.shards } : {}) });
  const threads = options.threads ?? availableParallelism();
  const pool = new Piscina({
    filename: WORKER,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: { indexDir, shards: store.shards.map((shard) => shard.index) },
  });
  const generation: Generation = { store, pool, queue: new SearchQueue(pool, threads, `local shards ${store.shards.map((shard) => shard.index).join(',')}`), slideFiles: new SlideFiles(options.slideRoots, options.dicomWebServers) };
  try {
    await Promise.all(Array.from({ length: threads }, () => pool.run({ op: 'ping', delayMs: 50 } satisfies SearchTask)));
  } catch (error) {
    await closeGeneration(generation);
    throw new TesseraError('INDEX_CORRUPT', `${indexDir}: a search thread could not open the shards: ${(error as Error).message}`, { cause: error });
  }
  return generation;
}

async function closeGeneration(generation: Generation): Promise<void> {
  // Waiting searches are failed; running ones finish first: a thread terminated inside hnswlib's
  // searchKnn aborts the whole process instead of exiting.
  await generation.queue.close();
  await generation.pool.destroy();
  await generation.slideFiles.close();
  await generation.store.close();
}

export type { TileHit };
