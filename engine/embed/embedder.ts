/**
 * The Embedder: tiles in, L2-normalized float32 embeddings out, in batches.
 *
 * Preprocessing runs on worker threads and the next batch is prepared while ONNX Runtime runs
 * the current one, so decoding, preprocessing and inference overlap.
 */
import { availableParallelism } from 'node:os';
import type { InstalledModel, ModelManifest } from '../../models/index.js';
import { TesseraError } from '../errors.js';
import type { RgbImage } from '../slide/index.js';
import type { DeviceRequest, Provider } from './device.js';
import { augmentedRef, embedD8 } from './augment.js';
import { poolAndNormalize, pooledDimension } from './pooling.js';
import { PreprocessPool, type PreparedBatch } from './preprocess-pool.js';
import { openSession, type OutputTensor, type WorkerSession } from './session.js';

export interface EmbedderOptions {
  device?: DeviceRequest;
  /** Tiles per inference call (default 32). */
  batchSize?: number;
  /**
   * Sessions running batches side by side (default on CPU: one per core, one thread each; on
   * CUDA: one). Several single-threaded sessions degrade gracefully when decoding and
   * preprocessing take a core for a moment; one session spread over both cores stalls every
   * operator on its slowest thread. Each session holds its own copy of the model.
   */
  sessions?: number;
  /** ONNX Runtime threads per operator in each session (default: cores / sessions). */
  intraOpThreads?: number;
  /** Preprocessing worker threads (default: one per core; 0 preprocesses on the calling thread). */
  preprocessThreads?: number;
}

/** Time spent per stage since the embedder was created, in milliseconds of wall time. */
export interface EmbedderStats {
  tiles: number;
  /** Inference time summed over sessions (can exceed wall time when sessions run side by side). */
  inferenceMs: number;
  /** Time sessions sat idle waiting for preprocessing (zero when preprocessing keeps ahead), summed over sessions. */
  preprocessWaitMs: number;
}

export class Embedder {
  readonly stats: EmbedderStats = { tiles: 0, inferenceMs: 0, preprocessWaitMs: 0 };
  /** Per session, the promise of its last queued batch. */
  private readonly running: Array<Promise<unknown>>;
  /** Per session, batches queued or running. */
  private readonly queued: number[];
  private nextSession = 0;

  private constructor(
    readonly manifest: ModelManifest,
    private readonly sessions: WorkerSession[],
    readonly provider: Provider,
    /** Why `auto` fell back to CPU, if it did. */
    readonly fallbackReason: string | undefined,
    private readonly preprocess: PreprocessPool,
    readonly batchSize: number,
  ) {
    this.running = sessions.map(() => Promise.resolve());
    this.queued = sessions.map(() => 0);
  }

  get dimension(): number {
    return this.manifest.dimension;
  }

  /** How many batches can run at once: callers keep this many in flight to use every session. */
  get parallelism(): number {
    return this.sessions.length;
  }

