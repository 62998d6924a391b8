/**
 * Opening an index for queries the way `tessera serve` does for role all (a Cluster over a
 * LocalShardGroup, the index's model) and asking the engine's query service, so that the CLI and
 * the API give the same answer to the same question. Also hits as the CLI prints them.
 */
import { Cluster, Embedder, LocalShardGroup, QueryService, TesseraError, augmentedRef, parseDevice, readIndexInfo, resolveModel, type Coverage, type IndexInfo, type TileHit } from '../../engine/index.js';
import { modelsDir } from './flags.js';

/**
 * A command answers every shard or says which did not: no deadline cuts a CLI search short
 * (a server's deadline exists for latency; a command's user waits for the whole answer).
 */
const CLI_DEADLINE_MS = 24 * 3600 * 1000;

export interface OpenQueries {
  info: IndexInfo;
  queries: QueryService;
  close(): Promise<void>;
}

/**
 * Opens an index read-only with the model it was built with, and the query service over it.
 * @throws TesseraError INDEX_NOT_FOUND, INDEX_OUTDATED, MODEL_NOT_FOUND, MODEL_MISMATCH
 */
export async function openQueries(indexDir: string, modelsDirFlag: string | undefined, device: string | undefined): Promise<OpenQueries> {
  const info = readIndexInfo(indexDir);
  const model = resolveModel(info.model.id, modelsDir(modelsDirFlag));
  const installed = augmentedRef(model.manifest);
  if (installed.id !== info.model.id || installed.version !== info.model.version || installed.dimension !== info.model.dimension) {
    throw new TesseraError('MODEL_MISMATCH', `${indexDir} was built with model ${info.model.id} ${info.model.version} (${info.model.dimension}-d); the query uses ${installed.id} ${installed.version}`);
  }
  // Searches on this thread: a command asks a few questions, and starting a search thread costs more than they take.
  const local = await LocalShardGroup.open(indexDir, { threads: 0 });
  try {
    const embedder = await Embedder.create(model, { device: parseDevice(device ?? 'auto'), preprocessThreads: 0, sessions: 1 });
    const cluster = new Cluster([local], { shards: info.shards, model: info.model, tile: info.tile, hnsw: info.hnsw, metric: info.metric }, { deadlineMs: CLI_DEADLINE_MS });
    return {
      info,
      queries: new QueryService({ cluster, embedder: () => embedder }),
      async close() {
        await embedder.close();
        await local.close();
      },
    };
  } catch (error) {
    await local.close();
    throw error;
  }
}

/** A hit as the CLI prints it: location in level-0 pixels, cosine score, slide and tile metadata. */
export function hitsJson(hits: TileHit[]) {
  return hits.map((hit) => ({ slideId: hit.tile.slideId, x: hit.tile.x, y: hit.tile.y, width: hit.tile.width, height: hit.tile.height, mpp: hit.tile.mpp, score: Number(hit.score.toFixed(6)), metadata: { ...hit.slideMetadata, ...hit.tile.metadata } }));
}

/** Says on stderr when shards were missing from an answer (shards of other partitions, say). */
export function warnPartial(command: string, coverage: Coverage): void {
  if (coverage.answered < coverage.total) process.stderr.write(`tessera ${command}: ${coverage.answered} of ${coverage.total} shards answered (missing: ${coverage.missing.join(', ')})\n`);
}
