/**
 * Execution providers. CPU always works. CUDA needs the provider libraries that the npm package
 * of onnxruntime-node does not ship (its installer downloads them; `npm run setup:cuda` copies
 * them from an npm package instead) plus the CUDA and cuDNN runtime of the machine.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TesseraError } from '../errors.js';

export type DeviceRequest = { kind: 'auto' } | { kind: 'cpu' } | { kind: 'cuda'; deviceId: number };
export type Provider = 'cpu' | 'cuda';

export const CUDA_PROVIDER_LIBRARIES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'] as const;

/** Parses `auto`, `cpu`, `cuda` or `cuda:N`. */
export function parseDevice(value: string): DeviceRequest {
  if (value === 'auto' || value === 'cpu') return { kind: value };
  const match = /^cuda(?::(\d+))?$/.exec(value);
  if (match) return { kind: 'cuda', deviceId: Number(match[1] ?? 0) };
  throw new TesseraError('INVALID_ARGUMENT', `device must be auto, cpu, cuda or cuda:N, got "${value}"`);
}

/** The folder holding onnxruntime-node's native binding and libonnxruntime.so. */
export function onnxRuntimeBinDir(): string {
  const packageJson = createRequire(import.meta.url).resolve('onnxruntime-node/package.json');
  return join(dirname(packageJson), 'bin', 'napi-v6', process.platform, process.arch);
}

/** The CUDA provider libraries missing beside libonnxruntime, by file name. */
export function missingCudaLibraries(binDir = onnxRuntimeBinDir()): string[] {
  return CUDA_PROVIDER_LIBRARIES.filter((library) => !existsSync(join(binDir, library)));
}

/**
 * Shared libraries the CUDA provider needs that the dynamic loader cannot find (libcudart,
 * libcublas, libcudnn, libcuda…), from `ldd`. Empty when all resolve or ldd is unavailable.
 */
export function missingCudaDependencies(binDir = onnxRuntimeBinDir()): string[] {
  try {
    const report = execFileSync('ldd', [join(binDir, 'libonnxruntime_providers_cuda.so')], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    return report
      .split('\n')
      .filter((line) => line.includes('not found'))
      .map((line) => line.trim().split(/\s/)[0] ?? line.trim());
  } catch {
    return [];
  }
}
