/**
 * Whole-region queries through the API on a real index: a box of several tiles of S2 (a 1024²
 * crop of CMU-1-Small-Region, which is S1) is cut into its indexed tissue tiles, and the place on
 * S1 where they land together comes back as a region match with its evidence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { SHARED_MISSING, hasSharedData } from '../shared-data.js';
import { KEYS, buildApiFixture, client, serve, type ApiFixture } from './fixture.js';

interface Region {
  slideId: string;
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
  matchedQueries: number;
  evidence: Array<{ slideId: string; x: number; y: number; score: number; queryTile: number }>;
}

describe.skipIf(!hasSharedData)(`whole-region queries ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let server: RunningServer;
  let api: ReturnType<typeof client>;

  beforeAll(async () => {
    fixture = await buildApiFixture();
    server = await serve(fixture, { index: fixture.index, config: fixture.config });
    api = client(server.url, KEYS.all);
  }, 180_000);
  afterAll(async () => {
    await server?.close();
  });

  it('cuts a box into its tissue tiles and finds where they land together on another slide, with evidence', async () => {
    const box = { slideId: 'S2', x: 0, y: 0, width: 672, height: 672 };
    const answer = await api('/v1/search/region', { json: { ...box, k: 5, regions: true } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const tiles: Array<{ x: number; y: number; width: number; height: number }> = answer.body.query.tiles;
    expect(tiles.length).toBeGreaterThanOrEqual(2);
    expect(tiles.length).toBeLessThanOrEqual(9);
    for (const tile of tiles) expect(tile.x + tile.width / 2 < box.width && tile.y + tile.height / 2 < box.height).toBe(true);
    const regions: Region[] = answer.body.regions;
    expect(regions.length).toBeGreaterThan(0);
    const top = regions[0]!;
    // The crop's tissue is S1's: several query tiles land together there.
    expect(top.slideId).toBe('S1');
    expect(top.matchedQueries).toBeGreaterThanOrEqual(2);
    expect(top.width).toBeGreaterThan(600);
    expect(regions.every((region) => region.slideId !== 'S2')).toBe(true);
    for (const region of regions) {
      // The score is the mean over every query tile of its best match in the region (its evidence).
      expect(region.score).toBeCloseTo(region.evidence.reduce((sum, hit) => sum + hit.score, 0) / tiles.length, 5);
      expect(new Set(region.evidence.map((hit) => hit.queryTile)).size).toBe(region.matchedQueries);
      for (const hit of region.evidence) {
        // Each evidence tile lies where its query tile sits in the box, within one tile.
        const tile = tiles[hit.queryTile]!;
        expect(hit.slideId).toBe(region.slideId);
        expect(Math.abs(hit.x - region.x - (tile.x - box.x))).toBeLessThanOrEqual(2 * tile.width);
        expect(Math.abs(hit.y - region.y - (tile.y - box.y))).toBeLessThanOrEqual(2 * tile.height);
      }
    }
    expect(regions.map((region) => region.score)).toEqual([...regions.map((region) => region.score)].sort((a, b) => b - a));
    // The tiles too: the best over all query tiles, without the query slide.
    expect(answer.body.results.length).toBe(5);
    expect(answer.body.results.every((hit: { slideId: string }) => hit.slideId !== 'S2')).toBe(true);
  });

  it('treats a box of one tile as one query tile, and refines a whole-region query by example', async () => {
    const one = await api('/v1/search/region', { json: { slideId: 'S2', x: 224, y: 224, width: 224, height: 224, k: 3, regions: true } });
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    expect(one.body.query.tiles).toHaveLength(1);
    expect(one.body.regions.every((region: Region) => region.matchedQueries === 1)).toBe(true);
    const plain = await api('/v1/search/region', { json: { slideId: 'S2', x: 224, y: 224, width: 224, height: 224, k: 3 } });
    expect(one.body.results.map((hit: { slideId: string; x: number }) => [hit.slideId, hit.x])).toEqual(plain.body.results.map((hit: { slideId: string; x: number }) => [hit.slideId, hit.x]));
    const refined = await api('/v1/search/region', { json: { slideId: 'S2', x: 0, y: 0, width: 448, height: 448, k: 3, regions: true, negatives: [{ slideId: 'S2', x: 224, y: 224, width: 224, height: 224 }] } });
    expect(refined.status, JSON.stringify(refined.body)).toBe(200);
    expect(refined.body.query.refined).toEqual({ positives: 0, negatives: 1 });
  });

  it('searches several boxes of a slide as one query, their tiles in their arrangement', async () => {
    const answer = await api('/v1/search/region', { json: { slideId: 'S2', x: 0, y: 0, width: 448, height: 448, boxes: [{ x: 448, y: 448, width: 448, height: 448 }], k: 3, regions: true } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    const tiles: Array<{ x: number; y: number }> = answer.body.query.tiles;
    expect(tiles.some((tile) => tile.x < 448 && tile.y < 448)).toBe(true);
    expect(tiles.some((tile) => tile.x >= 448 && tile.y >= 448)).toBe(true);
    expect(tiles.every((tile) => (tile.x < 448) === (tile.y < 448))).toBe(true);
    const top: Region = answer.body.regions[0];
    expect(top.slideId).toBe('S1');
    // The region spans both boxes' bounding box, placed on S1.
    expect(top.width).toBeGreaterThan(850);
    expect(top.matchedQueries).toBeGreaterThanOrEqual(2);
    const without = await api('/v1/search/region', { json: { slideId: 'S2', x: 0, y: 0, width: 448, height: 448, boxes: [{ x: 448, y: 448, width: 448, height: 448 }] } });
    expect(without.status).toBe(400);
  });

  it('refuses a whole-region query holding no indexed tile, on an image, or over too many tiles', async () => {
    const noTile = await api('/v1/search/region', { json: { slideId: 'S2', x: 0, y: 0, width: 100, height: 100, regions: true } });
    expect(noTile.status).toBe(400);
    expect(noTile.body.message).toContain('holds no indexed tissue tile');
    const image = await api('/v1/search/region', { json: { image: 'aGVsbG8=', regions: true } });
    expect(image.status).toBe(400);
    const huge = await api('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 2220, height: 2967, regions: true } });
    expect(huge.status).toBe(200);
    const tooMany = await api('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 200_000, height: 200_000, regions: true } });
    expect(tooMany.status).toBe(413);
  });
});
