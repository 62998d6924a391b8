/**
 * Segment files: immutable hnswlib graphs in a shard's segments/ folder. Names, the streaming
 * checksum, the layout check that catches a graph cut short by a full disk, fsync, and loading.
 *
 * Nothing here decides which segments exist: that is the commit point's (LMDB) list.
 */
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readSync, renameSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { TesseraError } from '../errors.js';
import type { SegmentRef } from './types.js';

const { HierarchicalNSW } = hnswlib;
export type Graph = InstanceType<typeof HierarchicalNSW>;

export const SEGMENTS_FOLDER = 'segments';
/** Suffix of a segment file being written: never listed, removed by the next writer. */
export const PARTIAL_SUFFIX = '.tmp';

export function segmentFileName(id: number): string {
  return `seg-${String(id).padStart(8, '0')}.hnsw`;
}

/** The file of a segment's `index`-th sub-graph: named after the segment, never after the value (metadata may hold anything). */
export function subgraphFileName(segmentFile: string, index: number): string {
  return segmentFile.replace(/\.hnsw$/, `.sub-${String(index).padStart(4, '0')}.hnsw`);
}

/** Every file a segment consists of: its graph and its sub-graphs. */
export function segmentFiles(ref: Pick<SegmentRef, 'file' | 'subgraphs'>): string[] {
  return [ref.file, ...(ref.subgraphs ?? []).map((subgraph) => subgraph.file)];
}

export function segmentPath(shardDir: string, file: string): string {
  return join(shardDir, SEGMENTS_FOLDER, file);
}

/** sha256 of a file read in 4 MiB chunks: no whole-file buffer, no size limit. */
export function sha256OfFile(path: string): string {
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(4 << 20);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const read = readSync(fd, chunk, 0, chunk.length, null);
      if (read === 0) break;
      hash.update(chunk.subarray(0, read));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * hnswlib writes its file without checking for write errors, so a full disk leaves it short. The
 * file must hold at least its header and every element's level-0 record (hnswlib's layout), and
 * the disk must not have filled up while writing it.
 * @throws an ENOSPC error
 */
export function checkGraphFile(path: string, count: number, dimension: number, M: number): void {
  const header = 96;
  const level0 = dimension * 4 + 8 + (2 * M * 4 + 4);
  const minimum = header + count * (level0 + 4);
  const { size } = statSync(path);
  const { bavail, bsize } = statfsSync(dirname(path));
  if (size < minimum || bavail * bsize < 64 * 1024) {
    throw Object.assign(new Error(`${path} is ${size} bytes, at least ${minimum} expected, ${bavail * bsize} bytes free`), { code: 'ENOSPC' });
  }
}

export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces a small file (a manifest, index.json) whole: written beside it, fsynced, renamed over it. */
export function replaceFileDurably(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  fsyncPath(`${path}.tmp`);
  renameSync(`${path}.tmp`, path);
}

/**
 * Loads a segment's graph or one of its sub-graphs, as written (the caller marks tombstones
 * deleted in memory; the file is never changed).
 * @throws TesseraError INDEX_CORRUPT when the file is missing, of another size, or unreadable
 */
export function loadSegment(shardDir: string, shard: number, ref: Pick<SegmentRef, 'file' | 'bytes'>, dimension: number): Graph {
  const path = segmentPath(shardDir, ref.file);
  const graph = new HierarchicalNSW('cosine', dimension);
  try {
    const { size } = statSync(path);
    if (size !== ref.bytes) throw new Error(`${size} bytes, the commit point says ${ref.bytes}`);
    graph.readIndexSync(path, false);
  } catch (error) {
    throw new TesseraError('INDEX_CORRUPT', `shard ${shard}: segment ${ref.file} cannot be read: ${(error as Error).message}`, { cause: error });
  }
  return graph;
}
