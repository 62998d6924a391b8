/**
 * Region search as multipart/form-data: a file field `image` and the other fields as text
 * (`filter` and `exclude` as JSON strings), converted to the JSON body's types and checked with
 * the same schema.
 *
 * The body is read whole under the app's body limit (uploads are capped at that size anyway) and
 * parsed here, strictly, instead of streamed through busboy: busboy's errors reached the error
 * handler untyped (500 for a missing closing boundary, LF line ends, no `boundary=`), and a part
 * without Content-Disposition of 16–50 KB stalled its stream so the request never got an answer.
 * Every malformed body is an ApiError BAD_REQUEST that says what is wrong.
 */
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import { RegionSearchBody } from './schemas.js';

const validate = new Ajv({ allErrors: false, coerceTypes: true, strict: false }).compile(RegionSearchBody);
const JSON_FIELDS = new Set(['filter', 'exclude']);
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/** Limits of one multipart body (the whole body is already under the app's body limit). */
export const MULTIPART_LIMITS = { parts: 17, files: 1, fieldBytes: 64 * 1024, headerBytes: 8 * 1024 } as const;

/** One part of a multipart/form-data body. */
export interface FormPart {
  name: string;
  /** Present for file parts. */
  filename?: string;
  data: Buffer;
}

/** True when the request says its body is multipart/form-data. */
export function isMultipartRequest(request: FastifyRequest): boolean {
  const type = request.headers['content-type'];
  return typeof type === 'string' && /^\s*multipart\/form-data\b/i.test(type);
}

/**
 * The boundary of a multipart Content-Type header (RFC 2046: 1–70 characters; quoted when it
 * holds characters a token may not, such as spaces). @throws ApiError BAD_REQUEST
 */
export function boundaryOf(contentType: string): string {
  const match = /;\s*boundary\s*=\s*(?:"([^"]*)"|([^\s;,"]*))\s*(;|$)/i.exec(contentType);
  if (!match) {
    if (/;\s*boundary\s*=/i.test(contentType)) throw new ApiError('BAD_REQUEST', 'the multipart boundary is malformed: quote it when it contains spaces or separators (boundary="a b")');
    throw new ApiError('BAD_REQUEST', 'multipart/form-data needs a boundary parameter (Content-Type: multipart/form-data; boundary=…)');
  }
  const boundary = match[1] ?? match[2] ?? '';
  if (boundary.length < 1 || boundary.length > 70) throw new ApiError('BAD_REQUEST', `the multipart boundary must be 1 to 70 characters, got ${boundary.length}`);
  return boundary;
}

/**
 * Splits a multipart/form-data body into its parts. Lines end in CRLF; the body must end with the
 * closing delimiter; every part needs `Content-Disposition: form-data; name=…`.
 * @throws ApiError BAD_REQUEST naming what is malformed, PAYLOAD_TOO_LARGE past MULTIPART_LIMITS
 */
