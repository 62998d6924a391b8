/**
 * The Embedder: tiles in, L2-normalized float32 embeddings out, in batches.
 *
 * Preprocessing runs on worker threads and the next batch is prepared while ONNX Runtime runs
 * the current one, so decoding, preprocessing and inference overlap.
 */
import ort from 'onnxruntime-node';
import type { InstalledModel, ModelManifest } from '../../models/index.js';
import { TesseraError } from '../errors.js';
import type { RgbImage } from '../slide/index.js';
import type { DeviceRequest, Provider } from './device.js';
import { poolAndNormalize, pooledDimension } from './pooling.js';
import { PreprocessPool } from './preprocess-pool.js';
import { openSession } from './session.js';

export interface EmbedderOptions {
  device?: DeviceRequest;
  /** Tiles per inference call (default 32). */
  batchSize?: number;
  /** ONNX Runtime threads per operator (default: every core). */
  intraOpThreads?: number;
  /** Preprocessing worker threads (default cores − 1; 0 preprocesses on the calling thread). */
  preprocessThreads?: number;
}

/** Time spent per stage since the embedder was created, in milliseconds of wall time. */
export interface EmbedderStats {
  tiles: number;
  inferenceMs: number;
  /** Time inference waited for preprocessing (zero when preprocessing keeps ahead). */
  preprocessWaitMs: number;
}

export class Embedder {
  readonly stats: EmbedderStats = { tiles: 0, inferenceMs: 0, preprocessWaitMs: 0 };
  private running: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly manifest: ModelManifest,
    private readonly session: ort.InferenceSession,
    readonly provider: Provider,
    /** Why `auto` fell back to CPU, if it did. */
    readonly fallbackReason: string | undefined,
    private readonly preprocess: PreprocessPool,
    readonly batchSize: number,
  ) {}

  get dimension(): number {
    return this.manifest.dimension;
  }

  /**
   * Loads and validates a model.
   * @throws TesseraError MODEL_INVALID (with the reason), DEVICE_UNAVAILABLE
   */
  static async create(model: InstalledModel, options: EmbedderOptions = {}): Promise<Embedder> {
    const batchSize = options.batchSize ?? 32;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) throw new TesseraError('INVALID_ARGUMENT', `batch size must be an integer from 1 to 4096, got ${batchSize}`);
    const opened = await openSession(model.onnxPath, { device: options.device ?? { kind: 'auto' }, ...(options.intraOpThreads ? { intraOpThreads: options.intraOpThreads } : {}) });
    try {
      await checkModel(opened.session, model.manifest);
    } catch (error) {
      await opened.session.release();
      throw error;
    }
    return new Embedder(model.manifest, opened.session, opened.provider, opened.fallbackReason, new PreprocessPool(options.preprocessThreads), batchSize);
  }

  /**
   * Embeds tiles, in input order. Tiles of any size are resized to the model's input. The tiles'
   * pixel buffers move to the preprocessing threads (zero copy) and are unusable afterwards.
   */
  async embed(images: RgbImage[]): Promise<Float32Array[]> {
    const spec = this.manifest;
    const results: Float32Array[] = [];
    const prepare = (start: number) => (start < images.length ? Promise.all(images.slice(start, start + this.batchSize).map((image) => this.preprocess.run(image, spec))) : null);
    let next = prepare(0);
    for (let start = 0; start < images.length; start += this.batchSize) {
      const waitStarted = performance.now();
      const inputs = await (next as Promise<Float32Array[]>);
      this.stats.preprocessWaitMs += performance.now() - waitStarted;
      next = prepare(start + this.batchSize);
      results.push(...(await this.embedPreprocessed(inputs)));
    }
    return results;
  }

  /** Runs inference on preprocessed inputs (3 × inputSize² floats each). One call at a time per session. */
  async embedPreprocessed(inputs: Float32Array[]): Promise<Float32Array[]> {
    const previous = this.running;
    const run = previous.then(() => this.infer(inputs));
    this.running = run.catch(() => undefined);
    return run;
  }

  private async infer(inputs: Float32Array[]): Promise<Float32Array[]> {
    const size = this.manifest.inputSize;
    const perTile = 3 * size * size;
    const batch = new Float32Array(inputs.length * perTile);
    inputs.forEach((input, index) => batch.set(input, index * perTile));
    const started = performance.now();
    const output = await this.session.run({ [this.manifest.input]: new ort.Tensor('float32', batch, [inputs.length, 3, size, size]) }, [this.manifest.output]);
    this.stats.inferenceMs += performance.now() - started;
    this.stats.tiles += inputs.length;
    const tensor = output[this.manifest.output] as ort.Tensor;
    return poolAndNormalize(tensor.data as Float32Array, tensor.dims, this.manifest.pooling, this.manifest.patchTokensFrom);
  }

  async close(): Promise<void> {
    await this.preprocess.close();
    await this.session.release();
  }
}

/**
 * Checks that a session matches its manifest: the named input takes [N, 3, S, S] at the manifest's
 * size, the named output exists, and a dummy batch of two pools to the manifest's dimension.
 * @throws TesseraError MODEL_INVALID naming what differs
 */
export async function checkModel(session: ort.InferenceSession, manifest: ModelManifest): Promise<void> {
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
  let output: ort.Tensor;
  try {
    const result = await session.run({ [manifest.input]: new ort.Tensor('float32', new Float32Array(2 * 3 * size * size), [2, 3, size, size]) }, [manifest.output]);
    output = result[manifest.output] as ort.Tensor;
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
