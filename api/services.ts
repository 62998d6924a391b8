/**
 * What the routes work with: the cluster of shard groups, the embedder (roles all and router),
 * the local group (roles all and shard: slide files for images) and metrics; and the engine's
 * query service over them, which answers every search route.
 */
import { QueryService, type Cluster, type Embedder, type LocalShardGroup } from '../engine/index.js';
import type { InstalledModel } from '../models/index.js';
import type { ServeConfig } from './config.js';
import { ApiError } from './errors.js';
import type { Metrics } from './metrics.js';

export interface Services {
  config: ServeConfig;
  cluster: Cluster;
  /** Roles all and shard: the shards on this machine, with their slide files. */
  local?: LocalShardGroup;
  /** Roles all and router. */
  embedder?: Embedder;
  /** The index's model as installed here (roles all and router). */
  model?: InstalledModel;
  metrics: Metrics;
}

/**
 * The engine's query service over this server's cluster and model, with its embeddings and
 * fan-outs recorded in the metrics. A question that needs the model on a node without one is
 * NOT_READY.
 */
export function queryService(services: Services): QueryService {
  return new QueryService({
    cluster: services.cluster,
    embedder: () => {
      if (!services.embedder) throw new ApiError('NOT_READY', 'this node has no model loaded: send queries that need embedding (images, regions that are not indexed tiles, new cases) to a router or an all-in-one server');
      return services.embedder;
    },
    onEmbed: (seconds) => services.metrics.embedSeconds.observe(seconds),
    onSearch: (result) => {
      services.metrics.observeShards(result.shardMs);
      if (result.coverage.answered < result.coverage.total) services.metrics.partialResults.inc();
    },
  });
}

export function notFound(slideId: string): ApiError {
  return new ApiError('SLIDE_NOT_FOUND', `slide "${slideId}" is not in this index`);
}
