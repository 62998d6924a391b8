/**
 * When a shard folds its tail into a segment, and which segments it merges. Pure functions over
 * segment sizes, like Lucene's log-tiered merge policy: segments are ranked in tiers by size
 * (each tier `segmentsPerTier` times the one below, sizes under `floorVectors` counted as the
 * floor), and a run of `segmentsPerTier` adjacent segments of one tier merges into one. A shard
 * therefore holds at most segmentsPerTier − 1 segments per tier, O(log n) segments, and a vector
 * is rewritten once per tier it climbs. Merging only adjacent segments keeps every segment one
 * contiguous range of labels.
 */

import { EXACT_SCAN_LIMIT } from './shard-search.js';

export interface MergePolicy {
  /** Fold the tail into a new segment once it holds this many tiles (and at the end of a run). */
  foldTiles: number;
  segmentsPerTier: number;
  /** Segments below this many live vectors all count as this size (tiny folds merge early). */
  floorVectors: number;
  /** A segment whose share of tombstones passes this is rewritten alone, reclaiming the space. */
  maxTombstoneShare: number;
  /** recall@10 each new segment's default ef is tuned to (see segment-build-task.ts tuneEf). */
  targetRecall?: number;
  /** Which facet values each new segment builds a sub-graph for; default DEFAULT_SUBGRAPH_POLICY. */
  subgraphs?: SubgraphPolicy;
}

/**
 * Sub-graphs a segment build adds (see SegmentRef.subgraphs): for each value of `fields` held by
 * between `minVectors` and `maxShare` of the segment's vectors. Below the floor a filtered search
 * scans the segment's admitted tiles exactly, which is cheaper; above the share a walk of the
 * whole graph with a callback finds admitted tiles often enough. A field partitions the tiles, so
 * each field adds at most one copy of the segment's vectors (measured in bench:index, filtered).
 */
export interface SubgraphPolicy {
  fields: readonly string[];
  minVectors: number;
  maxShare: number;
}

export const DEFAULT_SUBGRAPH_POLICY: SubgraphPolicy = { fields: ['organ', 'stain', 'species', 'diagnosis', 'dataset', 'label'], minVectors: EXACT_SCAN_LIMIT, maxShare: 0.25 };

export const DEFAULT_TARGET_RECALL = 0.95;

export const DEFAULT_MERGE_POLICY: MergePolicy = { foldTiles: 50_000, segmentsPerTier: 10, floorVectors: 50_000, maxTombstoneShare: 0.3 };

export interface SegmentSize {
  /** Vectors in the file. */
  vectors: number;
  /** Of which tombstoned. */
  tombstones: number;
}

/** Positions [from, to) of adjacent segments to merge (to − from ≥ 1), or null when none should. */
export function planMerge(segments: readonly SegmentSize[], policy: MergePolicy): { from: number; to: number } | null {
  const tiers = segments.map(({ vectors, tombstones }) => tierOf(vectors - tombstones, policy));
  for (let from = 0; from + policy.segmentsPerTier <= segments.length; from++) {
    const tier = tiers[from];
    let to = from + 1;
    while (to < segments.length && tiers[to] === tier && to - from < policy.segmentsPerTier) to++;
    if (to - from === policy.segmentsPerTier) return { from, to };
  }
  const wasteful = segments.findIndex(({ vectors, tombstones }) => vectors > 0 && tombstones / vectors > policy.maxTombstoneShare);
  return wasteful === -1 ? null : { from: wasteful, to: wasteful + 1 };
}

function tierOf(liveVectors: number, policy: MergePolicy): number {
  return Math.floor(Math.log(Math.max(liveVectors, policy.floorVectors) / policy.floorVectors) / Math.log(policy.segmentsPerTier) + 1e-9);
}
