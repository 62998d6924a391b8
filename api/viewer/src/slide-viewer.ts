/**
 * The slide viewer: OpenSeadragon on the API's Deep Zoom tiles (with the API key as a header when
 * one is set), a scale bar from the slide's mpp, outlines of the query region and of a matching
 * region, and conversions between screen and level-0 pixels. It searches nothing.
 */
import OpenSeadragon from 'openseadragon';
import type { ApiClient } from './api-client.js';
import { groupDigits, h, replaceChildren } from './dom.js';
import { Minimap } from './minimap.js';
import { ScaleBar } from './scale-bar.js';
import type { BaseRect, SlideSummary } from './types.js';

/** What "go back" needs to put the viewer where it was. */
export interface ViewState {
  slide: SlideSummary;
  /** The visible part of the slide, level-0 pixels. */
  view: BaseRect;
}

/** The query region (dashed) or a matching region (solid). */
export type OutlineKind = 'query' | 'match';

/** Where to look once a slide is open: a region to frame and outline, or a view to restore. */
export interface OpenTarget {
  region?: BaseRect;
  outline?: OutlineKind;
  view?: BaseRect;
}

/** A matching region is framed with this much of its surroundings (side multiple). */
const REGION_CONTEXT = 4;

/** One OpenSeadragon viewer, reused for every slide. */
export class SlideViewer {
  readonly viewer: OpenSeadragon.Viewer;
  private current: SlideSummary | null = null;
  private opening = 0;
  /** Set when the key changed: the open slide's tiles must be fetched again with the new one. */
  private stale = false;
  /** The slide whose first drawn tile is still to be marked (`tessera:first-tile`), if any. */
  private unmarked: string | null = null;
  private readonly scaleBar = new ScaleBar();
  private readonly minimap: Minimap;
  private readonly outlines = new Map<OutlineKind, HTMLElement>();
  /** Side of the index's tiles, µm (GET /v1/index; default 224 px at 0.5 µm/px). */
  tileUm = 112;

