/**
 * DICOM WSI pyramids, wherever the instances come from: files on disk (dicom.ts) or a DICOMweb
 * server (dicomweb.ts) each describe their instances as `DicomInstance`s, and this module groups
 * them into levels, places every frame on the tile grid and decodes frames. It knows nothing of
 * files or HTTP and must not learn: a new source only has to describe instances and fetch frames.
 *
 * What converters write, and what this module therefore honours:
 * - frames in any order, placed by the per-frame Plane Position (Slide) of each frame: Orthanc's
 *   OrthancWSIDicomizer 1.1 writes JPEG 2000 levels in 2×2 blocks (it builds them from the level
 *   below), with no Dimension Organization Type; reading them row-major put tiles in the wrong
 *   places;
 * - a level split over several instances (a concatenation, `--max-size`): frames are gathered from
 *   every instance of the level, placed by position or by ConcatenationFrameOffsetNumber;
 * - TILED_FULL without per-frame positions: row-major, then further focal planes / optical paths.
 */
import { TesseraError } from '../errors.js';
import { decodeJpeg, type TileCrop } from './codecs/jpeg.js';
import { decodeJpeg2000, rgbFromYcbcrInPlace } from './codecs/jpeg2000.js';
import { decodeJpegLs } from './codecs/jpeg-ls.js';
import { rgbFromChannels, type RgbImage } from './rgb-image.js';
import type { LevelReader, SlideSource } from './tiled-slide.js';

export const WSI_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.77.1.6';
export const NATIVE_SYNTAXES = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);
export const JPEG_SYNTAXES = new Set(['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51']);
export const JPEG2000_SYNTAXES = new Set(['1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.4.201', '1.2.840.10008.1.2.4.202', '1.2.840.10008.1.2.4.203']);
export const JPEG_LS_SYNTAXES = new Set(['1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81']);

/** Above this many µm per pixel a "whole slide microscopy" image is not at microscope scale. */
export const MAX_PLAUSIBLE_MPP = 20;

/** One instance (one DICOM object) as a source describes it. */
export interface DicomInstance {
  /** Display name for errors: a file name or a SOP Instance UID, never a path or URL. */
  name: string;
  seriesUid: string | undefined;
  /** ImageType's third value: VOLUME for pyramid levels; LABEL, OVERVIEW, THUMBNAIL otherwise. */
  imageType: string;
  totalColumns: number;
  totalRows: number;
  /** Frame size in pixels (Columns, Rows). */
  tileWidth: number;
  tileHeight: number;
  frameCount: number;
  transferSyntax: string;
  photometric: string;
  samplesPerPixel: number;
  bitsAllocated: number;
  bitsStored: number;
  planarConfiguration: number;
  dimensionOrganization: string | undefined;
  /** ConcatenationFrameOffsetNumber: frames of the level stored in earlier instances. */
  concatenationFrameOffset: number | undefined;
  instanceNumber: number;
  /** 1-based (column, row) of each frame's top-left pixel in the total pixel matrix, when the file lists them. */
  framePositions: Array<[number, number]> | undefined;
  /** PixelSpacing in mm: [between rows, between columns]. */
  pixelSpacingMm: [number, number] | undefined;
  /** ImagedVolumeWidth / Height in mm. */
  imagedSizeMm: [number, number] | undefined;
  objectivePower: number | null;
  properties: Record<string, string>;
  /** The encoded bytes of frame `frame` (0-based, within this instance). */
  readFrame(frame: number): Promise<Buffer> | Buffer;
  close(): void;
}

/**
 * Groups instances of one series into a pyramid: VOLUME instances by size, largest first;
 * the others are associated images (listed by kind, never read).
 * @throws TesseraError SLIDE_UNSUPPORTED (no VOLUME image), SLIDE_CORRUPT (inconsistent frames)
 */
