/**
 * Locates the shared test data (../shared beside the project) and the OpenSlide reference, so
 * that tests can skip with a clear reason when either is absent.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const SHARED_ROOT = process.env.TESSERA_SHARED ?? resolve(PROJECT_ROOT, '..', 'shared');
export const SLIDES = join(SHARED_ROOT, 'data', 'slides');
export const TILES = join(SHARED_ROOT, 'data', 'tiles');

export const hasSharedData = existsSync(SLIDES);
export const SHARED_MISSING = `shared test data not found at ${SLIDES} (set TESSERA_SHARED)`;

export function slidePath(relative: string): string {
  return join(SLIDES, relative);
}

/** Debian's interpreter: the python3 first on PATH may be another build without python3-openslide. */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export const hasOpenSlide = (() => {
  try {
    execFileSync(SYSTEM_PYTHON, ['-c', 'import openslide'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
export const OPENSLIDE_MISSING = 'python3-openslide not installed (apt-get install python3-openslide)';

if (!hasSharedData) console.warn(`skipping tests that need ${SHARED_MISSING}`);
