/**
 * How a shard answers a search over the parts of it this thread holds: some segments (hnswlib
 * graphs, tombstones marked deleted in memory) and perhaps the tail (tiles committed after the
 * newest segment, scanned exactly). Each part returns its best k; the parts' hits are merged.
 *
 * Filters and dataset scopes admit a set of labels, computed once per distinct filter and cached.
 * Few admitted tiles (in the shard, or in one segment) are scanned exactly. Otherwise a segment
 * with sub-graphs for the values of one of the filter's conditions walks those small graphs: with
 * no callback when they hold nothing but admitted tiles, else with the admission as a callback.
 * Without them, a filter admitting a quarter of the segment or more over-fetches from a plain
 * walk; a narrower one walks the whole graph with the callback, which visits many tiles for each
 * admitted one and calls into JavaScript at each (6.8 ms at 5% where 50% took 1.1 ms, measured
 * in bench:index before sub-graphs). Exclusions (the query's own slide or patient) change with
 * every query and are checked per visited tile.
 */
import hnswlib from 'hnswlib-node';
import { datasetOf, EMPTY_FILTER, matches, type Filter } from './filter.js';
import type { TileCatalogue } from './catalogue.js';
import type { Graph } from './segment-file.js';
import type { ShardStore } from './shard-store.js';
import type { Label, SegmentRef, SubgraphRef, TileHit, TileRecord } from './types.js';

const { BruteforceSearch } = hnswlib;
type Bruteforce = InstanceType<typeof BruteforceSearch>;

/**
 * Up to this many admitted tiles (in the shard, or in a segment), a filtered search scans them
 * exactly instead of walking a graph. In bench:index (384-d, 2 loaded cores) an exact scan of
 * 4,096 tiles took 0.16 ms and a graph walk over them 0.21 ms at ef 128, the ef a value scattered
 * over a segment needs for recall@10 0.95; the scan's recall is 1 and it grows with the tiles, the
 * walk with their logarithm. Segments build sub-graphs only for values above it.
 */
export const EXACT_SCAN_LIMIT = 8192;
/** Extra neighbours fetched when a search excludes slides, before falling back to a filtered walk. */
const EXCLUSION_OVERFETCH = 16;
/**
 * A filter admitting at least this share of a segment is answered from an unfiltered walk that
 * fetches k / share and more (then checked), as exclusions are: cheaper than a callback at every
 * visited tile. Below it, such a walk would rarely find k.
 */
const BROAD_SHARE = 0.25;
/** Filters whose admitted tiles are kept between queries (the same filter usually repeats). */
const ADMISSION_CACHE_SIZE = 16;
/**
 * And at most this many bytes of them: an admission copies up to EXACT_SCAN_LIMIT vectors per
 * segment into its exact index (8,192 × 1280-d is 42 MiB), so the count alone does not bound it.
 */
const ADMISSION_CACHE_BYTES = 512 * 2 ** 20;
export const DEFAULT_EF = 64;

export interface SearchOptions {
  k: number;
  ef?: number;
  filter?: Filter;
  /** Slides whose tiles never come back (the query's own slide, say). */
  excludeSlides?: ReadonlySet<string>;
  /** Patients whose slides never come back (metadata field `patient_id`). */
  excludePatients?: ReadonlySet<string>;
  /**
   * The datasets a caller may see (an API key's scope): tiles of other slides never come back and
   * are never counted. Absent: every dataset. A slide's dataset is `datasetOf(its metadata)`.
   */
  datasets?: ReadonlySet<string>;
}

/** A graph in memory, with tombstones marked deleted. */
interface Walkable {
  graph: Graph;
  /** Vectors not tombstoned. */
  live: number;
}

export interface LoadedSubgraph extends Walkable {
  ref: SubgraphRef;
}

export interface LoadedSegment extends Walkable {
  ref: SegmentRef;
  /** By subgraphKey(field, value). */
  subgraphs: ReadonlyMap<string, LoadedSubgraph>;
}

export function subgraphKey(field: string, value: string): string {
  return JSON.stringify([field, value]);
}

/** Tail vectors held for exact scans: labels ascending, vectors back to back. */
export interface TailBlock {
  firstLabel: Label;
  endLabel: Label;
  labels: Uint32Array;
  vectors: Float32Array;
}

