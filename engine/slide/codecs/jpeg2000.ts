/**
 * JPEG 2000 decoding (Aperio 33003/33005 tiles, DICOM 1.2.840.10008.1.2.4.90/91) with the
 * OpenJPEG WebAssembly build from Cornerstone: sharp has no JPEG 2000 decoder.
 *
 * The decoder is synchronous WebAssembly: callers that must not block run it in a worker.
 */
import { createRequire } from 'node:module';
import { rgbFromChannels, type RgbImage } from '../rgb-image.js';

interface J2kDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getDecodedBuffer(): Uint8Array;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned: boolean };
}
interface OpenJpegModule {
  J2KDecoder: new () => J2kDecoder;
}

const require = createRequire(import.meta.url);
let decoderPromise: Promise<J2kDecoder> | undefined;

function getDecoder(): Promise<J2kDecoder> {
  decoderPromise ??= (async () => {
    const factory = require('@cornerstonejs/codec-openjpeg/decodewasmjs') as (options?: object) => Promise<OpenJpegModule>;
    // OpenJPEG reports progress on stdout; silence it.
    const module = await factory({ print: () => {}, printErr: () => {} });
    return new module.J2KDecoder();
  })();
  return decoderPromise;
}

/**
 * Decodes a JPEG 2000 codestream (or JP2 file) to RGB. `ycbcr` is set for Aperio 33003, whose
 * components are YCbCr without a colour transform signalled in the codestream.
 */
export async function decodeJpeg2000(bytes: Uint8Array, ycbcr = false): Promise<RgbImage> {
  const decoder = await getDecoder();
  decoder.getEncodedBuffer(bytes.length).set(bytes);
  decoder.decode();
  const info = decoder.getFrameInfo();
  if (info.bitsPerSample > 8) throw new Error(`JPEG 2000 with ${info.bitsPerSample} bits per sample is not supported`);
  // The decoded buffer is a view into WebAssembly memory: copy before the next decode reuses it.
  const pixels = Uint8Array.from(decoder.getDecodedBuffer());
  const image = rgbFromChannels(pixels, info.width, info.height, info.componentCount);
  if (ycbcr && info.componentCount >= 3) rgbFromYcbcrInPlace(image.data);
  return image;
}

/** ITU-R BT.601 full-range YCbCr → RGB, as JPEG uses. */
export function rgbFromYcbcrInPlace(data: Buffer): void {
  for (let i = 0; i < data.length; i += 3) {
    const y = data[i] ?? 0;
    const cb = (data[i + 1] ?? 0) - 128;
    const cr = (data[i + 2] ?? 0) - 128;
    data[i] = clamp(y + 1.402 * cr);
    data[i + 1] = clamp(y - 0.344136 * cb - 0.714136 * cr);
    data[i + 2] = clamp(y + 1.772 * cb);
  }
}

function clamp(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
}
