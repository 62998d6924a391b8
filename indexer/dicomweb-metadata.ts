/**
 * Metadata for the series of a DICOMweb server (`index --dicomweb URL --metadata FILE`): rows of a
 * CSV table, or images of a BIGPICTURE MetaFleX dataset, matched to series by DICOM UID. A series
 * keeps its slide id (its SeriesInstanceUID) and its study and series UIDs; the row adds the rest.
 *
 * Keys, most specific first:
 * - CSV: `dicom_series_uid`, else `slide_id` (the slide id Tessera derives for a series is its
 *   SeriesInstanceUID), else a series URL in `path`; or `dicom_study_uid` alone, which describes
 *   every series of that study that no row names by series.
 * - MetaFleX: an IMAGE attribute tagged `SeriesInstanceUID` (or `StudyInstanceUID`).
 *
 * Nothing here talks to the server: the series come listed (discoverDicomWeb).
 */
import { basename } from 'node:path';
import { TesseraError, isDicomWebSeriesUrl, parseDicomWebSeriesUrl } from '../engine/index.js';
import { readCsv, type SlideItem } from './discover.js';
import { isMetaflex, slidesFromMetaflex } from './metaflex.js';

/** One row of metadata with the UIDs it describes. */
interface MetadataRow {
  /** Where it came from, for messages: "slides.csv row 3", "MetaFleX image IM-1". */
  where: string;
  series?: string;
  study?: string;
  metadata: Record<string, string>;
  mpp?: [number, number];
}

export interface DicomWebMetadataMatch {
  /** The series, with the metadata of the row that matched each. */
  items: SlideItem[];
  /** Series matched by their series UID, by their study UID, by nothing. */
  bySeries: number;
  byStudy: number;
  unmatchedSeries: number;
  /** Rows (or MetaFleX images) that matched no listed series, and images that carry no UID. */
  unmatchedRows: number;
}

/** Columns that are keys, not metadata; the server's own UIDs are kept as it reports them. */
const KEY_COLUMNS = new Set(['slide_id', 'path', 'mpp', 'dicom_series_uid', 'dicom_study_uid']);

/**
 * Adds the metadata of `metadataPath` (CSV or MetaFleX) to DICOMweb series items.
 * @throws TesseraError INVALID_ARGUMENT for a CSV row without a key, two rows for one series or
 *   study, or metadata of which no row matches any series (a wrong key, most likely)
 */
export function withDicomWebMetadata(series: SlideItem[], metadataPath: string): DicomWebMetadataMatch {
  // MetaFleX images without a UID attribute are counted, not refused: a dataset may describe files too.
  const { rows, unkeyed } = isMetaflex(metadataPath) ? metaflexRows(metadataPath) : { rows: csvRows(metadataPath), unkeyed: 0 };
  const bySeries = uniqueBy(rows, 'series');
  const byStudy = uniqueBy(
    rows.filter((row) => row.series === undefined),
    'study',
  );
  const used = new Set<MetadataRow>();
  const counts = { bySeries: 0, byStudy: 0, unmatchedSeries: 0 };
  const items = series.map((item) => {
    const seriesRow = bySeries.get(item.slideId);
    const row = seriesRow ?? byStudy.get(item.metadata.dicom_study_uid ?? '');
    if (!row) {
      counts.unmatchedSeries++;
      return item;
    }
    used.add(row);
    if (seriesRow) counts.bySeries++;
    else counts.byStudy++;
    const serverUids = { dicom_study_uid: item.metadata.dicom_study_uid, dicom_series_uid: item.metadata.dicom_series_uid };
    const metadata = Object.fromEntries(Object.entries({ ...item.metadata, ...row.metadata, ...serverUids }).filter((entry): entry is [string, string] => entry[1] !== undefined));
    return { ...item, metadata, ...(row.mpp ? { mpp: row.mpp } : {}) };
  });
  if (used.size === 0 && rows.length + unkeyed > 0) {
    throw new TesseraError(
      'INVALID_ARGUMENT',
      `${basename(metadataPath)}: none of its ${rows.length + unkeyed} rows matches a series the server lists (${series.length}); key rows by dicom_series_uid (or slide_id = SeriesInstanceUID) or dicom_study_uid, MetaFleX images by a SeriesInstanceUID or StudyInstanceUID attribute`,
    );
  }
  return { items, ...counts, unmatchedRows: rows.length - used.size + unkeyed };
}

function csvRows(path: string): MetadataRow[] {
  return readCsv(path).map((row, index) => {
    const where = `${basename(path)} row ${index + 2}`;
    const series = row.dicom_series_uid || row.slide_id || (row.path && isDicomWebSeriesUrl(row.path) ? parseDicomWebSeriesUrl(row.path).series : '');
    const study = row.dicom_study_uid || '';
    if (!series && !study) throw new TesseraError('INVALID_ARGUMENT', `${where}: a DICOMweb series is matched by dicom_series_uid, slide_id (its SeriesInstanceUID), a series URL in path, or dicom_study_uid; the row has none`);
    const metadata = Object.fromEntries(Object.entries(row).filter(([column, value]) => !KEY_COLUMNS.has(column) && value !== undefined && value !== ''));
    const mpp = Number(row.mpp);
    return { where, ...(series ? { series } : {}), ...(study ? { study } : {}), metadata, ...(mpp > 0 ? { mpp: [mpp, mpp] as [number, number] } : {}) };
  });
}

function metaflexRows(path: string): { rows: MetadataRow[]; unkeyed: number } {
  const rows: MetadataRow[] = [];
  let unkeyed = 0;
  for (const image of slidesFromMetaflex(path, undefined)) {
    const series = imageAttribute(image.metadata, /^seriesinstanceuid$|^series_instance_uid$/i);
    const study = imageAttribute(image.metadata, /^studyinstanceuid$|^study_instance_uid$/i);
    if (!series && !study) {
      unkeyed++;
      continue;
    }
    rows.push({ where: `MetaFleX image ${image.slideId}`, ...(series ? { series } : {}), ...(study ? { study } : {}), metadata: image.metadata });
  }
  return { rows, unkeyed };
}

/** An IMAGE attribute (flattened by metaflex.ts as `bp.image.TAG`) whose tag matches. */
function imageAttribute(metadata: Record<string, string>, tag: RegExp): string | undefined {
  const key = Object.keys(metadata).find((name) => name.startsWith('bp.image.') && tag.test(name.slice('bp.image.'.length)));
  return key === undefined ? undefined : metadata[key];
}

function uniqueBy(rows: MetadataRow[], key: 'series' | 'study'): Map<string, MetadataRow> {
  const found = new Map<string, MetadataRow>();
  for (const row of rows) {
    const uid = row[key];
    if (uid === undefined) continue;
    const other = found.get(uid);
    if (other) throw new TesseraError('INVALID_ARGUMENT', `${other.where} and ${row.where} both describe ${key} ${uid}`);
    found.set(uid, row);
  }
  return found;
}
