/**
 * The builder threads of a process: segment builds (folds and merges) run here, off the thread
 * that reads slides, embeds and commits. One pool is shared by every shard a process writes; it
 * starts threads when a build comes and lets them go when idle, so a finished CLI run exits.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { SegmentBuildResult, SegmentBuildTask } from './segment-build-task.js';

const WORKER = fileURLToPath(new URL('./segment-worker.mjs', import.meta.url));

let pool: Piscina | null = null;
let threads = 1;

/** How many segments a process builds at once (default 1: the other cores read and embed). */
export function configureSegmentBuilders(options: { threads: number }): void {
  threads = Math.max(1, Math.floor(options.threads));
  if (pool) pool.options.maxThreads = threads;
}

/** Builds a segment on a builder thread. @throws the builder's error (disk full, permissions) */
export async function runSegmentBuild(task: SegmentBuildTask): Promise<SegmentBuildResult> {
  pool ??= new Piscina({ filename: WORKER, minThreads: 0, maxThreads: threads, idleTimeout: 200 });
  return (await pool.run(task)) as SegmentBuildResult;
}
