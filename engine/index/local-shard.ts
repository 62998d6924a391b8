/**
 * LocalShard: one shard on disk — an hnswlib index file, an LMDB environment and a manifest.
 *
 * Commit protocol (per slide): add the vectors to the in-memory graph; write the graph to a new
 * file, fsync it and rename it over hnsw.bin; then commit the records to LMDB (the commit point);
 * then rewrite manifest.json. A crash before the LMDB commit leaves vectors in hnsw.bin that no
 * record names: opening the shard marks them deleted. So a shard is always at its last committed
 * slide, and labels are never reused, so a deleted vector never comes back.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { open, type Database, type RootDatabase } from 'lmdb';
import { TesseraError } from '../errors.js';
import { EMPTY_FILTER, datasetOf, matches, type Filter } from './filter.js';
import { INDEX_FORMAT_VERSION, type IndexInfo, type Label, type ShardManifest, type SlideId, type SlideRecord, type TileHit, type TileRecord } from './types.js';

const { HierarchicalNSW } = hnswlib;
type Hnsw = InstanceType<typeof HierarchicalNSW>;

const INITIAL_CAPACITY = 1024;
/** Up to this many admitted tiles, a filtered search scans them exactly instead of walking the graph. */
export const EXACT_SCAN_LIMIT = 1024;
/** Extra neighbours fetched when a search excludes slides, before falling back to a filtered walk. */
const EXCLUSION_OVERFETCH = 16;
/** Filters whose admitted tiles are kept between queries (the same filter usually repeats). */
const ADMISSION_CACHE_SIZE = 16;

/** Which labels a filter admits: a bitmap over labels, and the list with its vectors when it is short. */
interface Admission {
  bitmap: Uint8Array;
  count: number;
  few: { labels: Label[]; vectors: Float32Array } | null;
}

export interface SearchOptions {
  k: number;
  ef?: number;
  filter?: Filter;
  /** Slides whose tiles never come back (the query's own slide, say). */
  excludeSlides?: ReadonlySet<string>;
  /** Patients whose slides never come back (metadata field `patient_id`). */
  excludePatients?: ReadonlySet<string>;
  /**
   * The datasets a caller may see (an API key's scope): tiles of other slides never come back and
   * are never counted. Absent: every dataset. A slide's dataset is `datasetOf(its metadata)`.
   */
  datasets?: ReadonlySet<string>;
}

export interface NewTile {
  tile: Omit<TileRecord, 'slideId'>;
  vector: Float32Array;
}

export class LocalShard {
  private readonly slides = new Map<SlideId, SlideRecord>();
  private readonly tileSlide = new Map<Label, SlideId>();
  private readonly tileMetadata = new Map<Label, Record<string, string>>();
  /** Each live tile's level-0 position (positionKey), by label: tile references resolve without LMDB reads. */
  private readonly tilePositions = new LabelPositions();
  private nextLabel = 0;
  private commitNumber = 0;
  private broken: Error | null = null;
  private readonly admissions = new Map<string, Admission>();
  /** LMDB writes of slides added with `defer`, committed together by the next flush or commit. */
  private staged: Array<() => void> = [];
  private stagedTiles = 0;
  /** Tile records of deferred slides, served until LMDB holds them. */
  private readonly stagedRecords = new Map<Label, TileRecord>();

  private constructor(
    readonly index: number,
    private readonly dir: string,
    private readonly info: IndexInfo,
    private readonly hnsw: Hnsw,
    private readonly env: RootDatabase,
    private readonly tiles: Database<TileRecord, number>,
    private readonly slideRecords: Database<SlideRecord, string>,
    private readonly meta: Database<number, string>,
    private readonly readOnly: boolean,
  ) {}

