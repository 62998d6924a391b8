/** engine/embed: ONNX sessions, devices, preprocessing workers and batched embedding. */
export { Embedder, checkModel, type EmbedderOptions, type EmbedderStats } from './embedder.js';
export { parseDevice, missingCudaLibraries, missingCudaDependencies, onnxRuntimeBinDir, CUDA_PROVIDER_LIBRARIES, type DeviceRequest, type Provider } from './device.js';
export { openSession, WorkerSession, type OpenedSession, type OutputTensor } from './session.js';
export { poolAndNormalize, l2Normalize } from './pooling.js';
export { PreprocessPool, type PreparedBatch } from './preprocess-pool.js';
export { resolveModel, addModel, type AddModelRequest } from './load-model.js';
export { embedTiles, type EmbeddedTile, type EmbedTilesStats, type SlideTile } from './embed-tiles.js';
export { augmentedRef, d8View } from './augment.js';
