/**
 * Slide search ("cases like this one"): each query tile (a slide's mosaic, or uploaded regions)
 * finds its nearest tiles; a candidate slide scores an aggregate, over the query tiles, of its best
 * match (zero where it has none among the results), and keeps its best matches as evidence.
 * The default aggregate is the mean: Yottixel's median ignores a tissue type that is a minority
 * of the mosaic, so a slide of one tissue ties with one that has the query's whole mix.
 */
import type { IndexStore, SearchOptions, TileHit } from '../index/index.js';

export interface SlideMatch {
  slideId: string;
  /** Aggregate (mean or median) over the query tiles of the best cosine similarity to this slide's tiles. */
  score: number;
  /** Query tiles with a match among this slide's tiles. */
  matchedQueries: number;
  metadata: Record<string, string>;
  /** The best matching tiles, best first. */
  evidence: TileHit[];
}

export interface SlideSearchOptions extends Omit<SearchOptions, 'k'> {
  /** Slides to return. */
  k: number;
  /** Tiles fetched per query tile (default 50). */
  tilesPerQuery?: number;
  /** Evidence tiles kept per slide (default 3). */
  evidencePerSlide?: number;
  /** How a slide's per-query best scores combine (default mean). */
  aggregate?: 'mean' | 'median';
}

export function searchSlides(store: Pick<IndexStore, 'search'>, queries: Float32Array[], options: SlideSearchOptions): SlideMatch[] {
  const perQuery = options.tilesPerQuery ?? 50;
  return rankSlides(queries.map((query) => store.search(query, { ...options, k: perQuery })), options);
}

/**
 * Ranks slides from each query tile's nearest tiles (the tiles-per-query search already done,
 * wherever the shards live): the aggregation half of searchSlides.
 */
export function rankSlides(hitsPerQuery: TileHit[][], options: Pick<SlideSearchOptions, 'k' | 'evidencePerSlide' | 'aggregate'>): SlideMatch[] {
  const queryCount = hitsPerQuery.length;
  const best = new Map<string, { scores: number[]; evidence: TileHit[]; metadata: Record<string, string> }>();
  hitsPerQuery.forEach((hits, queryIndex) => {
    for (const hit of hits) {
      const entry = best.get(hit.tile.slideId) ?? { scores: new Array<number>(queryCount).fill(0), evidence: [], metadata: hit.slideMetadata };
      entry.scores[queryIndex] = Math.max(entry.scores[queryIndex] ?? 0, hit.score);
      entry.evidence.push(hit);
      best.set(hit.tile.slideId, entry);
    }
  });
  const evidencePerSlide = options.evidencePerSlide ?? 3;
  return [...best.entries()]
    .map(([slideId, entry]) => ({
      slideId,
      score: options.aggregate === 'median' ? median(entry.scores) : entry.scores.reduce((sum, score) => sum + score, 0) / entry.scores.length,
      matchedQueries: entry.scores.filter((score) => score > 0).length,
      metadata: entry.metadata,
      evidence: dedupe(entry.evidence.sort((a, b) => b.score - a.score)).slice(0, evidencePerSlide),
    }))
    .sort((a, b) => b.score - a.score || b.matchedQueries - a.matchedQueries)
    .slice(0, options.k);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

function dedupe(hits: TileHit[]): TileHit[] {
  const seen = new Set<string>();
  return hits.filter((hit) => {
    const key = `${hit.shard}/${hit.label}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
