/**
 * The web viewer end to end, in a real browser (Debian's Chromium driven by playwright-core)
 * against the real server on 127.0.0.1 over a real index of bundled and shared slides: open the
 * app, open a slide, draw a region, get results, filter them live, open a result and go back,
 * refine the results by example,
 * search by slide, build and export a cohort, open a new case (a slide file not indexed) and search
 * from it, and enter an API key on a server that needs one.
 * Each step leaves a screenshot under test-output/viewer/.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, hashKey, startServer, type RunningServer } from '../../api/index.js';
import { runTessera } from '../run-cli.js';
import { PROJECT_ROOT, SLIDES, hasSharedData } from '../shared-data.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const hasChromium = existsSync(CHROMIUM);
const CHROMIUM_MISSING = `${CHROMIUM} not found (apt-get install chromium)`;
if (!hasChromium) console.warn(`skipping the viewer end-to-end test: ${CHROMIUM_MISSING}`);

const CACHE = join(PROJECT_ROOT, '.cache', 'test-viewer-index');
const INDEX = join(CACHE, 'index');
const HOME = join(CACHE, 'home');
const SCREENSHOTS = join(PROJECT_ROOT, 'test-output', 'viewer');
const DIST = join(PROJECT_ROOT, 'api', 'viewer', 'dist');
const SAMPLES = join(PROJECT_ROOT, 'indexer', 'samples');
const KEY = 'viewer-e2e-key-0123456789';

/** Bundled samples always; two shared slides when ../shared is there. Diagnoses are test labels. */
function metadataCsv(): string {
  const rows = [
    'slide_id,path,patient_id,dataset,organ,stain,species,diagnosis,mpp',
    `cmu-1,${join(SAMPLES, 'CMU-1-Small-Region.svs')},P-CMU-1,openslide,skin,H&E,human,fixture-skin,`,
    `cmu-1-crop,${join(SAMPLES, 'cmu1-crop1024-pyramid.ome.tif')},P-CMU-1,derived,skin,H&E,human,fixture-skin,`,
    `ndpi-dapi,${join(SAMPLES, 'test3-DAPI-2-387.ndpi')},P-NDPI,stritt,unknown,DAPI,unknown,fixture-fluorescence,`,
  ];
  if (hasSharedData) {
    rows.push(`cmu-1-pyramid,${join(SLIDES, 'derived', 'cmu1-small-pyramid-jpeg.tif')},P-CMU-2,derived,skin,H&E,human,fixture-skin-pyramid,`);
    // No PixelSpacing in this DICOM file: the table supplies the calibration.
    rows.push(`tcga-dicom,${join(SLIDES, 'tcga-small-dicom.dcm')},P-TCGA,tcga,unknown,H&E,human,fixture-tcga,0.25`);
  }
  return `${rows.join('\n')}\n`;
}

/** Builds the index once with the real CLI; rebuilds when the slide table changes. */
async function ensureIndex(): Promise<void> {
  const csv = metadataCsv();
  const stamp = createHash('sha256').update(csv).digest('hex');
  const stampFile = join(CACHE, 'metadata.sha256');
  if (existsSync(join(INDEX, 'index.json')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;
  rmSync(CACHE, { recursive: true, force: true });
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(join(CACHE, 'slides.csv'), csv);
  const result = await runTessera(['index', '--metadata', join(CACHE, 'slides.csv'), '--out', INDEX, '--device', 'cpu'], { TESSERA_HOME: HOME });
  if (result.code !== 0) throw new Error(`indexing the viewer's slides failed: ${result.stderr}`);
  writeFileSync(stampFile, stamp);
}

/** Builds the viewer when dist/ is missing or older than a source file. */
function ensureViewerBuilt(): void {
  const sources = join(PROJECT_ROOT, 'api', 'viewer', 'src');
  const newestSource = Math.max(...readdirSync(sources).map((file) => statSync(join(sources, file)).mtimeMs));
  const built = join(DIST, 'app.js');
  if (existsSync(join(DIST, 'index.html')) && existsSync(built) && statSync(built).mtimeMs >= newestSource) return;
  execFileSync(process.execPath, [join(PROJECT_ROOT, 'api', 'viewer', 'build.mjs')], { cwd: PROJECT_ROOT, stdio: 'inherit' });
}

function serve(extra: { config?: string } = {}): Promise<RunningServer> {
  return startServer(buildConfig({ index: INDEX, port: '0', 'slide-roots': [SAMPLES, SLIDES].join(','), threads: '1', ...extra }, { TESSERA_LOG_LEVEL: 'warn' }, join(HOME, 'models')));
}

// Code run in the page is typed without the DOM library (this is Node code): the little it needs.
interface MarkWithSlide {
  detail?: { slideId?: string };
}
interface PageFiles {
  DataTransfer: new () => { items: { add(file: unknown): void } };
  File: new (parts: Uint8Array[], name: string, options: { type: string }) => unknown;
}

/** Waits until an <img> has its pixels (for a screenshot that shows them). */
async function imageShown(img: Locator): Promise<void> {
  await img.evaluate((element) => (element as unknown as { decode(): Promise<void> }).decode());
}

/** Waits until the viewer has drawn a tile of this slide (after `since`, a performance.now() time). */
async function firstTileOf(page: Page, slideId: string, since = 0): Promise<void> {
  await page.waitForFunction(
    ({ id, after }) => performance.getEntriesByName('tessera:first-tile').some((mark) => (mark as unknown as MarkWithSlide).detail?.slideId === id && mark.startTime >= after),
    { id: slideId, after: since },
    { timeout: 30_000 },
  );
}

/** Waits until results (or a message) were shown after `since` (a performance.now() time). */
async function resultsAfter(page: Page, since: number): Promise<void> {
  await page.waitForFunction((after) => performance.getEntriesByName('tessera:results-shown').some((mark) => mark.startTime > after), since, { timeout: 60_000 });
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, name) });
}

