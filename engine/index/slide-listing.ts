/**
 * SlideListing: a shard's slide catalogue as the slide list asks it: pages in slide-id order
 * after a cursor, counts and facets, within an API key's datasets. It keeps, beside the records,
 * the slides in id order, per facet value the slides holding it (same order), and per dataset
 * the slide, tile and facet-value counts. A page of 50 is a binary search after the cursor in
 * the shortest list that holds every match, then a walk that checks the other facet conditions by
 * galloping through their lists; a count with at most two facet conditions (per dataset, the
 * slides holding each value and each pair of values are counted), and the facets, are sums over
 * the datasets in scope, whatever the shard holds. Three conditions or text make the count a walk
 * of that shortest list.
 *
 * The orderings are built on first use (a server that never lists pays nothing at open) and then
 * kept up to date on every put and remove; the counts are always kept. It writes nothing.
 */
import { datasetOf } from './filter.js';
import type { SlideRecord } from './types.js';

/** Slide metadata fields the slide list counts and filters by exact value. */
export const FACET_FIELDS = ['dataset', 'organ', 'stain', 'species', 'diagnosis'] as const;
export type FacetField = (typeof FACET_FIELDS)[number];

/** Per field, value → number of slides. */
export type FacetCounts = Record<string, Record<string, number>>;

export interface SlidePageQuery {
  /** Only slides whose id sorts after this one (the last id of the previous page). */
  after?: string;
  /** Slides to return (0: counts and facets only). */
  limit: number;
  /** Exact values of slide metadata fields (facet fields are fastest, any field works). */
  where?: Record<string, string>;
  /** Case-insensitive substring of the slide id or of any metadata value (a scan). */
  text?: string;
  /** The datasets the caller may see; null: all. */
  datasets: string[] | null;
}

export interface SlidePage {
  /** In slide-id order. */
  records: SlideRecord[];
  /** Slides in scope matching the query (all pages). */
  total: number;
  /** Value counts of the facet fields over the slides in scope (not narrowed by `where`/`text`). */
  facets: FacetCounts;
  /** Whether slides after the last one returned match too. */
  more: boolean;
}

/** The matches of one query, visited in id order from after a cursor until `visit` says stop. */
interface MatchPlan {
  walk(after: string | undefined, visit: (record: SlideRecord) => boolean): void;
}

/** What one dataset holds. */
interface DatasetCounts {
  slides: number;
  tiles: number;
  values: Map<FacetField, Map<string, number>>;
  /** Slides holding two facet values at once (pairKey), so that two filters count without a walk. */
  pairs: Map<string, number>;
}

export class SlideListing {
  private readonly counts = new Map<string, DatasetCounts>();
  /** Every slide, by id; null until first listed. */
  private order: SlideRecord[] | null = null;
  /** Per facet field and value, the slides holding it, by id; per dataset (scope) likewise. */
  private postings: Map<FacetField, Map<string, SlideRecord[]>> | null = null;
  private byDataset: Map<string, SlideRecord[]> | null = null;

  constructor(private readonly records: () => Iterable<SlideRecord>) {}

  /** Records a slide that was added; `previous` is the record it replaces, if any. */
  put(record: SlideRecord, previous: SlideRecord | undefined): void {
    if (previous) this.remove(previous);
    this.count(record, 1);
    if (this.order) this.index(record, insertSorted);
  }

  remove(record: SlideRecord): void {
    this.count(record, -1);
    if (this.order) this.index(record, removeSorted);
  }

  /** Slides and tiles in scope, from the counts. */
  totals(datasets: string[] | null): { slides: number; tiles: number } {
    let slides = 0;
    let tiles = 0;
    for (const counts of this.inScope(datasets)) {
      slides += counts.slides;
      tiles += counts.tiles;
    }
    return { slides, tiles };
  }

  /** Facet value counts over the slides in scope. */
  facets(datasets: string[] | null): FacetCounts {
    const facets: FacetCounts = Object.fromEntries(FACET_FIELDS.map((field) => [field, {}]));
    for (const counts of this.inScope(datasets)) {
      for (const [field, values] of counts.values) {
        const target = facets[field] as Record<string, number>;
        for (const [value, n] of values) target[value] = (target[value] ?? 0) + n;
      }
    }
    return facets;
  }

  page(query: SlidePageQuery): SlidePage {
    this.build();
    const plan = this.plan(query);
    const records: SlideRecord[] = [];
    let more = false;
    plan.walk(query.after, (record) => {
      if (records.length === query.limit) {
        more = true;
        return false;
      }
      records.push(record);
      return true;
    });
    return { records, total: this.total(query, plan), facets: this.facets(query.datasets), more };
  }

