/**
 * Preprocessing on worker threads (piscina), so that the main thread keeps decoding tiles and
 * feeding ONNX Runtime while pixels are resized and normalized. Pixel buffers go to the worker by
 * transfer when they own their memory (no copy), and the float tensors come back by transfer.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { RgbImage } from '../slide/index.js';
import { preprocessTile, type PreprocessSpec } from './preprocess.mjs';

export class PreprocessPool {
  private readonly pool: Piscina | null;

  /** `threads` 0 preprocesses on the calling thread (tests, one-off CLI calls). */
  constructor(threads = Math.max(1, availableParallelism() - 1)) {
    this.pool =
      threads > 0
        ? new Piscina({ filename: fileURLToPath(new URL('./preprocess.mjs', import.meta.url)), minThreads: 1, maxThreads: threads, idleTimeout: 10_000 })
        : null;
  }

  async run(image: RgbImage, spec: PreprocessSpec): Promise<Float32Array> {
    const task = { width: image.width, height: image.height, spec };
    if (!this.pool) return preprocessTile({ ...task, pixels: image.data });
    const data = image.data;
    // A Buffer that owns its whole ArrayBuffer can move; one inside a shared slab must be copied.
    const ownsMemory = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    const pixels = ownsMemory ? new Uint8Array(data.buffer) : Uint8Array.from(data);
    try {
      return (await this.pool.run({ ...task, pixels }, { transferList: [pixels.buffer as ArrayBuffer] })) as Float32Array;
    } catch (error) {
      // External memory (native decoders) cannot be transferred: send a copy instead.
      if (ownsMemory && error instanceof Error && /transfer|detach/i.test(error.message)) {
        const copy = Uint8Array.from(data);
        return (await this.pool.run({ ...task, pixels: copy }, { transferList: [copy.buffer] })) as Float32Array;
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}
