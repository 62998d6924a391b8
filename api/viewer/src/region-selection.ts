/**
 * Region selection on the slide viewer: while on, a layer over the slide turns a drag into a
 * rectangle (level-0 pixels) and a click or Enter into one index tile at that point or at the
 * centre. Esc or the toggle turns it off. It reports the region; searching is the caller's job.
 */
import { h } from './dom.js';
import type { SlideViewer } from './slide-viewer.js';
import type { BaseRect } from './types.js';

/** A drag shorter than this (CSS px) is a click. */
const CLICK_PX = 6;

/** Turns a drag (or Enter) on the viewer into a level-0 region while selection is on. */
export class RegionSelection {
  private readonly layer: HTMLDivElement;
  private readonly box: HTMLDivElement;
  private start: { x: number; y: number } | null = null;
  private on = false;
  /** Called with the selected region (level-0 pixels of the open slide). */
  onRegion: (rect: BaseRect) => void = () => {};
  /** Called when selection turns on or off. */
  onToggle: (active: boolean) => void = () => {};

  constructor(private readonly viewer: SlideViewer) {
    this.box = h('div', { class: 'selection-box', hidden: true });
    this.layer = h(
      'div',
      {
        class: 'selection-layer',
        'data-testid': 'selection-layer',
        tabindex: -1,
        role: 'application',
        'aria-label': 'Region selection: drag a rectangle, or press Enter for one tile at the centre; Esc cancels',
        hidden: true,
      },
      this.box,
    );
    viewer.element.append(this.layer);
    this.layer.addEventListener('pointerdown', (event) => this.down(event));
    this.layer.addEventListener('pointermove', (event) => this.move(event));
    this.layer.addEventListener('pointerup', (event) => this.up(event));
    this.layer.addEventListener('pointercancel', () => this.resetDrag());
    this.layer.addEventListener('keydown', (event) => {
      if (event.key !== 'Enter' && event.key !== ' ') return;
      event.preventDefault();
      const { width, height } = this.viewer.size;
      this.finish(this.viewer.tileRectAt({ x: width / 2, y: height / 2 }));
    });
  }

  get active(): boolean {
    return this.on;
  }

  toggle(): void {
    if (this.on) this.cancel();
    else this.begin();
  }

  /** Turns selection on (when a slide is open): pan and zoom pause until it ends. */
  begin(): void {
    if (this.on || !this.viewer.slide) return;
    this.on = true;
    this.viewer.viewer.setMouseNavEnabled(false);
    this.layer.hidden = false;
    this.layer.focus({ preventScroll: true });
    this.viewer.setMessage('Drag a rectangle around a region (or press Enter for one tile at the centre). Esc cancels.');
    this.onToggle(true);
  }

  cancel(): void {
    if (!this.on) return;
    this.on = false;
    this.resetDrag();
    this.layer.hidden = true;
    this.viewer.viewer.setMouseNavEnabled(true);
    this.viewer.setMessage('');
    this.onToggle(false);
  }

  private point(event: PointerEvent): { x: number; y: number } {
    const bounds = this.viewer.viewer.container.getBoundingClientRect();
    return { x: event.clientX - bounds.left, y: event.clientY - bounds.top };
  }

  private down(event: PointerEvent): void {
    if (event.button !== 0) return;
    event.preventDefault();
    this.layer.setPointerCapture(event.pointerId);
    this.start = this.point(event);
    this.drawBox(this.start, this.start);
  }

  private move(event: PointerEvent): void {
    if (this.start) this.drawBox(this.start, this.point(event));
  }

  private up(event: PointerEvent): void {
    const start = this.start;
    if (!start) return;
    const end = this.point(event);
    this.resetDrag();
    const dragged = Math.abs(end.x - start.x) >= CLICK_PX || Math.abs(end.y - start.y) >= CLICK_PX;
    this.finish(dragged ? this.viewer.baseRectFromElement(start, end) : this.viewer.tileRectAt(end));
  }

  private finish(rect: BaseRect | null): void {
    if (!rect) {
      this.viewer.setMessage('That region lies outside the slide: try again inside it.', 'error');
      return;
    }
    performance.mark('tessera:region-drawn');
    this.cancel();
    this.onRegion(rect);
  }

  private drawBox(a: { x: number; y: number }, b: { x: number; y: number }): void {
    Object.assign(this.box.style, { left: `${Math.min(a.x, b.x)}px`, top: `${Math.min(a.y, b.y)}px`, width: `${Math.abs(b.x - a.x)}px`, height: `${Math.abs(b.y - a.y)}px` });
    this.box.hidden = false;
  }

  private resetDrag(): void {
    this.start = null;
    this.box.hidden = true;
  }
}
