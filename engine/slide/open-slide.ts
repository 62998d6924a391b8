/**
 * Format detection and opening: the only place that knows which format module reads a file.
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import { TesseraError, isTesseraError } from '../errors.js';
import { hasDicomPreamble, openDicom } from './dicom.js';
import { isDicomWebSeriesUrl, openDicomWeb, parseDicomWebSeriesUrl } from './dicomweb.js';
import { FileSource } from './file-source.js';
import { openImage } from './image.js';
import { isNdpi, openNdpi } from './ndpi.js';
import { isOme, openOmeTiff } from './ome.js';
import { isAperio, openSvs } from './svs.js';
import { openGenericTiff } from './tiff.js';
import { isTiled } from './tiff-level.js';
import { parseTiff, type TiffIfd } from './tiff-file.js';
import { TiledSlide, type SlideAccess, type SlideSource } from './tiled-slide.js';

export interface OpenSlideOptions {
  /**
   * When set, the slide's real path (symlinks resolved) must lie inside one of these folders;
   * anything else is refused with SLIDE_ACCESS_DENIED.
   */
  roots?: string[];
  /** Calibration for plain images, which carry none (µm per pixel). */
  imageMpp?: [number, number];
  /** `sequential` when reading the slide tile after tile (indexing); default `random`. */
  access?: SlideAccess;
  /**
   * DICOMweb service roots a series URL may be read from when `roots` is set (a server that
   * confines files to slide roots confines URLs to these); without `roots`, any.
   */
  dicomWebServers?: string[];
}

/**
 * Opens a slide file (or a folder holding one DICOM series) and detects its format from content;
 * or a DICOMweb series, given as its URL (`http(s)://HOST/ROOT/studies/UID/series/UID`).
 * @throws TesseraError SLIDE_NOT_FOUND, SLIDE_ACCESS_DENIED, SLIDE_UNSUPPORTED, SLIDE_CORRUPT,
 *   SLIDE_SOURCE_UNAVAILABLE (a DICOMweb server that cannot be reached or keeps failing)
 */
export async function openSlide(path: string, options: OpenSlideOptions = {}): Promise<TiledSlide> {
  if (isDicomWebSeriesUrl(path)) return openDicomWebSlide(path, options);
  const name = basename(path);
  const realPath = resolveInsideRoots(path, name, options.roots);
  let source: SlideSource;
  try {
    source = await openSource(realPath, name, options);
  } catch (error) {
    if (isTesseraError(error)) throw error;
    throw new TesseraError('SLIDE_CORRUPT', `${name}: ${(error as Error).message ?? String(error)}`, { cause: error });
  }
  try {
    return new TiledSlide(source, name, options.access);
  } catch (error) {
    source.close();
    throw error;
  }
}

async function openDicomWebSlide(url: string, options: OpenSlideOptions): Promise<TiledSlide> {
  const series = parseDicomWebSeriesUrl(url);
  const name = `series ${series.series}`;
  if (options.roots !== undefined && !onServers(series.base, options.dicomWebServers ?? [])) {
    throw new TesseraError('SLIDE_ACCESS_DENIED', `${name}: its DICOMweb server is not one of the configured servers`);
  }
  const source = await openDicomWeb(url);
  try {
    return new TiledSlide(source, name, options.access);
  } catch (error) {
    source.close();
    throw error;
  }
}

function resolveInsideRoots(path: string, name: string, roots: string[] | undefined): string {
  let realPath: string;
  try {
    realPath = realpathSync(path);
  } catch (error) {
    // Outside the roots a missing file is refused like an existing one: the answer must not tell whether it exists.
    if (roots !== undefined && !insideRealRoots(resolve(path), [...roots.map((root) => resolve(root)), ...realRootsOf(roots)])) throw new TesseraError('SLIDE_ACCESS_DENIED', `${name}: lies outside the configured slide roots`);
    throw new TesseraError('SLIDE_NOT_FOUND', `${name}: no such file`, { cause: error });
  }
  if (roots !== undefined && !insideRoots(realPath, roots)) throw new TesseraError('SLIDE_ACCESS_DENIED', `${name}: lies outside the configured slide roots`);
  return realPath;
}

