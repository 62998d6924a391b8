/**
 * LocalShard: one shard on disk. LMDB is the commit point (records, each committed tile's
 * vector, tombstones, the list of live segments); HNSW graphs are immutable segment files.
 *
 * Commit (putSlide/deleteSlide, then flush): one LMDB transaction writes the new tiles with their
 * vectors, the slide record, tombstones for replaced tiles that a segment holds, and the counters;
 * then manifest.json is rewritten from it. Bytes written grow with what is added, not the shard.
 *
 * Segments: tiles committed after the newest segment (the tail) are searched exactly. Once the
 * tail holds `foldTiles` tiles a builder thread folds it into a new segment; the merge policy
 * merges runs of adjacent segments, dropping tombstoned vectors. A build writes its file under a
 * temporary name, hashes and fsyncs it, renames it, and only then does a transaction list it;
 * replaced files are removed after that. A writer that opens the shard removes whatever no commit
 * lists, so a crash at any step leaves the last commit intact and no file that grows.
 *
 * One writer per shard (partitions give each job its own shards); any number of readers.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { TesseraError } from '../errors.js';
import { TileCatalogue } from './catalogue.js';
import { DEFAULT_MERGE_POLICY, DEFAULT_SUBGRAPH_POLICY, DEFAULT_TARGET_RECALL, planMerge, type MergePolicy } from './merge-policy.js';
import { runSegmentBuild } from './segment-builder.js';
import type { SegmentBuildResult } from './segment-build-task.js';
import { fsyncPath, loadSegment, replaceFileDurably, segmentFileName, segmentFiles, segmentPath, SEGMENTS_FOLDER, type Graph } from './segment-file.js';
import { exactSearchRanges, type QueryExclusions } from './exact-search.js';
import { EXACT_SCAN_LIMIT, ShardSearcher, subgraphKey, type LoadedSegment, type LoadedSubgraph, type SearchOptions, type SearchParts, type TailBlock } from './shard-search.js';
import type { SlidePage, SlidePageQuery } from './slide-listing.js';
import { ShardStore, writeFailed, type ShardCounters, type ShardWrites } from './shard-store.js';
import { INDEX_FORMAT_VERSION, type IndexInfo, type Label, type SegmentRef, type ShardManifest, type SlideId, type SlideRecord, type TileHit, type TileRecord } from './types.js';
import { manifestLag, orphanFiles, verifyShard } from './verify.js';
import { crashSettingForBuild, reachStep } from './write-steps.js';

export interface NewTile {
  tile: Omit<TileRecord, 'slideId'>;
  vector: Float32Array;
}

/** Which parts of a shard a process searches: some segments (by id) and perhaps the tail. */
export interface PartSelection {
  segments: number[];
  /** The tail's label range as the planner saw it, or null for none. */
  tail: { firstLabel: Label; endLabel: Label } | null;
}

export interface ShardOpenOptions {
  readOnly?: boolean;
  /** false: records only, nothing to search with (read-only only). */
  graph?: boolean;
  /** Search only these parts (a search thread's share); default: all of them. */
  parts?: PartSelection;
  policy?: MergePolicy;
  /**
   * Admitted tiles up to which a filtered search scans them exactly (default EXACT_SCAN_LIMIT):
   * tests lower it to reach the graph paths with small shards.
   */
  exactScanLimit?: number;
}

export class LocalShard {
  private readonly catalogue: TileCatalogue;
  private readonly searcher: ShardSearcher;
  private counters: ShardCounters;
  private readonly tombstones: Set<Label>;
  /** Labels handed out, committed or staged. */
  private nextLabel: Label;
  private loadedParts: { segments: LoadedSegment[] | null; tail: TailBlock | null | undefined } = { segments: null, tail: undefined };
  private broken: Error | null = null;
  /** Writes of slides added since the last commit, applied by the next flush in one transaction. */
  private staged: Array<(writes: ShardWrites) => void> = [];
  private stagedTiles = 0;
  /** Tile records and vectors of staged slides, served until LMDB holds them. */
  private readonly stagedRecords = new Map<Label, TileRecord>();
  private readonly stagedVectors = new Map<Label, Float32Array>();
  /** Labels removed by staged writes. */
  private pendingRemovals: Label[] = [];
  private building: Promise<void> | null = null;
  private buildError: Error | null = null;

