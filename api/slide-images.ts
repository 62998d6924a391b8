/**
 * Pixels of indexed slides for the viewer and result galleries: thumbnails, regions and Deep Zoom
 * tiles, encoded with sharp. Only the pyramid is ever read: associated images (label, macro) carry
 * patient names and are never served.
 */
import sharp from 'sharp';
import type { RgbImage, Slide } from '../engine/index.js';
import { ApiError } from './errors.js';

export const DZI_TILE_PX = 256;
const MAX_OUTPUT_SIDE = 2048;

export type ImageFormat = 'jpeg' | 'png';

export async function encode(data: Buffer, width: number, height: number, format: ImageFormat, outWidth = width, outHeight = height): Promise<Buffer> {
  let pipeline = sharp(data, { raw: { width, height, channels: 3 } });
  if (outWidth !== width || outHeight !== height) pipeline = pipeline.resize(outWidth, outHeight, { fit: 'fill' });
  return format === 'png' ? pipeline.png({ compressionLevel: 6 }).toBuffer() : pipeline.jpeg({ quality: 82, mozjpeg: false }).toBuffer();
}

/** The slide scaled to fit `size` px. */
export async function thumbnail(slide: Slide, size: number): Promise<Buffer> {
  const image = await slide.thumbnail(size);
  return encode(image.data, image.width, image.height, 'jpeg');
}

/**
 * A region in level-0 pixels, fitted into `size` px (read from the coarsest adequate level), or
 * read at pyramid level `level`. @throws ApiError PAYLOAD_TOO_LARGE past 2048 px a side; TesseraError REGION_*, LEVEL_INVALID
 */
export async function region(slide: Slide, rect: { x: number; y: number; width: number; height: number }, options: { size?: number | undefined; level?: number | undefined; format: ImageFormat }): Promise<Buffer> {
  if (options.level !== undefined) {
    const level = slide.levels[options.level];
    if (!level) throw new ApiError('LEVEL_INVALID', `level ${options.level} does not exist; the slide has levels 0 to ${slide.levels.length - 1}`);
    const outWidth = Math.max(1, Math.round(rect.width / level.downsample));
    const outHeight = Math.max(1, Math.round(rect.height / level.downsample));
    if (outWidth > MAX_OUTPUT_SIDE || outHeight > MAX_OUTPUT_SIDE) throw new ApiError('REGION_TOO_LARGE', `at level ${options.level} the region is ${outWidth}×${outHeight} px; at most ${MAX_OUTPUT_SIDE} px a side: pick a coarser level or use size`);
    const image = await slide.readRegion(options.level, rect.x, rect.y, outWidth, outHeight);
    return encode(image.data, image.width, image.height, options.format);
  }
  const size = options.size ?? Math.min(Math.max(rect.width, rect.height), 512);
  const scale = Math.max(rect.width, rect.height) / size;
  const outWidth = Math.max(1, Math.round(rect.width / scale));
  const outHeight = Math.max(1, Math.round(rect.height / scale));
  return readScaled(slide, rect, outWidth, outHeight, options.format);
}

/**
 * Level pixels one read may take (a side of 1024 px, 3 MB of RGB): a larger region is read block
 * by block, each block resized into its part of the output, so memory follows the output size.
 * The pyramid level is chosen from the output size; on a slide without a coarse enough level
 * (CMU-1-Small-Region has one level) an 8192² → 8 px request took 219 MB read in one piece.
 */
const BLOCK_LVL_PX = 1024;

/** A region of level-0 pixels read from the coarsest adequate level and resized to outWidth × outHeight. */
async function readScaled(slide: Slide, rect: { x: number; y: number; width: number; height: number }, outWidth: number, outHeight: number, format: ImageFormat): Promise<Buffer> {
  const image = await scaledRegion(slide, rect, outWidth, outHeight);
  return encode(image.data, outWidth, outHeight, format);
}

/**
 * The RGB pixels of a level-0 rectangle scaled to outWidth × outHeight, read in blocks of at most
 * BLOCK_LVL_PX² level pixels; blocks outside the slide stay white and are not read.
 * @throws TesseraError REGION_*, SLIDE_CORRUPT
 */
