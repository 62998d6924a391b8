/** JPEG-LS decoding (DICOM 1.2.840.10008.1.2.4.80/81) with the CharLS WebAssembly build from Cornerstone. */
import { createRequire } from 'node:module';
import { rgbFromChannels, type RgbImage } from '../rgb-image.js';

interface JlsDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getInterleaveMode(): number;
}
interface CharlsModule {
  JpegLSDecoder: new () => JlsDecoder;
}

const require = createRequire(import.meta.url);
let decoderPromise: Promise<JlsDecoder> | undefined;

function getDecoder(): Promise<JlsDecoder> {
  decoderPromise ??= (async () => {
    const factory = require('@cornerstonejs/codec-charls/decodewasmjs') as (options?: object) => Promise<CharlsModule>;
    // OpenJPEG reports progress on stdout; silence it.
    const module = await factory({ print: () => {}, printErr: () => {} });
    return new module.JpegLSDecoder();
  })();
  return decoderPromise;
}

export async function decodeJpegLs(bytes: Uint8Array): Promise<RgbImage> {
  const decoder = await getDecoder();
  decoder.getEncodedBuffer(bytes.length).set(bytes);
  decoder.decode();
  const info = decoder.getFrameInfo();
  if (info.bitsPerSample > 8) throw new Error(`JPEG-LS with ${info.bitsPerSample} bits per sample is not supported`);
  let pixels: Uint8Array = Uint8Array.from(decoder.getDecodedBuffer());
  // Interleave mode 0 (planar) stores each component whole; make it pixel-interleaved.
  if (info.componentCount > 1 && decoder.getInterleaveMode() === 0) pixels = interleave(pixels, info.width * info.height, info.componentCount);
  return rgbFromChannels(pixels, info.width, info.height, info.componentCount);
}

function interleave(planar: Uint8Array, count: number, components: number): Uint8Array {
  const out = new Uint8Array(planar.length);
  for (let c = 0; c < components; c++) {
    for (let i = 0; i < count; i++) out[i * components + c] = planar[c * count + i] ?? 0;
  }
  return out;
}