  /**
   * Opens (or, when writable, creates) shard `index` in `dir`. With `graph: false` (read-only
   * only) the HNSW file is not loaded: records and metadata without the memory of the vectors,
   * for a process that leaves searching to worker threads holding their own copy.
   */
  static open(dir: string, index: number, info: IndexInfo, options: { readOnly?: boolean; graph?: boolean } = {}): LocalShard {
    const readOnly = options.readOnly ?? false;
    const withGraph = options.graph ?? true;
    if (!withGraph && !readOnly) throw new TesseraError('INVALID_ARGUMENT', `shard ${index}: only a read-only shard can be opened without its graph`);
    if (!readOnly) mkdirSync(dir, { recursive: true });
    else if (!existsSync(join(dir, 'lmdb'))) throw new TesseraError('INDEX_CORRUPT', `shard ${index}: ${dir} has no LMDB environment`);
    const manifestPath = join(dir, 'manifest.json');
    if (existsSync(manifestPath)) {
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as ShardManifest;
      if (manifest.model.id !== info.model.id || manifest.model.version !== info.model.version || manifest.model.dimension !== info.model.dimension) {
        throw new TesseraError('MODEL_MISMATCH', `shard ${index} was built with model ${manifest.model.id} ${manifest.model.version} (${manifest.model.dimension}-d), the index says ${info.model.id} ${info.model.version}`);
      }
    }
    const env = open({ path: join(dir, 'lmdb'), maxDbs: 4, readOnly, compression: false });
    const tiles = env.openDB<TileRecord, number>({ name: 'tiles', keyEncoding: 'uint32' });
    const slides = env.openDB<SlideRecord, string>({ name: 'slides' });
    const meta = env.openDB<number, string>({ name: 'meta' });
    const hnsw = new HierarchicalNSW('cosine', info.model.dimension);
    const hnswPath = join(dir, 'hnsw.bin');
    if (withGraph && existsSync(hnswPath)) {
      try {
        hnsw.readIndexSync(hnswPath, false);
      } catch (error) {
        void env.close();
        throw new TesseraError('INDEX_CORRUPT', `shard ${index}: ${hnswPath} cannot be read: ${(error as Error).message}`, { cause: error });
      }
    }
    else hnsw.initIndex(withGraph ? INITIAL_CAPACITY : 1, info.hnsw.M, info.hnsw.efConstruction, 100, false);
    const shard = new LocalShard(index, dir, info, hnsw, env, tiles, slides, meta, readOnly);
    shard.load();
    return shard;
  }

  private load(): void {
    this.nextLabel = this.meta.get('nextLabel') ?? 0;
    this.commitNumber = this.meta.get('commit') ?? 0;
    for (const { value } of this.slideRecords.getRange()) this.slides.set(value.slideId, value);
    for (const { key, value } of this.tiles.getRange()) {
      this.tileSlide.set(key, value.slideId);
      this.tilePositions.set(key, value);
      if (value.metadata) this.tileMetadata.set(key, value.metadata);
    }
    // Vectors written to hnsw.bin by a commit that never reached LMDB: no record names them.
    for (const label of this.hnsw.getIdsList()) {
      if (!this.tileSlide.has(label)) {
        try {
          this.hnsw.markDelete(label);
        } catch {
          // Already deleted.
        }
      }
    }
    if (!this.readOnly) this.writeManifest();
  }

  get slideCount(): number {
    return this.slides.size;
  }

  get tileCount(): number {
    return this.tileSlide.size;
  }

  slide(slideId: string): SlideRecord | undefined {
    return this.slides.get(slideId as SlideId);
  }

  slideIds(): SlideId[] {
    return [...this.slides.keys()];
  }

  tile(label: Label): TileRecord | undefined {
    return this.stagedRecords.get(label) ?? this.tiles.get(label);
  }

  /**
   * The label of the slide's tile whose level-0 rectangle is exactly `rect`, or undefined. Scans
   * the slide's labels against an in-memory position table (microseconds even for 100k tiles);
   * reading each tile record from LMDB instead cost ~3 µs a tile, milliseconds a slide.
   */
  tileAt(slideId: string, rect: { x: number; y: number; width: number; height: number }): Label | undefined {
    const labels = this.slides.get(slideId as SlideId)?.labels ?? [];
    const wanted = positionKey(rect);
    const label = labels.find((candidate) => this.tilePositions.get(candidate) === wanted);
    const tile = label === undefined ? undefined : this.tile(label);
    return tile && tile.width === rect.width && tile.height === rect.height ? label : undefined;
  }

  vector(label: Label): Float32Array {
    return Float32Array.from(this.hnsw.getPoint(label));
  }

