/**
 * An index directory: index.json plus shard-NNN folders. Slides go to shards by a stable hash of
 * their id, so every job computes the same assignment and partitions never overlap.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TesseraError } from '../errors.js';
import { LocalShard, type PartSelection } from './local-shard.js';
import type { MergePolicy } from './merge-policy.js';
import type { SearchOptions } from './shard-search.js';
import { INDEX_FORMAT_VERSION, type IndexInfo, type ModelRef, type TileHit } from './types.js';

export interface CreateIndexOptions {
  shards: number;
  model: ModelRef;
  tile: { mpp: number; sizePx: number };
  hnsw?: { M: number; efConstruction: number };
}

/** FNV-1a over the UTF-8 bytes: stable across processes, machines and Node versions. */
export function shardOf(slideId: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(slideId, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

export function shardDir(indexDir: string, shard: number): string {
  return join(indexDir, `shard-${String(shard).padStart(3, '0')}`);
}

export function readIndexInfo(indexDir: string): IndexInfo {
  const path = join(indexDir, 'index.json');
  if (!existsSync(path)) throw new TesseraError('INDEX_NOT_FOUND', `${indexDir}: no index here (index.json is missing)`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as IndexInfo;
  } catch (error) {
    throw new TesseraError('INDEX_CORRUPT', `${indexDir}: index.json is not valid JSON`, { cause: error });
  }
}

/**
 * Creates the index (or checks that an existing one has the same model, shard count and tile grid).
 * @throws TesseraError MODEL_MISMATCH, INVALID_ARGUMENT, INDEX_WRITE_FAILED
 */
export function createOrCheckIndex(indexDir: string, options: CreateIndexOptions): IndexInfo {
  if (existsSync(join(indexDir, 'index.json'))) return checkSameIndex(indexDir, readIndexInfo(indexDir), options);
  if (!Number.isInteger(options.shards) || options.shards < 1 || options.shards > 4096) throw new TesseraError('INVALID_ARGUMENT', `shard count must be an integer from 1 to 4096, got ${options.shards}`);
  const info: IndexInfo = {
    formatVersion: INDEX_FORMAT_VERSION,
    shards: options.shards,
    model: options.model,
    metric: 'cosine',
    hnsw: options.hnsw ?? { M: 16, efConstruction: 200 },
    tile: options.tile,
    createdAt: new Date().toISOString(),
  };
  // Jobs of one array start together: each writes its own temporary file and links it into
  // place, which fails if index.json exists (an exclusive create that never shows a half-written
  // file, on NFS too). The job that loses checks the winner's index.json like any existing one.
  const temporary = join(indexDir, `index.json.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    mkdirSync(indexDir, { recursive: true });
    writeFileSync(temporary, `${JSON.stringify(info, null, 2)}\n`);
    linkSync(temporary, join(indexDir, 'index.json'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return checkSameIndex(indexDir, readIndexInfo(indexDir), options);
    throw new TesseraError('INDEX_WRITE_FAILED', `cannot create the index in ${indexDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  } finally {
    try {
      rmSync(temporary, { force: true });
    } catch {
      // Nothing was written where the folder could not be made.
    }
  }
  return info;
}

function checkSameIndex(indexDir: string, info: IndexInfo, options: CreateIndexOptions): IndexInfo {
  if (info.model.id !== options.model.id || info.model.version !== options.model.version || info.model.dimension !== options.model.dimension) {
    throw new TesseraError('MODEL_MISMATCH', `${indexDir} was built with model ${info.model.id} ${info.model.version} (${info.model.dimension}-d); refusing to add ${options.model.id} ${options.model.version} (${options.model.dimension}-d) embeddings`);
  }
  if (info.shards !== options.shards) throw new TesseraError('INVALID_ARGUMENT', `${indexDir} has ${info.shards} shards, fixed at creation; got --shards ${options.shards}`);
  if (info.tile.mpp !== options.tile.mpp || info.tile.sizePx !== options.tile.sizePx) {
    throw new TesseraError('INVALID_ARGUMENT', `${indexDir} tiles at ${info.tile.sizePx} px, ${info.tile.mpp} µm/px; got ${options.tile.sizePx} px, ${options.tile.mpp} µm/px`);
  }
  return info;
}

/** The shards of an index present on this machine, opened together. */
export class IndexStore {
  private constructor(
    readonly dir: string,
    readonly info: IndexInfo,
    readonly shards: LocalShard[],
  ) {}

  /**
   * Opens the listed shards (default: all of them when writable; those present when read-only).
   * `graph: false` opens records and metadata only (see LocalShard.open).
   */
  static open(indexDir: string, options: { readOnly?: boolean; shards?: number[]; expectModel?: ModelRef; graph?: boolean; parts?: ReadonlyMap<number, PartSelection>; policy?: MergePolicy; exactScanLimit?: number } = {}): IndexStore {
    const info = readIndexInfo(indexDir);
    if (info.formatVersion !== INDEX_FORMAT_VERSION) {
      throw new TesseraError('INDEX_OUTDATED', `${indexDir} is in index format ${info.formatVersion}, this Tessera reads format ${INDEX_FORMAT_VERSION}: convert it with \`tessera upgrade --index ${indexDir}\``);
    }
    const expected = options.expectModel;
    if (expected && (expected.id !== info.model.id || expected.version !== info.model.version || expected.dimension !== info.model.dimension)) {
      throw new TesseraError('MODEL_MISMATCH', `${indexDir} was built with model ${info.model.id} ${info.model.version} (${info.model.dimension}-d); the query uses ${expected.id} ${expected.version}`);
    }
    const all = Array.from({ length: info.shards }, (_, shard) => shard);
    const wanted = options.shards ?? (options.readOnly ? all.filter((shard) => existsSync(shardDir(indexDir, shard))) : all);
    const unknown = wanted.filter((shard) => !Number.isInteger(shard) || shard < 0 || shard >= info.shards);
    if (unknown.length > 0) throw new TesseraError('INVALID_ARGUMENT', `${indexDir} has shards 0 to ${info.shards - 1}; there is no shard ${unknown.join(', ')}`);
    const shards: LocalShard[] = [];
    try {
      for (const shard of wanted) {
        const parts = options.parts?.get(shard) ?? (options.parts ? { segments: [], tail: null } : undefined);
        shards.push(LocalShard.open(shardDir(indexDir, shard), shard, info, { readOnly: options.readOnly ?? false, graph: options.graph ?? true, ...(parts ? { parts } : {}), ...(options.policy ? { policy: options.policy } : {}), ...(options.exactScanLimit ? { exactScanLimit: options.exactScanLimit } : {}) }));
      }
    } catch (error) {
      for (const shard of shards) void shard.close();
      throw error;
    }
    return new IndexStore(indexDir, info, shards);
  }

  shardFor(slideId: string): LocalShard | undefined {
    const index = shardOf(slideId, this.info.shards);
    return this.shards.find((shard) => shard.index === index);
  }

  /** Searches every open shard and merges their results by score. */
  search(query: Float32Array, options: SearchOptions): TileHit[] {
    return mergeHits(this.shards.map((shard) => shard.search(query, options)), options.k);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((shard) => shard.close()));
  }
}

/** Merges per-shard result lists (each best first) into the overall top k. */
export function mergeHits(lists: TileHit[][], k: number): TileHit[] {
  return lists.flat().sort((a, b) => b.score - a.score).slice(0, k);
}
