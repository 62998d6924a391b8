/**
 * Structural checks of an uploaded TIFF before it is decoded: every directory and every strip or
 * tile lies inside the file, the directory chain has no loop, and an uncompressed image holds the
 * bytes its size claims. libtiff (through sharp) decoded such files into padded pixels and the
 * query was searched as if sound. Only the upload path uses this; slides have their own parser.
 */
import { ApiError } from './errors.js';

const TAG = { width: 256, height: 257, bitsPerSample: 258, compression: 259, stripOffsets: 273, samplesPerPixel: 277, rowsPerStrip: 278, stripByteCounts: 279, tileWidth: 322, tileLength: 323, tileOffsets: 324, tileByteCounts: 325 } as const;
/** Bytes of one value of each TIFF field type (1 BYTE … 18 IFD8). */
const TYPE_BYTES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };
/** More directories than any query image has: a longer chain is a loop or garbage. */
const MAX_DIRECTORIES = 256;

/** True when the bytes start like a TIFF (II*\0, MM\0*, or BigTIFF's 43). */
export function looksLikeTiff(bytes: Buffer): boolean {
  if (bytes.length < 8) return false;
  const order = bytes.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return false;
  const magic = order === 'II' ? bytes.readUInt16LE(2) : bytes.readUInt16BE(2);
  return magic === 42 || magic === 43;
}

/**
 * Checks a TIFF's structure against its size. @throws ApiError IMAGE_INVALID naming the problem
 * (a directory or strip outside the file, a directory loop, fewer pixel bytes than claimed)
 */
export function checkTiffStructure(bytes: Buffer): void {
  const little = bytes.toString('latin1', 0, 2) === 'II';
  const big = (little ? bytes.readUInt16LE(2) : bytes.readUInt16BE(2)) === 43;
  const size = bytes.length;
  const u16 = (at: number) => (little ? bytes.readUInt16LE(at) : bytes.readUInt16BE(at));
  const u32 = (at: number) => (little ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
  const u64 = (at: number) => Number(little ? bytes.readBigUInt64LE(at) : bytes.readBigUInt64BE(at));
  const inside = (at: number, length: number) => at >= 0 && length >= 0 && at + length <= size;
  const invalid = (message: string) => new ApiError('IMAGE_INVALID', `the TIFF is damaged: ${message}`);

  if (big && (size < 16 || u16(4) !== 8)) throw invalid('its BigTIFF header is malformed');
  const entryBytes = big ? 20 : 12;
  const countBytes = big ? 8 : 2;
  const offsetBytes = big ? 8 : 4;
  const readOffset = (at: number) => (big ? u64(at) : u32(at));
  const seen = new Set<number>();
  let directory = readOffset(big ? 8 : 4);
  let index = 0;
  while (directory !== 0) {
    if (seen.has(directory)) throw invalid(`directory ${index} points back to the directory at byte ${directory} (a loop)`);
    if (seen.size === MAX_DIRECTORIES) throw invalid(`more than ${MAX_DIRECTORIES} directories`);
    seen.add(directory);
    if (!inside(directory, countBytes)) throw invalid(`directory ${index} starts at byte ${directory}, past the end of the ${size}-byte file`);
    const entries = big ? u64(directory) : u16(directory);
    const next = directory + countBytes + entries * entryBytes;
    if (!inside(directory + countBytes, entries * entryBytes + offsetBytes)) throw invalid(`directory ${index} (${entries} entries) runs past the end of the file`);
    const values = new Map<number, number[]>();
    for (let i = 0; i < entries; i++) {
      const at = directory + countBytes + i * entryBytes;
      const tag = u16(at);
      const type = u16(at + 2);
      const count = big ? u64(at + 4) : u32(at + 4);
      const width = TYPE_BYTES[type] ?? 1;
      const valueAt = at + 4 + offsetBytes;
      const external = count * width > offsetBytes;
      const dataAt = external ? readOffset(valueAt) : valueAt;
      if (!inside(dataAt, count * width)) throw invalid(`tag ${tag} of directory ${index} has its ${count} values at byte ${dataAt}, outside the file`);
      if (Object.values(TAG).includes(tag as never) && (type === 3 || type === 4 || type === 16)) {
        // Offsets and counts are the only arrays read: at most one value per strip or tile.
        const read = type === 3 ? u16 : type === 4 ? u32 : u64;
        values.set(tag, Array.from({ length: Math.min(count, 1 << 20) }, (_, k) => read(dataAt + k * width)));
      }
    }
    checkImageData(values, index, inside, invalid);
    directory = readOffset(next);
    index++;
  }
}

function checkImageData(values: Map<number, number[]>, index: number, inside: (at: number, length: number) => boolean, invalid: (message: string) => ApiError): void {
  const first = (tag: number) => values.get(tag)?.[0];
  const width = first(TAG.width);
  const height = first(TAG.height);
  if (width === undefined || height === undefined) return;
  const tiled = values.has(TAG.tileOffsets);
  const offsets = values.get(tiled ? TAG.tileOffsets : TAG.stripOffsets) ?? [];
  const counts = values.get(tiled ? TAG.tileByteCounts : TAG.stripByteCounts) ?? [];
  const kind = tiled ? 'tile' : 'strip';
  if (offsets.length === 0) throw invalid(`directory ${index} has no ${kind} offsets`);
  if (counts.length !== offsets.length) throw invalid(`directory ${index} lists ${offsets.length} ${kind} offsets and ${counts.length} byte counts`);
  offsets.forEach((offset, i) => {
    const count = counts[i] as number;
    if (!inside(offset, count)) throw invalid(`${kind} ${i} of directory ${index} lies at bytes ${offset}–${offset + count}, past the end of the file`);
  });
  const compression = first(TAG.compression) ?? 1;
  if (compression !== 1) return;
  // Uncompressed: the pixel bytes are fully determined by the header.
  const samples = first(TAG.samplesPerPixel) ?? 1;
  const bits = (values.get(TAG.bitsPerSample) ?? [1]).reduce((sum, value) => sum + value, 0) * (values.get(TAG.bitsPerSample)?.length === 1 ? samples : 1);
  let expected: number;
  if (tiled) {
    const tileWidth = first(TAG.tileWidth) ?? 0;
    const tileLength = first(TAG.tileLength) ?? 0;
    if (tileWidth < 1 || tileLength < 1) throw invalid(`directory ${index} is tiled without a tile size`);
    expected = Math.ceil(width / tileWidth) * Math.ceil(height / tileLength) * Math.ceil((tileWidth * bits) / 8) * tileLength;
  } else {
    expected = Math.ceil((width * bits) / 8) * height;
  }
  const stored = counts.reduce((sum, count) => sum + count, 0);
  if (stored < expected) throw invalid(`directory ${index} claims ${width}×${height} px uncompressed (${expected} bytes) but stores ${stored} bytes of pixels`);
}
