/**
 * The shapes the viewer reads from and sends to the HTTP API (api/README.md). Coordinates are
 * level-0 pixels of the slide they belong to; nothing here is computed, only described.
 */

/** Metadata conditions: a value is equality (`{"organ": "lung"}`). */
export type Filter = Record<string, string | { in: string[] } | { not: string | { in: string[] } }>;

/** The metadata fields the viewer offers as filters, in display order. */
export const FILTER_FIELDS = ['dataset', 'organ', 'stain', 'species', 'diagnosis'] as const;
export type FilterField = (typeof FILTER_FIELDS)[number];

/** A rectangle in level-0 pixels of a slide. */
export interface BaseRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A slide as GET /v1/slides lists it. */
export interface SlideSummary {
  slideId: string;
  metadata: Record<string, string>;
  /** Level-0 size, px. */
  width: number;
  height: number;
  /** µm per level-0 pixel, [x, y]; 0 when the slide has no calibration. */
  mpp: number[];
  tiles: number;
  shard: number;
  indexedAt: string;
  thumbnailUrl: string;
  dziUrl: string;
  /** A new case (a file under the slide roots, not indexed): slideId is its path; no tiles, no metadata. */
  newCase?: boolean;
}

/** GET /v1/cases: slide files under the server's slide roots that are not indexed. */
export interface CaseList {
  /** `path`: relative to a slide root, or a DICOMweb series URL (`source` dicomweb). */
  cases: Array<{ path: string; source: 'file' | 'dicomweb'; bytes?: number }>;
  truncated: boolean;
  unreachableServers: number;
}

/** GET /v1/cases/{path}. */
export interface CaseSummary {
  path: string;
  width: number;
  height: number;
  mpp: number[];
  thumbnailUrl: string;
  dziUrl: string;
}

/** Shards that answered a search, of all shards. */
export interface Coverage {
  answered: number;
  total: number;
  missing: number[];
}

/** GET /v1/slides. */
export interface SlideList {
  total: number;
  offset: number;
  limit: number;
  slides: SlideSummary[];
  /** The `cursor` of the next page; null on the last page. */
  nextCursor: string | null;
  /** Per field, value → number of slides. */
  facets: Record<string, Record<string, number>>;
  coverage: Coverage;
}

/** A matching region. */
export interface Hit extends BaseRect {
  slideId: string;
  /** µm per level-0 pixel of the hit's slide. */
  mpp: number;
  /** Cosine similarity, 1 = identical tile. */
  score: number;
  metadata: Record<string, string>;
  imageUrl: string;
  slideUrl: string;
}

/** A place on another slide where several tiles of a whole-region query land together. */
export interface RegionMatch extends BaseRect {
  slideId: string;
  score: number;
  matchedQueries: number;
  metadata: Record<string, string>;
  slideUrl: string;
  /** Each matched query tile's best hit (`queryTile` indexes `query.tiles`). */
  evidence: Array<Hit & { queryTile: number }>;
}

/** POST /v1/search/region. */
export interface RegionSearchReply {
  query: Record<string, unknown>;
  /** With `regions: true` (a box of several tiles): region matches, best first. */
  regions?: RegionMatch[];
  results: Hit[];
  coverage: Coverage;
  tookMs: number;
}

/** A slide like the query slide, with its matching regions. */
export interface SlideMatch {
  slideId: string;
  score: number;
  matchedQueries: number;
  metadata: Record<string, string>;
  thumbnailUrl: string;
  evidence: Hit[];
}

/** POST /v1/search/slide. */
export interface SlideSearchReply {
  query: Record<string, unknown>;
  results: SlideMatch[];
  coverage: Coverage;
  tookMs: number;
}

/** A slide of a cohort: its id, similarity to the example (1 for the example) and metadata. */
export interface CohortSlide {
  slideId: string;
  score: number;
  metadata: Record<string, string>;
}

/** POST /v1/cohorts (JSON). */
export interface CohortReply {
  query: Record<string, unknown>;
  slides: CohortSlide[];
  coverage: Coverage;
}

/** GET /v1/session: whether the server wants a key, and the presented key (null: none or unknown). */
export interface SessionReply {
  authRequired: boolean;
  key: { id: string; datasets: string[] | null; admin: boolean } | null;
}

/** GET /v1/index, the parts the viewer shows. */
export interface IndexReply {
  index: { model: { id: string; dimension: number }; tile: { mpp: number; sizePx: number } };
  totals: { slides: number; tiles: number };
}

/** What a search was asked: the part of the request body that is not an option. */
export type SearchQuery = (
  | { kind: 'region'; slideId: string; rect: BaseRect; /** µm per level-0 pixel; null without calibration. */ mpp: number | null }
  | { kind: 'image'; image: string; name: string }
  | { kind: 'slide'; slideId: string }
  | { kind: 'case-region'; path: string; rect: BaseRect; mpp: number | null }
  | { kind: 'case-slide'; path: string }
) & { feedback?: Feedback };

/** A tile of an indexed slide, as refine-by-example sends it. */
export interface TileRef extends BaseRect {
  slideId: string;
}

/** Results marked "more like this" (positives) and "not like this" (negatives): the API's refine by example. */
export interface Feedback {
  positives: TileRef[];
  negatives: TileRef[];
}
