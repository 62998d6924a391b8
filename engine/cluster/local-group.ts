/**
 * LocalShardGroup: shards of an index on this machine. Records and metadata live on the calling
 * thread (opened without their graphs); searches run on a pool of worker threads that each hold
 * the shards with their graphs, so a slow search never blocks the event loop and every core
 * searches.
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
}

export class LocalShardGroup implements ShardGroup {
  readonly location = 'local';
  private readonly queue: SearchQueue;

  private constructor(
    readonly store: IndexStore,
    private readonly pool: Piscina,
    threads: number,
    readonly slideFiles: SlideFiles,
  ) {
    this.queue = new SearchQueue(pool, threads, `local shards ${this.shardIds.join(',')}`);
  }

  get shardIds(): number[] {
    return this.store.shards.map((shard) => shard.index);
  }

  /**
   * Opens the shards and starts the search threads; resolves once every thread holds them.
   * @throws TesseraError INDEX_NOT_FOUND, INDEX_CORRUPT, MODEL_MISMATCH, INVALID_ARGUMENT
   */
  static async open(indexDir: string, options: LocalGroupOptions = {}): Promise<LocalShardGroup> {
    const store = IndexStore.open(indexDir, { readOnly: true, graph: false, ...(options.shards ? { shards: options.shards } : {}) });
    const threads = options.threads ?? availableParallelism();
    const pool = new Piscina({
      filename: WORKER,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      // Queries queue here rather than in the event loop; a deep queue means the node is overloaded.
      maxQueue: 4096,
      workerData: { indexDir, shards: store.shards.map((shard) => shard.index) },
    });
    const group = new LocalShardGroup(store, pool, threads, new SlideFiles(options.slideRoots));
    try {
      await Promise.all(Array.from({ length: threads }, () => pool.run({ op: 'ping', delayMs: 50 } satisfies SearchTask)));
    } catch (error) {
      await group.close();
      throw new TesseraError('INDEX_CORRUPT', `${indexDir}: a search thread could not open the shards: ${(error as Error).message}`, { cause: error });
    }
    return group;
  }

  async search(queries: Float32Array[], request: ScopedSearch, deadline?: number): Promise<GroupSearchResult> {
    const dimension = this.store.info.model.dimension;
    if (queries.length === 0) return { hits: [], shardMs: {} };
    const flat = new Float32Array(queries.length * dimension);
    queries.forEach((query, i) => flat.set(query, i * dimension));
    return this.queue.run<GroupSearchResult>({ op: 'search', queries: flat, dimension, request }, deadline);
  }

  async storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null> {
    const found = this.record(slideId, datasets);
    if (!found) return null;
    const { shard, record } = found;
    let labels: Label[];
    if ('mosaic' in selection) labels = record.mosaic.length > 0 ? record.mosaic : record.labels.slice(0, 16);
    else {
      const tile = this.labelAt(slideId, selection.rect, datasets);
      if (!tile) return null;
      labels = [tile.label];
    }
    const dimension = this.store.info.model.dimension;
    const flat = await this.queue.run<Float32Array>({ op: 'vectors', shard: shard.index, labels });
    return labels.map((_, i) => flat.slice(i * dimension, (i + 1) * dimension));
  }

  async searchStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<GroupSearchResult | null> {
    const label = this.labelAt(slideId, rect, request.datasets ?? null);
    if (label === null) return null;
    return this.queue.run<GroupSearchResult | null>({ op: 'searchStored', shard: label.shard, label: label.label, request });
  }

  async slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
    const found = this.record(slideId, datasets);
    return found && summaryOf(found.record, found.shard.index);
  }

  async slides(datasets: string[] | null): Promise<SlideSummary[]> {
    const scope = datasets && new Set(datasets);
    return this.store.shards.flatMap((shard) =>
      shard
        .slideIds()
        .map((id) => shard.slide(id) as SlideRecord)
        .filter((record) => !scope || scope.has(datasetOf(record.metadata)))
        .map((record) => summaryOf(record, shard.index)),
    );
  }

  async readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage> {
    const found = this.record(slideId, datasets);
    if (!found) throw new TesseraError('SLIDE_NOT_FOUND', `slide "${slideId}" is not in this index`);
    const slide = await this.slideFiles.get(slideId, found.record.path);
    const tile = { baseX: rect.x, baseY: rect.y, baseWidth: rect.width, baseHeight: rect.height, tissue: 1 };
    const spec = this.store.info.tile;
    const sizePx = Math.max(1, Math.round((rect.width * found.record.mpp[0]) / spec.mpp));
    return readGridTile(slide, tile, { mpp: spec.mpp, sizePx }, { resize: false });
  }

  /** The record and shard of a slide in scope, for the API's image routes. */
  record(slideId: string, datasets: string[] | null): { shard: LocalShard; record: SlideRecord } | undefined {
    const shard = this.store.shardFor(slideId);
    const record = shard?.slide(slideId);
    if (!shard || !record) return undefined;
    if (datasets && !datasets.includes(datasetOf(record.metadata))) return undefined;
    return { shard, record };
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
    // Waiting searches are failed; running ones finish first: a thread terminated inside
    // hnswlib's searchKnn aborts the whole process instead of exiting.
    await this.queue.close();
    await this.pool.destroy();
    await this.slideFiles.close();
    await this.store.close();
  }

  /** The label of the indexed tile at exactly `rect` of a slide in scope, or null. */
  private labelAt(slideId: string, rect: BaseRect, datasets: string[] | null): { shard: number; label: Label } | null {
    const found = this.record(slideId, datasets);
    const label = found?.shard.tileAt(slideId, rect);
    return found && label !== undefined ? { shard: found.shard.index, label } : null;
  }
}

export type { TileHit };
