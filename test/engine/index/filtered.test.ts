/**
 * Filtered search over segments with sub-graphs: answers equal exact filtered search at a high ef,
 * whether a segment walks its sub-graphs or its whole graph; dataset scopes and exclusions hold
 * inside sub-graphs; deletes (tombstones) and merges keep sub-graphs right, and verify and the
 * writer's clean-up treat their files as part of their segment.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exactScan, IndexStore, matches, parseFilter, datasetOf, type Filter, type LocalShard, type MergePolicy, type SearchOptions } from '../../../engine/index.js';
import { clustered, newIndex, seeded, slideRecord } from './synthetic-shards.js';

const DIMENSION = 16;
const SLIDES = 60;
const TILES_PER_SLIDE = 250;
const ORGANS = ['lung', 'colon', 'breast', 'skin'];
/**
 * Folds of 5,000 tiles (20 slides): each organ holds a quarter of a segment, 1,250 tiles, and
 * tumour about 1,110, above the exact-scan limit of 1,024 (their sub-graphs are walked; without them, a
 * quarter is fetched without a callback, tumour walked with one); lung stroma tiles, 975 a
 * segment, are scanned exactly per segment, lung tumour tiles (830 in the shard) in one go.
 */
const POLICY: MergePolicy = { foldTiles: 5000, segmentsPerTier: 10, floorVectors: 5000, maxTombstoneShare: 0.3, subgraphs: { fields: ['organ', 'label'], minVectors: 200, maxShare: 0.25 } };
const WITHOUT_SUBGRAPHS: MergePolicy = { ...POLICY, subgraphs: { fields: [], minVectors: 200, maxShare: 0.25 } };
// Every vector of a sub-graph is within reach at this ef, and a whole graph's walk at it is exact.
const HIGH_EF = 1500;
/** Lower than the default (4,096), so that segments of 5,000 tiles take the graph paths too. */
const EXACT_SCAN_LIMIT = 1024;

const vectors = clustered(SLIDES * TILES_PER_SLIDE, DIMENSION, seeded(15), 30);
const slideMetadata = (slide: number) => ({ organ: ORGANS[slide % ORGANS.length] as string, dataset: slide % 3 === 0 ? 'a' : 'b' });
// Two ninths of the tiles are tumour, at the tile level.
const tileLabel = (position: number) => (position % 9 === 3 || position % 9 === 5 ? 'tumour' : 'stroma');

function putSlides(shard: LocalShard, slides: number[], version = 0): void {
  for (const slide of slides) {
    const tiles = Array.from({ length: TILES_PER_SLIDE }, (_, i) => ({
      tile: { x: i * 224, y: version * 224, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0, metadata: { label: tileLabel(i) } },
      vector: vectors[slide * TILES_PER_SLIDE + i] as Float32Array,
    }));
    shard.putSlide(slideRecord(`slide-${slide}`, slideMetadata(slide)), tiles, [0]);
  }
}

async function build(policy: MergePolicy): Promise<{ dir: string; store: IndexStore }> {
  const dir = newIndex(DIMENSION, 1, 'tessera-filtered-');
  const store = IndexStore.open(dir, { policy, exactScanLimit: EXACT_SCAN_LIMIT });
  const shard = store.shards[0]!;
  for (let from = 0; from < SLIDES; from += 20) {
    putSlides(shard, Array.from({ length: 20 }, (_, i) => from + i));
    await shard.settle();
  }
  return { dir, store };
}

/** Exact filtered top k over the shard's live tiles, by label. */
function exactFiltered(shard: LocalShard, query: Float32Array, k: number, filter: Filter, options: Pick<SearchOptions, 'datasets' | 'excludeSlides'> = {}): number[] {
  const labels: number[] = [];
  for (const slideId of shard.slideIds()) {
    const slide = shard.slide(slideId)!;
    if (options.datasets && !options.datasets.has(datasetOf(slide.metadata))) continue;
    if (options.excludeSlides?.has(slideId)) continue;
    for (const label of slide.labels) if (matches(filter, shard.tile(label)?.metadata, slide.metadata)) labels.push(label);
  }
  const flat = new Float32Array(labels.length * DIMENSION);
  labels.forEach((label, i) => flat.set(shard.vector(label), i * DIMENSION));
  return exactScan(query, labels, flat, k, null).labels;
}