export function buildDicomSlide(instances: DicomInstance[], name: string): SlideSource {
  const volumes = instances.filter((instance) => instance.imageType === 'VOLUME');
  const bySize = new Map<string, DicomInstance[]>();
  for (const instance of volumes) {
    const key = `${instance.totalColumns}x${instance.totalRows}`;
    const group = bySize.get(key);
    if (group) group.push(instance);
    else bySize.set(key, [instance]);
  }
  const groups = [...bySize.values()].sort((a, b) => (b[0]?.totalColumns ?? 0) - (a[0]?.totalColumns ?? 0));
  const base = groups[0]?.[0];
  if (!base) throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: DICOM series has no VOLUME image (only ${instances.map((i) => i.imageType).join(', ') || 'nothing'})`);
  const levels: LevelReader[] = [];
  let previousWidth = Infinity;
  for (const group of groups) {
    const first = group[0] as DicomInstance;
    if (first.totalColumns >= previousWidth) continue;
    previousWidth = first.totalColumns;
    const downsample = (base.totalColumns / first.totalColumns + base.totalRows / first.totalRows) / 2;
    levels.push(dicomLevel(group, downsample, name));
  }
  const associatedImages = [...new Set(instances.filter((i) => i.imageType !== 'VOLUME').map((i) => i.imageType.toLowerCase()))];
  for (const instance of instances) if (instance.imageType !== 'VOLUME') instance.close();
  return {
    format: 'dicom',
    vendor: 'dicom',
    mpp: dicomMpp(base),
    objectivePower: base.objectivePower,
    associatedImages,
    properties: {
      ...base.properties,
      ...(base.imagedSizeMm ? { 'dicom.ImagedVolumeWidth': String(base.imagedSizeMm[0]), 'dicom.ImagedVolumeHeight': String(base.imagedSizeMm[1]) } : {}),
    },
    levels,
    close: () => {
      for (const instance of volumes) instance.close();
    },
  };
}

/**
 * µm per pixel `[x, y]` from PixelSpacing (mm between rows, then between columns), taken as
 * written; `implausibleMpp` says when it cannot be right. The imaged volume size is not used as a
 * fallback: converters fill in a default (OrthancWSIDicomizer: 15 × 15 mm) when told nothing, as
 * the shared tcga-small-dicom.dcm shows, and a made-up scale is worse than none.
 */
function dicomMpp(instance: DicomInstance): [number, number] | null {
  const spacing = instance.pixelSpacingMm;
  if (spacing && spacing[0] > 0 && spacing[1] > 0) return [spacing[1] * 1000, spacing[0] * 1000];
  return null;
}

interface FrameRef {
  instance: DicomInstance;
  frame: number;
}

function dicomLevel(group: DicomInstance[], downsample: number, name: string): LevelReader {
  const first = group[0] as DicomInstance;
  const { tileWidth, tileHeight, totalColumns, totalRows } = first;
  if (tileWidth <= 0 || tileHeight <= 0) throw new TesseraError('SLIDE_CORRUPT', `${name}: DICOM frame size is ${tileWidth}×${tileHeight}`);
  for (const instance of group) {
    if (instance.tileWidth !== tileWidth || instance.tileHeight !== tileHeight) {
      throw new TesseraError('SLIDE_CORRUPT', `${name}: instances of the ${totalColumns}×${totalRows} level have frames of ${tileWidth}×${tileHeight} and ${instance.tileWidth}×${instance.tileHeight} px`);
    }
  }
  const tilesAcross = Math.ceil(totalColumns / tileWidth);
  const tilesDown = Math.ceil(totalRows / tileHeight);
  const grid = frameGrid(group, tilesAcross, tilesDown);
  const decoders = new Map<DicomInstance, (bytes: Buffer, crop?: TileCrop) => Promise<RgbImage>>();
  const decoderOf = (instance: DicomInstance): ((bytes: Buffer, crop?: TileCrop) => Promise<RgbImage>) => {
    let decoder = decoders.get(instance);
    if (!decoder) decoders.set(instance, (decoder = frameDecoder(instance, name)));
    return decoder;
  };
  return {
    level: { width: totalColumns, height: totalRows, downsample, tileWidth, tileHeight },
    partialDecode: group.every((instance) => JPEG_SYNTAXES.has(instance.transferSyntax)),
    async readTile(col, row, crop) {
      if (col < 0 || row < 0 || col >= tilesAcross || row >= tilesDown) return null;
      const ref = grid.get(row * tilesAcross + col);
      if (!ref) return null; // TILED_SPARSE (or a frame the file leaves out): background
      const bytes = await ref.instance.readFrame(ref.frame);
      return decoderOf(ref.instance)(bytes, crop);
    },
  };
}

/**
 * Where each frame of a level lies: by its per-frame position when the instance lists positions
 * (whatever its Dimension Organization Type says), else row-major from the instance's offset in
 * the concatenation. With several focal planes or optical paths the first frame at a place wins.
 */
function frameGrid(group: DicomInstance[], tilesAcross: number, tilesDown: number): Map<number, FrameRef> {
  const grid = new Map<number, FrameRef>();
  const ordered = [...group].sort((a, b) => (a.concatenationFrameOffset ?? 0) - (b.concatenationFrameOffset ?? 0) || a.instanceNumber - b.instanceNumber);
  let nextOffset = 0;
  for (const instance of ordered) {
    const positions = instance.framePositions;
    if (positions && positions.length === instance.frameCount) {
      positions.forEach(([column, row], frame) => {
        if (!(column >= 1 && row >= 1)) return;
        const col = Math.floor((column - 1) / instance.tileWidth);
        const tileRow = Math.floor((row - 1) / instance.tileHeight);
        if (col >= tilesAcross || tileRow >= tilesDown) return;
        const key = tileRow * tilesAcross + col;
        if (!grid.has(key)) grid.set(key, { instance, frame });
      });
    } else {
      const offset = instance.concatenationFrameOffset ?? nextOffset;
      for (let frame = 0; frame < instance.frameCount; frame++) {
        const key = offset + frame;
        if (key >= tilesAcross * tilesDown) break;
        if (!grid.has(key)) grid.set(key, { instance, frame });
      }
    }
    nextOffset = (instance.concatenationFrameOffset ?? nextOffset) + instance.frameCount;
  }
  return grid;
}

function frameDecoder(instance: DicomInstance, name: string): (bytes: Buffer, crop?: TileCrop) => Promise<RgbImage> {
  const { transferSyntax, photometric, tileWidth, tileHeight } = instance;
  if (JPEG_SYNTAXES.has(transferSyntax)) return (bytes, crop) => decodeJpeg(bytes, crop);
  // JPEG 2000 signals its colour transform in the codestream (the decoder undoes it), whatever
  // PhotometricInterpretation says: OrthancWSIDicomizer 1.1 labels its RGB JPEG 2000 frames
  // YBR_FULL_422, a value the standard does not allow for JPEG 2000.
  if (JPEG2000_SYNTAXES.has(transferSyntax)) return (bytes) => decodeJpeg2000(bytes);
  if (JPEG_LS_SYNTAXES.has(transferSyntax)) return (bytes) => decodeJpegLs(bytes);
  if (NATIVE_SYNTAXES.has(transferSyntax)) {
    const { samplesPerPixel: samples, bitsAllocated, bitsStored, planarConfiguration: planar } = instance;
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

/** Bytes in one native (uncompressed) frame. */
export function nativeFrameBytes(instance: Pick<DicomInstance, 'tileWidth' | 'tileHeight' | 'samplesPerPixel' | 'bitsAllocated'>): number {
  return instance.tileWidth * instance.tileHeight * instance.samplesPerPixel * (instance.bitsAllocated / 8);
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
