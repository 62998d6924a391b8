/**
 * TiledSlide: the one Slide implementation. Format modules describe a slide as levels that can
 * decode one tile at a time; this class turns that into regions, thumbnails and caching, so every
 * format gets the same bounds checks, the same background and the same cache.
 */
import sharp from 'sharp';
import { TesseraError, isTesseraError } from '../errors.js';
import type { TileCrop } from './codecs/jpeg.js';
import type { RgbImage } from './rgb-image.js';
import { tileCache } from './tile-cache.js';
import type { Slide, SlideFormat, SlideLevel } from './types.js';

/**
 * `random`: reads land anywhere (queries, benchmarks): a tile mostly not needed is decoded in
 * part and not cached. `sequential`: neighbouring reads follow (tiling a slide): every tile is
 * decoded whole once and cached for the next read.
 */
export type SlideAccess = 'random' | 'sequential';

/** One pyramid level as a format module provides it. */
export interface LevelReader {
  level: SlideLevel;
  /**
   * Decodes tile (tileCol, tileRow) to RGB. The image may be smaller than the tile size at the
   * right and bottom edges. Returns null for a tile the file does not store (sparse: background).
   * Readers with `partialDecode` honour `crop` and return exactly that part of the tile.
   */
  readTile(tileCol: number, tileRow: number, crop?: TileCrop): Promise<RgbImage | null>;
  /** True when readTile can decode only a part of a tile (JPEG through libjpeg-turbo). */
  partialDecode?: boolean;
  /** Decodes a tile at 1/`shrink` of its size, cheaply (JPEG: in the DCT domain), for whole-slide views. */
  readTileShrunk?(tileCol: number, tileRow: number, shrink: typeof THUMBNAIL_SHRINK): Promise<RgbImage | null>;
}

/**
 * A whole-slide view this many times smaller than the level it is read from is assembled from
 * tiles decoded at 1/8 size (readTileShrunk), not from full-resolution bands: a slide without a
 * pyramid (a single 40 960² level) otherwise decodes and copies every pixel for its tissue mask.
 */
export const THUMBNAIL_SHRINK = 8;

/** What a format module hands over after parsing a file. */
export interface SlideSource {
  format: SlideFormat;
  vendor: string;
  mpp: [number, number] | null;
  objectivePower: number | null;
  associatedImages: string[];
  properties: Record<string, string>;
  /** Level readers, level 0 first; levels that are not smaller than the previous are dropped. */
  levels: LevelReader[];
  close(): void;
}

/**
 * A region that needs less than this share of an uncached tile decodes only its part and does
 * not cache it: random reads touch four tiles and use a fifth of their pixels, while neighbouring
 * reads that need most of a tile get it decoded whole and cached.
 */
const PARTIAL_DECODE_SHARE = 0.5;

/** The largest region one call may ask for: 64 megapixels (192 MB of RGB). */
export const MAX_REGION_PIXELS = 64 * 1024 * 1024;
const BACKGROUND = 255;
let nextSlideId = 0;

export class TiledSlide implements Slide {
  readonly format: SlideFormat;
  readonly vendor: string;
  readonly width: number;
  readonly height: number;
  readonly mpp: [number, number] | null;
  readonly objectivePower: number | null;
  readonly levels: SlideLevel[];
  readonly associatedImages: string[];
  readonly properties: Record<string, string>;
  private readonly readers: LevelReader[];
  private readonly cacheKey = `s${nextSlideId++}/`;
  private closed = false;

