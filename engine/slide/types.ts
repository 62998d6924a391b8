/** The public shape of a slide: what every caller outside engine/slide may rely on. */
import type { RgbImage } from './rgb-image.js';

export type SlideFormat = 'aperio-svs' | 'generic-tiff' | 'ome-tiff' | 'hamamatsu-ndpi' | 'dicom' | 'image';

/** One pyramid level. Sizes are in pixels of that level. */
export interface SlideLevel {
  width: number;
  height: number;
  /** Level-0 pixels per pixel of this level (OpenSlide's definition: mean of the x and y ratios). */
  downsample: number;
  tileWidth: number;
  tileHeight: number;
}

export interface SlideInfo {
  format: SlideFormat;
  vendor: string;
  /** Level-0 width and height in pixels. */
  width: number;
  height: number;
  /** Micrometres per level-0 pixel `[x, y]`, or null when the file carries no calibration. */
  mpp: [number, number] | null;
  objectivePower: number | null;
  levels: SlideLevel[];
  /** Names of associated images (label, macro, thumbnail…). Listed, never served: labels carry patient names. */
  associatedImages: string[];
  /** Vendor properties, flattened to strings. */
  properties: Record<string, string>;
}

export interface Slide extends SlideInfo {
  /**
   * Reads a region as RGB.
   * @param level pyramid level index
   * @param baseX left edge in level-0 pixels
   * @param baseY top edge in level-0 pixels
   * @param lvlWidth width in pixels of `level`
   * @param lvlHeight height in pixels of `level`
   * Parts of the region outside the slide are white.
   * @throws TesseraError LEVEL_INVALID, REGION_INVALID, REGION_TOO_LARGE, REGION_OUT_OF_BOUNDS, SLIDE_CORRUPT
   */
  readRegion(level: number, baseX: number, baseY: number, lvlWidth: number, lvlHeight: number): Promise<RgbImage>;
  /** The whole slide scaled to fit `maxSizePx` on its longer side, read from the best level. */
  thumbnail(maxSizePx: number): Promise<RgbImage>;
  /** The index of the smallest level whose downsample is at most `downsample` (finest enough for it). */
  levelForDownsample(downsample: number): number;
  close(): void;
}