/** The parts of a shard one thread searches. */
export interface SearchParts {
  segments: LoadedSegment[];
  tail: TailBlock | null;
}

/**
 * Admitted tiles with their vectors, read once from the commit point into hnswlib's exact
 * (brute-force) index: its C++ loop scans 1,024 384-d vectors in about the time a graph walk
 * takes, where the same scan in JavaScript took three times as long (measured here).
 */
interface FewAdmitted {
  index: Bruteforce;
  count: number;
}

interface Admission {
  bitmap: Uint8Array;
  /** Admitted labels in the parts held here. */
  count: number;
  /** All of them, when they are few. */
  few: FewAdmitted | null;
  /** Per segment held (by id), when the shard's are not few: how many it holds, and those, when few. */
  bySegment: Map<number, { count: number; few: FewAdmitted | null }>;
  /** Memory it holds, about: the bitmap and the exact indexes' vectors. */
  bytes: number;
}

interface Scored {
  labels: Label[];
  distances: number[];
}

export class ShardSearcher {
  private readonly admissions = new Map<string, Admission>();

  constructor(
    private readonly shard: number,
    private readonly dimension: number,
    private readonly catalogue: TileCatalogue,
    private readonly store: ShardStore,
    private readonly parts: () => SearchParts,
    /** See EXACT_SCAN_LIMIT. */
    private readonly exactScanLimit = EXACT_SCAN_LIMIT,
  ) {}

  /** Forgets cached admissions: the records changed. */
  invalidate(): void {
    this.admissions.clear();
  }

  /** The k tiles nearest to `query` (a unit vector) that pass the filter and exclusions, best first. */
  search(query: Float32Array, options: SearchOptions): TileHit[] {
    const { k } = options;
    if (k <= 0 || this.catalogue.tileCount === 0) return [];
    const parts = this.parts();
    if (parts.segments.length === 0 && !parts.tail) return [];
    const filter = options.filter ?? EMPTY_FILTER;
    const excluded = this.excludedOrdinals(options);
    const allowed = excluded.size === 0 ? null : (label: number) => !excluded.has(this.catalogue.slideOrdinalOf(label));
    // Without an ef, each segment is searched at the ef it was tuned to for the target recall.
    const efOf = (segment: LoadedSegment) => options.ef ?? segment.ref.tuned?.ef ?? DEFAULT_EF;
    const vector = Array.from(query);
    const lists: Scored[] = [];
    if (filter.conditions.length === 0 && options.datasets === undefined) {
      for (const segment of parts.segments) lists.push(searchGraph(segment, vector, k, efOf(segment), allowed));
      if (parts.tail) lists.push(scanTail(parts.tail, query, k, (label) => this.catalogue.isLive(label) && (!allowed || allowed(label))));
    } else {
      const admission = this.admission(filter, options, parts);
      if (admission.count === 0) return [];
      if (admission.few) lists.push(searchFew(admission.few, vector, k, allowed));
      else {
        const { bitmap } = admission;
        const admitted = allowed ? (label: number) => bitmap[label] === 1 && allowed(label) : (label: number) => bitmap[label] === 1;
        const conditions = subgraphConditions(filter);
        for (const segment of parts.segments) {
          const held = admission.bySegment.get(segment.ref.id);
          if (!held || held.count === 0) continue;
          if (held.few) {
            lists.push(searchFew(held.few, vector, k, allowed));
            continue;
          }
          const subgraphs = chooseSubgraphs(segment, conditions);
          if (!subgraphs) {
            const share = held.count / Math.max(1, segment.live);
            lists.push(share >= BROAD_SHARE ? searchGraph(segment, vector, k, efOf(segment), admitted, share) : searchGraphFiltered(segment, vector, k, efOf(segment), admitted));
            continue;
          }
          // The chosen sub-graphs hold every admitted tile of the segment; when they hold as many
          // live tiles as are admitted, they hold nothing else and need no callback.
          const exactlyAdmitted = subgraphs.reduce((sum, subgraph) => sum + subgraph.live, 0) === held.count;
          for (const subgraph of subgraphs) {
            const ef = options.ef ?? subgraph.ref.tuned.ef;
            lists.push(exactlyAdmitted ? searchGraph(subgraph, vector, k, ef, allowed) : searchGraphFiltered(subgraph, vector, k, ef, admitted));
          }
        }
        if (parts.tail) lists.push(scanTail(parts.tail, query, k, admitted));
      }
    }
    return this.hitsOf(mergeScored(lists, k));
  }

