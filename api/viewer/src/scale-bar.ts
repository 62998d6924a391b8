/**
 * A scale bar in µm or mm for the slide viewer (OpenSeadragon has none): a bar of a round length
 * (1, 2 or 5 × 10ⁿ µm) about 120 screen pixels wide, redrawn when the zoom changes. Hidden for
 * slides without calibration.
 */
import { h } from './dom.js';

const TARGET_WIDTH_PX = 120;

/** The round length (µm) nearest below `um`, with its label. */
export function roundLength(um: number): { um: number; label: string } {
  const power = 10 ** Math.floor(Math.log10(um));
  const mantissa = um / power;
  const step = mantissa >= 5 ? 5 : mantissa >= 2 ? 2 : 1;
  const length = step * power;
  if (length >= 1000) return { um: length, label: `${trim(length / 1000)} mm` };
  return { um: length, label: `${trim(length)} µm` };
}

function trim(value: number): string {
  return String(Number(value.toPrecision(3)));
}

/** The bar's element; `update` redraws it for a zoom. */
export class ScaleBar {
  readonly element: HTMLDivElement;
  private readonly bar: HTMLDivElement;
  private readonly label: HTMLSpanElement;

  constructor() {
    this.bar = h('div', { class: 'scale-bar-line' });
    this.label = h('span', { class: 'scale-bar-label' });
    this.element = h('div', { class: 'scale-bar', 'data-testid': 'scale-bar', 'aria-hidden': 'true', hidden: true }, this.bar, this.label);
  }

  /** Redraws for this many µm per screen pixel; null hides the bar (no calibration). */
  update(umPerScreenPx: number | null): void {
    if (umPerScreenPx === null || !Number.isFinite(umPerScreenPx) || umPerScreenPx <= 0) {
      this.element.hidden = true;
      return;
    }
    const { um, label } = roundLength(umPerScreenPx * TARGET_WIDTH_PX);
    this.bar.style.width = `${(um / umPerScreenPx).toFixed(1)}px`;
    this.label.textContent = label;
    this.element.dataset.um = String(um);
    this.element.hidden = false;
  }
}