  private constructor(
    readonly index: number,
    private readonly dir: string,
    private readonly info: IndexInfo,
    private readonly store: ShardStore,
    counters: ShardCounters,
    private readonly readOnly: boolean,
    private readonly selection: PartSelection | 'all' | 'none',
    private readonly policy: MergePolicy,
    exactScanLimit: number,
  ) {
    this.counters = counters;
    this.nextLabel = counters.nextLabel;
    this.tombstones = new Set(store.tombstones());
    this.catalogue = loadCatalogue(store);
    this.searcher = new ShardSearcher(index, info.model.dimension, this.catalogue, store, () => this.parts(), exactScanLimit);
  }

  /**
   * Opens (or, when writable, creates) shard `index` in `dir`. A writer first removes what no
   * commit lists (temporary and orphaned segment files from an interrupted build).
   * @throws TesseraError INDEX_CORRUPT, MODEL_MISMATCH, INDEX_OUTDATED (format 1: `tessera upgrade`)
   */
  static open(dir: string, index: number, info: IndexInfo, options: ShardOpenOptions = {}): LocalShard {
    const readOnly = options.readOnly ?? false;
    const withGraph = options.graph ?? true;
    if (!withGraph && !readOnly) throw new TesseraError('INVALID_ARGUMENT', `shard ${index}: only a read-only shard can be opened without its graph`);
    if (!readOnly) mkdirSync(join(dir, SEGMENTS_FOLDER), { recursive: true });
    else if (!existsSync(join(dir, 'lmdb'))) throw new TesseraError('INDEX_CORRUPT', `shard ${index}: ${dir} has no LMDB environment`);
    const manifestPath = join(dir, 'manifest.json');
    if (existsSync(manifestPath)) {
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as ShardManifest;
      if (manifest.model.id !== info.model.id || manifest.model.version !== info.model.version || manifest.model.dimension !== info.model.dimension) {
        throw new TesseraError('MODEL_MISMATCH', `shard ${index} was built with model ${manifest.model.id} ${manifest.model.version} (${manifest.model.dimension}-d), the index says ${info.model.id} ${info.model.version}`);
      }
    }
    const store = ShardStore.open(dir, readOnly);
    const counters = store.counters();
    const version = counters.formatVersion ?? (existsSync(join(dir, 'hnsw.bin')) ? 1 : undefined);
    if (version !== undefined && version !== INDEX_FORMAT_VERSION) {
      void store.close();
      throw outdated(index, dir, version);
    }
    const selection = !withGraph ? 'none' : (options.parts ?? 'all');
    const shard = new LocalShard(index, dir, info, store, counters, readOnly, selection, options.policy ?? DEFAULT_MERGE_POLICY, options.exactScanLimit ?? EXACT_SCAN_LIMIT);
    if (!readOnly) shard.recover();
    return shard;
  }

  get slideCount(): number {
    return this.catalogue.slideCount;
  }

  get tileCount(): number {
    return this.catalogue.tileCount;
  }

  /** Tiles added with `defer` and not yet committed. */
  get pendingTiles(): number {
    return this.stagedTiles;
  }

  /** The live segments, oldest labels first. */
  get segments(): readonly SegmentRef[] {
    return this.counters.segments;
  }

  /** Committed labels after the newest segment: [firstLabel, endLabel), searched exactly. */
  get tail(): { firstLabel: Label; endLabel: Label } {
    return { firstLabel: this.counters.segmentedEnd, endLabel: this.counters.nextLabel };
  }

  /** Live tiles in the tail (searched exactly). */
  get tailTiles(): number {
    return this.tailLive();
  }

  get tombstoneCount(): number {
    return this.tombstones.size;
  }

  slide(slideId: string): SlideRecord | undefined {
    return this.catalogue.slide(slideId);
  }

  slideIds(): SlideId[] {
    return this.catalogue.slideIds();
  }