  /** Keeps an admission, forgetting the oldest beyond the cache's count or bytes (never the new one). */
  private cacheAdmission(key: string, admission: Admission): void {
    this.admissions.set(key, admission);
    let bytes = 0;
    for (const cached of this.admissions.values()) bytes += cached.bytes;
    for (const [oldest, cached] of this.admissions) {
      if (oldest === key || (this.admissions.size <= ADMISSION_CACHE_SIZE && bytes <= ADMISSION_CACHE_BYTES)) break;
      this.admissions.delete(oldest);
      bytes -= cached.bytes;
    }
  }

  /** An exact index of the labels' vectors from the commit point (a tile deleted meanwhile is left out). */
  private withVectors(labels: Label[]): FewAdmitted {
    const index = new BruteforceSearch('cosine', this.dimension);
    index.initIndex(Math.max(1, labels.length));
    let count = 0;
    for (const label of labels) {
      const vector = this.store.vector(label);
      if (!vector) continue;
      index.addPoint(Array.from(vector), label);
      count++;
    }
    return { index, count };
  }

  private hitsOf(best: Scored): TileHit[] {
    const hits: TileHit[] = [];
    best.labels.forEach((label, i) => {
      // A tile deleted after this thread loaded its parts has no record any more: never a hit.
      const tile: TileRecord | undefined = this.store.tile(label);
      if (!tile) return;
      hits.push({ label, shard: this.shard, score: 1 - (best.distances[i] ?? 1), tile, slideMetadata: this.catalogue.slide(tile.slideId)?.metadata ?? {} });
    });
    return hits;
  }

  /** Ordinals of the slides a search leaves out: listed slides, and every slide of a listed patient. */
  private excludedOrdinals(options: SearchOptions): Set<number> {
    const excluded = new Set<number>();
    for (const slideId of options.excludeSlides ?? []) {
      const ordinal = this.catalogue.ordinal(slideId);
      if (ordinal !== undefined) excluded.add(ordinal);
    }
    if (options.excludePatients && options.excludePatients.size > 0) {
      for (const slide of this.catalogue.slides()) {
        const patient = slide.metadata.patient_id;
        if (patient !== undefined && options.excludePatients.has(patient)) excluded.add(this.catalogue.ordinal(slide.slideId) as number);
      }
    }
    return excluded;
  }

  /** The labels a filter and a dataset scope admit, computed once per distinct pair until the next write. */
  private admission(filter: Filter, options: SearchOptions, parts: SearchParts): Admission {
    const key = JSON.stringify([filter.conditions.map(({ field, condition }) => [field, conditionKey(condition)]), options.datasets ? [...options.datasets].sort() : null]);
    const cached = this.admissions.get(key);
    if (cached) return cached;
    const admittedSlides = new Set<number>();
    for (const slide of this.catalogue.slides()) {
      if (options.datasets && !options.datasets.has(datasetOf(slide.metadata))) continue;
      admittedSlides.add(this.catalogue.ordinal(slide.slideId) as number);
    }
    // Parts by label range, ascending, so that one pass over ascending labels finds each one's part.
    const held = heldRanges(parts).sort((a, b) => a.from - b.from);
    const end = held.reduce((max, { to }) => Math.max(max, to), 0);
    const bitmap = new Uint8Array(end);
    const few: Label[] = [];
    const bySegmentLabels = new Map<number, { count: number; labels: Label[] }>(parts.segments.map(({ ref }) => [ref.id, { count: 0, labels: [] }]));
    let count = 0;
    let part = 0;
    this.catalogue.forEachLive(end, (label, ordinal) => {
      while (part < held.length && label >= (held[part] as HeldRange).to) part++;
      const range = held[part];
      if (!range || label < range.from) return;
      if (!admittedSlides.has(ordinal)) return;
      const slide = this.catalogue.slideByOrdinal(ordinal);
      if (filter.conditions.length > 0 && (!slide || !matches(filter, this.catalogue.tileMetadata(label), slide.metadata))) return;
      bitmap[label] = 1;
      count++;
      if (few.length <= this.exactScanLimit) few.push(label);
      const inSegment = range.segment === null ? undefined : bySegmentLabels.get(range.segment);
      if (inSegment) {
        inSegment.count++;
        if (inSegment.labels.length <= this.exactScanLimit) inSegment.labels.push(label);
      }
    });
    const admission: Admission = { bitmap, count, few: count <= this.exactScanLimit ? this.withVectors(few) : null, bySegment: new Map(), bytes: 0 };
    let exactVectors = admission.few?.count ?? 0;
    if (!admission.few) {
      for (const [id, { count: inSegment, labels }] of bySegmentLabels) {
        const segmentFew = inSegment <= this.exactScanLimit ? this.withVectors(labels) : null;
        exactVectors += segmentFew?.count ?? 0;
        admission.bySegment.set(id, { count: inSegment, few: segmentFew });
      }
    }
    admission.bytes = bitmap.byteLength + exactVectors * (this.dimension * 4 + 16);
    this.cacheAdmission(key, admission);
    return admission;
  }
}