  constructor(
    private readonly source: SlideSource,
    /** Display name for errors (a file name, never a full path). */
    readonly name: string,
    /** How regions will be read: see OpenSlideOptions.access. */
    private readonly access: SlideAccess = 'random',
  ) {
    const first = source.levels[0];
    if (!first) throw new TesseraError('SLIDE_CORRUPT', `${name}: no readable image level`);
    for (const reader of source.levels) {
      const { width, height, tileWidth, tileHeight } = reader.level;
      if (!(width > 0 && height > 0 && tileWidth > 0 && tileHeight > 0)) {
        throw new TesseraError('SLIDE_CORRUPT', `${name}: level of ${width}×${height} px with ${tileWidth}×${tileHeight} tiles`);
      }
    }
    this.readers = source.levels;
    this.format = source.format;
    this.vendor = source.vendor;
    this.width = first.level.width;
    this.height = first.level.height;
    this.mpp = source.mpp;
    this.objectivePower = source.objectivePower;
    this.levels = this.readers.map((reader) => reader.level);
    this.associatedImages = source.associatedImages;
    this.properties = source.properties;
  }

  levelForDownsample(downsample: number): number {
    let best = 0;
    this.levels.forEach((level, index) => {
      // A small tolerance: level downsamples are rounded (2220/555 = 4.0, 2967/741 = 4.004).
      if (level.downsample <= downsample * 1.01) best = index;
    });
    return best;
  }

  async readRegion(level: number, baseX: number, baseY: number, lvlWidth: number, lvlHeight: number): Promise<RgbImage> {
    const reader = this.readerAt(level);
    checkRegion(this.name, baseX, baseY, lvlWidth, lvlHeight);
    const { downsample, width, height, tileWidth, tileHeight } = reader.level;
    // Nearest level pixel: downsamples such as 2.0003 would otherwise shift a whole pixel left.
    const lvlX = Math.round(baseX / downsample);
    const lvlY = Math.round(baseY / downsample);
    if (lvlX >= width || lvlY >= height || lvlX + lvlWidth <= 0 || lvlY + lvlHeight <= 0) {
      throw new TesseraError(
        'REGION_OUT_OF_BOUNDS',
        `${this.name}: region at (${baseX}, ${baseY}) of ${lvlWidth}×${lvlHeight} px at level ${level} lies outside the slide (${this.width}×${this.height} px at level 0)`,
      );
    }
    const out = Buffer.alloc(lvlWidth * lvlHeight * 3, BACKGROUND);
    const x0 = Math.max(lvlX, 0);
    const y0 = Math.max(lvlY, 0);
    const x1 = Math.min(lvlX + lvlWidth, width);
    const y1 = Math.min(lvlY + lvlHeight, height);
    const pending: Promise<void>[] = [];
    for (let row = Math.floor(y0 / tileHeight); row * tileHeight < y1; row++) {
      for (let col = Math.floor(x0 / tileWidth); col * tileWidth < x1; col++) {
        const tileX = col * tileWidth;
        const tileY = row * tileHeight;
        // The part of this tile the region needs, in tile pixels.
        const crop = {
          x: Math.max(x0, tileX) - tileX,
          y: Math.max(y0, tileY) - tileY,
          width: Math.min(x1, tileX + tileWidth) - Math.max(x0, tileX),
          height: Math.min(y1, tileY + tileHeight) - Math.max(y0, tileY),
        };
        const copy = (tile: RgbImage | null, at: { x: number; y: number }): void => {
          if (tile) copyTile(tile, tileX + at.x - lvlX, tileY + at.y - lvlY, out, lvlWidth, x1 - lvlX, y1 - lvlY);
        };
        const cached = this.cachedTile(level, col, row);
        if (cached) {
          copy(cached, { x: 0, y: 0 });
        } else if (this.access === 'random' && reader.partialDecode && crop.width * crop.height < PARTIAL_DECODE_SHARE * tileWidth * tileHeight) {
          pending.push(this.decodeTile(level, reader, col, row, crop).then((part) => copy(part, crop)));
        } else {
          const tile = this.tile(level, reader, col, row);
          if (tile instanceof Promise) pending.push(tile.then((whole) => copy(whole, { x: 0, y: 0 })));
          else copy(tile, { x: 0, y: 0 });
        }
      }
    }
    if (pending.length > 0) await Promise.all(pending);
    return { data: out, width: lvlWidth, height: lvlHeight };
  }

