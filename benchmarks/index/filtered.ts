/**
 * bench:index section `filtered`: filtered search at 50%, 5%, 0.5% and 0.05% of tiles admitted,
 * against unfiltered search at equal recall, and what the sub-graphs that make it fast cost.
 *
 * BENCH_FILTER_N (200,000) 384-d tiles (the ANN section's subspace mixture), 500 a slide, one
 * commit per slide, built into one segment (as merges make them: the default policy merges folds
 * of 50,000 into segments of 500,000), each tile with a `label` (tile
 * metadata) drawn independently of its vector: 50% `a`, 5% `b`, 0.5% `c`, 0.05% `d`, and the rest
 * spread over 9 other values (about 4.9% each: sub-graphs too, as a real field's values would be).
 * The shard is built twice, with sub-graphs for values from 4,096 tiles (the default starts at
 * EXACT_SCAN_LIMIT, 8,192, which no value here reaches: this size would have none) and with none,
 * timing each build to the last segment and counting its bytes. Each selectivity is measured
 * three ways: as served (exact scans up to EXACT_SCAN_LIMIT admitted tiles), walking the
 * sub-graphs (exact scans only up to 1,024, as before sub-graphs), and without sub-graphs (exact
 * up to 1,024; otherwise an over-fetch at 25% admitted or more, else the walk with a callback that
 * every filter took before).
 *
 * Latency is one query at a time on this thread, read-only shard, 200 queries drawn like the
 * tiles, each run twice and the faster kept (the machine is shared); recall@10 against the exact filtered top 10 of the same run. Unfiltered search runs at
 * each segment's tuned ef (the default); a filtered row runs at the tuned ef too, raised along a
 * ladder until its recall is at least the unfiltered one (less 0.005) so that the ratio compares
 * equal recall. Last, what EXACT_SCAN_LIMIT trades: an exact scan of n tiles against a walk of
 * a graph of n. Built shards are cached in .cache/bench (BENCH_FILTER_REBUILD=1 rebuilds).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { asSlideId, createOrCheckIndex, DEFAULT_MERGE_POLICY, DEFAULT_SUBGRAPH_POLICY, EXACT_SCAN_LIMIT, IndexStore, parseFilter, type Filter, type MergePolicy, type NewTile, type TileHit } from '../../engine/index.js';
import { seeded } from '../../test/engine/index/synthetic-shards.js';
import { subspaceMixture } from './growth.js';

const DIM = 384;
const TILES_PER_SLIDE = 500;
const QUERIES = 200;
/** Sub-graphs from this many tiles of a value (see the header), and the exact-scan limit before them. */
const SUBGRAPH_FLOOR = 4096;
const LIMIT_BEFORE = 1024;
const EF_LADDER = [24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768];
/** Label values by share of tiles, in draws out of 20,000. */
const SHARES = [
  { name: '50%', value: 'a', draws: 10_000 },
  { name: '5%', value: 'b', draws: 1000 },
  { name: '0.5%', value: 'c', draws: 100 },
  { name: '0.05%', value: 'd', draws: 10 },
] as const;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

function labelOf(draw: number): string {
  let below = 0;
  for (const share of SHARES) {
    below += share.draws;
    if (draw < below) return share.value;
  }
  return `other-${draw % 9}`;
}

interface Built {
  buildSeconds: number;
  segments: number;
  segmentBytes: number;
  subgraphs: number;
  subgraphBytes: number;
  subgraphVectors: number;
}

