/** Opening an index for queries, and hits as the CLI prints them. */
import { Embedder, IndexStore, augmentedRef, parseDevice, readIndexInfo, resolveModel, type TileHit } from '../../engine/index.js';
import { modelsDir } from './flags.js';

/** Opens an index read-only with the model it was built with, and an embedder for query images. */
export async function openForQueries(indexDir: string, modelsDirFlag: string | undefined, device: string | undefined) {
  const info = readIndexInfo(indexDir);
  const model = resolveModel(info.model.id, modelsDir(modelsDirFlag));
  const store = IndexStore.open(indexDir, { readOnly: true, expectModel: augmentedRef(model.manifest) });
  try {
    const embedder = await Embedder.create(model, { device: parseDevice(device ?? 'auto'), preprocessThreads: 0, sessions: 1 });
    return { info, store, embedder };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** A hit as the CLI prints it: location in level-0 pixels, cosine score, slide and tile metadata. */
export function hitsJson(hits: TileHit[]) {
  return hits.map((hit) => ({ slideId: hit.tile.slideId, x: hit.tile.x, y: hit.tile.y, width: hit.tile.width, height: hit.tile.height, mpp: hit.tile.mpp, score: Number(hit.score.toFixed(6)), metadata: { ...hit.slideMetadata, ...hit.tile.metadata } }));
}

