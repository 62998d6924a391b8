/**
 * DICOM WSI from a DICOMweb server (a hospital PACS, Orthanc, Google Healthcare, dcm4chee):
 * QIDO-RS finds slide-microscopy series, the series metadata (WADO-RS) describes its instances as
 * `DicomInstance`s for dicom-pyramid.ts, and frames are fetched with WADO-RS only when a read needs
 * them, in their stored transfer syntax. Frames asked for in the same turn of the event loop are
 * fetched together (`frames/3,4,9`), a bounded number of requests are in flight per server, and
 * 5xx answers, 429 and timeouts are retried with exponential backoff. The Authorization header
 * comes from configureDicomWeb and never appears in an error or a log line; neither does the URL
 * (names are series UIDs).
 */
import { TesseraError, isTesseraError } from '../errors.js';
import { buildDicomSlide, type DicomInstance } from './dicom-pyramid.js';
import type { SlideSource } from './tiled-slide.js';

export interface DicomWebOptions {
  /** Sent as the Authorization header with every request (e.g. `Bearer …`); never logged. */
  authorization?: string;
  /** Requests in flight per server (default 8). */
  concurrency?: number;
  /** Per-request timeout in ms (default 30 000). */
  timeoutMs?: number;
  /** Retries after a 5xx, 429, network error or timeout (default 4; backoff 250 ms × 2ⁿ). */
  retries?: number;
  /** Frames fetched in one WADO-RS request at most (default 16). */
  framesPerRequest?: number;
}

const settings: Required<Omit<DicomWebOptions, 'authorization'>> & { authorization: string | undefined } = {
  authorization: undefined,
  concurrency: 8,
  timeoutMs: 30_000,
  retries: 4,
  framesPerRequest: 16,
};

/** How DICOMweb servers are reached now: what a worker thread needs to open slides the same way. */
export function dicomWebSettings(): DicomWebOptions {
  return { ...settings, authorization: settings.authorization ?? '' };
}

/** Sets how DICOMweb servers are reached, for every slide opened afterwards. */
export function configureDicomWeb(options: DicomWebOptions): void {
  if (options.authorization !== undefined) settings.authorization = options.authorization || undefined;
  if (options.concurrency !== undefined) settings.concurrency = Math.max(1, Math.floor(options.concurrency));
  if (options.timeoutMs !== undefined) settings.timeoutMs = Math.max(1, options.timeoutMs);
  if (options.retries !== undefined) settings.retries = Math.max(0, Math.floor(options.retries));
  if (options.framesPerRequest !== undefined) settings.framesPerRequest = Math.max(1, Math.floor(options.framesPerRequest));
}

/** Counters since start: what a benchmark reports. */
export const dicomWebStats = { requests: 0, retries: 0, frames: 0, bytes: 0 };

const SERIES_URL = /^(https?:\/\/.+?)\/studies\/([0-9.]+)\/series\/([0-9.]+)\/?$/;

/** A DICOMweb series, as `{base}/studies/{study}/series/{series}`. */
export interface DicomWebSeries {
  /** The service root, e.g. `http://pacs:8042/dicom-web`. */
  base: string;
  study: string;
  series: string;
}

/** True when `locator` is a DICOMweb series URL (`http(s)://…/studies/UID/series/UID`). */
export function isDicomWebSeriesUrl(locator: string): boolean {
  return SERIES_URL.test(locator);
}

/** Splits a series URL into its service root and UIDs; INVALID_ARGUMENT when it is not one. */
export function parseDicomWebSeriesUrl(url: string): DicomWebSeries {
  const match = SERIES_URL.exec(url);
  if (!match) throw new TesseraError('INVALID_ARGUMENT', 'not a DICOMweb series URL (expected http(s)://HOST/ROOT/studies/UID/series/UID)');
  return { base: match[1] as string, study: match[2] as string, series: match[3] as string };
}

export function dicomWebSeriesUrl(series: DicomWebSeries): string {
  return `${series.base.replace(/\/+$/, '')}/studies/${series.study}/series/${series.series}`;
}

/** One slide-microscopy series found by QIDO-RS. */
export interface DicomWebSeriesRecord extends DicomWebSeries {
  url: string;
  /** PatientID as the server holds it: an identifier, to be pseudonymised before it is stored. */
  patientId: string | undefined;
  seriesDescription: string | undefined;
  instances: number | undefined;
}

/**
 * Lists the slide-microscopy (Modality SM) series of a server, of some studies, or the given
 * series, with QIDO-RS.
 * @throws TesseraError SLIDE_NOT_FOUND (server or study unknown), SLIDE_ACCESS_DENIED (401/403), SLIDE_CORRUPT (not DICOM JSON)
 */