/** Builds (or finds cached) the shard with `policy`; its tiles' labels are returned in label order. */
async function buildShard(dir: string, policy: MergePolicy, vectors: Float32Array, labels: string[]): Promise<Built> {
  const builtPath = join(dir, 'built.json');
  if (existsSync(builtPath) && process.env.BENCH_FILTER_REBUILD !== '1') return JSON.parse(readFileSync(builtPath, 'utf8')) as Built;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  createOrCheckIndex(dir, { shards: 1, model: { id: 'bench-filtered', version: '1', dimension: DIM }, tile: { mpp: 0.5, sizePx: 224 } });
  const started = performance.now();
  const store = IndexStore.open(dir, { policy });
  const shard = store.shards[0]!;
  const slides = labels.length / TILES_PER_SLIDE;
  for (let s = 0; s < slides; s++) {
    const tiles: NewTile[] = Array.from({ length: TILES_PER_SLIDE }, (_, i) => {
      const at = s * TILES_PER_SLIDE + i;
      return { tile: { x: i * 224, y: 0, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0, metadata: { label: labels[at] as string } }, vector: vectors.subarray(at * DIM, (at + 1) * DIM) };
    });
    shard.putSlide({ slideId: asSlideId(`f${s}`), path: '', metadata: { dataset: 'bench' }, fingerprint: { size: 0, mtimeMs: 0, hash: `f${s}` }, mppSupplied: true, mpp: [0.5, 0.5], width: 112_000, height: 224, indexedAt: '' }, tiles, [0]);
    // Builder threads commit on this thread: let them, as an indexer's reads and inference would.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await store.close();
  const buildSeconds = (performance.now() - started) / 1000;
  const refs = shard.segments;
  const built: Built = {
    buildSeconds,
    segments: refs.length,
    segmentBytes: refs.reduce((sum, ref) => sum + ref.bytes, 0),
    subgraphs: refs.reduce((sum, ref) => sum + (ref.subgraphs?.length ?? 0), 0),
    subgraphBytes: refs.reduce((sum, ref) => sum + (ref.subgraphs ?? []).reduce((bytes, subgraph) => bytes + subgraph.bytes, 0), 0),
    subgraphVectors: refs.reduce((sum, ref) => sum + (ref.subgraphs ?? []).reduce((count, subgraph) => count + subgraph.vectors, 0), 0),
  };
  // Every file in segments/ is listed (the writer removed the rest): the bytes on disk are these.
  const onDisk = readdirSync(join(dir, 'shard-000', 'segments')).reduce((sum, name) => sum + statSync(join(dir, 'shard-000', 'segments', name)).size, 0);
  if (onDisk !== built.segmentBytes + built.subgraphBytes) throw new Error(`segments/ holds ${onDisk} bytes, the commit point lists ${built.segmentBytes + built.subgraphBytes}`);
  writeFileSync(builtPath, JSON.stringify(built));
  return built;
}

/** Exact top 10 of each query among the tiles `admitted` (all when null), by label. */
function exactTop10(vectors: Float32Array, queries: Float32Array[], admitted: number[] | null, count: number): number[][] {
  const candidates = admitted ?? Array.from({ length: count }, (_, i) => i);
  return queries.map((query) => {
    const best: Array<[number, number]> = [];
    for (const label of candidates) {
      let dot = 0;
      for (let d = 0, at = label * DIM; d < DIM; d++, at++) dot += (vectors[at] as number) * (query[d] as number);
      if (best.length < 10 || dot > (best[best.length - 1] as [number, number])[0]) {
        best.push([dot, label]);
        best.sort((a, b) => b[0] - a[0]);
        if (best.length > 10) best.pop();
      }
    }
    return best.map(([, label]) => label);
  });
}

interface Measured {
  ef: number | 'tuned';
  recall10: number;
  p50Ms: number;
  p99Ms: number;
}

function measure(store: IndexStore, queries: Float32Array[], truths: number[][], filter: Filter | undefined, ef: number | undefined): Measured {
  // The first search of a filter computes its admission (cached until the next write): not timed.
  store.search(queries[0] as Float32Array, { k: 10, ...(filter ? { filter } : {}), ...(ef ? { ef } : {}) });
  const latencies: number[] = [];
  let found = 0;
  queries.forEach((query, q) => {
    // Each query twice, the faster kept: the machine is shared, and a stall is not the search's.
    let hits: TileHit[] = [];
    let fastest = Infinity;
    for (let repeat = 0; repeat < 2; repeat++) {
      const began = performance.now();
      hits = store.search(query, { k: 10, ...(filter ? { filter } : {}), ...(ef ? { ef } : {}) });
      fastest = Math.min(fastest, performance.now() - began);
    }
    latencies.push(fastest);
    const truth = new Set(truths[q]);
    found += hits.filter((hit) => truth.has(hit.label)).length;
  });
  latencies.sort((a, b) => a - b);
  return { ef: ef ?? 'tuned', recall10: found / (queries.length * 10), p50Ms: percentile(latencies, 0.5), p99Ms: percentile(latencies, 0.99) };
}

/** The cheapest run at the tuned ef or up the ladder whose recall reaches `recall`. */
function atRecall(store: IndexStore, queries: Float32Array[], truths: number[][], filter: Filter, recall: number): Measured {
  let run = measure(store, queries, truths, filter, undefined);
  for (const ef of EF_LADDER) {
    if (run.recall10 >= recall - 0.005) break;
    run = measure(store, queries, truths, filter, ef);
  }
  return run;
}

/**
 * What EXACT_SCAN_LIMIT trades: p50 of an exact scan of n admitted tiles (hnswlib's brute-force
 * index, as ShardSearcher runs it) against a walk of a graph of the same n tiles at `ef`.
 */
function exactScanCrossover(vectors: Float32Array, queries: Float32Array[], ef: number): Array<{ tiles: number; exactP50Ms: number; walkP50Ms: number }> {
  const rows = [];
  for (const n of [1024, 4096, 8192]) {
    const exact = new hnswlib.BruteforceSearch('cosine', DIM);
    exact.initIndex(n);
    const graph = new hnswlib.HierarchicalNSW('cosine', DIM);
    graph.initIndex(n, 16, 200, 100, false);
    for (let i = 0; i < n; i++) {
      const point = Array.from(vectors.subarray(i * DIM, (i + 1) * DIM));
      exact.addPoint(point, i);
      graph.addPoint(point, i);
    }
    graph.setEf(ef);
    const time = (search: (query: number[]) => unknown) => {
      const latencies = queries.map((query) => {
        const point = Array.from(query);
        const began = performance.now();
        search(point);
        return performance.now() - began;
      });
      return percentile(latencies.sort((a, b) => a - b), 0.5);
    };
    rows.push({ tiles: n, exactP50Ms: time((query) => exact.searchKnn(query, 10)), walkP50Ms: time((query) => graph.searchKnn(query, 10)) });
  }
  return rows;
}

export async function filteredSearch(count: number, cacheDir: string): Promise<Record<string, unknown>> {
  const tiles = Math.ceil(count / TILES_PER_SLIDE) * TILES_PER_SLIDE;
  const random = seeded(20261202);
  const next = subspaceMixture(DIM, random);
  const vectors = new Float32Array(tiles * DIM);
  for (let i = 0; i < tiles; i++) vectors.set(next(), i * DIM);
  const labels = Array.from({ length: tiles }, () => labelOf(Math.floor(random() * 20_000)));
  const queries = Array.from({ length: QUERIES }, () => next());

  const withDir = join(cacheDir, `filtered-${tiles}-one-segment-subgraphs`);
  const withoutDir = join(cacheDir, `filtered-${tiles}-one-segment-plain`);
  const policy: MergePolicy = { ...DEFAULT_MERGE_POLICY, foldTiles: tiles + 1, subgraphs: { ...DEFAULT_SUBGRAPH_POLICY, minVectors: SUBGRAPH_FLOOR } };
  const withoutPolicy: MergePolicy = { ...policy, subgraphs: { ...DEFAULT_SUBGRAPH_POLICY, fields: [] } };
  const built = await buildShard(withDir, policy, vectors, labels);
  const plain = await buildShard(withoutDir, withoutPolicy, vectors, labels);
  console.log(`filtered: ${tiles} tiles (${DIM}-d, ${TILES_PER_SLIDE} a slide, one commit per slide), ${built.segments} segment(s); ${QUERIES} queries, k = 10, one thread`);
  console.log(
    `  build to the last segment: ${built.buildSeconds.toFixed(0)} s with sub-graphs, ${plain.buildSeconds.toFixed(0)} s without (${(built.buildSeconds / plain.buildSeconds).toFixed(2)}×); ` +
      `segment files ${((built.segmentBytes + built.subgraphBytes) / 2 ** 20).toFixed(0)} MiB vs ${(plain.segmentBytes / 2 ** 20).toFixed(0)} MiB ` +
      `(${built.subgraphs} sub-graphs of ${built.subgraphVectors} vectors in all: +${((built.subgraphBytes / built.segmentBytes) * 100).toFixed(0)}%)`,
  );

  const truthsAll = exactTop10(vectors, queries, null, tiles);
  const store = IndexStore.open(withDir, { readOnly: true });
  const walkStore = IndexStore.open(withDir, { readOnly: true, exactScanLimit: LIMIT_BEFORE });
  const plainStore = IndexStore.open(withoutDir, { readOnly: true, exactScanLimit: LIMIT_BEFORE });
  for (const opened of [store, walkStore, plainStore]) opened.shards[0]!.preload();
  const unfiltered = measure(store, queries, truthsAll, undefined, undefined);
  console.log(`  unfiltered (tuned ef ${store.shards[0]!.segments.map((ref) => ref.tuned?.ef).join('/')}): recall@10 ${unfiltered.recall10.toFixed(3)}  p50 ${unfiltered.p50Ms.toFixed(2)} ms  p99 ${unfiltered.p99Ms.toFixed(2)} ms`);
  const rows = [];
  for (const share of SHARES) {
    const admitted = labels.flatMap((label, i) => (label === share.value ? [i] : []));
    const truths = exactTop10(vectors, queries, admitted, tiles);
    const filter = parseFilter({ label: share.value });
    const ours = atRecall(store, queries, truths, filter, unfiltered.recall10);
    const walked = atRecall(walkStore, queries, truths, filter, unfiltered.recall10);
    const before = atRecall(plainStore, queries, truths, filter, unfiltered.recall10);
    const row = { selectivity: share.name, admitted: admitted.length, served: ours, subgraphWalk: walked, before, ratioToUnfiltered: ours.p50Ms / unfiltered.p50Ms, ratioWalked: walked.p50Ms / unfiltered.p50Ms, ratioBefore: before.p50Ms / unfiltered.p50Ms };
    rows.push(row);
    const line = (run: Measured, ratio: number) => `ef ${String(run.ef).padStart(5)} recall@10 ${run.recall10.toFixed(3)} p50 ${run.p50Ms.toFixed(2)} ms p99 ${run.p99Ms.toFixed(2)} ms = ${ratio.toFixed(2)}×`;
    console.log(`  ${share.name.padStart(5)} admitted (${String(admitted.length).padStart(6)} tiles)`);
    console.log(`      as served:              ${line(ours, row.ratioToUnfiltered)} unfiltered p50`);
    console.log(`      sub-graphs walked:      ${line(walked, row.ratioWalked)}`);
    console.log(`      without sub-graphs:     ${line(before, row.ratioBefore)}`);
  }
  const subgraphEfs = store.shards[0]!.segments.flatMap((ref) => (ref.subgraphs ?? []).map((subgraph) => subgraph.tuned.ef)).sort((a, b) => a - b);
  const walkEf = subgraphEfs[Math.floor(subgraphEfs.length / 2)] ?? 32;
  const crossover = exactScanCrossover(vectors, queries, walkEf);
  console.log(`  exact-scan limit (${EXACT_SCAN_LIMIT}): exact scan vs graph walk (ef ${walkEf}, the sub-graphs' median tuned ef) of n tiles, p50: ${crossover.map((row) => `${row.tiles}: ${row.exactP50Ms.toFixed(3)} vs ${row.walkP50Ms.toFixed(3)} ms`).join(', ')}`);
  const fivePercent = rows.find((row) => row.selectivity === '5%');
  if (fivePercent) console.log(`  5% at equal recall: ${fivePercent.ratioToUnfiltered.toFixed(2)}× unfiltered p50 (target ≤ 2×) — ${fivePercent.ratioToUnfiltered <= 2 ? 'met' : 'MISS'}`);
  await store.close();
  await walkStore.close();
  await plainStore.close();
  console.log();
  return { tiles, dim: DIM, queries: QUERIES, build: { withSubgraphs: built, withoutSubgraphs: plain }, unfiltered, rows, exactScanLimit: { limit: EXACT_SCAN_LIMIT, walkEf, crossover } };
}
