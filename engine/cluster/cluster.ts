/**
 * Cluster: one index seen through its ShardGroups (local, remote or both). Searches fan out to
 * every group with a deadline and merge by score; a group that fails or misses the deadline is
 * reported in `coverage`, never as an error, so callers get partial results. Per-slide calls go
 * to the group holding the slide's shard.
 */
import { TesseraError } from '../errors.js';
import { mergeHits, shardOf, type IndexInfo, type QueryExclusions, type SlidePageQuery, type TileHit } from '../index/index.js';
import type { RgbImage } from '../slide/index.js';
import { mergeSlidePages, type BaseRect, type GroupHealth, type GroupSearchResult, type GroupSlidePage, type ScopedSearch, type ShardGroup, type SlideSummary, type SlideVectors } from './shard-group.js';

export interface Coverage {
  /** Shards that answered. */
  answered: number;
  total: number;
  /** Shard ids that did not answer in time. */
  missing: number[];
}

export interface ClusterSearchResult {
  hits: TileHit[][];
  coverage: Coverage;
  /** Milliseconds each answering shard spent searching. */
  shardMs: Record<number, number>;
}

export interface ClusterOptions {
  /** Time a search may take across groups (default 2000 ms). */
  deadlineMs?: number;
}

export class Cluster {
  constructor(
    readonly groups: ShardGroup[],
    /** The index every group belongs to (shard count, model, tile grid). */
    readonly index: Pick<IndexInfo, 'shards' | 'model' | 'tile' | 'hnsw' | 'metric'>,
    private readonly options: ClusterOptions = {},
  ) {}

  /** Each query's k best tiles across every shard that answered in time. */
  async search(queries: Float32Array[], request: ScopedSearch): Promise<ClusterSearchResult> {
    return this.fanOut(queries, request, Date.now() + (this.options.deadlineMs ?? 2000), new Map());
  }

  /**
   * A tile reference searched across the cluster in two steps: resolved and searched on the group
   * holding its slide (one round trip), then its vector searched on every other group; merged as
   * `search` merges. undefined when the slide is absent or out of scope; `result` null when no
   * indexed tile has exactly `rect` (the caller embeds the region, with the record it got).
   * @throws TesseraError SHARD_UNAVAILABLE naming the slide's shard
   */
  async searchFromStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<{ slide: SlideSummary; vector: Float32Array | null; result: ClusterSearchResult | null } | undefined> {
    const deadline = Date.now() + (this.options.deadlineMs ?? 2000);
    const owner = this.groupFor(slideId);
    const found = await this.onSlideShard(slideId, (group) => group.searchFromStoredTile(slideId, rect, request));
    if (!found) return undefined;
    const vector = found.vectors?.[0];
    if (!vector || !found.result) return { slide: found.slide, vector: null, result: null };
    return { slide: found.slide, vector, result: await this.fanOut([vector], request, deadline, new Map([[owner, found.result]])) };
  }

  /** Searches every group not in `answered`, and merges all answers in group order (ties keep that order). */
  private async fanOut(queries: Float32Array[], request: ScopedSearch, deadline: number, answered: Map<ShardGroup, GroupSearchResult>): Promise<ClusterSearchResult> {
    const answers = await Promise.allSettled(this.groups.map((group) => answered.get(group) ?? group.search(queries, request, deadline)));
    return this.merged(queries.length, request.k, answers);
  }

  /**
   * Each query's exact k best tiles across every shard that answered (ground truth for recall:
   * every group scans all its live vectors once for all the queries). A group that fails is
   * reported in `coverage`, as for `search`. `perQuery[q]`: what query q alone leaves out.
   * `timeoutMs`: how long the scans may take.
   */
  async exactSearch(queries: Float32Array[], request: ScopedSearch, perQuery: QueryExclusions[] = [], timeoutMs = 600_000): Promise<ClusterSearchResult> {
    const deadline = Date.now() + timeoutMs;
    const answers = await Promise.allSettled(this.groups.map((group) => group.exactSearch(queries, request, perQuery, deadline)));
    return this.merged(queries.length, request.k, answers);
  }

  /** Hits merged by score over the groups that answered, in group order (ties keep that order); the others' shards listed as missing. */
  private merged(queries: number, k: number, answers: Array<PromiseSettledResult<{ hits: TileHit[][]; shardMs: Record<number, number> }>>): ClusterSearchResult {
    const missing: number[] = [];
    const shardMs: Record<number, number> = {};
    const perGroup: TileHit[][][] = [];
    answers.forEach((answer, i) => {
      const group = this.groups[i] as ShardGroup;
      if (answer.status === 'fulfilled') {
        perGroup.push(answer.value.hits);
        Object.assign(shardMs, answer.value.shardMs);
      } else {
        const error = answer.reason as Error;
        // A bad request fails on every group alike: that is the caller's error, not a missing shard.
        if (error instanceof TesseraError && !error.transient && error.code !== 'SHARD_UNAVAILABLE') throw error;
        missing.push(...group.shardIds);
      }
    });
    const hits = Array.from({ length: queries }, (_, q) => mergeHits(perGroup.map((lists) => lists[q] ?? []), k));
    const served = new Set(this.groups.flatMap((group) => group.shardIds));
    for (let shard = 0; shard < this.index.shards; shard++) if (!served.has(shard) && !missing.includes(shard)) missing.push(shard);
    missing.sort((a, b) => a - b);
    return { hits, coverage: { answered: this.index.shards - missing.length, total: this.index.shards, missing }, shardMs };
  }

