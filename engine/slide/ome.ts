/**
 * OME-TIFF: OME-XML in the first ImageDescription. The first image's directory is level 0 and its
 * SubIFDs are the reduced levels (the OME pyramid convention); mpp comes from PhysicalSizeX/Y.
 */
import type { FileSource } from './file-source.js';
import { pyramidLevels, tiffProperties } from './tiff.js';
import { Tag, tagString, type TiffIfd, type TiffStructure } from './tiff-file.js';
import type { SlideSource } from './tiled-slide.js';

const MICRONS_PER_UNIT: Record<string, number> = { pm: 1e-6, nm: 1e-3, 'µm': 1, um: 1, mm: 1e3, cm: 1e4, m: 1e6 };

export function isOme(tiff: TiffStructure): boolean {
  return (tagString(tiff.ifds[0] as TiffIfd, Tag.ImageDescription) ?? '').includes('<OME');
}

export function openOmeTiff(source: FileSource, tiff: TiffStructure, name: string): SlideSource {
  const base = tiff.ifds[0] as TiffIfd;
  const xml = tagString(base, Tag.ImageDescription) ?? '';
  const pixels = /<Pixels\b[^>]*>/.exec(xml)?.[0] ?? '';
  const mpp = physicalSize(pixels, 'X') !== null && physicalSize(pixels, 'Y') !== null ? ([physicalSize(pixels, 'X'), physicalSize(pixels, 'Y')] as [number, number]) : null;
  const power = Number(/NominalMagnification="([\d.]+)"/.exec(xml)?.[1]);
  // Other OME images (label, macro) are named; list them, never serve them.
  const imageNames = [...xml.matchAll(/<Image\b[^>]*\bName="([^"]*)"/g)].map((match) => match[1] ?? '');
  return {
    format: 'ome-tiff',
    vendor: 'ome-tiff',
    mpp,
    objectivePower: power > 0 ? power : null,
    associatedImages: imageNames.slice(1).filter((imageName) => /label|macro|overview|thumbnail/i.test(imageName)),
    properties: tiffProperties(base),
    levels: pyramidLevels(source, [base, ...base.subIfds], name),
    close: () => source.close(),
  };
}

function physicalSize(pixelsElement: string, axis: 'X' | 'Y'): number | null {
  const value = Number(new RegExp(`PhysicalSize${axis}="([^"]+)"`).exec(pixelsElement)?.[1]);
  const unit = new RegExp(`PhysicalSize${axis}Unit="([^"]+)"`).exec(pixelsElement)?.[1] ?? 'µm';
  const scale = MICRONS_PER_UNIT[unit];
  return value > 0 && scale !== undefined ? value * scale : null;
}
