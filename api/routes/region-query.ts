/**
 * Whole-region answers of POST /v1/search/region (`regions: true`) as the API shows them: the
 * engine's query service cuts the box into the query slide's indexed tiles, searches and groups
 * the hits into regions (engine/query searchWholeRegion); this formats its regions.
 */
import type { RegionMatch } from '../../engine/index.js';
import { hitJson, slideUrl } from './shared.js';

export function regionJson(match: RegionMatch) {
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
