/**
 * Tessera's web viewer: wires the parts (slide list, filters, viewer, region selection, results,
 * cohort, key entry) and owns the little state they share: the current query, the filters, and
 * the way back from an opened result to its query. Each part lives in its own module.
 */
// First, so that the first requests leave before the rest of the viewer is evaluated.
import { api, firstPage, linked, linkedSlide } from './first-requests.js';
import './styles.css';
import { ApiRequestError, describeError } from './api-client.js';
import { Cohort, CohortPanel, type CohortQuery } from './cohort.js';
import { CaseList, caseSlide } from './case-list.js';
import { byId, groupDigits } from './dom.js';
import { FilterBar } from './filters.js';
import { ImageQuery } from './image-query.js';
import { KeyEntry } from './key-entry.js';
import { RegionSelection } from './region-selection.js';
import { ResultsGallery, describeFilter, type GalleryState } from './results-gallery.js';
import { SlideList } from './slide-list.js';
import { SlideViewer, type OpenTarget, type ViewState } from './slide-viewer.js';
import { Tabs } from './tabs.js';
import type { BaseRect, CaseSummary, CohortReply, Feedback, Hit, IndexReply, RegionSearchReply, SearchQuery, SlideList as SlideListReply, SlideSearchReply, SlideSummary } from './types.js';

/** Regions per region search, slides per slide search, slides per cohort by example. */
const REGION_RESULTS = 24;
const SLIDE_RESULTS = 12;
const COHORT_SLIDES = 100;

/** Where "Back to query" returns to. */
interface Return {
  view: ViewState | null;
  gallery: GalleryState;
  query: SearchQuery | null;
}

class App {
  private readonly api = api;
  private readonly filters = new FilterBar(byId('filters'));
  private readonly slideList = new SlideList(this.api, byId<HTMLUListElement>('slide-list'), byId('slide-count'), byId<HTMLInputElement>('slide-query'));
  private readonly caseList = new CaseList(this.api, byId<HTMLDetailsElement>('cases'), byId<HTMLUListElement>('case-list'));
  private readonly viewer: SlideViewer;
  private readonly selection: RegionSelection;
  private readonly gallery: ResultsGallery;
  private readonly cohort: Cohort;
  private readonly cohortPanel: CohortPanel;
  private readonly keyEntry: KeyEntry;
  private readonly tabs: Tabs;
  private readonly backButton = byId<HTMLButtonElement>('back-button');
  private readonly selectButton = byId<HTMLButtonElement>('select-button');
  private readonly slideActions = [this.selectButton, byId<HTMLButtonElement>('slide-search-button'), byId<HTMLButtonElement>('cohort-from-slide')];
  private query: SearchQuery | null = null;
  private searching: AbortController | null = null;
  private readonly returns: Return[] = [];
  /** Open the first listed slide once the list arrives (no slide was linked). */
  private openFirst: boolean;
  private readonly firstTileShown: Promise<void>;

