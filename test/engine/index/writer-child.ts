/**
 * A shard writer run as its own process by the fault-injection test, so that it can die by
 * SIGKILL at a named write step (argv[4], "step@skip") or at a random moment. Prints "done N"
 * after operation N returns, "closed" after the shard settled. Slides carry an organ, so segments
 * have sub-graphs.
 *
 *   scenario "grow":  put slides 0…13 (60 tiles each), replace slide 2 after 6, delete slide 4 after 9
 *   scenario "churn": put slides 0…3, then replace slide 1 and delete/re-put slide 2, 40 times
 */
import { writeSync } from 'node:fs';
import { crashAtStep, IndexStore, isWriteStep } from '../../../engine/index.js';
import { clustered, putSlide, seeded } from './synthetic-shards.js';

export const DIMENSION = 24;
export const TILES = 60;
/** Every segment builds a sub-graph per organ, so that each step covers those files too. */
export const POLICY = { foldTiles: 200, segmentsPerTier: 3, floorVectors: 200, maxTombstoneShare: 0.3, subgraphs: { fields: ['organ'], minVectors: 20, maxShare: 0.5 } };

/** Three organs over the slides: each holds between a quarter and a half of a segment's tiles. */
export function organOf(slide: string): string {
  return ['lung', 'colon', 'skin'][Number(slide.replace(/\D/g, '')) % 3] as string;
}

export type Operation = { put: string; version: number } | { delete: string };

export function vectorsOf(slide: string, version: number): Float32Array[] {
  return clustered(TILES, DIMENSION, seeded(Number(slide.replace(/\D/g, '')) * 1000 + version + 1), 4);
}

export function operations(scenario: string): Operation[] {
  if (scenario === 'grow') {
    const ops: Operation[] = [];
    for (let i = 0; i < 14; i++) {
      ops.push({ put: `slide-${i}`, version: 0 });
      if (i === 6) ops.push({ put: 'slide-2', version: 1 });
      if (i === 9) ops.push({ delete: 'slide-4' });
    }
    return ops;
  }
  const ops: Operation[] = [0, 1, 2, 3].map((i) => ({ put: `slide-${i}`, version: 0 }));
  for (let round = 1; round <= 40; round++) ops.push({ put: 'slide-1', version: round }, { delete: 'slide-2' }, { put: 'slide-2', version: round });
  return ops;
}

async function main(): Promise<void> {
  const [indexDir, scenario, crash] = process.argv.slice(2) as [string, string, string | undefined];
  if (crash) {
    const [step = '', skip = '0'] = crash.split('@');
    if (isWriteStep(step)) crashAtStep(step, Number(skip));
  }
  const store = IndexStore.open(indexDir, { policy: POLICY });
  const shard = store.shards[0]!;
  writeSync(1, 'ready\n');
  for (const [i, op] of operations(scenario).entries()) {
    if ('put' in op) putSlide(shard, op.put, vectorsOf(op.put, op.version), { organ: organOf(op.put) });
    else shard.deleteSlide(op.delete);
    writeSync(1, `done ${i}\n`);
    // Let builder threads finish now and then, as an indexer's reads and inference would.
    if (i % 3 === 2) await new Promise((resolve) => setTimeout(resolve, 30));
  }
  await store.close();
  writeSync(1, 'closed\n');
}

if (process.argv[1]?.endsWith('writer-child.ts')) await main();
