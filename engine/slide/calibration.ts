/**
 * Plausibility of a slide's calibration. A whole-slide image at microscope scale has well under
 * 20 µm per pixel (a 1.25× scan is about 8); a larger value means the file states a wrong scale,
 * typically PixelSpacing a converter derived from a default imaged size. Tiles would be cut at the
 * wrong physical size without a word, so callers warn.
 */
import { MAX_PLAUSIBLE_MPP } from './dicom-pyramid.js';
import type { SlideInfo } from './types.js';

export { MAX_PLAUSIBLE_MPP };

/**
 * A one-line warning when the slide's µm/px is implausible for microscopy (above
 * MAX_PLAUSIBLE_MPP on either axis), else null. Never throws.
 */
export function calibrationWarning(slide: Pick<SlideInfo, 'format' | 'mpp'>, name: string): string | null {
  if (!slide.mpp) return null;
  const [x, y] = slide.mpp;
  if (x <= MAX_PLAUSIBLE_MPP && y <= MAX_PLAUSIBLE_MPP) return null;
  const stated = `${x.toPrecision(4)} × ${y.toPrecision(4)} µm/px`;
  const why =
    slide.format === 'dicom'
      ? 'PixelSpacing was probably derived from a wrong imaged volume size (OrthancWSIDicomizer assumes 15 × 15 mm unless given --imaged-width/--imaged-height)'
      : 'the file states a wrong resolution';
  return `${name}: ${stated} is implausible for microscopy (above ${MAX_PLAUSIBLE_MPP} µm/px): ${why}; give the true mpp in the metadata table (mpp column)`;
}
