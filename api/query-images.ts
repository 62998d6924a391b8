/**
 * Uploaded query images: PNG, JPEG or TIFF, decoded with sharp under a pixel cap that is checked
 * from the header before any pixel is decoded, so a decompression bomb costs nothing. A TIFF's
 * structure is checked against the file first, and every decoded image against its header.
 */
import sharp from 'sharp';
import type { RgbImage } from '../engine/index.js';
import { ApiError } from './errors.js';
import { checkTiffStructure, looksLikeTiff } from './tiff-check.js';

const FORMATS = new Set(['png', 'jpeg', 'tiff']);

/** @throws ApiError IMAGE_INVALID (unreadable, truncated, a damaged TIFF structure), UNSUPPORTED_MEDIA_TYPE, PAYLOAD_TOO_LARGE (over `maxPixels`) */
export async function decodeQueryImage(bytes: Buffer, maxPixels: number): Promise<RgbImage> {
  if (bytes.length === 0) throw new ApiError('IMAGE_INVALID', 'the image is empty');
  if (looksLikeTiff(bytes)) checkTiffStructure(bytes);
  let width: number | undefined;
  let height: number | undefined;
  let format: string | undefined;
  try {
    ({ width, height, format } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (error) {
    throw new ApiError('IMAGE_INVALID', `the image cannot be read: ${(error as Error).message}`);
  }
  if (!format || !FORMATS.has(format)) throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `query images must be PNG, JPEG or TIFF, got ${format ?? 'an unknown format'}`);
  if (!width || !height) throw new ApiError('IMAGE_INVALID', 'the image has no size');
  if (width * height > maxPixels) throw new ApiError('PAYLOAD_TOO_LARGE', `the image is ${width}×${height} px; at most ${maxPixels} pixels are accepted`);
  try {
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'truncated' }).flatten({ background: '#ffffff' }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    if (info.width !== width || info.height !== height) throw new Error(`the header says ${width}×${height} px, the pixels decode to ${info.width}×${info.height}`);
    return { data, width: info.width, height: info.height };
  } catch (error) {
    throw new ApiError('IMAGE_INVALID', `the image cannot be decoded: ${(error as Error).message}`);
  }
}

/** Decodes a base64 field. @throws ApiError IMAGE_INVALID */
export function bytesFromBase64(text: string, field: string): Buffer {
  const stripped = text.replace(/^data:[^;,]+;base64,/, '');
  if (!/^[A-Za-z0-9+/=\s]*$/.test(stripped)) throw new ApiError('IMAGE_INVALID', `${field} must be base64 (optionally a data: URL)`);
  return Buffer.from(stripped, 'base64');
}