  /** A page of this shard's slides in id order, with counts and facets (see SlideListing). */
  slidePage(query: SlidePageQuery): SlidePage {
    return this.catalogue.listing.page(query);
  }

  /** Slides and tiles in the datasets, from counters. */
  slideTotals(datasets: string[] | null): { slides: number; tiles: number } {
    return this.catalogue.listing.totals(datasets);
  }

  tile(label: Label): TileRecord | undefined {
    return this.stagedRecords.get(label) ?? this.store.tile(label);
  }

  /** The label of the slide's tile whose level-0 rectangle is exactly `rect`, or undefined. */
  tileAt(slideId: string, rect: { x: number; y: number; width: number; height: number }): Label | undefined {
    const label = this.catalogue.tileAtCorner(slideId, rect);
    const tile = label === undefined ? undefined : this.tile(label);
    return tile && tile.width === rect.width && tile.height === rect.height ? label : undefined;
  }

  /** A live tile's stored vector (unit length). @throws TesseraError INVALID_ARGUMENT for an unknown label */
  vector(label: Label): Float32Array {
    const vector = this.stagedVectors.get(label) ?? this.store.vector(label);
    if (!vector) throw new TesseraError('INVALID_ARGUMENT', `shard ${this.index} has no live tile ${label}`);
    return vector;
  }

  /**
   * Adds a slide with its tiles, replacing the slide if it is already indexed, and commits.
   * `mosaic` lists the indices (into newTiles) of the slide's representative tiles. With `defer`
   * the slide waits for the next `flush` (or non-deferred put) and is committed with it.
   * @throws TesseraError INDEX_WRITE_FAILED (disk full, permissions); the shard then refuses writes
   */
  putSlide(record: Omit<SlideRecord, 'labels' | 'mosaic'>, newTiles: NewTile[], mosaic: number[] = [], options: { defer?: boolean } = {}): SlideRecord {
    this.checkWritable();
    const previous = this.catalogue.slide(record.slideId);
    const labels = newTiles.map(() => this.nextLabel++);
    const slideRecord: SlideRecord = { ...record, labels, mosaic: mosaic.map((index) => labels[index]).filter((label): label is Label => label !== undefined) };
    const tileRecords = newTiles.map(({ tile }) => ({ ...tile, slideId: record.slideId }));
    const vectors = newTiles.map(({ vector }) => vector);
    if (previous) this.stageRemoval(previous.labels);
    this.stage((writes) => {
      tileRecords.forEach((tile, i) => writes.putTile(labels[i] as Label, tile, vectors[i] as Float32Array));
      writes.putSlide(slideRecord);
    }, labels.length);
    this.catalogue.putSlide(slideRecord);
    tileRecords.forEach((tile, i) => {
      const label = labels[i] as Label;
      this.catalogue.addTile(label, tile);
      this.stagedRecords.set(label, tile);
      this.stagedVectors.set(label, vectors[i] as Float32Array);
    });
    if (!options.defer) this.flush();
    return slideRecord;
  }

  /** Deletes a slide and its tiles and commits. Returns false when the slide is not here. */
  deleteSlide(slideId: string): boolean {
    this.checkWritable();
    const previous = this.catalogue.slide(slideId);
    if (!previous) return false;
    this.stageRemoval(previous.labels);
    this.stage((writes) => writes.removeSlide(previous.slideId), 0);
    this.catalogue.removeSlide(previous.slideId);
    this.flush();
    return true;
  }

  /** The k tiles nearest to `query` (a unit vector) that pass the filter and exclusions, best first. */
  search(query: Float32Array, options: SearchOptions): TileHit[] {
    return this.searcher.search(query, options);
  }

