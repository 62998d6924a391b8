/**
 * DICOM WSI as a real converter writes it: the shared slides converted with Debian's
 * OrthancWSIDicomizer (orthanc-wsi), cached under .cache/dicom-conversions so that a conversion
 * runs once per machine. Used by the conformance test, the DICOMweb test and benchmarks/dicom.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openSlide } from '../../engine/index.js';
import { PROJECT_ROOT, slidePath } from '../shared-data.js';

export const DICOMIZER = '/usr/bin/OrthancWSIDicomizer';
/** OpenSlide's library, for sources the converter cannot read itself (NDPI). */
export const LIBOPENSLIDE = '/usr/lib/x86_64-linux-gnu/libopenslide.so.0';
export const hasDicomizer = existsSync(DICOMIZER);
export const DICOMIZER_MISSING = 'OrthancWSIDicomizer not installed (apt-get install orthanc-wsi)';
export const CONVERSIONS_ROOT = join(PROJECT_ROOT, '.cache', 'dicom-conversions');

export type Compression = 'jpeg' | 'jpeg2000' | 'none';
/** `one`: one instance per level (`--max-size 0`); `split`: several per level (`--max-size 1`, 1 MB each). */
export type Layout = 'one' | 'split';

export interface Conversion {
  /** Shared slide, relative to data/slides. */
  source: string;
  compression: Compression;
  layout: Layout;
  /** Read the source through OpenSlide (`--openslide`): the converter reads only TIFF itself. */
  viaOpenSlide?: boolean;
  /** `--imaged-width`, `--imaged-height` as given to the converter, instead of the true size crossed. */
  imagedMm?: [number, number];
}

export const CONVERSION_SOURCES: Array<Pick<Conversion, 'source' | 'viaOpenSlide'>> = [
  { source: 'CMU-1-Small-Region.svs' },
  { source: 'derived/cmu1-small-pyramid-jpeg.tif' },
  { source: 'ndpi/test3-DAPI-2-387.ndpi', viaOpenSlide: true },
];
export const COMPRESSIONS: Compression[] = ['jpeg', 'jpeg2000', 'none'];
export const LAYOUTS: Layout[] = ['one', 'split'];

export function allConversions(): Conversion[] {
  return CONVERSION_SOURCES.flatMap((source) => COMPRESSIONS.flatMap((compression) => LAYOUTS.map((layout) => ({ ...source, compression, layout }))));
}

export function conversionName(conversion: Conversion): string {
  const base = conversion.source.split('/').pop()?.replace(/\.[a-z]+$/i, '') ?? conversion.source;
  return `${base}-${conversion.compression}-${conversion.layout}${conversion.imagedMm ? `-imaged-${conversion.imagedMm.join('x')}mm` : ''}`;
}

/**
 * The folder of DICOM files for a conversion, converting on first use. The converter derives
 * PixelSpacing crosswise (imaged width ÷ rows, imaged height ÷ columns: OrthancWSIDicomizer 1.1),
 * so the true size is passed crossed for the files to state the true µm/px.
 */
export async function convertedSlide(conversion: Conversion): Promise<string> {
  const source = slidePath(conversion.source);
  const stat = statSync(source);
  const key = createHash('sha256').update(JSON.stringify([conversion, stat.size, stat.mtimeMs])).digest('hex').slice(0, 12);
  const folder = join(CONVERSIONS_ROOT, `${conversionName(conversion)}-${key}`);
  if (existsSync(folder)) return folder;
  const slide = await openSlide(source);
  const [mppX, mppY] = slide.mpp ?? [0, 0];
  const widthMm = (slide.width * mppX) / 1000;
  const heightMm = (slide.height * mppY) / 1000;
  slide.close();
  if (!(widthMm > 0 && heightMm > 0)) throw new Error(`${conversion.source} has no calibration to convert with`);
  const partial = `${folder}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const args = [
    '--folder', partial,
    '--compression', conversion.compression,
    '--max-size', conversion.layout === 'one' ? '0' : '1',
    // Crossed on purpose: see above.
    '--imaged-width', conversion.imagedMm ? String(conversion.imagedMm[0]) : heightMm.toFixed(6),
    '--imaged-height', conversion.imagedMm ? String(conversion.imagedMm[1]) : widthMm.toFixed(6),
    ...(conversion.viaOpenSlide ? ['--openslide', LIBOPENSLIDE] : []),
    source,
  ];
  execFileSync(DICOMIZER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  if (readdirSync(partial).length === 0) throw new Error(`${DICOMIZER} wrote nothing for ${conversionName(conversion)}`);
  try {
    renameSync(partial, folder);
  } catch (error) {
    // Another test file converted the same slide meanwhile: use theirs.
    rmSync(partial, { recursive: true, force: true });
    if (!existsSync(folder)) throw error;
  }
  return folder;
}
