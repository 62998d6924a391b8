/**
 * DICOM WSI (VL Whole Slide Microscopy, the format BIGPICTURE stores): one instance per pyramid
 * level, grouped by SeriesInstanceUID; TILED_FULL or TILED_SPARSE frames; JPEG, JPEG 2000,
 * JPEG-LS or native pixel data. Headers are parsed with dicom-parser; pixel data is never loaded
 * whole: frame positions are read from the encapsulation items and frames are read on demand.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import dicomParser, { type DataSet } from 'dicom-parser';
import { TesseraError } from '../errors.js';
import { decodeJpeg, type TileCrop } from './codecs/jpeg.js';
import { decodeJpeg2000, rgbFromYcbcrInPlace } from './codecs/jpeg2000.js';
import { decodeJpegLs } from './codecs/jpeg-ls.js';
import { FileSource } from './file-source.js';
import { rgbFromChannels, type RgbImage } from './rgb-image.js';
import type { LevelReader, SlideSource } from './tiled-slide.js';

const WSI_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.77.1.6';
const NATIVE_SYNTAXES = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);
const JPEG_SYNTAXES = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51']);
const JPEG2000_SYNTAXES = new Set(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203']);
const JPEG_LS_SYNTAXES = new Set(['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81']);
const MAX_HEADER_BYTES = 256 * 1024 * 1024;
const MAX_SIBLINGS_SCANNED = 2000;

/** True when the file has the DICOM Part 10 preamble ("DICM" at byte 128). */
export function hasDicomPreamble(head: Uint8Array): boolean {
  return head.length >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d;
}

interface Instance {
  source: FileSource;
  header: DataSet;
  pixelDataOffset: number;
  pixelDataLength: number;
  transferSyntax: string;
  imageType: string;
  totalColumns: number;
  totalRows: number;
}

/**
 * Opens a DICOM WSI from one of its instance files (the other instances of its series are found
 * in the same folder) or from a folder holding one series.
 */
export function openDicom(path: string, name: string, isDirectory: boolean): SlideSource {
  const instances: Instance[] = [];
  try {
    if (isDirectory) {
      for (const file of dicomFilesIn(path)) instances.push(readInstance(FileSource.open(file, basename(file)), basename(file)));
      const series = instances[0]?.header.string('x0020000e');
      if (instances.length === 0) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: folder holds no DICOM files`);
      if (instances.some((instance) => instance.header.string('x0020000e') !== series)) {
        throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: folder holds more than one DICOM series; open one of its files instead`);
      }
    } else {
      const first = readInstance(FileSource.open(path, name), name);
      instances.push(first);
      const series = first.header.string('x0020000e');
      if (series) {
        for (const file of dicomFilesIn(dirname(path))) {
          if (file === path) continue;
          const sibling = tryReadInstance(file);
          if (!sibling) continue;
          if (sibling.header.string('x0020000e') === series) instances.push(sibling);
          else sibling.source.close();
        }
      }
    }
    return buildSlide(instances, name);
  } catch (error) {
    for (const instance of instances) instance.source.close();
    throw error;
  }
}

function dicomFilesIn(folder: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    if (files.length >= MAX_SIBLINGS_SCANNED) break;
    if (!entry.isFile()) continue;
    const file = join(folder, entry.name);
    try {
      const source = FileSource.open(file, entry.name);
      const isDicom = source.size >= 132 && hasDicomPreamble(source.readAt(0, 132));
      source.close();
      if (isDicom) files.push(file);
    } catch {
      // Unreadable neighbours are not part of this slide.
    }
  }
  return files.sort();
}

function tryReadInstance(file: string): Instance | null {
  try {
    return readInstance(FileSource.open(file, basename(file)), basename(file));
  } catch {
    return null;
  }
}

