/**
 * ShardStore: a shard's LMDB environment, its commit point. One transaction per commit holds the
 * tile records, each committed tile's vector, slide records, tombstones (labels deleted while a
 * segment file still holds their vector), the list of live segments and the counters. What a
 * transaction writes is what it adds: B-tree pages of new keys, never the shard.
 *
 * It knows records and keys only: no search, no files other than LMDB's own.
 */
import { statfsSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { TesseraError } from '../errors.js';
import type { Label, SegmentRef, SlideId, SlideRecord, TileRecord } from './types.js';

/** The counters a shard keeps beside its records. */
export interface ShardCounters {
  /** 1 (one hnsw.bin) or 2 (segments); undefined: a shard with nothing committed yet. */
  formatVersion: number | undefined;
  nextLabel: Label;
  commit: number;
  nextSegmentId: number;
  segments: SegmentRef[];
  /** Labels below this lie in segments (or were deleted); the tail starts here. */
  segmentedEnd: Label;
}

/** The writes of one commit, applied inside one LMDB transaction. */
export interface ShardWrites {
  putTile(label: Label, tile: TileRecord, vector: Float32Array): void;
  removeTile(label: Label): void;
  putSlide(record: SlideRecord): void;
  removeSlide(slideId: SlideId): void;
  addTombstone(label: Label): void;
  removeTombstone(label: Label): void;
  setCounters(counters: Partial<Omit<ShardCounters, 'formatVersion'>> & { formatVersion?: number }): void;
}

type MetaValue = number | SegmentRef[];

export class ShardStore {
  private constructor(
    private readonly env: RootDatabase,
    private readonly tiles: Database<TileRecord, number>,
    private readonly vectors: Database<Buffer, number>,
    private readonly slides: Database<SlideRecord, string>,
    private readonly tombstoneDb: Database<boolean, number>,
    private readonly meta: Database<MetaValue, string>,
  ) {}

  /** Opens (or, when writable, creates) the environment in `shardDir`/lmdb. */
  static open(shardDir: string, readOnly: boolean): ShardStore {
    const env = open({ path: join(shardDir, 'lmdb'), maxDbs: 8, readOnly, compression: false });
    return new ShardStore(
      env,
      env.openDB<TileRecord, number>({ name: 'tiles', keyEncoding: 'uint32' }),
      env.openDB<Buffer, number>({ name: 'vectors', keyEncoding: 'uint32', encoding: 'binary' }),
      env.openDB<SlideRecord, string>({ name: 'slides' }),
      env.openDB<boolean, number>({ name: 'tombstones', keyEncoding: 'uint32' }),
      env.openDB<MetaValue, string>({ name: 'meta' }),
    );
  }

  counters(): ShardCounters {
    const number = (key: string): number | undefined => this.meta.get(key) as number | undefined;
    const segments = (this.meta.get('segments') as SegmentRef[] | undefined) ?? [];
    return {
      formatVersion: number('formatVersion') ?? (this.meta.get('nextLabel') === undefined ? undefined : 1),
      nextLabel: number('nextLabel') ?? 0,
      commit: number('commit') ?? 0,
      nextSegmentId: number('nextSegmentId') ?? 1,
      segments,
      segmentedEnd: number('segmentedEnd') ?? segments.reduce((end, ref) => Math.max(end, ref.endLabel), 0),
    };
  }

  slideRecords(): Iterable<SlideRecord> {
    return this.slides.getRange().map(({ value }) => value);
  }

  tileRecords(): Iterable<{ label: Label; tile: TileRecord }> {
    return this.tiles.getRange().map(({ key, value }) => ({ label: key, tile: value }));
  }

  slide(slideId: SlideId): SlideRecord | undefined {
    return this.slides.get(slideId);
  }

  tile(label: Label): TileRecord | undefined {
    return this.tiles.get(label);
  }

  /** The committed vector of a live tile (a copy), or undefined. */
  vector(label: Label): Float32Array | undefined {
    const bytes = this.vectors.getBinary(label);
    return bytes ? floatsOf(bytes) : undefined;
  }

  hasVector(label: Label): boolean {
    return this.vectors.doesExist(label);
  }

  /** Live vectors with labels in [first, end), in label order. */
  vectorsIn(first: Label, end: Label): Iterable<{ label: Label; vector: Float32Array }> {
    return this.vectors.getRange({ start: first, end }).map(({ key, value }) => ({ label: key, vector: floatsOf(value) }));
  }

  vectorLabels(): Iterable<Label> {
    return this.vectors.getKeys();
  }

  tombstones(): Label[] {
    return [...this.tombstoneDb.getKeys()];
  }

  /**
   * Applies `write` in one synchronous transaction: all of it is durable when this returns, or
   * none of it.
   * @throws the LMDB error (disk full, permissions)
   */
  transaction(write: (writes: ShardWrites) => void): void {
    this.env.transactionSync(() => {
      write({
        putTile: (label, tile, vector) => {
          this.tiles.put(label, tile);
          this.vectors.put(label, Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength));
        },
        removeTile: (label) => {
          this.tiles.remove(label);
          this.vectors.remove(label);
        },
        putSlide: (record) => void this.slides.put(record.slideId, record),
        removeSlide: (slideId) => void this.slides.remove(slideId),
        addTombstone: (label) => void this.tombstoneDb.put(label, true),
        removeTombstone: (label) => void this.tombstoneDb.remove(label),
        setCounters: (counters) => {
          for (const [key, value] of Object.entries(counters)) if (value !== undefined) this.meta.put(key, value);
        },
      });
    });
  }

  async close(): Promise<void> {
    await this.env.close();
  }
}

function floatsOf(bytes: Buffer | Uint8Array): Float32Array {
  // LMDB hands out views of its memory map (or a reused buffer): copy before keeping.
  const copy = new Float32Array(bytes.byteLength / 4);
  new Uint8Array(copy.buffer).set(bytes);
  return copy;
}

/** The reason an LMDB or file write failed, in words a user can act on. */
export function writeFailureReason(error: unknown, dir: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === 'ENOSPC' || /No space left|ENOSPC|MDB_MAP_FULL/i.test(message) || nearlyFull(dir)) return 'the disk is full';
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || /permission denied|read-only file system/i.test(message)) return 'permission denied';
  return message;
}

/** LMDB reports a write into a full file system as EIO ("Input/output error"): look at the room left. */
function nearlyFull(dir: string): boolean {
  try {
    const { bavail, bsize } = statfsSync(dir);
    return bavail * bsize < 1 << 20;
  } catch {
    return false;
  }
}

/** INDEX_WRITE_FAILED for shard `index`, naming the folder and the reason. */
export function writeFailed(index: number, dir: string, error: unknown): TesseraError {
  return new TesseraError('INDEX_WRITE_FAILED', `shard ${index}: cannot commit to ${dir}: ${writeFailureReason(error, dir)}; the shard keeps its last committed state`, { cause: error });
}
