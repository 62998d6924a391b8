/**
 * The model registry: manifests in model folders. Bundled models live beside this file
 * (models/<id>/); installed ones in a user folder (models/<id>/ under the configured home).
 * The registry reads and writes files; validating that an ONNX file runs is engine/embed's job.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManifestError, parseManifest, type ModelManifest } from './manifest.js';

export const BUNDLED_MODELS_DIR = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_MODEL_ID = 'mobilenetv2-int8';

export interface InstalledModel {
  manifest: ModelManifest;
  /** Absolute path of the ONNX file. */
  onnxPath: string;
  bundled: boolean;
}

export class ModelNotFoundError extends Error {
  override readonly name = 'ModelNotFoundError';
}

/** Every model in the bundled folder and in `userDir`; a user model shadows a bundled one of the same id. */
export function listModels(userDir?: string): InstalledModel[] {
  const byId = new Map<string, InstalledModel>();
  for (const [dir, bundled] of [[BUNDLED_MODELS_DIR, true], [userDir, false]] as const) {
    if (!dir || !existsSync(dir)) continue;
    for (const entry of readdirSync(dir).sort()) {
      const manifestPath = join(dir, entry, 'manifest.json');
      if (!existsSync(manifestPath)) continue;
      const manifest = readManifestFile(manifestPath);
      byId.set(manifest.id, { manifest, onnxPath: join(dir, entry, manifest.file), bundled });
    }
  }
  return [...byId.values()];
}

/** The installed model with this id. Throws ModelNotFoundError listing what is installed. */
export function findModel(id: string, userDir?: string): InstalledModel {
  const models = listModels(userDir);
  const model = models.find((candidate) => candidate.manifest.id === id);
  if (!model) throw new ModelNotFoundError(`model "${id}" is not installed (installed: ${models.map((m) => m.manifest.id).join(', ') || 'none'})`);
  return model;
}

export function readManifestFile(path: string): ModelManifest {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ManifestError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  return parseManifest(value, path);
}

export function sha256OfFile(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/**
 * Copies a validated model into `userDir/<id>/` (the ONNX file as `model.onnx` with its manifest).
 * Writes into a temporary folder and renames it into place, so a failure leaves nothing half-installed.
 */
export function installModel(onnxFile: string, manifest: ModelManifest, userDir: string): InstalledModel {
  const target = resolve(userDir, manifest.id);
  const staging = `${target}.installing-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    const installed: ModelManifest = { ...manifest, file: 'model.onnx', sha256: sha256OfFile(onnxFile) };
    copyFileSync(onnxFile, join(staging, 'model.onnx'));
    writeFileSync(join(staging, 'manifest.json'), `${JSON.stringify(installed, null, 2)}\n`);
    if (existsSync(target)) rmSync(target, { recursive: true });
    renameSync(staging, target);
    return { manifest: installed, onnxPath: join(target, 'model.onnx'), bundled: false };
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

/** Bytes of a model's ONNX file (for listings). */
export function modelFileBytes(model: InstalledModel): number {
  return existsSync(model.onnxPath) ? statSync(model.onnxPath).size : 0;
}
