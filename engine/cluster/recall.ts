/**
 * What recall a deployment serves: per shard, the recall@10 and ef each live segment measured
 * when it was built (SegmentRef.tuned), and over the index the minimum and the tile-weighted
 * mean. Tiles in a shard's exact tail count as recall 1 (they are scanned exactly). Segments
 * adopted from format 1 measured nothing: they are counted apart, never guessed.
 */
import type { SegmentRef } from '../index/index.js';

/** What a shard's segments measured at build, as a node reports it. */
export interface ShardRecall {
  segments: Array<{ id: number; vectors: number; tuned: SegmentRef['tuned'] | null }>;
  /** Live tiles after the newest segment, searched exactly. */
  tailTiles: number;
}

export interface IndexRecall {
  /** The lowest recall@10 any measured segment (or exact tail) serves; null when nothing was measured. */
  min: number | null;
  /** Mean recall@10 weighted by tiles, over measured segments and exact tails; null when nothing was measured. */
  mean: number | null;
  /** The recall targets the segments were tuned for (one value unless builds were configured differently). */
  targets: number[];
  /** Vectors in segments that measured nothing (adopted from format 1, searched at the default ef). */
  unmeasuredVectors: number;
}

export function shardRecall(segments: readonly SegmentRef[], tailTiles: number): ShardRecall {
  return { segments: segments.map((ref) => ({ id: ref.id, vectors: ref.vectors, tuned: ref.tuned ?? null })), tailTiles };
}

/** Sums shard reports into the index-wide figures. */
export function indexRecall(shards: readonly ShardRecall[]): IndexRecall {
  let min: number | null = null;
  let weighted = 0;
  let weight = 0;
  let unmeasuredVectors = 0;
  const targets = new Set<number>();
  const add = (recall: number, vectors: number) => {
    min = min === null ? recall : Math.min(min, recall);
    weighted += recall * vectors;
    weight += vectors;
  };
  for (const shard of shards) {
    for (const segment of shard.segments) {
      if (!segment.tuned) unmeasuredVectors += segment.vectors;
      else {
        add(segment.tuned.recall10, segment.vectors);
        targets.add(segment.tuned.target);
      }
    }
    if (shard.tailTiles > 0) add(1, shard.tailTiles);
  }
  return { min, mean: weight > 0 ? weighted / weight : null, targets: [...targets].sort((a, b) => a - b), unmeasuredVectors };
}
