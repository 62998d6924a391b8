/** Records and files of an index: what index.json, shard manifests and LMDB hold. */

declare const slideIdBrand: unique symbol;
/** A slide's id in an index (the file name, or the metadata table's slide_id). */
export type SlideId = string & { readonly [slideIdBrand]: true };
export const asSlideId = (value: string): SlideId => value as SlideId;

/** hnswlib's vector id: a tile's number inside its shard. Never reused after a delete. */
export type Label = number;

/**
 * 2: LMDB commit point holding every committed vector, immutable HNSW segment files.
 * 1: one hnsw.bin rewritten at every commit (converted by `tessera upgrade`).
 */
export const INDEX_FORMAT_VERSION = 2;

export interface ModelRef {
  id: string;
  version: string;
  dimension: number;
}

/** index.json: fixed when the index is created, but for the sources that runs add. */
export interface IndexInfo {
  formatVersion: number;
  shards: number;
  model: ModelRef;
  metric: 'cosine';
  hnsw: { M: number; efConstruction: number };
  /** The tile grid every slide is cut into. */
  tile: { mpp: number; sizePx: number };
  createdAt: string;
  /**
   * The slide folders (absolute paths) and DICOMweb service roots the slides were indexed from,
   * the default slide roots of a server (index-sources.ts). Absent in indexes built before it.
   */
  sources?: SlideSources;
}

/** Where an index's slides lie: folders of slide files and DICOMweb servers. */
export interface SlideSources {
  folders: string[];
  dicomWebServers: string[];
}

/** A tile, stored by label. Coordinates are level-0 pixels of its slide. */
export interface TileRecord {
  slideId: SlideId;
  x: number;
  y: number;
  width: number;
  height: number;
  /** µm per level-0 pixel of the slide. */
  mpp: number;
  tissue: number;
  /** The pyramid level the tile was read from. */
  level: number;
  /** Tile-level metadata (tile datasets: `label` and any extra columns). */
  metadata?: Record<string, string>;
}

/** What identifies a slide file's content, to skip unchanged slides on a rerun. */
export interface Fingerprint {
  size: number;
  mtimeMs: number;
  /** sha256 of the first and last MiB and the size: cheap, and changes when the content does. */
  hash: string;
}

export interface SlideRecord {
  slideId: SlideId;
  /** Path as given to the indexer (absolute). Never logged. */
  path: string;
  metadata: Record<string, string>;
  fingerprint: Fingerprint;
  labels: Label[];
  /** Representative tiles (a subset of labels) that slide search queries with. */
  mosaic: Label[];
  /** Whether mpp came from the metadata file rather than the slide. */
  mppSupplied: boolean;
  mpp: [number, number];
  width: number;
  height: number;
  indexedAt: string;
}

/**
 * An immutable HNSW graph file of a shard. It holds the vectors of the labels in [firstLabel,
 * endLabel) that were live when it was built; labels deleted since are tombstones.
 */
export interface SegmentRef {
  /** Increases with every segment the shard writes; names the file. */
  id: number;
  /** File name inside the shard's segments/ folder. */
  file: string;
  firstLabel: Label;
  /** One past the last label it covers. */
  endLabel: Label;
  /** Vectors in the file (live when it was built). */
  vectors: number;
  bytes: number;
  /** sha256 of the file, computed as it was written. */
  sha256: string;
  /** The commit that made it live. */
  commit: number;
  /**
   * The smallest ef at which this graph reached the target recall@10 on a sample of its own
   * vectors (perturbed) against exact search when it was built, and the recall measured there.
   * Searches use it unless a request names an ef. Absent in segments adopted from format 1.
   */
  tuned?: { ef: number; recall10: number; target: number };
  /**
   * Graphs of subsets of this segment's vectors, one per common facet value (see SubgraphPolicy):
   * a filter on that value walks the small graph instead of the whole one with a callback. Built
   * with the segment, written and committed with it, removed with it. Absent: none (format 1,
   * or a segment built before sub-graphs); searches then walk the segment's graph.
   */
  subgraphs?: SubgraphRef[];
}

/**
 * One sub-graph of a segment: the vectors of the segment's tiles whose `field` (tile metadata
 * first, then the slide's, as filters look it up) is `value`, when the segment was built.
 */
export interface SubgraphRef {
  field: string;
  value: string;
  /** File name inside the shard's segments/ folder. */
  file: string;
  /** Vectors in the file. */
  vectors: number;
  bytes: number;
  sha256: string;
  /** As SegmentRef.tuned, measured on the sub-graph's own vectors. */
  tuned: { ef: number; recall10: number; target: number };
}

/**
 * manifest.json of a shard: a readable copy of the commit point, rewritten after every commit.
 * LMDB is authoritative: a crash between the two leaves an old manifest that the next writer
 * rewrites and `verify` reports.
 */
export interface ShardManifest {
  formatVersion: number;
  shard: number;
  model: ModelRef;
  metric: 'cosine';
  hnsw: { M: number; efConstruction: number };
  counts: { slides: number; tiles: number; tombstones: number; segmented: number; tail: number };
  segments: SegmentRef[];
  /** Increases at every commit. */
  commit: number;
  committedAt: string;
}

export interface TileHit {
  label: Label;
  shard: number;
  /** Cosine similarity: 1.0 for an identical tile. */
  score: number;
  tile: TileRecord;
  slideMetadata: Record<string, string>;
}
