/** engine/index: shards (hnswlib + LMDB + manifest), the index directory, filters. */
export { LocalShard, planParts, type NewTile, type PartSelection, type ShardOpenOptions } from './local-shard.js';
export type { QueryExclusions } from './exact-search.js';
export { EXACT_SCAN_LIMIT, DEFAULT_EF, exactScan, type SearchOptions } from './shard-search.js';
export { DEFAULT_MERGE_POLICY, DEFAULT_SUBGRAPH_POLICY, planMerge, type MergePolicy, type SubgraphPolicy } from './merge-policy.js';
export { crashAtStep, isWriteStep, WRITE_STEPS, type WriteStep } from './write-steps.js';
export { upgradeIndex, type UpgradeReport } from './upgrade.js';
export { IndexStore, createOrCheckIndex, mergeHits, readIndexInfo, shardDir, shardOf, type CreateIndexOptions } from './index-dir.js';
export { recordedSources, recordSources } from './index-sources.js';
export { FACET_FIELDS, compareIds, type FacetCounts, type FacetField, type SlidePage, type SlidePageQuery } from './slide-listing.js';
export { parseFilter, matches, datasetOf, EMPTY_FILTER, type Filter } from './filter.js';
export { asSlideId, INDEX_FORMAT_VERSION, type Fingerprint, type IndexInfo, type Label, type ModelRef, type ShardManifest, type SlideId, type SegmentRef, type SubgraphRef, type SlideRecord, type SlideSources, type TileHit, type TileRecord } from './types.js';
