/**
 * `tessera upgrade`: converts an index written in format 1 (one hnsw.bin per shard, rewritten at
 * every commit) to format 2 in place. Each shard's vectors are copied from its graph into the
 * commit point, and the graph becomes the shard's first segment (hard-linked, not copied), with
 * tombstones for the vectors no record names. Until the last transaction of a shard the shard is
 * still format 1 and a rerun starts it again; after it, hnsw.bin is removed.
 */
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { TesseraError } from '../errors.js';
import { LocalShard } from './local-shard.js';
import { fsyncPath, replaceFileDurably, segmentFileName, segmentPath, SEGMENTS_FOLDER, sha256OfFile } from './segment-file.js';
import { ShardStore, writeFailed } from './shard-store.js';
import { INDEX_FORMAT_VERSION, type IndexInfo, type Label } from './types.js';

const { HierarchicalNSW } = hnswlib;
/** Vectors copied per transaction: bounded memory for any shard size. */
const CHUNK = 20_000;

export interface UpgradeReport {
  from: number;
  shards: Array<{ shard: number; tiles: number; tombstones: number; segmentBytes: number; alreadyCurrent: boolean }>;
}

/**
 * Converts the shards of `indexDir` present here, then index.json.
 * @throws TesseraError INDEX_NOT_FOUND, INDEX_CORRUPT (an unreadable graph), INDEX_WRITE_FAILED
 */
export async function upgradeIndex(indexDir: string, shardDir: (indexDir: string, shard: number) => string): Promise<UpgradeReport> {
  const infoPath = join(indexDir, 'index.json');
  if (!existsSync(infoPath)) throw new TesseraError('INDEX_NOT_FOUND', `${indexDir}: no index here (index.json is missing)`);
  const info = JSON.parse(readFileSync(infoPath, 'utf8')) as IndexInfo;
  const report: UpgradeReport = { from: info.formatVersion, shards: [] };
  for (let shard = 0; shard < info.shards; shard++) {
    const dir = shardDir(indexDir, shard);
    if (!existsSync(join(dir, 'lmdb'))) continue;
    report.shards.push(await upgradeShard(dir, shard, info));
  }
  if (info.formatVersion !== INDEX_FORMAT_VERSION) {
    replaceFileDurably(infoPath, `${JSON.stringify({ ...info, formatVersion: INDEX_FORMAT_VERSION }, null, 2)}\n`);
  }
  // A writer's open rewrites each manifest from the new commit point.
  for (const { shard } of report.shards) await LocalShard.open(shardDir(indexDir, shard), shard, { ...info, formatVersion: INDEX_FORMAT_VERSION }).close();
  return report;
}

async function upgradeShard(dir: string, shard: number, info: IndexInfo): Promise<UpgradeReport['shards'][number]> {
  const store = ShardStore.open(dir, false);
  const graphPath = join(dir, 'hnsw.bin');
  try {
    const counters = store.counters();
    if (counters.formatVersion === INDEX_FORMAT_VERSION) {
      rmSync(graphPath, { force: true });
      return { shard, tiles: 0, tombstones: 0, segmentBytes: 0, alreadyCurrent: true };
    }
    const labels = [...store.tileRecords()].map(({ label }) => label);
    if (!existsSync(graphPath)) {
      if (labels.length > 0) throw new TesseraError('INDEX_CORRUPT', `shard ${shard}: ${labels.length} tile records but no hnsw.bin to take their vectors from`);
      store.transaction((writes) => writes.setCounters({ formatVersion: INDEX_FORMAT_VERSION }));
      return { shard, tiles: 0, tombstones: 0, segmentBytes: 0, alreadyCurrent: false };
    }
    const graph = new HierarchicalNSW('cosine', info.model.dimension);
    try {
      graph.readIndexSync(graphPath, false);
    } catch (error) {
      throw new TesseraError('INDEX_CORRUPT', `shard ${shard}: ${graphPath} cannot be read: ${(error as Error).message}`, { cause: error });
    }
    const live = new Set<Label>(labels);
    const members = graph.getIdsList();
    const tombstones = members.filter((label) => !live.has(label));
    const inGraph = new Set<Label>(members);
    const missing = labels.filter((label) => !inGraph.has(label));
    if (missing.length > 0) throw new TesseraError('INDEX_CORRUPT', `shard ${shard}: ${missing.length} tile records have no vector in hnsw.bin (first: ${missing[0]})`);
    try {
      for (let start = 0; start < labels.length; start += CHUNK) {
        const chunk = labels.slice(start, start + CHUNK);
        store.transaction((writes) => {
          for (const label of chunk) writes.putTile(label, store.tile(label)!, Float32Array.from(graph.getPoint(label)));
        });
      }
      mkdirSync(join(dir, SEGMENTS_FOLDER), { recursive: true });
      const file = segmentFileName(1);
      const path = segmentPath(dir, file);
      rmSync(path, { force: true });
      linkSync(graphPath, path);
      const bytes = statSync(path).size;
      const sha256 = sha256OfFile(path);
      fsyncPath(join(dir, SEGMENTS_FOLDER));
      const commit = counters.commit + 1;
      const nextLabel = Math.max(counters.nextLabel, ...members.map((label) => label + 1));
      store.transaction((writes) => {
        for (const label of tombstones) writes.addTombstone(label);
        writes.setCounters({ formatVersion: INDEX_FORMAT_VERSION, nextLabel, commit, nextSegmentId: 2, segmentedEnd: nextLabel, segments: [{ id: 1, file, firstLabel: 0, endLabel: nextLabel, vectors: members.length, bytes, sha256, commit }] });
      });
      rmSync(graphPath, { force: true });
      return { shard, tiles: labels.length, tombstones: tombstones.length, segmentBytes: bytes, alreadyCurrent: false };
    } catch (error) {
      if (error instanceof TesseraError) throw error;
      throw writeFailed(shard, dir, error);
    }
  } finally {
    await store.close();
  }
}
