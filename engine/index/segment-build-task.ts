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
  /** Tests only: the step to die at (see write-steps.ts). */
  crash: { step: WriteStep; skip: number } | null;
}

export interface SegmentBuildResult {
  /** Labels the file holds, ascending; empty when the range had no live vector (no file then). */
  members: Uint32Array;
  bytes: number;
  sha256: string;
  buildMs: number;
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
    if (labels.length === 0) return { members: new Uint32Array(0), bytes: 0, sha256: '', buildMs: performance.now() - started };
    const graph = new HierarchicalNSW('cosine', task.dimension);
    graph.initIndex(labels.length, task.M, task.efConstruction, 100, false);
    vectors.forEach((vector, i) => graph.addPoint(Array.from(vector), labels[i] as number));
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
      return { members, bytes: statSync(path).size, sha256, buildMs: performance.now() - started };
    } catch (error) {
      rmSync(partial, { force: true });
      throw error;
    }
  } finally {
    await store.close();
  }
}
