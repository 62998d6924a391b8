/**
 * Where an index's slides came from: the slide folders and DICOMweb servers recorded in
 * index.json, so that a server started anywhere reads them by default (and nothing else).
 *
 * index.json is created once by an exclusive link (index-dir.ts); adding sources later replaces
 * it whole under a lock file, so that `--partition` jobs starting together never lose each
 * other's additions and readers never see half a file. Jobs of one array share their sources:
 * all but the first find them recorded and write nothing.
 */
import { closeSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { TesseraError } from '../errors.js';
import { readIndexInfo } from './index-dir.js';
import { replaceFileDurably } from './segment-file.js';
import type { SlideSources } from './types.js';

/** How long a job waits for another's lock on index.json before giving up. */
const LOCK_WAIT_MS = 30_000;
/** A lock older than this was left by a job that died while holding it (an update takes milliseconds). */
const STALE_LOCK_MS = 60_000;

/** The sources recorded in the index (none for an index built before they were recorded). */
export function recordedSources(indexDir: string): SlideSources {
  const sources = readIndexInfo(indexDir).sources;
  return { folders: sources?.folders ?? [], dicomWebServers: sources?.dicomWebServers ?? [] };
}

/**
 * Adds `sources` to those recorded in indexDir/index.json (a no-op when all are recorded).
 * Folders are absolute paths, servers DICOMweb service roots.
 * @throws TesseraError INDEX_NOT_FOUND, INDEX_CORRUPT, INDEX_WRITE_FAILED (lock held too long, disk)
 */
export async function recordSources(indexDir: string, sources: SlideSources): Promise<void> {
  if (!adds(recordedSources(indexDir), sources)) return;
  const release = await lockIndexJson(indexDir);
  try {
    // Read again under the lock: another job may have written since.
    const info = readIndexInfo(indexDir);
    const recorded = { folders: info.sources?.folders ?? [], dicomWebServers: info.sources?.dicomWebServers ?? [] };
    if (!adds(recorded, sources)) return;
    const merged: SlideSources = { folders: union(recorded.folders, sources.folders), dicomWebServers: union(recorded.dicomWebServers, sources.dicomWebServers) };
    replaceFileDurably(join(indexDir, 'index.json'), `${JSON.stringify({ ...info, sources: merged }, null, 2)}\n`);
  } catch (error) {
    if (error instanceof TesseraError) throw error;
    throw new TesseraError('INDEX_WRITE_FAILED', `cannot record the slide sources in ${indexDir}/index.json: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  } finally {
    release();
  }
}

function adds(recorded: SlideSources, sources: SlideSources): boolean {
  return sources.folders.some((folder) => !recorded.folders.includes(folder)) || sources.dicomWebServers.some((server) => !recorded.dicomWebServers.includes(server));
}

function union(first: string[], second: string[]): string[] {
  return [...new Set([...first, ...second])].sort();
}

/** Takes index.json.lock (an exclusive create); resolves to its release. */
async function lockIndexJson(indexDir: string): Promise<() => void> {
  const lockPath = join(indexDir, 'index.json.lock');
  const giveUpAt = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new TesseraError('INDEX_WRITE_FAILED', `cannot lock ${indexDir}/index.json: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
      }
    }
    if (isStale(lockPath)) {
      rmSync(lockPath, { force: true });
      continue;
    }
    if (Date.now() > giveUpAt) throw new TesseraError('INDEX_WRITE_FAILED', `${indexDir}/index.json.lock has been held for over ${LOCK_WAIT_MS / 1000} s by another job; remove it if no job is running`);
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 80));
  }
}

function isStale(lockPath: string): boolean {
  try {
    return Date.now() - statSync(lockPath).mtimeMs > STALE_LOCK_MS;
  } catch {
    // Released between our attempt and this look: try again.
    return false;
  }
}
