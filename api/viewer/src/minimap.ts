/**
 * An overview of the open slide: its thumbnail (the one the slide list shows, so usually cached)
 * with the visible part outlined; a click moves the view there. Cheaper than OpenSeadragon's
 * navigator, which reads the slide's coarsest Deep Zoom levels (the whole slide) before the
 * first tile can draw.
 */
import { showImage, type ApiClient } from './api-client.js';
import { h } from './dom.js';
import type { BaseRect, SlideSummary } from './types.js';

/** The overview in the viewer's corner (level-0 coordinates in, level-0 points out). */
export class Minimap {
  readonly element: HTMLDivElement;
  private readonly image: HTMLImageElement;
  private readonly frame: HTMLDivElement;
  private slide: SlideSummary | null = null;
  /** Called with a level-0 point the user wants at the centre of the view. */
  onPick: (point: { x: number; y: number }) => void = () => {};

  constructor(private readonly api: ApiClient) {
    this.image = h('img', { alt: '', draggable: 'false' });
    this.frame = h('div', { class: 'minimap-frame' });
    this.element = h('div', { class: 'minimap', 'data-testid': 'minimap', 'aria-hidden': 'true', hidden: true }, this.image, this.frame);
    this.element.addEventListener('click', (event) => {
      const slide = this.slide;
      if (!slide) return;
      const bounds = this.image.getBoundingClientRect();
      this.onPick({ x: ((event.clientX - bounds.left) / bounds.width) * slide.width, y: ((event.clientY - bounds.top) / bounds.height) * slide.height });
    });
  }

  /** Shows a slide's overview (its thumbnail, fetched now). */
  show(slide: SlideSummary): void {
    this.slide = slide;
    // Keep the slide's aspect ratio in a box of at most 150 px.
    const scale = 150 / Math.max(slide.width, slide.height);
    this.element.style.width = `${Math.max(24, Math.round(slide.width * scale))}px`;
    this.element.style.height = `${Math.max(24, Math.round(slide.height * scale))}px`;
    showImage(this.api, this.image, slide.thumbnailUrl);
    this.element.hidden = false;
  }

  hide(): void {
    this.slide = null;
    this.element.hidden = true;
  }

  /** Outlines the visible part (level-0 pixels). */
  update(view: BaseRect): void {
    const slide = this.slide;
    if (!slide) return;
    const left = clamp(view.x / slide.width);
    const top = clamp(view.y / slide.height);
    const right = clamp((view.x + view.width) / slide.width);
    const bottom = clamp((view.y + view.height) / slide.height);
    Object.assign(this.frame.style, { left: `${left * 100}%`, top: `${top * 100}%`, width: `${(right - left) * 100}%`, height: `${(bottom - top) * 100}%` });
  }
}

function clamp(fraction: number): number {
  return Math.min(1, Math.max(0, fraction));
}
