/** Known vectors and slide records for tests that build real shards on disk. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asSlideId, createOrCheckIndex, type LocalShard, type NewTile, type SlideRecord } from '../../../engine/index.js';

export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

export function unit(values: ArrayLike<number>): Float32Array {
  let norm = 0;
  for (let i = 0; i < values.length; i++) norm += (values[i] as number) ** 2;
  norm = Math.sqrt(norm);
  return Float32Array.from(values, (v) => v / norm);
}

/** `count` unit vectors in `clusters` clusters: structured like tile embeddings, not uniform noise. */
export function clustered(count: number, dimension: number, random: () => number, clusters = 20): Float32Array[] {
  const centres = Array.from({ length: clusters }, () => Array.from({ length: dimension }, () => random() - 0.5));
  return Array.from({ length: count }, (_, i) => unit((centres[i % clusters] as number[]).map((v) => v + (random() - 0.5) * 0.6)));
}

export function newIndex(dimension: number, shards = 1, prefix = 'tessera-shard-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  createOrCheckIndex(dir, { shards, model: { id: 'synthetic', version: '1', dimension }, tile: { mpp: 0.5, sizePx: 224 }, hnsw: { M: 12, efConstruction: 100 } });
  return dir;
}

export function slideRecord(slideId: string, metadata: Record<string, string> = {}): Omit<SlideRecord, 'labels' | 'mosaic'> {
  return { slideId: asSlideId(slideId), path: `/slides/${slideId}`, metadata, fingerprint: { size: 1, mtimeMs: 0, hash: slideId }, mppSupplied: true, mpp: [0.5, 0.5], width: 100_000, height: 1000, indexedAt: '' };
}

/** Tiles in a row at x = i × 224: position i is tile i of the slide. */
export function tilesOf(vectors: Float32Array[]): NewTile[] {
  return vectors.map((vector, i) => ({ tile: { x: i * 224, y: 0, width: 224, height: 224, mpp: 0.5, tissue: 1, level: 0 }, vector }));
}

export function putSlide(shard: LocalShard, slideId: string, vectors: Float32Array[], metadata: Record<string, string> = {}): SlideRecord {
  return shard.putSlide(slideRecord(slideId, metadata), tilesOf(vectors), [0]);
}

/** Bytes this thread has written through system calls so far (Linux). */
export function threadBytesWritten(): number {
  const io = readFileSync('/proc/thread-self/io', 'utf8');
  return Number(/wchar: (\d+)/.exec(io)?.[1] ?? 0);
}
