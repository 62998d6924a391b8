/**
 * Whole-region queries for POST /v1/search/region (`regions: true`): the box (and any further
 * `boxes` of the same slide) is cut into the
 * query slide's indexed tissue tiles at the index's resolution (their stored vectors: nothing is
 * read or embedded), each searches, and engine/search matchRegions groups the hits into places
 * on other slides where several query tiles land in the same arrangement.
 */
import { gridTilesIn, matchRegions, TesseraError, type RegionMatch, type TileHit } from '../../engine/index.js';
import type { Access } from '../auth.js';
import { refineByExamples, type Feedback } from '../refine-examples.js';
import type { RegionSearchBody } from '../schemas.js';
import { notFound, type Services } from '../services.js';
import { hitJson, observeSearch, scopedSearch, slideUrl } from './shared.js';

/** Query tiles one box may hold: 16×16 tiles (about 1.8 mm a side at 0.5 µm/px). */
const MAX_QUERY_TILES = 256;
/** Hits each query tile brings to the vote. */
const HITS_PER_TILE = 50;

/**
 * The regions (and the best tiles over all query tiles) for a box of an indexed slide.
 * @throws TesseraError SLIDE_NOT_FOUND, REGION_TOO_LARGE (more than 256 tiles), INVALID_ARGUMENT (no indexed tissue tile in the box)
 */
export async function searchWholeRegion(services: Services, access: Access, body: RegionSearchBody & Feedback & { slideId: string; x: number; y: number; width: number; height: number }, k: number) {
  const slide = await services.cluster.slide(body.slideId, access.datasets);
  if (!slide) throw notFound(body.slideId);
  const spec = services.cluster.index.tile;
  // The grid every slide was tiled with (engine/tiling tileGrid): origin 0,0, this side in level-0 px.
  const side = { width: Math.round((spec.sizePx * spec.mpp) / slide.mpp[0]), height: Math.round((spec.sizePx * spec.mpp) / slide.mpp[1]) };
  // Several boxes form one query: their tiles together, placed within the boxes' bounding box.
  const boxes = [{ x: body.x, y: body.y, width: body.width, height: body.height }, ...(body.boxes ?? [])];
  const box = boundingBox(boxes);
  const seen = new Set<string>();
  const cells = boxes.flatMap((one) => gridTilesIn(one, side)).filter((cell) => !seen.has(`${cell.x},${cell.y}`) && seen.add(`${cell.x},${cell.y}`));
  if (cells.length > MAX_QUERY_TILES) throw new TesseraError('REGION_TOO_LARGE', `the box holds ${cells.length} tiles of ${side.width}×${side.height} px; a whole-region query takes at most ${MAX_QUERY_TILES}`);
  const stored = await Promise.all(cells.map((cell) => services.cluster.storedVectors(body.slideId, { rect: { ...cell, ...side } }, access.datasets)));
  const tiles = cells.filter((_, i) => stored[i]?.[0]);
  if (tiles.length === 0) throw new TesseraError('INVALID_ARGUMENT', `the box ${box.x},${box.y} ${box.width}×${box.height} of slide "${body.slideId}" holds no indexed tissue tile (with its other boxes; tiles are ${side.width}×${side.height} px)`);
  const vectors = await refineByExamples(services, access, stored.flatMap((vectors) => (vectors?.[0] ? [vectors[0]] : [])), body);
  const result = await services.cluster.search(vectors, scopedSearch(access, { ...body, k: Math.max(k, HITS_PER_TILE) }, slide));
  observeSearch(services, result);
  const regions = matchRegions({ ...box, mpp: slide.mpp[0] }, tiles, result.hits, { k });
  return { tiles: tiles.map((tile) => ({ ...tile, ...side })), regions: regions.map(regionJson), results: bestTiles(result.hits, k).map(hitJson), coverage: result.coverage };
}

function boundingBox(boxes: Array<{ x: number; y: number; width: number; height: number }>) {
  const x = Math.min(...boxes.map((box) => box.x));
  const y = Math.min(...boxes.map((box) => box.y));
  return { x, y, width: Math.max(...boxes.map((box) => box.x + box.width)) - x, height: Math.max(...boxes.map((box) => box.y + box.height)) - y };
}

function regionJson(match: RegionMatch) {
  return {
    slideId: match.slideId,
    x: match.x,
    y: match.y,
    width: match.width,
    height: match.height,
    score: Number(match.score.toFixed(6)),
    matchedQueries: match.matchedQueries,
    metadata: match.metadata,
    slideUrl: slideUrl(match.slideId),
    evidence: match.evidence.map((hit) => ({ ...hitJson(hit), queryTile: hit.queryTile })),
  };
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
