/**
 * Fault injection: a writer process is killed with SIGKILL at each named step of the commit,
 * segment-build and merge protocols, and at random moments while it replaces and deletes slides.
 * After each kill the shard is reopened and verified: no committed tile lost, none doubled, no
 * slide made invisible, no orphan file (segment or sub-graph) left by the next writer; then the
 * run resumes to the end.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexStore, WRITE_STEPS, type WriteStep } from '../../../engine/index.js';
import { PROJECT_ROOT } from '../../shared-data.js';
import { newIndex } from './synthetic-shards.js';
import { DIMENSION, TILES, operations, vectorsOf, type Operation } from './writer-child.js';

const CHILD = join(PROJECT_ROOT, 'test', 'engine', 'index', 'writer-child.ts');

interface ChildRun {
  /** Operations that returned before the process ended. */
  done: number;
  signal: NodeJS.Signals | null;
  closed: boolean;
}

function runChild(indexDir: string, scenario: string, crash?: string, killAfterMs?: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, indexDir, scenario, ...(crash ? [crash] : [])], { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let errors = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (killAfterMs !== undefined && output.startsWith('ready') && !child.killed) {
        setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        killAfterMs = undefined;
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0 && signal === null) reject(new Error(`writer exited ${code}: ${errors}`));
      const done = [...output.matchAll(/done (\d+)/g)].length;
      resolve({ done, signal, closed: output.includes('closed') });
    });
  });
}

/** Slides and their versions after the first `count` operations. */
function stateAfter(ops: Operation[], count: number): Map<string, number> {
  const state = new Map<string, number>();
  for (const op of ops.slice(0, count)) {
    if ('put' in op) state.set(op.put, op.version);
    else state.delete(op.delete);
  }
  return state;
}

function sameState(a: Map<string, number>, b: Map<string, number>): boolean {
  return a.size === b.size && [...a].every(([slide, version]) => b.get(slide) === version);
}

/**
 * Reopens the shard as a writer (which removes what no commit lists), verifies it, and checks it
 * holds exactly the state after `done` or `done + 1` operations (the last may have committed just
 * before the kill), every slide whole and found by its own tiles.
 */
async function checkShard(indexDir: string, ops: Operation[], done: number): Promise<void> {
  // As found after the kill, before any writer tidied up: sound already.
  const asLeft = IndexStore.open(indexDir, { readOnly: true });
  expect(asLeft.shards[0]!.verify()).toEqual([]);
  await asLeft.close();
  const store = IndexStore.open(indexDir);
  const shard = store.shards[0]!;
  try {
    expect(shard.verify()).toEqual([]);
    const listed = new Set(shard.segments.flatMap((ref) => [ref.file, ...(ref.subgraphs ?? []).map((subgraph) => subgraph.file)]));
    expect(readdirSync(join(indexDir, 'shard-000', 'segments')).filter((name) => !listed.has(name))).toEqual([]);
    const slides = new Map(shard.slideIds().map((id) => [id as string, -1]));
    const candidates = [stateAfter(ops, done), stateAfter(ops, done + 1)];
    const expected = candidates.find((state) => state.size === slides.size && [...state.keys()].every((id) => slides.has(id)));
    expect(expected, `slides ${[...slides.keys()].join(',')} after ${done} operations`).toBeDefined();
    let matched = false;
    for (const state of candidates) {
      const ok = [...state].every(([slideId, version]) => {
        const record = shard.slide(slideId);
        if (!record || record.labels.length !== TILES) return false;
        const probe = vectorsOf(slideId, version)[11]!;
        const [hit] = store.search(probe, { k: 1, ef: 200 });
        return hit?.tile.slideId === slideId && hit.tile.x === 11 * 224 && hit.score > 0.9999;
      });
      if (ok && sameState(state, new Map([...state].filter(([id]) => slides.has(id))))) matched = true;
    }
    expect(matched, 'every slide whole, its current version, and findable').toBe(true);
    expect(shard.tileCount).toBe(slides.size * TILES);
  } finally {
    await store.close();
  }
}

/** When to die: the commit steps late enough that segments exist, each build step at its second build. */
const SKIPS: Record<WriteStep, number> = {
  'commit:staged': 8,
  'commit:lmdb': 8,
  'commit:manifest': 8,
  'segment:writing': 1,
  'segment:written': 1,
  'segment:renamed': 1,
  'segment:committed': 1,
  'segment:cleaned': 1,
};

describe('a writer killed at every step of its protocols', () => {
  const ops = operations('grow');

  for (const step of WRITE_STEPS) {
    it(`keeps every committed slide when killed at ${step}, and resumes`, async () => {
      const dir = newIndex(DIMENSION, 1, 'tessera-crash-');
      const killed = await runChild(dir, 'grow', `${step}@${SKIPS[step]}`);
      expect(killed.signal, `the writer reached ${step}`).toBe('SIGKILL');
      await checkShard(dir, ops, killed.done);
      const resumed = await runChild(dir, 'grow');
      expect(resumed.closed).toBe(true);
      await checkShard(dir, ops, ops.length);
      const reader = IndexStore.open(dir, { readOnly: true, graph: false });
      expect(reader.shards[0]!.segments.some((ref) => (ref.subgraphs ?? []).length > 0), 'segments with sub-graphs').toBe(true);
      await reader.close();
    }, 90_000);
  }

  it('keeps slides whole when killed at random moments while replacing and deleting them', async () => {
    const churn = operations('churn');
    const random = (() => {
      let state = 42;
      return () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    })();
    for (let trial = 0; trial < 4; trial++) {
      const dir = newIndex(DIMENSION, 1, 'tessera-churn-');
      const killed = await runChild(dir, 'churn', undefined, 200 + Math.floor(random() * 1500));
      if (killed.closed) continue;
      await checkShard(dir, churn, killed.done);
    }
  }, 120_000);
});