  constructor() {
    this.openFirst = !linked;
    this.slideList.onLoaded = (reply) => this.listLoaded(reply);
    void this.slideList.load(this.filters.queryParameters, firstPage);
    // What the first tile does not need waits for it (or 1.5 s): thumbnails, the session, the counts.
    this.firstTileShown = firstTile(1500);
    this.slideList.holdImagesUntil(this.firstTileShown);
    this.viewer = new SlideViewer(byId('viewer'), this.api, byId('slide-info'), byId('viewer-message'));
    this.selection = new RegionSelection(this.viewer);
    if (linked && linkedSlide) void this.openLinked(linked.slideId, linkedSlide, linked.region);
    this.gallery = new ResultsGallery(this.api, byId('results-view'));
    this.cohort = new Cohort();
    this.cohortPanel = new CohortPanel(this.api, this.cohort, byId('cohort-view'));
    this.keyEntry = new KeyEntry(this.api, byId<HTMLDialogElement>('key-dialog'), byId<HTMLButtonElement>('key-button'));
    this.tabs = new Tabs([byId<HTMLButtonElement>('tab-results'), byId<HTMLButtonElement>('tab-cohort')]);

    this.api.onUnauthorized = () => this.keyEntry.open(this.api.hasKey ? 'The API key was refused: enter another one.' : 'This server requires an API key.');
    this.keyEntry.onKeyChanged = () => {
      this.viewer.refreshAuth();
      void this.reloadAll();
    };
    this.filters.onChange = () => {
      void this.slideList.load(this.filters.queryParameters);
      // Filters apply live: the current search runs again with them.
      if (this.query) void this.search(this.query);
    };
    this.slideList.onOpen = (slide) => void this.openSlide(slide);
    this.caseList.onOpen = (path) => void this.openCase(path);
    this.selection.onToggle = (active) => this.selectButton.setAttribute('aria-pressed', String(active));
    this.selection.onRegion = (rect) => this.searchRegion(rect);
    this.gallery.onOpenHit = (hit) => void this.openHit(hit);
    this.gallery.onOpenSlide = (slideId) => void this.openResultSlide(slideId);
    this.gallery.onAddToCohort = (slide) => this.cohort.add(slide);
    this.gallery.inCohort = (slideId) => this.cohort.has(slideId);
    this.gallery.onMark = (hit, mark) => this.refine(hit, mark);
    this.gallery.onClearMarks = () => {
      if (this.query) void this.search({ ...this.query, feedback: { positives: [], negatives: [] } });
    };
    this.cohort.onChange = () => {
      this.cohortPanel.render();
      this.gallery.refreshCohortButtons();
      byId('cohort-count').textContent = String(this.cohort.entries.length);
    };
    this.cohortPanel.onOpenSlide = (slideId) => void this.openResultSlide(slideId);
    byId('cohort-count').textContent = String(this.cohort.entries.length);

    const images = new ImageQuery(byId<HTMLButtonElement>('upload-button'), byId<HTMLInputElement>('upload-input'), byId('drop-zone'));
    images.onImage = ({ image, name }) => void this.search({ kind: 'image', image, name });
    images.onRefused = (reason) => this.gallery.render({ kind: 'error', query: null, message: reason });

    this.selectButton.addEventListener('click', () => this.selection.toggle());
    byId('slide-search-button').addEventListener('click', () => {
      const slide = this.viewer.slide;
      if (slide) void this.search(slide.newCase ? { kind: 'case-slide', path: slide.slideId } : { kind: 'slide', slideId: slide.slideId });
    });
    byId('cohort-from-slide').addEventListener('click', () => void this.cohortFromSlide());
    this.backButton.addEventListener('click', () => void this.back());
    document.addEventListener('keydown', (event) => this.shortcut(event));
    this.setSlideActions(false);
  }

  start(): void {
    // A server that wants a key refuses the slide list at once, which opens the key dialog already.
    void this.firstTileShown.then(() => {
      void this.keyEntry.check();
      void this.describeIndex();
    });
  }

  /** The index in the top bar (slides, tiles, model) and its tile size for one-tile selections. */
  private async describeIndex(): Promise<void> {
    try {
      const { index, totals } = await this.api.get<IndexReply>('/v1/index');
      this.viewer.tileUm = index.tile.mpp * index.tile.sizePx;
      byId('index-summary').textContent = `${groupDigits(totals.slides)} slides · ${groupDigits(totals.tiles)} tiles · ${index.model.id}`;
    } catch {
      // Without it the defaults hold; a refused key is already being asked for.
    }
  }

  /** After the key changed: everything again, with the new key (the first slide opens if none was). */
  private async reloadAll(): Promise<void> {
    void this.describeIndex();
    const state = this.viewer.viewState();
    await this.slideList.load(this.filters.queryParameters);
    if (state) await this.openSlide(state.slide, { view: state.view });
    if (this.query) await this.search(this.query);
  }

  private listLoaded(reply: SlideListReply): void {
    const first = reply.slides[0];
    if (this.openFirst && first && !this.viewer.slide) void this.openSlide(first);
    this.openFirst = false;
    this.filters.addFacets(reply.facets);
  }

  /** Opens a slide in the viewer (and frames a region or restores a view). */
  private async openSlide(slide: SlideSummary, target: OpenTarget = {}): Promise<void> {
    this.selection.cancel();
    this.slideList.setCurrent(slide.newCase ? null : slide.slideId);
    this.setSlideActions(true, slide.newCase === true);
    const region = target.region;
    // A new case has no link of its own: the address names indexed slides only.
    history.replaceState(null, '', slide.newCase ? location.pathname : `#slide=${encodeURIComponent(slide.slideId)}${region ? `&region=${region.x},${region.y},${region.width},${region.height}` : ''}`);
    try {
      await this.viewer.open(slide, target);
      const query = this.query;
      const queryOnSlide = (query?.kind === 'region' && !slide.newCase && query.slideId === slide.slideId) || (query?.kind === 'case-region' && slide.newCase && query.path === slide.slideId);
      if (!region && queryOnSlide) this.viewer.outline(query.rect, 'query');
    } catch (error) {
      this.viewer.setMessage(`${slide.slideId} could not be shown: ${describeError(error)}`, 'error');
    }
  }

