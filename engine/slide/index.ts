/** engine/slide: the only module outside which slides are just `Slide`s. */
export { openSlide, readableUnder, type OpenSlideOptions } from './open-slide.js';
export { calibrationWarning, MAX_PLAUSIBLE_MPP } from './calibration.js';
export type { Slide, SlideFormat, SlideInfo, SlideLevel } from './types.js';
export type { RgbImage } from './rgb-image.js';
export { MAX_REGION_PIXELS, type SlideAccess } from './tiled-slide.js';
export { tileCache, DEFAULT_TILE_CACHE_BYTES } from './tile-cache.js';
export { configureDecoding, type DecodeOptions } from './codecs/decode-pool.js';
export { hasNativeJpeg } from './codecs/jpeg.js';
export {
  configureDicomWeb,
  dicomWebSettings,
  dicomWebSeriesUrl,
  dicomWebStats,
  isDicomWebSeriesUrl,
  listDicomWebSeries,
  parseDicomWebSeriesUrl,
  type DicomWebOptions,
  type DicomWebSeries,
  type DicomWebSeriesRecord,
} from './dicomweb.js';
