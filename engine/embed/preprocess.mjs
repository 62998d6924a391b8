// Tile preprocessing: RGB bytes → normalized float32 CHW, the layout ONNX vision encoders take.
// Plain JavaScript so that piscina worker threads load it without a TypeScript loader; the main
// thread imports the same function (preprocess.d.mts gives its types).
import { createRequire } from 'node:module';

// The compiled loop (engine/slide/codecs/native) when it is built; the JavaScript loop otherwise.
const native = (() => {
  try {
    return createRequire(import.meta.url)('../slide/codecs/native/build/Release/jpeg_region.node');
  } catch {
    return null;
  }
})();

// sharp is loaded on the first resize only: a worker that only normalizes starts in milliseconds.
let sharpModule;
async function loadSharp() {
  if (!sharpModule) {
    sharpModule = (await import('sharp')).default;
    sharpModule.concurrency(1);
    sharpModule.cache(false);
  }
  return sharpModule;
}

/**
 * Writes 3 × inputSize × inputSize values into `out` (a view of a batch tensor) when given,
 * else into a new array, and returns that array.
 * @param {{ pixels: Uint8Array, width: number, height: number, spec: { inputSize: number, resizeTo?: number, channelOrder: 'RGB' | 'BGR', mean: number[], std: number[] }, out?: Float32Array }} task
 * @returns {Promise<Float32Array>}
 */
export async function preprocessTile({ pixels, width, height, spec, out: target }) {
  const size = spec.inputSize;
  let rgb = pixels;
  if (width !== size || height !== size) {
    const resized = spec.resizeTo ?? size;
    const sharp = await loadSharp();
    let pipeline = sharp(pixels, { raw: { width, height, channels: 3 } }).resize(resized, resized, { fit: 'fill' });
    if (resized !== size) {
      const offset = Math.floor((resized - size) / 2);
      pipeline = pipeline.extract({ left: offset, top: offset, width: size, height: size });
    }
    rgb = await pipeline.raw().toBuffer();
  }
  const plane = size * size;
  const out = target ?? new Float32Array(3 * plane);
  // value / 255 → (v - mean) / std, folded into one multiply-add per sample.
  const scales = Float32Array.from([0, 1, 2], (c) => 1 / (255 * spec.std[c]));
  const offsets = Float32Array.from([0, 1, 2], (c) => -spec.mean[c] / spec.std[c]);
  if (native && rgb.length === 3 * plane) {
    native.normalizeTile(rgb, out, scales, offsets, spec.channelOrder === 'BGR');
    return out;
  }
  const order = spec.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) {
    const source = order[c];
    const scale = scales[c];
    const offset = offsets[c];
    const base = c * plane;
    for (let i = 0, p = source; i < plane; i++, p += 3) out[base + i] = rgb[p] * scale + offset;
  }
  return out;
}

/**
 * Worker entry point (piscina). The task names a slot of a shared batch tensor
 * ({ batch: SharedArrayBuffer, offset, length } in floats): the worker writes there and returns
 * nothing, so no tensor is copied or transferred back.
 */
export default async function preprocessTask({ batch, offset, length, ...task }) {
  await preprocessTile({ ...task, out: new Float32Array(batch, offset * 4, length) });
}
