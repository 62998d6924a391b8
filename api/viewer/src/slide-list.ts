/**
 * The slide list: text search and the metadata filters over GET /v1/slides, one card per slide
 * (thumbnail, id, diagnosis and other metadata), more on demand. Opening a slide is reported to
 * the caller; the list does not know about the viewer.
 */
import { describeError, showImage, type ApiClient } from './api-client.js';
import { h, replaceChildren } from './dom.js';
import type { SlideList as SlideListReply, SlideSummary } from './types.js';

/** Slides per page. */
export const SLIDE_PAGE_SIZE = 100;

const TYPING_PAUSE_MS = 200;

/** The slide list panel; `load` fetches (and renders) the first page. */
export class SlideList {
  private slides: SlideSummary[] = [];
  private total = 0;
  /** The next page's cursor (null: the last page is loaded). */
  private nextCursor: string | null = null;
  private currentId: string | null = null;
  private parameters = new URLSearchParams();
  private loading: AbortController | null = null;
  private typingTimer = 0;
  private imagesAllowed: Promise<void> = Promise.resolve();
  /** Called when the user opens a slide. */
  onOpen: (slide: SlideSummary) => void = () => {};
  /** Called with every answer (the facets feed the filters). */
  onLoaded: (reply: SlideListReply) => void = () => {};

  constructor(
    private readonly api: ApiClient,
    private readonly list: HTMLUListElement,
    private readonly count: HTMLElement,
    private readonly queryInput: HTMLInputElement,
  ) {
    queryInput.addEventListener('input', () => {
      window.clearTimeout(this.typingTimer);
      this.typingTimer = window.setTimeout(() => void this.reload(), TYPING_PAUSE_MS);
    });
    queryInput.form?.addEventListener('submit', (event) => {
      event.preventDefault();
      window.clearTimeout(this.typingTimer);
      void this.reload();
    });
  }

  /** Holds thumbnails back until `when` settles, so the slide viewer's first tiles come first. */
  holdImagesUntil(when: Promise<unknown>): void {
    this.imagesAllowed = when.then(
      () => {},
      () => {},
    );
  }

  /** Slides loaded so far (the first page, and more if asked). */
  get loaded(): readonly SlideSummary[] {
    return this.slides;
  }

  find(slideId: string): SlideSummary | undefined {
    return this.slides.find((slide) => slide.slideId === slideId);
  }

  /**
   * Loads the first page for the search text and these filter parameters; `pending` is that page
   * already requested (as the page opens).
   */
  async load(filterParameters: URLSearchParams, pending?: Promise<SlideListReply>): Promise<void> {
    this.parameters = filterParameters;
    this.slides = [];
    await this.fetchPage(null, pending);
  }

  /** Marks the slide shown in the viewer. */
  setCurrent(slideId: string | null): void {
    this.currentId = slideId;
    for (const item of this.list.querySelectorAll<HTMLButtonElement>('button.slide-card')) {
      if (item.dataset.slideId === slideId) item.setAttribute('aria-current', 'true');
      else item.removeAttribute('aria-current');
    }
  }

  private async reload(): Promise<void> {
    this.slides = [];
    await this.fetchPage(null);
  }

  /** Fetches the first page (cursor null) or the page after `cursor`, and renders. */
  private async fetchPage(cursor: string | null, pending?: Promise<SlideListReply>): Promise<void> {
    this.loading?.abort();
    const loading = new AbortController();
    this.loading = loading;
    const parameters = new URLSearchParams(this.parameters);
    const text = this.queryInput.value.trim();
    if (text) parameters.set('q', text);
    if (cursor) parameters.set('cursor', cursor);
    parameters.set('limit', String(SLIDE_PAGE_SIZE));
    this.count.textContent = 'Loading slides…';
    this.list.setAttribute('aria-busy', 'true');
    try {
      const reply = await (pending ?? this.api.get<SlideListReply>(`/v1/slides?${parameters}`, loading.signal));
      this.slides = cursor === null ? reply.slides : [...this.slides, ...reply.slides];
      this.total = reply.total;
      this.nextCursor = reply.nextCursor;
      // The caller may open a slide from it first: the viewer's tiles matter more than the cards.
      this.onLoaded(reply);
      this.render(text);
    } catch (error) {
      if ((error as Error).name === 'AbortError') return;
      this.count.textContent = '';
      replaceChildren(this.list, h('li', { class: 'message error', role: 'alert', 'data-testid': 'slide-list-error' }, describeError(error)));
    } finally {
      if (this.loading === loading) {
        this.loading = null;
        this.list.removeAttribute('aria-busy');
      }
    }
  }

  private render(text: string): void {
    const filtered = text !== '' || [...this.parameters.keys()].length > 0;
    this.count.textContent = `${this.slides.length} of ${this.total} slide${this.total === 1 ? '' : 's'}${filtered ? ' match' : ''}`;
    if (this.slides.length === 0) {
      replaceChildren(this.list, h('li', { class: 'message', 'data-testid': 'slide-list-empty' }, filtered ? 'No slide matches this search and these filters.' : 'The index holds no slides yet: index some with `tessera index`.'));
      return;
    }
    replaceChildren(
      this.list,
      this.slides.map((slide) => h('li', {}, this.card(slide))),
      this.nextCursor ? h('li', {}, h('button', { type: 'button', class: 'secondary more', onclick: () => void this.fetchPage(this.nextCursor) }, `Show more (${Math.max(0, this.total - this.slides.length)} left)`)) : null,
    );
  }

  private card(slide: SlideSummary): HTMLButtonElement {
    const img = h('img', { alt: '', width: 64, height: 64, loading: 'lazy', decoding: 'async' });
    void this.imagesAllowed.then(() => showImage(this.api, img, slide.thumbnailUrl));
    const { diagnosis, organ, stain, dataset } = slide.metadata;
    return h(
      'button',
      {
        type: 'button',
        class: 'slide-card',
        'data-testid': 'slide-card',
        'data-slide-id': slide.slideId,
        'aria-current': slide.slideId === this.currentId ? 'true' : null,
        onclick: () => this.onOpen(slide),
      },
      img,
      h(
        'span',
        { class: 'slide-card-text' },
        h('span', { class: 'slide-id' }, slide.slideId),
        diagnosis ? h('span', { class: 'diagnosis' }, diagnosis) : null,
        h('span', { class: 'muted' }, [organ, stain, dataset].filter(Boolean).join(' · ') || `${slide.tiles} tiles`),
      ),
    );
  }
}

