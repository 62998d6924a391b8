/** Whole-region aggregation: hits vote for where the query box lies; agreeing votes make a region. */
import { describe, expect, it } from 'vitest';
import { asSlideId, gridTilesIn, matchRegions, type TileHit } from '../../../engine/index.js';

const hit = (slideId: string, x: number, y: number, score: number, label: number, mpp = 0.5): TileHit => ({
  label,
  shard: 0,
  score,
  tile: { slideId: asSlideId(slideId), x, y, width: 224, height: 224, mpp, tissue: 1, level: 0 },
  slideMetadata: { diagnosis: slideId },
});

describe('matchRegions', () => {
  // A 448×224 box of two query tiles side by side, at (1000, 2000) on a 0.5 µm/px slide.
  const box = { x: 1000, y: 2000, width: 448, height: 224, mpp: 0.5 };
  const tiles = [
    { x: 1000, y: 2000 },
    { x: 1224, y: 2000 },
  ];

  it('finds the place where the query tiles land side by side, scored by the mean of their best matches, with evidence', () => {
    const regions = matchRegions(box, tiles, [
      [hit('A', 5000, 600, 0.9, 1), hit('B', 100, 100, 0.95, 2)],
      [hit('A', 5224, 600, 0.8, 3), hit('B', 3000, 3000, 0.7, 4)],
    ], { k: 10 });
    expect(regions[0]).toMatchObject({ slideId: 'A', x: 5000, y: 600, width: 448, height: 224, matchedQueries: 2, metadata: { diagnosis: 'A' } });
    expect(regions[0]!.score).toBeCloseTo((0.9 + 0.8) / 2, 9);
    expect(regions[0]!.evidence.map((evidence) => [evidence.queryTile, evidence.label])).toEqual([[0, 1], [1, 3]]);
    // B's two hits are far apart: two places with one matching tile each, half their score.
    expect(regions.slice(1).map((region) => [region.slideId, region.matchedQueries, Number(region.score.toFixed(3))])).toEqual([
      ['B', 1, 0.475],
      ['B', 1, 0.35],
    ]);
  });

  it('accepts a hit up to one tile off its place, keeps each query tile’s best hit there, and scales to the hit slide’s µm/px', () => {
    const regions = matchRegions(box, tiles, [
      [hit('C', 2000, 1000, 0.9, 1, 0.25), hit('C', 2100, 1000, 0.85, 2, 0.25)],
      [hit('C', 2000 + 448 + 200, 1100, 0.8, 3, 0.25)],
    ], { k: 1 });
    // At 0.25 µm/px the box is 896×448 px and the second tile lies 448 px to the right of the first.
    expect(regions).toEqual([expect.objectContaining({ slideId: 'C', x: 2000, y: 1000, width: 896, height: 448, matchedQueries: 2 })]);
    expect(regions[0]!.evidence.map((evidence) => evidence.label)).toEqual([1, 3]);
    expect(regions[0]!.score).toBeCloseTo((0.9 + 0.8) / 2, 9);
  });

  it('cuts a box into the grid tiles lying mostly inside it', () => {
    expect(gridTilesIn({ x: 100, y: 0, width: 500, height: 224 }, { width: 224, height: 224 })).toEqual([
      { x: 0, y: 0 },
      { x: 224, y: 0 },
      { x: 448, y: 0 },
    ]);
    expect(gridTilesIn({ x: 224, y: 224, width: 224, height: 224 }, { width: 224, height: 224 })).toEqual([{ x: 224, y: 224 }]);
    expect(gridTilesIn({ x: 0, y: 0, width: 100, height: 100 }, { width: 224, height: 224 })).toEqual([]);
  });
});