export async function scaledRegion(slide: Slide, rect: { x: number; y: number; width: number; height: number }, outWidth: number, outHeight: number): Promise<RgbImage> {
  const baseX = rect.width / outWidth;
  const baseY = rect.height / outHeight;
  const level = slide.levelForDownsample(Math.max(1, Math.min(baseX, baseY)));
  const levelDownsample = slide.levels[level]?.downsample ?? 1;
  const lvlWidth = Math.max(1, Math.round(rect.width / levelDownsample));
  const lvlHeight = Math.max(1, Math.round(rect.height / levelDownsample));
  if (lvlWidth <= BLOCK_LVL_PX && lvlHeight <= BLOCK_LVL_PX) {
    const image = await slide.readRegion(level, rect.x, rect.y, lvlWidth, lvlHeight);
    if (lvlWidth === outWidth && lvlHeight === outHeight) return image;
    return { data: await resizeRaw(image, outWidth, outHeight), width: outWidth, height: outHeight };
  }
  // Output pixels per block, so that a block reads at most BLOCK_LVL_PX level pixels a side.
  const blockOutWidth = Math.max(1, Math.floor((BLOCK_LVL_PX * levelDownsample) / baseX));
  const blockOutHeight = Math.max(1, Math.floor((BLOCK_LVL_PX * levelDownsample) / baseY));
  const out = Buffer.alloc(outWidth * outHeight * 3, 255);
  for (let outY = 0; outY < outHeight; outY += blockOutHeight) {
    const blockHeight = Math.min(blockOutHeight, outHeight - outY);
    const blockBaseY = Math.round(rect.y + outY * baseY);
    if (blockBaseY >= slide.height) break;
    for (let outX = 0; outX < outWidth; outX += blockOutWidth) {
      const blockWidth = Math.min(blockOutWidth, outWidth - outX);
      const blockBaseX = Math.round(rect.x + outX * baseX);
      if (blockBaseX >= slide.width) break;
      const readWidth = Math.max(1, Math.min(BLOCK_LVL_PX, Math.round((blockWidth * baseX) / levelDownsample)));
      const readHeight = Math.max(1, Math.min(BLOCK_LVL_PX, Math.round((blockHeight * baseY) / levelDownsample)));
      const block = await slide.readRegion(level, blockBaseX, blockBaseY, readWidth, readHeight);
      const scaled = readWidth === blockWidth && readHeight === blockHeight ? block.data : await resizeRaw(block, blockWidth, blockHeight);
      for (let row = 0; row < blockHeight; row++) scaled.copy(out, ((outY + row) * outWidth + outX) * 3, row * blockWidth * 3, (row + 1) * blockWidth * 3);
    }
  }
  return { data: out, width: outWidth, height: outHeight };
}

function resizeRaw(image: RgbImage, width: number, height: number): Promise<Buffer> {
  return sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).resize(width, height, { fit: 'fill' }).raw().toBuffer();
}

/** Deep Zoom levels: level L halves level L+1; the last level is the slide at full size. */
export function dziMaxLevel(slide: { width: number; height: number }): number {
  return Math.ceil(Math.log2(Math.max(slide.width, slide.height, 1)));
}

export function dziXml(slide: { width: number; height: number }): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" Format="jpeg" Overlap="0" TileSize="${DZI_TILE_PX}"><Size Width="${slide.width}" Height="${slide.height}"/></Image>\n`;
}

/** One Deep Zoom tile as JPEG. @throws ApiError NOT_FOUND outside the level's grid */
export async function dziTile(slide: Slide, dziLevel: number, column: number, row: number): Promise<Buffer> {
  const maxLevel = dziMaxLevel(slide);
  if (!Number.isInteger(dziLevel) || dziLevel < 0 || dziLevel > maxLevel) throw new ApiError('NOT_FOUND', `Deep Zoom level ${dziLevel} does not exist (0 to ${maxLevel})`);
  const scale = 2 ** (maxLevel - dziLevel);
  const levelWidth = Math.ceil(slide.width / scale);
  const levelHeight = Math.ceil(slide.height / scale);
  const left = column * DZI_TILE_PX;
  const top = row * DZI_TILE_PX;
  if (!Number.isInteger(column) || !Number.isInteger(row) || column < 0 || row < 0 || left >= levelWidth || top >= levelHeight) {
    throw new ApiError('NOT_FOUND', `Deep Zoom tile ${column}_${row} lies outside level ${dziLevel}`);
  }
  const outWidth = Math.min(DZI_TILE_PX, levelWidth - left);
  const outHeight = Math.min(DZI_TILE_PX, levelHeight - top);
  const rect = { x: left * scale, y: top * scale, width: Math.min(outWidth * scale, slide.width - left * scale), height: Math.min(outHeight * scale, slide.height - top * scale) };
  return readScaled(slide, rect, outWidth, outHeight, 'jpeg');
}
