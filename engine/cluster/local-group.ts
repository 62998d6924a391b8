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
import type { SearchTask } from './search-tasks.js';
import { summaryOf, type BaseRect, type GroupHealth, type GroupSearchResult, type ScopedSearch, type ShardGroup, type SlideSummary } from './shard-group.js';
import { SlideFiles } from './slide-files.js';

const WORKER = fileURLToPath(new URL('./search-worker.mjs', import.meta.url));
/** Slides whose tile positions are kept in a lookup table for tile references (~30 KB per 1,000 tiles). */
const RECT_TABLES = 2048;

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
  private readonly rectTables = new Map<string, Map<number, Label>>();

  private constructor(
    readonly store: IndexStore,
    private readonly pool: Piscina,
    readonly slideFiles: SlideFiles,
  ) {}

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
    const group = new LocalShardGroup(store, pool, new SlideFiles(options.slideRoots));
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
    const signal = deadline === undefined ? undefined : AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    const task: SearchTask = { op: 'search', queries: flat, dimension, request };
    try {
      return (await this.pool.run(task, { transferList: [flat.buffer as ArrayBuffer], ...(signal ? { signal } : {}) })) as GroupSearchResult;
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw new TesseraError('SHARD_UNAVAILABLE', `local shards ${this.shardIds.join(',')} missed the deadline`, { cause: error, transient: true });
      throw error;
    }
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
    const flat = (await this.pool.run({ op: 'vectors', shard: shard.index, labels } satisfies SearchTask)) as Float32Array;
    return labels.map((_, i) => flat.slice(i * dimension, (i + 1) * dimension));
  }

  async searchStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<(GroupSearchResult & { vector: Float32Array }) | null> {
    const label = this.labelAt(slideId, rect, request.datasets ?? null);
    if (label === null) return null;
    return (await this.pool.run({ op: 'searchStored', shard: label.shard, label: label.label, request } satisfies SearchTask)) as (GroupSearchResult & { vector: Float32Array }) | null;
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
    await this.pool.destroy();
    await this.slideFiles.close();
    await this.store.close();
  }

  /** The label of the indexed tile at exactly `rect` of a slide in scope, or null. */
  private labelAt(slideId: string, rect: BaseRect, datasets: string[] | null): { shard: number; label: Label } | null {
    const found = this.record(slideId, datasets);
    if (!found) return null;
    const label = this.rectTable(found.shard, found.record).get(positionKey(rect));
    const tile = label === undefined ? undefined : found.shard.tile(label);
    if (label === undefined || !tile || tile.width !== rect.width || tile.height !== rect.height) return null;
    return { shard: found.shard.index, label };
  }

  /** Tile position (x, y) → label for one slide's tiles, built on first use. */
  private rectTable(shard: LocalShard, record: SlideRecord): Map<number, Label> {
    let table = this.rectTables.get(record.slideId);
    if (!table) {
      table = new Map();
      for (const label of record.labels) {
        const tile = shard.tile(label);
        if (tile) table.set(positionKey(tile), label);
      }
      if (this.rectTables.size >= RECT_TABLES) this.rectTables.delete(this.rectTables.keys().next().value as string);
      this.rectTables.set(record.slideId, table);
    }
    return table;
  }
}

/** x and y in one number (exact while x < 2^21, far beyond any slide). */
function positionKey(rect: { x: number; y: number }): number {
  return rect.x * 2 ** 32 + rect.y;
}

export type { TileHit };