export async function listDicomWebSeries(base: string, filter: { studies?: string[]; series?: string[] } = {}): Promise<DicomWebSeriesRecord[]> {
  const root = base.replace(/\/+$/, '');
  const queries = filter.studies && filter.studies.length > 0 ? filter.studies.map((study) => `${root}/studies/${study}/series?Modality=SM`) : [`${root}/series?Modality=SM`];
  const found = new Map<string, DicomWebSeriesRecord>();
  for (const query of queries) {
    const response = await request(query, 'application/dicom+json', 'series list');
    for (const record of parseJsonArray(response.body, 'series list')) {
      const study = firstString(record, '0020000D');
      const series = firstString(record, '0020000E');
      if (!study || !series) continue;
      if (filter.series && filter.series.length > 0 && !filter.series.includes(series)) continue;
      const instances = Number(firstValue(record, '00201209'));
      found.set(series, {
        base: root,
        study,
        series,
        url: dicomWebSeriesUrl({ base: root, study, series }),
        patientId: firstString(record, '00100020'),
        seriesDescription: firstString(record, '0008103E'),
        instances: Number.isFinite(instances) ? instances : undefined,
      });
    }
  }
  return [...found.values()];
}

/**
 * Opens a DICOMweb series as a slide source: reads the series metadata, asks for one frame of the
 * base level to learn the transfer syntax the server stores, and builds the pyramid.
 * @throws TesseraError SLIDE_NOT_FOUND, SLIDE_ACCESS_DENIED, SLIDE_UNSUPPORTED, SLIDE_CORRUPT
 */
export async function openDicomWeb(url: string): Promise<SlideSource> {
  const series = parseDicomWebSeriesUrl(url);
  const name = `DICOMweb series ${series.series}`;
  const metadata = parseJsonArray((await request(`${dicomWebSeriesUrl(series)}/metadata`, 'application/dicom+json', name)).body, name);
  const instances = metadata.filter((record) => firstString(record, '00080016') === undefined || firstString(record, '00080016') === '1.2.840.10008.5.1.4.1.1.77.1.6').map((record) => webInstance(series, record, name));
  if (instances.length === 0) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: holds no VL Whole Slide Microscopy instance`);
  // The metadata does not say how frames are stored; the first frame's answer does.
  const volumes = instances.filter((instance) => instance.imageType === 'VOLUME').sort((a, b) => b.totalColumns - a.totalColumns);
  const probe = volumes[0];
  if (probe) {
    await probe.readFrame(0);
    for (const instance of instances) if (!instance.transferSyntax) instance.transferSyntax = probe.transferSyntax;
    probe.properties['dicom.TransferSyntaxUID'] = probe.transferSyntax;
  }
  return buildDicomSlide(instances, name);
}

type DicomJson = Record<string, { vr?: string; Value?: unknown[]; BulkDataURI?: string } | undefined>;

function parseJsonArray(body: Buffer, name: string): DicomJson[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new TesseraError('SLIDE_CORRUPT', `${name}: the server's answer is not DICOM JSON`, { cause: error });
  }
  if (!Array.isArray(parsed)) throw new TesseraError('SLIDE_CORRUPT', `${name}: the server's answer is not a DICOM JSON array`);
  return parsed as DicomJson[];
}

function firstValue(record: DicomJson | undefined, tag: string): unknown {
  return record?.[tag]?.Value?.[0];
}

function firstString(record: DicomJson | undefined, tag: string): string | undefined {
  const value = firstValue(record, tag);
  if (value === undefined || value === null) return undefined;
  // PN values are objects ({Alphabetic: …}); nothing here reads names.
  return typeof value === 'object' ? undefined : String(value);
}

function items(record: DicomJson | undefined, tag: string): DicomJson[] {
  const value = record?.[tag]?.Value;
  return Array.isArray(value) ? (value as DicomJson[]) : [];
}

