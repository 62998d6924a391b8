/**
 * The load benchmark's index: synthetic 384-d tiles in 2 shards, 1,000 tiles a slide, about ten
 * in eleven of them in shard 0. At the full size (1,100,000 tiles) shard 0 is the vectors and
 * HNSW graph bench:index builds and caches (the same graph, hard-linked, with tile and slide
 * records written beside it) and shard 1 holds 100,000 more added through LocalShard. At any
 * other size (BENCH_TILES) both shards are written through LocalShard from the same kind of
 * vectors (clusters along 16-d subspaces, as bench:index makes them), so their segments are
 * built, and their ef tuned, as `tessera index` does. Checked with LocalShard.verify before use.
 * Built once into .cache/bench/load-index (or load-index-N).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { open } from 'lmdb';
import { IndexStore, asSlideId, createOrCheckIndex, shardDir, shardOf, upgradeIndex, type IndexInfo, type SlideRecord, type TileRecord } from '../../engine/index.js';
import { seeded } from '../../test/engine/index/synthetic-shards.js';
import { subspaceMixture } from '../index/growth.js';

export const DIMENSION = 384;
export const TILES_PER_SLIDE = 1000;
/** The size bench:index's cached 1M graph makes possible (1M in shard 0, 100k in shard 1). */
export const FULL_TILES = 1_100_000;
const GRID_COLUMNS = 40;
const ORGANS = ['lung', 'kidney', 'skin', 'breast', 'colon'];

export interface LoadIndex {
  dir: string;
  /** Slides per shard, in order, and their tile counts. */
  slides: Array<{ slideId: string; shard: number; firstLabel: number }>;
}

/** Slide ids that hash to `shard` of 2, in a fixed order. */
function slideIdsFor(shard: number, count: number, prefix: string): string[] {
  const ids: string[] = [];
  for (let i = 0; ids.length < count; i++) {
    const id = `${prefix}-${String(i).padStart(6, '0')}`;
    if (shardOf(id, 2) === shard) ids.push(id);
  }
  return ids;
}

export function tileRect(j: number): { x: number; y: number; width: number; height: number } {
  return { x: (j % GRID_COLUMNS) * 224, y: Math.floor(j / GRID_COLUMNS) * 224, width: 224, height: 224 };
}

function slideRecord(slideId: string, index: number, labels: number[]): SlideRecord {
  return {
    slideId: asSlideId(slideId),
    path: `/nonexistent/${slideId}.svs`,
    metadata: { dataset: 'synthetic', organ: ORGANS[index % ORGANS.length] as string, patient_id: `SP${Math.floor(index / 2)}`, diagnosis: index % 3 === 0 ? 'tumour' : 'normal' },
    fingerprint: { size: 0, mtimeMs: 0, hash: '' },
    labels,
    mosaic: labels.filter((_, i) => i % 63 === 0).slice(0, 16),
    mppSupplied: true,
    mpp: [0.5, 0.5],
    width: GRID_COLUMNS * 224,
    height: Math.ceil(labels.length / GRID_COLUMNS) * 224,
    indexedAt: new Date(0).toISOString(),
  };
}

/**
 * Builds (once) and returns the load index of `tileCount` tiles (a multiple of 11,000). At FULL_TILES,
 * `annDir` holds vectors.f32 and hnswlib.bin from bench:index (built first when missing).
 */
