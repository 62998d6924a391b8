/**
 * LocalShardGroup over a real two-shard index: tile references resolved from the in-memory
 * position table, searches batched to two search threads (answers equal to in-process search,
 * errors and deadlines per job), and a close that waits for running searches.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalShardGroup } from '../../../engine/cluster/index.js';
import { TesseraError } from '../../../engine/errors.js';
import { IndexStore, asSlideId, createOrCheckIndex, parseFilter, type TileHit } from '../../../engine/index.js';

const DIMENSION = 32;
const SLIDES = 12;
const TILES = 60;
const COLUMNS = 10;

let seed = 11;
const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const unit = (values: number[]) => {
  const norm = Math.hypot(...values);
  return Float32Array.from(values, (v) => v / norm);
};
const rectOf = (j: number) => ({ x: (j % COLUMNS) * 224, y: Math.floor(j / COLUMNS) * 224, width: 224, height: 224 });
const keyOf = (hit: TileHit) => `${hit.tile.slideId}@${hit.tile.x},${hit.tile.y}`;

let dir: string;
let group: LocalShardGroup;
const vectors = new Map<string, Float32Array[]>();

function putSlide(store: IndexStore, slideId: string, tileVectors: Float32Array[]) {
  store.shardFor(slideId)!.putSlide(
    { slideId: asSlideId(slideId), path: `/slides/${slideId}`, metadata: { organ: slideId.endsWith('0') ? 'lung' : 'skin' }, fingerprint: { size: 0, mtimeMs: 0, hash: slideId }, mppSupplied: true, mpp: [0.5, 0.5], width: COLUMNS * 224, height: 2000, indexedAt: '' },
    tileVectors.map((vector, j) => ({ tile: { ...rectOf(j), mpp: 0.5, tissue: 1, level: 0 }, vector })),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-group-'));
  createOrCheckIndex(dir, { shards: 2, model: { id: 'test', version: '1', dimension: DIMENSION }, tile: { mpp: 0.5, sizePx: 224 } });
  const store = IndexStore.open(dir);
  for (let s = 0; s < SLIDES; s++) {
    const slideId = `slide-${s}`;
    const tileVectors = Array.from({ length: TILES }, () => unit(Array.from({ length: DIMENSION }, () => random() - 0.5)));
    vectors.set(slideId, tileVectors);
    putSlide(store, slideId, tileVectors);
  }
  // Replaced by a slide with fewer tiles: positions past its 20th tile no longer exist.
  vectors.set('slide-3', (vectors.get('slide-3') as Float32Array[]).slice(0, 20));
  putSlide(store, 'slide-3', vectors.get('slide-3') as Float32Array[]);
  expect(store.shards.map((shard) => shard.slideCount).every((count) => count > 0)).toBe(true);
  await store.close();
  group = await LocalShardGroup.open(dir, { threads: 2 });
});

afterAll(async () => {
  await group?.close();
});

describe('LocalShardGroup', () => {
  it('resolves a tile reference by its exact rectangle only, and finds the tile itself first', async () => {
    const shard = group.store.shardFor('slide-5')!;
    const label = shard.tileAt('slide-5', rectOf(17));
    expect(label).toBeDefined();
    expect(shard.tile(label!)).toMatchObject({ ...rectOf(17), slideId: 'slide-5' });
    expect(shard.tileAt('slide-5', { ...rectOf(17), x: rectOf(17).x + 1 })).toBeUndefined();
    expect(shard.tileAt('slide-5', { ...rectOf(17), width: 448 })).toBeUndefined();
    expect(group.store.shardFor('slide-3')!.tileAt('slide-3', rectOf(19))).toBeDefined();
    expect(group.store.shardFor('slide-3')!.tileAt('slide-3', rectOf(40))).toBeUndefined();

    const result = await group.searchStoredTile('slide-5', rectOf(17), { k: 5, ef: 200 });
    expect(keyOf(result!.hits[0]![0]!)).toBe(`slide-5@${rectOf(17).x},${rectOf(17).y}`);
    expect(result!.hits[0]![0]!.score).toBeGreaterThan(0.9999);
    expect(await group.searchStoredTile('slide-3', rectOf(40), { k: 5 })).toBeNull();
    expect(await group.searchStoredTile('no-such-slide', rectOf(0), { k: 5 })).toBeNull();
  });

  it('answers a burst of concurrent searches in batches exactly as one in-process search does', async () => {
    const store = IndexStore.open(dir, { readOnly: true });
    const queries = Array.from({ length: 300 }, (_, i) => (vectors.get(`slide-${i % SLIDES}`) as Float32Array[])[i % 20] as Float32Array);
    const request = (i: number) => ({ k: 8, ef: 200, excludeSlides: i % 3 === 0 ? [`slide-${i % SLIDES}`] : [], ...(i % 4 === 0 ? { filter: { organ: 'lung' } } : {}) });
    const served = await Promise.all(queries.map((query, i) => group.search([query], request(i))));
    queries.forEach((query, i) => {
      const { filter, excludeSlides, ...rest } = request(i);
      const expected = store.search(query, { ...rest, filter: parseFilter(filter), excludeSlides: new Set(excludeSlides) });
      expect(served[i]!.hits[0]!.map(keyOf)).toEqual(expected.map(keyOf));
      expect(served[i]!.hits[0]!.length).toBe(8);
    });
    await store.close();
  });

  it('fails one job of a batch with its own typed error and answers the others', async () => {
    const query = (vectors.get('slide-1') as Float32Array[])[0] as Float32Array;
    const answers = await Promise.allSettled([
      group.search([query], { k: 3 }),
      group.search([query], { k: 3, filter: ['not', 'an', 'object'] as unknown as Record<string, unknown> }),
      group.search([query], { k: 3 }),
    ]);
    expect(answers.map((answer) => answer.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const error = (answers[1] as PromiseRejectedResult).reason as TesseraError;
    expect(error).toBeInstanceOf(TesseraError);
    expect(error.code).toBe('INVALID_ARGUMENT');
  });

  it('gives up on a search past its deadline with SHARD_UNAVAILABLE and keeps serving', async () => {
    const query = (vectors.get('slide-2') as Float32Array[])[0] as Float32Array;
    await expect(group.search([query], { k: 3 }, Date.now() - 1)).rejects.toMatchObject({ code: 'SHARD_UNAVAILABLE', transient: true });
    expect((await group.search([query], { k: 3 }, Date.now() + 5000)).hits[0]).toHaveLength(3);
  });

  it('closes after the searches it is running, with every caller answered', async () => {
    const local = await LocalShardGroup.open(dir, { threads: 2 });
    const query = (vectors.get('slide-4') as Float32Array[])[0] as Float32Array;
    const pending = Promise.allSettled(Array.from({ length: 200 }, () => local.search([query], { k: 5, ef: 200 })));
    await new Promise((resolve) => setImmediate(resolve));
    await local.close();
    const settled = await pending;
    expect(settled.length).toBe(200);
    expect(settled.some((answer) => answer.status === 'fulfilled')).toBe(true);
    for (const answer of settled) if (answer.status === 'rejected') expect(answer.reason).toMatchObject({ code: 'SHARD_UNAVAILABLE' });
    await expect(local.search([query], { k: 5 })).rejects.toMatchObject({ code: 'SHARD_UNAVAILABLE' });
  });
});
