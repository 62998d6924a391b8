/**
 * Finding, validating and installing models: the registry (models/) plus ONNX Runtime checks.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { DEFAULT_MODEL_ID, ManifestError, ModelNotFoundError, PRESETS, findModel, installModel, parseManifest, sha256OfFile, type InstalledModel, type ModelManifest } from '../../models/index.js';
import { TesseraError } from '../errors.js';
import { checkModel } from './embedder.js';
import { openSession } from './session.js';

/**
 * The installed model `id` (default: the bundled one).
 * @throws TesseraError MODEL_NOT_FOUND, MODEL_INVALID (an unreadable manifest)
 */
export function resolveModel(id: string = DEFAULT_MODEL_ID, userDir?: string): InstalledModel {
  try {
    const model = findModel(id, userDir);
    if (!existsSync(model.onnxPath)) throw new TesseraError('MODEL_INVALID', `model ${id}: its ONNX file ${basename(model.onnxPath)} is missing`);
    return model;
  } catch (error) {
    if (error instanceof ModelNotFoundError) throw new TesseraError('MODEL_NOT_FOUND', error.message, { cause: error });
    if (error instanceof ManifestError) throw new TesseraError('MODEL_INVALID', error.message, { cause: error });
    throw error;
  }
}

export interface AddModelRequest {
  onnxFile: string;
  /** A preset name (see PRESETS) or a manifest file's parsed JSON. */
  preset?: string;
  manifest?: unknown;
  /** With a preset: the id and version to install under (default: the preset name and "1"). */
  id?: string;
  version?: string;
}

/**
 * Validates an ONNX file against its manifest (runs a test batch on CPU) and installs it.
 * @throws TesseraError MODEL_INVALID naming the problem, INVALID_ARGUMENT for an unknown preset
 */
export async function addModel(request: AddModelRequest, userDir: string): Promise<InstalledModel> {
  const name = basename(request.onnxFile);
  if (!existsSync(request.onnxFile)) throw new TesseraError('MODEL_NOT_FOUND', `${name}: no such file`);
  let manifest: ModelManifest;
  try {
    if (request.preset !== undefined) {
      const preset = PRESETS[request.preset];
      if (!preset) throw new TesseraError('INVALID_ARGUMENT', `unknown preset "${request.preset}" (presets: ${Object.keys(PRESETS).join(', ')})`);
      manifest = parseManifest({ ...preset, id: request.id ?? request.preset, version: request.version ?? '1', file: 'model.onnx', sha256: sha256OfFile(request.onnxFile) }, `preset ${request.preset}`);
    } else {
      manifest = parseManifest({ ...(request.manifest as object), file: 'model.onnx', sha256: sha256OfFile(request.onnxFile) }, 'manifest');
    }
  } catch (error) {
    if (error instanceof ManifestError) throw new TesseraError('MODEL_INVALID', error.message, { cause: error });
    throw error;
  }
  const { session } = await openSession(request.onnxFile, { device: { kind: 'cpu' } });
  try {
    await checkModel(session, manifest);
  } finally {
    await session.release();
  }
  return installModel(request.onnxFile, manifest, userDir);
}
