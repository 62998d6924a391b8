/**
 * The two halves of a whole-region query around the search: the query slide's indexed tiles in
 * the boxes (cut on the grid every slide was tiled with), and the grouping of their hits into
 * matching regions plus the best tiles overall.
 */
import type { BaseRect, Cluster, SlideSummary } from '../cluster/index.js';
import { TesseraError } from '../errors.js';
import type { TileHit } from '../index/index.js';
import { gridTilesIn, matchRegions, type QueryTile, type RegionMatch } from '../search/index.js';
import type { WholeRegionQuery } from './questions.js';

/** Query tiles one box may hold: 16×16 tiles (about 1.8 mm a side at 0.5 µm/px). */
const MAX_QUERY_TILES = 256;

/**
 * The indexed tissue tiles of the query's boxes and their stored vectors; `box` bounds every box.
 * @throws TesseraError REGION_TOO_LARGE, INVALID_ARGUMENT (no indexed tissue tile in the boxes)
 */
export async function wholeRegionTiles(cluster: Cluster, slide: SlideSummary, query: WholeRegionQuery, datasets: string[] | null): Promise<{ box: BaseRect; tiles: Array<QueryTile & BaseRect>; vectors: Float32Array[] }> {
  const spec = cluster.index.tile;
  // The grid every slide was tiled with (engine/tiling tileGrid): origin 0,0, this side in level-0 px.
  const side = { width: Math.round((spec.sizePx * spec.mpp) / slide.mpp[0]), height: Math.round((spec.sizePx * spec.mpp) / slide.mpp[1]) };
  // Several boxes form one query: their tiles together, placed within the boxes' bounding box.
  const boxes = [{ x: query.x, y: query.y, width: query.width, height: query.height }, ...(query.boxes ?? [])];
  const box = boundingBox(boxes);
  const seen = new Set<string>();
  const cells = boxes.flatMap((one) => gridTilesIn(one, side)).filter((cell) => !seen.has(`${cell.x},${cell.y}`) && seen.add(`${cell.x},${cell.y}`));
  if (cells.length > MAX_QUERY_TILES) throw new TesseraError('REGION_TOO_LARGE', `the box holds ${cells.length} tiles of ${side.width}×${side.height} px; a whole-region query takes at most ${MAX_QUERY_TILES}`);
  const stored = await Promise.all(cells.map((cell) => cluster.storedVectors(query.slideId, { rect: { ...cell, ...side } }, datasets)));
  const tiles = cells.filter((_, i) => stored[i]?.[0]).map((tile) => ({ ...tile, ...side }));
  if (tiles.length === 0) throw new TesseraError('INVALID_ARGUMENT', `the box ${box.x},${box.y} ${box.width}×${box.height} of slide "${query.slideId}" holds no indexed tissue tile (with its other boxes; tiles are ${side.width}×${side.height} px)`);
  return { box, tiles, vectors: stored.flatMap((vectors) => (vectors?.[0] ? [vectors[0]] : [])) };
}

/** Regions on other slides matching the query tiles' arrangement, and the k best tiles overall. */
export function wholeRegionMatches(box: BaseRect, slide: SlideSummary, tiles: QueryTile[], hitsPerTile: TileHit[][], k: number): { regions: RegionMatch[]; hits: TileHit[] } {
  return { regions: matchRegions({ ...box, mpp: slide.mpp[0] }, tiles, hitsPerTile, { k }), hits: bestTiles(hitsPerTile, k) };
}

function boundingBox(boxes: BaseRect[]): BaseRect {
  const x = Math.min(...boxes.map((box) => box.x));
  const y = Math.min(...boxes.map((box) => box.y));
  return { x, y, width: Math.max(...boxes.map((box) => box.x + box.width)) - x, height: Math.max(...boxes.map((box) => box.y + box.height)) - y };
}

/** The k best tiles over every query tile's hits, each tile once with its best score. */
function bestTiles(hitsPerQuery: TileHit[][], k: number): TileHit[] {
  const best = new Map<string, TileHit>();
  for (const hit of hitsPerQuery.flat()) {
    const key = `${hit.shard}/${hit.label}`;
    if ((best.get(key)?.score ?? -Infinity) < hit.score) best.set(key, hit);
  }
  return [...best.values()].sort((a, b) => b.score - a.score).slice(0, k);
}
