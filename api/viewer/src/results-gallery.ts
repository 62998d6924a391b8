/**
 * The results panel: what was asked, then either a gallery of similar regions (thumbnail, slide,
 * diagnosis, metadata, score) or ranked slides with their matching regions as evidence; or a clear
 * message while searching, on an error and for no results. Opening a result and adding its slide
 * to the cohort are reported to the caller.
 */
import { showImage, type ApiClient } from './api-client.js';
import { groupDigits, h, replaceChildren } from './dom.js';
import type { CohortSlide, Filter, Hit, RegionMatch, RegionSearchReply, SearchQuery, SlideMatch, SlideSearchReply } from './types.js';

/** How a result was marked for refine by example. */
export type Mark = 'more' | 'less';

/** What the results panel shows; the filter is the one the search ran with. */
export type GalleryState =
  | { kind: 'idle' }
  | { kind: 'loading'; query: SearchQuery }
  | { kind: 'error'; query: SearchQuery | null; message: string }
  | { kind: 'regions'; query: SearchQuery; filter: Filter; reply: RegionSearchReply }
  | { kind: 'slides'; query: SearchQuery; filter: Filter; reply: SlideSearchReply };

/** A score as people read it: cosine similarity with three decimals. */
export function formatScore(score: number): string {
  return score.toFixed(3);
}

/** Level-0 region of a slide as an image URL of the API (the same form the API gives hits). */
export function regionImageUrl(slideId: string, rect: { x: number; y: number; width: number; height: number }, size = 224): string {
  return `/v1/slides/${encodeURIComponent(slideId)}/region?x=${rect.x}&y=${rect.y}&width=${rect.width}&height=${rect.height}&size=${size}`;
}

/** The results panel. */
export class ResultsGallery {
  private state: GalleryState = { kind: 'idle' };
  /** Called when the user opens a matching region. */
  onOpenHit: (hit: Hit) => void = () => {};
  /** Called when the user opens a matching slide (no region). */
  onOpenSlide: (slideId: string) => void = () => {};
  /** Called when the user adds a slide to the cohort. */
  onAddToCohort: (slide: CohortSlide) => void = () => {};
  /** Whether a slide is in the cohort already (its button then says so). */
  inCohort: (slideId: string) => boolean = () => false;
  /** Called when the user marks a result "more like this" or "not like this" (the search runs again refined). */
  onMark: (hit: Hit, mark: Mark) => void = () => {};
  /** Called when the user drops the refinement of the current query. */
  onClearMarks: () => void = () => {};

  constructor(
    private readonly api: ApiClient,
    private readonly container: HTMLElement,
  ) {
    this.render({ kind: 'idle' });
  }

  get current(): GalleryState {
    return this.state;
  }

  render(state: GalleryState): void {
    this.state = state;
    this.container.setAttribute('aria-busy', String(state.kind === 'loading'));
    this.container.dataset.state = state.kind;
    switch (state.kind) {
      case 'idle':
        replaceChildren(
          this.container,
          h(
            'div',
            { class: 'message intro', 'data-testid': 'results-idle' },
            h('p', {}, 'Find regions that look alike:'),
            h('ul', {}, h('li', {}, 'press ', h('kbd', {}, 'R'), ' (Select region) and drag a box on the slide,'), h('li', {}, 'drop an image anywhere, or use Search by image,'), h('li', {}, 'or ask for Cases like this slide.')),
          ),
        );
        return;
      case 'loading':
        replaceChildren(this.container, this.queryHeader(state.query), h('p', { class: 'message', role: 'status', 'data-testid': 'results-loading' }, 'Searching…'));
        return;
      case 'error':
        replaceChildren(this.container, state.query ? this.queryHeader(state.query) : null, h('p', { class: 'message error', role: 'alert', 'data-testid': 'results-error' }, state.message));
        return;
      case 'regions':
        replaceChildren(
          this.container,
          this.queryHeader(state.query),
          this.summary(state.reply.results.length, 'region', state.reply.tookMs, state.reply.coverage, state.filter),
          state.reply.regions?.length ? this.places(state.reply.regions, Array.isArray(state.reply.query.tiles) ? state.reply.query.tiles.length : 0) : null,
          this.regions(state.reply.results, state.filter),
        );
        break;
      case 'slides':
        replaceChildren(this.container, this.queryHeader(state.query), this.summary(state.reply.results.length, 'slide', state.reply.tookMs, state.reply.coverage, state.filter), mosaicTime(state.reply.query), this.slides(state.reply.results, state.filter));
        break;
    }
    performance.mark('tessera:results-shown');
  }