export async function loadIndex(cacheDir: string, annDir: string, log: (line: string) => void, tileCount = FULL_TILES): Promise<LoadIndex> {
  if (!Number.isInteger(tileCount) || tileCount < 11 * TILES_PER_SLIDE || tileCount % (11 * TILES_PER_SLIDE) !== 0) throw new Error(`BENCH_TILES must be a multiple of ${11 * TILES_PER_SLIDE}, got ${tileCount}`);
  const dir = join(cacheDir, tileCount === FULL_TILES ? 'load-index' : `load-index-${tileCount}`);
  const bigCount = (tileCount / 11) * 10;
  const smallCount = tileCount / 11;
  const shard0 = slideIdsFor(0, bigCount / TILES_PER_SLIDE, 'syn');
  const shard1 = slideIdsFor(1, smallCount / TILES_PER_SLIDE, 'syn');
  const slides = [...shard0.map((slideId, i) => ({ slideId, shard: 0, firstLabel: i * TILES_PER_SLIDE })), ...shard1.map((slideId, i) => ({ slideId, shard: 1, firstLabel: i * TILES_PER_SLIDE }))];
  if (existsSync(join(dir, 'ready'))) return { dir, slides };
  rmSync(dir, { recursive: true, force: true });
  if (tileCount !== FULL_TILES) {
    await writeThroughShards(dir, [shard0, shard1], log);
    await verified(dir);
    return { dir, slides };
  }
  if (!existsSync(join(annDir, 'hnswlib.bin'))) {
    log('  building the 1M synthetic vectors and graph first (BENCH_SECTIONS=ann-synthetic npm run bench:index, ~25 min here)…');
    execFileSync(process.execPath, ['--import', 'tsx', 'benchmarks/index/bench-index.ts'], { stdio: 'inherit', env: { ...process.env, BENCH_SECTIONS: 'ann-synthetic', BENCH_ANN_N: String(bigCount) } });
  }
  const info: IndexInfo = createOrCheckIndex(dir, { shards: 2, model: { id: 'synthetic-384', version: '1', dimension: DIMENSION }, tile: { mpp: 0.5, sizePx: 224 }, hnsw: { M: 16, efConstruction: 100 } });

  // Shard 0 is written in format 1 around the cached graph, then converted by `tessera upgrade`'s
  // code path, which keeps the graph as the shard's one segment: no 10-minute rebuild. The
  // upgrade hashes the segment itself and never reads format 1's checksum, so none is written.
  log('  shard 0: 1,000,000 tiles on the cached graph…');
  const dir0 = shardDir(dir, 0);
  mkdirSync(dir0, { recursive: true });
  linkSync(join(annDir, 'hnswlib.bin'), join(dir0, 'hnsw.bin'));
  // The records LocalShard keeps (see engine/index/local-shard.ts): tiles by label, slides by id, counters.
  const env = open({ path: join(dir0, 'lmdb'), maxDbs: 4, compression: false });
  const tiles = env.openDB<TileRecord, number>({ name: 'tiles', keyEncoding: 'uint32' });
  const slideDb = env.openDB<SlideRecord, string>({ name: 'slides' });
  const meta = env.openDB<number, string>({ name: 'meta' });
  await env.transaction(() => {
    shard0.forEach((slideId, s) => {
      const labels = Array.from({ length: TILES_PER_SLIDE }, (_, j) => s * TILES_PER_SLIDE + j);
      labels.forEach((label, j) => tiles.put(label, { slideId: asSlideId(slideId), ...tileRect(j), mpp: 0.5, tissue: 1, level: 0 }));
      slideDb.put(slideId, slideRecord(slideId, s, labels));
    });
    meta.put('nextLabel', bigCount);
    meta.put('commit', 1);
  });
  await env.close();
  writeFileSync(
    join(dir0, 'manifest.json'),
    `${JSON.stringify({ formatVersion: 1, shard: 0, model: info.model, metric: 'cosine', hnsw: info.hnsw, counts: { slides: shard0.length, tiles: bigCount, deleted: 0, capacity: bigCount }, checksums: { hnsw: '' }, commit: 1, committedAt: new Date().toISOString() }, null, 2)}\n`,
  );

  log('  shard 1: 100,000 tiles added through LocalShard…');
  const vectors = new Float32Array(readFileSync(join(annDir, 'vectors.f32')).buffer.slice(0, smallCount * DIMENSION * 4 * 3));
  const store = IndexStore.open(dir, { shards: [1] });
  const shard = store.shards[0]!;
  let seed = 7;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  shard1.forEach((slideId, s) => {
    const newTiles = Array.from({ length: TILES_PER_SLIDE }, (_, j) => {
      const source = Math.floor(random() * (vectors.length / DIMENSION));
      const vector = Float32Array.from(vectors.subarray(source * DIMENSION, (source + 1) * DIMENSION), (v) => v + (random() - 0.5) * 0.02);
      const norm = Math.hypot(...vector);
      return { tile: { ...tileRect(j), mpp: 0.5, tissue: 1, level: 0 }, vector: vector.map((v) => v / norm) };
    });
    const record = slideRecord(slideId, shard0.length + s, []);
    shard.putSlide({ slideId: record.slideId, path: record.path, metadata: record.metadata, fingerprint: record.fingerprint, mppSupplied: true, mpp: record.mpp, width: record.width, height: record.height, indexedAt: record.indexedAt }, newTiles, MOSAIC, { defer: true });
  });
  shard.flush();
  await store.close();

  await upgradeIndex(dir, shardDir);
  await verified(dir);
  return { dir, slides };
}

/** Both shards written slide by slide through LocalShard: segments built and tuned as indexing does. */
async function writeThroughShards(dir: string, shardSlides: string[][], log: (line: string) => void): Promise<void> {
  createOrCheckIndex(dir, { shards: 2, model: { id: 'synthetic-384', version: '1', dimension: DIMENSION }, tile: { mpp: 0.5, sizePx: 224 }, hnsw: { M: 16, efConstruction: 100 } });
  const next = subspaceMixture(DIMENSION, seeded(5));
  let ordinal = 0;
  for (const [shardIndex, ids] of shardSlides.entries()) {
    log(`  shard ${shardIndex}: ${(ids.length * TILES_PER_SLIDE).toLocaleString('en')} tiles through LocalShard (segments built and tuned)…`);
    const store = IndexStore.open(dir, { shards: [shardIndex] });
    const shard = store.shards[0]!;
    for (const [i, slideId] of ids.entries()) {
      // Committed 50 slides at a time, as an indexing run commits: the tail folds into segments as it grows.
      if (i > 0 && i % 50 === 0) shard.flush();
      const record = slideRecord(slideId, ordinal++, []);
      const newTiles = Array.from({ length: TILES_PER_SLIDE }, (_, j) => ({ tile: { ...tileRect(j), mpp: 0.5, tissue: 1, level: 0 }, vector: next() }));
      shard.putSlide({ slideId: record.slideId, path: record.path, metadata: record.metadata, fingerprint: record.fingerprint, mppSupplied: true, mpp: record.mpp, width: record.width, height: record.height, indexedAt: record.indexedAt }, newTiles, MOSAIC, { defer: true });
    }
    shard.flush();
    await store.close();
  }
}

/** The tiles (indices into a slide's tiles) of every slide's 16-tile mosaic. */
const MOSAIC = Array.from({ length: 16 }, (_, i) => i * 63);

async function verified(dir: string): Promise<void> {
  const check = IndexStore.open(dir, { readOnly: true });
  const problems = check.shards.flatMap((candidate) => candidate.verify());
  await check.close();
  if (problems.length > 0) throw new Error(`the load index failed verification: ${problems.join('; ')}`);
  writeFileSync(join(dir, 'ready'), '');
}
