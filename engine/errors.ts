/**
 * TesseraError: the one error type the engine throws.
 *
 * Every failure a caller can act on has a stable `code`; the API maps codes to HTTP statuses
 * and the CLI prints the message and exits non-zero. Domain errors know nothing of HTTP.
 */

export const ERROR_CODES = [
  'SLIDE_NOT_FOUND',
  'SLIDE_UNSUPPORTED',
  'SLIDE_CORRUPT',
  'SLIDE_ACCESS_DENIED',
  'REGION_OUT_OF_BOUNDS',
  'REGION_INVALID',
  'REGION_TOO_LARGE',
  'LEVEL_INVALID',
  'MPP_MISSING',
  'ASSOCIATED_IMAGE_NOT_FOUND',
  'MODEL_NOT_FOUND',
  'MODEL_INVALID',
  'MODEL_MISMATCH',
  'DEVICE_UNAVAILABLE',
  'INDEX_NOT_FOUND',
  'INDEX_CORRUPT',
  'INDEX_OUTDATED',
  'INDEX_WRITE_FAILED',
  'INVALID_ARGUMENT',
  'SHARD_UNAVAILABLE',
  'CLUSTER_TOKEN_REJECTED',
  'SLIDE_SOURCE_UNAVAILABLE',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface TesseraErrorOptions {
  /** The library error or lower-level failure behind this one. */
  cause?: unknown;
  /** True when retrying the same operation might succeed (I/O hiccup, busy shard). */
  transient?: boolean;
}

export class TesseraError extends Error {
  readonly code: ErrorCode;
  readonly transient: boolean;

  constructor(code: ErrorCode, message: string, options: TesseraErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TesseraError';
    this.code = code;
    this.transient = options.transient ?? false;
  }
}

export function isTesseraError(value: unknown): value is TesseraError {
  return value instanceof TesseraError;
}