  /**
   * Each query's exact k nearest committed tiles among the parts this process searches (every
   * part when it searches all or none of them), by one scan of their stored vectors for all
   * queries: ground truth for recall, not for serving. `queries`: unit vectors back to back;
   * `perQuery[q]`: what query q alone leaves out.
   */
  exactSearch(queries: Float32Array, options: SearchOptions, perQuery: QueryExclusions[] = []): TileHit[][] {
    const dimension = this.info.model.dimension;
    const selection = this.selection;
    const segments = selection === 'all' || selection === 'none' ? this.counters.segments : this.counters.segments.filter((ref) => selection.segments.includes(ref.id));
    const tail = selection === 'all' || selection === 'none' ? this.tail : selection.tail;
    const ranges: Array<[Label, Label]> = segments.map((ref) => [ref.firstLabel, ref.endLabel]);
    if (tail && tail.endLabel > tail.firstLabel) ranges.push([tail.firstLabel, tail.endLabel]);
    return exactSearchRanges(this.store, this.catalogue, ranges, queries, dimension, options, perQuery).map((top) =>
      top.labels.flatMap((label, i) => {
        const tile = this.store.tile(label);
        return tile ? [{ label, shard: this.index, score: top.scores[i] as number, tile, slideMetadata: this.catalogue.slide(tile.slideId)?.metadata ?? {} }] : [];
      }),
    );
  }

  /**
   * Commits every staged change in one LMDB transaction, then rewrites the manifest, then starts
   * a segment build if the tail has grown enough.
   * @throws TesseraError INDEX_WRITE_FAILED; the shard then refuses writes
   */
  flush(): void {
    if (this.staged.length === 0) return;
    this.checkWritable();
    const writes = this.staged;
    const commit = this.counters.commit + 1;
    reachStep('commit:staged');
    try {
      this.store.transaction((w) => {
        for (const write of writes) write(w);
        w.setCounters({ formatVersion: INDEX_FORMAT_VERSION, nextLabel: this.nextLabel, commit });
      });
    } catch (error) {
      this.broken = error as Error;
      throw writeFailed(this.index, this.dir, error);
    }
    reachStep('commit:lmdb');
    this.counters = { ...this.counters, nextLabel: this.nextLabel, commit };
    const tombstoned = this.pendingRemovals.filter((label) => label < this.counters.segmentedEnd);
    for (const label of tombstoned) this.tombstones.add(label);
    // Loaded graphs still hold these vectors: load them again, with the tombstones, when next searched.
    if (tombstoned.length > 0) this.loadedParts.segments = null;
    this.pendingRemovals = [];
    this.staged = [];
    this.stagedTiles = 0;
    this.stagedRecords.clear();
    this.stagedVectors.clear();
    this.searcher.invalidate();
    this.loadedParts.tail = undefined;
    this.writeManifest();
    reachStep('commit:manifest');
    this.startBuild(false);
  }

  /**
   * Commits what is staged, waits for running builds, folds the tail into a segment and merges
   * until the policy is satisfied: after it, searches touch no exact tail.
   * @throws TesseraError INDEX_WRITE_FAILED
   */
  async settle(): Promise<void> {
    this.flush();
    for (;;) {
      if (this.building) {
        await this.building;
        continue;
      }
      if (this.buildError) throw writeFailed(this.index, this.dir, this.buildError);
      if (!this.startBuild(true)) return;
    }
  }

  /** Checks every invariant; returns the problems found (empty when the shard is sound). */
  verify(): string[] {
    return verifyShard({ index: this.index, dir: this.dir, dimension: this.info.model.dimension, store: this.store, counters: this.counters, tombstones: this.tombstones, catalogue: this.catalogue });
  }

  /** Files in segments/ that no commit lists (an interrupted build's); the next writer removes them. */
  orphanFiles(): string[] {
    return orphanFiles(this.dir, this.counters);
  }

  /** Commits manifest.json is behind the commit point (0 unless a writer died between the two). */
  manifestLag(): number {
    return manifestLag(this.dir, this.counters);
  }

  manifest(): ShardManifest {
    return {
      formatVersion: INDEX_FORMAT_VERSION,
      shard: this.index,
      model: this.info.model,
      metric: 'cosine',
      hnsw: this.info.hnsw,
      counts: { slides: this.catalogue.slideCount, tiles: this.catalogue.tileCount, tombstones: this.tombstones.size, segmented: this.counters.segments.reduce((sum, ref) => sum + ref.vectors, 0) - this.tombstones.size, tail: this.tailLive() },
      segments: this.counters.segments,
      commit: this.counters.commit,
      committedAt: new Date().toISOString(),
    };
  }

