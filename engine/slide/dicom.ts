/**
 * DICOM WSI files (VL Whole Slide Microscopy, the format BIGPICTURE stores): the instances of one
 * SeriesInstanceUID in a folder, described as `DicomInstance`s for dicom-pyramid.ts, which builds
 * the levels. Headers are parsed with dicom-parser; pixel data is never loaded whole: frame
 * positions are read from the encapsulation items and frames are read on demand.
 */
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import dicomParser, { type DataSet } from 'dicom-parser';
import { TesseraError } from '../errors.js';
import { buildDicomSlide, nativeFrameBytes, NATIVE_SYNTAXES, WSI_SOP_CLASS, type DicomInstance } from './dicom-pyramid.js';
import { FileSource } from './file-source.js';
import type { SlideSource } from './tiled-slide.js';

const MAX_HEADER_BYTES = 256 * 1024 * 1024;
const MAX_SIBLINGS_SCANNED = 2000;

/** True when the file has the DICOM Part 10 preamble ("DICM" at byte 128). */
export function hasDicomPreamble(head: Uint8Array): boolean {
  return head.length >= 132 && head[128] === 0x44 && head[129] === 0x49 && head[130] === 0x43 && head[131] === 0x4d;
}

/**
 * Opens a DICOM WSI from one of its instance files (the other instances of its series are found
 * in the same folder) or from a folder holding one series.
 */
export function openDicom(path: string, name: string, isDirectory: boolean): SlideSource {
  const instances: DicomInstance[] = [];
  try {
    if (isDirectory) {
      for (const file of dicomFilesIn(path)) instances.push(readInstance(FileSource.open(file, basename(file)), basename(file)));
      const series = instances[0]?.seriesUid;
      if (instances.length === 0) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: folder holds no DICOM files`);
      if (instances.some((instance) => instance.seriesUid !== series)) {
        throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: folder holds more than one DICOM series; open one of its files instead`);
      }
    } else {
      const first = readInstance(FileSource.open(path, name), name);
      instances.push(first);
      const series = first.seriesUid;
      if (series) {
        for (const file of dicomFilesIn(dirname(path))) {
          if (file === path) continue;
          const sibling = tryReadInstance(file);
          if (!sibling) continue;
          if (sibling.seriesUid === series) instances.push(sibling);
          else sibling.close();
        }
      }
    }
    return buildDicomSlide(instances, name);
  } catch (error) {
    for (const instance of instances) instance.close();
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

function tryReadInstance(file: string): DicomInstance | null {
  try {
    return readInstance(FileSource.open(file, basename(file)), basename(file));
  } catch {
    return null;
  }
}

function readInstance(source: FileSource, name: string): DicomInstance {
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
  return fileInstance(source, header, name, pixelData?.dataOffset ?? 0, pixelData?.length ?? 0, totalColumns, totalRows);
}

function fileInstance(source: FileSource, header: DataSet, name: string, pixelDataOffset: number, pixelDataLength: number, totalColumns: number, totalRows: number): DicomInstance {
  const shared = header.elements['x52009229']?.items?.[0]?.dataSet;
  const spacing = (shared?.elements['x00289110']?.items?.[0]?.dataSet?.string('x00280030') ?? header.string('x00280030'))?.split('\\').map(Number);
  const imagedWidth = header.float('x00480001');
  const imagedHeight = header.float('x00480002');
  const opticalPath = header.elements['x00480105']?.items?.[0]?.dataSet;
  const power = Number(opticalPath?.string('x00480112'));
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
  const instance: Omit<DicomInstance, 'readFrame'> = {
    name,
    seriesUid: header.string('x0020000e'),
    // ImageType's third value: VOLUME for pyramid levels, LABEL / OVERVIEW / THUMBNAIL otherwise.
    imageType: (header.string('x00080008') ?? '').split('\\')[2]?.trim().toUpperCase() || 'VOLUME',
    totalColumns,
    totalRows,
    tileWidth: header.uint16('x00280011') ?? 0,
    tileHeight: header.uint16('x00280010') ?? 0,
    frameCount: Number(header.string('x00280008') ?? '1') || 1,
    transferSyntax: header.string('x00020010') ?? '1.2.840.10008.1.2.1',
    photometric: (header.string('x00280004') ?? 'RGB').trim(),
    samplesPerPixel: header.uint16('x00280002') ?? 1,
    bitsAllocated: header.uint16('x00280100') ?? 8,
    bitsStored: header.uint16('x00280101') ?? header.uint16('x00280100') ?? 8,
    planarConfiguration: header.uint16('x00280006') ?? 0,
    dimensionOrganization: header.string('x00209311'),
    concatenationFrameOffset: header.elements['x00209228'] ? header.uint32('x00209228') : undefined,
    instanceNumber: Number(header.string('x00200013') ?? '0') || 0,
    framePositions: framePositions(header),
    pixelSpacingMm: spacing && spacing.length === 2 ? [spacing[0] ?? 0, spacing[1] ?? 0] : undefined,
    imagedSizeMm: imagedWidth !== undefined && imagedHeight !== undefined ? [imagedWidth, imagedHeight] : undefined,
    objectivePower: power > 0 ? power : null,
    properties,
    close: () => source.close(),
  };
  let frames: ByteRange[][] | undefined;
  return {
    ...instance,
    readFrame(frame) {
      frames ??= frameRanges(source, instance, pixelDataOffset, pixelDataLength, name);
      const parts = frames[frame];
      if (!parts) throw new TesseraError('SLIDE_CORRUPT', `${name}: frame ${frame + 1} is missing from the pixel data`);
      return parts.length === 1 ? source.readAt(parts[0]?.offset ?? 0, parts[0]?.length ?? 0) : Buffer.concat(parts.map((part) => source.readAt(part.offset, part.length)));
    },
  };
}

/** Each frame's (column, row) from the per-frame functional groups, when every frame has one. */
function framePositions(header: DataSet): Array<[number, number]> | undefined {
  const perFrame = header.elements['x52009230']?.items;
  if (!perFrame || perFrame.length === 0) return undefined;
  const positions: Array<[number, number]> = [];
  for (const item of perFrame) {
    const position = item.dataSet?.elements['x0048021a']?.items?.[0]?.dataSet;
    // Column and Row Position In Total Image Pixel Matrix are SL: binary in either VR encoding.
    const column = position?.elements['x0048021e'] ? position.int32('x0048021e') : undefined;
    const row = position?.elements['x0048021f'] ? position.int32('x0048021f') : undefined;
    if (column === undefined || row === undefined) return undefined;
    positions.push([column, row]);
  }
  return positions;
}

interface ByteRange {
  offset: number;
  length: number;
}

/** File ranges of each frame: fixed-size slices of native data, or encapsulated fragments. */
function frameRanges(source: FileSource, instance: Omit<DicomInstance, 'readFrame'>, pixelDataOffset: number, pixelDataLength: number, name: string): ByteRange[][] {
  const { frameCount } = instance;
  if (NATIVE_SYNTAXES.has(instance.transferSyntax)) {
    const frameBytes = nativeFrameBytes(instance);
    if (pixelDataLength < frameBytes * frameCount) {
      throw new TesseraError('SLIDE_CORRUPT', `${name}: native pixel data holds ${pixelDataLength} bytes, ${frameBytes * frameCount} expected for ${frameCount} frames`);
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
