/**
 * Generic pyramidal TIFF: the first directory is level 0; reduced levels are the other tiled
 * directories of the main chain (IFD pyramids) and level 0's SubIFDs (SubIFD pyramids).
 */
import type { FileSource } from './file-source.js';
import type { LevelReader, SlideSource } from './tiled-slide.js';
import { downsampleOf, ifdSize, isTiled, mppFromResolution, tiffLevel } from './tiff-level.js';
import { Tag, tagString, type TiffIfd, type TiffStructure } from './tiff-file.js';

export function openGenericTiff(source: FileSource, tiff: TiffStructure, name: string): SlideSource {
  const base = tiff.ifds[0] as TiffIfd;
  const candidates = [base, ...base.subIfds, ...tiff.ifds.slice(1).filter(isTiled)];
  return {
    format: 'generic-tiff',
    vendor: 'generic-tiff',
    mpp: mppFromResolution(base),
    objectivePower: null,
    associatedImages: [],
    properties: tiffProperties(base),
    levels: pyramidLevels(source, candidates, name),
    close: () => source.close(),
  };
}

/**
 * Orders directories from largest to smallest and keeps each that is strictly smaller than the
 * one before (skipping duplicates and thumbnails that would not be a coarser level).
 */
export function pyramidLevels(source: FileSource, ifds: TiffIfd[], name: string): LevelReader[] {
  const sorted = [...ifds].sort((a, b) => ifdSize(b).width - ifdSize(a).width);
  const base = ifdSize(sorted[0] as TiffIfd);
  const levels: LevelReader[] = [];
  let previousWidth = Infinity;
  for (const ifd of sorted) {
    const size = ifdSize(ifd);
    if (size.width >= previousWidth || size.width === 0 || size.height === 0) continue;
    previousWidth = size.width;
    levels.push(tiffLevel(source, ifd, downsampleOf(base, size), name));
  }
  return levels;
}

export function tiffProperties(ifd: TiffIfd): Record<string, string> {
  const properties: Record<string, string> = {};
  const names: Array<[number, string]> = [
    [Tag.ImageDescription, 'tiff.ImageDescription'],
    [Tag.Make, 'tiff.Make'],
    [Tag.Model, 'tiff.Model'],
    [Tag.Software, 'tiff.Software'],
    [Tag.DateTime, 'tiff.DateTime'],
  ];
  for (const [tag, key] of names) {
    const value = tagString(ifd, tag);
    if (value !== undefined) properties[key] = value;
  }
  return properties;
}