  /** Closes the shard; a writer first settles it (see settle) unless a write failed. */
  async close(): Promise<void> {
    try {
      if (!this.readOnly && !this.broken) await this.settle();
      else if (this.building) await this.building;
    } finally {
      await this.store.close();
    }
  }

  private checkWritable(): void {
    if (this.readOnly) throw new TesseraError('INVALID_ARGUMENT', `shard ${this.index} is open read-only`);
    if (this.broken) throw new TesseraError('INDEX_WRITE_FAILED', `shard ${this.index} refuses writes after a failed commit: ${this.broken.message}`);
  }

  private stage(write: (writes: ShardWrites) => void, tiles: number): void {
    this.staged.push(write);
    this.stagedTiles += tiles;
  }

  /**
   * Stages the removal of tiles: gone from the records, and a tombstone where a segment holds
   * them. Whether one does is decided when the commit runs: a fold may have covered them since.
   */
  private stageRemoval(labels: Label[]): void {
    this.stage((writes) => {
      for (const label of labels) {
        writes.removeTile(label);
        if (label < this.counters.segmentedEnd) writes.addTombstone(label);
      }
    }, 0);
    this.pendingRemovals.push(...labels);
    for (const label of labels) {
      this.catalogue.removeTile(label);
      this.stagedRecords.delete(label);
      this.stagedVectors.delete(label);
    }
  }

  /** Live tiles in the tail. */
  private tailLive(): number {
    let live = 0;
    for (let label = this.counters.segmentedEnd; label < this.counters.nextLabel; label++) if (this.catalogue.isLive(label)) live++;
    return live;
  }

  /**
   * Starts the next build the policy asks for, unless one runs: a merge of adjacent segments, or
   * a fold of the tail once it is large enough (any size when `final`). Returns whether it did.
   */
  private startBuild(final: boolean): boolean {
    if (this.building || this.readOnly || this.broken || this.buildError) return false;
    const segments = this.counters.segments;
    const tail = this.tailLive();
    let plan: { firstLabel: Label; endLabel: Label; replaces: SegmentRef[] } | null = null;
    if (tail >= this.policy.foldTiles || (final && tail > 0)) plan = { firstLabel: this.counters.segmentedEnd, endLabel: this.counters.nextLabel, replaces: [] };
    else {
      const merge = planMerge(segments.map((ref) => ({ vectors: ref.vectors, tombstones: this.tombstonesIn(ref) })), this.policy);
      if (merge) {
        const replaces = segments.slice(merge.from, merge.to);
        plan = { firstLabel: (replaces[0] as SegmentRef).firstLabel, endLabel: (replaces[replaces.length - 1] as SegmentRef).endLabel, replaces };
      }
    }
    if (!plan) return false;
    const chosen = plan;
    const id = this.counters.nextSegmentId;
    this.counters = { ...this.counters, nextSegmentId: id + 1 };
    const file = segmentFileName(id);
    this.building = runSegmentBuild({
      shardDir: this.dir,
      dimension: this.info.model.dimension,
      M: this.info.hnsw.M,
      efConstruction: this.info.hnsw.efConstruction,
      firstLabel: chosen.firstLabel,
      endLabel: chosen.endLabel,
      file,
      targetRecall: this.policy.targetRecall ?? DEFAULT_TARGET_RECALL,
      subgraphs: this.policy.subgraphs ?? DEFAULT_SUBGRAPH_POLICY,
      crash: crashSettingForBuild(),
    })
      .then((result) => this.commitSegment(chosen, id, file, result))
      .catch((error: Error) => {
        this.buildError = error;
      })
      .finally(() => {
        this.building = null;
        this.startBuild(false);
      });
    return true;
  }

