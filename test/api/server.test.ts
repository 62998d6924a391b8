/**
 * The query API in role `all`, against a real index of shared slides and the real model, over HTTP
 * on 127.0.0.1: every endpoint, dataset scopes per key, and the formats users export.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { shardDir, type ShardManifest } from '../../engine/index.js';
import { SHARED_MISSING, hasSharedData } from '../shared-data.js';
import { KEYS, buildApiFixture, client, serve, type ApiFixture } from './fixture.js';

describe.skipIf(!hasSharedData)(`query API, one process ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  let stritt: ReturnType<typeof client>;

  beforeAll(async () => {
    fixture = await buildApiFixture();
    server = await serve(fixture, { index: fixture.index, config: fixture.config });
    api = client(server.url, KEYS.all);
    stritt = client(server.url, KEYS.stritt);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
  });

  it('answers health, readiness, metrics and OpenAPI without a key', async () => {
    const open = client(server.url);
    const health = await open('/health');
    expect(health.status).toBe(200);
    // Liveness only without a key; shards, counts and the model are at /v1/index.
    expect(health.body).toEqual({ status: 'ok', role: 'all' });
    const index = await api('/v1/index');
    expect(index.body.groups.flatMap((group: { shards: Array<{ shard: number }> }) => group.shards.map((shard) => shard.shard)).sort()).toEqual([0, 1]);
    expect(index.body.index.model.id).toBe('mobilenetv2-int8');
    expect((await open('/ready')).status).toBe(200);
    const docs = await open('/docs/json');
    expect(Object.keys(docs.body.paths)).toEqual(expect.arrayContaining(['/v1/search/region', '/v1/search/slide', '/v1/cohorts', '/v1/hard-negatives', '/v1/slides', '/v1/slides/{id}', '/v1/models', '/v1/index']));
    expect(Object.keys(docs.body.paths).some((path) => path.startsWith('/internal'))).toBe(false);
    await api('/v1/slides');
    const metrics = await open('/metrics');
    expect(metrics.body).toMatch(/tessera_http_request_duration_seconds_bucket\{[^}]*route="\/v1\/slides"/);
  });

  it('finds similar regions for a region of an indexed slide, excluding the query slide by default', async () => {
    const result = await api('/v1/search/region', { json: { slideId: 'S1', x: 1000, y: 1000, width: 448, height: 448, k: 5 } });
    expect(result.status).toBe(200);
    expect(result.body.query.embedded).toBe(true);
    expect(result.body.results).toHaveLength(5);
    expect(result.body.results.every((hit: { slideId: string }) => hit.slideId !== 'S1')).toBe(true);
    const scores = result.body.results.map((hit: { score: number }) => hit.score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    expect(result.body.coverage).toEqual({ answered: 2, total: 2, missing: [] });
    const hit = result.body.results[0];
    expect(hit.metadata.dataset).toBeDefined();
    const image = await api(hit.imageUrl);
    expect(image.status).toBe(200);
    expect((await sharp(image.body).metadata()).width).toBe(224);
  });

  it('searches by tile reference without embedding, and finds the tile itself when asked', async () => {
    const first = await api('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 2000, height: 2000, k: 1 } });
    const tile = first.body.results[0];
    const self = await api('/v1/search/region', { json: { slideId: tile.slideId, x: tile.x, y: tile.y, width: tile.width, height: tile.height, k: 3, exclude: { ownSlide: false } } });
    expect(self.body.query.embedded).toBe(false);
    expect(self.body.results[0]).toMatchObject({ slideId: tile.slideId, x: tile.x, y: tile.y });
    expect(self.body.results[0].score).toBeGreaterThan(0.999);
    const ownPatient = await api('/v1/search/region', { json: { slideId: 'S1', x: tile.x, y: tile.y, width: 224, height: 224, k: 10, exclude: { ownPatient: true } } });
    expect(ownPatient.body.results.every((hit: { metadata: { patient_id: string } }) => hit.metadata.patient_id !== 'P1')).toBe(true);
  });

  it('searches by an uploaded image, as base64 JSON and as multipart, with the same answer', async () => {
    const [tile] = (await api('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 224, height: 224, k: 1, filter: { dataset: 'stritt' } } })).body.results;
    const region = await api(`${tile.imageUrl}&format=png`);
    expect(region.type).toBe('image/png');
    const asJson = await api('/v1/search/region', { json: { image: region.body.toString('base64'), k: 3 } });
    expect(asJson.status).toBe(200);
    expect(asJson.body.results[0]).toMatchObject({ slideId: 'S3', x: tile.x, y: tile.y });
    expect(asJson.body.results[0].score).toBeGreaterThan(0.95);
    const form = new FormData();
    form.append('image', new Blob([region.body], { type: 'image/png' }), 'query.png');
    form.append('k', '3');
    form.append('filter', JSON.stringify({ dataset: 'stritt' }));
    const asMultipart = await api('/v1/search/region', { body: form });
    expect(asMultipart.status).toBe(200);
    expect(asMultipart.body.results.map((hit: { x: number }) => hit.x)).toEqual(asJson.body.results.map((hit: { x: number }) => hit.x));
  });

  it('applies metadata filters inside the search', async () => {
    const kidney = await api('/v1/search/region', { json: { slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224, k: 50, filter: { organ: 'kidney' } } });
    expect(kidney.body.results.length).toBeGreaterThan(0);
    expect(kidney.body.results.every((hit: { metadata: { organ: string } }) => hit.metadata.organ === 'kidney')).toBe(true);
    const none = await api('/v1/search/region', { json: { slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224, k: 5, filter: { diagnosis: { in: ['LUAD'] } } } });
    expect(none.body.results).toEqual([]);
  });

  it('scopes a key to its datasets: it never sees, counts or gets an image of another dataset', async () => {
    const list = await stritt('/v1/slides');
    expect(list.body.total).toBe(1);
    expect(list.body.slides[0].slideId).toBe('S3');
    expect(Object.keys(list.body.facets.dataset)).toEqual(['stritt']);
    expect((await stritt('/v1/slides/S1')).status).toBe(404);
    expect((await stritt('/v1/slides/S1/thumbnail')).status).toBe(404);
    expect((await stritt('/v1/slides/S1/region?x=0&y=0&width=100&height=100')).status).toBe(404);
    expect((await stritt('/v1/slides/S1.dzi')).status).toBe(404);
    expect((await stritt('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 224, height: 224 } })).status).toBe(404);
    const region = await api('/v1/slides/S1/region?x=800&y=800&width=224&height=224&format=png');
    const search = await stritt('/v1/search/region', { json: { image: region.body.toString('base64'), k: 20 } });
    expect(search.body.results.length).toBeGreaterThan(0);
    expect(search.body.results.every((hit: { metadata: { dataset: string } }) => hit.metadata.dataset === 'stritt')).toBe(true);
    const index = await stritt('/v1/index');
    expect(index.body.totals.slides).toBe(1);
    expect((await stritt('/v1/session')).body.key).toMatchObject({ id: 'stritt', datasets: ['stritt'], admin: false });
  });

  it('ranks similar slides with matching regions as evidence', async () => {
    const result = await api('/v1/search/slide', { json: { slideId: 'S1', k: 5 } });
    expect(result.status).toBe(200);
    expect(result.body.query.mosaicTiles).toBeGreaterThan(0);
    expect(result.body.results.map((match: { slideId: string }) => match.slideId)).not.toContain('S1');
    expect(result.body.results[0].slideId).toBe('S2');
    expect(result.body.results[0].evidence.length).toBeGreaterThan(0);
    const region = await api('/v1/slides/S3/region?x=200&y=200&width=224&height=224&format=png');
    const byImages = await api('/v1/search/slide', { json: { images: [region.body.toString('base64')], k: 3 } });
    expect(byImages.body.results[0].slideId).toBe('S3');
  });

  it('builds a cohort by example as JSON and as CSV', async () => {
    const json = await api('/v1/cohorts', { json: { slideId: 'S1', includeQuery: true, filter: { species: 'human' } } });
    expect(json.status).toBe(200);
    expect(json.body.slides.map((slide: { slideId: string }) => slide.slideId)).toEqual(['S1', 'S2']);
    const csv = await api('/v1/cohorts', { json: { slideId: 'S1', filter: { species: 'human' } }, headers: { accept: 'text/csv' } });
    expect(csv.type).toMatch(/^text\/csv/);
    const [header, ...rows] = (csv.body as string).trim().split('\r\n');
    expect(header).toBe('slide_id,score,dataset,diagnosis,organ,patient_id,species,stain');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/^S2,0\.\d+,cmu,nevus,skin,P1,human,HE$/);
  });

  it('mines hard negatives in bulk, as JSON and streamed NDJSON in input order', async () => {
    const queries = [
      { slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224, label: 'normal' },
      { slideId: 'S3', x: 200, y: 200, width: 224, height: 224, label: 'none' },
    ];
    const json = await api('/v1/hard-negatives', { json: { queries, labelField: 'diagnosis', k: 5 } });
    expect(json.status).toBe(200);
    expect(json.body.results[0].results.every((hit: { metadata: { diagnosis: string } }) => hit.metadata.diagnosis !== 'normal')).toBe(true);
    expect(json.body.results[1].results.every((hit: { metadata: { diagnosis: string } }) => hit.metadata.diagnosis !== 'none')).toBe(true);
    const many = Array.from({ length: 150 }, (_, i) => queries[i % 2]!);
    const ndjson = await api('/v1/hard-negatives', { json: { queries: many, labelField: 'diagnosis', k: 2 }, headers: { accept: 'application/x-ndjson' } });
    expect(ndjson.type).toMatch(/application\/x-ndjson/);
    const lines = (ndjson.body as string).trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((line) => line.index)).toEqual(many.map((_, i) => i));
    expect(lines[149].results.every((hit: { metadata: { diagnosis: string } }) => hit.metadata.diagnosis !== 'none')).toBe(true);
  });

  it('lists slides with pagination, text search and facets, and serves thumbnails and Deep Zoom', async () => {
    const page = await api('/v1/slides?limit=2&offset=1');
    expect(page.body.total).toBe(3);
    expect(page.body.slides.map((slide: { slideId: string }) => slide.slideId)).toEqual(['S2', 'S3']);
    expect(page.body.facets.organ).toEqual({ skin: 2, kidney: 1 });
    expect((await api('/v1/slides?q=NEVUS')).body.slides.map((slide: { slideId: string }) => slide.slideId)).toEqual(['S2']);
    expect((await api('/v1/slides?organ=kidney')).body.total).toBe(1);
    const first = await api('/v1/slides?limit=2');
    expect(first.body.slides.map((slide: { slideId: string }) => slide.slideId)).toEqual(['S1', 'S2']);
    const next = await api(`/v1/slides?limit=2&cursor=${first.body.nextCursor}`);
    expect([next.body.slides.map((slide: { slideId: string }) => slide.slideId), next.body.nextCursor]).toEqual([['S3'], null]);
    expect((await api('/v1/slides?cursor=not*a*cursor')).status).toBe(400);
    expect((await api(`/v1/slides?cursor=${first.body.nextCursor}&offset=1`)).status).toBe(400);
    const record = await api('/v1/slides/S1');
    expect(record.body).toMatchObject({ slideId: 'S1', width: 2220, height: 2967, dziUrl: '/v1/slides/S1.dzi' });
    expect(JSON.stringify(record.body)).not.toMatch(/cmu\.svs/);
    const thumbnail = await api('/v1/slides/S1/thumbnail?size=128');
    expect(Math.max((await sharp(thumbnail.body).metadata()).width!, (await sharp(thumbnail.body).metadata()).height!)).toBe(128);
    const dzi = await api('/v1/slides/S1.dzi');
    expect(dzi.body).toContain('<Size Width="2220" Height="2967"/>');
    const top = await api('/v1/slides/S1_files/12/0_0.jpeg');
    expect(await sharp(top.body).metadata()).toMatchObject({ width: 256, height: 256 });
    const corner = await api('/v1/slides/S1_files/12/8_11.jpeg');
    expect(await sharp(corner.body).metadata()).toMatchObject({ width: 2220 - 8 * 256, height: 2967 - 11 * 256 });
    const smallest = await api('/v1/slides/S1_files/0/0_0.jpeg');
    expect(await sharp(smallest.body).metadata()).toMatchObject({ width: 1, height: 1 });
    expect((await api('/v1/slides/S1_files/12/9_0.jpeg')).status).toBe(404);
    const atLevel = await api('/v1/slides/S1/region?x=0&y=0&width=1000&height=500&level=0&format=png');
    expect(await sharp(atLevel.body).metadata()).toMatchObject({ width: 1000, height: 500, format: 'png' });
  });

  it('reports the models and the index', async () => {
    const models = await api('/v1/models');
    expect(models.body.inUse.id).toBe('mobilenetv2-int8');
    expect(models.body.loaded.provider).toBe('cpu');
    const index = await api('/v1/index');
    expect(index.body.index.shards).toBe(2);
    expect(index.body.totals.slides).toBe(3);
  });

  it('reports per shard the recall@10 and ef its segments measured at build, and the index-wide minimum and mean', async () => {
    const index = await api('/v1/index');
    const shards: Array<{ shard: number; tiles: number; recall: { segments: Array<{ id: number; vectors: number; tuned: { ef: number; recall10: number; target: number } | null }>; tailTiles: number } }> = index.body.groups.flatMap((group: { shards: unknown[] }) => group.shards);
    // What each shard's commit point lists, as `tessera verify` reads it.
    for (const shard of shards) {
      const manifest = JSON.parse(readFileSync(join(shardDir(fixture.index, shard.shard), 'manifest.json'), 'utf8')) as ShardManifest;
      expect(shard.recall.segments).toEqual(manifest.segments.map((ref) => ({ id: ref.id, vectors: ref.vectors, tuned: ref.tuned ?? null })));
      expect(shard.recall.tailTiles).toBe(manifest.counts.tail);
    }
    const parts = shards.flatMap((shard) => [...shard.recall.segments.map((segment) => ({ recall: segment.tuned!.recall10, tiles: segment.vectors })), ...(shard.recall.tailTiles > 0 ? [{ recall: 1, tiles: shard.recall.tailTiles }] : [])]);
    expect(parts.length).toBeGreaterThan(0);
    expect(index.body.recall.min).toBe(Math.min(...parts.map((part) => part.recall)));
    expect(index.body.recall.mean).toBeCloseTo(parts.reduce((sum, part) => sum + part.recall * part.tiles, 0) / parts.reduce((sum, part) => sum + part.tiles, 0), 10);
    expect(index.body.recall.targets).toEqual([0.95]);
    expect(index.body.recall.unmeasuredVectors).toBe(0);
    // A scoped key sees no per-shard detail, but the same index-wide recall.
    expect((await client(server.url, KEYS.stritt)('/v1/index')).body.recall).toEqual(index.body.recall);
  });
});
