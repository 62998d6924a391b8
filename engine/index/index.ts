/** engine/index: shards (hnswlib + LMDB + manifest), the index directory, filters. */
export { LocalShard, EXACT_SCAN_LIMIT, type NewTile, type SearchOptions } from './local-shard.js';
export { IndexStore, createOrCheckIndex, mergeHits, readIndexInfo, shardDir, shardOf, type CreateIndexOptions } from './index-dir.js';
export { parseFilter, matches, datasetOf, EMPTY_FILTER, type Filter } from './filter.js';
export { asSlideId, INDEX_FORMAT_VERSION, type Fingerprint, type IndexInfo, type Label, type ModelRef, type ShardManifest, type SlideId, type SlideRecord, type TileHit, type TileRecord } from './types.js';
