/**
 * Indexes written by the previous format (1: one hnsw.bin per shard, rewritten per commit) are
 * refused with a message naming `tessera upgrade`, never misread; the command converts them in
 * place and the converted index answers as the old graph did.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { open } from 'lmdb';
import { describe, expect, it } from 'vitest';
import { IndexStore } from '../../../engine/index.js';
import { runTessera } from '../../run-cli.js';
import { clustered, seeded } from './synthetic-shards.js';

const DIMENSION = 16;

/** Writes a one-shard format-1 index: 3 slides of 40 tiles, plus a vector no record names (a crash leftover). */
async function writeFormat1(dir: string, vectors: Float32Array[]): Promise<void> {
  const model = { id: 'synthetic', version: '1', dimension: DIMENSION };
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ formatVersion: 1, shards: 1, model, metric: 'cosine', hnsw: { M: 16, efConstruction: 100 }, tile: { mpp: 0.5, sizePx: 224 }, createdAt: '' }));
  const shardDir = join(dir, 'shard-000');
  mkdirSync(shardDir);
  const graph = new hnswlib.HierarchicalNSW('cosine', DIMENSION);
  graph.initIndex(2048, 16, 100, 100, false);
  vectors.forEach((vector, label) => graph.addPoint(Array.from(vector), label));
  graph.writeIndexSync(join(shardDir, 'hnsw.bin'));
  const env = open({ path: join(shardDir, 'lmdb'), maxDbs: 4, compression: false });
  const tiles = env.openDB({ name: 'tiles', keyEncoding: 'uint32' });
  const slides = env.openDB({ name: 'slides' });
  const meta = env.openDB({ name: 'meta' });
  await env.transaction(() => {
    for (let slide = 0; slide < 3; slide++) {
      const labels = Array.from({ length: 40 }, (_, i) => slide * 40 + i);
      for (const label of labels) tiles.put(label, { slideId: `v1-${slide}`, x: (label % 40) * 224, y: 0, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0 });
      slides.put(`v1-${slide}`, { slideId: `v1-${slide}`, path: '', metadata: {}, fingerprint: { size: 1, mtimeMs: 0, hash: '' }, labels, mosaic: labels.slice(0, 4), mppSupplied: true, mpp: [0.5, 0.5], width: 1, height: 1, indexedAt: '' });
    }
    meta.put('nextLabel', vectors.length);
    meta.put('commit', 3);
  });
  await env.close();
  writeFileSync(join(shardDir, 'manifest.json'), JSON.stringify({ formatVersion: 1, shard: 0, model, metric: 'cosine', hnsw: { M: 16, efConstruction: 100 }, counts: { slides: 3, tiles: 120, deleted: 1, capacity: 2048 }, checksums: { hnsw: '' }, commit: 3, committedAt: '' }));
}

describe('tessera upgrade', () => {
  it('refuses a format-1 index naming the command, and converts it in place to answer as before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-v1-'));
    const vectors = clustered(121, DIMENSION, seeded(9), 6);
    await writeFormat1(dir, vectors);
    expect(() => IndexStore.open(dir, { readOnly: true })).toThrow(/format 1.*tessera upgrade --index/);
    const refused = await runTessera(['verify', '--index', dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/tessera upgrade --index .*\[INDEX_OUTDATED\]/);

    const upgraded = await runTessera(['upgrade', '--index', dir]);
    expect(upgraded.code, upgraded.stderr).toBe(0);
    expect(upgraded.stdout).toMatch(/shard 0: 120 tiles, 1 tombstones/);
    const verified = await runTessera(['verify', '--index', dir]);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toMatch(/3 slides, 120 tiles; 1 segments, 1 tombstones/);

    const store = IndexStore.open(dir, { readOnly: true });
    for (const probe of [0, 41, 119]) {
      const hits = store.search(vectors[probe]!, { k: 5, ef: 100 });
      expect(hits[0]!.label).toBe(probe);
      expect(hits.every((hit) => hit.label !== 120)).toBe(true); // the leftover stays deleted
    }
    expect(store.shards[0]!.vector(41)).toHaveLength(DIMENSION);
    await store.close();
    expect((await runTessera(['upgrade', '--index', dir])).stdout).toMatch(/already current/);
  });
});
