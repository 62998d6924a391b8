// Tile preprocessing: RGB bytes → normalized float32 CHW, the layout ONNX vision encoders take.
// Plain JavaScript so that piscina worker threads load it without a TypeScript loader; the main
// thread imports the same function (preprocess.d.mts gives its types).
import sharp from 'sharp';

sharp.concurrency(1);
sharp.cache(false);

/**
 * @param {{ pixels: Uint8Array, width: number, height: number, spec: { inputSize: number, resizeTo?: number, channelOrder: 'RGB' | 'BGR', mean: number[], std: number[] } }} task
 * @returns {Promise<Float32Array>} 3 × inputSize × inputSize values
 */
export async function preprocessTile({ pixels, width, height, spec }) {
  const size = spec.inputSize;
  let rgb = pixels;
  if (width !== size || height !== size) {
    const resized = spec.resizeTo ?? size;
    let pipeline = sharp(pixels, { raw: { width, height, channels: 3 } }).resize(resized, resized, { fit: 'fill' });
    if (resized !== size) {
      const offset = Math.floor((resized - size) / 2);
      pipeline = pipeline.extract({ left: offset, top: offset, width: size, height: size });
    }
    rgb = await pipeline.raw().toBuffer();
  }
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  // value / 255 → (v - mean) / std, folded into one multiply-add per sample.
  const order = spec.channelOrder === 'BGR' ? [2, 1, 0] : [0, 1, 2];
  for (let c = 0; c < 3; c++) {
    const source = order[c];
    const scale = 1 / (255 * spec.std[c]);
    const offset = -spec.mean[c] / spec.std[c];
    const base = c * plane;
    for (let i = 0, p = source; i < plane; i++, p += 3) out[base + i] = rgb[p] * scale + offset;
  }
  return out;
}

/** Worker entry point (piscina): returns the buffer by transfer. */
export default async function preprocessTask(task) {
  const { move } = await import('piscina');
  return move(await preprocessTile(task));
}