  /**
   * Adds a slide with its tiles, replacing the slide if it is already indexed, and commits.
   * `mosaic` lists the indices (into newTiles) of the slide's representative tiles. With `defer`
   * the slide is searchable at once but written only by the next `flush` (or non-deferred put):
   * rewriting the whole graph file per slide costs too much once a shard holds millions of tiles.
   * A crash loses deferred slides, never committed ones; a rerun indexes them again.
   * @throws TesseraError INDEX_WRITE_FAILED (disk full, permissions); the shard then refuses writes
   */
  putSlide(record: Omit<SlideRecord, 'labels' | 'mosaic'>, newTiles: NewTile[], mosaic: number[] = [], options: { defer?: boolean } = {}): SlideRecord {
    this.checkWritable();
    const previous = this.slides.get(record.slideId);
    const labels = newTiles.map(() => this.nextLabel++);
    const needed = this.hnsw.getCurrentCount() + labels.length;
    if (needed > this.hnsw.getMaxElements()) this.hnsw.resizeIndex(Math.max(needed, this.hnsw.getMaxElements() * 2));
    newTiles.forEach(({ vector }, i) => this.hnsw.addPoint(Array.from(vector), labels[i] as Label));
    for (const label of previous?.labels ?? []) this.hnsw.markDelete(label);
    const slideRecord: SlideRecord = { ...record, labels, mosaic: mosaic.map((index) => labels[index]).filter((label): label is Label => label !== undefined) };
    const tileRecords = newTiles.map(({ tile }) => ({ ...tile, slideId: record.slideId }));
    this.stage(
      () => {
        for (const label of previous?.labels ?? []) this.tiles.remove(label);
        tileRecords.forEach((tile, i) => this.tiles.put(labels[i] as Label, tile));
        this.slideRecords.put(record.slideId, slideRecord);
      },
      labels.length,
    );
    this.forget(previous?.labels ?? []);
    tileRecords.forEach((tile, i) => {
      this.tileSlide.set(labels[i] as Label, record.slideId);
      this.tilePositions.set(labels[i] as Label, tile);
      this.stagedRecords.set(labels[i] as Label, tile);
      if (tile.metadata) this.tileMetadata.set(labels[i] as Label, tile.metadata);
    });
    this.slides.set(record.slideId, slideRecord);
    if (!options.defer) this.flush();
    return slideRecord;
  }

  /** Deletes a slide and its tiles and commits. Returns false when the slide is not here. */
  deleteSlide(slideId: string): boolean {
    this.checkWritable();
    const previous = this.slides.get(slideId as SlideId);
    if (!previous) return false;
    for (const label of previous.labels) this.hnsw.markDelete(label);
    this.stage(() => {
      for (const label of previous.labels) this.tiles.remove(label);
      this.slideRecords.remove(slideId);
    }, 0);
    this.forget(previous.labels);
    this.slides.delete(slideId as SlideId);
    this.flush();
    return true;
  }

  /**
   * The k tiles nearest to `query` (a unit vector) that pass the filter and exclusions, best first.
   * Few admitted tiles are scanned exactly; otherwise the graph is searched with the filter as a
   * callback and ef raised to k, so k results come back whenever k tiles qualify.
   */
  search(query: Float32Array, options: SearchOptions): TileHit[] {
    const { k } = options;
    const filter = options.filter ?? EMPTY_FILTER;
    const live = this.tileSlide.size;
    if (live === 0 || k <= 0) return [];
    // Exclusions change with every query (the query's own slide), so they are checked per visited
    // tile; filters and scopes repeat, so the tiles they admit are computed once and cached.
    const excluded = this.excludedSlides(options);
    const allowed = excluded.size === 0 ? null : (label: number) => !excluded.has(this.tileSlide.get(label) as SlideId);
    const vector = Array.from(query);
    let labels: Label[];
    let distances: number[];
    if (filter.conditions.length === 0 && options.datasets === undefined) {
      this.hnsw.setEf(Math.max(options.ef ?? 64, k + EXCLUSION_OVERFETCH));
      // Excluded tiles are usually few among the nearest: over-fetch without a callback (a call
      // into JavaScript per visited tile costs about a third more) and fall back when too many go.
      ({ neighbors: labels, distances } = this.hnsw.searchKnn(vector, Math.min(allowed ? k + EXCLUSION_OVERFETCH : k, live)));
      if (allowed) {
        const kept = labels.flatMap((label, i) => (allowed(label) ? [i] : []));
        if (kept.length >= k || labels.length === live) {
          distances = kept.slice(0, k).map((i) => distances[i] as number);
          labels = kept.slice(0, k).map((i) => labels[i] as Label);
        } else {
          this.hnsw.setEf(Math.max(options.ef ?? 64, k * 2));
          ({ neighbors: labels, distances } = this.hnsw.searchKnn(vector, Math.min(k, live), allowed));
        }
      }
    } else {
      const admission = this.admission(filter, options);
      if (admission.count === 0) return [];
      if (admission.few) {
        ({ labels, distances } = exactScan(query, admission.few.labels, admission.few.vectors, k, allowed));
      } else {
        const { bitmap } = admission;
        this.hnsw.setEf(Math.max(options.ef ?? 64, k * 2));
        const admitted = allowed ? (label: number) => bitmap[label] === 1 && allowed(label) : (label: number) => bitmap[label] === 1;
        ({ neighbors: labels, distances } = this.hnsw.searchKnn(vector, Math.min(k, admission.count), admitted));
      }
    }
    return labels.map((label, i) => {
      const tile = this.tile(label) as TileRecord;
      return { label, shard: this.index, score: 1 - (distances[i] ?? 1), tile, slideMetadata: this.slides.get(tile.slideId)?.metadata ?? {} };
    });
  }

