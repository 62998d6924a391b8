/**
 * The cohort builder: slides collected from results (or built by example with POST /v1/cohorts),
 * shown as a table and exported as CSV or JSON. A cohort the server built, left as it was, is
 * exported by the server (the same query with `Accept: text/csv`); a collected one is written
 * here in the server's CSV format. The cohort survives a reload (localStorage).
 */
import { describeError, type ApiClient } from './api-client.js';
import { h, replaceChildren } from './dom.js';
import { describeFilter, formatScore } from './results-gallery.js';
import type { CohortReply, CohortSlide, Filter } from './types.js';

const STORAGE = 'tessera.cohort';
const TABLE_FIELDS = ['diagnosis', 'organ', 'stain', 'dataset'] as const;

/** The body of POST /v1/cohorts for a cohort by example. */
export interface CohortQuery {
  slideId: string;
  filter?: Filter;
  k: number;
  includeQuery: boolean;
}

interface Stored {
  slides: CohortSlide[];
  /** Set while the cohort is exactly what this query returned. */
  query: CohortQuery | null;
}

/** The cohort's content; it renders nothing. */
export class Cohort {
  private slides: CohortSlide[] = [];
  private builtBy: CohortQuery | null = null;
  /** Called after every change. */
  onChange: () => void = () => {};

  constructor(private readonly storage: Storage = window.localStorage) {
    try {
      const stored = JSON.parse(storage.getItem(STORAGE) ?? 'null') as Stored | null;
      if (stored && Array.isArray(stored.slides)) {
        this.slides = stored.slides;
        this.builtBy = stored.query;
      }
    } catch {
      storage.removeItem(STORAGE);
    }
  }

  get entries(): readonly CohortSlide[] {
    return this.slides;
  }

  /** The query the server built this cohort with, while nothing was added or removed. */
  get query(): CohortQuery | null {
    return this.builtBy;
  }

  has(slideId: string): boolean {
    return this.slides.some((slide) => slide.slideId === slideId);
  }

  add(slide: CohortSlide): void {
    if (this.has(slide.slideId)) return;
    this.slides.push(slide);
    this.builtBy = null;
    this.changed();
  }

  remove(slideId: string): void {
    this.slides = this.slides.filter((slide) => slide.slideId !== slideId);
    this.builtBy = null;
    this.changed();
  }

  clear(): void {
    this.slides = [];
    this.builtBy = null;
    this.changed();
  }

  /** Adds the slides of a cohort the server built; an empty cohort becomes exactly that cohort. */
  addBuilt(query: CohortQuery, reply: CohortReply): number {
    const wasEmpty = this.slides.length === 0;
    const before = this.slides.length;
    for (const slide of reply.slides) if (!this.has(slide.slideId)) this.slides.push(slide);
    this.builtBy = wasEmpty ? query : null;
    this.changed();
    return this.slides.length - before;
  }

  private changed(): void {
    this.storage.setItem(STORAGE, JSON.stringify({ slides: this.slides, query: this.builtBy } satisfies Stored));
    this.onChange();
  }
}

/** CSV as the API writes it: slide_id, score, then every metadata column (sorted); RFC 4180 quoting, formulas defused. */
export function cohortCsv(slides: readonly CohortSlide[]): string {
  const columns = [...new Set(slides.flatMap((slide) => Object.keys(slide.metadata)))].sort();
  const rows = [['slide_id', 'score', ...columns], ...slides.map((slide) => [slide.slideId, String(slide.score), ...columns.map((column) => slide.metadata[column] ?? '')])];
  return `${rows.map((row) => row.map(csvCell).join(',')).join('\r\n')}\r\n`;
}

