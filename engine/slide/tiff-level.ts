/**
 * Pyramid levels stored as TIFF directories: tiled, or stripped (a strip is a full-width tile).
 * Shared by the generic TIFF, Aperio SVS and OME-TIFF readers.
 */
import { getDecoder } from 'geotiff';
import { TesseraError } from '../errors.js';
import { decodeJpeg, decodeJpegShrunk, spliceJpeg, type TileCrop } from './codecs/jpeg.js';
import { decodeJpeg2000 } from './codecs/jpeg2000.js';
import type { FileSource } from './file-source.js';
import { rgbFromChannels, type RgbImage } from './rgb-image.js';
import type { LevelReader } from './tiled-slide.js';
import { Tag, tagBytes, tagNumber, tagNumbers, type TiffIfd } from './tiff-file.js';

const Compression = { None: 1, Lzw: 5, OldJpeg: 6, Jpeg: 7, AdobeDeflate: 8, PackBits: 32773, Deflate: 32946, AperioJ2kYcbcr: 33003, AperioJ2kRgb: 33005 } as const;
const Photometric = { MinIsWhite: 0, MinIsBlack: 1, Rgb: 2, YCbCr: 6 } as const;

/** Dimensions of a TIFF directory, whether tiled or stripped. */
export function ifdSize(ifd: TiffIfd): { width: number; height: number } {
  return { width: tagNumber(ifd, Tag.ImageWidth) ?? 0, height: tagNumber(ifd, Tag.ImageLength) ?? 0 };
}

export function isTiled(ifd: TiffIfd): boolean {
  return ifd.tags.has(Tag.TileWidth) && ifd.tags.has(Tag.TileOffsets);
}

type TileDecoder = (bytes: Buffer, tileWidth: number, tileHeight: number, crop?: TileCrop) => Promise<RgbImage>;

/**
 * Builds a level reader for a TIFF directory. `downsample` is relative to level 0.
 * @throws TesseraError SLIDE_UNSUPPORTED for compressions and layouts Tessera cannot decode.
 */
export function tiffLevel(source: FileSource, ifd: TiffIfd, downsample: number, name: string): LevelReader {
  const { width, height } = ifdSize(ifd);
  const tiled = isTiled(ifd);
  const tileWidth = tiled ? tagNumber(ifd, Tag.TileWidth) ?? 0 : width;
  const tileHeight = tiled ? tagNumber(ifd, Tag.TileLength) ?? 0 : Math.min(tagNumber(ifd, Tag.RowsPerStrip) ?? height, height);
  const offsets = tagNumbers(ifd, tiled ? Tag.TileOffsets : Tag.StripOffsets);
  const byteCounts = tagNumbers(ifd, tiled ? Tag.TileByteCounts : Tag.StripByteCounts);
  if (!offsets || !byteCounts) throw new TesseraError('SLIDE_CORRUPT', `${name}: image directory has no tile or strip offsets`);
  const tilesAcross = Math.ceil(width / tileWidth);
  const tilesDown = Math.ceil(height / tileHeight);
  if (offsets.length < tilesAcross * tilesDown || byteCounts.length < tilesAcross * tilesDown) {
    throw new TesseraError('SLIDE_CORRUPT', `${name}: ${offsets.length} tile offsets for a ${tilesAcross}×${tilesDown} tile grid`);
  }
  const decode = tileDecoder(ifd, name);
  const jpeg = (tagNumber(ifd, Tag.Compression) ?? 1) === Compression.Jpeg;
  /** The tile's stored bytes and its rows, or null for a tile the file does not hold. */
  const stored = (col: number, row: number): { bytes: Buffer; rows: number } | null => {
    if (col < 0 || row < 0 || col >= tilesAcross || row >= tilesDown) return null;
    const index = row * tilesAcross + col;
    const byteCount = byteCounts[index] ?? 0;
    if (byteCount === 0) return null; // sparse TIFF: a tile never written is background
    // Strips at the bottom hold only the rows that remain.
    return { bytes: source.readAt(offsets[index] ?? 0, byteCount), rows: tiled ? tileHeight : Math.min(tileHeight, height - row * tileHeight) };
  };
  const tables = tagBytes(ifd, Tag.JPEGTables);
  const rgb = tagNumber(ifd, Tag.Photometric) === Photometric.Rgb;
  return {
    level: { width, height, downsample, tileWidth, tileHeight },
    partialDecode: jpeg,
    async readTile(col, row, crop) {
      const tile = stored(col, row);
      return tile && decode(tile.bytes, tileWidth, tile.rows, crop);
    },
    ...(jpeg && {
      async readTileShrunk(col: number, row: number, shrink: 8) {
        const tile = stored(col, row);
        return tile && decodeJpegShrunk(spliceJpeg(tile.bytes, tables, rgb), shrink, tileWidth, tile.rows);
      },
    }),
  };
}