  async thumbnail(maxSizePx: number): Promise<RgbImage> {
    if (!Number.isInteger(maxSizePx) || maxSizePx < 1 || maxSizePx > 16384) {
      throw new TesseraError('INVALID_ARGUMENT', `thumbnail size must be an integer from 1 to 16384, got ${maxSizePx}`);
    }
    const scale = Math.min(1, maxSizePx / Math.max(this.width, this.height));
    const outWidth = Math.max(1, Math.round(this.width * scale));
    const outHeight = Math.max(1, Math.round(this.height * scale));
    return this.readScaled(this.levelForDownsample(1 / scale), outWidth, outHeight);
  }

  /**
   * Reads the whole slide from `level` scaled to outWidth × outHeight, in horizontal bands so that
   * memory stays bounded even when the slide has no small level.
   */
  private async readScaled(level: number, outWidth: number, outHeight: number): Promise<RgbImage> {
    const reader = this.readerAt(level);
    const { width, height, downsample, tileWidth, tileHeight } = reader.level;
    const shrink = THUMBNAIL_SHRINK;
    if (reader.readTileShrunk && width >= shrink * outWidth && height >= shrink * outHeight && tileWidth % shrink === 0 && tileHeight % shrink === 0 && (width / shrink) * (height / shrink) <= MAX_REGION_PIXELS) {
      return this.readShrunk(level, reader, outWidth, outHeight);
    }
    const bandHeight = Math.max(tileHeight, Math.floor(MAX_REGION_PIXELS / 4 / width / tileHeight) * tileHeight);
    const out = Buffer.alloc(outWidth * outHeight * 3, BACKGROUND);
    let outY = 0;
    for (let lvlY = 0; lvlY < height; lvlY += bandHeight) {
      const bandLvlHeight = Math.min(bandHeight, height - lvlY);
      const bandOutEnd = lvlY + bandLvlHeight >= height ? outHeight : Math.round(((lvlY + bandLvlHeight) / height) * outHeight);
      const bandOutHeight = bandOutEnd - outY;
      if (bandOutHeight <= 0) continue;
      const band = await this.readRegion(level, 0, Math.round(lvlY * downsample), width, bandLvlHeight);
      const resized = await sharp(band.data, { raw: { width, height: bandLvlHeight, channels: 3 } })
        .resize(outWidth, bandOutHeight, { fit: 'fill', kernel: 'linear' })
        .raw()
        .toBuffer();
      resized.copy(out, outY * outWidth * 3);
      outY = bandOutEnd;
    }
    return { data: out, width: outWidth, height: outHeight };
  }

