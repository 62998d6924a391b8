/**
 * New cases over HTTP: slide files under the slide roots that are not indexed are listed, shown
 * (record, Deep Zoom, thumbnail from the pyramid, never the label or macro) and searched by a
 * region read on the server; paths that could leave the roots are refused with 403, not a 500.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, hashKey, startServer, type RunningServer } from '../../api/index.js';
import { runTessera } from '../run-cli.js';
import { hasSharedData, SHARED_MISSING, slidePath } from '../shared-data.js';
import { client } from './fixture.js';

describe.skipIf(!hasSharedData)(`new cases under the slide roots ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let scratch: string;
  let root: string;
  let server: RunningServer;
  let api: ReturnType<typeof client>;

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'tessera-cases-'));
    root = join(scratch, 'slides');
    mkdirSync(join(root, 'new'), { recursive: true });
    mkdirSync(join(scratch, 'outside'));
    copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(root, 'crop.ome.tif'));
    // CMU-1-Small-Region.svs holds a label and a macro image besides its pyramid.
    copyFileSync(slidePath('CMU-1-Small-Region.svs'), join(root, 'new', 'cmu.svs'));
    copyFileSync(slidePath('fixtures/small.svs'), join(scratch, 'outside', 'secret.svs'));
    symlinkSync(join(scratch, 'outside', 'secret.svs'), join(root, 'escape.svs'));
    const index = join(scratch, 'index');
    const result = await runTessera(['index', '--slides', join(root, 'crop.ome.tif'), '--out', index, '--device', 'cpu', '--min-tissue', '0'], { TESSERA_HOME: join(scratch, 'home') });
    expect(result.code, result.stderr).toBe(0);
    server = await startServer(buildConfig({ index, port: '0', 'slide-roots': root, 'no-viewer': true, threads: '1' }, { TESSERA_LOG_LEVEL: 'warn' }, join(scratch, 'home', 'models')));
    api = client(server.url);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('lists the slide files under the roots that are not indexed, by relative path', async () => {
    const { status, body } = await api('/v1/cases');
    expect(status).toBe(200);
    // Not the indexed crop, and not the symbolic link that leads out of the root.
    expect(body).toEqual({ cases: [{ path: 'new/cmu.svs', source: 'file', bytes: expect.any(Number) }], truncated: false, unreachableServers: 0 });
  });

  it('shows a case with Deep Zoom and a thumbnail of its pyramid, never its label or macro image', async () => {
    const record = await api('/v1/cases/new%2Fcmu.svs');
    expect(record).toMatchObject({ status: 200, body: { path: 'new/cmu.svs', width: 2220, height: 2967, thumbnailUrl: '/v1/cases/new%2Fcmu.svs/thumbnail', dziUrl: '/v1/cases/new%2Fcmu.svs.dzi' } });
    expect(record.body.mpp[0]).toBeCloseTo(0.499, 3);
    const dzi = await api('/v1/cases/new%2Fcmu.svs.dzi');
    expect(dzi.body).toContain('<Size Width="2220" Height="2967"/>');
    const tile = await api('/v1/cases/new%2Fcmu.svs_files/12/3_4.jpeg');
    expect(tile).toMatchObject({ status: 200, type: 'image/jpeg' });
    expect(await sharp(tile.body as Buffer).metadata()).toMatchObject({ width: 256, height: 256 });
    const thumb = await api('/v1/cases/new%2Fcmu.svs/thumbnail?size=200');
    expect(thumb).toMatchObject({ status: 200, type: 'image/jpeg' });
    // The pyramid's shape (portrait, 2220 × 2967), not the label's or the macro's (landscape).
    const { width, height } = await sharp(thumb.body as Buffer).metadata();
    expect(Math.abs((width as number) / (height as number) - 2220 / 2967)).toBeLessThan(0.02);
    for (const path of ['/v1/cases/new%2Fcmu.svs/label', '/v1/cases/new%2Fcmu.svs/macro', '/v1/cases/new%2Fcmu.svs/associated/label', '/v1/cases/new%2Fcmu.svs_files/0/label.jpeg', '/v1/cases/new%2Fcmu.svs%2Flabel']) {
      const answer = await api(path);
      expect(answer.status, path).toBeGreaterThanOrEqual(400);
      expect(answer.status, path).toBeLessThan(500);
      expect(answer.type, path).toMatch(/json/);
    }
  });

  it('refuses paths that leave the roots with 403 SLIDE_ACCESS_DENIED, and indexed or missing files with 404', async () => {
    for (const path of ['..%2Foutside%2Fsecret.svs', 'new%2F..%2F..%2Foutside%2Fsecret.svs', '%2Fetc%2Fpasswd', '.%2Fnew%2Fcmu.svs', 'new%5C..%5Ccmu.svs', 'escape.svs']) {
      for (const suffix of ['', '/thumbnail', '.dzi']) {
        const answer = await api(`/v1/cases/${path}${suffix}`);
        expect(answer, `${path}${suffix}`).toMatchObject({ status: 403, body: { error: 'SLIDE_ACCESS_DENIED' } });
        expect(answer.body.message).not.toContain(scratch);
      }
    }
    expect(await api('/v1/cases/escape.svs_files/0/0_0.jpeg')).toMatchObject({ status: 403, body: { error: 'SLIDE_ACCESS_DENIED' } });
    expect(await api('/v1/cases/crop.ome.tif')).toMatchObject({ status: 404, body: { error: 'SLIDE_NOT_FOUND' } });
    expect(await api('/v1/cases/new%2Fnothing.svs')).toMatchObject({ status: 404, body: { error: 'SLIDE_NOT_FOUND' } });
    expect(await api('/v1/cases/search/region', { json: { slidePath: '../outside/secret.svs', x: 0, y: 0, width: 8, height: 8 } })).toMatchObject({ status: 403, body: { error: 'SLIDE_ACCESS_DENIED' } });
    expect(await api('/v1/search/slide', { json: { slidePath: '../outside/secret.svs' } })).toMatchObject({ status: 403, body: { error: 'SLIDE_ACCESS_DENIED' } });
  });

  it('searches a region of a case read on the server, and refuses one outside it', async () => {
    const { status, body } = await api('/v1/cases/search/region', { json: { slidePath: 'new/cmu.svs', x: 900, y: 1300, width: 448, height: 448, k: 5 } });
    expect(status, JSON.stringify(body)).toBe(200);
    expect(body.query).toMatchObject({ newCase: 'file', slidePath: 'new/cmu.svs', embedded: true });
    expect(body.results.length).toBeGreaterThan(0);
    expect(body.results.every((hit: { slideId: string; score: number }) => hit.slideId === 'crop.ome.tif' && hit.score > 0 && hit.score <= 1)).toBe(true);
    expect(await api('/v1/cases/search/region', { json: { slidePath: 'new/cmu.svs', x: 2000, y: 0, width: 448, height: 448 } })).toMatchObject({ status: 400, body: { error: 'REGION_OUT_OF_BOUNDS' } });
    // A relative slidePath for slide search names the same case.
    const slides = await api('/v1/search/slide', { json: { slidePath: 'new/cmu.svs', k: 3 } });
    expect(slides).toMatchObject({ status: 200, body: { query: { newCase: 'file' }, results: [{ slideId: 'crop.ome.tif' }] } });
  }, 60_000);

  it('needs an API key where the server has keys', async () => {
    const config = join(scratch, 'keys.json');
    writeFileSync(config, JSON.stringify({ keys: [{ id: 'k', sha256: hashKey('cases-key-0123456789'), datasets: ['other'], admin: false }] }));
    const guarded = await startServer(buildConfig({ index: join(scratch, 'index'), port: '0', 'slide-roots': root, 'no-viewer': true, 'no-model': true, threads: '1', config }, { TESSERA_LOG_LEVEL: 'warn' }, join(scratch, 'home', 'models')));
    try {
      expect((await client(guarded.url)('/v1/cases')).status).toBe(401);
      expect((await client(guarded.url)('/v1/cases/new%2Fcmu.svs/thumbnail')).status).toBe(401);
      // Dataset scope does not apply to files no dataset holds; the roots still do.
      expect((await client(guarded.url, 'cases-key-0123456789')('/v1/cases')).body.cases).toHaveLength(1);
    } finally {
      await guarded.close();
    }
  });
});
