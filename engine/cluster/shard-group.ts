/**
 * ShardGroup: some shards of one index, wherever they live. A LocalShardGroup holds them in this
 * process (searched on worker threads); a RemoteShardGroup speaks HTTP to a shard node. The
 * Cluster fans out over ShardGroup[] and never asks which kind it has.
 */
import type { FacetCounts, IndexInfo, QueryExclusions, SlidePageQuery, SlideRecord, TileHit } from '../index/index.js';
import type { RgbImage } from '../slide/index.js';
import type { ShardRecall } from './recall.js';

/** A search as a shard runs it: plain data, so it crosses threads and HTTP unchanged. */
export interface ScopedSearch {
  k: number;
  ef?: number;
  /** A filter object as users write it (see engine/index/filter.ts). */
  filter?: Record<string, unknown>;
  excludeSlides?: string[];
  excludePatients?: string[];
  /** The datasets the caller may see; absent or null: all. Enforced inside the shard search. */
  datasets?: string[] | null;
}

/** A rectangle in level-0 pixels of a slide. */
export interface BaseRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** What a slide list shows: no path (paths can hold patient identifiers). */
export interface SlideSummary {
  slideId: string;
  metadata: Record<string, string>;
  width: number;
  height: number;
  mpp: [number, number];
  tiles: number;
  shard: number;
  indexedAt: string;
}

/** A slide's record with the stored vectors of a selection of its tiles (null: none there). */
export interface SlideVectors {
  slide: SlideSummary;
  vectors: Float32Array[] | null;
}

/** A tile reference searched on the group holding its slide (see ShardGroup.searchFromStoredTile). */
export interface StoredTileSearch extends SlideVectors {
  /** The group's own hits for the tile's vector; null when `vectors` is (no indexed tile there). */
  result: GroupSearchResult | null;
}

/** A page of a group's slides (see SlideListing.page), merged over its shards. */
export interface GroupSlidePage {
  /** In slide-id order. */
  slides: SlideSummary[];
  /** Slides in scope matching the query, over the group's shards. */
  total: number;
  /** Facet value counts over the slides in scope, summed over the group's shards. */
  facets: FacetCounts;
  /** Whether slides after the last one returned match too. */
  more: boolean;
}

export interface GroupHealth {
  /** Where the group lives: `local` or the node's URL. */
  location: string;
  /** Per shard: counts, and the recall@10 and ef its segments measured at build. */
  shards: Array<{ shard: number; slides: number; tiles: number; recall: ShardRecall }>;
  model: IndexInfo['model'];
  index: Pick<IndexInfo, 'shards' | 'tile' | 'hnsw' | 'metric'>;
}

export interface GroupSearchResult {
  hits: TileHit[][];
  /** Milliseconds each shard spent searching (summed over the queries). */
  shardMs: Record<number, number>;
}

export interface ShardGroup {
  /** `local` or the node URL: for logs and the missing-shard report. */
  readonly location: string;
  /** The shards this group serves. */
  readonly shardIds: readonly number[];
  /** Each query's k best tiles across the group's shards, best first. `deadline`: epoch ms. */
  search(queries: Float32Array[], request: ScopedSearch, deadline?: number): Promise<GroupSearchResult>;
  /**
   * Each query's exact k best tiles across the group's shards: a scan of every live vector for all
   * the queries at once (ground truth for recall; seconds at a million tiles). Same scope, filter
   * and exclusions as `search`, less what `perQuery[q]` leaves out for query q alone (its own
   * slide). `deadline`: epoch ms.
   */
  exactSearch(queries: Float32Array[], request: ScopedSearch, perQuery: QueryExclusions[], deadline?: number): Promise<GroupSearchResult>;
  /**
   * Stored vectors of a slide held here: the tile at exactly `rect` (a tile reference: no
   * embedding needed), or the slide's mosaic. null when the slide is not here, is outside
   * `datasets`, or (for a rect) no indexed tile has exactly that rectangle.
   */
  storedVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<Float32Array[] | null>;
  /**
   * The slide's record and its stored vectors (as storedVectors) in one call: what a query by an
   * indexed slide needs before it searches, so a router asks its node once, not twice. undefined
   * when the slide is absent or out of scope; `vectors` null when the selection has none.
   */
  slideVectors(slideId: string, selection: { rect: BaseRect } | { mosaic: true }, datasets: string[] | null): Promise<SlideVectors | undefined>;
  /**
   * A tile reference resolved and searched where its slide lives, in one call: the record, the
   * tile's stored vector and this group's hits for it, so that a router needs one round trip to
   * that node and then one to the others (not one for the vector, then one to every node).
   * undefined when the slide is absent or out of scope.
   */
  searchFromStoredTile(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<StoredTileSearch | undefined>;
  /** The slide's record without its path; undefined when absent or out of scope. */
  slide(slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined>;
  /** A page of the group's slides in id order after `query.after`, with counts and facets; answered by each shard from its own listing. */
  slidePage(query: SlidePageQuery): Promise<GroupSlidePage>;
  /** Slides and tiles in the datasets (null: all), from each shard's counters. */
  slideTotals(datasets: string[] | null): Promise<{ slides: number; tiles: number }>;
  /**
   * A region of a slide held here, read at the index's tile resolution and stretched to the tile
   * size (sizePx²), as the embedder stretches its input: reduced where it is read, so a remote
   * group sends tile-sized pixels. @throws TesseraError SLIDE_NOT_FOUND, REGION_*, SLIDE_ACCESS_DENIED
   */
  readRegion(slideId: string, rect: BaseRect, datasets: string[] | null): Promise<RgbImage>;
  health(): Promise<GroupHealth>;
  close(): Promise<void>;
  /**
   * Optional shortcut for a group that serves every shard: the tile at exactly `rect` searched
   * with its own stored vector in one step. null when no indexed tile has that rectangle.
   */
  /** Opens the index again so that slides indexed since are served (see LocalShardGroup.reload). */
  reload?(): Promise<GroupHealth>;
  searchStoredTile?(slideId: string, rect: BaseRect, request: ScopedSearch): Promise<GroupSearchResult | null>;
}

/** Merges id-sorted pages of disjoint shards into one page of `limit`, summing counts and facets. */
export function mergeSlidePages(pages: GroupSlidePage[], limit: number): GroupSlidePage {
  const all = pages.flatMap((page) => page.slides).sort((a, b) => (a.slideId < b.slideId ? -1 : a.slideId > b.slideId ? 1 : 0));
  const facets: FacetCounts = {};
  for (const page of pages) {
    for (const [field, values] of Object.entries(page.facets)) {
      const target = (facets[field] ??= {});
      for (const [value, n] of Object.entries(values)) target[value] = (target[value] ?? 0) + n;
    }
  }
  return { slides: all.slice(0, limit), total: pages.reduce((sum, page) => sum + page.total, 0), facets, more: all.length > limit || pages.some((page) => page.more) };
}

export function summaryOf(record: SlideRecord, shard: number): SlideSummary {
  return { slideId: record.slideId, metadata: record.metadata, width: record.width, height: record.height, mpp: record.mpp, tiles: record.labels.length, shard, indexedAt: record.indexedAt };
}