  /** Opens a new case (a slide file not indexed) from the case list. */
  private async openCase(path: string): Promise<void> {
    try {
      await this.openSlide(caseSlide(await this.api.get<CaseSummary>(`/v1/cases/${encodeURIComponent(path)}`)));
    } catch (error) {
      this.viewer.setMessage(`${path} could not be opened: ${describeError(error)}`, 'error');
    }
  }

  private async openSlideById(slideId: string, target: OpenTarget = {}): Promise<void> {
    try {
      await this.openSlide(this.slideList.find(slideId) ?? (await this.slideRecord(slideId)), target);
    } catch (error) {
      this.viewer.setMessage(`Slide ${slideId} could not be opened: ${describeError(error)}`, 'error');
    }
  }

  private slideRecord(slideId: string): Promise<SlideSummary> {
    return this.api.get<SlideSummary>(`/v1/slides/${encodeURIComponent(slideId)}`);
  }

  /** A slide named in the page's address (#slide=ID&region=…), its record already requested. */
  private async openLinked(slideId: string, record: Promise<SlideSummary>, region: BaseRect | undefined): Promise<void> {
    try {
      await this.openSlide(await record, region ? { region, outline: 'match' } : {});
    } catch (error) {
      this.viewer.setMessage(`Slide ${slideId} could not be opened: ${describeError(error)}`, 'error');
    }
  }

  private searchRegion(rect: BaseRect): void {
    const slide = this.viewer.slide;
    if (!slide) return;
    this.viewer.outline(rect, 'query');
    void this.search(slide.newCase ? { kind: 'case-region', path: slide.slideId, rect, mpp: this.viewer.mpp } : { kind: 'region', slideId: slide.slideId, rect, mpp: this.viewer.mpp });
  }

  /** Runs a search with the current filters and shows its results (a newer search wins). */
  private async search(query: SearchQuery): Promise<void> {
    this.searching?.abort();
    const searching = new AbortController();
    this.searching = searching;
    this.query = query;
    if (query.kind !== 'region' && query.kind !== 'case-region') this.viewer.removeOutline('query');
    const filter = this.filters.filter;
    const options = { ...(Object.keys(filter).length ? { filter } : {}), ...feedbackBody(query.feedback) };
    this.tabs.select('tab-results');
    this.gallery.render({ kind: 'loading', query });
    try {
      if (query.kind === 'slide' || query.kind === 'case-slide') {
        // A new case's mosaic is computed by the server now (reply.query.ms says how long).
        const subject = query.kind === 'slide' ? { slideId: query.slideId } : /^https?:\/\//.test(query.path) ? { dicomwebSeries: query.path } : { slidePath: query.path };
        const reply = await this.api.post<SlideSearchReply>('/v1/search/slide', { ...subject, k: SLIDE_RESULTS, ...options }, searching.signal);
        if (this.searching === searching) this.gallery.render({ kind: 'slides', query, filter, reply });
      } else if (query.kind === 'case-region') {
        const reply = await this.api.post<RegionSearchReply>('/v1/cases/search/region', { slidePath: query.path, ...query.rect, k: REGION_RESULTS, ...options }, searching.signal);
        if (this.searching === searching) this.gallery.render({ kind: 'regions', query, filter, reply });
      } else {
        const body = query.kind === 'region' ? { slideId: query.slideId, ...query.rect } : { image: query.image };
        const post = (extra: { regions?: true }) => this.api.post<RegionSearchReply>('/v1/search/region', { ...body, ...extra, k: REGION_RESULTS, ...options }, searching.signal);
        const whole = query.kind === 'region' && this.severalTiles(query.rect, query.mpp);
        let reply: RegionSearchReply;
        try {
          reply = await post(whole ? { regions: true } : {});
        } catch (error) {
          // A box over glass holds no indexed tile: it is searched as one image instead.
          if (!whole || !(error instanceof ApiRequestError) || error.code !== 'INVALID_ARGUMENT') throw error;
          reply = await post({});
        }
        if (this.searching === searching) this.gallery.render({ kind: 'regions', query, filter, reply });
      }
    } catch (error) {
      if ((error as Error).name === 'AbortError') return;
      if (this.searching === searching) this.gallery.render({ kind: 'error', query, message: describeError(error) });
    } finally {
      if (this.searching === searching) this.searching = null;
    }
  }

  /** Whether a drawn box holds several index tiles: it is then searched as a whole region. */
  private severalTiles(rect: BaseRect, mpp: number | null): boolean {
    const side = mpp ? this.viewer.tileUm / mpp : 224;
    return rect.width * rect.height >= 2 * side * side;
  }

