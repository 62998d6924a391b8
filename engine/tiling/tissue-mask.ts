/**
 * Tissue detection on a low-resolution view of a slide: Otsu's threshold on colour saturation,
 * minus pure background (near-white glass, near-black padding). Saturation separates stained
 * tissue from glass better than brightness, and survives uneven illumination.
 */
import type { Slide } from '../slide/index.js';

export interface TissueMask {
  /** 1 = tissue, 0 = background; row-major, `width × height`. */
  data: Uint8Array;
  width: number;
  height: number;
  /** Level-0 pixels per mask pixel along x and y. */
  baseScaleX: number;
  baseScaleY: number;
}

export interface TissueMaskOptions {
  /** Longer side of the view the mask is computed on. */
  maxSizePx?: number;
}

// Glass and padding: every channel above this is background even if slightly tinted.
const WHITE_LEVEL = 220;
// Below this brightness a pixel is scanner padding or an empty fluorescence background.
const BLACK_LEVEL = 25;
// Saturation floor, so that an almost empty slide does not get a threshold inside the noise.
const MIN_SATURATION = 0.07;

export async function computeTissueMask(slide: Slide, options: TissueMaskOptions = {}): Promise<TissueMask> {
  const view = await slide.thumbnail(options.maxSizePx ?? 1024);
  const count = view.width * view.height;
  const saturation = new Float32Array(count);
  const background = new Uint8Array(count);
  for (let i = 0, p = 0; i < count; i++, p += 3) {
    const r = view.data[p] ?? 0;
    const g = view.data[p + 1] ?? 0;
    const b = view.data[p + 2] ?? 0;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    background[i] = min > WHITE_LEVEL || max < BLACK_LEVEL ? 1 : 0;
    saturation[i] = max === 0 ? 0 : (max - min) / max;
  }
  // Smoothing first: stained tissue mixes pale and dark pixels, and the threshold must separate
  // tissue from glass, not nuclei from stroma. Glass stays in the histogram for the same reason.
  const smooth = boxBlur3(saturation, view.width, view.height);
  const histogram = new Uint32Array(256);
  for (let i = 0; i < count; i++) histogram[Math.min(255, Math.floor((smooth[i] ?? 0) * 256))]!++;
  const threshold = Math.max(otsuThreshold(histogram) / 256, MIN_SATURATION);
  const data = new Uint8Array(count);
  for (let i = 0; i < count; i++) data[i] = background[i] === 0 && (smooth[i] ?? 0) > threshold ? 1 : 0;
  return { data, width: view.width, height: view.height, baseScaleX: slide.width / view.width, baseScaleY: slide.height / view.height };
}

/** 3×3 mean filter (edges use the pixels that exist). */
function boxBlur3(values: Float32Array, width: number, height: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      let n = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= height) continue;
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          if (xx < 0 || xx >= width) continue;
          sum += values[yy * width + xx] ?? 0;
          n++;
        }
      }
      out[y * width + x] = sum / n;
    }
  }
  return out;
}

/** Otsu's method: the histogram bin that maximizes between-class variance. */
export function otsuThreshold(histogram: Uint32Array): number {
  let total = 0;
  let sum = 0;
  for (let i = 0; i < histogram.length; i++) {
    total += histogram[i] ?? 0;
    sum += i * (histogram[i] ?? 0);
  }
  if (total === 0) return 0;
  let weightBelow = 0;
  let sumBelow = 0;
  let best = 0;
  let bestVariance = -1;
  for (let i = 0; i < histogram.length; i++) {
    weightBelow += histogram[i] ?? 0;
    if (weightBelow === 0) continue;
    const weightAbove = total - weightBelow;
    if (weightAbove === 0) break;
    sumBelow += i * (histogram[i] ?? 0);
    const meanBelow = sumBelow / weightBelow;
    const meanAbove = (sum - sumBelow) / weightAbove;
    const variance = weightBelow * weightAbove * (meanBelow - meanAbove) ** 2;
    if (variance > bestVariance) {
      bestVariance = variance;
      best = i;
    }
  }
  return best;
}

/** Fraction of mask pixels that are tissue inside a level-0 rectangle. */
export function tissueFraction(mask: TissueMask, baseX: number, baseY: number, baseWidth: number, baseHeight: number): number {
  const x0 = Math.max(0, Math.floor(baseX / mask.baseScaleX));
  const y0 = Math.max(0, Math.floor(baseY / mask.baseScaleY));
  const x1 = Math.min(mask.width, Math.max(x0 + 1, Math.round((baseX + baseWidth) / mask.baseScaleX)));
  const y1 = Math.min(mask.height, Math.max(y0 + 1, Math.round((baseY + baseHeight) / mask.baseScaleY)));
  let tissue = 0;
  let total = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      tissue += mask.data[y * mask.width + x] ?? 0;
      total++;
    }
  }
  return total === 0 ? 0 : tissue / total;
}