function tileDecoder(ifd: TiffIfd, name: string): TileDecoder {
  const compression = tagNumber(ifd, Tag.Compression) ?? Compression.None;
  const photometric = tagNumber(ifd, Tag.Photometric) ?? Photometric.Rgb;
  const samplesPerPixel = tagNumber(ifd, Tag.SamplesPerPixel) ?? 1;
  const bitsPerSample = tagNumbers(ifd, Tag.BitsPerSample) ?? [1];
  const planar = tagNumber(ifd, Tag.PlanarConfiguration) ?? 1;
  const unsupported = (what: string): never => {
    throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: ${what} is not supported`);
  };
  if (bitsPerSample.some((bits) => bits !== 8)) unsupported(`${bitsPerSample.join('/')} bits per sample`);
  if (planar !== 1 && samplesPerPixel > 1) unsupported('planar (non-interleaved) sample layout');
  switch (compression) {
    case Compression.Jpeg: {
      const tables = tagBytes(ifd, Tag.JPEGTables);
      const rgb = photometric === Photometric.Rgb;
      return (bytes, _width, _height, crop) => decodeJpeg(spliceJpeg(bytes, tables, rgb), crop);
    }
    case Compression.AperioJ2kYcbcr:
    case Compression.AperioJ2kRgb: {
      const ycbcr = compression === Compression.AperioJ2kYcbcr;
      return (bytes) => decodeJpeg2000(bytes, ycbcr);
    }
    case Compression.None:
    case Compression.Lzw:
    case Compression.AdobeDeflate:
    case Compression.Deflate:
    case Compression.PackBits: {
      if (photometric !== Photometric.Rgb && photometric !== Photometric.MinIsBlack) unsupported(`photometric interpretation ${photometric} without JPEG`);
      const predictor = tagNumber(ifd, Tag.Predictor) ?? 1;
      return async (bytes, tileWidth, tileHeight) => {
        const decoder = await getDecoder(compression, { tileWidth, tileHeight, predictor, bitsPerSample, planarConfiguration: 1, samplesPerPixel });
        const raw = new Uint8Array(await decoder.decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
        const expected = tileWidth * tileHeight * samplesPerPixel;
        if (raw.length < expected) throw new Error(`tile decoded to ${raw.length} bytes, expected ${expected}`);
        return rgbFromChannels(raw, tileWidth, tileHeight, samplesPerPixel);
      };
    }
    default:
      return unsupported(`TIFF compression ${compression}`);
  }
}

/** Level-0 downsample of a level, as OpenSlide defines it (mean of the two axis ratios). */
export function downsampleOf(base: { width: number; height: number }, level: { width: number; height: number }): number {
  return (base.width / level.width + base.height / level.height) / 2;
}

/** µm per pixel from TIFF resolution tags, or null when absent or clearly not a microscope calibration. */
export function mppFromResolution(ifd: TiffIfd): [number, number] | null {
  const unit = tagNumber(ifd, Tag.ResolutionUnit) ?? 2;
  const xRes = tagNumber(ifd, Tag.XResolution);
  const yRes = tagNumber(ifd, Tag.YResolution);
  const micronsPerUnit = unit === 3 ? 10_000 : unit === 2 ? 25_400 : 0;
  if (!xRes || !yRes || micronsPerUnit === 0) return null;
  const mpp: [number, number] = [micronsPerUnit / xRes, micronsPerUnit / yRes];
  // Image editors write 72 or 96 dpi (≈ 265-353 µm/px) by default; no slide scanner is that coarse.
  return mpp[0] > 0 && mpp[0] < 50 && mpp[1] > 0 && mpp[1] < 50 ? mpp : null;
}