/** Drags a rectangle of w×h CSS px centred at a fraction of the viewer. */
async function dragOnViewer(page: Page, at: { fx: number; fy: number }, w = 120, h = 120): Promise<void> {
  const box = await page.getByTestId('viewer').boundingBox();
  if (!box) throw new Error('the viewer has no box');
  const cx = box.x + box.width * at.fx;
  const cy = box.y + box.height * at.fy;
  await page.mouse.move(cx - w / 2, cy - h / 2);
  await page.mouse.down();
  await page.mouse.move(cx, cy, { steps: 4 });
  await page.mouse.move(cx + w / 2, cy + h / 2, { steps: 4 });
  await page.mouse.up();
}

// Generous per-test time: the machine is shared, and the first search loads the model.
describe.skipIf(!hasChromium)(`web viewer in Chromium${hasChromium ? '' : ` (skipped: ${CHROMIUM_MISSING})`}`, { timeout: 120_000 }, () => {
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    rmSync(SCREENSHOTS, { recursive: true, force: true });
    mkdirSync(SCREENSHOTS, { recursive: true });
    ensureViewerBuilt();
    await ensureIndex();
    try {
      server = await serve();
    } catch (error) {
      // A cached index an older Tessera wrote (format, model): build it again, once.
      console.warn(`rebuilding ${INDEX}: ${(error as Error).message}`);
      rmSync(CACHE, { recursive: true, force: true });
      await ensureIndex();
      server = await serve();
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('opens at / with the slide list, filters from the facets and the first slide in the viewer', async () => {
    await page.goto(`${server.url}/`);
    await expect.poll(() => page.getByTestId('slide-card').count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
    await page.waitForFunction(() => performance.getEntriesByName('tessera:first-tile').length > 0, null, { timeout: 30_000 });
    await expect.poll(() => page.getByTestId('filter-diagnosis').locator('option').allTextContents()).toEqual(expect.arrayContaining([expect.stringMatching(/^fixture-skin \(\d+\)$/)]));
    expect(await page.getByTestId('index-summary').textContent()).toMatch(/^\d+ slides · \d+ tiles · /);
    await shot(page, '01-app.png');
    // The search box matches slide ids and metadata values.
    const all = await page.getByTestId('slide-card').count();
    await page.getByTestId('slide-query').fill('fluorescence');
    await expect.poll(() => page.getByTestId('slide-card').evaluateAll((cards) => cards.map((card) => card.getAttribute('data-slide-id')))).toEqual(['ndpi-dapi']);
    await page.getByTestId('slide-query').fill('');
    await expect.poll(() => page.getByTestId('slide-card').count()).toBe(all);
    expect(pageErrors).toEqual([]);
  });

  it('opens a slide with deep zoom and a scale bar in µm from its mpp', async () => {
    const since = await page.evaluate(() => performance.now());
    await page.locator('[data-testid=slide-card][data-slide-id="cmu-1-crop"]').click();
    await firstTileOf(page, 'cmu-1-crop', since);
    await page.locator('[data-testid=slide-card][data-slide-id="cmu-1"]').click();
    await firstTileOf(page, 'cmu-1', since);
    expect(await page.getByTestId('slide-title').textContent()).toBe('cmu-1');
    expect(await page.getByTestId('slide-diagnosis').textContent()).toBe('fixture-skin');
    const scale = page.getByTestId('scale-bar');
    await expect.poll(() => scale.isVisible()).toBe(true);
    expect(await scale.textContent()).toMatch(/^\d+ (µm|mm)$/);
    // Zooming in shortens the round length the bar shows.
    const before = Number(await scale.getAttribute('data-um'));
    await page.getByTestId('zoom-in').click();
    await page.getByTestId('zoom-in').click();
    await expect.poll(async () => Number(await scale.getAttribute('data-um'))).toBeLessThan(before);
    await page.getByTestId('zoom-fit').click();
    await page.waitForTimeout(600);
    await shot(page, '02-slide.png');
  });

  it('searches a drawn region and shows similar regions with slide, diagnosis and score', async () => {
    await page.getByTestId('select-region').click();
    expect(await page.getByTestId('select-region').getAttribute('aria-pressed')).toBe('true');
    await dragOnViewer(page, { fx: 0.5, fy: 0.45 });
    await page.waitForSelector('[data-testid=results-view][data-state=regions]', { timeout: 60_000 });
    expect(await page.getByTestId('select-region').getAttribute('aria-pressed')).toBe('false');
    await expect.poll(() => page.getByTestId('query-outline').count()).toBe(1);
    const cards = page.getByTestId('result-card');
    expect(await cards.count()).toBeGreaterThan(0);
    const slideIds = await cards.evaluateAll((elements) => elements.map((element) => element.getAttribute('data-slide-id')));
    expect(slideIds).not.toContain('cmu-1'); // the query slide is left out
    const scores = (await page.getByTestId('result-score').allTextContents()).map(Number);
    expect(scores.every((score) => score > 0 && score <= 1)).toBe(true);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(await page.getByTestId('result-diagnosis').first().textContent()).toMatch(/^fixture-/);
    await imageShown(page.locator('[data-testid=result-card] img').first());
    await shot(page, '03-results.png');
  });

  it('applies a filter live to the current search, and says so when nothing matches', async () => {
    await page.getByTestId('filter-diagnosis').selectOption('fixture-fluorescence');
    await expect.poll(async () => [...new Set(await page.getByTestId('result-diagnosis').allTextContents())], { timeout: 30_000 }).toEqual(['fixture-fluorescence']);
    await shot(page, '04-filtered.png');
    // Dataset openslide holds only the query slide, which a search leaves out: nothing can match.
    await page.getByTestId('filter-dataset').selectOption('openslide');
    await page.waitForSelector('[data-testid=results-empty]', { timeout: 30_000 });
    expect(await page.getByTestId('results-empty').textContent()).toMatch(/No similar regions found with .*dataset = openslide/);
    await shot(page, '05-empty.png');
    await page.getByTestId('filters-clear').click();
    await page.waitForSelector('[data-testid=result-card]', { timeout: 30_000 });
  });

  it('opens a result zoomed to the matching region, outlined, and goes back to the query', async () => {
    const first = page.getByTestId('result-card').first();
    const target = await first.getAttribute('data-slide-id');
    const resultCount = await page.getByTestId('result-card').count();
    const since = await page.evaluate(() => performance.now());
    await first.getByTestId('result-open').click();
    await firstTileOf(page, target as string, since);
    expect(await page.getByTestId('slide-title').textContent()).toBe(target);
    const outline = page.getByTestId('match-outline');
    await expect.poll(() => outline.isVisible()).toBe(true);
    // Framed with its surroundings: the outline is a good part of the view, inside it.
    const viewerBox = await page.getByTestId('viewer').boundingBox();
    const outlineBox = await outline.boundingBox();
    expect(outlineBox && viewerBox && outlineBox.width > viewerBox.width * 0.1 && outlineBox.x >= viewerBox.x && outlineBox.x + outlineBox.width <= viewerBox.x + viewerBox.width).toBe(true);
    expect(await page.getByTestId('back-to-query').isVisible()).toBe(true);
    await page.waitForTimeout(500);
    await shot(page, '06-result.png');

    await page.getByTestId('back-to-query').click();
    await expect.poll(() => page.getByTestId('slide-title').textContent()).toBe('cmu-1');
    await expect.poll(() => page.getByTestId('query-outline').count()).toBe(1);
    expect(await page.getByTestId('result-card').count()).toBe(resultCount);
    expect(await page.getByTestId('back-to-query').isHidden()).toBe(true);
    await page.waitForTimeout(500);
    await shot(page, '07-back.png');
  });

  it('searches a box of several tiles as a whole region: places where its tiles land together, with evidence', async () => {
    const places = page.getByTestId('region-match');
    await expect.poll(() => places.count(), { timeout: 30_000 }).toBeGreaterThan(0);
    expect(await places.first().getAttribute('data-slide-id')).not.toBe('cmu-1');
    expect(await page.getByTestId('region-match-count').first().textContent()).toMatch(/^\d+ of \d+ query tiles$/);
    expect(await places.first().locator('.evidence-open').count()).toBeGreaterThan(0);
    await shot(page, '07a-places.png');
  });

  it('refines a search by example: "more like this" and "not like this" run it again with positives and negatives', async () => {
    const bodies: Array<Record<string, unknown>> = [];
    const record = (request: { url(): string; method(): string; postDataJSON(): unknown }) => {
      if (request.method() === 'POST' && request.url().endsWith('/v1/search/region')) bodies.push(request.postDataJSON() as Record<string, unknown>);
    };
    page.on('request', record);
    const cards = page.getByTestId('result-card');
    const liked = await cards.first().getAttribute('data-slide-id');
    let since = await page.evaluate(() => performance.now());
    await cards.first().getByTestId('more-like-this').click();
    await resultsAfter(page, since);
    expect(bodies.at(-1)).toMatchObject({ slideId: 'cmu-1', positives: [{ slideId: liked, x: expect.any(Number), y: expect.any(Number), width: expect.any(Number), height: expect.any(Number) }] });
    expect(bodies.at(-1)?.negatives).toBeUndefined();
    expect(await page.getByTestId('refined-by').textContent()).toMatch(/refined: 1 more like, 0 not like/);
    expect(await cards.count()).toBeGreaterThan(0);
    since = await page.evaluate(() => performance.now());
    await cards.last().getByTestId('not-like-this').click();
    await resultsAfter(page, since);
    expect(bodies.at(-1)).toMatchObject({ positives: [{ slideId: liked }], negatives: [{ slideId: expect.any(String) }] });
    expect(await page.getByTestId('refined-by').textContent()).toMatch(/refined: 1 more like, 1 not like/);
    await shot(page, '07b-refined.png');
    since = await page.evaluate(() => performance.now());
    await page.getByTestId('clear-refinement').click();
    await resultsAfter(page, since);
    expect(bodies.at(-1)?.positives).toBeUndefined();
    expect(await page.getByTestId('refined-by').count()).toBe(0);
    page.off('request', record);
    expect(pageErrors).toEqual([]);
  });

  it('is keyboard driven: R selects, Esc cancels, Enter selects one tile at the centre', async () => {
    await page.getByTestId('viewer').focus();
    await page.keyboard.press('r');
    expect(await page.getByTestId('select-region').getAttribute('aria-pressed')).toBe('true');
    await page.keyboard.press('Escape');
    expect(await page.getByTestId('select-region').getAttribute('aria-pressed')).toBe('false');
    await page.keyboard.press('r');
    const since = await page.evaluate(() => performance.now());
    await page.keyboard.press('Enter');
    await resultsAfter(page, since);
    expect(await page.getByTestId('query-header').textContent()).toMatch(/Regions like 112×112 µm \(224×224 px\) of cmu-1/);
  });

  it('searches by an uploaded image and by one dropped on the page', async () => {
    const response = await fetch(`${server.url}/v1/slides/cmu-1/region?x=900&y=1300&width=448&height=448&size=224`);
    const jpeg = Buffer.from(await response.arrayBuffer());
    let since = await page.evaluate(() => performance.now());
    await page.getByTestId('upload-input').setInputFiles({ name: 'query.jpg', mimeType: 'image/jpeg', buffer: jpeg });
    await resultsAfter(page, since);
    expect(await page.getByTestId('results-view').getAttribute('data-state')).toBe('regions');
    expect(await page.getByTestId('query-header').textContent()).toBe('Regions like query.jpg');
    // An image is no slide: nothing is left out, and a copy of the tissue it was cut from matches best.
    expect(['cmu-1', 'cmu-1-crop', 'cmu-1-pyramid']).toContain(await page.getByTestId('result-card').first().getAttribute('data-slide-id'));
    expect(Number(await page.getByTestId('result-score').first().textContent())).toBeGreaterThan(0.8);
    await imageShown(page.locator('[data-testid=result-card] img').first());
    await shot(page, '08-image-search.png');

    const dataTransfer = await page.evaluateHandle((bytes) => {
      const { DataTransfer, File } = globalThis as unknown as PageFiles;
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(bytes)], 'dropped.jpg', { type: 'image/jpeg' }));
      return transfer;
    }, [...jpeg]);
    since = await page.evaluate(() => performance.now());
    await page.dispatchEvent('body', 'dragenter', { dataTransfer });
    expect(await page.locator('#drop-zone').isVisible()).toBe(true);
    await page.dispatchEvent('body', 'drop', { dataTransfer });
    await resultsAfter(page, since);
    expect(await page.locator('#drop-zone').isHidden()).toBe(true);
    expect(await page.getByTestId('query-header').textContent()).toBe('Regions like dropped.jpg');
  });

  it('finds cases like this slide, with matching regions as evidence', async () => {
    await page.getByTestId('search-slide').click();
    await page.waitForSelector('[data-testid=results-view][data-state=slides]', { timeout: 60_000 });
    const results = page.getByTestId('slide-result');
    expect(await results.count()).toBeGreaterThan(0);
    expect(await results.first().getByTestId('evidence-open').count()).toBeGreaterThan(0);
    await page.waitForTimeout(300);
    await shot(page, '09-slide-search.png');
  });

  it('collects slides into a cohort and exports it as CSV and JSON', async () => {
    await page.getByTestId('add-to-cohort').first().click();
    expect(await page.getByTestId('cohort-count').textContent()).toBe('1');
    await page.getByTestId('tab-cohort').click();
    expect(await page.getByTestId('cohort-row').count()).toBe(1);
    const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    const csv = readFileSync(await csvDownload.path(), 'utf8').trim().split(/\r?\n/);
    expect(csv[0]).toMatch(/^slide_id,score,.*diagnosis/);
    expect(csv).toHaveLength(2);
    const [jsonDownload] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-json').click()]);
    const json = JSON.parse(readFileSync(await jsonDownload.path(), 'utf8')) as { slides: Array<{ slideId: string }> };
    expect(json.slides).toHaveLength(1);
    await shot(page, '10-cohort.png');
  });

  it('builds a cohort from the open slide with /v1/cohorts and exports the server’s CSV', async () => {
    await page.getByTestId('cohort-clear').click();
    await page.getByTestId('cohort-from-slide').click();
    await expect.poll(() => page.getByTestId('cohort-row').count(), { timeout: 60_000 }).toBeGreaterThan(1);
    expect(await page.getByTestId('cohort-source').textContent()).toMatch(/like cmu-1.*built by the server/);
    const rows = await page.getByTestId('cohort-row').count();
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-csv').click()]);
    const csv = readFileSync(await download.path(), 'utf8').trim().split(/\r?\n/);
    expect(csv[0]).toMatch(/^slide_id,score,/);
    expect(csv[1]).toMatch(/^cmu-1,1,/); // includeQuery: the example slide comes first
    expect(csv).toHaveLength(rows + 1);
    await shot(page, '11-cohort-built.png');
    expect(pageErrors).toEqual([]);
  });

  it('fills a large monitor without scrolling the page', async () => {
    await page.setViewportSize({ width: 2560, height: 1440 });
    await page.getByTestId('tab-results').click();
    await page.waitForTimeout(600);
    const overflow = await page.locator('html').evaluate((html) => ({ x: html.scrollWidth > html.clientWidth, y: html.scrollHeight > html.clientHeight }));
    expect(overflow).toEqual({ x: false, y: false });
    await shot(page, '12-large-monitor.png');
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  it('opens a new case (a slide file under the roots, not indexed), finds slides like it with the mosaic time, and searches a region drawn on it', async () => {
    // A copy of the indexed crop's tissue, stored with another compression, that the index does not hold.
    const casePath = 'derived/cmu1-crop1024-pyramid-deflate.tif';
    await page.getByTestId('cases-toggle').click();
    const card = page.locator(`[data-testid=case-card][data-case-path="${casePath}"]`);
    await card.waitFor({ timeout: 30_000 });
    const listed = await page.getByTestId('case-card').evaluateAll((cards) => cards.map((element) => element.getAttribute('data-case-path')));
    expect(listed).not.toContain('CMU-1-Small-Region.svs'); // indexed (from the samples root)
    let since = await page.evaluate(() => performance.now());
    await card.click();
    await firstTileOf(page, casePath, since);
    expect(await page.getByTestId('slide-title').textContent()).toBe(casePath);
    expect(await page.getByTestId('new-case').isVisible()).toBe(true);
    expect(await page.getByTestId('cohort-from-slide').isDisabled()).toBe(true);
    await shot(page, '15-new-case.png');

    const bodies: Array<{ url: string; body: Record<string, unknown> }> = [];
    const record = (request: { url(): string; method(): string; postDataJSON(): unknown }) => {
      if (request.method() === 'POST') bodies.push({ url: new URL(request.url()).pathname, body: request.postDataJSON() as Record<string, unknown> });
    };
    page.on('request', record);
    since = await page.evaluate(() => performance.now());
    await page.getByTestId('search-slide').click();
    await resultsAfter(page, since);
    expect(bodies.at(-1)).toMatchObject({ url: '/v1/search/slide', body: { slidePath: casePath } });
    expect(await page.getByTestId('results-view').getAttribute('data-state')).toBe('slides');
    expect(await page.getByTestId('query-header').textContent()).toContain(`Cases like new case ${casePath}`);
    expect(await page.getByTestId('mosaic-time').textContent()).toMatch(/mosaic of \d+ tiles .* computed in [\d,]+ ms$/);
    expect(['cmu-1', 'cmu-1-crop', 'cmu-1-pyramid']).toContain(await page.getByTestId('slide-result').first().getAttribute('data-slide-id'));
    await page.waitForTimeout(300);
    await shot(page, '16-new-case-slides.png');

    await page.getByTestId('select-region').click();
    since = await page.evaluate(() => performance.now());
    await dragOnViewer(page, { fx: 0.5, fy: 0.5 });
    await resultsAfter(page, since);
    expect(bodies.at(-1)).toMatchObject({ url: '/v1/cases/search/region', body: { slidePath: casePath, x: expect.any(Number), width: expect.any(Number) } });
    expect(await page.getByTestId('results-view').getAttribute('data-state')).toBe('regions');
    expect(await page.getByTestId('query-header').textContent()).toMatch(new RegExp(`Regions like .* of new case ${casePath}`));
    await expect.poll(() => page.getByTestId('query-outline').count()).toBe(1);
    expect(await page.getByTestId('result-card').count()).toBeGreaterThan(0);
    expect(['cmu-1', 'cmu-1-crop', 'cmu-1-pyramid']).toContain(await page.getByTestId('result-card').first().getAttribute('data-slide-id'));
    await imageShown(page.locator('[data-testid=result-card] img').first());
    await shot(page, '17-new-case-region.png');
    page.off('request', record);
    expect(pageErrors).toEqual([]);
  });

  it('asks for an API key when the server requires one, then shows slides and tiles with it', async () => {
    const config = join(CACHE, 'keys.json');
    writeFileSync(config, JSON.stringify({ keys: [{ id: 'e2e', sha256: hashKey(KEY), datasets: ['*'], admin: false }] }));
    const guarded = await serve({ config });
    const keyed = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const keyPage = await keyed.newPage();
      await keyPage.goto(`${guarded.url}/`);
      await keyPage.waitForSelector('[data-testid=key-dialog][open]', { timeout: 30_000 });
      expect(await keyPage.getByTestId('key-reason').textContent()).toMatch(/requires an API key/);
      await keyPage.getByTestId('key-input').fill('not-the-key');
      await keyPage.getByTestId('key-save').click();
      await expect.poll(() => keyPage.getByTestId('key-error').textContent()).toMatch(/Not saved/);
      await shot(keyPage, '13-key-refused.png');
      await keyPage.getByTestId('key-input').fill(KEY);
      await keyPage.getByTestId('key-save').click();
      await expect.poll(() => keyPage.getByTestId('key-dialog').getAttribute('open')).toBeNull();
      await expect.poll(() => keyPage.getByTestId('slide-card').count(), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
      // Tiles come through OpenSeadragon's AJAX loader with the key; thumbnails through blob URLs.
      await keyPage.waitForFunction(() => performance.getEntriesByName('tessera:first-tile').length > 0, null, { timeout: 30_000 });
      await expect.poll(() => keyPage.locator('[data-testid=slide-card] img').first().getAttribute('src'), { timeout: 30_000 }).toMatch(/^blob:/);
      expect(await keyPage.getByTestId('key-button').textContent()).toMatch(/API key ✓/);
      await keyPage.waitForTimeout(500);
      await shot(keyPage, '14-with-key.png');
    } finally {
      await keyed.close();
      await guarded.close();
    }
  });
});
