/** models/: the model registry, presets and the bundled default. Imports nothing of Tessera's. */
export { parseManifest, ManifestError, type ModelManifest, type ChannelOrder, type Pooling } from './manifest.js';
export { PRESETS, type Preset } from './presets.js';
export { BUNDLED_MODELS_DIR, DEFAULT_MODEL_ID, findModel, installModel, listModels, modelFileBytes, readManifestFile, sha256OfFile, ModelNotFoundError, type InstalledModel } from './registry.js';