function readInstance(source: FileSource, name: string): Instance {
  let header: DataSet | undefined;
  let prefixBytes = Math.min(source.size, 1024 * 1024);
  for (;;) {
    try {
      header = dicomParser.parseDicom(new Uint8Array(source.readAt(0, prefixBytes)), { untilTag: 'x7fe00010' });
      break;
    } catch (error) {
      if (prefixBytes >= source.size || prefixBytes >= MAX_HEADER_BYTES) {
        source.close();
        const reason = error instanceof Error ? error.message : typeof error === 'object' && error && 'exception' in error ? String((error as { exception: unknown }).exception) : String(error);
        throw new TesseraError('SLIDE_CORRUPT', `${name}: cannot parse the DICOM header: ${reason}`, { cause: error });
      }
      prefixBytes = Math.min(source.size, prefixBytes * 4, MAX_HEADER_BYTES);
    }
  }
  const fail = (code: 'SLIDE_CORRUPT' | 'SLIDE_UNSUPPORTED', reason: string): never => {
    source.close();
    throw new TesseraError(code, `${name}: ${reason}`);
  };
  const sopClass = header.string('x00080016');
  if (sopClass !== undefined && sopClass !== WSI_SOP_CLASS) fail('SLIDE_UNSUPPORTED', `DICOM SOP class ${sopClass} is not VL Whole Slide Microscopy`);
  const pixelData = header.elements['x7fe00010'];
  if (!pixelData) fail('SLIDE_CORRUPT', 'DICOM file has no pixel data');
  const totalColumns = header.uint32('x00480006') ?? header.uint16('x00280011') ?? 0;
  const totalRows = header.uint32('x00480007') ?? header.uint16('x00280010') ?? 0;
  if (totalColumns <= 0 || totalRows <= 0) fail('SLIDE_CORRUPT', 'DICOM file has no total pixel matrix size');
  return {
    source,
    header,
    pixelDataOffset: pixelData?.dataOffset ?? 0,
    pixelDataLength: pixelData?.length ?? 0,
    transferSyntax: header.string('x00020010') ?? '1.2.840.10008.1.2.1',
    // ImageType's third value: VOLUME for pyramid levels, LABEL / OVERVIEW / THUMBNAIL otherwise.
    imageType: (header.string('x00080008') ?? '').split('\\')[2]?.trim().toUpperCase() || 'VOLUME',
    totalColumns,
    totalRows,
  };
}

