// The WebAssembly decoders (OpenJPEG for JPEG 2000, CharLS for JPEG-LS), shared by the main thread
// and the decode worker. Plain JavaScript so that worker threads load it without a TypeScript
// loader. Each function returns { pixels: Uint8Array (interleaved), width, height, components }.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const quiet = { print: () => {}, printErr: () => {} };
let jpeg2000;
let jpegLs;

async function decodeWith(decoderPromise, bytes) {
  const decoder = await decoderPromise;
  decoder.getEncodedBuffer(bytes.length).set(bytes);
  decoder.decode();
  const info = decoder.getFrameInfo();
  if (info.bitsPerSample > 8) throw new Error(`${info.bitsPerSample} bits per sample are not supported`);
  // The decoded buffer is a view into WebAssembly memory: copy before the next decode reuses it.
  let pixels = Uint8Array.from(decoder.getDecodedBuffer());
  if (decoder.getInterleaveMode?.() === 0 && info.componentCount > 1) pixels = interleave(pixels, info.width * info.height, info.componentCount);
  return { pixels, width: info.width, height: info.height, components: info.componentCount };
}

function interleave(planar, count, components) {
  const out = new Uint8Array(planar.length);
  for (let c = 0; c < components; c++) for (let i = 0; i < count; i++) out[i * components + c] = planar[c * count + i];
  return out;
}

export function decodeJpeg2000Raw(bytes) {
  jpeg2000 ??= require('@cornerstonejs/codec-openjpeg/decodewasmjs')(quiet).then((module) => new module.J2KDecoder());
  return decodeWith(jpeg2000, bytes);
}

export function decodeJpegLsRaw(bytes) {
  jpegLs ??= require('@cornerstonejs/codec-charls/decodewasmjs')(quiet).then((module) => new module.JpegLSDecoder());
  return decodeWith(jpegLs, bytes);
}

/** Worker entry point (piscina): { codec: 'jpeg2000' | 'jpeg-ls', bytes }. */
export default async function decodeTask({ codec, bytes }) {
  const decoded = await (codec === 'jpeg2000' ? decodeJpeg2000Raw(bytes) : decodeJpegLsRaw(bytes));
  return decoded;
}
