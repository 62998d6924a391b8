/**
 * The requests the first screen waits for, sent the moment the script starts: main.ts imports this
 * module before any other, so they are on the wire while OpenSeadragon and the rest of the viewer
 * are still being evaluated. It only starts requests; main.ts hands the answers to their owners.
 */
import { ApiClient } from './api-client.js';
import { SLIDE_PAGE_SIZE } from './slide-list.js';
import type { SlideList, SlideSummary } from './types.js';

/** The client every part of the viewer shares (it holds the API key). */
export const api = new ApiClient();

/** `#slide=ID&region=x,y,w,h`: a link to a slide, optionally to a region of it (level-0 pixels). */
export const linked = slideFromHash();

/** The first page of the slide list, without filters or search text (as the page opens). */
export const firstPage: Promise<SlideList> = api.get<SlideList>(`/v1/slides?limit=${SLIDE_PAGE_SIZE}`);

/** The linked slide's record, when the address names one. */
export const linkedSlide: Promise<SlideSummary> | null = linked ? api.get<SlideSummary>(`/v1/slides/${encodeURIComponent(linked.slideId)}`) : null;

// Their consumers attach later in this same task; until then a failure must not count as unhandled.
firstPage.catch(() => {});
linkedSlide?.catch(() => {});

function slideFromHash(): { slideId: string; region?: { x: number; y: number; width: number; height: number } } | null {
  const parameters = new URLSearchParams(location.hash.slice(1));
  const slideId = parameters.get('slide');
  if (!slideId) return null;
  const numbers = (parameters.get('region') ?? '').split(',').map(Number);
  const [x = 0, y = 0, width = 0, height = 0] = numbers;
  const valid = numbers.length === 4 && numbers.every((n) => Number.isFinite(n) && n >= 0) && width > 0 && height > 0;
  return valid ? { slideId, region: { x, y, width, height } } : { slideId };
}
