/**
 * What to index: slides from a folder, a list file or a metadata table; tile images from class
 * folders or a labels table. Each source becomes items with an id, a path and metadata.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { parse } from 'csv-parse/sync';
import { createHash } from 'node:crypto';
import { TesseraError, isDicomWebSeriesUrl, listDicomWebSeries, parseDicomWebSeriesUrl, type SlideSources } from '../engine/index.js';
import { isMetaflex, slidesFromMetaflex } from './metaflex.js';

const SLIDE_EXTENSIONS = new Set(['.svs', '.tif', '.tiff', '.ndpi', '.dcm', '.png', '.jpg', '.jpeg', '.ome.tif']);
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp']);

export interface SlideItem {
  slideId: string;
  path: string;
  metadata: Record<string, string>;
  /** µm/px from the metadata table (`mpp` column), for slides without calibration. */
  mpp?: [number, number];
}

export interface TileItem {
  tileId: string;
  path: string;
  /** `label` (class folder or labels table) and any extra columns. */
  metadata: Record<string, string>;
}

const METADATA_COLUMNS = ['slide_id', 'path', 'patient_id', 'dataset', 'organ', 'stain', 'species', 'diagnosis'];

/** Rows of a CSV table with a header line. @throws TesseraError INVALID_ARGUMENT naming the file */
export function readCsv(path: string): Array<Record<string, string>> {
  try {
    return parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true, trim: true, bom: true }) as Array<Record<string, string>>;
  } catch (error) {
    throw new TesseraError('INVALID_ARGUMENT', `${basename(path)}: cannot read the table: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Slide items from a folder (recursive), a text file of paths, and/or metadata: a CSV table, or a
 * BIGPICTURE MetaFleX dataset (a folder of its XML files, or one of them; see metaflex.ts).
 */
export function discoverSlides(source: string | undefined, metadataCsv: string | undefined): SlideItem[] {
  if (metadataCsv && isMetaflex(metadataCsv)) {
    const slidesDir = source && existsSync(source) && statSync(source).isDirectory() ? source : undefined;
    return slidesFromMetaflex(metadataCsv, slidesDir);
  }
  if (metadataCsv) {
    const rows = readCsv(metadataCsv);
    const base = source && existsSync(source) && statSync(source).isDirectory() ? source : dirname(metadataCsv);
    return rows.map((row, index) => {
      const rawPath = row.path || (row.slide_id ? row.slide_id : '');
      if (!rawPath) throw new TesseraError('INVALID_ARGUMENT', `${basename(metadataCsv)} row ${index + 2}: needs a path or slide_id (columns: ${METADATA_COLUMNS.join(', ')})`);
      const path = isDicomWebSeriesUrl(rawPath) || isAbsolute(rawPath) ? rawPath : resolve(base, rawPath);
      const { slide_id: slideId, path: _path, mpp, ...metadata } = row;
      const mppValue = Number(mpp);
      return { slideId: slideId || basename(path), path, metadata: dropEmpty(metadata), ...(mppValue > 0 ? { mpp: [mppValue, mppValue] as [number, number] } : {}) };
    });
  }
  if (!source) throw new TesseraError('INVALID_ARGUMENT', 'give --slides DIR|LIST or --metadata slides.csv');
  if (!existsSync(source)) throw new TesseraError('SLIDE_NOT_FOUND', `${source}: no such file or folder`);
  const paths = statSync(source).isDirectory()
    ? slideFilesIn(source)
    : !isTextList(source)
      ? [resolve(source)]
      : readFileSync(source, 'utf8')
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line && !line.startsWith('#'))
        .map((line) => (isDicomWebSeriesUrl(line) || isAbsolute(line) ? line : resolve(dirname(source), line)));
  return paths.map((path) => ({ slideId: statSync(source).isDirectory() ? relative(source, path) || basename(path) : basename(path), path, metadata: {} }));
}

/**
 * Slide items for the slide-microscopy series of a DICOMweb server (all, of some studies, or the
 * given series): slide id = SeriesInstanceUID, path = the series URL. The server's PatientID is
 * stored only as a pseudonym (`dicom:` + 16 hex digits of its sha256), so that slides of one
 * patient can be told apart and excluded without the index holding the identifier.
 */
export async function discoverDicomWeb(base: string, studies: string[], series: string[]): Promise<SlideItem[]> {
  const records = await listDicomWebSeries(base, { studies, series });
  if (records.length === 0) throw new TesseraError('SLIDE_NOT_FOUND', 'the DICOMweb server lists no slide-microscopy (SM) series for that selection');
  return records.map((record) => ({
    slideId: record.series,
    path: record.url,
    metadata: dropEmpty({
      dicom_study_uid: record.study,
      dicom_series_uid: record.series,
      ...(record.patientId ? { patient_id: `dicom:${createHash('sha256').update(record.patientId).digest('hex').slice(0, 16)}` } : {}),
      ...(record.seriesDescription ? { series_description: record.seriesDescription } : {}),
    }),
  }));
}

/**
 * The folders and DICOMweb servers that items lie in, recorded in index.json as the default
 * slide roots of a server: `folder` itself (the --slides or --tiles folder) for the files under
 * it, each other file's own folder, and the service root of each DICOMweb series. Folders inside
 * another listed one are dropped.
 */
export function sourcesOf(items: Array<{ path: string }>, folder: string | undefined): SlideSources {
  const given = folder && existsSync(folder) && statSync(folder).isDirectory() ? resolve(folder) : undefined;
  const folders = new Set<string>(given ? [given] : []);
  const servers = new Set<string>();
  for (const { path } of items) {
    if (isDicomWebSeriesUrl(path)) servers.add(parseDicomWebSeriesUrl(path).base.replace(/\/+$/, ''));
    else if (!given || !isInside(resolve(path), given)) folders.add(dirname(resolve(path)));
  }
  const sorted = [...folders].sort();
  return { folders: sorted.filter((candidate) => !sorted.some((other) => other !== candidate && isInside(candidate, other))), dicomWebServers: [...servers].sort() };
}

function isInside(path: string, folder: string): boolean {
  const rel = relative(folder, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** A list of paths is text; a slide file given as --slides is not (TIFF and DICOM headers hold NUL bytes early). */
function isTextList(path: string): boolean {
  return !readFileSync(path).subarray(0, 1024).includes(0);
}

/** Slide files under a folder; a folder of several DICOM files is one slide (one series). */
function slideFilesIn(folder: string): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    const entries = readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name));
    const dicom = entries.filter((entry) => entry.isFile() && extname(entry.name).toLowerCase() === '.dcm');
    if (dicom.length > 1) found.push(dir);
    for (const entry of entries) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && SLIDE_EXTENSIONS.has(extname(entry.name).toLowerCase()) && !(dicom.length > 1 && extname(entry.name).toLowerCase() === '.dcm')) found.push(path);
    }
  };
  walk(folder);
  return found;
}

/** Tile items from class folders (label = folder name) or a labels CSV (`file,label,…`). */
export function discoverTiles(folder: string, labelsCsv: string | undefined): TileItem[] {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new TesseraError('SLIDE_NOT_FOUND', `${folder}: no such folder`);
  if (labelsCsv) {
    return readCsv(labelsCsv).map((row, index) => {
      const { file, ...metadata } = row;
      if (!file) throw new TesseraError('INVALID_ARGUMENT', `${basename(labelsCsv)} row ${index + 2}: the file column is empty`);
      return { tileId: file, path: resolve(folder, file), metadata: dropEmpty(metadata) };
    });
  }
  const items: TileItem[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) {
        const label = relative(folder, dir);
        items.push({ tileId: relative(folder, path), path, metadata: label ? { label: basename(dir) } : {} });
      }
    }
  };
  walk(folder);
  return items;
}

function dropEmpty(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined && value !== ''));
}
