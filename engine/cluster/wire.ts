/**
 * How vectors, search requests and region pixels cross HTTP between a router and shard nodes:
 * binary, not JSON. Vectors are float32 little-endian one after another (what both ends hold in
 * memory: no base64, no parse); a search body is its JSON request framed before its queries, and a
 * slide's record comes back framed before its stored vectors the same way; a region is raw RGB
 * with its size in headers; search hits come back as rows of numbers with each slide's id and
 * metadata once.
 */
import { endianness } from 'node:os';
import type { QueryExclusions } from '../index/index.js';
import { asSlideId, type TileHit } from '../index/index.js';
import type { GroupSearchResult, ScopedSearch } from './shard-group.js';

/** Header carrying the cluster token on router → shard node calls. */
export const CLUSTER_TOKEN_HEADER = 'x-tessera-cluster-token';

/** A search body: u32 LE length of the JSON request, the JSON, zero padding to 4 bytes, the queries. */
export const SEARCH_CONTENT_TYPE = 'application/x-tessera-search';
/** Stored vectors and region pixels. */
export const BINARY_CONTENT_TYPE = 'application/octet-stream';
/** Width and height of a region's raw RGB pixels. */
export const REGION_WIDTH_HEADER = 'x-tessera-width';
export const REGION_HEIGHT_HEADER = 'x-tessera-height';

const LITTLE_ENDIAN = endianness() === 'LE';

/** Vectors as one float32 little-endian buffer. */
export function vectorsToBytes(vectors: readonly Float32Array[]): Buffer {
  const dimension = vectors[0]?.length ?? 0;
  const bytes = Buffer.alloc(vectors.length * dimension * 4);
  vectors.forEach((vector, i) => writeFloats(bytes, i * dimension * 4, vector));
  return bytes;
}

/** @returns null when the bytes are not a whole number of float32 vectors of `dimension`. */
export function vectorsFromBytes(bytes: Uint8Array, dimension: number): Float32Array[] | null {
  const size = dimension * 4;
  if (dimension <= 0 || bytes.byteLength % size !== 0) return null;
  return Array.from({ length: bytes.byteLength / size }, (_, i) => readFloats(bytes.subarray(i * size, (i + 1) * size), dimension));
}

export function encodeSearch(queries: readonly Float32Array[], request: ScopedSearch): Buffer {
  return encodeFramed(request, queries);
}

/**
 * A JSON head framed before vectors: u32 LE length of the JSON, the JSON, zero padding to 4 bytes,
 * the vectors (float32 LE). Searches travel so, and a slide's record with its stored vectors.
 */
export function encodeFramed(head: unknown, vectors: readonly Float32Array[]): Buffer {
  const json = Buffer.from(JSON.stringify(head), 'utf8');
  const start = 4 + json.length;
  const padded = start + ((4 - (start % 4)) % 4);
  const dimension = vectors[0]?.length ?? 0;
  const body = Buffer.alloc(padded + vectors.length * dimension * 4);
  body.writeUInt32LE(json.length, 0);
  json.copy(body, 4);
  vectors.forEach((vector, i) => writeFloats(body, padded + i * dimension * 4, vector));
  return body;
}

/** @returns the JSON head and vectors of a framed body, or the reason it is not one of `dimension`-d vectors (a phrase: "body is …"). */
export function decodeFramed(body: Uint8Array, dimension: number): { head: unknown; vectors: Float32Array[] } | { problem: string } {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (bytes.length < 4) return { problem: 'body is shorter than its header' };
  const jsonLength = bytes.readUInt32LE(0);
  const start = 4 + jsonLength;
  if (start > bytes.length) return { problem: `body says its JSON has ${jsonLength} bytes, it has ${bytes.length - 4}` };
  let head: unknown;
  try {
    head = JSON.parse(bytes.subarray(4, start).toString('utf8'));
  } catch (error) {
    return { problem: `body's head is not JSON: ${(error as Error).message}` };
  }
  const vectors = vectorsFromBytes(bytes.subarray(Math.min(bytes.length, start + ((4 - (start % 4)) % 4))), dimension);
  if (!vectors) return { problem: `vectors must be ${dimension} float32 values each` };
  return { head, vectors };
}