const FILTERS = [{ organ: 'lung' }, { label: 'tumour' }, { organ: { in: ['colon', 'skin'] } }, { organ: 'lung', label: 'tumour' }, { organ: 'lung', label: 'stroma' }, { organ: { not: 'lung' } }].map((raw) => ({ raw, filter: parseFilter(raw) }));
const queries = clustered(12, DIMENSION, seeded(99), 30);

describe('filtered search with sub-graphs', () => {
  let withSubgraphs: { dir: string; store: IndexStore };
  let without: { dir: string; store: IndexStore };

  beforeAll(async () => {
    withSubgraphs = await build(POLICY);
    without = await build(WITHOUT_SUBGRAPHS);
  }, 60_000);

  afterAll(async () => {
    await withSubgraphs.store.close();
    await without.store.close();
  });

  it('builds a sub-graph per common facet value with each segment, and verify accepts them', () => {
    const shard = withSubgraphs.store.shards[0]!;
    expect(shard.segments.length).toBe(3);
    for (const ref of shard.segments) {
      // Four organs of a quarter each, and tumour (two ninths); stroma (seven ninths) is too common.
      expect(ref.subgraphs!.map(({ field, value }) => `${field}=${value}`).sort()).toEqual([...ORGANS.map((organ) => `organ=${organ}`), 'label=tumour'].sort());
      for (const subgraph of ref.subgraphs!) expect(existsSync(join(withSubgraphs.dir, 'shard-000', 'segments', subgraph.file))).toBe(true);
    }
    expect(without.store.shards[0]!.segments.every((ref) => ref.subgraphs === undefined)).toBe(true);
    expect(shard.verify()).toEqual([]);
    expect(shard.orphanFiles()).toEqual([]);
  });

  it('returns the exact filtered top k at a high ef, with sub-graphs and without', () => {
    const shard = withSubgraphs.store.shards[0]!;
    for (const { raw, filter } of FILTERS) {
      for (const query of queries) {
        const truth = exactFiltered(shard, query, 10, filter);
        expect(truth.length, JSON.stringify(raw)).toBe(10);
        expect(withSubgraphs.store.search(query, { k: 10, ef: HIGH_EF, filter }).map((hit) => hit.label), JSON.stringify(raw)).toEqual(truth);
        expect(without.store.search(query, { k: 10, ef: HIGH_EF, filter }).map((hit) => hit.label), JSON.stringify(raw)).toEqual(truth);
      }
    }
  });

  it('keeps recall at the tuned ef when walking sub-graphs', () => {
    const shard = withSubgraphs.store.shards[0]!;
    const filter = parseFilter({ organ: 'lung' });
    let found = 0;
    for (const query of queries) {
      const truth = new Set(exactFiltered(shard, query, 10, filter));
      found += withSubgraphs.store.search(query, { k: 10, filter }).filter((hit) => truth.has(hit.label)).length;
    }
    expect(found / (queries.length * 10)).toBeGreaterThanOrEqual(0.95);
    for (const ref of shard.segments) for (const subgraph of ref.subgraphs!) expect(subgraph.tuned.recall10).toBeGreaterThanOrEqual(0.95);
  });

  it('keeps dataset scopes and exclusions inside sub-graphs', () => {
    const shard = withSubgraphs.store.shards[0]!;
    // About 1,700 tiles of each segment admitted, of the 2,500 its two sub-graphs hold: walked with a callback.
    const filter = parseFilter({ organ: { in: ['lung', 'colon'] } });
    const datasets = new Set(['b']);
    const excludeSlides = new Set(['slide-1', 'slide-13']);
    for (const query of queries) {
      const hits = withSubgraphs.store.search(query, { k: 10, ef: HIGH_EF, filter, datasets, excludeSlides });
      for (const hit of hits) {
        expect(hit.slideMetadata.dataset).toBe('b');
        expect(excludeSlides.has(hit.tile.slideId)).toBe(false);
        expect(['lung', 'colon']).toContain(hit.slideMetadata.organ);
      }
      expect(hits.map((hit) => hit.label)).toEqual(exactFiltered(shard, query, 10, filter, { datasets, excludeSlides }));
    }
  });

  it('applies deletes and replaces to sub-graphs, and a merge rebuilds them without the tombstones', async () => {
    const { dir, store } = await build(POLICY);
    const shard = store.shards[0]!;
    try {
      const before = shard.segments.map((ref) => ref.file);
      // Seven slides of the first segment deleted (35% of it: the merge policy starts rewriting it
      // at once) and three replaced (new labels, in the tail). Builds commit on this thread, so
      // until the next await every search sees the old segment with all 2,500 tombstones.
      for (const slide of [0, 1, 2, 5, 6, 7, 10]) shard.deleteSlide(`slide-${slide}`);
      putSlides(shard, [11, 12, 13], 1);
      expect(shard.tombstoneCount).toBe(10 * TILES_PER_SLIDE);
      const check = () => {
        for (const { raw, filter } of FILTERS) {
          for (const query of queries.slice(0, 6)) {
            const hits = store.search(query, { k: 10, ef: HIGH_EF, filter }).map((hit) => hit.label);
            expect(hits, JSON.stringify(raw)).toEqual(exactFiltered(shard, query, 10, filter));
          }
        }
      };
      check();
      await shard.settle();
      // The rewrite holds the replaced slides' old tiles as tombstones when it read them before
      // their replacement was committed: fewer than 30% of it, so they stay.
      expect(shard.tombstoneCount).toBeLessThanOrEqual(3 * TILES_PER_SLIDE);
      const after = shard.segments.map((ref) => ref.file);
      expect(after).not.toEqual(before);
      // The rewritten segment has sub-graphs of its own; the replaced one's files are gone.
      const listed = new Set(shard.segments.flatMap((ref) => [ref.file, ...(ref.subgraphs ?? []).map((subgraph) => subgraph.file)]));
      expect(readdirSync(join(dir, 'shard-000', 'segments')).sort()).toEqual([...listed].sort());
      expect(shard.segments[0]!.firstLabel).toBe(0);
      expect(shard.segments[0]!.subgraphs!.length).toBeGreaterThan(0);
      expect(shard.verify()).toEqual([]);
      check();
    } finally {
      await store.close();
    }
  }, 60_000);

  it('reports a damaged sub-graph file, and a writer removes one no commit lists', async () => {
    const { dir, store } = await build(POLICY);
    const ref = store.shards[0]!.segments[0]!;
    const subgraph = ref.subgraphs![0]!;
    const folder = join(dir, 'shard-000', 'segments');
    await store.close();
    writeFileSync(join(folder, subgraph.file), 'not a graph');
    const orphan = ref.file.replace('.hnsw', '.sub-0999.hnsw');
    writeFileSync(join(folder, orphan), 'left by a crash');
    const reader = IndexStore.open(dir, { readOnly: true, exactScanLimit: EXACT_SCAN_LIMIT });
    const problems = reader.shards[0]!.verify();
    expect(problems.some((problem) => problem.includes(subgraph.file) && problem.includes('bytes'))).toBe(true);
    expect(reader.shards[0]!.orphanFiles()).toEqual([orphan]);
    await reader.close();
    const writer = IndexStore.open(dir, { policy: POLICY });
    expect(existsSync(join(folder, orphan))).toBe(false);
    await writer.close();
  });
});
