/**
 * A small TIFF / BigTIFF structure parser: IFD chains, SubIFD trees and tag values.
 *
 * It reads structure only (no pixels) and loads every tag value eagerly, because slide readers
 * need the tile offset tables anyway. It must never trust sizes from the file: every count and
 * offset is checked against the file size before anything is allocated.
 */
import { TesseraError } from '../errors.js';
import type { FileSource } from './file-source.js';

export const Tag = {
  NewSubfileType: 254,
  ImageWidth: 256,
  ImageLength: 257,
  BitsPerSample: 258,
  Compression: 259,
  Photometric: 262,
  ImageDescription: 270,
  Make: 271,
  Model: 272,
  StripOffsets: 273,
  SamplesPerPixel: 277,
  RowsPerStrip: 278,
  StripByteCounts: 279,
  XResolution: 282,
  YResolution: 283,
  PlanarConfiguration: 284,
  ResolutionUnit: 296,
  Software: 305,
  DateTime: 306,
  Predictor: 317,
  TileWidth: 322,
  TileLength: 323,
  TileOffsets: 324,
  TileByteCounts: 325,
  SubIFDs: 330,
  ExtraSamples: 338,
  SampleFormat: 339,
  JPEGTables: 347,
  YCbCrSubSampling: 530,
  ReferenceBlackWhite: 532,
  ICCProfile: 34675,
  // Hamamatsu NDPI private tags.
  NdpiFormatFlag: 65420,
  NdpiSourceLens: 65421,
  NdpiXOffset: 65422,
  NdpiYOffset: 65423,
  NdpiFocalPlane: 65424,
  NdpiMcuStarts: 65426,
  NdpiReference: 65427,
  NdpiScannerSerial: 65442,
  NdpiPropertyMap: 65449,
} as const;

export type TagValue = string | number[] | Uint8Array;

/** One image file directory with its values and, if present, its SubIFD children. */
export interface TiffIfd {
  /** File offset of the directory (a stable identity for the image). */
  offset: number;
  tags: Map<number, TagValue>;
  subIfds: TiffIfd[];
}

export interface TiffStructure {
  littleEndian: boolean;
  bigTiff: boolean;
  /** The main IFD chain, in file order. */
  ifds: TiffIfd[];
}

// Bytes per value for each TIFF field type (index = type code).
const TYPE_SIZES: Record<number, number> = {
  1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8,
};
const MAX_IFDS = 4096;
const MAX_TAG_BYTES = 256 * 1024 * 1024;

/** Parses the structure of a TIFF or BigTIFF file. Throws SLIDE_UNSUPPORTED or SLIDE_CORRUPT. */
export function parseTiff(source: FileSource, name: string): TiffStructure {
  const header = source.readAt(0, 16);
  const order = String.fromCharCode(header[0] ?? 0, header[1] ?? 0);
  if (order !== 'II' && order !== 'MM') {
    throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: not a TIFF file (no II/MM byte-order mark)`);
  }
  const littleEndian = order === 'II';
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const magic = view.getUint16(2, littleEndian);
  let bigTiff: boolean;
  let firstOffset: number;
  if (magic === 42) {
    bigTiff = false;
    firstOffset = view.getUint32(4, littleEndian);
  } else if (magic === 43) {
    bigTiff = true;
    firstOffset = Number(view.getBigUint64(8, littleEndian));
  } else {
    throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: not a TIFF file (magic number ${magic})`);
  }
  const parser = new IfdParser(source, name, littleEndian, bigTiff);
  const ifds = parser.readChain(firstOffset, true);
  if (ifds.length === 0) throw new TesseraError('SLIDE_CORRUPT', `${name}: TIFF has no image directory`);
  return { littleEndian, bigTiff, ifds };
}

class IfdParser {
  private readonly seen = new Set<number>();

  constructor(
    private readonly source: FileSource,
    private readonly name: string,
    private readonly littleEndian: boolean,
    private readonly bigTiff: boolean,
  ) {}

  readChain(firstOffset: number, followSubIfds: boolean): TiffIfd[] {
    const ifds: TiffIfd[] = [];
    let offset = firstOffset;
    while (offset !== 0) {
      if (ifds.length >= MAX_IFDS) this.corrupt('too many image directories');
      if (this.seen.has(offset)) this.corrupt(`image directory loop at offset ${offset}`);
      this.seen.add(offset);
      const { ifd, next } = this.readIfd(offset);
      if (followSubIfds) {
        const subOffsets = ifd.tags.get(Tag.SubIFDs);
        if (Array.isArray(subOffsets)) {
          // SubIFD pyramids store one directory per reduced level, either as an array of offsets
          // (each a single directory, whose next pointers some writers fill in anyway) or as a chain.
          if (subOffsets.length === 1) ifd.subIfds.push(...this.readChain(subOffsets[0] ?? 0, false));
          else for (const subOffset of subOffsets) ifd.subIfds.push(this.readSingle(subOffset));
        }
      }
      ifds.push(ifd);
      offset = next;
    }
    return ifds;
  }

  private readSingle(offset: number): TiffIfd {
    if (this.seen.has(offset)) this.corrupt(`image directory loop at offset ${offset}`);
    this.seen.add(offset);
    return this.readIfd(offset).ifd;
  }