export function parseMultipart(contentType: string, body: Buffer): FormPart[] {
  const boundary = boundaryOf(contentType);
  const delimiter = Buffer.from(`--${boundary}`);
  const nextDelimiter = Buffer.concat([CRLF, delimiter]);
  // A preamble before the first delimiter is allowed (RFC 2046) and ignored.
  let at = body.subarray(0, delimiter.length).equals(delimiter) ? 0 : body.indexOf(nextDelimiter);
  if (at < 0) throw new ApiError('BAD_REQUEST', 'the multipart body does not contain its boundary');
  if (at > 0) at += CRLF.length;
  const parts: FormPart[] = [];
  for (;;) {
    at += delimiter.length;
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return parts; // "--": the closing delimiter
    // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
    while (body[at] === 0x20 || body[at] === 0x09) at++;
    if (at >= body.length) throw new ApiError('BAD_REQUEST', 'the multipart body ends without its closing boundary');
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) throw new ApiError('BAD_REQUEST', 'multipart lines must end in CRLF (\\r\\n)');
    at += CRLF.length;
    const headerEnd = body.indexOf(HEADER_END, at);
    if (headerEnd < 0 || headerEnd - at > MULTIPART_LIMITS.headerBytes) throw new ApiError('BAD_REQUEST', 'a multipart part has no end of headers (a blank line, CRLF CRLF) within 8 KiB');
    const headers = parseHeaders(body.subarray(at, headerEnd).toString('latin1'));
    const dataStart = headerEnd + HEADER_END.length;
    const dataEnd = body.indexOf(nextDelimiter, dataStart);
    if (dataEnd < 0) throw new ApiError('BAD_REQUEST', 'the multipart body ends inside a part: it is truncated, or has no closing boundary');
    if (parts.length === MULTIPART_LIMITS.parts) throw new ApiError('PAYLOAD_TOO_LARGE', `at most ${MULTIPART_LIMITS.parts} multipart parts are accepted`);
    const disposition = headers.get('content-disposition');
    if (!disposition) throw new ApiError('BAD_REQUEST', 'every multipart part needs a Content-Disposition: form-data; name="…" header');
    const { name, filename } = parseDisposition(disposition);
    const data = body.subarray(dataStart, dataEnd);
    if (filename === undefined && data.length > MULTIPART_LIMITS.fieldBytes) throw new ApiError('PAYLOAD_TOO_LARGE', `multipart field "${name}" is over ${MULTIPART_LIMITS.fieldBytes} bytes`);
    if (filename !== undefined && parts.filter((part) => part.filename !== undefined).length === MULTIPART_LIMITS.files) throw new ApiError('PAYLOAD_TOO_LARGE', 'one file per request');
    parts.push({ name, ...(filename === undefined ? {} : { filename }), data });
    at = dataEnd + CRLF.length;
  }
}

function parseHeaders(block: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of block.split('\r\n')) {
    if (line.includes('\n') || line.includes('\r')) throw new ApiError('BAD_REQUEST', 'multipart lines must end in CRLF (\\r\\n)');
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ApiError('BAD_REQUEST', 'a multipart part header is not "Name: value"');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

function parseDisposition(value: string): { name: string; filename?: string } {
  const [kind, ...params] = value.split(';');
  if (kind?.trim().toLowerCase() !== 'form-data') throw new ApiError('BAD_REQUEST', `a multipart part's Content-Disposition must be form-data, got "${kind?.trim().slice(0, 40)}"`);
  const found: Record<string, string> = {};
  for (const param of params) {
    const match = /^\s*([A-Za-z*]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]*))\s*$/.exec(param);
    if (match) found[(match[1] as string).toLowerCase()] = match[2] ?? match[3] ?? '';
  }
  if (!found.name) throw new ApiError('BAD_REQUEST', 'a multipart part has no name in its Content-Disposition');
  return { name: found.name, ...(found.filename === undefined ? {} : { filename: found.filename }) };
}

/** The region search body of a multipart request (its body already read as bytes). @throws ApiError BAD_REQUEST */
export function readMultipartQuery(request: FastifyRequest): RegionSearchBody & { imageBytes?: Buffer } {
  const body = request.body;
  if (!Buffer.isBuffer(body)) throw new ApiError('BAD_REQUEST', 'the multipart body is missing');
  // No prototype: a field named __proto__ is just a (refused) field.
  const fields: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let imageBytes: Buffer | undefined;
  for (const part of parseMultipart(String(request.headers['content-type']), body)) {
    if (part.filename !== undefined) {
      if (part.name !== 'image') throw new ApiError('BAD_REQUEST', `unexpected file field "${part.name}"; send the query image as "image"`);
      imageBytes = part.data;
      continue;
    }
    const value = part.data.toString('utf8');
    if (JSON_FIELDS.has(part.name)) {
      try {
        fields[part.name] = JSON.parse(value);
      } catch {
        throw new ApiError('BAD_REQUEST', `field "${part.name}" must be JSON`);
      }
    } else fields[part.name] = value;
  }
  if (!validate(fields)) {
    const [first] = validate.errors ?? [];
    throw new ApiError('BAD_REQUEST', `multipart field ${first?.instancePath || ''} ${first?.message ?? 'is invalid'}`.replace(/\s+/g, ' '));
  }
  return { ...(fields as RegionSearchBody), ...(imageBytes ? { imageBytes } : {}) };
}
