/** Shards wherever they live: local worker-thread groups, remote shard nodes, and the fan-out over them. */
export { Cluster, type ClusterOptions, type ClusterSearchResult, type Coverage } from './cluster.js';
export { LocalShardGroup, type LocalGroupOptions } from './local-group.js';
export { RemoteShardGroup, type RemoteGroupOptions } from './remote-group.js';
export { SlideFiles } from './slide-files.js';
export { summaryOf, type BaseRect, type GroupHealth, type GroupSearchResult, type ScopedSearch, type ShardGroup, type SlideSummary } from './shard-group.js';
export { CLUSTER_TOKEN_HEADER, vectorFromBase64, vectorToBase64, type WireExactRequest, type WireSearchRequest } from './wire.js';