function webInstance(series: DicomWebSeries, record: DicomJson, seriesName: string): DicomInstance {
  const sopInstance = firstString(record, '00080018');
  if (!sopInstance) throw new TesseraError('SLIDE_CORRUPT', `${seriesName}: an instance has no SOP Instance UID`);
  const name = `${seriesName} instance ${sopInstance}`;
  const number = (tag: string): number | undefined => {
    const value = Number(firstValue(record, tag));
    return Number.isFinite(value) ? value : undefined;
  };
  const shared = items(record, '52009229')[0];
  const spacing = items(shared, '00289110')[0]?.['00280030']?.Value as number[] | undefined;
  const perFrame = items(record, '52009230');
  let positions: Array<[number, number]> | undefined = perFrame.length > 0 ? [] : undefined;
  for (const frame of perFrame) {
    const position = items(frame, '0048021A')[0];
    const column = Number(firstValue(position, '0048021E'));
    const row = Number(firstValue(position, '0048021F'));
    if (!Number.isFinite(column) || !Number.isFinite(row)) {
      positions = undefined;
      break;
    }
    positions?.push([column, row]);
  }
  const imageType = (record['00080008']?.Value as string[] | undefined)?.[2]?.trim().toUpperCase() || 'VOLUME';
  const power = Number(firstValue(items(record, '00480105')[0], '00480112'));
  const imagedWidth = number('00480001');
  const imagedHeight = number('00480002');
  const properties: Record<string, string> = {};
  for (const [tag, key] of [
    ['00080070', 'dicom.Manufacturer'],
    ['00081090', 'dicom.ManufacturerModelName'],
    ['00280004', 'dicom.PhotometricInterpretation'],
    ['00209311', 'dicom.DimensionOrganizationType'],
  ] as const) {
    const value = firstString(record, tag);
    if (value) properties[key] = value;
  }
  const instanceUrl = `${dicomWebSeriesUrl(series)}/instances/${sopInstance}`;
  const fetcher = new FrameFetcher(instanceUrl, name);
  const instance: DicomInstance = {
    name,
    seriesUid: series.series,
    imageType,
    totalColumns: number('00480006') ?? number('00280011') ?? 0,
    totalRows: number('00480007') ?? number('00280010') ?? 0,
    tileWidth: number('00280011') ?? 0,
    tileHeight: number('00280010') ?? 0,
    frameCount: number('00280008') ?? 1,
    // Learnt from the server's first frame (the metadata does not carry the file's transfer syntax).
    transferSyntax: '',
    photometric: (firstString(record, '00280004') ?? 'RGB').trim(),
    samplesPerPixel: number('00280002') ?? 1,
    bitsAllocated: number('00280100') ?? 8,
    bitsStored: number('00280101') ?? number('00280100') ?? 8,
    planarConfiguration: number('00280006') ?? 0,
    dimensionOrganization: firstString(record, '00209311'),
    concatenationFrameOffset: number('00209228'),
    instanceNumber: number('00200013') ?? 0,
    framePositions: positions,
    pixelSpacingMm: spacing && spacing.length === 2 ? [Number(spacing[0]), Number(spacing[1])] : undefined,
    imagedSizeMm: imagedWidth !== undefined && imagedHeight !== undefined ? [imagedWidth, imagedHeight] : undefined,
    objectivePower: power > 0 ? power : null,
    properties,
    readFrame: async (frame) => {
      const { bytes, transferSyntax } = await fetcher.frame(frame + 1);
      if (transferSyntax) instance.transferSyntax = transferSyntax;
      return bytes;
    },
    close: () => fetcher.close(),
  };
  return instance;
}

interface FetchedFrame {
  bytes: Buffer;
  transferSyntax: string | undefined;
}

/**
 * Gathers the frames of one instance asked for in the same turn of the event loop into WADO-RS
 * requests of up to `framesPerRequest` frames.
 */
