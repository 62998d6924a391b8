/** Records and files of an index: what index.json, shard manifests and LMDB hold. */

declare const slideIdBrand: unique symbol;
/** A slide's id in an index (the file name, or the metadata table's slide_id). */
export type SlideId = string & { readonly [slideIdBrand]: true };
export const asSlideId = (value: string): SlideId => value as SlideId;

/** hnswlib's vector id: a tile's number inside its shard. Never reused after a delete. */
export type Label = number;

export const INDEX_FORMAT_VERSION = 1;

export interface ModelRef {
  id: string;
  version: string;
  dimension: number;
}

/** index.json: fixed when the index is created. */
export interface IndexInfo {
  formatVersion: number;
  shards: number;
  model: ModelRef;
  metric: 'cosine';
  hnsw: { M: number; efConstruction: number };
  /** The tile grid every slide is cut into. */
  tile: { mpp: number; sizePx: number };
  createdAt: string;
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

/** manifest.json of a shard: rewritten at every commit. */
export interface ShardManifest {
  formatVersion: number;
  shard: number;
  model: ModelRef;
  metric: 'cosine';
  hnsw: { M: number; efConstruction: number };
  counts: { slides: number; tiles: number; deleted: number; capacity: number };
  /** sha256 of hnsw.bin as committed. */
  checksums: { hnsw: string };
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