  /**
   * A tile reference searched in one step when one group serves every shard (a single node);
   * null otherwise, or when no indexed tile has exactly `rect`: callers then resolve the vector
   * and search.
   */
  get searchesStoredTilesDirectly(): boolean {
    const [group] = this.groups;
    return this.groups.length === 1 && group?.searchStoredTile !== undefined && group.shardIds.length === this.index.shards;
  }

  async searchStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<ClusterSearchResult | null> {
    const [group] = this.groups;
    if (!this.searchesStoredTilesDirectly || !group?.searchStoredTile) return null;
    const result = await group.searchStoredTile(slideId, rect, request);
    if (!result) return null;
    return { ...result, coverage: { answered: this.index.shards, total: this.index.shards, missing: [] } };
  }

  /** The group holding a slide's shard. @throws TesseraError SHARD_UNAVAILABLE when no group serves it */
  groupFor(slideId: string): ShardGroup {
    const shard = shardOf(slideId, this.index.shards);
    const group = this.groups.find((candidate) => candidate.shardIds.includes(shard));
    if (!group) throw new TesseraError('SHARD_UNAVAILABLE', `shard ${shard}, which holds slide "${slideId}", is not served by any node`, { transient: true });
    return group;
  }

  storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null> {
    return this.onSlideShard(slideId, (group) => group.storedVectors(slideId, selection, datasets));
  }

  slideVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<SlideVectors | undefined> {
    return this.onSlideShard(slideId, (group) => group.slideVectors(slideId, selection, datasets));
  }

  slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
    return this.onSlideShard(slideId, (group) => group.slide(slideId, datasets));
  }

  readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage> {
    return this.onSlideShard(slideId, (group) => group.readRegion(slideId, rect, datasets));
  }

  /**
   * A call to the group holding a slide. When that group (and its replicas) is down, nothing
   * else holds the slide's record or vectors: the error names the shard, so a caller knows which
   * one to bring back. @throws TesseraError SHARD_UNAVAILABLE naming the shard
   */
  private async onSlideShard<T>(slideId: string, call: (group: ShardGroup) => Promise<T>): Promise<T> {
    const group = this.groupFor(slideId);
    try {
      return await call(group);
    } catch (error) {
      if (!(error instanceof TesseraError) || error.code !== 'SHARD_UNAVAILABLE') throw error;
      const shard = shardOf(slideId, this.index.shards);
      throw new TesseraError('SHARD_UNAVAILABLE', `shard ${shard}, which holds slide "${slideId}", is unavailable (${group.location} and its replicas): ${error.message}`, { transient: true, cause: error });
    }
  }

  /**
   * A page of slides in id order after `query.after`, merged from every group's page (each
   * answered by its shards' listings), with counts and facets summed; groups that fail are
   * reported in `coverage` and their slides left out.
   */
  async slidePage(query: SlidePageQuery): Promise<GroupSlidePage & { coverage: Coverage }> {
    const answers = await Promise.allSettled(this.groups.map((group) => group.slidePage(query)));
    const missing: number[] = [];
    const pages: GroupSlidePage[] = [];
    answers.forEach((answer, i) => {
      if (answer.status === 'fulfilled') pages.push(answer.value);
      else missing.push(...(this.groups[i] as ShardGroup).shardIds);
    });
    return { ...mergeSlidePages(pages, query.limit), coverage: this.coverageMissing(missing) };
  }

  /** Slides and tiles in the datasets, summed over the groups that answer. */
  async slideTotals(datasets: string[] | null): Promise<{ slides: number; tiles: number; coverage: Coverage }> {
    const answers = await Promise.allSettled(this.groups.map((group) => group.slideTotals(datasets)));
    const missing: number[] = [];
    const totals = { slides: 0, tiles: 0 };
    answers.forEach((answer, i) => {
      if (answer.status === 'fulfilled') {
        totals.slides += answer.value.slides;
        totals.tiles += answer.value.tiles;
      } else missing.push(...(this.groups[i] as ShardGroup).shardIds);
    });
    return { ...totals, coverage: this.coverageMissing(missing) };
  }

  private coverageMissing(missing: number[]): Coverage {
    return { answered: this.index.shards - missing.length, total: this.index.shards, missing: missing.sort((a, b) => a - b) };
  }

  async health(): Promise<Array<GroupHealth | { location: string; error: string; shards: readonly number[] }>> {
    return Promise.all(
      this.groups.map((group) => group.health().catch((error: Error) => ({ location: group.location, error: error.message, shards: group.shardIds }))),
    );
  }

  /**
   * Reloads every group that can (local shards, shard nodes); each group's outcome, in order.
   * A group that fails keeps serving what it had.
   */
  async reload(): Promise<Array<{ location: string; shards: readonly number[]; error?: string }>> {
    const answers = await Promise.allSettled(this.groups.map((group) => (group.reload ? group.reload() : Promise.reject(new Error('cannot reload')))));
    return answers.map((answer, i) => {
      const group = this.groups[i] as ShardGroup;
      return answer.status === 'fulfilled' ? { location: group.location, shards: group.shardIds } : { location: group.location, shards: group.shardIds, error: (answer.reason as Error).message };
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.groups.map((group) => group.close()));
  }
}