  constructor(
    readonly element: HTMLElement,
    private readonly api: ApiClient,
    private readonly info: HTMLElement,
    private readonly message: HTMLElement,
  ) {
    this.viewer = new OpenSeadragon.Viewer({
      element,
      prefixUrl: '/osd-images/',
      // The 2D canvas draws the same everywhere, GPU or not, and raises tile-drawn.
      drawer: 'canvas',
      // The overview is our Minimap (see there why).
      showNavigator: false,
      // Zoom buttons are ours (real <button>s, no 16 button images to load before the first tile).
      showNavigationControl: false,
      immediateRender: true,
      blendTime: 0,
      animationTime: 0.4,
      visibilityRatio: 0.5,
      minZoomImageRatio: 0.8,
      maxZoomPixelRatio: 2,
      timeout: 30_000,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true },
      loadTilesWithAjax: api.hasKey,
      ajaxHeaders: api.authHeaders(),
    });
    this.minimap = new Minimap(api);
    this.minimap.onPick = (point) => this.viewer.viewport.panTo(this.viewer.viewport.imageToViewportCoordinates(point.x, point.y));
    element.append(this.scaleBar.element, this.minimap.element, this.zoomControls());
    const redraw = (): void => {
      this.updateScaleBar();
      const state = this.viewState();
      if (state) this.minimap.update(state.view);
    };
    this.viewer.addHandler('animation', redraw);
    this.viewer.addHandler('open', redraw);
    this.viewer.addHandler('resize', redraw);
    // Performance marks the benchmark and the tests read: a slide's first tile, then its whole first view.
    this.viewer.addHandler('tile-drawn', () => {
      if (this.unmarked === null) return;
      performance.mark('tessera:first-tile', { detail: { slideId: this.unmarked } });
      this.unmarked = null;
      // The overview's thumbnail waits for the first tile, which it would otherwise delay.
      if (this.current) this.minimap.show(this.current);
    });
    this.viewer.addHandler('tile-load-failed', (event) => {
      if (!this.message.classList.contains('error')) this.setMessage(`Some tiles of this slide could not be loaded (${event.message}).`, 'error');
    });
    // R and F rotate and flip in OpenSeadragon; here R selects a region, and level-0 coordinates
    // are only meaningful unrotated.
    this.viewer.addHandler('canvas-key', (event) => {
      const code = (event.originalEvent as KeyboardEvent).code;
      if (code === 'KeyR' || code === 'KeyF') event.preventDefaultAction = true;
    });
    this.showPlaceholder();
  }

  get slide(): SlideSummary | null {
    return this.current;
  }

  /** The slide's µm per level-0 pixel, or null without calibration. */
  get mpp(): number | null {
    const mpp = this.current?.mpp[0];
    return mpp && mpp > 0 ? mpp : null;
  }

  /** Uses the client's current key for tiles (after the key changed). */
  refreshAuth(): void {
    // The typings omit the option the viewer keeps for images it opens later.
    (this.viewer as unknown as { loadTilesWithAjax: boolean }).loadTilesWithAjax = this.api.hasKey;
    this.viewer.setAjaxHeaders(this.api.authHeaders());
    this.stale = true;
  }

  /**
   * Opens a slide (or keeps it when already open) and moves to `target`. Resolves once the slide
   * is shown; a later call supersedes an unfinished one, which then resolves without effect.
   * @throws Error when OpenSeadragon cannot open the slide's tiles
   */
  async open(slide: SlideSummary, target: OpenTarget = {}): Promise<void> {
    const opening = ++this.opening;
    this.clearOutlines();
    if (this.stale || this.current?.slideId !== slide.slideId || this.viewer.world.getItemCount() === 0) {
      this.stale = false;
      this.current = slide;
      this.renderInfo(slide);
      this.minimap.hide();
      this.setMessage('Opening slide…');
      this.unmarked = slide.slideId;
      try {
        await new Promise<void>((resolve, reject) => {
          const opened = (): void => {
            this.viewer.removeHandler('open-failed', failed);
            resolve();
          };
          const failed = (event: OpenSeadragon.OpenFailedEvent): void => {
            this.viewer.removeHandler('open', opened);
            reject(new Error(`the slide could not be opened: ${event.message}`));
          };
          this.viewer.addOnceHandler('open', opened);
          this.viewer.addOnceHandler('open-failed', failed);
          this.viewer.open({ tileSource: this.tileSource(slide) });
        });
      } catch (error) {
        if (opening !== this.opening) return;
        throw error;
      }
      if (opening !== this.opening) return;
      this.setMessage('');
      this.markWhenComplete(slide.slideId);
    }
    this.current = slide;
    if (target.view) this.goTo(target.view, 1, true);
    else if (target.region) this.goTo(target.region, REGION_CONTEXT, true);
    if (target.region && target.outline) this.outline(target.region, target.outline);
  }

  private markWhenComplete(slideId: string): void {
    const item = this.viewer.world.getItemAt(0);
    const done = (): void => void performance.mark('tessera:view-complete', { detail: { slideId } });
    if (item.getFullyLoaded()) done();
    else item.addOnceHandler('fully-loaded-change', done);
  }

  /** Frames a level-0 rectangle (grown `context` times about its centre). */
  goTo(rect: BaseRect, context = 1, immediately = false): void {
    const grown = { x: rect.x - (rect.width * (context - 1)) / 2, y: rect.y - (rect.height * (context - 1)) / 2, width: rect.width * context, height: rect.height * context };
    this.viewer.viewport.fitBounds(this.viewer.viewport.imageToViewportRectangle(grown.x, grown.y, grown.width, grown.height), immediately);
  }

  /** The visible part of the slide, or null when none is open. */
  viewState(): ViewState | null {
    if (!this.current || this.viewer.world.getItemCount() === 0) return null;
    const bounds = this.viewer.viewport.viewportToImageRectangle(this.viewer.viewport.getBounds(true));
    return { slide: this.current, view: { x: bounds.x, y: bounds.y, width: bounds.width, height: bounds.height } };
  }

  /** Draws (or moves) the outline of a level-0 region. */
  outline(rect: BaseRect, kind: OutlineKind): void {
    this.removeOutline(kind);
    const element = h('div', { class: `outline outline-${kind}`, 'data-testid': `${kind}-outline`, title: kind === 'match' ? 'Matching region' : 'Query region' });
    this.viewer.addOverlay({ element, location: this.viewer.viewport.imageToViewportRectangle(rect.x, rect.y, rect.width, rect.height) });
    this.outlines.set(kind, element);
  }

  clearOutlines(): void {
    for (const kind of [...this.outlines.keys()]) this.removeOutline(kind);
  }

  removeOutline(kind: OutlineKind): void {
    const element = this.outlines.get(kind);
    if (!element) return;
    this.viewer.removeOverlay(element);
    this.outlines.delete(kind);
  }

  /**
   * The level-0 rectangle under two points of the viewer element (CSS pixels from its top left),
   * clipped to the slide; null when it misses the slide.
   */
  baseRectFromElement(a: { x: number; y: number }, b: { x: number; y: number }): BaseRect | null {
    if (!this.current) return null;
    const viewport = this.viewer.viewport;
    const p = viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(Math.min(a.x, b.x), Math.min(a.y, b.y)));
    const q = viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(Math.max(a.x, b.x), Math.max(a.y, b.y)));
    return this.clip({ x: p.x, y: p.y, width: q.x - p.x, height: q.y - p.y });
  }

  /** One index tile (`tileUm`; 224 px without calibration) centred on a point of the viewer element. */
  tileRectAt(point: { x: number; y: number }): BaseRect | null {
    if (!this.current) return null;
    const centre = this.viewer.viewport.viewerElementToImageCoordinates(new OpenSeadragon.Point(point.x, point.y));
    const side = Math.round(this.mpp ? this.tileUm / this.mpp : 224);
    return this.clip({ x: Math.round(centre.x - side / 2), y: Math.round(centre.y - side / 2), width: side, height: side });
  }

  /** Gives the keyboard to the slide (arrows pan, + and − zoom, 0 fits). */
  focus(): void {
    this.viewer.canvas.focus({ preventScroll: true });
  }

  /** The viewer element's size, CSS pixels. */
  get size(): { width: number; height: number } {
    const rect = this.viewer.container.getBoundingClientRect();
    return { width: rect.width, height: rect.height };
  }

  setMessage(text: string, kind: 'info' | 'error' = 'info'): void {
    this.message.textContent = text;
    this.message.hidden = text === '';
    this.message.classList.toggle('error', kind === 'error');
  }

  private zoomControls(): HTMLElement {
    const viewport = (): OpenSeadragon.Viewport => this.viewer.viewport;
    const zoom = (factor: number): void => {
      viewport().zoomBy(factor);
      viewport().applyConstraints();
    };
    return h(
      'div',
      { class: 'zoom-controls', role: 'group', 'aria-label': 'Zoom' },
      h('button', { type: 'button', class: 'secondary', 'aria-label': 'Zoom in', title: 'Zoom in (+)', 'data-testid': 'zoom-in', onclick: () => zoom(2) }, '+'),
      h('button', { type: 'button', class: 'secondary', 'aria-label': 'Zoom out', title: 'Zoom out (−)', 'data-testid': 'zoom-out', onclick: () => zoom(0.5) }, '−'),
      h('button', { type: 'button', class: 'secondary', 'aria-label': 'Fit the slide', title: 'Whole slide (0)', 'data-testid': 'zoom-fit', onclick: () => viewport().goHome() }, '⤢'),
    );
  }

  /** Integer level-0 pixels inside the slide, or null when nothing is left. */
  private clip(rect: BaseRect): BaseRect | null {
    const slide = this.current;
    if (!slide) return null;
    const x0 = Math.max(0, Math.round(rect.x));
    const y0 = Math.max(0, Math.round(rect.y));
    const x1 = Math.min(slide.width, Math.round(rect.x + rect.width));
    const y1 = Math.min(slide.height, Math.round(rect.y + rect.height));
    if (x1 - x0 < 1 || y1 - y0 < 1) return null;
    return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
  }

  /**
   * The slide's Deep Zoom source, inline: the API's descriptor is fixed (256 px JPEG tiles, no
   * overlap, api/README.md), so the summary already says all it would, one request sooner.
   */
  private tileSource(slide: SlideSummary): object {
    return {
      Image: {
        xmlns: 'http://schemas.microsoft.com/deepzoom/2008',
        Url: slide.dziUrl.replace(/\.dzi(\?.*)?$/, '_files/'),
        Format: 'jpeg',
        Overlap: '0',
        TileSize: '256',
        Size: { Width: String(slide.width), Height: String(slide.height) },
      },
    };
  }

  private updateScaleBar(): void {
    const mpp = this.mpp;
    if (!mpp || this.viewer.world.getItemCount() === 0) {
      this.scaleBar.update(null);
      return;
    }
    // Screen pixels per level-0 pixel at the current (animated) zoom.
    const imageZoom = this.viewer.viewport.viewportToImageZoom(this.viewer.viewport.getZoom(true));
    this.scaleBar.update(mpp / imageZoom);
  }

  private renderInfo(slide: SlideSummary): void {
    const { diagnosis, ...rest } = slide.metadata;
    const mpp = slide.mpp[0] && slide.mpp[0] > 0 ? slide.mpp[0] : null;
    const physical = mpp ? ` · ${((slide.width * mpp) / 1000).toFixed(1)} × ${((slide.height * mpp) / 1000).toFixed(1)} mm · ${mpp.toFixed(3)} µm/px` : ' · no calibration';
    replaceChildren(
      this.info,
      h('h2', { class: 'slide-title', 'data-testid': 'slide-title' }, slide.slideId),
      diagnosis ? h('span', { class: 'diagnosis', 'data-testid': 'slide-diagnosis' }, diagnosis) : null,
      Object.entries(rest)
        .filter(([field]) => field !== 'patient_id')
        .map(([field, value]) => h('span', { class: 'chip', title: field }, value)),
      slide.newCase ? h('span', { class: 'chip', 'data-testid': 'new-case' }, 'new case · not indexed') : null,
      h('span', { class: 'muted' }, `${groupDigits(slide.width)} × ${groupDigits(slide.height)} px${physical}${slide.newCase ? '' : ` · ${slide.tiles} tiles`}`),
    );
  }

  private showPlaceholder(): void {
    replaceChildren(this.info, h('h2', { class: 'slide-title muted' }, 'No slide open'), h('span', { class: 'muted' }, 'Choose a slide on the left.'));
  }
}
