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

/** Builds a segment on a builder thread. @throws the builder's error (disk full, permissions) */
export async function runSegmentBuild(task: SegmentBuildTask): Promise<SegmentBuildResult> {
  // One builder thread: the other cores read slides and embed.
  pool ??= new Piscina({ filename: WORKER, minThreads: 0, maxThreads: 1, idleTimeout: 200 });
  return (await pool.run(task)) as SegmentBuildResult;
}