/** A part's label range [from, to): a segment (by id) or the tail (null). */
interface HeldRange {
  from: Label;
  to: Label;
  segment: number | null;
}

function heldRanges(parts: SearchParts): HeldRange[] {
  const ranges: HeldRange[] = parts.segments.map(({ ref }) => ({ from: ref.firstLabel, to: ref.endLabel, segment: ref.id }));
  if (parts.tail) ranges.push({ from: parts.tail.firstLabel, to: parts.tail.endLabel, segment: null });
  return ranges;
}

/** The filter's conditions that sub-graphs can answer: a field equal to one of some values. */
function subgraphConditions(filter: Filter): Array<{ field: string; values: string[] }> {
  return filter.conditions.flatMap(({ field, condition }) => {
    if (condition.kind === 'eq') return [{ field, values: [condition.value] }];
    if (condition.kind === 'in') return [{ field, values: [...condition.values] }];
    return [];
  });
}

/**
 * The segment's sub-graphs for the condition whose values they cover most cheaply (fewest
 * vectors), or null when no condition has a sub-graph for every one of its values. Every tile
 * the filter admits satisfies each condition, so it lies in the chosen sub-graphs.
 */
function chooseSubgraphs(segment: LoadedSegment, conditions: Array<{ field: string; values: string[] }>): LoadedSubgraph[] | null {
  if (segment.subgraphs.size === 0) return null;
  let best: LoadedSubgraph[] | null = null;
  let bestVectors = Infinity;
  for (const { field, values } of conditions) {
    const subgraphs = values.map((value) => segment.subgraphs.get(subgraphKey(field, value)));
    if (subgraphs.some((subgraph) => subgraph === undefined)) continue;
    const vectors = subgraphs.reduce((sum, subgraph) => sum + (subgraph as LoadedSubgraph).live, 0);
    if (vectors < bestVectors) {
      best = subgraphs as LoadedSubgraph[];
      bestVectors = vectors;
    }
  }
  return best;
}

/**
 * One graph's best k among the tiles `allowed` admits, which are about `share` of them. Excluded
 * tiles are usually few among the nearest: over-fetch without a callback (a call into JavaScript
 * per visited tile costs about a third more) and fall back to a filtered walk when too many go.
 */
function searchGraph(segment: Walkable, vector: number[], k: number, ef: number, allowed: ((label: number) => boolean) | null, share = 1): Scored {
  if (segment.live === 0) return { labels: [], distances: [] };
  const fetch = Math.min(allowed ? Math.ceil((k + EXCLUSION_OVERFETCH) / share) : k, segment.live);
  segment.graph.setEf(Math.max(ef, fetch));
  const { neighbors, distances } = segment.graph.searchKnn(vector, fetch);
  if (!allowed) return { labels: neighbors, distances };
  const kept = neighbors.flatMap((label, i) => (allowed(label) ? [i] : []));
  if (kept.length >= k || neighbors.length >= segment.live) return { labels: kept.slice(0, k).map((i) => neighbors[i] as Label), distances: kept.slice(0, k).map((i) => distances[i] as number) };
  return searchGraphFiltered(segment, vector, k, ef, allowed);
}

