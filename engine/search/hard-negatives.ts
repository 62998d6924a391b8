/**
 * Hard negatives for AI developers: for each labelled query tile, the nearest indexed tiles whose
 * label (a metadata field: the tile's own, else its slide's) differs from the query's.
 */
import { parseFilter, type IndexStore, type SearchOptions, type TileHit } from '../index/index.js';

export interface LabelledQuery {
  vector: Float32Array;
  label: string;
}

export interface HardNegativeOptions extends Omit<SearchOptions, 'k' | 'filter'> {
  k: number;
  /** The metadata field holding the label (default `label`). */
  labelField?: string;
  /** Further conditions every negative must meet, as a filter object. */
  filter?: Record<string, unknown>;
}

/** Yields, query by query in input order, the k nearest tiles with another label. */
export function* hardNegatives(store: Pick<IndexStore, 'search'>, queries: Iterable<LabelledQuery>, options: HardNegativeOptions): Generator<TileHit[]> {
  const field = options.labelField ?? 'label';
  for (const query of queries) {
    const filter = parseFilter({ ...(options.filter ?? {}), [field]: { not: query.label } });
    yield store.search(query.vector, { ...options, filter });
  }
}
