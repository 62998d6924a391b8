/**
 * The tile grid at a physical resolution: every tile is `sizePx` pixels at `mpp` µm/px, laid out
 * on level 0 without overlap, kept when its tissue fraction reaches a threshold.
 */
import sharp from 'sharp';
import { TesseraError } from '../errors.js';
import type { RgbImage, Slide } from '../slide/index.js';
import { computeTissueMask, tissueFraction } from './tissue-mask.js';

export interface TileSpec {
  /** Target resolution in µm per pixel (0.5 ≈ 20×). */
  mpp: number;
  /** Tile side in pixels at the target resolution. */
  sizePx: number;
}

export interface TileGridOptions extends Partial<TileSpec> {
  /** Keep tiles whose tissue fraction is at least this (0 keeps every tile). */
  minTissue?: number;
  /** The slide's µm/px when the file has none; ignored when it has one. */
  slideMpp?: [number, number];
}

/** A tile on level 0 of its slide. */
export interface GridTile {
  baseX: number;
  baseY: number;
  baseWidth: number;
  baseHeight: number;
  /** Fraction of the tile covered by tissue, 0 to 1. */
  tissue: number;
}

export const DEFAULT_TILE_SPEC: TileSpec = { mpp: 0.5, sizePx: 224 };

/**
 * The slide's calibration, or the explicit one.
 * @throws TesseraError MPP_MISSING when neither exists.
 */
export function slideMppOf(slide: Slide, name: string, explicit?: [number, number]): [number, number] {
  const mpp = slide.mpp ?? explicit;
  if (!mpp) {
    throw new TesseraError('MPP_MISSING', `${name}: the slide has no µm/px calibration; pass it explicitly (--slide-mpp, or an mpp column in the metadata file)`);
  }
  return mpp;
}

/** Tiles of the slide at the given resolution, with tissue fractions, in row-major order. */
export async function tileGrid(slide: Slide, name: string, options: TileGridOptions = {}): Promise<GridTile[]> {
  const spec = checkSpec({ ...DEFAULT_TILE_SPEC, ...options });
  const minTissue = options.minTissue ?? 0.5;
  if (!(minTissue >= 0 && minTissue <= 1)) throw new TesseraError('INVALID_ARGUMENT', `minimum tissue fraction must be between 0 and 1, got ${minTissue}`);
  const [slideMppX, slideMppY] = slideMppOf(slide, name, options.slideMpp);
  const baseWidth = Math.round((spec.sizePx * spec.mpp) / slideMppX);
  const baseHeight = Math.round((spec.sizePx * spec.mpp) / slideMppY);
  if (baseWidth < 1 || baseHeight < 1) throw new TesseraError('INVALID_ARGUMENT', `${name}: tiles of ${spec.sizePx} px at ${spec.mpp} µm/px are smaller than one slide pixel`);
  const mask = await computeTissueMask(slide);
  const tiles: GridTile[] = [];
  for (let baseY = 0; baseY + baseHeight <= slide.height; baseY += baseHeight) {
    for (let baseX = 0; baseX + baseWidth <= slide.width; baseX += baseWidth) {
      const tissue = tissueFraction(mask, baseX, baseY, baseWidth, baseHeight);
      if (tissue >= minTissue) tiles.push({ baseX, baseY, baseWidth, baseHeight, tissue });
    }
  }
  return tiles;
}

/**
 * Reads one grid tile at the target resolution: from the coarsest level that is still at least as
 * fine as the target, then resized to exactly `sizePx × sizePx` with sharp. With `resize: false`
 * the tile comes at that level's resolution (a little larger than `sizePx` when the level is
 * finer), for a consumer that resizes anyway, such as an embedder whose input is another size.
 */
export async function readGridTile(slide: Slide, tile: GridTile, spec: TileSpec = DEFAULT_TILE_SPEC, options: { resize?: boolean } = {}): Promise<RgbImage> {
  const downsample = tile.baseWidth / spec.sizePx;
  const level = slide.levelForDownsample(downsample);
  const levelDownsample = slide.levels[level]?.downsample ?? 1;
  const lvlWidth = Math.max(1, Math.round(tile.baseWidth / levelDownsample));
  const lvlHeight = Math.max(1, Math.round(tile.baseHeight / levelDownsample));
  const region = await slide.readRegion(level, tile.baseX, tile.baseY, lvlWidth, lvlHeight);
  if ((lvlWidth === spec.sizePx && lvlHeight === spec.sizePx) || options.resize === false) return region;
  const data = await sharp(region.data, { raw: { width: lvlWidth, height: lvlHeight, channels: 3 } })
    .resize(spec.sizePx, spec.sizePx, { fit: 'fill' })
    .raw()
    .toBuffer();
  return { data, width: spec.sizePx, height: spec.sizePx };
}

function checkSpec(spec: TileSpec): TileSpec {
  if (!(spec.mpp > 0 && spec.mpp < 1000)) throw new TesseraError('INVALID_ARGUMENT', `tile resolution must be a positive µm/px, got ${spec.mpp}`);
  if (!Number.isInteger(spec.sizePx) || spec.sizePx < 8 || spec.sizePx > 4096) throw new TesseraError('INVALID_ARGUMENT', `tile size must be an integer from 8 to 4096 px, got ${spec.sizePx}`);
  return spec;
}