  /** Re-renders after the cohort changed (the add buttons' labels). */
  refreshCohortButtons(): void {
    for (const button of this.container.querySelectorAll<HTMLButtonElement>('button.add-to-cohort')) setAdded(button, this.inCohort(button.dataset.slideId ?? ''));
  }

  private queryHeader(query: SearchQuery): HTMLElement {
    const img = h('img', { alt: '', width: 56, height: 56, class: 'query-thumb' });
    let text: string;
    if (query.kind === 'region') {
      showImage(this.api, img, regionImageUrl(query.slideId, query.rect, 112));
      const size = query.mpp ? `${Math.round(query.rect.width * query.mpp)}×${Math.round(query.rect.height * query.mpp)} µm (${query.rect.width}×${query.rect.height} px)` : `${query.rect.width}×${query.rect.height} px`;
      text = `Regions like ${size} of ${query.slideId}`;
    } else if (query.kind === 'image') {
      if (query.image.startsWith('data:image/png') || query.image.startsWith('data:image/jpeg')) img.src = query.image;
      else img.hidden = true;
      text = `Regions like ${query.name}`;
    } else if (query.kind === 'case-region') {
      showImage(this.api, img, `/v1/cases/${encodeURIComponent(query.path)}/thumbnail?size=112`);
      const size = query.mpp ? `${Math.round(query.rect.width * query.mpp)}×${Math.round(query.rect.height * query.mpp)} µm (${query.rect.width}×${query.rect.height} px)` : `${query.rect.width}×${query.rect.height} px`;
      text = `Regions like ${size} of new case ${query.path}`;
    } else if (query.kind === 'case-slide') {
      showImage(this.api, img, `/v1/cases/${encodeURIComponent(query.path)}/thumbnail?size=112`);
      text = `Cases like new case ${query.path}`;
    } else {
      img.hidden = true;
      text = `Cases like ${query.slideId}`;
    }
    const feedback = query.feedback;
    const refined = feedback && feedback.positives.length + feedback.negatives.length > 0;
    return h(
      'div',
      { class: 'query-header', 'data-testid': 'query-header' },
      img,
      h('span', {}, text),
      refined
        ? h(
            'span',
            { class: 'refined muted', 'data-testid': 'refined-by' },
            `refined: ${feedback.positives.length} more like, ${feedback.negatives.length} not like `,
            h('button', { type: 'button', class: 'secondary', 'data-testid': 'clear-refinement', onclick: () => this.onClearMarks() }, 'Clear'),
          )
        : null,
    );
  }

  private summary(count: number, noun: string, tookMs: number, coverage: { answered: number; total: number }, filter: Filter): HTMLElement {
    const filters = describeFilter(filter);
    return h(
      'div',
      { class: 'results-summary' },
      h('span', { 'data-testid': 'results-count' }, `${count} ${noun}${count === 1 ? '' : 's'} · ${Math.round(tookMs)} ms`),
      filters ? h('span', { class: 'muted' }, ` · ${filters}`) : null,
      coverage.answered < coverage.total ? h('p', { class: 'message warning', role: 'status' }, `Partial results: ${coverage.answered} of ${coverage.total} shards answered in time.`) : null,
    );
  }

  private empty(filter: Filter, noun: string): HTMLElement {
    const filters = describeFilter(filter);
    return h(
      'p',
      { class: 'message', 'data-testid': 'results-empty' },
      `No similar ${noun} found${filters ? ` with ${filters}: try clearing the filters` : ' in other slides of this index'}.`,
    );
  }

  private regions(hits: Hit[], filter: Filter): HTMLElement {
    if (hits.length === 0) return this.empty(filter, 'regions');
    return h('ol', { class: 'hit-grid', 'data-testid': 'results-gallery', 'aria-label': 'Similar regions, most similar first' }, hits.map((hit, rank) => h('li', {}, this.hitCard(hit, rank))));
  }

