/**
 * The ShardGroup contract, one suite run against each implementation: LocalShardGroup (search
 * threads in this process, or the calling thread as the CLI uses it) and RemoteShardGroup (a real
 * shard node on 127.0.0.1 over HTTP).
 * The fan-out code sees only ShardGroup, so both must answer the same questions the same way.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, startServer, type RunningServer } from '../../../api/index.js';
import { hitsFromWire, hitsToWire, LocalShardGroup, RemoteShardGroup, type ShardGroup } from '../../../engine/cluster/index.js';
import { IndexStore } from '../../../engine/index.js';
import { clustered, newIndex, putSlide, seeded } from '../index/synthetic-shards.js';

const DIMENSION = 32;
const rect = (i: number) => ({ x: i * 224, y: 0, width: 224, height: 224 });

interface Fixture {
  dir: string;
  vectors: Map<string, Float32Array[]>;
}

async function buildIndex(): Promise<Fixture> {
  const dir = newIndex(DIMENSION, 2, 'tessera-contract-');
  const random = seeded(21);
  const vectors = new Map<string, Float32Array[]>();
  const store = IndexStore.open(dir);
  for (let s = 0; s < 8; s++) {
    const slideVectors = clustered(40, DIMENSION, random, 5);
    vectors.set(`slide-${s}`, slideVectors);
    putSlide(store.shardFor(`slide-${s}`)!, `slide-${s}`, slideVectors, { dataset: s % 2 === 0 ? 'even' : 'odd', patient_id: `P${s % 4}`, organ: s % 3 === 0 ? 'lung' : 'skin' });
  }
  await store.close();
  return { dir, vectors };
}

const implementations: Array<{ name: string; open: (dir: string) => Promise<{ group: ShardGroup; close: () => Promise<void> }> }> = [
  {
    name: 'LocalShardGroup',
    open: async (dir) => {
      const group = await LocalShardGroup.open(dir, { threads: 2 });
      return { group, close: () => group.close() };
    },
  },
  {
    // The CLI's way: searches on the calling thread, the same tasks without a search thread.
    name: 'LocalShardGroup searching on the calling thread',
    open: async (dir) => {
      const group = await LocalShardGroup.open(dir, { threads: 0 });
      return { group, close: () => group.close() };
    },
  },
  {
    name: 'RemoteShardGroup',
    open: async (dir) => {
      const server: RunningServer = await startServer(buildConfig({ port: '0', index: dir, role: 'shard', 'no-model': true, 'no-viewer': true, threads: '2' }, {}, join(dir, 'models')));
      const group = await RemoteShardGroup.connect(server.url, { timeoutMs: 5000 });
      return { group, close: async () => (await group.close(), await server.close()) };
    },
  },
];

for (const implementation of implementations) {
  describe(`ShardGroup contract: ${implementation.name}`, () => {
    let fixture: Fixture;
    let group: ShardGroup;
    let close: () => Promise<void>;

    beforeAll(async () => {
      fixture = await buildIndex();
      ({ group, close } = await implementation.open(fixture.dir));
    }, 60_000);
    afterAll(async () => close?.());

    it('serves every shard and counts its slides and tiles', async () => {
      expect([...group.shardIds].sort()).toEqual([0, 1]);
      const health = await group.health();
      expect(health.shards.reduce((sum, shard) => sum + shard.slides, 0)).toBe(8);
      expect(health.shards.reduce((sum, shard) => sum + shard.tiles, 0)).toBe(320);
      expect(health.model.dimension).toBe(DIMENSION);
    });

    it('finds a tile by its own vector first, k best first, across both shards', async () => {
      const query = fixture.vectors.get('slide-5')![9]!;
      const { hits } = await group.search([query, fixture.vectors.get('slide-2')![3]!], { k: 7, ef: 100 });
      expect(hits).toHaveLength(2);
      expect(hits[0]![0]!.tile.slideId).toBe('slide-5');
      expect(hits[0]![0]!.tile.x).toBe(9 * 224);
      expect(hits[0]!).toHaveLength(7);
      expect(hits[0]!.map((hit) => hit.score)).toEqual([...hits[0]!.map((hit) => hit.score)].sort((a, b) => b - a));
      expect(hits[1]![0]!.tile.slideId).toBe('slide-2');
    });

    it('keeps dataset scopes, exclusions and filters inside the search', async () => {
      const query = fixture.vectors.get('slide-5')![9]!;
      const scoped = await group.search([query], { k: 20, datasets: ['even'] });
      expect(scoped.hits[0]!.every((hit) => hit.slideMetadata.dataset === 'even')).toBe(true);
      const excluded = await group.search([query], { k: 20, excludeSlides: ['slide-5'], excludePatients: ['P2'] });
      expect(excluded.hits[0]!.some((hit) => hit.tile.slideId === 'slide-5' || hit.slideMetadata.patient_id === 'P2')).toBe(false);
      const filtered = await group.search([query], { k: 20, filter: { patient_id: 'P3' } });
      expect(filtered.hits[0]!.length).toBeGreaterThan(0);
      expect(filtered.hits[0]!.every((hit) => hit.slideMetadata.patient_id === 'P3')).toBe(true);
    });

    it('finds the exact k nearest by a full scan, with scope, filter and per-query exclusions', async () => {
      const queries = [fixture.vectors.get('slide-5')![9]!, fixture.vectors.get('slide-2')![3]!];
      // Brute force over the fixture's own vectors: slide s has dataset even|odd and patient P(s % 4).
      const bruteForce = (query: Float32Array, admits: (slide: number) => boolean, k: number) =>
        [...fixture.vectors.entries()]
          .flatMap(([slideId, vectors]) => vectors.map((vector, i) => ({ key: `${slideId}@${i * 224}`, slide: Number(slideId.split('-')[1]), score: vector.reduce((sum, v, d) => sum + v * (query[d] as number), 0) })))
          .filter((entry) => admits(entry.slide))
          .sort((a, b) => b.score - a.score)
          .slice(0, k)
          .map((entry) => entry.key);
      const keys = (hits: Array<{ tile: { slideId: string; x: number } }>) => hits.map((hit) => `${hit.tile.slideId}@${hit.tile.x}`);
      const all = await group.exactSearch(queries, { k: 15 }, []);
      expect(all.hits.map(keys)).toEqual(queries.map((query) => bruteForce(query, () => true, 15)));
      // A filter shared by both queries; each leaves out its own slide, the first also patient P2.
      const filtered = await group.exactSearch(queries, { k: 15, filter: { patient_id: { not: 'P3' } } }, [{ slides: ['slide-5'], patients: ['P2'] }, { slides: ['slide-2'] }]);
      expect(filtered.hits.map(keys)).toEqual([bruteForce(queries[0]!, (s) => s % 4 !== 3 && s !== 5 && s % 4 !== 2, 15), bruteForce(queries[1]!, (s) => s % 4 !== 3 && s !== 2, 15)]);
      expect(filtered.hits[0]!.length).toBe(15);
      const scoped = await group.exactSearch(queries, { k: 15, datasets: ['odd'] }, []);
      expect(scoped.hits.map(keys)).toEqual(queries.map((query) => bruteForce(query, (s) => s % 2 === 1, 15)));
    });

    it('returns stored vectors of a tile reference or a mosaic, and null out of scope', async () => {
      const [vector] = (await group.storedVectors('slide-3', { rect: rect(4) }, null))!;
      const expected = fixture.vectors.get('slide-3')![4]!;
      expect(Array.from(vector!).map((v) => v.toFixed(5))).toEqual(Array.from(expected).map((v) => v.toFixed(5)));
      expect(await group.storedVectors('slide-3', { rect: { ...rect(4), x: 1 } }, null)).toBeNull();
      expect(await group.storedVectors('slide-3', { rect: rect(4) }, ['even'])).toBeNull();
      expect((await group.storedVectors('slide-3', { mosaic: true }, null))!.length).toBeGreaterThan(0);
    });

    it("returns a slide's record with the stored vectors of a tile reference or its mosaic in one call", async () => {
      const found = (await group.slideVectors('slide-3', { rect: rect(4) }, null))!;
      expect(found.slide).toEqual(await group.slide('slide-3', null));
      expect(found.vectors!.map((vector) => Array.from(vector))).toEqual((await group.storedVectors('slide-3', { rect: rect(4) }, null))!.map((vector) => Array.from(vector)));
      const mosaic = (await group.slideVectors('slide-3', { mosaic: true }, null))!;
      expect(mosaic.vectors!.length).toBe((await group.storedVectors('slide-3', { mosaic: true }, null))!.length);
      // Not a tile's rectangle: the record still comes, without vectors (the caller embeds the region).
      expect(await group.slideVectors('slide-3', { rect: { ...rect(4), x: 1 } }, null)).toEqual({ slide: found.slide, vectors: null });
      expect(await group.slideVectors('slide-3', { rect: rect(4) }, ['even'])).toBeUndefined();
      expect(await group.slideVectors('no-such-slide', { mosaic: true }, null)).toBeUndefined();
    });

    it('resolves and searches a tile reference in one call, as its stored vector searched', async () => {
      const request = { k: 15, excludeSlides: ['slide-3'], datasets: null };
      const found = (await group.searchFromStoredTile('slide-3', rect(4), request))!;
      expect(found.slide).toEqual(await group.slide('slide-3', null));
      const stored = (await group.storedVectors('slide-3', { rect: rect(4) }, null))!;
      expect(found.vectors!.map((vector) => Array.from(vector))).toEqual(stored.map((vector) => Array.from(vector)));
      expect(found.result!.hits).toEqual((await group.search(stored, request)).hits);
      expect(found.result!.hits[0]!.some((hit) => hit.tile.slideId === 'slide-3')).toBe(false);
      expect(await group.searchFromStoredTile('slide-3', { ...rect(4), x: 1 }, request)).toEqual({ slide: found.slide, vectors: null, result: null });
      expect(await group.searchFromStoredTile('slide-3', rect(4), { ...request, datasets: ['even'] })).toBeUndefined();
    });

    it('pages slides in id order across shards, with counts and facets, without paths, in scope only', async () => {
      const seen: string[] = [];
      let after: string | undefined;
      for (let pages = 0; pages < 5; pages++) {
        const page = await group.slidePage({ limit: 3, datasets: null, ...(after ? { after } : {}) });
        expect(page.total).toBe(8);
        seen.push(...page.slides.map((slide) => slide.slideId));
        expect(page.slides.every((slide) => !('path' in slide))).toBe(true);
        if (!page.more) break;
        after = page.slides[page.slides.length - 1]!.slideId;
      }
      expect(seen).toEqual(Array.from({ length: 8 }, (_, s) => `slide-${s}`));
      const odd = await group.slidePage({ limit: 10, datasets: ['odd'] });
      expect(odd.slides.map((slide) => slide.slideId)).toEqual(['slide-1', 'slide-3', 'slide-5', 'slide-7']);
      expect(odd.facets.organ).toEqual({ lung: 1, skin: 3 });
      expect(odd.facets.dataset).toEqual({ odd: 4 });
      const oddLungs = await group.slidePage({ limit: 10, datasets: ['odd'], where: { organ: 'lung' } });
      expect([oddLungs.total, oddLungs.slides.map((slide) => slide.slideId)]).toEqual([1, ['slide-3']]);
      expect((await group.slidePage({ limit: 10, datasets: null, text: 'E-6' })).slides.map((slide) => slide.slideId)).toEqual(['slide-6']);
      expect(await group.slideTotals(['even'])).toEqual({ slides: 4, tiles: 160 });
      expect(await group.slideTotals(['none'])).toEqual({ slides: 0, tiles: 0 });
      const summary = await group.slide('slide-6', null);
      expect(summary?.tiles).toBe(40);
      expect(summary && 'path' in summary).toBe(false);
      expect(await group.slide('slide-6', ['odd'])).toBeUndefined();
      expect(await group.slide('no-such-slide', null)).toBeUndefined();
    });
  });
}

describe('ShardGroup contract: remote hits are the local hits', () => {
  it('answers a multi-query search over HTTP (hits as rows, each slide once) exactly as the local group does', async () => {
    const fixture = await buildIndex();
    const [local, remote] = await Promise.all([implementations[0]!.open(fixture.dir), implementations[2]!.open(fixture.dir)]);
    try {
      const queries = ['slide-1', 'slide-4', 'slide-6'].map((slideId) => fixture.vectors.get(slideId)![7]!);
      for (const request of [{ k: 25 }, { k: 10, datasets: ['odd'], excludePatients: ['P1'] }]) {
        const [near, far] = await Promise.all([local.group.search(queries, request), remote.group.search(queries, request)]);
        expect(far.hits).toEqual(near.hits);
        expect(far.hits.flat().length).toBeGreaterThan(queries.length);
      }
      // Tile-level metadata (tile datasets' labels) travels with its row.
      const [hit] = (await local.group.search(queries.slice(0, 1), { k: 1 })).hits[0]!;
      const labelled = { hits: [[{ ...hit!, tile: { ...hit!.tile, metadata: { label: 'tumour' } } }]], shardMs: {} };
      expect(hitsFromWire(JSON.parse(JSON.stringify(hitsToWire(labelled))))).toEqual(labelled);
    } finally {
      await Promise.all([local.close(), remote.close()]);
    }
  }, 60_000);
});
