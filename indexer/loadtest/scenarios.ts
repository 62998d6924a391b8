/**
 * What `tessera loadtest` sends, learnt from the deployment itself through its public API: the
 * slide list (ids, sizes, metadata facets), tile references from the evidence of slide searches
 * and the hits of region searches (every hit is an indexed tile's rectangle), PNGs of regions it
 * fetched, and a filter on a facet value held by part of the catalogue.
 *
 * It never reads the index's files: a benchmarking team points it at a deployment and nothing else.
 */
import { readFile } from 'node:fs/promises';
import { TesseraError } from '../../engine/index.js';
import { endpoint, type Target } from './runner.js';

export const SCENARIO_NAMES = ['reference', 'upload', 'slide', 'filtered'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** A region search query form the exact-search route takes too. */
export type RegionQuery = { slideId: string; x: number; y: number; width: number; height: number } | { image: string };

export interface Scenario {
  name: ScenarioName;
  /** One line for the report. */
  description: string;
  path: string;
  /** A fresh JSON body for each request. */
  body: () => string;
  /** Region queries whose served answers are compared with exact search, with the options they share; null when recall does not apply. */
  recall: { queries: RegionQuery[]; filter?: Record<string, unknown> } | null;
}

export interface ScenarioOptions {
  k: number;
  ef?: number;
  /** PNG/JPEG files to upload; absent: PNGs of regions fetched from the deployment. */
  images?: string[];
  /** A filter for the filtered scenario; absent: derived from the catalogue's facets. */
  filter?: Record<string, unknown>;
  /** Distinct tile references to discover (the queries' pool). */
  references: number;
  /** Seed of the pseudo-random choice of queries, so runs repeat. */
  seed: number;
}

interface SlideEntry {
  slideId: string;
  width: number;
  height: number;
  metadata: Record<string, string>;
}

interface TileRef {
  slideId: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Small JSON client of a deployment: the key travels in the target's headers, never in a message. */
export class Deployment {
  constructor(readonly target: Target) {}

  async get(path: string): Promise<{ status: number; body: unknown; bytes: Buffer }> {
    return this.call('GET', path);
  }

  async post(path: string, json: unknown): Promise<{ status: number; body: unknown; bytes: Buffer }> {
    return this.call('POST', path, json);
  }

  private async call(method: string, path: string, json?: unknown): Promise<{ status: number; body: unknown; bytes: Buffer }> {
    const url = endpoint(this.target, path);
    let response: Response;
    try {
      response = await fetch(url, { method, headers: { ...this.target.headers, ...(json === undefined ? {} : { 'content-type': 'application/json' }) }, ...(json === undefined ? {} : { body: JSON.stringify(json) }) });
    } catch (error) {
      throw new TesseraError('SHARD_UNAVAILABLE', `${url.origin} did not answer ${method} ${url.pathname}: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`, { transient: true });
    }
    const bytes = Buffer.from(await response.arrayBuffer());
    const type = response.headers.get('content-type') ?? '';
    let body: unknown = null;
    if (type.includes('json')) {
      try {
        body = JSON.parse(bytes.toString('utf8'));
      } catch {
        body = null;
      }
    }
    return { status: response.status, body, bytes };
  }
}

/** Why a reply was refused, in a line (the deployment's own error code and message). */
export function refusal(reply: { status: number; body: unknown }): string {
  const body = reply.body as { error?: string; message?: string } | null;
  return `HTTP ${reply.status}${body?.error ? ` ${body.error}` : ''}${body?.message ? `: ${body.message}` : ''}`;
}

/**
 * The scenarios asked for, built from what the deployment serves; a scenario it cannot run
 * (no region images, no facet to filter on) is skipped with the reason.
 * @throws TesseraError SHARD_UNAVAILABLE when the deployment does not answer, INVALID_ARGUMENT
 *   when it refuses the key or holds no slides, or an image file cannot be read
 */
/** Slides per catalogue page asked for (the API's largest page), and the most slides queries are drawn from. */
const SLIDE_PAGE = 500;
const MAX_SLIDES = 1000;

export async function buildScenarios(deployment: Deployment, names: ScenarioName[], options: ScenarioOptions): Promise<{ scenarios: Scenario[]; skipped: Array<{ name: ScenarioName; reason: string }> }> {
  let seed = options.seed >>> 0 || 1;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)] as T;
  const searchOptions = { k: options.k, ...(options.ef === undefined ? {} : { ef: options.ef }) };

  // Slides to query from: the first pages of the catalogue (a page holds at most 500), with its facets and total.
  const slides: SlideEntry[] = [];
  let facets: Record<string, Record<string, number>> | undefined;
  let total: number | undefined;
  let cursor: string | undefined;
  do {
    const listing = await deployment.get(`/v1/slides?limit=${SLIDE_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    if (listing.status === 401 || listing.status === 403) throw new TesseraError('INVALID_ARGUMENT', `the deployment refused the API key (${refusal(listing)}): give --api-key or set $TESSERA_API_KEY`);
    if (listing.status !== 200) throw new TesseraError('INVALID_ARGUMENT', `GET /v1/slides was refused: ${refusal(listing)}`);
    const page = listing.body as { slides: SlideEntry[]; facets?: Record<string, Record<string, number>>; total?: number; nextCursor?: string | null };
    slides.push(...page.slides);
    facets ??= page.facets;
    total ??= page.total;
    cursor = page.nextCursor ?? undefined;
  } while (cursor && slides.length < MAX_SLIDES);
  if (slides.length === 0) throw new TesseraError('INVALID_ARGUMENT', 'the deployment lists no slides this key may see: nothing to search');
  const references = await discoverReferences(deployment, slides, options.references, pick);
  if (references.length === 0) throw new TesseraError('INVALID_ARGUMENT', 'no tile reference could be found: slide and region searches returned no hits');

  const scenarios: Scenario[] = [];
  const skipped: Array<{ name: ScenarioName; reason: string }> = [];
  const recallSample = (count: number) => Array.from({ length: Math.min(count, references.length) }, (_, i) => references[i] as TileRef);
  for (const name of names) {
    if (name === 'reference') {
      scenarios.push({ name, description: `region search by tile reference (${references.length} indexed tiles)`, path: '/v1/search/region', body: () => JSON.stringify({ ...pick(references), ...searchOptions }), recall: { queries: recallSample(references.length) } });
    } else if (name === 'slide') {
      scenarios.push({ name, description: `slide search by indexed slide (${slides.length} slides)`, path: '/v1/search/slide', body: () => JSON.stringify({ slideId: pick(slides).slideId, ...searchOptions }), recall: null });
    } else if (name === 'upload') {
      const images = options.images ? await readImages(options.images) : await fetchRegionImages(deployment, references.slice(0, 8));
      if (typeof images === 'string') skipped.push({ name, reason: images });
      else scenarios.push({ name, description: `region search by uploaded image (${images.length} ${options.images ? 'files given' : 'PNGs of indexed tiles fetched from the deployment'}; embedding included)`, path: '/v1/search/region', body: () => JSON.stringify({ image: pick(images), ...searchOptions }), recall: { queries: images.map((image) => ({ image })) } });
    } else {
      const filter = options.filter ?? derivedFilter(facets ?? {}, total ?? slides.length);
      if (!filter) skipped.push({ name, reason: 'no facet value is held by part of the catalogue only: give --filter JSON' });
      else scenarios.push({ name, description: `region search by tile reference with filter ${JSON.stringify(filter)}`, path: '/v1/search/region', body: () => JSON.stringify({ ...pick(references), ...searchOptions, filter }), recall: { queries: recallSample(references.length), filter } });
    }
  }
  return { scenarios, skipped };
}

/**
 * Distinct indexed tiles: the evidence of slide searches (by a few slides), then the hits of
 * region searches from those, until `wanted` are known or nothing new comes back.
 */
async function discoverReferences(deployment: Deployment, slides: SlideEntry[], wanted: number, pick: <T>(items: T[]) => T): Promise<TileRef[]> {
  const found = new Map<string, TileRef>();
  const add = (hit: TileRef) => {
    const ref = { slideId: hit.slideId, x: hit.x, y: hit.y, width: hit.width, height: hit.height };
    found.set(`${ref.slideId}@${ref.x},${ref.y},${ref.width}x${ref.height}`, ref);
  };
  for (let attempt = 0; attempt < Math.min(slides.length, 16) && found.size < wanted; attempt++) {
    const reply = await deployment.post('/v1/search/slide', { slideId: pick(slides).slideId, k: 10 });
    if (reply.status !== 200) continue;
    for (const match of (reply.body as { results: Array<{ evidence: TileRef[] }> }).results) match.evidence.forEach(add);
  }
  for (let round = 0; round < wanted && found.size < wanted; round++) {
    const before = found.size;
    const reply = await deployment.post('/v1/search/region', { ...pick([...found.values()]), k: 50 });
    if (reply.status === 200) (reply.body as { results: TileRef[] }).results.forEach(add);
    if (found.size === before && round > 8) break;
  }
  return [...found.values()].slice(0, wanted);
}

/** PNGs of indexed tiles as the deployment serves them, base64; or why there are none. */
async function fetchRegionImages(deployment: Deployment, refs: TileRef[]): Promise<string[] | string> {
  const images: string[] = [];
  let lastRefusal = '';
  for (const ref of refs) {
    const reply = await deployment.get(`/v1/slides/${encodeURIComponent(ref.slideId)}/region?x=${ref.x}&y=${ref.y}&width=${ref.width}&height=${ref.height}&size=224&format=png`);
    if (reply.status === 200) images.push(reply.bytes.toString('base64'));
    else lastRefusal = refusal(reply);
  }
  return images.length > 0 ? images : `the deployment served no region image to upload (${lastRefusal}): give --images FILE,…`;
}

async function readImages(files: string[]): Promise<string[]> {
  return Promise.all(
    files.map(async (file) => {
      try {
        return (await readFile(file)).toString('base64');
      } catch (error) {
        throw new TesseraError('INVALID_ARGUMENT', `--images: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
      }
    }),
  );
}

/**
 * A filter on the facet value (other than dataset, which API keys scope) whose share of the
 * catalogue is nearest a fifth, held by some slides but not all; null when there is none.
 */
export function derivedFilter(facets: Record<string, Record<string, number>>, total: number): Record<string, string> | null {
  let best: { field: string; value: string; distance: number } | null = null;
  for (const [field, counts] of Object.entries(facets)) {
    if (field === 'dataset') continue;
    for (const [value, count] of Object.entries(counts)) {
      if (count <= 0 || count >= total) continue;
      const distance = Math.abs(count / total - 0.2);
      if (!best || distance < best.distance) best = { field, value, distance };
    }
  }
  return best ? { [best.field]: best.value } : null;
}