  /** readScaled from tiles decoded at 1/THUMBNAIL_SHRINK size, assembled one row of tiles at a time. */
  private async readShrunk(level: number, reader: LevelReader, outWidth: number, outHeight: number): Promise<RgbImage> {
    const { width, height, tileWidth, tileHeight } = reader.level;
    const shrink = THUMBNAIL_SHRINK;
    const shrunkWidth = Math.ceil(width / shrink);
    const shrunkHeight = Math.ceil(height / shrink);
    const shrunk = Buffer.alloc(shrunkWidth * shrunkHeight * 3, BACKGROUND);
    const tilesAcross = Math.ceil(width / tileWidth);
    for (let row = 0; row * tileHeight < height; row++) {
      // A row at a time keeps the decode queue short: reads for the model queued meanwhile do not
      // wait behind a whole slide's tiles.
      const tiles = await Promise.all(Array.from({ length: tilesAcross }, (_, col) => this.decodeTile(level, reader, col, row, undefined, shrink)));
      tiles.forEach((tile, col) => {
        if (tile) copyTile(tile, (col * tileWidth) / shrink, (row * tileHeight) / shrink, shrunk, shrunkWidth, shrunkWidth, shrunkHeight);
      });
    }
    const data = await sharp(shrunk, { raw: { width: shrunkWidth, height: shrunkHeight, channels: 3 } }).resize(outWidth, outHeight, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
    return { data, width: outWidth, height: outHeight };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.source.close();
    tileCache.dropPrefix(this.cacheKey);
  }

  private readerAt(level: number): LevelReader {
    const reader = Number.isInteger(level) ? this.readers[level] : undefined;
    if (!reader) {
      throw new TesseraError('LEVEL_INVALID', `${this.name}: level ${level} does not exist (the slide has levels 0 to ${this.readers.length - 1})`);
    }
    return reader;
  }

  private cacheKeyOf(level: number, col: number, row: number): string {
    return `${this.cacheKey}${level}/${col}/${row}`;
  }

  private cachedTile(level: number, col: number, row: number): RgbImage | undefined {
    return tileCache.peek(this.cacheKeyOf(level, col, row));
  }

  private tile(level: number, reader: LevelReader, col: number, row: number): Promise<RgbImage | null> | RgbImage | null {
    return tileCache.getOrLoad(this.cacheKeyOf(level, col, row), () => this.decodeTile(level, reader, col, row));
  }

  private async decodeTile(level: number, reader: LevelReader, col: number, row: number, crop?: TileCrop, shrink?: typeof THUMBNAIL_SHRINK): Promise<RgbImage | null> {
    if (this.closed) throw new TesseraError('INVALID_ARGUMENT', `${this.name}: slide is closed`);
    try {
      return await (shrink && reader.readTileShrunk ? reader.readTileShrunk(col, row, shrink) : reader.readTile(col, row, crop));
    } catch (error) {
      if (isTesseraError(error)) throw error;
      const reason = (error instanceof Error ? error.message : String(error)).split('\n')[0];
      throw new TesseraError('SLIDE_CORRUPT', `${this.name}: cannot decode tile (${col}, ${row}) of level ${level}: ${reason}`, { cause: error });
    }
  }
}

function checkRegion(name: string, baseX: number, baseY: number, lvlWidth: number, lvlHeight: number): void {
  if (!Number.isFinite(baseX) || !Number.isFinite(baseY)) {
    throw new TesseraError('REGION_INVALID', `${name}: region position must be finite numbers, got (${baseX}, ${baseY})`);
  }
  if (!Number.isInteger(lvlWidth) || !Number.isInteger(lvlHeight) || lvlWidth <= 0 || lvlHeight <= 0) {
    throw new TesseraError('REGION_INVALID', `${name}: region size must be positive integers, got ${lvlWidth}×${lvlHeight}`);
  }
  if (lvlWidth * lvlHeight > MAX_REGION_PIXELS) {
    throw new TesseraError(
      'REGION_TOO_LARGE',
      `${name}: region of ${lvlWidth}×${lvlHeight} px exceeds the limit of ${MAX_REGION_PIXELS} pixels per read; read it in parts or from a coarser level`,
    );
  }
}

/**
 * Copies the part of `tile` that overlaps the output, with the tile's top-left at (offsetX, offsetY)
 * in output pixels. Output columns from `endX` and rows from `endY` lie past the level's edge and
 * stay background: edge tiles carry padding there.
 */
function copyTile(tile: RgbImage, offsetX: number, offsetY: number, out: Buffer, outWidth: number, endX: number, endY: number): void {
  const srcX = Math.max(0, -offsetX);
  const srcY = Math.max(0, -offsetY);
  const dstX = Math.max(0, offsetX);
  const dstY = Math.max(0, offsetY);
  const copyWidth = Math.min(tile.width - srcX, endX - dstX);
  const copyHeight = Math.min(tile.height - srcY, endY - dstY);
  if (copyWidth <= 0 || copyHeight <= 0) return;
  const rowBytes = copyWidth * 3;
  for (let y = 0; y < copyHeight; y++) {
    const src = ((srcY + y) * tile.width + srcX) * 3;
    tile.data.copy(out, ((dstY + y) * outWidth + dstX) * 3, src, src + rowBytes);
  }
}
