/**
 * Plain JPEG, PNG, WebP and TIFF images as single-level slides (tiles of a tile dataset).
 * The image is decoded once, on first read, and kept as the level's only tile.
 */
import sharp from 'sharp';
import { TesseraError } from '../errors.js';
import { rgbFromChannels } from './rgb-image.js';
import type { SlideSource } from './tiled-slide.js';
import { MAX_REGION_PIXELS } from './tiled-slide.js';

export async function openImage(path: string, name: string, mpp: [number, number] | null): Promise<SlideSource> {
  let width: number;
  let height: number;
  try {
    const metadata = await sharp(path, { limitInputPixels: MAX_REGION_PIXELS }).metadata();
    width = metadata.width ?? 0;
    height = metadata.height ?? 0;
  } catch (error) {
    throw new TesseraError('SLIDE_CORRUPT', `${name}: cannot read image: ${(error as Error).message}`, { cause: error });
  }
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
          // Flatten alpha onto white and convert any colour space (and ICC profile) to sRGB.
          const { data, info } = await sharp(path, { limitInputPixels: MAX_REGION_PIXELS, failOn: 'error' })
            .flatten({ background: '#ffffff' })
            .toColourspace('srgb')
            .raw()
            .toBuffer({ resolveWithObject: true });
          return rgbFromChannels(data, info.width, info.height, info.channels);
        },
      },
    ],
    close: () => {},
  };
}
