/**
 * Builds one segment file on a builder thread: reads the live vectors of a label range from the
 * commit point, inserts them into a fresh hnswlib graph, and writes it under a temporary name,
 * checks and hashes it, fsyncs it and gives it its final name. The shard's writer then commits
 * it (see LocalShard). Never touches LMDB's contents or any listed segment.
 */
import { renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import hnswlib from 'hnswlib-node';
import { checkGraphFile, fsyncPath, PARTIAL_SUFFIX, segmentPath, sha256OfFile } from './segment-file.js';
import { ShardStore } from './shard-store.js';
import { crashAtStep, reachStep, type WriteStep } from './write-steps.js';

const { HierarchicalNSW } = hnswlib;

export interface SegmentBuildTask {
  shardDir: string;
  dimension: number;
  M: number;
  efConstruction: number;
  firstLabel: number;
  endLabel: number;
  /** Final file name inside segments/. */
  file: string;
  /** recall@10 the segment's default ef must reach (see tuneEf). */
  targetRecall: number;
  /** Tests only: the step to die at (see write-steps.ts). */
  crash: { step: WriteStep; skip: number } | null;
}

export interface SegmentBuildResult {
  /** Labels the file holds, ascending; empty when the range had no live vector (no file then). */
  members: Uint32Array;
  bytes: number;
  sha256: string;
  buildMs: number;
  tuned: { ef: number; recall10: number; target: number };
}

export async function buildSegment(task: SegmentBuildTask): Promise<SegmentBuildResult> {
  const started = performance.now();
  crashAtStep(task.crash?.step ?? null, task.crash?.skip ?? 0);
  const store = ShardStore.open(task.shardDir, true);
  try {
    const labels: number[] = [];
    const vectors: Float32Array[] = [];
    for (const { label, vector } of store.vectorsIn(task.firstLabel, task.endLabel)) {
      labels.push(label);
      vectors.push(vector);
    }
    if (labels.length === 0) return { members: new Uint32Array(0), bytes: 0, sha256: '', buildMs: performance.now() - started, tuned: { ef: 0, recall10: 1, target: task.targetRecall } };
    const graph = new HierarchicalNSW('cosine', task.dimension);
    graph.initIndex(labels.length, task.M, task.efConstruction, 100, false);
    vectors.forEach((vector, i) => graph.addPoint(Array.from(vector), labels[i] as number));
    const tuned = tuneEf(graph, labels, vectors, task.targetRecall);
    vectors.length = 0;
    const path = segmentPath(task.shardDir, task.file);
    const partial = `${path}${PARTIAL_SUFFIX}`;
    try {
      graph.writeIndexSync(partial);
      reachStep('segment:writing');
      checkGraphFile(partial, labels.length, task.dimension, task.M);
      const sha256 = sha256OfFile(partial);
      fsyncPath(partial);
      reachStep('segment:written');
      renameSync(partial, path);
      fsyncPath(dirname(path));
      reachStep('segment:renamed');
      const members = Uint32Array.from(labels);
      return { members, bytes: statSync(path).size, sha256, buildMs: performance.now() - started, tuned };
    } catch (error) {
      rmSync(partial, { force: true });
      throw error;
    }
  } finally {
    await store.close();
  }
}

/** Queries a segment is tuned with, and the efs tried, smallest first. */
const TUNING_QUERIES = 60;
const EF_LADDER = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024];

/**
 * The smallest ef at which the graph finds `target` of the exact top 10, leave-one-out: each
 * query is one of the segment's own vectors, left out of its answers, so it stands for a new tile
 * drawn like the indexed ones rather than for one already there. Exact answers are a full scan per
 * query: seconds for 500k vectors, small beside the build.
 */
export function tuneEf(graph: InstanceType<typeof HierarchicalNSW>, labels: number[], vectors: Float32Array[], target: number): { ef: number; recall10: number; target: number } {
  const k = Math.min(10, labels.length - 1);
  if (k <= 0) return { ef: EF_LADDER[0] as number, recall10: 1, target };
  const dimension = vectors[0]?.length ?? 0;
  let seed = 0x9e3779b9;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const picks = Array.from({ length: Math.min(TUNING_QUERIES, labels.length) }, () => Math.floor(random() * vectors.length));
  const truths = picks.map((pick) => {
    const query = vectors[pick] as Float32Array;
    const best: Array<[number, number]> = [];
    vectors.forEach((vector, i) => {
      if (i === pick) return;
      let dot = 0;
      for (let d = 0; d < dimension; d++) dot += (vector[d] as number) * (query[d] as number);
      if (best.length < k || dot > (best[best.length - 1] as [number, number])[0]) {
        best.push([dot, labels[i] as number]);
        best.sort((a, b) => b[0] - a[0]);
        if (best.length > k) best.pop();
      }
    });
    return new Set(best.map(([, label]) => label));
  });
  let recall10 = 0;
  for (const ef of EF_LADDER) {
    graph.setEf(Math.max(ef, k + 1));
    let found = 0;
    picks.forEach((pick, i) => {
      const own = labels[pick];
      const answers = graph.searchKnn(Array.from(vectors[pick] as Float32Array), k + 1).neighbors.filter((label) => label !== own).slice(0, k);
      for (const label of answers) if (truths[i]?.has(label)) found++;
    });
    recall10 = found / Math.max(1, picks.length * k);
    if (recall10 >= target) return { ef, recall10, target };
  }
  return { ef: EF_LADDER[EF_LADDER.length - 1] as number, recall10, target };
}
