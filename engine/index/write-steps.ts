/**
 * The named steps of a shard's write protocols, and a hook that fault-injection tests use to
 * kill the writer at one of them. Production code only calls `reachStep`; with no hook installed
 * it does nothing.
 *
 * Commit (every putSlide/deleteSlide flush):
 *   commit:staged        changes held in memory, nothing written
 *   commit:lmdb          the LMDB transaction (records, vectors, tombstones, counters) is durable:
 *                        the commit point has moved
 *   commit:manifest      manifest.json rewritten from the commit point
 * Segment build (folding the tail, or merging segments), on a builder thread:
 *   segment:writing      hnswlib is writing the graph to segments/NAME.tmp
 *   segment:written      the temporary file is complete, hashed and fsynced
 *   segment:renamed      the file has its final name but no commit lists it (an orphan)
 *   segment:committed    LMDB lists the new segment (and no longer the ones it replaces)
 *   segment:cleaned      replaced segment files are removed
 */

export const WRITE_STEPS = [
  'commit:staged',
  'commit:lmdb',
  'commit:manifest',
  'segment:writing',
  'segment:written',
  'segment:renamed',
  'segment:committed',
  'segment:cleaned',
] as const;

export type WriteStep = (typeof WRITE_STEPS)[number];

let crashStep: WriteStep | null = null;
let crashAfter = 0;

/**
 * Makes the process die with SIGKILL the `skip + 1`-th time it reaches `step` (tests only; the CLI
 * sets it from TESSERA_CRASH_AT=step[@skip] at start-up).
 */
export function crashAtStep(step: WriteStep | null, skip = 0): void {
  crashStep = step;
  crashAfter = skip;
}

const BUILDER_STEPS: readonly WriteStep[] = ['segment:writing', 'segment:written', 'segment:renamed'];

/**
 * What a builder thread is to crash at in the build about to start: the builder steps are
 * counted here, one per build, since each task starts a fresh count on its thread.
 */
export function crashSettingForBuild(): { step: WriteStep; skip: number } | null {
  if (!crashStep || !BUILDER_STEPS.includes(crashStep)) return null;
  if (crashAfter > 0) {
    crashAfter--;
    return null;
  }
  return { step: crashStep, skip: 0 };
}

/** Called at each named step; kills the process when a test asked for this step. */
export function reachStep(step: WriteStep): void {
  if (step !== crashStep) return;
  if (crashAfter > 0) {
    crashAfter--;
    return;
  }
  process.kill(process.pid, 'SIGKILL');
}

export function isWriteStep(value: string): value is WriteStep {
  return (WRITE_STEPS as readonly string[]).includes(value);
}
