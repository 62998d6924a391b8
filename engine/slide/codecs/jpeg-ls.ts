/** JPEG-LS decoding (DICOM 1.2.840.10008.1.2.4.80/81) with the CharLS WebAssembly build from Cornerstone. */
import { rgbFromChannels, type RgbImage } from '../rgb-image.js';
import { decodeWasm } from './decode-pool.js';

export async function decodeJpegLs(bytes: Uint8Array): Promise<RgbImage> {
  const decoded = await decodeWasm('jpeg-ls', bytes);
  return rgbFromChannels(decoded.pixels, decoded.width, decoded.height, decoded.components);
}