function buildSlide(instances: Instance[], name: string): SlideSource {
  const volumes = instances.filter((instance) => instance.imageType === 'VOLUME').sort((a, b) => b.totalColumns - a.totalColumns);
  const base = volumes[0];
  if (!base) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: DICOM series has no VOLUME image (only ${instances.map((i) => i.imageType).join(', ')})`);
  const levels: LevelReader[] = [];
  const used = new Set<Instance>();
  let previousWidth = Infinity;
  for (const instance of volumes) {
    if (instance.totalColumns >= previousWidth) continue; // a second instance of the same level
    previousWidth = instance.totalColumns;
    used.add(instance);
    const downsample = (base.totalColumns / instance.totalColumns + base.totalRows / instance.totalRows) / 2;
    levels.push(dicomLevel(instance, downsample, name));
  }
  const associatedImages = [...new Set(instances.filter((i) => i.imageType !== 'VOLUME').map((i) => i.imageType.toLowerCase()))];
  for (const instance of instances) if (!used.has(instance)) instance.source.close();
  const header = base.header;
  const properties: Record<string, string> = {};
  const propertyTags: Array<[string, string]> = [
    ['x00080070', 'dicom.Manufacturer'],
    ['x00081090', 'dicom.ManufacturerModelName'],
    ['x00020010', 'dicom.TransferSyntaxUID'],
    ['x00280004', 'dicom.PhotometricInterpretation'],
    ['x00209311', 'dicom.DimensionOrganizationType'],
  ];
  for (const [tag, key] of propertyTags) {
    const value = header.string(tag);
    if (value) properties[key] = value;
  }
  return {
    format: 'dicom',
    vendor: 'dicom',
    mpp: dicomMpp(base),
    objectivePower: objectivePower(header),
    associatedImages,
    properties,
    levels,
    close: () => {
      for (const instance of used) instance.source.close();
    },
  };
}

/** µm per pixel from PixelSpacing (mm, row then column) in the shared functional groups. */
function dicomMpp(instance: Instance): [number, number] | null {
  const shared = instance.header.elements['x52009229']?.items?.[0]?.dataSet;
  const measures = shared?.elements['x00289110']?.items?.[0]?.dataSet;
  const spacing = (measures?.string('x00280030') ?? instance.header.string('x00280030'))?.split('\\').map(Number);
  if (spacing && spacing.length === 2 && (spacing[0] ?? 0) > 0 && (spacing[1] ?? 0) > 0) {
    return [(spacing[1] ?? 0) * 1000, (spacing[0] ?? 0) * 1000];
  }
  const widthMm = Number(instance.header.string('x00480001'));
  const heightMm = Number(instance.header.string('x00480002'));
  if (widthMm > 0 && heightMm > 0) return [(widthMm * 1000) / instance.totalColumns, (heightMm * 1000) / instance.totalRows];
  return null;
}

function objectivePower(header: DataSet): number | null {
  const opticalPath = header.elements['x00480105']?.items?.[0]?.dataSet;
  const power = Number(opticalPath?.string('x00480112'));
  return power > 0 ? power : null;
}

function dicomLevel(instance: Instance, downsample: number, name: string): LevelReader {
  const { header, source } = instance;
  const tileWidth = header.uint16('x00280011') ?? 0;
  const tileHeight = header.uint16('x00280010') ?? 0;
  const frameCount = Number(header.string('x00280008') ?? '1') || 1;
  if (tileWidth <= 0 || tileHeight <= 0) throw new TesseraError('SLIDE_CORRUPT', `${name}: DICOM frame size is ${tileWidth}×${tileHeight}`);
  const tilesAcross = Math.ceil(instance.totalColumns / tileWidth);
  const tilesDown = Math.ceil(instance.totalRows / tileHeight);
  const frameAt = frameIndex(header, tilesAcross, tilesDown, frameCount, tileWidth, tileHeight);
  const frames = frameRanges(instance, frameCount, tileWidth, tileHeight, name);
  const decode = frameDecoder(instance, tileWidth, tileHeight, name);
  return {
    level: { width: instance.totalColumns, height: instance.totalRows, downsample, tileWidth, tileHeight },
    partialDecode: JPEG_SYNTAXES.has(instance.transferSyntax),
    async readTile(col, row, crop) {
      if (col < 0 || row < 0 || col >= tilesAcross || row >= tilesDown) return null;
      const frame = frameAt(col, row);
      if (frame === undefined) return null; // TILED_SPARSE: no frame here, background
      const parts = frames[frame];
      if (!parts) throw new TesseraError('SLIDE_CORRUPT', `${name}: frame ${frame + 1} is missing from the pixel data`);
      const bytes = parts.length === 1 ? source.readAt(parts[0]?.offset ?? 0, parts[0]?.length ?? 0) : Buffer.concat(parts.map((part) => source.readAt(part.offset, part.length)));
      return decode(bytes, crop);
    },
  };
}

/** Maps a tile position to its frame index: row-major for TILED_FULL, from plane positions for TILED_SPARSE. */
function frameIndex(header: DataSet, tilesAcross: number, tilesDown: number, frameCount: number, tileWidth: number, tileHeight: number): (col: number, row: number) => number | undefined {
  const perFrame = header.elements['x52009230']?.items;
  if (header.string('x00209311') === 'TILED_SPARSE' && perFrame) {
    const positions = new Map<number, number>();
    perFrame.forEach((item, frame) => {
      const position = item.dataSet?.elements['x0048021a']?.items?.[0]?.dataSet;
      const column = Number(position?.string('x0048021e'));
      const row = Number(position?.string('x0048021f'));
      if (column >= 1 && row >= 1) {
        const key = Math.floor((row - 1) / tileHeight) * tilesAcross + Math.floor((column - 1) / tileWidth);
        // With several focal planes or optical paths, the first frame at a position wins.
        if (!positions.has(key)) positions.set(key, frame);
      }
    });
    return (col, row) => positions.get(row * tilesAcross + col);
  }
  // TILED_FULL: frames in row-major order; further focal planes and optical paths follow.
  return (col, row) => {
    const frame = row * tilesAcross + col;
    return frame < frameCount && frame < tilesAcross * tilesDown ? frame : undefined;
  };
}

interface ByteRange {
  offset: number;
  length: number;
}

/** File ranges of each frame: fixed-size slices of native data, or encapsulated fragments. */
function frameRanges(instance: Instance, frameCount: number, tileWidth: number, tileHeight: number, name: string): ByteRange[][] {
  const { header, source, pixelDataOffset } = instance;
  if (NATIVE_SYNTAXES.has(instance.transferSyntax)) {
    const bytesPerSample = (header.uint16('x00280100') ?? 8) / 8;
    const frameBytes = tileWidth * tileHeight * (header.uint16('x00280002') ?? 1) * bytesPerSample;
    if (instance.pixelDataLength < frameBytes * frameCount) {
      throw new TesseraError('SLIDE_CORRUPT', `${name}: native pixel data holds ${instance.pixelDataLength} bytes, ${frameBytes * frameCount} expected for ${frameCount} frames`);
    }
    return Array.from({ length: frameCount }, (_, frame) => [{ offset: pixelDataOffset + frame * frameBytes, length: frameBytes }]);
  }
  // Encapsulated: an offset-table item, then one item per fragment, then a sequence delimiter.
  const fragments: ByteRange[] = [];
  let at = pixelDataOffset;
  let offsetTable: number[] = [];
  let first = true;
  let firstFragmentAt = 0;
  while (source.contains(at, 8)) {
    const item = source.readAt(at, 8);
    const group = item.readUInt16LE(0);
    const element = item.readUInt16LE(2);
    const length = item.readUInt32LE(4);
    if (group !== 0xfffe || element === 0xe0dd) break;
    if (element !== 0xe000 || !source.contains(at + 8, length)) {
      throw new TesseraError('SLIDE_CORRUPT', `${name}: broken pixel data item at byte ${at} (truncated?)`);
    }
    if (first) {
      const table = source.readAt(at + 8, length);
      offsetTable = Array.from({ length: length / 4 }, (_, i) => table.readUInt32LE(i * 4));
      first = false;
      firstFragmentAt = at + 8 + length;
    } else {
      fragments.push({ offset: at + 8, length });
    }
    at += 8 + length;
  }
  if (fragments.length === frameCount) return fragments.map((fragment) => [fragment]);
  if (frameCount === 1) return [fragments];
  if (offsetTable.length === frameCount) {
    // Several fragments per frame: the offset table says where each frame's first item starts.
    const starts = offsetTable.map((offset) => firstFragmentAt + offset);
    return starts.map((start, frame) => {
      const end = starts[frame + 1] ?? Infinity;
      return fragments.filter((fragment) => fragment.offset - 8 >= start && fragment.offset - 8 < end);
    });
  }
  throw new TesseraError('SLIDE_CORRUPT', `${name}: ${fragments.length} pixel data fragments for ${frameCount} frames and no offset table`);
}

function frameDecoder(instance: Instance, tileWidth: number, tileHeight: number, name: string): (bytes: Buffer, crop?: TileCrop) => Promise<RgbImage> {
  const { header, transferSyntax } = instance;
  const photometric = (header.string('x00280004') ?? 'RGB').trim();
  if (JPEG_SYNTAXES.has(transferSyntax)) return (bytes, crop) => decodeJpeg(bytes, crop);
  if (JPEG2000_SYNTAXES.has(transferSyntax)) return (bytes) => decodeJpeg2000(bytes);
  if (JPEG_LS_SYNTAXES.has(transferSyntax)) return (bytes) => decodeJpegLs(bytes);
  if (NATIVE_SYNTAXES.has(transferSyntax)) {
    const samples = header.uint16('x00280002') ?? 1;
    const bitsAllocated = header.uint16('x00280100') ?? 8;
    const bitsStored = header.uint16('x00280101') ?? bitsAllocated;
    const planar = header.uint16('x00280006') ?? 0;
    return async (bytes) => {
      let pixels: Uint8Array = bytes;
      if (bitsAllocated === 16) pixels = eightBitFromSixteen(bytes, bitsStored);
      else if (bitsAllocated !== 8) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: ${bitsAllocated}-bit DICOM pixel data is not supported`);
      if (planar === 1 && samples === 3) pixels = interleavePlanes(pixels, tileWidth * tileHeight);
      const image = rgbFromChannels(pixels, tileWidth, tileHeight, samples);
      if (photometric === 'MONOCHROME1') for (let i = 0; i < image.data.length; i++) image.data[i] = 255 - (image.data[i] ?? 0);
      if (photometric.startsWith('YBR_FULL')) rgbFromYcbcrInPlace(image.data);
      return image;
    };
  }
  throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: DICOM transfer syntax ${transferSyntax} is not supported`);
}

function eightBitFromSixteen(bytes: Buffer, bitsStored: number): Uint8Array {
  const out = new Uint8Array(bytes.length / 2);
  const shift = Math.max(0, bitsStored - 8);
  for (let i = 0; i < out.length; i++) out[i] = Math.min(255, bytes.readUInt16LE(i * 2) >> shift);
  return out;
}

function interleavePlanes(planar: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count * 3);
  for (let i = 0; i < count; i++) {
    out[i * 3] = planar[i] ?? 0;
    out[i * 3 + 1] = planar[count + i] ?? 0;
    out[i * 3 + 2] = planar[2 * count + i] ?? 0;
  }
  return out;
}
