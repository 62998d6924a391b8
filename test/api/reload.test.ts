/**
 * POST /v1/admin/reload: slides indexed while a server runs become searchable without a restart,
 * on an all-in-one server and through a router (which reloads its shard nodes); only admin keys
 * (KEYS.all) may ask, and a reload that would change the model is refused with the old index still served.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { runTessera } from '../run-cli.js';
import { SHARED_MISSING, hasSharedData, slidePath } from '../shared-data.js';
import { KEYS, client, serve, writeKeysConfig, type ApiFixture } from './fixture.js';

describe.skipIf(!hasSharedData)(`index reload ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  const started: RunningServer[] = [];

  async function index(slideFile: string, csvRow: string): Promise<void> {
    const csv = join(fixture.slides, 'slides.csv');
    writeFileSync(csv, ['slide_id,path,dataset', csvRow].join('\n'));
    const result = await runTessera(['index', '--slides', join(fixture.slides, slideFile), '--metadata', csv, '--out', fixture.index, '--shards', '2', '--device', 'cpu'], { TESSERA_HOME: join(fixture.scratch, 'home') });
    expect(result.code, result.stderr).toBe(0);
  }

  beforeAll(async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'tessera-reload-'));
    const slides = join(scratch, 'slides');
    mkdirSync(slides);
    copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(slides, 'first.ome.tif'));
    copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(slides, 'second.ome.tif'));
    fixture = { scratch, slides, index: join(scratch, 'index'), config: writeKeysConfig(scratch) };
    await index('first.ome.tif', 'A,first.ome.tif,demo');
  }, 180_000);

  afterAll(async () => {
    for (const server of started) await server.close().catch(() => undefined);
  });

  it('picks up newly indexed slides on an admin reload, through a router too', async () => {
    const common = { index: fixture.index, config: fixture.config };
    const all = await serve(fixture, common);
    started.push(all);
    const shard0 = await serve(fixture, { ...common, role: 'shard', shards: '0' });
    const shard1 = await serve(fixture, { ...common, role: 'shard', shards: '1' });
    started.push(shard0, shard1);
    const router = await serve(fixture, { role: 'router', nodes: `${shard0.url},${shard1.url}`, config: fixture.config });
    started.push(router);
    const admin = client(all.url, KEYS.all);
    expect((await admin('/v1/slides')).body.total).toBe(1);

    await index('second.ome.tif', 'B,second.ome.tif,demo');
    // Not visible until reloaded: the server holds its index in memory.
    expect((await admin('/v1/slides')).body.total).toBe(1);
    expect((await admin('/v1/search/region', { json: { slideId: 'A', x: 0, y: 0, width: 1000, height: 1000, k: 1 } })).body.results).toEqual([]);
    const refused = await client(all.url, KEYS.stritt)('/v1/admin/reload', { json: {} });
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('FORBIDDEN');
    expect((await client(all.url)('/v1/admin/reload', { json: {} })).status).toBe(401);

    // Searches keep being answered while the index is swapped.
    const during = Array.from({ length: 20 }, () => admin('/v1/search/region', { json: { slideId: 'A', x: 0, y: 0, width: 448, height: 448, k: 3, exclude: { ownSlide: false } } }));
    const reloaded = await admin('/v1/admin/reload', { json: {} });
    expect(reloaded.status, JSON.stringify(reloaded.body)).toBe(200);
    expect(reloaded.body.slides).toBe(2);
    expect((await Promise.all(during)).map((answer) => answer.status)).toEqual(Array(20).fill(200));
    expect((await admin('/v1/slides')).body.slides.map((slide: { slideId: string }) => slide.slideId)).toEqual(['A', 'B']);
    // B is a copy of A: A's region now finds B (A itself is excluded), and B's tiles resolve as references.
    const [hit] = (await admin('/v1/search/region', { json: { slideId: 'A', x: 0, y: 0, width: 1000, height: 1000, k: 1 } })).body.results;
    expect(hit.slideId).toBe('B');
    const self = (await admin('/v1/search/region', { json: { slideId: 'B', x: hit.x, y: hit.y, width: hit.width, height: hit.height, k: 2, exclude: { ownSlide: false } } })).body;
    expect(self.query.embedded).toBe(false);
    // The tile itself and its twin in A, identical vectors.
    expect(self.results.map((result: { slideId: string; x: number; y: number; score: number }) => [result.slideId, result.x, result.y, result.score > 0.999]).sort()).toEqual([
      ['A', hit.x, hit.y, true],
      ['B', hit.x, hit.y, true],
    ]);
    expect((await admin('/v1/index')).body.totals.slides).toBe(2);

    const viaRouter = client(router.url, KEYS.all);
    expect((await viaRouter('/v1/slides')).body.total).toBe(1);
    const routerReload = await viaRouter('/v1/admin/reload', { json: {} });
    expect(routerReload.status, JSON.stringify(routerReload.body)).toBe(200);
    expect(routerReload.body.slides).toBe(2);
    expect((await viaRouter('/v1/slides')).body.total).toBe(2);
  }, 180_000);
});
