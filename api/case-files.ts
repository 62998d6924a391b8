/**
 * New cases on disk: slide files under the configured slide roots that are not indexed, named by
 * their path relative to a root. This module finds and names them; it opens nothing. A case path
 * is refused before the file system is touched when it could name anything outside the roots
 * (absolute, "..", NUL, backslash); openSlide then checks the real path (symlinks resolved) again.
 */
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ApiError } from './errors.js';

/** What a new case can be: whole-slide formats (plain images are searched by upload instead). */
const CASE_EXTENSIONS = new Set(['.svs', '.tif', '.tiff', '.ndpi', '.dcm']);
/** Files one listing holds at most, and folders it descends: a root can be a whole archive. */
const MAX_CASES = 2000;
const MAX_DEPTH = 8;

export interface CaseFile {
  /** Relative to its root, "/"-separated. */
  path: string;
  source: 'file';
  /** File size (a DICOM folder: its files together). */
  bytes: number;
}

/**
 * Slide files under the roots (a relative path names the first root's file, so an indexed file
 * there hides another root's file of the same name), skipping
 * those whose path is in `indexed` (absolute paths, as given and with symlinks resolved), hidden
 * entries and symbolic links. A folder of several DICOM files is one case.
 */
export function listCaseFiles(roots: string[], indexed: ReadonlySet<string>): { cases: CaseFile[]; truncated: boolean } {
  const found = new Map<string, CaseFile>();
  // Names the first root claimed, indexed or not: resolveCasePath opens that root's file.
  const claimed = new Set<string>();
  let truncated = false;
  const add = (root: string, path: string, bytes: number): void => {
    const name = relative(root, path).split(sep).join('/');
    if (claimed.has(name)) return;
    claimed.add(name);
    if (isIndexed(path, indexed)) return;
    if (found.size >= MAX_CASES) truncated = true;
    else found.set(name, { path: name, source: 'file', bytes });
  };
  const walk = (root: string, dir: string, depth: number): void => {
    if (depth > MAX_DEPTH || truncated) return;
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((entry) => !entry.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name));
    } catch {
      // A folder this process may not read holds no case it could open either.
      return;
    }
    const dicom = entries.filter((entry) => entry.isFile() && extname(entry.name).toLowerCase() === '.dcm');
    if (dicom.length > 1) add(root, dir, dicom.reduce((sum, entry) => sum + sizeOf(join(dir, entry.name)), 0));
    for (const entry of entries) {
      if (truncated) return;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(root, path, depth + 1);
      else if (entry.isFile() && CASE_EXTENSIONS.has(extname(entry.name).toLowerCase()) && !(dicom.length > 1 && extname(entry.name).toLowerCase() === '.dcm')) add(root, path, sizeOf(path));
    }
  };
  for (const root of roots) if (existsSync(root)) walk(resolve(root), resolve(root), 0);
  return { cases: [...found.values()], truncated };
}

/**
 * The absolute path of the case named `casePath`: under the first root where it exists.
 * @throws ApiError SLIDE_ACCESS_DENIED (403) for a path that could leave the roots, SLIDE_NOT_FOUND when no root holds it
 */
export function resolveCasePath(roots: string[], casePath: string): string {
  const parts = casePath.split('/');
  if (isAbsolute(casePath) || casePath.includes('\\') || casePath.includes('\0') || parts.some((part) => part === '..' || part === '.' || part === '')) {
    throw new ApiError('SLIDE_ACCESS_DENIED', 'a case path is relative to a slide root: "/"-separated names, without "..", ".", empty parts or a leading "/"');
  }
  for (const root of roots) {
    const path = join(resolve(root), ...parts);
    if (existsSync(path)) return path;
  }
  throw new ApiError('SLIDE_NOT_FOUND', `"${casePath}" is not a new case under the slide roots (missing, or indexed: indexed slides open from the slide list)`);
}

/** Whether a path is an indexed slide's (as given, or with symlinks resolved). */
export function isIndexed(path: string, indexed: ReadonlySet<string>): boolean {
  if (indexed.has(path)) return true;
  try {
    return indexed.has(realpathSync(path));
  } catch {
    return false;
  }
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