  /** Runs the current search again with a result marked "more like this" or "not like this". */
  private refine(hit: Hit, mark: 'more' | 'less'): void {
    if (!this.query) return;
    const tile = { slideId: hit.slideId, x: hit.x, y: hit.y, width: hit.width, height: hit.height };
    const same = (other: typeof tile) => other.slideId === tile.slideId && other.x === tile.x && other.y === tile.y && other.width === tile.width && other.height === tile.height;
    const previous = this.query.feedback ?? { positives: [], negatives: [] };
    // A result marked again the other way changes sides; the API takes 16 of each.
    const positives = previous.positives.filter((other) => !same(other));
    const negatives = previous.negatives.filter((other) => !same(other));
    (mark === 'more' ? positives : negatives).push(tile);
    void this.search({ ...this.query, feedback: { positives: positives.slice(-16), negatives: negatives.slice(-16) } });
  }

  /** Opens a result's slide at the matching region, remembering the way back. */
  private async openHit(hit: Hit): Promise<void> {
    this.remember();
    await this.openSlideById(hit.slideId, { region: hit, outline: 'match' });
    this.viewer.focus();
  }

  private async openResultSlide(slideId: string): Promise<void> {
    this.remember();
    await this.openSlideById(slideId);
  }

  private remember(): void {
    this.returns.push({ view: this.viewer.viewState(), gallery: this.gallery.current, query: this.query });
    this.backButton.hidden = false;
  }

  /** Back to the query: its slide and view, its outline and its results. */
  private async back(): Promise<void> {
    const entry = this.returns.pop();
    this.backButton.hidden = this.returns.length === 0;
    if (!entry) return;
    this.query = entry.query;
    const stale = 'filter' in entry.gallery && JSON.stringify(entry.gallery.filter) !== JSON.stringify(this.filters.filter);
    if (stale && entry.query) void this.search(entry.query);
    else this.gallery.render(entry.gallery);
    this.tabs.select('tab-results');
    // openSlide outlines the query region when it lies on that slide.
    if (entry.view) await this.openSlide(entry.view.slide, { view: entry.view.view });
    (this.returns.length ? this.backButton : this.selectButton).focus({ preventScroll: true });
  }

  private async cohortFromSlide(): Promise<void> {
    const slide = this.viewer.slide;
    if (!slide || slide.newCase) return;
    const filter = this.filters.filter;
    const query: CohortQuery = { slideId: slide.slideId, k: COHORT_SLIDES, includeQuery: true, ...(Object.keys(filter).length ? { filter } : {}) };
    this.tabs.select('tab-cohort');
    this.cohortPanel.say(`Building a cohort of slides like ${slide.slideId}…`);
    try {
      const reply = await this.api.post<CohortReply>('/v1/cohorts', query);
      const added = this.cohort.addBuilt(query, reply);
      this.cohortPanel.say(reply.slides.length === 0 ? `No slides like ${slide.slideId}${describeFilter(filter) ? ` with ${describeFilter(filter)}` : ''}.` : `Added ${added} slide${added === 1 ? '' : 's'} like ${slide.slideId}.`);
    } catch (error) {
      this.cohortPanel.say(`The cohort could not be built: ${describeError(error)}`, 'error');
    }
  }

  /** Enables the actions on the open slide; a new case has no cohort (cohorts start from indexed slides). */
  private setSlideActions(enabled: boolean, newCase = false): void {
    for (const button of this.slideActions) button.disabled = !enabled;
    byId<HTMLButtonElement>('cohort-from-slide').disabled = !enabled || newCase;
  }

  /** R: select a region; Esc: cancel it; B: back to the query. Not while typing or in a dialog. */
  private shortcut(event: KeyboardEvent): void {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target as HTMLElement | null;
    if (target?.closest('input, select, textarea, dialog')) return;
    if (event.key === 'Escape' && this.selection.active) {
      this.selection.cancel();
      this.selectButton.focus({ preventScroll: true });
    } else if (event.key === 'r' || event.key === 'R') {
      event.preventDefault();
      this.selection.toggle();
    } else if ((event.key === 'b' || event.key === 'B') && this.returns.length) {
      event.preventDefault();
      void this.back();
    }
  }
}

/** The refine-by-example fields of a search body: none without marks. */
function feedbackBody(feedback: Feedback | undefined): Partial<Feedback> {
  if (!feedback) return {};
  return { ...(feedback.positives.length ? { positives: feedback.positives } : {}), ...(feedback.negatives.length ? { negatives: feedback.negatives } : {}) };
}

/** Settles when the viewer drew its first tile, or after `ms` (no slide, a slow server). */
function firstTile(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    new PerformanceObserver((list, observer) => {
      if (list.getEntriesByName('tessera:first-tile').length) {
        observer.disconnect();
        window.clearTimeout(timer);
        resolve();
      }
    }).observe({ entryTypes: ['mark'] });
  });
}

new App().start();