  /** Whole-region matches: where several tiles of the query box land together, with those tiles. */
  private places(matches: RegionMatch[], queryTiles: number): HTMLElement {
    return h(
      'section',
      { class: 'places', 'aria-label': 'Matching places' },
      h('h3', {}, `Places where the query's ${queryTiles} tiles land together`),
      h(
        'ol',
        { class: 'slide-matches', 'data-testid': 'region-matches' },
        matches.slice(0, 6).map((match, rank) =>
          h(
            'li',
            { class: 'slide-match', 'data-testid': 'region-match', 'data-slide-id': match.slideId },
            h(
              'button',
              {
                type: 'button',
                class: 'slide-match-open',
                'data-testid': 'region-match-open',
                'aria-label': `Place ${rank + 1}: open ${match.slideId} at the matching region (score ${formatScore(match.score)})`,
                onclick: () => this.onOpenHit({ ...match, mpp: match.evidence[0]?.mpp ?? 0, imageUrl: regionImageUrl(match.slideId, match), slideUrl: match.slideUrl }),
              },
              (() => {
                const img = h('img', { alt: '', width: 96, height: 96, decoding: 'async' });
                showImage(this.api, img, regionImageUrl(match.slideId, match, 192));
                return img;
              })(),
              h(
                'span',
                { class: 'slide-card-text' },
                h('span', { class: 'score' }, formatScore(match.score)),
                h('span', { class: 'slide-id' }, match.slideId),
                h('span', { class: 'diagnosis' }, match.metadata.diagnosis ?? 'no diagnosis'),
                h('span', { class: 'muted', 'data-testid': 'region-match-count' }, `${match.matchedQueries} of ${queryTiles} query tiles`),
              ),
            ),
            h(
              'ul',
              { class: 'evidence', 'aria-label': `Matching tiles in ${match.slideId}` },
              match.evidence.slice(0, 8).map((hit) => {
                const img = h('img', { alt: '', width: 64, height: 64, decoding: 'async' });
                showImage(this.api, img, hit.imageUrl);
                return h('li', {}, h('button', { type: 'button', class: 'evidence-open', title: `query tile ${hit.queryTile + 1}, score ${formatScore(hit.score)}`, 'aria-label': `Open matching tile (score ${formatScore(hit.score)})`, onclick: () => this.onOpenHit(hit) }, img));
              }),
            ),
          ),
        ),
      ),
    );
  }