  /**
   * Slides matching the query: from the counts when at most two facet conditions and no text
   * narrow the scope; else by walking every match.
   */
  private total(query: SlidePageQuery, plan: MatchPlan): number {
    const where = Object.entries(query.where ?? {});
    if (!query.text && where.length === 0) return this.totals(query.datasets).slides;
    if (!query.text && where.length <= 2 && where.every(([field]) => isFacetField(field))) {
      const [first, second] = where as Array<[FacetField, string]>;
      const [field, value] = first as [FacetField, string];
      let total = 0;
      for (const counts of this.inScope(query.datasets)) total += (second ? counts.pairs.get(pairKey([field, value], second)) : counts.values.get(field)?.get(value)) ?? 0;
      return total;
    }
    let total = 0;
    plan.walk(undefined, () => {
      total++;
      return true;
    });
    return total;
  }

  /**
   * How to find the matches in id order: walk the shortest sorted list that holds every match (a
   * facet condition's slides, the datasets in scope, or every slide), keep a slide when every
   * other facet condition's list holds it too (found by galloping, not by reading metadata) and
   * the remaining checks (scope, other fields, text) pass.
   */
  private plan(query: SlidePageQuery): MatchPlan {
    const order = this.order as SlideRecord[];
    const facetLists: SlideRecord[][] = [];
    const otherFields: Array<[string, string]> = [];
    for (const [field, value] of Object.entries(query.where ?? {})) {
      if (isFacetField(field)) facetLists.push(this.postings?.get(field)?.get(value) ?? []);
      else otherFields.push([field, value]);
    }
    facetLists.sort((a, b) => a.length - b.length);
    const needle = query.text?.toLowerCase() || undefined;
    const scope = query.datasets ? new Set(query.datasets) : null;
    const scopeLists = query.datasets ? [...new Set(query.datasets)].map((dataset) => this.byDataset?.get(dataset) ?? []) : null;
    const scopeSize = scopeLists ? scopeLists.reduce((sum, list) => sum + list.length, 0) : Number.POSITIVE_INFINITY;
    const [shortest] = facetLists;
    let driver: SlideRecord[][];
    let scopeChecked = scope !== null;
    if (shortest && shortest.length <= scopeSize) driver = [shortest];
    else if (scopeLists) {
      driver = scopeLists;
      scopeChecked = false;
    } else driver = [order];
    const others = driver[0] === shortest ? facetLists.slice(1) : facetLists;
    const checks = (record: SlideRecord): boolean =>
      (!scopeChecked || (scope as Set<string>).has(datasetOf(record.metadata))) && otherFields.every(([field, value]) => record.metadata[field] === value) && (!needle || containsText(record, needle));
    const plain = !scopeChecked && otherFields.length === 0 && !needle;
    return {
      walk: (after, visit) => {
        const cursors = others.map(() => 0);
        /**
         * true when every other facet list holds `record`; else the id the next match can be no
         * earlier than (an other list's next slide), or null when an other list has no slide left.
         */
        const align = (record: SlideRecord): true | string | null => {
          for (let l = 0; l < others.length; l++) {
            const list = others[l] as SlideRecord[];
            const at = gallop(list, record.slideId, cursors[l] as number);
            cursors[l] = at;
            const candidate = list[at];
            if (!candidate) return null;
            if (candidate !== record) return candidate.slideId;
          }
          return true;
        };
        const keep = (record: SlideRecord) => plain || checks(record);
        if (driver.length === 1) {
          // Leapfrog: where an other list's next slide lies ahead, the driver gallops to it instead
          // of stepping through slides that cannot match (a rare pair after a deep cursor).
          const list = driver[0] as SlideRecord[];
          let i = after === undefined ? 0 : firstAfter(list, after);
          while (i < list.length) {
            const record = list[i] as SlideRecord;
            const aligned = align(record);
            if (aligned === null) return;
            if (aligned !== true) {
              i = gallop(list, aligned, i + 1);
              continue;
            }
            if (keep(record) && !visit(record)) return;
            i++;
          }
          return;
        }
        for (const record of iterateAfter(driver, after)) {
          const aligned = align(record);
          if (aligned === null) return;
          if (aligned === true && keep(record) && !visit(record)) return;
        }
      },
    };
  }

  private *inScope(datasets: string[] | null): Iterable<DatasetCounts> {
    if (!datasets) yield* this.counts.values();
    else
      for (const dataset of new Set(datasets)) {
        const counts = this.counts.get(dataset);
        if (counts) yield counts;
      }
  }

