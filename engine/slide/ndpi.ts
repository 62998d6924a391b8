/**
 * Hamamatsu NDPI: a TIFF-like file whose levels are single JPEG strips, one per objective
 * magnification (SourceLens tag > 0), plus a macro (-1) and a map (-2) image. Tiles are blocks
 * of restart intervals located through the McuStarts tag (see codecs/jpeg-restart.ts).
 *
 * Files over 4 GB store offsets modulo 2³²; those are refused rather than misread.
 */
import { TesseraError } from '../errors.js';
import { decodeJpeg } from './codecs/jpeg.js';
import { jpegFromIntervals, parseJpegLayout, type JpegLayout } from './codecs/jpeg-restart.js';
import type { FileSource } from './file-source.js';
import { boxDownscale } from './rgb-image.js';
import type { LevelReader, SlideSource } from './tiled-slide.js';
import { tiffProperties } from './tiff.js';
import { downsampleOf, ifdSize, mppFromResolution, tiffLevel } from './tiff-level.js';
import { Tag, tagNumber, tagNumbers, tagString, type TiffIfd, type TiffStructure } from './tiff-file.js';

/** Decode blocks of about this many pixels: small enough to be quick, large enough to amortize a call. */
const TARGET_TILE_PIXELS = 256 * 256 * 4;
const MAX_WHOLE_STRIP_PIXELS = 64 * 1024 * 1024;

export function isNdpi(tiff: TiffStructure): boolean {
  const first = tiff.ifds[0] as TiffIfd;
  return first.tags.has(Tag.NdpiFormatFlag) || tagString(first, Tag.Make) === 'Hamamatsu';
}

