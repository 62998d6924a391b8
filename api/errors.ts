/**
 * Every error the API answers with: engine codes plus the HTTP-only ones, each mapped to one
 * status in one table (a new engine code without a status does not compile). Handlers throw;
 * the error handler here formats `{ error, message }`.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { isTesseraError, type ErrorCode } from '../engine/index.js';

export type ApiErrorCode =
  | ErrorCode
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'NOT_ACCEPTABLE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'IMAGE_INVALID'
  | 'RATE_LIMITED'
  | 'NOT_READY'
  | 'METHOD_NOT_ALLOWED'
  | 'REQUEST_TIMEOUT'
  | 'HEADERS_TOO_LARGE'
  | 'TOO_MANY_CONNECTIONS'
  | 'RELOAD_IN_PROGRESS'
  | 'DEADLINE_EXCEEDED'
  | 'INTERNAL';

export const STATUS_BY_CODE: Record<ApiErrorCode, number> = {
  SLIDE_NOT_FOUND: 404,
  SLIDE_UNSUPPORTED: 422,
  SLIDE_CORRUPT: 422,
  SLIDE_ACCESS_DENIED: 403,
  REGION_OUT_OF_BOUNDS: 400,
  REGION_INVALID: 400,
  REGION_TOO_LARGE: 413,
  LEVEL_INVALID: 400,
  MPP_MISSING: 422,
  ASSOCIATED_IMAGE_NOT_FOUND: 404,
  MODEL_NOT_FOUND: 404,
  MODEL_INVALID: 422,
  MODEL_MISMATCH: 409,
  DEVICE_UNAVAILABLE: 503,
  INDEX_NOT_FOUND: 503,
  INDEX_CORRUPT: 503,
  INDEX_OUTDATED: 503,
  INDEX_WRITE_FAILED: 503,
  INVALID_ARGUMENT: 400,
  SHARD_UNAVAILABLE: 503,
  // The router's configuration, not the caller's request: a server-side failure, and not one a retry fixes.
  CLUSTER_TOKEN_REJECTED: 503,
  SLIDE_SOURCE_UNAVAILABLE: 502,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NOT_ACCEPTABLE: 406,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IMAGE_INVALID: 400,
  RATE_LIMITED: 429,
  NOT_READY: 503,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  HEADERS_TOO_LARGE: 431,
  TOO_MANY_CONNECTIONS: 429,
  RELOAD_IN_PROGRESS: 409,
  DEADLINE_EXCEEDED: 503,
  INTERNAL: 500,
};

export class ApiError extends Error {
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get statusCode(): number {
    return STATUS_BY_CODE[this.code];
  }
}

/** Fastify's and its plugins' own error codes, for bad requests they reject before a handler runs. */
const FASTIFY_CODES: Record<string, ApiErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_REQ_FILE_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_FILES_LIMIT: 'PAYLOAD_TOO_LARGE',
  FST_PARTS_LIMIT: 'PAYLOAD_TOO_LARGE',
  FST_FIELDS_LIMIT: 'PAYLOAD_TOO_LARGE',
  FST_PROTO_VIOLATION: 'BAD_REQUEST',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  ERR_HTTP_REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  // The client went away mid-body: nobody reads the answer, but it is not the server's failure.
  ECONNRESET: 'BAD_REQUEST',
  FST_ERR_RATE_LIMIT: 'RATE_LIMITED',
};

/** What an error becomes on the wire. Unknown errors are 500 with a generic message (details go to the log). */
export function describeError(error: unknown): { status: number; code: ApiErrorCode; message: string } {
  if (error instanceof ApiError) return { status: error.statusCode, code: error.code, message: error.message };
  if (isTesseraError(error)) return { status: STATUS_BY_CODE[error.code], code: error.code, message: error.message };
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return { status: 400, code: 'BAD_REQUEST', message: fastifyError.message };
  const mapped = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (mapped) return { status: STATUS_BY_CODE[mapped], code: mapped, message: fastifyError.message };
  if (error instanceof SyntaxError || (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500)) {
    const status = fastifyError.statusCode && fastifyError.statusCode < 500 ? fastifyError.statusCode : 400;
    return { status, code: status === 413 ? 'PAYLOAD_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : status === 429 ? 'RATE_LIMITED' : 'BAD_REQUEST', message: fastifyError.message };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal error; the server log has the details' };
}

export function installErrorHandler(app: FastifyInstance, onError: (code: ApiErrorCode) => void): void {
  app.setErrorHandler((error, request, reply) => {
    const { status, code, message } = describeError(error);
    onError(code);
    if (status >= 500 && code === 'INTERNAL') request.log.error({ err: error }, 'request failed');
    else request.log.info({ code, status }, 'request refused');
    void reply.status(status).send({ error: code, message });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` });
  });
}