  /** The slides a search leaves out: listed slides, and every slide of a listed patient. */
  private excludedSlides(options: SearchOptions): Set<SlideId> {
    const excluded = new Set<SlideId>();
    for (const slideId of options.excludeSlides ?? []) if (this.slides.has(slideId as SlideId)) excluded.add(slideId as SlideId);
    if (options.excludePatients && options.excludePatients.size > 0) {
      for (const slide of this.slides.values()) {
        const patient = slide.metadata.patient_id;
        if (patient !== undefined && options.excludePatients.has(patient)) excluded.add(slide.slideId);
      }
    }
    return excluded;
  }

  /** The labels a filter and a dataset scope admit, computed once per distinct pair until the next write. */
  private admission(filter: Filter, options: SearchOptions): Admission {
    const key = JSON.stringify([filter.conditions.map(({ field, condition }) => [field, conditionKey(condition)]), options.datasets ? [...options.datasets].sort() : null]);
    const cached = this.admissions.get(key);
    if (cached) return cached;
    const admittedSlides = new Set<SlideId>();
    for (const slide of this.slides.values()) {
      if (options.datasets && !options.datasets.has(datasetOf(slide.metadata))) continue;
      admittedSlides.add(slide.slideId);
    }
    const bitmap = new Uint8Array(this.nextLabel);
    const few: Label[] = [];
    let count = 0;
    for (const [label, slideId] of this.tileSlide) {
      if (!admittedSlides.has(slideId)) continue;
      if (filter.conditions.length > 0 && !matches(filter, this.tileMetadata.get(label), (this.slides.get(slideId) as SlideRecord).metadata)) continue;
      bitmap[label] = 1;
      count++;
      if (few.length <= EXACT_SCAN_LIMIT) few.push(label);
    }
    // The admitted vectors are copied out of the graph once, so repeated exact scans are plain dot products.
    const dimension = this.info.model.dimension;
    const fewVectors = count <= EXACT_SCAN_LIMIT ? new Float32Array(few.length * dimension) : null;
    few.forEach((label, i) => fewVectors?.set(this.hnsw.getPoint(label), i * dimension));
    const admission: Admission = { bitmap, count, few: fewVectors ? { labels: few, vectors: fewVectors } : null };
    if (this.admissions.size >= ADMISSION_CACHE_SIZE) this.admissions.delete(this.admissions.keys().next().value as string);
    this.admissions.set(key, admission);
    return admission;
  }

