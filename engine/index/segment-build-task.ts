/**
 * Builds one segment on a builder thread: reads the live vectors of a label range from the
 * commit point, inserts them into a fresh hnswlib graph (and the vectors of each common facet
 * value into a sub-graph of its own), and writes each file under a temporary name, checks and
 * hashes it, fsyncs it and gives it its final name. The shard's writer then commits
 * it (see LocalShard). Never touches LMDB's contents or any listed segment.
 */
import { renameSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import hnswlib from 'hnswlib-node';
import type { SubgraphPolicy } from './merge-policy.js';
import { checkGraphFile, fsyncPath, PARTIAL_SUFFIX, segmentPath, sha256OfFile, subgraphFileName } from './segment-file.js';
import { ShardStore } from './shard-store.js';
import type { SubgraphRef } from './types.js';
import { crashAtStep, reachStep, type WriteStep } from './write-steps.js';

const { HierarchicalNSW } = hnswlib;

export interface SegmentBuildTask {
  shardDir: string;
  dimension: number;
  M: number;
  efConstruction: number;
  firstLabel: number;
  endLabel: number;
  /** Final file name inside segments/; sub-graphs are named after it. */
  file: string;
  /** recall@10 the segment's default ef must reach (see tuneEf). */
  targetRecall: number;
  /** Which facet values get a sub-graph of their own. */
  subgraphs: SubgraphPolicy;
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
  subgraphs: SubgraphRef[];
}

/** A graph file written under its temporary name, waiting for the checks and the rename. */
interface WrittenGraph {
  path: string;
  count: number;
}

export async function buildSegment(task: SegmentBuildTask): Promise<SegmentBuildResult> {
  const started = performance.now();
  crashAtStep(task.crash?.step ?? null, task.crash?.skip ?? 0);
  const store = ShardStore.open(task.shardDir, true);
  const written: WrittenGraph[] = [];
  try {
    const labels: number[] = [];
    const vectors: Float32Array[] = [];
    for (const { label, vector } of store.vectorsIn(task.firstLabel, task.endLabel)) {
      labels.push(label);
      vectors.push(vector);
    }
    if (labels.length === 0) return { members: new Uint32Array(0), bytes: 0, sha256: '', buildMs: performance.now() - started, tuned: { ef: 0, recall10: 1, target: task.targetRecall }, subgraphs: [] };
    const graph = buildGraph(task, labels, vectors);
    const tuned = tuneEf(graph, labels, vectors, task.targetRecall);
    const path = segmentPath(task.shardDir, task.file);
    graph.writeIndexSync(`${path}${PARTIAL_SUFFIX}`);
    written.push({ path, count: labels.length });
    const subgraphs: Array<Omit<SubgraphRef, 'bytes' | 'sha256'>> = [];
    for (const [i, group] of facetGroups(store, labels, task.subgraphs).entries()) {
      const groupVectors = group.positions.map((position) => vectors[position] as Float32Array);
      const groupLabels = group.positions.map((position) => labels[position] as number);
      const subgraph = buildGraph(task, groupLabels, groupVectors);
      const file = subgraphFileName(task.file, i + 1);
      const subgraphPath = segmentPath(task.shardDir, file);
      subgraph.writeIndexSync(`${subgraphPath}${PARTIAL_SUFFIX}`);
      written.push({ path: subgraphPath, count: groupLabels.length });
      const tuned = tuneSubgraphEf(subgraph, groupLabels, groupVectors, outsideOf(group.positions, vectors), task.targetRecall);
      subgraphs.push({ field: group.field, value: group.value, file, vectors: groupLabels.length, tuned });
    }
    vectors.length = 0;
    // Every file of the segment passes each step before any passes the next: a crash leaves them
    // all temporary, or all complete, or all renamed, and none is listed before the commit.
    reachStep('segment:writing');
    for (const file of written) checkGraphFile(`${file.path}${PARTIAL_SUFFIX}`, file.count, task.dimension, task.M);
    const sha256s = written.map((file) => sha256OfFile(`${file.path}${PARTIAL_SUFFIX}`));
    for (const file of written) fsyncPath(`${file.path}${PARTIAL_SUFFIX}`);
    reachStep('segment:written');
    for (const file of written) renameSync(`${file.path}${PARTIAL_SUFFIX}`, file.path);
    fsyncPath(dirname(path));
    reachStep('segment:renamed');
    const members = Uint32Array.from(labels);
    return {
      members,
      bytes: statSync(path).size,
      sha256: sha256s[0] as string,
      buildMs: performance.now() - started,
      tuned,
      subgraphs: subgraphs.map((subgraph, i) => ({ ...subgraph, bytes: statSync(segmentPath(task.shardDir, subgraph.file)).size, sha256: sha256s[i + 1] as string })),
    };
  } catch (error) {
    // Nothing lists these names yet: a failed build leaves no file (a crash leaves orphans that
    // the next writer removes).
    for (const file of written) {
      rmSync(`${file.path}${PARTIAL_SUFFIX}`, { force: true });
      rmSync(file.path, { force: true });
    }
    throw error;
  } finally {
    await store.close();
  }
}

function buildGraph(task: SegmentBuildTask, labels: number[], vectors: Float32Array[]): InstanceType<typeof HierarchicalNSW> {
  const graph = new HierarchicalNSW('cosine', task.dimension);
  graph.initIndex(labels.length, task.M, task.efConstruction, 100, false);
  vectors.forEach((vector, i) => graph.addPoint(Array.from(vector), labels[i] as number));
  return graph;
}

/**
 * The facet values that get a sub-graph: for each policy field, the positions (into `labels`) of
 * the tiles holding each value, kept when their count lies within the policy's bounds. A tile's
 * value is looked up as filters look it up: its own metadata first, then its slide's.
 */
function facetGroups(store: ShardStore, labels: number[], policy: SubgraphPolicy): Array<{ field: string; value: string; positions: number[] }> {
  if (policy.fields.length === 0) return [];
  const byField = new Map<string, Map<string, number[]>>(policy.fields.map((field) => [field, new Map()]));
  const slides = new Map<string, Record<string, string>>();
  labels.forEach((label, position) => {
    const tile = store.tile(label);
    if (!tile) return;
    let slideMetadata = slides.get(tile.slideId);
    if (!slideMetadata) {
      slideMetadata = store.slide(tile.slideId)?.metadata ?? {};
      slides.set(tile.slideId, slideMetadata);
    }
    for (const [field, values] of byField) {
      const value = tile.metadata?.[field] ?? slideMetadata[field];
      if (value === undefined || value === '') continue;
      let positions = values.get(value);
      if (!positions) values.set(value, (positions = []));
      positions.push(position);
    }
  });
  const maximum = Math.floor(labels.length * policy.maxShare);
  const groups: Array<{ field: string; value: string; positions: number[] }> = [];
  for (const [field, values] of byField) {
    for (const [value, positions] of [...values].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (positions.length >= policy.minVectors && positions.length <= maximum) groups.push({ field, value, positions });
    }
  }
  return groups;
}

/** Up to TUNING_QUERIES vectors of the segment outside a sub-graph's positions (ascending). */
function outsideOf(positions: number[], vectors: Float32Array[]): Float32Array[] {
  const inside = new Set(positions);
  const outside: Float32Array[] = [];
  const stride = Math.max(1, Math.floor(vectors.length / (TUNING_QUERIES * 2)));
  for (let position = 0; position < vectors.length && outside.length < TUNING_QUERIES; position += stride) if (!inside.has(position)) outside.push(vectors[position] as Float32Array);
  return outside;
}

/**
 * A sub-graph's ef for the target recall@10, tuned on queries it will meet: tiles of the segment
 * that are not in it, looking for their nearest among its members (exact: a scan of them). Its
 * own vectors would flatter it: a sub-graph of a value scattered over the segment holds few
 * close neighbours of any tile, and a member finds itself and its links at once (in bench:index,
 * leave-one-out said ef 16 for recall 1.00 where filtered queries got 0.69).
 */
export function tuneSubgraphEf(graph: InstanceType<typeof HierarchicalNSW>, labels: number[], vectors: Float32Array[], queries: Float32Array[], target: number): { ef: number; recall10: number; target: number } {
  const k = Math.min(10, labels.length);
  if (k <= 0 || queries.length === 0) return { ef: EF_LADDER[0] as number, recall10: 1, target };
  const truths = queries.map((query) => new Set(exactTop(query, labels, vectors, k, -1)));
  let recall10 = 0;
  for (const ef of EF_LADDER) {
    graph.setEf(Math.max(ef, k));
    let found = 0;
    queries.forEach((query, i) => {
      for (const label of graph.searchKnn(Array.from(query), k).neighbors) if (truths[i]?.has(label)) found++;
    });
    recall10 = found / (queries.length * k);
    if (recall10 >= target) return { ef, recall10, target };
  }
  return { ef: EF_LADDER[EF_LADDER.length - 1] as number, recall10, target };
}

/** Labels of the k vectors nearest `query` by inner product, skipping position `skip`. */
function exactTop(query: Float32Array, labels: number[], vectors: Float32Array[], k: number, skip: number): number[] {
  const dimension = query.length;
  const best: Array<[number, number]> = [];
  vectors.forEach((vector, i) => {
    if (i === skip) return;
    let dot = 0;
    for (let d = 0; d < dimension; d++) dot += (vector[d] as number) * (query[d] as number);
    if (best.length < k || dot > (best[best.length - 1] as [number, number])[0]) {
      best.push([dot, labels[i] as number]);
      best.sort((a, b) => b[0] - a[0]);
      if (best.length > k) best.pop();
    }
  });
  return best.map(([, label]) => label);
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
  let seed = 0x9e3779b9;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const picks = Array.from({ length: Math.min(TUNING_QUERIES, labels.length) }, () => Math.floor(random() * vectors.length));
  const truths = picks.map((pick) => new Set(exactTop(vectors[pick] as Float32Array, labels, vectors, k, pick)));
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