  /**
   * Lists a built segment at the commit point in place of the segments it replaces. Tombstones in
   * its range are dropped (the file never held those vectors), except for tiles deleted while it
   * was being built, which it holds.
   */
  private commitSegment(plan: { firstLabel: Label; endLabel: Label; replaces: SegmentRef[] }, id: number, file: string, result: SegmentBuildResult): void {
    const commit = this.counters.commit + 1;
    const ref: SegmentRef | null =
      result.members.length === 0
        ? null
        : { id, file, firstLabel: plan.firstLabel, endLabel: plan.endLabel, vectors: result.members.length, bytes: result.bytes, sha256: result.sha256, commit, tuned: result.tuned, ...(result.subgraphs.length > 0 ? { subgraphs: result.subgraphs } : {}) };
    const replacedIds = new Set(plan.replaces.map((segment) => segment.id));
    const segments = [...this.counters.segments.filter((segment) => !replacedIds.has(segment.id)), ...(ref ? [ref] : [])].sort((a, b) => a.firstLabel - b.firstLabel);
    const dropped = [...this.tombstones].filter((label) => label >= plan.firstLabel && label < plan.endLabel);
    // Tiles whose deletion was committed while the builder ran are in the file: tombstones. Those
    // deleted but not yet committed get theirs with that commit (it sees the new segmentedEnd).
    const deadMembers = [...result.members].filter((label) => !this.store.hasVector(label));
    const segmentedEnd = Math.max(this.counters.segmentedEnd, plan.endLabel);
    try {
      this.store.transaction((writes) => {
        for (const label of dropped) writes.removeTombstone(label);
        for (const label of deadMembers) writes.addTombstone(label);
        writes.setCounters({ formatVersion: INDEX_FORMAT_VERSION, segments, nextSegmentId: this.counters.nextSegmentId, commit, segmentedEnd });
      });
    } catch (error) {
      throw writeFailed(this.index, this.dir, error);
    }
    reachStep('segment:committed');
    for (const label of dropped) this.tombstones.delete(label);
    for (const label of deadMembers) this.tombstones.add(label);
    this.counters = { ...this.counters, segments, commit, segmentedEnd };
    for (const segment of plan.replaces) for (const name of segmentFiles(segment)) rmSync(segmentPath(this.dir, name), { force: true });
    if (plan.replaces.length > 0) fsyncPath(join(this.dir, SEGMENTS_FOLDER));
    reachStep('segment:cleaned');
    this.loadedParts = { segments: null, tail: undefined };
    this.searcher.invalidate();
    this.writeManifest();
  }

  private tombstonesIn(ref: SegmentRef): number {
    let count = 0;
    for (const label of this.tombstones) if (label >= ref.firstLabel && label < ref.endLabel) count++;
    return count;
  }

  /** A writer's start: remove temporary and orphaned segment files, bring the manifest up to date. */
  private recover(): void {
    for (const name of orphanFiles(this.dir, this.counters)) rmSync(join(this.dir, SEGMENTS_FOLDER, name), { force: true });
    rmSync(join(this.dir, 'manifest.json.tmp'), { force: true });
    this.writeManifest();
  }

  private writeManifest(): void {
    const path = join(this.dir, 'manifest.json');
    try {
      replaceFileDurably(path, `${JSON.stringify(this.manifest(), null, 2)}\n`);
    } catch (error) {
      // The commit point already moved; the manifest is a readable copy that the next writer rewrites.
      this.broken = error as Error;
      throw writeFailed(this.index, this.dir, error);
    }
  }

  /** Loads the parts this shard searches now rather than at the first search (search threads). */
  preload(): void {
    this.parts();
  }

  /** The parts this shard searches, loaded on first use. */
  private parts(): SearchParts {
    const selection = this.selection;
    if (selection === 'none') return { segments: [], tail: null };
    if (this.loadedParts.segments === null) {
      const wanted = selection === 'all' ? this.counters.segments : this.counters.segments.filter((ref) => selection.segments.includes(ref.id));
      if (selection !== 'all' && wanted.length !== selection.segments.length) {
        throw new TesseraError('INDEX_CORRUPT', `shard ${this.index}: segments ${selection.segments.join(', ')} were asked for, the commit point lists ${this.counters.segments.map((ref) => ref.id).join(', ') || 'none'}`, { transient: true });
      }
      this.loadedParts.segments = wanted.map((ref) => this.loadParts(ref));
    }
    if (this.loadedParts.tail === undefined) {
      const range = selection === 'all' ? this.tail : selection.tail;
      this.loadedParts.tail = range && range.endLabel > range.firstLabel ? this.readTail(range.firstLabel, range.endLabel) : null;
    }
    return { segments: this.loadedParts.segments, tail: this.loadedParts.tail };
  }

