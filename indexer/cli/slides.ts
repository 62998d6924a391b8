/** Opening slides and query images for the commands that read them. */
import { TesseraError, configureDecoding, openSlide, type RgbImage, type Slide } from '../../engine/index.js';
import { UsageError, numberFlag } from './flags.js';

/** Opens a slide for `work` and closes it after, whatever happens. */
export async function withSlide<T>(path: string, work: (slide: Slide) => Promise<T>): Promise<T> {
  const slide = await openSlide(path);
  try {
    return await work(slide);
  } finally {
    slide.close();
  }
}

/** A query image read whole (PNG, JPEG, TIFF…). @throws TesseraError REGION_TOO_LARGE over 4096×4096 px, SLIDE_* when unreadable */
export async function wholeImage(path: string): Promise<RgbImage> {
  const slide = await openSlide(path);
  try {
    if (slide.width * slide.height > 4096 * 4096) throw new TesseraError('REGION_TOO_LARGE', `${path.split('/').pop()}: a query image must be at most 4096×4096 px; query a region of a slide instead`);
    return await slide.readRegion(0, 0, 0, slide.width, slide.height);
  } finally {
    slide.close();
  }
}

/** --threads: JPEG 2000 / JPEG-LS decode threads, 1 to 64 (default 1). */
export function configureThreads(value: string | undefined): void {
  const threads = numberFlag(value, 'threads', 1);
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new UsageError(`--threads must be an integer from 1 to 64, got '${value}'`);
  configureDecoding({ decodeThreads: threads });
}

/** How slides are named and reached: shown by the --help of every command that opens one. */
export const DICOMWEB_DETAILS = `A SLIDE is a file, a folder holding one DICOM series, or a DICOMweb series URL
(http(s)://HOST/ROOT/studies/UID/series/UID). DICOMweb requests carry the Authorization header
from $TESSERA_DICOMWEB_AUTHORIZATION, or from the file named by $TESSERA_DICOMWEB_AUTHORIZATION_FILE.`;