  /**
   * Loads and validates a model.
   * @throws TesseraError MODEL_INVALID (with the reason), DEVICE_UNAVAILABLE
   */
  static async create(model: InstalledModel, options: EmbedderOptions = {}): Promise<Embedder> {
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) throw new TesseraError('INVALID_ARGUMENT', `batch size must be an integer from 1 to 4096, got ${batchSize}`);
    const device = options.device ?? { kind: 'auto' };
    const cores = availableParallelism();
    const cpuSessions = options.sessions ?? Math.max(1, Math.min(cores, 4));
    const intraOpThreads = options.intraOpThreads ?? Math.max(1, Math.floor(cores / cpuSessions));
    const first = await openSession(model.onnxPath, { device, intraOpThreads });
    const sessions = [first.session];
    try {
      await checkModel(first.session, model.manifest);
      // A GPU runs one batch at a time well; on CPU, more sessions share the cores.
      const count = first.provider === 'cuda' ? (options.sessions ?? 1) : cpuSessions;
      for (let i = 1; i < count; i++) sessions.push((await openSession(model.onnxPath, { device: { kind: first.provider === 'cuda' ? 'cuda' : 'cpu', deviceId: 0 } as DeviceRequest, intraOpThreads })).session);
    } catch (error) {
      await Promise.all(sessions.map((session) => session.release()));
      throw error;
    }
    return new Embedder(model.manifest, sessions, first.provider, first.fallbackReason, new PreprocessPool(options.preprocessThreads), batchSize);
  }

  /**
   * Embeds tiles, in input order. Tiles of any size are resized to the model's input. The tiles'
   * pixel buffers move to the preprocessing threads (zero copy) and are unusable afterwards.
   */
  async embed(images: RgbImage[]): Promise<Float32Array[]> {
    // Every batch is prepared and queued at once: sessions take them in turn, and preprocessing
    // of later batches overlaps inference of earlier ones. Callers bound how many images they pass.
    const batches: Array<Promise<Float32Array[]>> = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      batches.push(this.embedPrepared(this.prepare(images.slice(start, start + this.batchSize))));
    }
    return (await Promise.all(batches)).flat();
  }

  /**
   * Preprocesses tiles on the worker threads (resize, channel order, mean/std) into one batch
   * tensor, without waiting for the model: callers start the next batch's preprocessing while
   * the current one runs. The tiles' pixel buffers move to the workers.
   */
  prepare(images: RgbImage[]): Promise<PreparedBatch> {
    return this.preprocess.batch(images, this.manifest);
  }

  /**
   * Embeds a batch handed to `prepare`. A batch goes to the session with the fewest batches
   * queued (in turn among equals: the indexer's equal batches alternate) and takes its place in
   * that queue now, so a session runs its batches in the order this is called. Strict turns
   * instead sent a query to a busy session while the other sat idle: the API's tail latency.
   * The time a session sat waiting for preprocessing is recorded.
   */
  embedPrepared(prepared: Promise<PreparedBatch>): Promise<Float32Array[]> {
    let index = this.nextSession;
    for (let step = 1; step < this.sessions.length; step++) {
      const candidate = (this.nextSession + step) % this.sessions.length;
      if ((this.queued[candidate] as number) < (this.queued[index] as number)) index = candidate;
    }
    this.nextSession = (index + 1) % this.sessions.length;
    this.queued[index] = (this.queued[index] as number) + 1;
    // Each session runs its batches one at a time, in the order they were queued.
    const run = (this.running[index] as Promise<unknown>).then(async () => {
      const waitStarted = performance.now();
      const batch = await prepared;
      this.stats.preprocessWaitMs += performance.now() - waitStarted;
      return this.infer(this.sessions[index] as WorkerSession, batch);
    });
    this.running[index] = run.catch(() => undefined).finally(() => (this.queued[index] = (this.queued[index] as number) - 1));
    return run;
  }

  /** Runs inference on preprocessed tensors (3 × inputSize² floats each). */
  embedPreprocessed(inputs: Float32Array[]): Promise<Float32Array[]> {
    const length = 3 * this.manifest.inputSize ** 2;
    const data = new Float32Array(inputs.length * length);
    inputs.forEach((input, index) => data.set(input, index * length));
    return this.embedPrepared(Promise.resolve({ data, count: inputs.length }));
  }

  /** What an index built with this embedder records as its model (see augmentedRef). */
  get modelRef(): { id: string; version: string; dimension: number } {
    return augmentedRef(this.manifest);
  }

  private async infer(session: WorkerSession, batch: PreparedBatch): Promise<Float32Array[]> {
    const size = this.manifest.inputSize;
    const started = performance.now();
    const run = async (data: Float32Array, count: number) => {
      const tensor = await session.run(this.manifest.input, data, [count, 3, size, size], this.manifest.output);
      return poolAndNormalize(tensor.data, tensor.dims, this.manifest.pooling, this.manifest.patchTokensFrom);
    };
    const vectors = this.manifest.augment === 'd8' ? await embedD8(batch.data, batch.count, size, this.batchSize, run) : await run(batch.data, batch.count);
    this.stats.inferenceMs += performance.now() - started;
    this.stats.tiles += batch.count;
    return vectors;
  }

  async close(): Promise<void> {
    await this.preprocess.close();
    await Promise.all(this.sessions.map((session) => session.release()));
  }
}

/**
 * Checks that a session matches its manifest: the named input takes [N, 3, S, S] at the manifest's
 * size, the named output exists, and a dummy batch of two pools to the manifest's dimension.
 * @throws TesseraError MODEL_INVALID naming what differs
 */
export async function checkModel(session: WorkerSession, manifest: ModelManifest): Promise<void> {
  const invalid = (reason: string): never => {
    throw new TesseraError('MODEL_INVALID', `model ${manifest.id}: ${reason}`);
  };
  if (!session.inputNames.includes(manifest.input)) invalid(`has no input "${manifest.input}" (its inputs: ${session.inputNames.join(', ')})`);
  if (!session.outputNames.includes(manifest.output)) invalid(`has no output "${manifest.output}" (its outputs: ${session.outputNames.join(', ')})`);
  const inputMeta = session.inputMetadata.find((meta) => meta.name === manifest.input);
  if (inputMeta && inputMeta.isTensor) {
    const shape = inputMeta.shape;
    if (shape.length !== 4) invalid(`input "${manifest.input}" has ${shape.length} dimensions; expected [batch, 3, ${manifest.inputSize}, ${manifest.inputSize}]`);
    const [, channels, height, width] = shape;
    if (typeof channels === 'number' && channels !== 3) invalid(`input "${manifest.input}" takes ${channels} channels; expected 3`);
    for (const side of [height, width]) {
      if (typeof side === 'number' && side !== manifest.inputSize) invalid(`input "${manifest.input}" is ${height}×${width} but the manifest says inputSize ${manifest.inputSize}`);
    }
    if (inputMeta.type !== 'float32') invalid(`input "${manifest.input}" is ${inputMeta.type}; expected float32`);
  }
  const size = manifest.inputSize;
  let output: OutputTensor;
  try {
    output = await session.run(manifest.input, new Float32Array(2 * 3 * size * size), [2, 3, size, size], manifest.output);
  } catch (error) {
    return invalid(`fails on a test batch of 2 × 3 × ${size} × ${size}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (output.type !== 'float32') invalid(`output "${manifest.output}" is ${output.type}; expected float32`);
  if (output.dims[0] !== 2) invalid(`output "${manifest.output}" has batch dimension ${output.dims[0]} for a batch of 2 (is the batch axis dynamic?)`);
  const dimension = pooledDimension(output.dims, manifest.pooling);
  if (dimension !== manifest.dimension) {
    invalid(`output "${manifest.output}" has shape [${output.dims.join(', ')}], which pools (${manifest.pooling}) to ${dimension < 0 ? 'nothing' : dimension}; the manifest says dimension ${manifest.dimension}`);
  }
}