/** @returns the queries and request, or the reason the body is not a search of `dimension`-d queries. */
export function decodeSearch(body: Uint8Array, dimension: number): { queries: Float32Array[]; request: ScopedSearch } | { problem: string } {
  const framed = decodeFramed(body, dimension);
  if ('problem' in framed) return { problem: `the search ${framed.problem}` };
  const request = framed.head;
  const k = (request as { k?: unknown } | null)?.k;
  if (typeof request !== 'object' || request === null || Array.isArray(request) || !Number.isInteger(k) || (k as number) < 1 || (k as number) > 1000) return { problem: 'the search request must be an object with an integer k from 1 to 1000' };
  return { queries: framed.vectors, request: request as ScopedSearch };
}

function writeFloats(bytes: Buffer, offset: number, vector: Float32Array): void {
  if (LITTLE_ENDIAN) bytes.set(new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength), offset);
  else for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] as number, offset + i * 4);
}

function readFloats(bytes: Uint8Array, dimension: number): Float32Array {
  const vector = new Float32Array(dimension);
  if (LITTLE_ENDIAN) new Uint8Array(vector.buffer).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < dimension; i++) vector[i] = view.getFloat32(i * 4, true);
  }
  return vector;
}

export type WireSearchResponse = GroupSearchResult;

/**
 * The JSON request of an exact search (ground truth), framed before its queries as a search is:
 * the shared search, and what each query alone leaves out.
 */
export type WireExactRequest = ScopedSearch & { perQuery: QueryExclusions[] };

/**
 * Search hits as a node sends them to a router: each slide's id and metadata once, each hit a row
 * of numbers. A slide search brings 50 hits for each of its 16 or more query tiles; as objects,
 * every hit repeated its slide's id, its metadata and every field name (about 225 bytes a hit on
 * the bundled samples against about 60, more with real metadata), and the router parsed it all.
 */
export interface WireHits {
  slides: string[];
  /** Slide metadata, in the order of `slides`. */
  metadata: Array<Record<string, string>>;
  /** Per query, best first: one row per hit (see WireHit). */
  hits: WireHit[][];
  shardMs: Record<number, number>;
}

/** label, shard, score, slide (index into `slides`), x, y, width, height, mpp, tissue, level, and the tile's own metadata when it has some. */
type WireHit = [number, number, number, number, number, number, number, number, number, number, number, Record<string, string>?];

export function hitsToWire(result: GroupSearchResult): WireHits {
  const slideIndex = new Map<string, number>();
  const wire: WireHits = { slides: [], metadata: [], hits: [], shardMs: result.shardMs };
  for (const queryHits of result.hits) {
    wire.hits.push(
      queryHits.map(({ label, shard, score, tile, slideMetadata }) => {
        let slide = slideIndex.get(tile.slideId);
        if (slide === undefined) {
          slide = wire.slides.push(tile.slideId) - 1;
          wire.metadata.push(slideMetadata);
          slideIndex.set(tile.slideId, slide);
        }
        const row: WireHit = [label, shard, score, slide, tile.x, tile.y, tile.width, tile.height, tile.mpp, tile.tissue, tile.level];
        if (tile.metadata) row.push(tile.metadata);
        return row;
      }),
    );
  }
  return wire;
}

/** The hits a node sent. @throws Error when the answer is not WireHits (the caller tries a replica) */
export function hitsFromWire(wire: WireHits): GroupSearchResult {
  if (!Array.isArray(wire?.hits) || !Array.isArray(wire.slides) || !Array.isArray(wire.metadata)) throw new Error('the search answer is not rows of hits');
  const hits = wire.hits.map((rows) =>
    rows.map((row): TileHit => {
      const [label, shard, score, slide, x, y, width, height, mpp, tissue, level, metadata] = row;
      const slideId = wire.slides[slide];
      const slideMetadata = wire.metadata[slide];
      if (slideId === undefined || slideMetadata === undefined) throw new Error(`a hit names slide ${slide} of ${wire.slides.length}`);
      const tile: TileHit['tile'] = { slideId: asSlideId(slideId), x, y, width, height, mpp, tissue, level, ...(metadata ? { metadata } : {}) };
      return { label, shard, score, tile, slideMetadata };
    }),
  );
  return { hits, shardMs: wire.shardMs ?? {} };
}