  private hitCard(hit: Hit, rank: number): HTMLElement {
    const img = h('img', { alt: '', width: 224, height: 224, decoding: 'async' });
    showImage(this.api, img, hit.imageUrl);
    const { diagnosis, organ, stain, dataset, species, label } = hit.metadata;
    return h(
      'article',
      { class: 'hit-card', 'data-testid': 'result-card', 'data-slide-id': hit.slideId },
      h(
        'button',
        {
          type: 'button',
          class: 'hit-open',
          'data-testid': 'result-open',
          'aria-label': `Result ${rank + 1}: open ${hit.slideId} at this region (score ${formatScore(hit.score)})`,
          onclick: () => this.onOpenHit(hit),
        },
        img,
        h('span', { class: 'score', 'data-testid': 'result-score' }, formatScore(hit.score)),
        h('span', { class: 'slide-id' }, hit.slideId),
        h('span', { class: 'diagnosis', 'data-testid': 'result-diagnosis' }, diagnosis ?? 'no diagnosis'),
        h('span', { class: 'muted' }, [label, organ, stain, species, dataset].filter(Boolean).join(' · ')),
      ),
      h(
        'div',
        { class: 'hit-marks' },
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'more-like-this', title: 'More like this', 'aria-label': `More like result ${rank + 1}`, onclick: () => this.onMark(hit, 'more') }, '+ More like'),
        h('button', { type: 'button', class: 'secondary', 'data-testid': 'not-like-this', title: 'Not like this', 'aria-label': `Less like result ${rank + 1}`, onclick: () => this.onMark(hit, 'less') }, '− Not like'),
      ),
      this.addButton({ slideId: hit.slideId, score: hit.score, metadata: hit.metadata }),
    );
  }

  private slides(matches: SlideMatch[], filter: Filter): HTMLElement {
    if (matches.length === 0) return this.empty(filter, 'slides');
    return h(
      'ol',
      { class: 'slide-matches', 'data-testid': 'slide-results', 'aria-label': 'Similar slides, most similar first' },
      matches.map((match, rank) => {
        const thumb = h('img', { alt: '', width: 96, height: 96, decoding: 'async' });
        showImage(this.api, thumb, match.thumbnailUrl);
        const { diagnosis, organ, stain, dataset } = match.metadata;
        return h(
          'li',
          { class: 'slide-match', 'data-testid': 'slide-result', 'data-slide-id': match.slideId },
          h(
            'button',
            { type: 'button', class: 'slide-match-open', 'aria-label': `Slide ${rank + 1}: open ${match.slideId} (score ${formatScore(match.score)})`, onclick: () => this.onOpenSlide(match.slideId) },
            thumb,
            h(
              'span',
              { class: 'slide-card-text' },
              h('span', { class: 'score' }, formatScore(match.score)),
              h('span', { class: 'slide-id' }, match.slideId),
              h('span', { class: 'diagnosis' }, diagnosis ?? 'no diagnosis'),
              h('span', { class: 'muted' }, [organ, stain, dataset].filter(Boolean).join(' · ')),
              h('span', { class: 'muted' }, `${match.matchedQueries} matching region${match.matchedQueries === 1 ? '' : 's'}`),
            ),
          ),
          this.addButton({ slideId: match.slideId, score: match.score, metadata: match.metadata }),
          match.evidence.length
            ? h(
                'ul',
                { class: 'evidence', 'aria-label': `Matching regions in ${match.slideId}` },
                match.evidence.slice(0, 8).map((hit) => {
                  const img = h('img', { alt: '', width: 64, height: 64, decoding: 'async' });
                  showImage(this.api, img, hit.imageUrl);
                  return h('li', {}, h('button', { type: 'button', class: 'evidence-open', 'data-testid': 'evidence-open', title: `score ${formatScore(hit.score)}`, 'aria-label': `Open matching region (score ${formatScore(hit.score)})`, onclick: () => this.onOpenHit(hit) }, img));
                }),
              )
            : null,
        );
      }),
    );
  }

  private addButton(slide: CohortSlide): HTMLButtonElement {
    const button = h('button', { type: 'button', class: 'add-to-cohort secondary', 'data-testid': 'add-to-cohort', 'data-slide-id': slide.slideId }, '');
    button.addEventListener('click', () => {
      this.onAddToCohort(slide);
      this.refreshCohortButtons();
    });
    setAdded(button, this.inCohort(slide.slideId));
    return button;
  }
}

function setAdded(button: HTMLButtonElement, added: boolean): void {
  button.textContent = added ? '✓ In cohort' : '+ Cohort';
  button.disabled = added;
  button.setAttribute('aria-label', added ? `${button.dataset.slideId} is in the cohort` : `Add ${button.dataset.slideId} to the cohort`);
}

/** "organ = skin, stain = H&E", or '' without conditions. */
export function describeFilter(filter: Filter): string {
  return Object.entries(filter)
    .map(([field, condition]) => `${field} = ${typeof condition === 'string' ? condition : JSON.stringify(condition)}`)
    .join(', ');
}

/** How the server computed a new case's mosaic (POST /v1/search/slide with slidePath: query.ms, tile counts); nothing for an indexed slide. */
function mosaicTime(query: Record<string, unknown>): HTMLElement | null {
  const ms = query.ms as { total?: unknown } | undefined;
  if (!query.newCase || typeof ms?.total !== 'number') return null;
  return h('p', { class: 'muted', 'data-testid': 'mosaic-time' }, `New case: its mosaic of ${String(query.mosaicTiles)} tiles (from ${String(query.embeddedTiles)} embedded of ${String(query.tissueTiles)} tissue tiles) was computed in ${groupDigits(ms.total)} ms`);
}
