/**
 * Region search as multipart/form-data: a file field `image` and the other fields as text
 * (`filter` and `exclude` as JSON strings), converted to the JSON body's types and checked with
 * the same schema.
 */
import { Ajv } from 'ajv';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';
import { RegionSearchBody } from './schemas.js';

const validate = new Ajv({ allErrors: false, coerceTypes: true, strict: false }).compile(RegionSearchBody);
const JSON_FIELDS = new Set(['filter', 'exclude']);

export async function readMultipartQuery(request: FastifyRequest, maxBytes: number): Promise<RegionSearchBody & { imageBytes?: Buffer }> {
  const fields: Record<string, unknown> = {};
  let imageBytes: Buffer | undefined;
  for await (const part of request.parts({ limits: { fileSize: maxBytes, files: 1, fields: 16, fieldSize: 64 * 1024 } })) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image') throw new ApiError('BAD_REQUEST', `unexpected file field "${part.fieldname}"; send the query image as "image"`);
      imageBytes = await part.toBuffer();
      continue;
    }
    const value = String(part.value);
    if (JSON_FIELDS.has(part.fieldname)) {
      try {
        fields[part.fieldname] = JSON.parse(value);
      } catch {
        throw new ApiError('BAD_REQUEST', `field "${part.fieldname}" must be JSON`);
      }
    } else fields[part.fieldname] = value;
  }
  if (!validate(fields)) {
    const [first] = validate.errors ?? [];
    throw new ApiError('BAD_REQUEST', `multipart field ${first?.instancePath || ''} ${first?.message ?? 'is invalid'}`.replace(/\s+/g, ' '));
  }
  return { ...(fields as RegionSearchBody), ...(imageBytes ? { imageBytes } : {}) };
}
