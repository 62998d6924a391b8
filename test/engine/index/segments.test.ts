/**
 * Segmented shards on disk: folds and merges by the policy, deletes and replaces applied inside
 * every search and reclaimed by merges, recall over several segments against exact search,
 * commits whose bytes do not grow with the shard, and one copy of each segment per node.
 */
import { describe, expect, it } from 'vitest';
import { exactScan, IndexStore, planParts, type MergePolicy } from '../../../engine/index.js';
import { clustered, newIndex, putSlide, seeded, threadBytesWritten } from './synthetic-shards.js';

const DIMENSION = 32;
const SMALL: MergePolicy = { foldTiles: 300, segmentsPerTier: 3, floorVectors: 300, maxTombstoneShare: 0.3 };

describe('segmented shards', () => {
  it('folds the tail into segments, merges them by the policy, and finds every vector after reopening', async () => {
    const dir = newIndex(DIMENSION);
    const vectors = clustered(2000, DIMENSION, seeded(1));
    const store = IndexStore.open(dir, { policy: SMALL });
    const shard = store.shards[0]!;
    for (let slide = 0; slide < 40; slide++) putSlide(shard, `slide-${slide}`, vectors.slice(slide * 50, slide * 50 + 50));
    await shard.settle();
    expect(shard.tail.endLabel - shard.tail.firstLabel).toBe(0);
    // 2,000 tiles in folds of ≥ 300, three per tier at most: a handful of segments, not forty.
    expect(shard.segments.length).toBeGreaterThanOrEqual(1);
    expect(shard.segments.length).toBeLessThanOrEqual(5);
    expect(shard.segments.reduce((sum, ref) => sum + ref.vectors, 0)).toBe(2000);
    await store.close();

    const reader = IndexStore.open(dir, { readOnly: true });
    expect(reader.shards[0]!.verify()).toEqual([]);
    for (const index of [0, 777, 1999]) {
      const [hit] = reader.search(vectors[index]!, { k: 1, ef: 100 });
      expect(hit!.tile.slideId).toBe(`slide-${Math.floor(index / 50)}`);
      expect(hit!.tile.x).toBe((index % 50) * 224);
    }
    await reader.close();
  });

  it('applies deletes and replaces inside every search, and a merge reclaims them', async () => {
    const dir = newIndex(DIMENSION);
    const random = seeded(2);
    const vectors = clustered(1200, DIMENSION, random);
    const store = IndexStore.open(dir, { policy: { ...SMALL, segmentsPerTier: 10 } });
    const shard = store.shards[0]!;
    for (let slide = 0; slide < 12; slide++) putSlide(shard, `slide-${slide}`, vectors.slice(slide * 100, slide * 100 + 100));
    await shard.settle();
    expect(shard.tail.endLabel - shard.tail.firstLabel).toBe(0);
    shard.deleteSlide('slide-3');
    const replaced = clustered(100, DIMENSION, random, 3);
    const replacement = putSlide(shard, 'slide-5', replaced);
    expect(shard.tombstoneCount).toBe(200);
    const check = (reader: IndexStore) => {
      for (const query of [...vectors.slice(300, 400), ...vectors.slice(500, 600)]) {
        for (const hit of reader.search(query, { k: 10, ef: 64 })) {
          expect(hit.tile.slideId).not.toBe('slide-3');
          if (hit.tile.slideId === 'slide-5') expect(replacement.labels).toContain(hit.label);
        }
      }
      expect(reader.search(replaced[7]!, { k: 1 })[0]!.label).toBe(replacement.labels[7]);
    };
    check(store);
    const reader = IndexStore.open(dir, { readOnly: true });
    check(reader);
    expect(reader.shards[0]!.verify()).toEqual([]);
    await reader.close();
    // A second delete pushes a segment past 30% tombstones: it is rewritten without them.
    shard.deleteSlide('slide-4');
    shard.deleteSlide('slide-2');
    await shard.settle();
    expect(shard.tombstoneCount).toBeLessThan(400);
    expect(shard.verify()).toEqual([]);
    check(store);
    await store.close();
  });

  it('keeps recall over several segments against exact search', async () => {
    const dir = newIndex(DIMENSION);
    // The last 100 are queries drawn like the tiles but not indexed.
    const drawn = clustered(4100, DIMENSION, seeded(3), 40);
    const vectors = drawn.slice(0, 4000);
    const store = IndexStore.open(dir, { policy: { foldTiles: 500, segmentsPerTier: 10, floorVectors: 500, maxTombstoneShare: 0.3 } });
    const shard = store.shards[0]!;
    // Settled every 500 tiles: eight folds of one run each (builds run while commits go on, so
    // without waiting a fold takes whatever the tail holds when it starts).
    for (let slide = 0; slide < 40; slide++) {
      putSlide(shard, `slide-${slide}`, vectors.slice(slide * 100, slide * 100 + 100));
      if (slide % 5 === 4) await shard.settle();
    }
    expect(shard.segments.length).toBe(8);
    const flat = new Float32Array(vectors.length * DIMENSION);
    vectors.forEach((vector, i) => flat.set(vector, i * DIMENSION));
    const labels = Uint32Array.from(vectors.keys());
    let found = 0;
    const queries = drawn.slice(4000);
    for (const query of queries) {
      const truth = new Set(exactScan(query, labels, flat, 10, null).labels);
      found += store.search(query, { k: 10, ef: 64 }).filter((hit) => truth.has(hit.label)).length;
    }
    expect(found / (queries.length * 10)).toBeGreaterThanOrEqual(0.95);
    // Without an ef, each segment searches at the ef it measured for recall@10 ≥ 0.95 when built.
    for (const ref of shard.segments) expect(ref.tuned!.recall10).toBeGreaterThanOrEqual(0.95);
    let foundTuned = 0;
    for (const query of queries) {
      const truth = new Set(exactScan(query, labels, flat, 10, null).labels);
      foundTuned += store.search(query, { k: 10 }).filter((hit) => truth.has(hit.label)).length;
    }
    expect(foundTuned / (queries.length * 10)).toBeGreaterThanOrEqual(0.95);
    await store.close();
  });

  it('writes bytes per commit that do not grow with the shard', async () => {
    const dir = newIndex(DIMENSION);
    const vectors = clustered(6000, DIMENSION, seeded(5));
    const store = IndexStore.open(dir, { policy: { ...SMALL, foldTiles: 1000 } });
    const shard = store.shards[0]!;
    const bytes: number[] = [];
    for (let slide = 0; slide < 60; slide++) {
      const before = threadBytesWritten();
      putSlide(shard, `slide-${slide}`, vectors.slice(slide * 100, slide * 100 + 100));
      bytes.push(threadBytesWritten() - before);
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const early = median(bytes.slice(0, 10));
    const late = median(bytes.slice(-10));
    // A commit that rewrote the shard would write ~60× more at the end than at the start.
    expect(late).toBeLessThan(early * 2);
    await store.close();
  });

  it('plans each segment onto one search thread, the largest first onto the least loaded', async () => {
    const dir = newIndex(DIMENSION, 2);
    const vectors = clustered(3000, DIMENSION, seeded(6));
    const store = IndexStore.open(dir, { policy: { ...SMALL, segmentsPerTier: 10 } });
    for (let slide = 0; slide < 30; slide++) putSlide(store.shardFor(`s${slide}`)!, `s${slide}`, vectors.slice(slide * 100, slide * 100 + 100));
    await store.close();
    const reader = IndexStore.open(dir, { readOnly: true, graph: false });
    const all = reader.shards.flatMap((shard) => shard.segments.map((ref) => `${shard.index}:${ref.id}`));
    for (const threads of [1, 2, 3]) {
      const plans = planParts(reader.shards, threads);
      const assigned = plans.flatMap((plan) => [...plan.entries()].flatMap(([shard, selection]) => selection.segments.map((id) => `${shard}:${id}`)));
      expect(assigned.sort()).toEqual([...all].sort());
    }
    await reader.close();
  });
});