/** The best k of few admitted tiles, exactly; exclusions as in searchGraph. */
function searchFew(few: FewAdmitted, vector: number[], k: number, allowed: ((label: number) => boolean) | null): Scored {
  if (few.count === 0) return { labels: [], distances: [] };
  const fetch = Math.min(allowed ? k + EXCLUSION_OVERFETCH : k, few.count);
  const { neighbors, distances } = few.index.searchKnn(vector, fetch);
  if (!allowed) return { labels: neighbors, distances };
  const kept = neighbors.flatMap((label, i) => (allowed(label) ? [i] : []));
  if (kept.length >= k || neighbors.length >= few.count) return { labels: kept.slice(0, k).map((i) => neighbors[i] as Label), distances: kept.slice(0, k).map((i) => distances[i] as number) };
  const filtered = few.index.searchKnn(vector, Math.min(k, few.count), allowed);
  return { labels: filtered.neighbors, distances: filtered.distances };
}

function searchGraphFiltered(segment: Walkable, vector: number[], k: number, ef: number, admitted: (label: number) => boolean): Scored {
  if (segment.live === 0) return { labels: [], distances: [] };
  segment.graph.setEf(Math.max(ef, k * 2));
  const { neighbors, distances } = segment.graph.searchKnn(vector, Math.min(k, segment.live), admitted);
  return { labels: neighbors, distances };
}

function scanTail(tail: TailBlock, query: Float32Array, k: number, allowed: (label: number) => boolean): Scored {
  return exactScan(query, tail.labels, tail.vectors, k, allowed);
}

/**
 * Exact top k by cosine over unit vectors stored back to back. The best k are kept sorted as they
 * come (k is small) rather than scoring everything and sorting: no object per candidate.
 */
export function exactScan(query: Float32Array, labels: ArrayLike<Label>, vectors: Float32Array, k: number, allowed: ((label: Label) => boolean) | null): Scored {
  const best: Scored = { labels: [], distances: [] };
  if (k <= 0) return best;
  const dimension = query.length;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] as Label;
    if (allowed && !allowed(label)) continue;
    const distance = 1 - dotAt(query, vectors, i * dimension);
    const count = best.distances.length;
    if (count === k && distance >= (best.distances[count - 1] as number)) continue;
    let at = count;
    while (at > 0 && (best.distances[at - 1] as number) > distance) at--;
    best.distances.splice(at, 0, distance);
    best.labels.splice(at, 0, label);
    if (count === k) {
      best.distances.pop();
      best.labels.pop();
    }
  }
  return best;
}

/** query · vectors[offset …]: four sums at a time, which V8 runs about twice as fast as one. */
function dotAt(query: Float32Array, vectors: Float32Array, offset: number): number {
  const dimension = query.length;
  let a = 0;
  let b = 0;
  let c = 0;
  let e = 0;
  let d = 0;
  for (; d + 3 < dimension; d += 4) {
    a += (query[d] as number) * (vectors[offset + d] as number);
    b += (query[d + 1] as number) * (vectors[offset + d + 1] as number);
    c += (query[d + 2] as number) * (vectors[offset + d + 2] as number);
    e += (query[d + 3] as number) * (vectors[offset + d + 3] as number);
  }
  for (; d < dimension; d++) a += (query[d] as number) * (vectors[offset + d] as number);
  return a + b + c + e;
}

function mergeScored(lists: Scored[], k: number): Scored {
  if (lists.length === 1) return lists[0] as Scored;
  const all = lists.flatMap(({ labels, distances }) => labels.map((label, i) => ({ label, distance: distances[i] as number })));
  all.sort((a, b) => a.distance - b.distance);
  const best = all.slice(0, k);
  return { labels: best.map((entry) => entry.label), distances: best.map((entry) => entry.distance) };
}

function conditionKey(condition: Filter['conditions'][number]['condition']): unknown {
  switch (condition.kind) {
    case 'eq':
      return ['eq', condition.value];
    case 'in':
      return ['in', [...condition.values].sort()];
    case 'not':
      return ['not', conditionKey(condition.inner)];
  }
}