export function openNdpi(source: FileSource, tiff: TiffStructure, name: string): SlideSource {
  if (source.size > 0xffffffff) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: NDPI files over 4 GB (64-bit offset extension) are not supported yet`);
  const lens = (ifd: TiffIfd): number => tagNumber(ifd, Tag.NdpiSourceLens) ?? 0;
  const levelIfds = tiff.ifds
    .filter((ifd) => lens(ifd) > 0 && (tagNumber(ifd, Tag.NdpiFocalPlane) ?? 0) === 0)
    .sort((a, b) => ifdSize(b).width - ifdSize(a).width);
  const base = levelIfds[0];
  if (!base) throw new TesseraError('SLIDE_CORRUPT', `${name}: NDPI file has no image at a positive magnification`);
  const baseSize = ifdSize(base);
  const associatedImages: string[] = [];
  if (tiff.ifds.some((ifd) => lens(ifd) === -1)) associatedImages.push('macro');
  if (tiff.ifds.some((ifd) => lens(ifd) === -2)) associatedImages.push('map');
  const properties = tiffProperties(base);
  for (const line of (tagString(base, Tag.NdpiPropertyMap) ?? '').split(/\r?\n/)) {
    const at = line.indexOf('=');
    if (at > 0) properties[`hamamatsu.${line.slice(0, at)}`] = line.slice(at + 1);
  }
  return {
    format: 'hamamatsu-ndpi',
    vendor: 'hamamatsu',
    mpp: mppFromResolution(base),
    objectivePower: lens(base),
    associatedImages,
    properties,
    levels: withScaledLevels(levelIfds.map((ifd) => ndpiLevel(source, ifd, downsampleOf(baseSize, ifdSize(ifd)), name))),
    close: () => source.close(),
  };
}

/**
 * Adds levels at 1/2, 1/4 and 1/8 of the smallest stored level, as OpenSlide does with JPEG DCT
 * scaling: NDPI pyramids stop early, and thumbnails and tissue masks want a small level.
 */
function withScaledLevels(levels: LevelReader[]): LevelReader[] {
  const smallest = levels[levels.length - 1];
  if (!smallest) return levels;
  const { width, height, tileWidth, tileHeight, downsample } = smallest.level;
  const scaled: LevelReader[] = [];
  for (const scale of [2, 4, 8] as const) {
    if (tileWidth % scale !== 0 || tileHeight % scale !== 0) break;
    scaled.push({
      level: { width: Math.ceil(width / scale), height: Math.ceil(height / scale), downsample: downsample * scale, tileWidth: tileWidth / scale, tileHeight: tileHeight / scale },
      async readTile(col, row) {
        // The smallest level is a few hundred pixels: decoding it whole and averaging is cheap.
        const tile = await smallest.readTile(col, row);
        return tile ? boxDownscale(tile, scale) : null;
      },
    });
  }
  return [...levels, ...scaled];
}

function ndpiLevel(source: FileSource, ifd: TiffIfd, downsample: number, name: string): LevelReader {
  const { width, height } = ifdSize(ifd);
  const stripOffset = tagNumber(ifd, Tag.StripOffsets) ?? 0;
  const stripBytes = tagNumber(ifd, Tag.StripByteCounts) ?? 0;
  const starts = tagNumbers(ifd, Tag.NdpiMcuStarts);
  if (!source.contains(stripOffset, stripBytes) || stripBytes < 4) {
    throw new TesseraError('SLIDE_CORRUPT', `${name}: JPEG strip of the ${width}×${height} level lies beyond the end of the file (truncated?)`);
  }
  let layout: JpegLayout;
  try {
    const headerBytes = Math.min(stripBytes, starts?.[0] ?? 65536);
    layout = parseJpegLayout(source.readAt(stripOffset, headerBytes));
  } catch (error) {
    throw new TesseraError('SLIDE_CORRUPT', `${name}: JPEG header of the ${width}×${height} level: ${(error as Error).message}`, { cause: error });
  }
  const mcusPerRow = Math.ceil(width / layout.mcuWidth);
  const mcuRows = Math.ceil(height / layout.mcuHeight);
  const interval = layout.restartInterval;
  const splittable = starts !== undefined && interval > 0 && mcusPerRow % interval === 0 && starts.length === (mcusPerRow / interval) * mcuRows;
  if (!splittable) {
    // No usable restart table: the strip is one tile, decoded whole (only for modest sizes).
    if (width * height > MAX_WHOLE_STRIP_PIXELS) {
      throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: ${width}×${height} NDPI level without a restart-marker table cannot be read in parts`);
    }
    return tiffLevel(source, ifd, downsample, name);
  }
  const intervalsPerRow = mcusPerRow / interval;
  const tileWidth = interval * layout.mcuWidth;
  const mcuRowsPerTile = Math.max(1, Math.floor(TARGET_TILE_PIXELS / (tileWidth * layout.mcuHeight)));
  const tileHeight = mcuRowsPerTile * layout.mcuHeight;
  const endOf = (index: number): number => (index + 1 < starts.length ? (starts[index + 1] ?? 0) - 2 : stripBytes - 2);
  const jpegForTile = (col: number, row: number): Buffer | null => {
    const firstMcuRow = row * mcuRowsPerTile;
    const lastMcuRow = Math.min(firstMcuRow + mcuRowsPerTile, mcuRows);
    if (col < 0 || col >= intervalsPerRow || firstMcuRow < 0 || firstMcuRow >= mcuRows) return null;
    const intervals: Buffer[] = [];
    for (let mcuRow = firstMcuRow; mcuRow < lastMcuRow; mcuRow++) {
      const index = mcuRow * intervalsPerRow + col;
      const start = starts[index] ?? 0;
      intervals.push(source.readAt(stripOffset + start, endOf(index) - start));
    }
    return jpegFromIntervals(layout, intervals, tileWidth, (lastMcuRow - firstMcuRow) * layout.mcuHeight);
  };
  return {
    level: { width, height, downsample, tileWidth, tileHeight },
    // A block spanning the full width must be entropy-decoded whole anyway: cache it instead.
    partialDecode: intervalsPerRow > 1,
    async readTile(col, row, crop) {
      const jpeg = jpegForTile(col, row);
      return jpeg ? decodeJpeg(jpeg, crop) : null;
    },
  };
}