  /** Checks every invariant; returns the problems found (empty when the shard is sound). */
  verify(): string[] {
    const problems: string[] = [];
    const where = `shard ${this.index}`;
    const manifestPath = join(this.dir, 'manifest.json');
    if (!existsSync(manifestPath)) problems.push(`${where}: manifest.json is missing`);
    else {
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as ShardManifest;
      if (manifest.counts.tiles !== this.tileSlide.size) problems.push(`${where}: manifest counts ${manifest.counts.tiles} tiles, LMDB holds ${this.tileSlide.size}`);
      if (manifest.counts.slides !== this.slides.size) problems.push(`${where}: manifest counts ${manifest.counts.slides} slides, LMDB holds ${this.slides.size}`);
      const hnswPath = join(this.dir, 'hnsw.bin');
      if (existsSync(hnswPath)) {
        const checksum = sha256(hnswPath);
        if (checksum !== manifest.checksums.hnsw) problems.push(`${where}: hnsw.bin checksum ${checksum.slice(0, 12)}… differs from the manifest's ${manifest.checksums.hnsw.slice(0, 12)}…`);
      } else if (this.tileSlide.size > 0) problems.push(`${where}: hnsw.bin is missing but LMDB holds ${this.tileSlide.size} tiles`);
    }
    const inGraph = new Set(this.hnsw.getIdsList());
    let missing = 0;
    for (const label of this.tileSlide.keys()) if (!inGraph.has(label)) missing++;
    if (missing > 0) problems.push(`${where}: ${missing} tile records have no vector in hnsw.bin`);
    for (const slide of this.slides.values()) {
      for (const label of slide.labels) {
        if (this.tileSlide.get(label) !== slide.slideId) {
          problems.push(`${where}: slide ${slide.slideId} lists tile ${label}, which has no record`);
          break;
        }
      }
    }
    const listed = [...this.slides.values()].reduce((sum, slide) => sum + slide.labels.length, 0);
    if (listed !== this.tileSlide.size) problems.push(`${where}: slides list ${listed} tiles, LMDB holds ${this.tileSlide.size} tile records`);
    return problems;
  }

  manifest(): ShardManifest {
    const capacity = this.hnsw.getMaxElements();
    const inGraph = this.hnsw.getCurrentCount();
    const hnswPath = join(this.dir, 'hnsw.bin');
    return {
      formatVersion: INDEX_FORMAT_VERSION,
      shard: this.index,
      model: this.info.model,
      metric: 'cosine',
      hnsw: this.info.hnsw,
      counts: { slides: this.slides.size, tiles: this.tileSlide.size, deleted: inGraph - this.tileSlide.size, capacity },
      checksums: { hnsw: existsSync(hnswPath) ? sha256(hnswPath) : '' },
      commit: this.commitNumber,
      committedAt: new Date().toISOString(),
    };
  }

  async close(): Promise<void> {
    await this.env.close();
  }

  private checkWritable(): void {
    if (this.readOnly) throw new TesseraError('INVALID_ARGUMENT', `shard ${this.index} is open read-only`);
    if (this.broken) throw new TesseraError('INDEX_WRITE_FAILED', `shard ${this.index} refuses writes after a failed commit: ${this.broken.message}`);
  }

  /** Tiles added with `defer` and not yet committed. */
  get pendingTiles(): number {
    return this.stagedTiles;
  }

  /** Queues an LMDB write for the next commit; any change invalidates the cached filter admissions. */
  private stage(write: () => void, tiles: number): void {
    this.staged.push(write);
    this.stagedTiles += tiles;
    this.admissions.clear();
  }

  /** Drops replaced or deleted tiles from the in-memory maps. */
  private forget(labels: Label[]): void {
    for (const label of labels) {
      this.tileSlide.delete(label);
      this.tilePositions.delete(label);
      this.tileMetadata.delete(label);
      this.stagedRecords.delete(label);
    }
  }

  /**
   * Commits every staged change: the graph file first (temp, fsync, rename), then one LMDB
   * transaction (the commit point), then the manifest.
   * @throws TesseraError INDEX_WRITE_FAILED; the shard then refuses writes
   */
  flush(): void {
    if (this.staged.length === 0) return;
    this.checkWritable();
    const writes = this.staged;
    this.commit(() => {
      for (const write of writes) write();
    });
    this.staged = [];
    this.stagedTiles = 0;
    this.stagedRecords.clear();
  }

