/** How vectors and search requests cross HTTP between a router and shard nodes. */
import type { QueryExclusions } from '../index/index.js';
import type { GroupSearchResult, ScopedSearch } from './shard-group.js';

/** Header carrying the cluster token on router → shard node calls. */
export const CLUSTER_TOKEN_HEADER = 'x-tessera-cluster-token';

export function vectorToBase64(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64');
}

/** @returns null when the text is not a whole number of float32 values of `dimension`. */
export function vectorFromBase64(text: string, dimension: number): Float32Array | null {
  const bytes = Buffer.from(text, 'base64');
  if (bytes.byteLength !== dimension * 4) return null;
  const vector = new Float32Array(dimension);
  new Uint8Array(vector.buffer).set(bytes);
  return vector;
}

export interface WireSearchRequest {
  queries: string[];
  request: ScopedSearch;
}

export type WireSearchResponse = GroupSearchResult;

/** An exact search (ground truth): the queries, the shared search, and what each query alone leaves out. */
export interface WireExactRequest extends WireSearchRequest {
  perQuery: QueryExclusions[];
}
