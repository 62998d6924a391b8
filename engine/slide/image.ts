/**
 * Plain JPEG, PNG, WebP and TIFF images as single-level slides (tiles of a tile dataset).
 * The image is decoded once, on first read, and kept as the level's only tile.
 *
 * A plain JPEG (8-bit Huffman, grey or YCbCr, no ICC profile or Adobe colour transform) is
 * decoded by the native libjpeg-turbo binding with its size read from the header: sharp's
 * metadata call and per-call pipeline cost more than decoding a 224² tile (3.1 ms of CPU an
 * LC25000 image in bench:index, against 4.3 ms for the model), and give the same pixels (all
 * 1,890 images of the shared LC25000 set compared equal). Anything else goes through sharp,
 * which converts colour spaces and profiles to sRGB.
 */
import { open } from 'node:fs/promises';
import sharp from 'sharp';
import { TesseraError } from '../errors.js';
import { decodeJpeg, hasNativeJpeg } from './codecs/jpeg.js';
import { rgbFromChannels, type RgbImage } from './rgb-image.js';
import type { SlideSource } from './tiled-slide.js';
import { MAX_REGION_PIXELS } from './tiled-slide.js';

export async function openImage(path: string, name: string, mpp: [number, number] | null): Promise<SlideSource> {
  const plain = hasNativeJpeg ? plainJpegSize(await readHead(path)) : null;
  if (plain) return imageSource(path, name, mpp, plain.width, plain.height, async () => decodeJpeg(await readWhole(path)));
  let width: number;
  let height: number;
  try {
    const metadata = await sharp(path, { limitInputPixels: MAX_REGION_PIXELS }).metadata();
    width = metadata.width ?? 0;
    height = metadata.height ?? 0;
  } catch (error) {
    throw new TesseraError('SLIDE_CORRUPT', `${name}: cannot read image: ${(error as Error).message}`, { cause: error });
  }
  return imageSource(path, name, mpp, width, height, async () => {
    // Flatten alpha onto white and convert any colour space (and ICC profile) to sRGB.
    const { data, info } = await sharp(path, { limitInputPixels: MAX_REGION_PIXELS, failOn: 'error' })
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    return rgbFromChannels(data, info.width, info.height, info.channels);
  });
}

function imageSource(path: string, name: string, mpp: [number, number] | null, width: number, height: number, decode: () => Promise<RgbImage>): SlideSource {
  if (width * height > MAX_REGION_PIXELS) {
    throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: plain image of ${width}×${height} px is larger than ${MAX_REGION_PIXELS} pixels; store large images as pyramidal TIFF`);
  }
  return {
    format: 'image',
    vendor: 'image',
    mpp,
    objectivePower: null,
    associatedImages: [],
    properties: {},
    levels: [
      {
        level: { width, height, downsample: 1, tileWidth: width, tileHeight: height },
        async readTile(col, row) {
          if (col !== 0 || row !== 0) return null;
          const image = await decode();
          if (image.width !== width || image.height !== height) throw new TesseraError('SLIDE_CORRUPT', `${name}: decoded to ${image.width}×${image.height} px, its header says ${width}×${height}`);
          return image;
        },
      },
    ],
    close: () => {},
  };
}

/** The first 64 KiB of a file: where a JPEG's frame header lies after any EXIF or XMP block. */
async function readHead(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const head = Buffer.alloc(65_536);
    const { bytesRead } = await file.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

async function readWhole(path: string): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    return await file.readFile();
  } finally {
    await file.close();
  }
}

/**
 * Width and height of a JPEG that libjpeg decodes to the same sRGB pixels as sharp: 8-bit
 * baseline, extended or progressive Huffman, one or three components, no ICC profile (APP2) and
 * no Adobe colour transform marker (APP14). Null for anything else, or a header beyond `head`.
 */
function plainJpegSize(head: Buffer): { width: number; height: number } | null {
  if (head[0] !== 0xff || head[1] !== 0xd8) return null;
  let at = 2;
  while (at + 4 <= head.length) {
    if (head[at] !== 0xff) return null;
    const marker = head[at + 1] as number;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = head.readUInt16BE(at + 2);
    const body = at + 4;
    if (marker === 0xe2 && head.toString('latin1', body, body + 11) === 'ICC_PROFILE') return null;
    if (marker === 0xee) return null;
    if (marker === 0xc0 || marker === 0xc1 || marker === 0xc2) {
      if (body + 6 > head.length) return null;
      const precision = head[body];
      const height = head.readUInt16BE(body + 1);
      const width = head.readUInt16BE(body + 3);
      const components = head[body + 5];
      return precision === 8 && (components === 1 || components === 3) && width > 0 && height > 0 ? { width, height } : null;
    }
    // Other frame types (lossless, hierarchical, arithmetic coding), or scan data before a frame.
    if ((marker >= 0xc3 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) || marker === 0xda) return null;
    at = body + length - 2;
  }
  return null;
}
