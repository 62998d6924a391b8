/**
 * Baseline JPEG tiles: splicing TIFF JPEGTables into abbreviated tile streams, and decoding a
 * whole tile or only part of it.
 *
 * Decoding prefers the native libjpeg-turbo binding (native/jpeg_region.c), which decodes just
 * the rows and columns a region needs and has no per-call pipeline to build; without it (no
 * compiler at install time), sharp decodes whole tiles and crops.
 */
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { rgbFromChannels, type RgbImage } from '../rgb-image.js';

// Small tiles gain nothing from libvips' own threads; parallelism comes from decoding several
// tiles at once on libuv's pool. Caching operations would pin input buffers in memory.
sharp.concurrency(1);
sharp.cache(false);

/** A part of a tile, in the tile's pixels. */
export interface TileCrop {
  x: number;
  y: number;
  width: number;
  height: number;
}

interface NativeDecoder {
  decodeRegion(jpeg: Buffer, x: number, y: number, width: number, height: number, scaleDenom?: number): Promise<RgbImage>;
}

const nativeBuild = ((): NativeDecoder | null => {
  try {
    return createRequire(import.meta.url)('./native/build/Release/jpeg_region.node') as NativeDecoder;
  } catch {
    return null;
  }
})();

let native = nativeBuild;

/** True when the native partial decoder is built; benchmarks and logs report it. */
export const hasNativeJpeg = nativeBuild !== null;

/** Turns the native decoder off (sharp decodes everything) or back on where it is built. */
export function useNativeJpeg(enabled: boolean): void {
  native = enabled ? nativeBuild : null;
}

const SOI = Buffer.from([0xff, 0xd8]);
// APP14 "Adobe" with transform = 0: tells libjpeg the three components are RGB, not YCbCr.
const ADOBE_RGB = Buffer.from([0xff, 0xee, 0x00, 0x0e, 0x41, 0x64, 0x6f, 0x62, 0x65, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);

/**
 * Builds a complete JPEG stream from an abbreviated TIFF tile and the TIFF's JPEGTables.
 * `rgb` marks Photometric RGB data (Aperio): without the Adobe marker libjpeg would treat it as
 * YCbCr and every colour would be wrong.
 */
export function spliceJpeg(tile: Uint8Array, tables: Uint8Array | undefined, rgb: boolean): Buffer {
  const parts: Uint8Array[] = [SOI];
  if (rgb) parts.push(ADOBE_RGB);
  // Tables are SOI ... EOI; the tile is SOI ... EOI: keep what lies between the markers.
  if (tables && tables.length > 4) parts.push(tables.subarray(2, tables.length - 2));
  parts.push(hasSoi(tile) ? tile.subarray(2) : tile);
  return Buffer.concat(parts);
}

function hasSoi(bytes: Uint8Array): boolean {
  return bytes[0] === 0xff && bytes[1] === 0xd8;
}

/**
 * Decodes a complete JPEG stream to RGB: all of it, or only `crop` (clamped to the image).
 * Rejects with the decoder's message on corrupt data.
 */
export async function decodeJpeg(jpeg: Buffer, crop?: TileCrop): Promise<RgbImage> {
  if (native) return native.decodeRegion(jpeg, crop?.x ?? 0, crop?.y ?? 0, crop?.width ?? 0x7fffffff, crop?.height ?? 0x7fffffff);
  let pipeline = sharp(jpeg, { failOn: 'error' });
  if (crop) {
    const { width = 0, height = 0 } = await pipeline.metadata();
    const left = Math.max(0, crop.x);
    const top = Math.max(0, crop.y);
    pipeline = pipeline.extract({ left, top, width: Math.min(crop.width, width - left), height: Math.min(crop.height, height - top) });
  }
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  return rgbFromChannels(data, info.width, info.height, info.channels);
}

/**
 * Decodes a `width × height` JPEG at 1/`shrink` of its size (sizes rounded up, as libjpeg does),
 * scaled in the DCT domain by the native decoder: about a quarter of a full decode's cost, for
 * views of a whole slide. Without the native decoder (or with a build from before it could scale)
 * the tile is decoded whole and resized.
 */
export async function decodeJpegShrunk(jpeg: Buffer, shrink: 2 | 4 | 8, width: number, height: number): Promise<RgbImage> {
  const shrunkWidth = Math.ceil(width / shrink);
  const shrunkHeight = Math.ceil(height / shrink);
  const decoded = native ? await native.decodeRegion(jpeg, 0, 0, 0x7fffffff, 0x7fffffff, shrink) : await decodeJpeg(jpeg);
  if (decoded.width === shrunkWidth && decoded.height === shrunkHeight) return decoded;
  const data = await sharp(decoded.data, { raw: { width: decoded.width, height: decoded.height, channels: 3 } }).resize(shrunkWidth, shrunkHeight, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
  return { data, width: shrunkWidth, height: shrunkHeight };
}
