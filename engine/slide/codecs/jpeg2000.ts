/**
 * JPEG 2000 decoding (Aperio 33003/33005 tiles, DICOM 1.2.840.10008.1.2.4.90/91/201-203) with the
 * OpenJPEG WebAssembly build from Cornerstone: sharp has no JPEG 2000 decoder.
 */
import { rgbFromChannels, type RgbImage } from '../rgb-image.js';
import { decodeWasm } from './decode-pool.js';

/**
 * Decodes a JPEG 2000 codestream (or JP2 file) to RGB. `ycbcr` is set for Aperio 33003, whose
 * components are YCbCr without a colour transform signalled in the codestream.
 */
export async function decodeJpeg2000(bytes: Uint8Array, ycbcr = false): Promise<RgbImage> {
  const decoded = await decodeWasm('jpeg2000', bytes);
  const image = rgbFromChannels(decoded.pixels, decoded.width, decoded.height, decoded.components);
  if (ycbcr && decoded.components >= 3) rgbFromYcbcrInPlace(image.data);
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
