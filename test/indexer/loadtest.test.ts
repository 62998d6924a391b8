/**
 * `tessera loadtest URL` against a real server (the API fixture: 3 slides in 2 shards, the real
 * model): every scenario runs briefly at low rates, the JSON report holds throughput, ordered
 * percentiles, statuses and recall against the admin exact-search route (which refuses a
 * non-admin key), the key appears nowhere, and the HTML report draws its plots in Chromium with
 * no network. Screenshot: test-output/loadtest/report.png.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { KEYS, buildApiFixture, client, serve, type ApiFixture } from '../api/fixture.js';
import { Deployment, measureRecall } from '../../indexer/loadtest/index.js';
import { runTessera, type CliResult } from '../run-cli.js';
import { PROJECT_ROOT, SHARED_MISSING, hasSharedData } from '../shared-data.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOTS = join(PROJECT_ROOT, 'test-output', 'loadtest');

interface RunJson {
  offeredRps: number;
  achievedRps: number;
  p50: number;
  p95: number;
  p99: number;
  requests: number;
  statuses: Record<string, number>;
  partial: number;
}

describe.skipIf(!hasSharedData)(`tessera loadtest ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let server: RunningServer;
  let result: CliResult;
  let prefix: string;

  beforeAll(async () => {
    fixture = await buildApiFixture();
    server = await serve(fixture, { index: fixture.index, config: fixture.config });
    prefix = join(fixture.scratch, 'report');
    result = await runTessera(['loadtest', server.url, '--duration', '1', '--warmup', '0', '--connections', '2', '--rates', '25%,8', '--recall-queries', '12', '--out', prefix], { TESSERA_API_KEY: KEYS.all });
  }, 180_000);

  afterAll(async () => {
    await server?.close();
  });

  it('reports throughput, ordered percentiles, statuses and recall for every scenario', () => {
    expect(result.stderr).not.toMatch(/unexpected error/);
    expect(result.code).toBe(0);
    const report = JSON.parse(readFileSync(`${prefix}.json`, 'utf8'));
    expect(report.scenarios.map((scenario: { name: string }) => scenario.name)).toEqual(['reference', 'upload', 'slide', 'filtered']);
    expect(report.settings.rates).toEqual(['25%', '8/s']);
    for (const scenario of report.scenarios) {
      expect(scenario.max.achievedRps).toBeGreaterThan(0);
      expect(scenario.max.statuses['200']).toBeGreaterThan(0);
      expect(scenario.rates).toHaveLength(2);
      scenario.rates.forEach((run: RunJson) => {
        expect(run.achievedRps).toBeGreaterThan(0);
        expect(run.p50).toBeGreaterThan(0);
        expect(run.p50).toBeLessThanOrEqual(run.p95);
        expect(run.p95).toBeLessThanOrEqual(run.p99);
        expect(Object.values(run.statuses).reduce((sum, count) => sum + count, 0)).toBe(run.requests);
        expect(run.statuses['200']).toBe(run.requests);
        expect(run.partial).toBe(0);
      });
      expect(scenario.rates[1].offeredRps).toBe(8);
    }
    const byName = Object.fromEntries(report.scenarios.map((scenario: { name: string }) => [scenario.name, scenario]));
    // A few hundred tiles: the served HNSW search should find nearly every exact neighbour.
    for (const name of ['reference', 'upload', 'filtered']) {
      expect(byName[name].recall.queries).toBeGreaterThan(0);
      expect(byName[name].recall.recall).toBeGreaterThanOrEqual(0.9);
      expect(byName[name].recall.recall).toBeLessThanOrEqual(1);
    }
    expect(byName.slide.recall.recall).toBeNull();
    expect(byName.filtered.description).toMatch(/filter \{"/);
  });

  it('never prints or writes the API key', () => {
    for (const text of [result.stdout, result.stderr, readFileSync(`${prefix}.json`, 'utf8'), readFileSync(`${prefix}.html`, 'utf8')]) expect(text).not.toContain(KEYS.all);
    expect(result.stdout).toMatch(/recall@10 served vs exact: \d\.\d{3}/);
  });

  it('exact search is refused to a non-admin key and agrees with itself for an admin', async () => {
    const query = { queries: [{ slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224 }], k: 5 };
    const refused = await client(server.url, KEYS.stritt)('/v1/admin/exact-search', { json: query });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('FORBIDDEN');
    const exact = await client(server.url, KEYS.all)('/v1/admin/exact-search', { json: query });
    expect(exact.status).toBe(200);
    const scores = exact.body.results[0].hits.map((hit: { score: number }) => hit.score);
    expect(scores.length).toBeGreaterThan(0);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    // The query slide is left out by default, as in the served search.
    expect(exact.body.results[0].hits.every((hit: { slideId: string }) => hit.slideId !== 'S1')).toBe(true);
    // loadtest with a non-admin key says why recall is missing instead of failing.
    const scenario = { name: 'reference' as const, description: '', path: '/v1/search/region', body: () => '{}', recall: { queries: [query.queries[0]!] } };
    const recall = await measureRecall(new Deployment({ url: server.url, headers: { authorization: `Bearer ${KEYS.stritt}` } }), scenario, { k: 10, maxQueries: 10 });
    expect(recall.recall).toBeNull();
    expect(recall.reason).toMatch(/403 FORBIDDEN.*needs an admin key/);
  });

  it('explains itself with --help and refuses a bad invocation naming the flag', async () => {
    const [help, bad] = await Promise.all([runTessera(['loadtest', '--help']), runTessera(['loadtest', server.url, '--rates', 'fast'])]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/loadtest URL \[--api-key KEY\]/);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--rates: "fast"/);
  });

  it.skipIf(!existsSync(CHROMIUM))('renders the HTML report with its plots drawn, offline', async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
    try {
      const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
      const requested: string[] = [];
      await context.route('**/*', (route) => {
        const url = route.request().url();
        if (url.startsWith('file:')) return route.continue();
        requested.push(url);
        return route.abort();
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));
      await page.goto(`file://${prefix}.html`);
      await page.waitForSelector('.uplot canvas');
      // Counted in the page: painted (non-transparent) pixels of each plot's canvas.
      const drawn = await page.$$eval('.uplot canvas', (canvases: any[]) =>
        canvases.map((canvas) => {
          const pixels: Uint8ClampedArray = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
          let painted = 0;
          for (let i = 3; i < pixels.length; i += 4) if ((pixels[i] as number) > 0) painted++;
          return painted;
        }),
      );
      expect(errors).toEqual([]);
      expect(requested).toEqual([]);
      expect(drawn).toHaveLength(8);
      for (const painted of drawn) expect(painted).toBeGreaterThan(500);
      mkdirSync(SCREENSHOTS, { recursive: true });
      await page.screenshot({ path: join(SCREENSHOTS, 'report.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
