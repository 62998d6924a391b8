/** Shards wherever they live: local worker-thread groups, remote shard nodes, and the fan-out over them. */
export { Cluster, type ClusterOptions, type ClusterSearchResult, type Coverage } from './cluster.js';
export { LocalShardGroup, type LocalGroupOptions } from './local-group.js';
export { RemoteShardGroup, type RemoteGroupOptions } from './remote-group.js';
export { SlideFiles } from './slide-files.js';
export { mergeSlidePages, summaryOf, type BaseRect, type GroupHealth, type GroupSlidePage, type GroupSearchResult, type ScopedSearch, type ShardGroup, type SlideSummary, type SlideVectors, type StoredTileSearch } from './shard-group.js';
export { BINARY_CONTENT_TYPE, CLUSTER_TOKEN_HEADER, decodeFramed, decodeSearch, encodeFramed, encodeSearch, hitsFromWire, hitsToWire, REGION_HEIGHT_HEADER, REGION_WIDTH_HEADER, SEARCH_CONTENT_TYPE, vectorsFromBytes, vectorsToBytes, type WireExactRequest } from './wire.js';
export { indexRecall, shardRecall, type IndexRecall, type ShardRecall } from './recall.js';
