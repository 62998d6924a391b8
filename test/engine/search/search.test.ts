/** Slide search by mosaic and hard negatives on real shards built from known vectors. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexStore, asSlideId, createOrCheckIndex, hardNegatives, mosaicOf, searchSlides } from '../../../engine/index.js';

const DIMENSION = 16;

function seeded(seed: number): () => number {
  let state = seed;
  return () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function unit(values: number[]): Float32Array {
  const norm = Math.hypot(...values);
  return Float32Array.from(values, (v) => v / norm);
}

/** Vectors around `centre`: tiles of one tissue type. */
function around(centre: number[], count: number, random: () => number, spread = 0.15): Float32Array[] {
  return Array.from({ length: count }, () => unit(centre.map((v) => v + (random() - 0.5) * spread)));
}

function buildIndex(shards: number) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-search-'));
  createOrCheckIndex(dir, { shards, model: { id: 'test', version: '1', dimension: DIMENSION }, tile: { mpp: 0.5, sizePx: 224 } });
  return IndexStore.open(dir);
}

const random = seeded(7);
const tissue = (index: number) => Array.from({ length: DIMENSION }, (_, d) => (d === index ? 1 : 0.05));

function addSlide(store: IndexStore, slideId: string, vectors: Float32Array[], metadata: Record<string, string>, tileLabels?: string[]) {
  const shard = store.shardFor(slideId)!;
  shard.putSlide(
    { slideId: asSlideId(slideId), path: `/slides/${slideId}`, metadata, fingerprint: { size: 0, mtimeMs: 0, hash: slideId }, mppSupplied: false, mpp: [0.5, 0.5], width: 1000, height: 1000, indexedAt: '' },
    vectors.map((vector, i) => ({ tile: { x: i * 224, y: 0, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0, ...(tileLabels ? { metadata: { label: tileLabels[i]! } } : {}) }, vector })),
    mosaicOf(vectors),
  );
}

describe('slide search and hard negatives', () => {
  it('ranks slides of the same tissue mix above slides of other tissue', async () => {
    const store = buildIndex(3);
    // Query slide: tissues 0 and 1. Similar slide: the same mix. Others: tissues 2 and 3, or 0 only.
    addSlide(store, 'query', [...around(tissue(0), 30, random), ...around(tissue(1), 30, random)], { diagnosis: 'A' });
    addSlide(store, 'similar', [...around(tissue(0), 25, random), ...around(tissue(1), 25, random)], { diagnosis: 'A' });
    addSlide(store, 'half', around(tissue(0), 40, random), { diagnosis: 'B' });
    addSlide(store, 'other', [...around(tissue(2), 20, random), ...around(tissue(3), 20, random)], { diagnosis: 'C' });
    const shard = store.shardFor('query')!;
    const record = shard.slide('query')!;
    expect(record.mosaic.length).toBeGreaterThan(1);
    expect(record.mosaic.length).toBeLessThan(record.labels.length);
    const queries = record.mosaic.map((label) => shard.vector(label));
    const ranked = searchSlides(store, queries, { k: 10, excludeSlides: new Set(['query']) });
    expect(ranked.map((match) => match.slideId)).toEqual(['similar', 'half', 'other'].slice(0, ranked.length));
    expect(ranked[0]!.evidence.length).toBeGreaterThan(0);
    expect(ranked[0]!.evidence.every((hit) => hit.tile.slideId === 'similar')).toBe(true);
    const filtered = searchSlides(store, queries, { k: 10, excludeSlides: new Set(['query']), filter: { conditions: [] } });
    expect(filtered[0]!.slideId).toBe('similar');
    await store.close();
  });

  it('returns, for each labelled query in order, the nearest tiles with another label', async () => {
    const store = buildIndex(2);
    const labels = ['tumour', 'stroma', 'tumour', 'stroma', 'debris'];
    labels.forEach((label, i) => addSlide(store, `tile-${i}`, around(tissue(i % 3), 4, random), {}, new Array(4).fill(label)));
    const queries = [
      { vector: unit(tissue(0)), label: 'tumour' },
      { vector: unit(tissue(1)), label: 'stroma' },
    ];
    const results = [...hardNegatives(store, queries, { k: 6 })];
    expect(results).toHaveLength(2);
    expect(results[0]!.every((hit) => hit.tile.metadata?.label !== 'tumour')).toBe(true);
    expect(results[1]!.every((hit) => hit.tile.metadata?.label !== 'stroma')).toBe(true);
    expect(results[0]).toHaveLength(6);
    // The nearest non-tumour tiles to a tumour-like query are still ranked by similarity.
    expect(results[0]![0]!.score).toBeGreaterThanOrEqual(results[0]![5]!.score);
    await store.close();
  });

  it('commits deferred slides with the next flush, and only then searches them', async () => {
    const store = buildIndex(1);
    const dir = store.dir;
    addSlide(store, 'committed', around(tissue(0), 5, random), {});
    const shard = store.shards[0]!;
    const vectors = around(tissue(1), 5, random);
    shard.putSlide(
      { slideId: asSlideId('deferred'), path: '', metadata: {}, fingerprint: { size: 0, mtimeMs: 0, hash: '' }, mppSupplied: false, mpp: [0.5, 0.5], width: 1, height: 1, indexedAt: '' },
      vectors.map((vector) => ({ tile: { x: 0, y: 0, width: 1, height: 1, mpp: 0.5, tissue: 1, level: 0 }, vector })),
      [],
      { defer: true },
    );
    expect(shard.pendingTiles).toBe(5);
    expect(store.search(vectors[0]!, { k: 1 })[0]!.tile.slideId).toBe('committed');
    const untouched = IndexStore.open(dir, { readOnly: true });
    expect(untouched.shards[0]!.slideIds()).toEqual(['committed']);
    await untouched.close();
    shard.flush();
    expect(shard.pendingTiles).toBe(0);
    expect(store.search(vectors[0]!, { k: 1 })[0]!.tile.slideId).toBe('deferred');
    await store.close();
    const reopened = IndexStore.open(dir);
    expect(reopened.shards[0]!.slideIds().sort()).toEqual(['committed', 'deferred']);
    expect(reopened.shards[0]!.verify()).toEqual([]);
    await reopened.close();
  });

  it('grows a shard past its initial capacity and keeps every vector findable', async () => {
    const store = buildIndex(1);
    const vectors = Array.from({ length: 2500 }, () => unit(Array.from({ length: DIMENSION }, () => random() - 0.5)));
    addSlide(store, 'big', vectors, {});
    expect(store.shards[0]!.tileCount).toBe(2500);
    for (const index of [0, 1234, 2499]) {
      const [hit] = store.search(vectors[index]!, { k: 1, ef: 200 });
      expect(hit!.tile.x).toBe(index * 224);
      expect(hit!.score).toBeGreaterThan(0.9999);
    }
    expect(store.shards[0]!.verify()).toEqual([]);
    await store.close();
  });
});
