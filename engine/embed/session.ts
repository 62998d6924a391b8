/**
 * ONNX Runtime sessions with Tessera's options, on the requested device, each on its own worker
 * thread (see inference-worker.mjs for why).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type ort from 'onnxruntime-node';
import { TesseraError } from '../errors.js';
import { missingCudaDependencies, missingCudaLibraries, onnxRuntimeBinDir, type DeviceRequest, type Provider } from './device.js';

export interface InputMetadata {
  name: string;
  isTensor: boolean;
  type?: string;
  shape: Array<number | string>;
}

export interface OutputTensor {
  type: string;
  dims: readonly number[];
  data: Float32Array;
}

/** An inference session living on a worker thread. */
export class WorkerSession {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  inputNames: readonly string[] = [];
  outputNames: readonly string[] = [];
  inputMetadata: readonly InputMetadata[] = [];

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: { id: number; ok: boolean; result?: unknown; message?: string }) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(message.message));
    });
    worker.on('error', (error) => this.failAll(error));
    worker.on('exit', (code) => this.failAll(new Error(`inference worker exited with code ${code}`)));
  }

  static async open(onnxPath: string, options: ort.InferenceSession.SessionOptions): Promise<WorkerSession> {
    const worker = new Worker(new URL('./inference-worker.mjs', import.meta.url), { workerData: { onnxPath, options } });
    const session = new WorkerSession(worker);
    try {
      const meta = (await session.call({ kind: 'open' })) as Pick<WorkerSession, 'inputNames' | 'outputNames' | 'inputMetadata'>;
      session.inputNames = meta.inputNames;
      session.outputNames = meta.outputNames;
      session.inputMetadata = meta.inputMetadata;
      return session;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
  }

  /** Runs one input tensor through the model; the input buffer moves (or is shared) to the worker. */
  async run(input: string, data: Float32Array, dims: number[], output: string): Promise<OutputTensor> {
    const transfer = data.buffer instanceof ArrayBuffer && data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer] : [];
    return (await this.call({ kind: 'run', input, data, dims, output }, transfer)) as OutputTensor;
  }

  async release(): Promise<void> {
    try {
      await this.call({ kind: 'release' });
    } finally {
      await this.worker.terminate();
    }
  }

  private call(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...message, id }, transfer);
    });
  }

  private failAll(error: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

export interface OpenedSession {
  session: WorkerSession;
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
        const session = await WorkerSession.open(onnxPath, { ...cpuOptions(intraOpThreads), executionProviders: [{ name: 'cuda', deviceId }, 'cpu'] });
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
    return { session: await WorkerSession.open(onnxPath, cpuOptions(intraOpThreads)), provider: 'cpu' };
  } catch (error) {
    throw new TesseraError('MODEL_INVALID', `cannot load ONNX model ${onnxPath.split('/').pop()}: ${(error as Error).message.split('\n')[0]}`, { cause: error });
  }
}