class FrameFetcher {
  private queue = new Map<number, Array<{ resolve: (frame: FetchedFrame) => void; reject: (error: unknown) => void }>>();
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly name: string,
  ) {}

  frame(number: number): Promise<FetchedFrame> {
    if (this.closed) return Promise.reject(new TesseraError('INVALID_ARGUMENT', `${this.name}: slide is closed`));
    return new Promise((resolve, reject) => {
      const waiting = this.queue.get(number);
      if (waiting) waiting.push({ resolve, reject });
      else this.queue.set(number, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  close(): void {
    this.closed = true;
  }

  private flush(): void {
    this.scheduled = false;
    const numbers = [...this.queue.keys()].sort((a, b) => a - b);
    const waiting = this.queue;
    this.queue = new Map();
    for (let start = 0; start < numbers.length; start += settings.framesPerRequest) {
      const batch = numbers.slice(start, start + settings.framesPerRequest);
      this.fetchBatch(batch).then(
        (frames) => {
          batch.forEach((number, index) => {
            const frame = frames[index];
            for (const waiter of waiting.get(number) ?? []) {
              if (frame) waiter.resolve(frame);
              else waiter.reject(new TesseraError('SLIDE_CORRUPT', `${this.name}: the server sent ${frames.length} frames for ${batch.length} asked`));
            }
          });
        },
        (error: unknown) => {
          for (const number of batch) for (const waiter of waiting.get(number) ?? []) waiter.reject(error);
        },
      );
    }
  }

  private async fetchBatch(numbers: number[]): Promise<FetchedFrame[]> {
    const response = await request(`${this.url}/frames/${numbers.join(',')}`, 'multipart/related; type="application/octet-stream"; transfer-syntax=*', this.name);
    const parts = multipartParts(response.body, response.contentType, this.name);
    const outer = transferSyntaxOf(response.contentType);
    dicomWebStats.frames += parts.length;
    return parts.map((part) => ({ bytes: part.body, transferSyntax: transferSyntaxOf(part.contentType) ?? outer }));
  }
}

function transferSyntaxOf(contentType: string | undefined): string | undefined {
  return /transfer-syntax="?([0-9.]+)/i.exec(contentType ?? '')?.[1];
}

/** Splits a multipart/related body into its parts (headers, then bytes up to the next boundary). */
function multipartParts(body: Buffer, contentType: string | undefined, name: string): Array<{ contentType: string | undefined; body: Buffer }> {
  const boundary = /boundary="?([^";]+)"?/i.exec(contentType ?? '')?.[1];
  if (!boundary) {
    // A server may answer a single frame as a bare body.
    return [{ contentType, body }];
  }
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Array<{ contentType: string | undefined; body: Buffer }> = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const headerStart = at + delimiter.length;
    if (body[headerStart] === 0x2d && body[headerStart + 1] === 0x2d) break; // closing delimiter
    const headerEnd = body.indexOf('\r\n\r\n', headerStart);
    if (headerEnd < 0) throw new TesseraError('SLIDE_CORRUPT', `${name}: a multipart frame answer is cut short`);
    const headers = body.subarray(headerStart, headerEnd).toString('latin1');
    const next = body.indexOf(delimiter, headerEnd + 4);
    if (next < 0) throw new TesseraError('SLIDE_CORRUPT', `${name}: a multipart frame answer has no closing boundary`);
    // The CRLF before a delimiter belongs to the delimiter.
    const end = body[next - 2] === 0x0d && body[next - 1] === 0x0a ? next - 2 : next;
    parts.push({ contentType: /content-type:\s*([^\r\n]+)/i.exec(headers)?.[1], body: body.subarray(headerEnd + 4, end) });
    at = next;
  }
  return parts;
}

/** A bounded number of requests in flight per server. */
const inFlight = new Map<string, { active: number; waiting: Array<() => void> }>();

async function withSlot<T>(origin: string, work: () => Promise<T>): Promise<T> {
  let slot = inFlight.get(origin);
  if (!slot) inFlight.set(origin, (slot = { active: 0, waiting: [] }));
  const current = slot;
  if (current.active >= settings.concurrency) await new Promise<void>((resolve) => current.waiting.push(resolve));
  current.active++;
  try {
    return await work();
  } finally {
    current.active--;
    current.waiting.shift()?.();
  }
}

interface Answer {
  body: Buffer;
  contentType: string | undefined;
}

/** GET with timeout and retries; maps HTTP failures to TesseraErrors that name `what`, never the URL or the credentials. */
async function request(url: string, accept: string, what: string): Promise<Answer> {
  const origin = new URL(url).origin;
  for (let attempt = 0; ; attempt++) {
    try {
      return await withSlot(origin, async () => {
        dicomWebStats.requests++;
        let response: Response;
        try {
          response = await fetch(url, {
            headers: { accept, ...(settings.authorization ? { authorization: settings.authorization } : {}) },
            signal: AbortSignal.timeout(settings.timeoutMs),
          });
        } catch (error) {
          const timedOut = (error as Error).name === 'TimeoutError';
          throw new TesseraError('SLIDE_SOURCE_UNAVAILABLE', `${what}: the DICOMweb server ${timedOut ? `did not answer within ${settings.timeoutMs} ms` : 'cannot be reached'}`, { cause: error, transient: true });
        }
        const body = Buffer.from(await response.arrayBuffer());
        if (response.ok) {
          dicomWebStats.bytes += body.length;
          return { body, contentType: response.headers.get('content-type') ?? undefined };
        }
        const status = response.status;
        if (status >= 500 || status === 429) throw new TesseraError('SLIDE_SOURCE_UNAVAILABLE', `${what}: the DICOMweb server answered ${status}`, { transient: true });
        if (status === 401 || status === 403) throw new TesseraError('SLIDE_ACCESS_DENIED', `${what}: the DICOMweb server refused access (${status}); check the Authorization configured`);
        if (status === 404) throw new TesseraError('SLIDE_NOT_FOUND', `${what}: not on the DICOMweb server (404)`);
        if (status === 406 || status === 415) throw new TesseraError('SLIDE_UNSUPPORTED', `${what}: the DICOMweb server cannot send frames as stored (${status})`);
        throw new TesseraError('SLIDE_CORRUPT', `${what}: the DICOMweb server answered ${status}`);
      });
    } catch (error) {
      if (!isTesseraError(error) || !error.transient || attempt >= settings.retries) throw error;
      dicomWebStats.retries++;
      await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt * (0.75 + Math.random() * 0.5)));
    }
  }
}