  private commit(writeRecords: () => void): void {
    const hnswPath = join(this.dir, 'hnsw.bin');
    const temporary = `${hnswPath}.tmp`;
    try {
      this.hnsw.writeIndexSync(temporary);
      if (!existsSync(temporary)) throw Object.assign(new Error(`hnswlib could not write ${temporary}`), { code: 'EIO' });
      checkGraphFile(temporary, this.hnsw.getCurrentCount(), this.info.model.dimension, this.info.hnsw.M);
      fsyncFile(temporary);
      renameSync(temporary, hnswPath);
      this.commitNumber++;
      this.env.transactionSync(() => {
        writeRecords();
        this.meta.put('nextLabel', this.nextLabel);
        this.meta.put('commit', this.commitNumber);
      });
      this.writeManifest();
    } catch (error) {
      rmSync(temporary, { force: true });
      this.broken = error as Error;
      const code = (error as NodeJS.ErrnoException).code;
      const reason = code === 'ENOSPC' ? 'the disk is full' : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? 'permission denied' : (error as Error).message;
      throw new TesseraError('INDEX_WRITE_FAILED', `shard ${this.index}: cannot commit to ${this.dir}: ${reason}; the shard keeps its last committed state`, { cause: error });
    }
  }

  private writeManifest(): void {
    const path = join(this.dir, 'manifest.json');
    writeFileSync(`${path}.tmp`, `${JSON.stringify(this.manifest(), null, 2)}\n`);
    fsyncFile(`${path}.tmp`);
    renameSync(`${path}.tmp`, path);
  }
}

/**
 * hnswlib writes its file without checking for write errors, so a full disk leaves it short and
 * the commit would rename a truncated graph over the good one. The file must hold at least its
 * header and every element's level-0 record (hnswlib's layout), and the disk must not have filled
 * up while writing it.
 * @throws an ENOSPC error
 */
function checkGraphFile(path: string, count: number, dimension: number, M: number): void {
  const header = 96;
  const level0 = dimension * 4 + 8 + (2 * M * 4 + 4);
  const minimum = header + count * (level0 + 4);
  const { size } = statSync(path);
  const { bavail, bsize } = statfsSync(dirname(path));
  if (size < minimum || bavail * bsize < 64 * 1024) {
    throw Object.assign(new Error(`${path} is ${size} bytes, at least ${minimum} expected, ${bavail * bsize} bytes free`), { code: 'ENOSPC' });
  }
}

function fsyncFile(path: string): void {
  const fd = openSync(path, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function conditionKey(condition: Filter['conditions'][number]['condition']): unknown {
  switch (condition.kind) {
    case 'eq':
      return ['eq', condition.value];
    case 'in':
      return ['in', [...condition.values].sort()];
    case 'not':
      return ['not', conditionKey(condition.inner)];
  }
}

/** Exact top k by cosine over unit vectors stored back to back. */
function exactScan(query: Float32Array, labels: Label[], vectors: Float32Array, k: number, allowed: ((label: Label) => boolean) | null): { labels: Label[]; distances: number[] } {
  const dimension = query.length;
  const scored: Array<{ label: Label; distance: number }> = [];
  labels.forEach((label, i) => {
    if (allowed && !allowed(label)) return;
    let dot = 0;
    for (let d = 0, at = i * dimension; d < dimension; d++, at++) dot += (vectors[at] ?? 0) * (query[d] ?? 0);
    scored.push({ label, distance: 1 - dot });
  });
  scored.sort((a, b) => a.distance - b.distance);
  const best = scored.slice(0, k);
  return { labels: best.map((entry) => entry.label), distances: best.map((entry) => entry.distance) };
}

/** x and y in one number (exact while x < 2^21, far beyond any slide). */
function positionKey(rect: { x: number; y: number }): number {
  return rect.x * 2 ** 32 + rect.y;
}

/** Tile positions by label in one growable Float64Array (8 bytes a tile; NaN where no tile lives). */
class LabelPositions {
  private keys = new Float64Array(1024).fill(Number.NaN);

  get(label: Label): number {
    return this.keys[label] ?? Number.NaN;
  }

  set(label: Label, rect: { x: number; y: number }): void {
    if (label >= this.keys.length) {
      const grown = new Float64Array(Math.max(label + 1, this.keys.length * 2)).fill(Number.NaN);
      grown.set(this.keys);
      this.keys = grown;
    }
    this.keys[label] = positionKey(rect);
  }

  delete(label: Label): void {
    if (label < this.keys.length) this.keys[label] = Number.NaN;
  }
}
