/**
 * Whole-region queries: a box larger than one tile is searched as its tissue tiles, each finding
 * its nearest tiles, and the hits are aggregated into places on other slides where several query
 * tiles land close together in the same arrangement (a Hough vote: each hit votes for where the
 * query box's corner would lie on its slide). It only aggregates; the searches are done already.
 */
import type { TileHit } from '../index/index.js';

/** A query tile: its level-0 corner on the query slide. */
export interface QueryTile {
  x: number;
  y: number;
}

/** The query box in level-0 pixels of the query slide, and that slide's µm/px. */
export interface QueryBox {
  x: number;
  y: number;
  width: number;
  height: number;
  mpp: number;
}

/** A hit that serves as evidence of a region match: which query tile found it. */
export interface RegionEvidence extends TileHit {
  /** Index of the query tile (in the order given) whose best match in the region this is. */
  queryTile: number;
}

export interface RegionMatch {
  slideId: string;
  /** Where the query box lands on the matching slide, level-0 pixels of that slide. */
  x: number;
  y: number;
  width: number;
  height: number;
  /** Mean over all query tiles of their best cosine similarity inside the region (0 where none). */
  score: number;
  /** Query tiles with a match inside the region. */
  matchedQueries: number;
  metadata: Record<string, string>;
  /** The best hit of each matched query tile, best first. */
  evidence: RegionEvidence[];
}

export interface RegionMatchOptions {
  /** Regions to return. */
  k: number;
  /**
   * How far apart (in tile sides) two votes for a box corner may be and still be one place
   * (default 1: a hit one tile off its expected position still counts).
   */
  toleranceTiles?: number;
}

interface Vote {
  hit: TileHit;
  queryTile: number;
  originX: number;
  originY: number;
}

interface Place {
  slideId: string;
  originX: number;
  originY: number;
  tolerance: number;
  best: Map<number, RegionEvidence>;
  mpp: number;
  metadata: Record<string, string>;
}

/**
 * Aggregates the query tiles' hits (`hitsPerQuery[i]` for `tiles[i]`) into region matches, best
 * first. Votes are taken in order of score, and each joins the first place on its slide whose
 * corner lies within the tolerance, or starts one: a strong match anchors its region.
 */
export function matchRegions(box: QueryBox, tiles: readonly QueryTile[], hitsPerQuery: readonly TileHit[][], options: RegionMatchOptions): RegionMatch[] {
  const toleranceTiles = options.toleranceTiles ?? 1;
  const votes: Vote[] = [];
  hitsPerQuery.forEach((hits, queryTile) => {
    const tile = tiles[queryTile];
    if (!tile) return;
    for (const hit of hits) {
      // The query tile's offset in the box, in µm, then in pixels of the hit's slide.
      const scale = box.mpp / (hit.tile.mpp || box.mpp);
      votes.push({ hit, queryTile, originX: hit.tile.x - (tile.x - box.x) * scale, originY: hit.tile.y - (tile.y - box.y) * scale });
    }
  });
  votes.sort((a, b) => b.hit.score - a.hit.score);
  const places: Place[] = [];
  const bySlide = new Map<string, Place[]>();
  for (const vote of votes) {
    const slideId = vote.hit.tile.slideId;
    const candidates = bySlide.get(slideId) ?? [];
    let place = candidates.find((candidate) => Math.abs(candidate.originX - vote.originX) <= candidate.tolerance && Math.abs(candidate.originY - vote.originY) <= candidate.tolerance);
    if (!place) {
      place = { slideId, originX: vote.originX, originY: vote.originY, tolerance: toleranceTiles * Math.max(vote.hit.tile.width, vote.hit.tile.height), best: new Map(), mpp: vote.hit.tile.mpp || box.mpp, metadata: vote.hit.slideMetadata };
      candidates.push(place);
      bySlide.set(slideId, candidates);
      places.push(place);
    }
    // Votes come best first: the first of a query tile in a place is its best there.
    if (!place.best.has(vote.queryTile)) place.best.set(vote.queryTile, { ...vote.hit, queryTile: vote.queryTile });
  }
  const queryCount = Math.max(1, tiles.length);
  return places
    .map((place) => {
      const evidence = [...place.best.values()].sort((a, b) => b.score - a.score);
      const scale = box.mpp / place.mpp;
      return {
        slideId: place.slideId,
        x: Math.max(0, Math.round(place.originX)),
        y: Math.max(0, Math.round(place.originY)),
        width: Math.round(box.width * scale),
        height: Math.round(box.height * scale),
        score: evidence.reduce((sum, hit) => sum + hit.score, 0) / queryCount,
        matchedQueries: evidence.length,
        metadata: place.metadata,
        evidence,
      };
    })
    .sort((a, b) => b.score - a.score || b.matchedQueries - a.matchedQueries)
    .slice(0, options.k);
}

/**
 * The corners of the grid tiles (level 0, origin 0,0, side `tileSide` px) that lie mostly inside
 * the box: at least half of each tile's area. Row-major.
 */
export function gridTilesIn(box: { x: number; y: number; width: number; height: number }, tileSide: { width: number; height: number }): QueryTile[] {
  const tiles: QueryTile[] = [];
  const overlap = (start: number, side: number, boxStart: number, boxSide: number) => Math.max(0, Math.min(start + side, boxStart + boxSide) - Math.max(start, boxStart));
  for (let y = Math.floor(box.y / tileSide.height) * tileSide.height; y < box.y + box.height; y += tileSide.height) {
    for (let x = Math.floor(box.x / tileSide.width) * tileSide.width; x < box.x + box.width; x += tileSide.width) {
      if (overlap(x, tileSide.width, box.x, box.width) * overlap(y, tileSide.height, box.y, box.height) >= (tileSide.width * tileSide.height) / 2) tiles.push({ x, y });
    }
  }
  return tiles;
}
