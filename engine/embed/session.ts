/**
 * ONNX Runtime sessions with Tessera's options, on the requested device.
 */
import { availableParallelism } from 'node:os';
import ort from 'onnxruntime-node';
import { TesseraError } from '../errors.js';
import { missingCudaDependencies, missingCudaLibraries, onnxRuntimeBinDir, type DeviceRequest, type Provider } from './device.js';

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: Provider;
  /** Why `auto` fell back to CPU, for the caller to report; undefined otherwise. */
  fallbackReason?: string;
}

export interface SessionOptions {
  device: DeviceRequest;
  /** Threads inside one operator (CPU); defaults to every core. */
  intraOpThreads?: number;
}

function cpuOptions(intraOpThreads: number): ort.InferenceSession.SessionOptions {
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    // Errors reach the caller as exceptions with their message; ONNX Runtime's own log would
    // print them a second time, unstructured.
    logSeverityLevel: 4,
    intraOpNumThreads: intraOpThreads,
    // One request at a time per session: inter-op parallelism only adds thread contention.
    interOpNumThreads: 1,
    enableCpuMemArena: true,
    enableMemPattern: true,
  };
}

/**
 * Opens a session. `cuda` fails with DEVICE_UNAVAILABLE naming the missing library; `auto` uses
 * CUDA when it loads and otherwise CPU, saying why in `fallbackReason`.
 */
export async function openSession(onnxPath: string, options: SessionOptions): Promise<OpenedSession> {
  const intraOpThreads = options.intraOpThreads ?? availableParallelism();
  const { device } = options;
  if (device.kind !== 'cpu') {
    const deviceId = device.kind === 'cuda' ? device.deviceId : 0;
    const missing = missingCudaLibraries();
    const missingSystem = missing.length > 0 ? [] : missingCudaDependencies();
    let reason: string;
    if (missing.length > 0) {
      reason = `CUDA provider libraries missing from ${onnxRuntimeBinDir()}: ${missing.join(', ')} (run "npm run setup:cuda")`;
    } else if (missingSystem.length > 0) {
      reason = `the CUDA provider needs libraries the loader cannot find: ${missingSystem.join(', ')} (install CUDA 13 and cuDNN 9, or add their folders to LD_LIBRARY_PATH)`;
    } else {
      try {
        const session = await ort.InferenceSession.create(onnxPath, {
          ...cpuOptions(intraOpThreads),
          executionProviders: [{ name: 'cuda', deviceId }, 'cpu'],
        });
        return { session, provider: 'cuda' };
      } catch (error) {
        // ONNX Runtime names the library that failed to load (libcudart, libcudnn, libcublas…).
        reason = `CUDA provider failed to load: ${(error as Error).message.split('\n')[0]}`;
      }
    }
    if (device.kind === 'cuda') throw new TesseraError('DEVICE_UNAVAILABLE', `device cuda:${deviceId} requested but unavailable: ${reason}`);
    const opened = await openCpu(onnxPath, intraOpThreads);
    return { ...opened, fallbackReason: reason };
  }
  return openCpu(onnxPath, intraOpThreads);
}

async function openCpu(onnxPath: string, intraOpThreads: number): Promise<OpenedSession> {
  try {
    return { session: await ort.InferenceSession.create(onnxPath, cpuOptions(intraOpThreads)), provider: 'cpu' };
  } catch (error) {
    throw new TesseraError('MODEL_INVALID', `cannot load ONNX model ${onnxPath.split('/').pop()}: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
}