function csvCell(value: string): string {
  // A cell starting with = + - @ would run as a formula in a spreadsheet.
  const safe = /^[=+\-@\t\r]/.test(value) && !/^-?\d/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

/** Saves text as a file through the browser's download. */
function download(text: string, type: string, filename: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h('a', { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The cohort tab: a table of the slides, export buttons, and messages. */
export class CohortPanel {
  private readonly status: HTMLElement;
  private readonly body: HTMLElement;
  /** Called when the user opens a slide from the table. */
  onOpenSlide: (slideId: string) => void = () => {};

  constructor(
    private readonly api: ApiClient,
    private readonly cohort: Cohort,
    container: HTMLElement,
  ) {
    this.status = h('p', { class: 'message', role: 'status', 'data-testid': 'cohort-status' });
    this.body = h('div', { class: 'cohort-body' });
    replaceChildren(container, this.body, this.status);
    this.render();
  }

  render(): void {
    const slides = this.cohort.entries;
    const query = this.cohort.query;
    if (slides.length === 0) {
      replaceChildren(this.body, h('p', { class: 'message', 'data-testid': 'cohort-empty' }, 'The cohort is empty. Add slides with “+ Cohort” on search results, or “Build cohort from this slide”.'));
      return;
    }
    replaceChildren(
      this.body,
      h(
        'div',
        { class: 'cohort-actions' },
        h('button', { type: 'button', 'data-testid': 'export-csv', onclick: () => void this.export('csv') }, 'Export CSV'),
        h('button', { type: 'button', 'data-testid': 'export-json', onclick: () => void this.export('json') }, 'Export JSON'),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'cohort-clear', onclick: () => this.cohort.clear() }, 'Clear'),
      ),
      h(
        'p',
        { class: 'muted', 'data-testid': 'cohort-source' },
        query ? `${slides.length} slides like ${query.slideId}${query.filter && Object.keys(query.filter).length ? ` (${describeFilter(query.filter)})` : ''}, built by the server.` : `${slides.length} slide${slides.length === 1 ? '' : 's'} collected from results.`,
      ),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { class: 'cohort-table', 'data-testid': 'cohort-table' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Slide'), h('th', { scope: 'col' }, 'Score'), TABLE_FIELDS.map((field) => h('th', { scope: 'col' }, field[0]?.toUpperCase() + field.slice(1))), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Remove')))),
          h(
            'tbody',
            {},
            slides.map((slide) =>
              h(
                'tr',
                { 'data-testid': 'cohort-row', 'data-slide-id': slide.slideId },
                h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link-button', onclick: () => this.onOpenSlide(slide.slideId) }, slide.slideId)),
                h('td', {}, formatScore(slide.score)),
                TABLE_FIELDS.map((field) => h('td', {}, slide.metadata[field] ?? '')),
                h('td', {}, h('button', { type: 'button', class: 'icon-button', 'aria-label': `Remove ${slide.slideId} from the cohort`, onclick: () => this.cohort.remove(slide.slideId) }, '×')),
              ),
            ),
          ),
        ),
      ),
    );
  }

  /** Says what is happening to the cohort (built, exported, failed). */
  say(text: string, kind: 'info' | 'error' = 'info'): void {
    this.status.textContent = text;
    this.status.classList.toggle('error', kind === 'error');
  }

  /** Saves the cohort: by the server when it built it, else from the table. */
  private async export(format: 'csv' | 'json'): Promise<void> {
    const query = this.cohort.query;
    const type = format === 'csv' ? 'text/csv' : 'application/json';
    const filename = `tessera-cohort.${format}`;
    try {
      if (query) {
        this.say('Exporting…');
        const text = await this.api.text('POST', '/v1/cohorts', query, type);
        download(text, type, filename);
      } else {
        const slides = this.cohort.entries;
        download(format === 'csv' ? cohortCsv(slides) : `${JSON.stringify({ query: { collected: true }, slides }, null, 2)}\n`, type, filename);
      }
      this.say(`Exported ${filename}.`);
    } catch (error) {
      this.say(`Export failed: ${describeError(error)}`, 'error');
    }
  }
}