/** True when a real path (symlinks resolved) lies in one of the roots (their symlinks resolved too). */
function insideRoots(realPath: string, roots: string[]): boolean {
  return insideRealRoots(realPath, realRootsOf(roots));
}

/** The roots with their symlinks resolved; a root that does not exist admits nothing. */
function realRootsOf(roots: string[]): string[] {
  return roots.flatMap((root) => {
    try {
      return [realpathSync(resolve(root))];
    } catch {
      return [];
    }
  });
}

function insideRealRoots(realPath: string, realRoots: string[]): boolean {
  return realRoots.some((realRoot) => {
    const rel = relative(realRoot, realPath);
    // `..foo` is a file in the root; only `..` itself or `../…` leaves it.
    return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
  });
}

function onServers(base: string, servers: string[]): boolean {
  return servers.some((server) => base === server.replace(/\/+$/, ''));
}

/**
 * A test of whether openSlide with these roots and servers would let a locator through, without
 * opening it: a file's real path inside a root, a series on a listed server. A file that does not
 * exist is judged by its path as given. The roots are resolved once, for checking many slides.
 */
export function readableUnder(options: { roots: string[]; dicomWebServers: string[] }): (locator: string) => boolean {
  const realRoots = realRootsOf(options.roots);
  return (locator) => {
    if (isDicomWebSeriesUrl(locator)) return onServers(parseDicomWebSeriesUrl(locator).base, options.dicomWebServers);
    let realPath: string;
    try {
      realPath = realpathSync(locator);
    } catch {
      realPath = resolve(locator);
    }
    return insideRealRoots(realPath, realRoots);
  };
}


async function openSource(path: string, name: string, options: OpenSlideOptions): Promise<SlideSource> {
  if (statSync(path).isDirectory()) return openDicom(path, name, true);
  const file = FileSource.open(path, name);
  try {
    if (file.size === 0) throw new TesseraError('SLIDE_CORRUPT', `${name}: file is empty`);
    const head = file.readAt(0, Math.min(file.size, 132));
    if (hasDicomPreamble(head)) {
      file.close();
      return openDicom(path, name, false);
    }
    if (isTiffMagic(head)) {
      const tiff = parseTiff(file, name);
      const base = tiff.ifds[0] as TiffIfd;
      if (isNdpi(tiff)) return openNdpi(file, tiff, name);
      if (isAperio(tiff)) return openSvs(file, tiff, name);
      if (isOme(tiff)) return openOmeTiff(file, tiff, name);
      if (isTiled(base) || base.subIfds.length > 0 || tiff.ifds.length > 1) return openGenericTiff(file, tiff, name);
      // A single stripped TIFF is a plain image; let sharp read it.
      file.close();
      return await openImage(path, name, options.imageMpp ?? null);
    }
    if (isImageMagic(head)) {
      file.close();
      return await openImage(path, name, options.imageMpp ?? null);
    }
    throw new TesseraError('SLIDE_UNSUPPORTED', `${name}: not a recognised slide format (expected SVS, TIFF, OME-TIFF, NDPI, DICOM, JPEG or PNG)`);
  } catch (error) {
    // A format module that throws has not taken the file over; closing twice is harmless.
    file.close();
    throw error;
  }
}

function isTiffMagic(head: Uint8Array): boolean {
  return (head[0] === 0x49 && head[1] === 0x49 && (head[2] === 42 || head[2] === 43)) || (head[0] === 0x4d && head[1] === 0x4d && (head[3] === 42 || head[3] === 43));
}

function isImageMagic(head: Uint8Array): boolean {
  const jpeg = head[0] === 0xff && head[1] === 0xd8;
  const png = head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47;
  const webp = head[8] === 0x57 && head[9] === 0x45 && head[10] === 0x42 && head[11] === 0x50;
  return jpeg || png || webp;
}