  private count(record: SlideRecord, sign: 1 | -1): void {
    const dataset = datasetOf(record.metadata);
    let counts = this.counts.get(dataset);
    if (!counts) {
      counts = { slides: 0, tiles: 0, values: new Map(), pairs: new Map() };
      this.counts.set(dataset, counts);
    }
    counts.slides += sign;
    counts.tiles += sign * record.labels.length;
    for (const field of FACET_FIELDS) {
      const value = record.metadata[field];
      if (value === undefined || value === '') continue;
      let values = counts.values.get(field);
      if (!values) {
        values = new Map();
        counts.values.set(field, values);
      }
      const n = (values.get(value) ?? 0) + sign;
      if (n > 0) values.set(value, n);
      else values.delete(value);
    }
    const present = FACET_FIELDS.flatMap((field) => (record.metadata[field] ? [[field, record.metadata[field]] as [FacetField, string]] : []));
    for (let i = 0; i < present.length; i++) {
      for (let j = i + 1; j < present.length; j++) {
        const key = pairKey(present[i] as [FacetField, string], present[j] as [FacetField, string]);
        const n = (counts.pairs.get(key) ?? 0) + sign;
        if (n > 0) counts.pairs.set(key, n);
        else counts.pairs.delete(key);
      }
    }
    if (counts.slides === 0) this.counts.delete(dataset);
  }

  /** Sorts every record once and fills the per-value lists (already in id order). */
  private build(): void {
    if (this.order) return;
    const order = [...this.records()].sort((a, b) => compareIds(a.slideId, b.slideId));
    this.postings = new Map(FACET_FIELDS.map((field) => [field, new Map()]));
    this.byDataset = new Map();
    for (const record of order) this.index(record, (list, entry) => list.push(entry));
    this.order = order;
  }

  private index(record: SlideRecord, apply: (list: SlideRecord[], record: SlideRecord) => void): void {
    if (this.order) apply(this.order, record);
    for (const field of FACET_FIELDS) {
      const value = record.metadata[field];
      if (value === undefined || value === '') continue;
      const values = this.postings?.get(field) as Map<string, SlideRecord[]>;
      apply(listOf(values, value), record);
    }
    apply(listOf(this.byDataset as Map<string, SlideRecord[]>, datasetOf(record.metadata)), record);
  }
}

function listOf(lists: Map<string, SlideRecord[]>, key: string): SlideRecord[] {
  let list = lists.get(key);
  if (!list) {
    list = [];
    lists.set(key, list);
  }
  return list;
}

/** The key of two facet conditions, the same whichever order they are given in. */
function pairKey(a: [FacetField, string], b: [FacetField, string]): string {
  const [first, second] = FACET_FIELDS.indexOf(a[0]) < FACET_FIELDS.indexOf(b[0]) ? [a, b] : [b, a];
  return `${first[0]}\u0000${first[1]}\u0000${second[0]}\u0000${second[1]}`;
}

function isFacetField(field: string): field is FacetField {
  return (FACET_FIELDS as readonly string[]).includes(field);
}

function containsText(record: SlideRecord, needle: string): boolean {
  return record.slideId.toLowerCase().includes(needle) || Object.values(record.metadata).some((value) => value.toLowerCase().includes(needle));
}

/** Code-unit order: the same in every shard and router, whatever the locale. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first record whose id sorts after `id` (or equal to it, with `inclusive`). */
function firstAfter(list: SlideRecord[], id: string, inclusive = false): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const order = compareIds((list[middle] as SlideRecord).slideId, id);
    if (order < 0 || (order === 0 && !inclusive)) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Index of the first record at or after `from` whose id is not below `id` (exponential, then binary search). */
function gallop(list: SlideRecord[], id: string, from: number): number {
  let step = 1;
  let low = from;
  let high = from;
  while (high < list.length && compareIds((list[high] as SlideRecord).slideId, id) < 0) {
    low = high + 1;
    high += step;
    step *= 2;
  }
  high = Math.min(high, list.length);
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareIds((list[middle] as SlideRecord).slideId, id) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

function insertSorted(list: SlideRecord[], record: SlideRecord): void {
  list.splice(firstAfter(list, record.slideId, true), 0, record);
}

function removeSorted(list: SlideRecord[], record: SlideRecord): void {
  const at = firstAfter(list, record.slideId, true);
  if (list[at]?.slideId === record.slideId) list.splice(at, 1);
}

/** The records of some id-sorted lists after `after`, merged in id order (lists are disjoint). */
function* iterateAfter(lists: SlideRecord[][], after: string | undefined): Iterable<SlideRecord> {
  const positions = lists.map((list) => (after === undefined ? 0 : firstAfter(list, after)));
  if (lists.length === 1) {
    const list = lists[0] as SlideRecord[];
    for (let i = positions[0] as number; i < list.length; i++) yield list[i] as SlideRecord;
    return;
  }
  for (;;) {
    let next = -1;
    for (let l = 0; l < lists.length; l++) {
      const candidate = (lists[l] as SlideRecord[])[positions[l] as number];
      if (candidate && (next < 0 || compareIds(candidate.slideId, ((lists[next] as SlideRecord[])[positions[next] as number] as SlideRecord).slideId) < 0)) next = l;
    }
    if (next < 0) return;
    yield (lists[next] as SlideRecord[])[positions[next] as number] as SlideRecord;
    positions[next] = (positions[next] as number) + 1;
  }
}
