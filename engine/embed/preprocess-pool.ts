/**
 * Preprocessing on worker threads (piscina), so that the main thread keeps reading tiles while
 * pixels are resized and normalized. Pixel buffers go to the workers by transfer when they own
 * their memory, and the workers write straight into a shared batch tensor: nothing is copied
 * back.
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { RgbImage } from '../slide/index.js';
import { preprocessTile, type PreprocessSpec } from './preprocess.mjs';

/** A batch of preprocessed tiles: `count` tensors of 3 × size × size floats, back to back. */
export interface PreparedBatch {
  data: Float32Array;
  count: number;
}

export class PreprocessPool {
  private readonly pool: Piscina | null;

  /** `threads` 0 preprocesses on the calling thread (tests, one-off CLI calls). */
  constructor(threads = availableParallelism()) {
    this.pool =
      threads > 0
        ? new Piscina({ filename: fileURLToPath(new URL('./preprocess.mjs', import.meta.url)), minThreads: 1, maxThreads: threads, idleTimeout: 10_000 })
        : null;
  }

  /** Preprocesses images into one batch tensor. The images' pixel buffers move to the workers. */
  async batch(images: RgbImage[], spec: PreprocessSpec): Promise<PreparedBatch> {
    const length = 3 * spec.inputSize * spec.inputSize;
    if (!this.pool) {
      const data = new Float32Array(images.length * length);
      for (const [index, image] of images.entries()) {
        await preprocessTile({ pixels: image.data, width: image.width, height: image.height, spec, out: data.subarray(index * length, (index + 1) * length) });
      }
      return { data, count: images.length };
    }
    const pool = this.pool;
    const shared = new SharedArrayBuffer(images.length * length * 4);
    await Promise.all(
      images.map((image, index) => {
        const pixels = movablePixels(image.data);
        return pool.run({ pixels, width: image.width, height: image.height, spec, batch: shared, offset: index * length, length }, { transferList: pixels === image.data ? [] : [pixels.buffer as ArrayBuffer] });
      }),
    );
    return { data: new Float32Array(shared), count: images.length };
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}

/**
 * A Buffer that owns its whole ArrayBuffer moves without a copy (a view of it is returned for the
 * transfer list); one inside a shared slab or external memory is sent as is (structured-clone copy).
 */
function movablePixels(data: Buffer): Uint8Array {
  const owns = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
  return owns ? new Uint8Array(data.buffer) : data;
}