  /** A segment's graph and sub-graphs, with the tombstones in its range marked deleted in memory. */
  private loadParts(ref: SegmentRef): LoadedSegment {
    const dimension = this.info.model.dimension;
    const tombstones = [...this.tombstones].filter((label) => label >= ref.firstLabel && label < ref.endLabel);
    const graph = loadSegment(this.dir, this.index, ref, dimension);
    for (const label of tombstones) {
      try {
        graph.markDelete(label);
      } catch {
        // Already marked in the file (a graph adopted from format 1).
      }
    }
    const subgraphs = new Map<string, LoadedSubgraph>();
    for (const subgraphRef of ref.subgraphs ?? []) {
      const subgraph = loadSegment(this.dir, this.index, subgraphRef, dimension);
      subgraphs.set(subgraphKey(subgraphRef.field, subgraphRef.value), { ref: subgraphRef, graph: subgraph, live: subgraphRef.vectors - markMembers(subgraph, tombstones) });
    }
    return { ref, graph, live: ref.vectors - tombstones.length, subgraphs };
  }

  private readTail(firstLabel: Label, endLabel: Label): TailBlock {
    const dimension = this.info.model.dimension;
    const labels: number[] = [];
    const chunks: Float32Array[] = [];
    for (const { label, vector } of this.store.vectorsIn(firstLabel, endLabel)) {
      labels.push(label);
      chunks.push(vector);
    }
    const vectors = new Float32Array(labels.length * dimension);
    chunks.forEach((vector, i) => vectors.set(vector, i * dimension));
    return { firstLabel, endLabel, labels: Uint32Array.from(labels), vectors };
  }
}

/** Marks deleted those of `labels` that the graph holds; returns how many it held. */
function markMembers(graph: Graph, labels: Label[]): number {
  if (labels.length === 0) return 0;
  const members = new Set(graph.getIdsList());
  let marked = 0;
  for (const label of labels) {
    if (!members.has(label)) continue;
    graph.markDelete(label);
    marked++;
  }
  return marked;
}

function loadCatalogue(store: ShardStore): TileCatalogue {
  const catalogue = new TileCatalogue();
  for (const record of store.slideRecords()) catalogue.putSlide(record);
  for (const { label, tile } of store.tileRecords()) catalogue.addTile(label, tile);
  return catalogue;
}

function outdated(index: number, dir: string, version: number): TesseraError {
  const indexDir = join(dir, '..');
  return new TesseraError('INDEX_OUTDATED', `shard ${index} is in format ${version}, this Tessera reads format ${INDEX_FORMAT_VERSION}: convert the index with \`tessera upgrade --index ${indexDir}\``);
}

/**
 * Splits the searchable parts of some shards over `threads` search threads, each part on one
 * thread (so each graph is in memory once), the largest first onto the least loaded thread.
 */
export function planParts(shards: readonly LocalShard[], threads: number): Array<Map<number, PartSelection>> {
  const plans = Array.from({ length: Math.max(1, threads) }, () => new Map<number, PartSelection>());
  const load = plans.map(() => 0);
  const parts = shards.flatMap((shard) => [
    ...shard.segments.map((ref) => ({ shard: shard.index, size: ref.vectors, segment: ref.id as number | null, tail: null as PartSelection['tail'] })),
    ...(shard.tail.endLabel > shard.tail.firstLabel ? [{ shard: shard.index, size: shard.tail.endLabel - shard.tail.firstLabel, segment: null, tail: shard.tail }] : []),
  ]);
  parts.sort((a, b) => b.size - a.size);
  for (const part of parts) {
    const thread = load.indexOf(Math.min(...load));
    load[thread] = (load[thread] as number) + part.size;
    const plan = plans[thread] as Map<number, PartSelection>;
    const selection = plan.get(part.shard) ?? { segments: [], tail: null };
    if (part.segment !== null) selection.segments.push(part.segment);
    else selection.tail = part.tail;
    plan.set(part.shard, selection);
  }
  return plans;
}