  private readIfd(offset: number): { ifd: TiffIfd; next: number } {
    const countSize = this.bigTiff ? 8 : 2;
    const entrySize = this.bigTiff ? 20 : 12;
    const pointerSize = this.bigTiff ? 8 : 4;
    this.checkRange(offset, countSize, 'image directory');
    const countBytes = this.source.readAt(offset, countSize);
    const count = this.bigTiff ? Number(this.view(countBytes).getBigUint64(0, this.littleEndian)) : this.view(countBytes).getUint16(0, this.littleEndian);
    if (count === 0 || count > 10000) this.corrupt(`image directory at offset ${offset} has ${count} entries`);
    const tableLength = count * entrySize + pointerSize;
    this.checkRange(offset + countSize, tableLength, 'image directory');
    const table = this.source.readAt(offset + countSize, tableLength);
    const view = this.view(table);
    const tags = new Map<number, TagValue>();
    for (let i = 0; i < count; i++) {
      const entry = i * entrySize;
      const tag = view.getUint16(entry, this.littleEndian);
      const type = view.getUint16(entry + 2, this.littleEndian);
      const valueCount = this.bigTiff ? Number(view.getBigUint64(entry + 4, this.littleEndian)) : view.getUint32(entry + 4, this.littleEndian);
      const typeSize = TYPE_SIZES[type];
      if (typeSize === undefined) continue; // unknown field types are skipped, as the TIFF spec asks
      const byteLength = valueCount * typeSize;
      if (byteLength > MAX_TAG_BYTES) this.corrupt(`tag ${tag} claims ${byteLength} bytes`);
      const inlineAt = entry + (this.bigTiff ? 12 : 8);
      let bytes: Uint8Array;
      if (byteLength <= pointerSize) {
        bytes = table.subarray(inlineAt, inlineAt + byteLength);
      } else {
        const valueOffset = this.bigTiff ? Number(view.getBigUint64(inlineAt, this.littleEndian)) : view.getUint32(inlineAt, this.littleEndian);
        this.checkRange(valueOffset, byteLength, `value of tag ${tag}`);
        bytes = this.source.readAt(valueOffset, byteLength);
      }
      tags.set(tag, this.decodeValue(type, valueCount, bytes));
    }
    const next = this.bigTiff
      ? Number(view.getBigUint64(count * entrySize, this.littleEndian))
      : view.getUint32(count * entrySize, this.littleEndian);
    if (next !== 0) this.checkRange(next, countSize, 'next image directory');
    return { ifd: { offset, tags, subIfds: [] }, next };
  }

  private decodeValue(type: number, count: number, bytes: Uint8Array): TagValue {
    const view = this.view(bytes);
    const le = this.littleEndian;
    switch (type) {
      case 2: {
        const end = bytes.indexOf(0);
        // TIFF says 7-bit ASCII; OME-XML and some vendors write UTF-8 ("µm"), which ASCII text survives unchanged.
        return Buffer.from(bytes.subarray(0, end === -1 ? bytes.length : end)).toString('utf8');
      }
      case 1:
      case 7:
        return Uint8Array.from(bytes);
      case 6:
        return Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, count));
      default: {
        const values = new Array<number>(count);
        for (let i = 0; i < count; i++) {
          switch (type) {
            case 3: values[i] = view.getUint16(i * 2, le); break;
            case 8: values[i] = view.getInt16(i * 2, le); break;
            case 4: case 13: values[i] = view.getUint32(i * 4, le); break;
            case 9: values[i] = view.getInt32(i * 4, le); break;
            case 5: values[i] = view.getUint32(i * 8, le) / (view.getUint32(i * 8 + 4, le) || 1); break;
            case 10: values[i] = view.getInt32(i * 8, le) / (view.getInt32(i * 8 + 4, le) || 1); break;
            case 11: values[i] = view.getFloat32(i * 4, le); break;
            case 12: values[i] = view.getFloat64(i * 8, le); break;
            case 16: case 18: values[i] = Number(view.getBigUint64(i * 8, le)); break;
            case 17: values[i] = Number(view.getBigInt64(i * 8, le)); break;
            default: values[i] = 0;
          }
        }
        return values;
      }
    }
  }

  private view(bytes: Uint8Array): DataView {
    return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (!this.source.contains(offset, length)) {
      this.corrupt(`${what} at offset ${offset} lies beyond the end of the file (${this.source.size} bytes; truncated?)`);
    }
  }

  private corrupt(reason: string): never {
    throw new TesseraError('SLIDE_CORRUPT', `${this.name}: ${reason}`);
  }
}

/** A tag's numeric value, or undefined when the tag is absent or not numeric. */
export function tagNumber(ifd: TiffIfd, tag: number): number | undefined {
  const value = ifd.tags.get(tag);
  if (Array.isArray(value)) return value[0];
  if (value instanceof Uint8Array) return value[0];
  return undefined;
}

export function tagNumbers(ifd: TiffIfd, tag: number): number[] | undefined {
  const value = ifd.tags.get(tag);
  if (Array.isArray(value)) return value;
  if (value instanceof Uint8Array) return Array.from(value);
  return undefined;
}

export function tagString(ifd: TiffIfd, tag: number): string | undefined {
  const value = ifd.tags.get(tag);
  return typeof value === 'string' ? value : undefined;
}

export function tagBytes(ifd: TiffIfd, tag: number): Uint8Array | undefined {
  const value = ifd.tags.get(tag);
  return value instanceof Uint8Array ? value : undefined;
}
