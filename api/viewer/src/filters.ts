/**
 * Metadata filters (dataset, organ, stain, species, diagnosis): one select per field, filled from
 * the facets of GET /v1/slides. A change is reported at once, so the slide list and the current
 * search follow it live. It fetches nothing itself.
 */
import { h, replaceChildren } from './dom.js';
import { FILTER_FIELDS, type Filter, type FilterField } from './types.js';

const LABELS: Record<FilterField, string> = { dataset: 'Dataset', organ: 'Organ', stain: 'Stain', species: 'Species', diagnosis: 'Diagnosis' };

/** The filter selects; `filter` is what they say, `onChange` reports each change. */
export class FilterBar {
  private readonly selects = new Map<FilterField, HTMLSelectElement>();
  /** Every value seen per field, so options do not vanish when another filter narrows the list. */
  private readonly known = new Map<FilterField, Map<string, number>>();
  private readonly clearButton: HTMLButtonElement;
  /** Called with the new filter whenever a select changes. */
  onChange: (filter: Filter) => void = () => {};

  constructor(container: HTMLElement) {
    const legend = container.querySelector('legend');
    const rows = FILTER_FIELDS.map((field) => {
      const select = h('select', { id: `filter-${field}`, 'data-testid': `filter-${field}`, onchange: () => this.changed() });
      this.selects.set(field, select);
      this.known.set(field, new Map());
      return h('div', { class: 'filter-row' }, h('label', { for: `filter-${field}` }, LABELS[field]), select);
    });
    this.clearButton = h('button', { type: 'button', class: 'link-button', 'data-testid': 'filters-clear', disabled: true, onclick: () => this.clear() }, 'Clear filters');
    replaceChildren(container, legend, rows, this.clearButton);
    this.render();
  }

  /** The filter the selects describe (empty: no condition). */
  get filter(): Filter {
    const filter: Filter = {};
    for (const [field, select] of this.selects) if (select.value) filter[field] = select.value;
    return filter;
  }

  /** The same, as GET /v1/slides query parameters. */
  get queryParameters(): URLSearchParams {
    return new URLSearchParams(Object.entries(this.filter).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
  }

  /** Learns facet values (value → slide count) from a slide list answer. */
  addFacets(facets: Record<string, Record<string, number>>): void {
    let changed = false;
    for (const field of FILTER_FIELDS) {
      const known = this.known.get(field);
      for (const [value, count] of Object.entries(facets[field] ?? {})) {
        if (!known || known.get(value) === count) continue;
        // Counts of an unfiltered answer are the ones worth showing; a narrowed answer only adds values.
        if (!known.has(value) || Object.keys(this.filter).length === 0) known.set(value, count);
        changed = true;
      }
    }
    if (changed) this.render();
  }

  clear(): void {
    for (const select of this.selects.values()) select.value = '';
    this.changed();
  }

  private changed(): void {
    this.clearButton.disabled = Object.keys(this.filter).length === 0;
    this.onChange(this.filter);
  }

  private render(): void {
    for (const [field, select] of this.selects) {
      const current = select.value;
      const values = [...(this.known.get(field) ?? new Map<string, number>())].sort(([a], [b]) => a.localeCompare(b));
      replaceChildren(
        select,
        h('option', { value: '' }, values.length ? 'Any' : '—'),
        values.map(([value, count]) => h('option', { value }, `${value} (${count})`)),
      );
      select.value = current;
      select.disabled = values.length === 0;
    }
  }
}
