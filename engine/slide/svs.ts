/**
 * Aperio SVS: a TIFF whose first ImageDescription starts with "Aperio". Tiled directories are
 * pyramid levels; the stripped second directory is the thumbnail; "label" and "macro" directories
 * are associated images (listed by name, never decoded for serving).
 */
import type { FileSource } from './file-source.js';
import { pyramidLevels } from './tiff.js';
import { isTiled } from './tiff-level.js';
import { Tag, tagString, type TiffIfd, type TiffStructure } from './tiff-file.js';
import type { SlideSource } from './tiled-slide.js';

export function isAperio(tiff: TiffStructure): boolean {
  return (tagString(tiff.ifds[0] as TiffIfd, Tag.ImageDescription) ?? '').startsWith('Aperio');
}

export function openSvs(source: FileSource, tiff: TiffStructure, name: string): SlideSource {
  const base = tiff.ifds[0] as TiffIfd;
  const properties = aperioProperties(tagString(base, Tag.ImageDescription) ?? '');
  const associatedImages: string[] = [];
  tiff.ifds.forEach((ifd, index) => {
    if (isTiled(ifd)) return;
    const description = tagString(ifd, Tag.ImageDescription) ?? '';
    if (/\blabel\b/.test(description)) associatedImages.push('label');
    else if (/\bmacro\b/.test(description)) associatedImages.push('macro');
    else if (index === 1) associatedImages.push('thumbnail');
  });
  const mpp = Number(properties['aperio.MPP']);
  const power = Number(properties['aperio.AppMag']);
  return {
    format: 'aperio-svs',
    vendor: 'aperio',
    mpp: mpp > 0 ? [mpp, mpp] : null,
    objectivePower: power > 0 ? power : null,
    associatedImages,
    properties,
    levels: pyramidLevels(source, tiff.ifds.filter(isTiled), name),
    close: () => source.close(),
  };
}

/** Parses "Aperio Image Library vX\r\n<summary>|Key = Value|Key = Value" into aperio.* properties. */
export function aperioProperties(description: string): Record<string, string> {
  const properties: Record<string, string> = { 'tiff.ImageDescription': description };
  const [, ...fields] = description.split('|');
  for (const field of fields) {
    const at = field.indexOf('=');
    if (at <= 0) continue;
    properties[`aperio.${field.slice(0, at).trim()}`] = field.slice(at + 1).trim();
  }
  return properties;
}
