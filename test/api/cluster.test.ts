/**
 * Roles shard and router: two shard nodes and a router on 127.0.0.1 answer like one process; a
 * node that goes away yields partial results with coverage, a replica takes over, images are
 * relayed, and a node with another model is refused.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig, startServer, type RunningServer } from '../../api/index.js';
import { BINARY_CONTENT_TYPE, CLUSTER_TOKEN_HEADER, encodeSearch, REGION_HEIGHT_HEADER, REGION_WIDTH_HEADER, RemoteShardGroup, SEARCH_CONTENT_TYPE, shardOf } from '../../engine/index.js';
import { SHARED_MISSING, hasSharedData } from '../shared-data.js';
import { runTessera } from '../run-cli.js';
import { KEYS, buildApiFixture, client, serve, type ApiFixture } from './fixture.js';

describe.skipIf(!hasSharedData)(`sharded deployment ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let all: RunningServer;
  let shard0: RunningServer;
  let shard1: RunningServer;
  let replica1: RunningServer;
  const started: RunningServer[] = [];
  const query = { slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224, k: 10 };
  // S2 lives on shard 0, which stays up when the node serving shard 1 goes away.
  const shard0Query = { slideId: 'S2', x: 300, y: 300, width: 224, height: 224, k: 10 };

  beforeAll(async () => {
    fixture = await buildApiFixture();
    const common = { index: fixture.index, config: fixture.config };
    all = await serve(fixture, common);
    shard0 = await serve(fixture, { ...common, role: 'shard', shards: '0' });
    shard1 = await serve(fixture, { ...common, role: 'shard', shards: '1' });
    replica1 = await serve(fixture, { ...common, role: 'shard', shards: '1' });
    started.push(all, shard0, shard1, replica1);
  }, 180_000);

  afterAll(async () => {
    for (const server of started) await server.close().catch(() => undefined);
  });

  async function router(nodes: string[], replicas?: string): Promise<RunningServer> {
    const server = await serve(fixture, { role: 'router', nodes: nodes.join(','), config: fixture.config, 'deadline-ms': '1500', ...(replicas === undefined ? {} : { replicas }) });
    started.push(server);
    return server;
  }

  it('a router over two shard nodes answers like one process, with full coverage', async () => {
    const cluster = await router([shard0.url, shard1.url]);
    const viaRouter = await client(cluster.url, KEYS.all)('/v1/search/region', { json: query });
    const direct = await client(all.url, KEYS.all)('/v1/search/region', { json: query });
    expect(viaRouter.status).toBe(200);
    expect(viaRouter.body.coverage).toEqual({ answered: 2, total: 2, missing: [] });
    const key = (hit: { slideId: string; x: number; y: number }) => `${hit.slideId}@${hit.x},${hit.y}`;
    expect(viaRouter.body.results.map(key)).toEqual(direct.body.results.map(key));
    const slides = await client(cluster.url, KEYS.all)('/v1/search/slide', { json: { slideId: 'S1', k: 3 } });
    expect(slides.body.results[0].slideId).toBe('S2');
    expect((await client(cluster.url, KEYS.all)('/v1/slides')).body.total).toBe(3);
    expect((await client(cluster.url, KEYS.stritt)('/v1/slides')).body.total).toBe(1);
    expect((await client(cluster.url)('/health')).body).toEqual({ status: 'ok', role: 'router' });
    const index = await client(cluster.url, KEYS.all)('/v1/index');
    expect(index.body.groups.flatMap((group: { shards: Array<{ shard: number }> }) => group.shards.map((shard) => shard.shard)).sort()).toEqual([0, 1]);
    // The shard nodes' recall, summed by the router as one process sums its own shards'.
    expect(index.body.recall).toEqual((await client(all.url, KEYS.all)('/v1/index')).body.recall);
    expect(index.body.recall.min).toBeGreaterThan(0);
  });

  it('exact search through a router scans every node and agrees with one process', async () => {
    const cluster = await router([shard0.url, shard1.url]);
    const body = { queries: [{ slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224 }, { slideId: 'S2', x: 300, y: 300, width: 224, height: 224 }], k: 10, exclude: { ownSlide: false } };
    const viaRouter = await client(cluster.url, KEYS.all)('/v1/admin/exact-search', { json: body });
    const direct = await client(all.url, KEYS.all)('/v1/admin/exact-search', { json: body });
    expect(viaRouter.status).toBe(200);
    expect(viaRouter.body.coverage).toEqual({ answered: 2, total: 2, missing: [] });
    const keys = (reply: { body: { results: Array<{ hits: Array<{ slideId: string; x: number; y: number }> }> } }) => reply.body.results.map((result) => result.hits.map((hit) => `${hit.slideId}@${hit.x},${hit.y}`));
    expect(keys(viaRouter)).toEqual(keys(direct));
    // An indexed tile is its own exact nearest neighbour when its slide is not left out.
    const tile = direct.body.results[0].hits[3];
    const self = await client(cluster.url, KEYS.all)('/v1/admin/exact-search', { json: { queries: [{ slideId: tile.slideId, x: tile.x, y: tile.y, width: tile.width, height: tile.height }], k: 3, exclude: { ownSlide: false } } });
    expect(self.body.results[0].hits[0]).toMatchObject({ slideId: tile.slideId, x: tile.x, y: tile.y });
    expect(self.body.results[0].hits[0].score).toBeCloseTo(1, 4);
    expect((await client(cluster.url, KEYS.stritt)('/v1/admin/exact-search', { json: body })).status).toBe(403);
  });

  it('relays slide images to the node holding the slide, with the caller key and scope', async () => {
    const cluster = await router([shard0.url, shard1.url]);
    const api = client(cluster.url, KEYS.all);
    for (const id of ['S1', 'S2', 'S3']) {
      const thumbnail = await api(`/v1/slides/${id}/thumbnail?size=64`);
      expect(thumbnail.status).toBe(200);
      expect(thumbnail.type).toBe('image/jpeg');
      expect((await api(`/v1/slides/${id}.dzi`)).body).toContain('<Size');
    }
    expect((await client(cluster.url, KEYS.stritt)('/v1/slides/S1/thumbnail')).status).toBe(404);
    // Unknown or out of scope: 404 through the router and from a shard node alike, .dzi included.
    for (const base of [cluster.url, shard0.url, shard1.url]) {
      for (const path of ['/v1/slides/nope.dzi', '/v1/slides/nope', '/v1/slides/nope/thumbnail']) expect((await client(base, KEYS.all)(path)).status, `${base}${path}`).toBe(404);
      expect((await client(base, KEYS.stritt)('/v1/slides/S1.dzi')).status, base).toBe(404);
    }
    // A shard node asked for a slide of a shard it does not serve: not here, not "unavailable".
    expect((await client(shard0.url, KEYS.all)('/v1/slides/S1')).status).toBe(404);
    expect((await client(cluster.url)('/v1/slides/S1/thumbnail')).status).toBe(401);
  });

  it('reads a region on the node holding it, reduced there, and embeds it as one process does', async () => {
    const cluster = await router([shard0.url, shard1.url]);
    // Not an indexed tile: read, reduced to the tile size on the shard node, embedded on the router.
    const region = { slideId: 'S1', x: 905, y: 1311, width: 700, height: 500, k: 10 };
    const viaRouter = await client(cluster.url, KEYS.all)('/v1/search/region', { json: region });
    const direct = await client(all.url, KEYS.all)('/v1/search/region', { json: region });
    expect(viaRouter.body.query.embedded).toBe(true);
    const key = (hit: { slideId: string; x: number; y: number; score: number }) => `${hit.slideId}@${hit.x},${hit.y}:${hit.score.toFixed(6)}`;
    expect(viaRouter.body.results.map(key)).toEqual(direct.body.results.map(key));
    // The node's answer: raw RGB of one tile, its size in headers, not base64 JSON of the region.
    const pixels = await fetch(`${shard1.url}/internal/v1/region`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ slideId: 'S1', rect: { x: region.x, y: region.y, width: region.width, height: region.height }, datasets: null }) });
    expect([pixels.headers.get('content-type'), pixels.headers.get(REGION_WIDTH_HEADER), pixels.headers.get(REGION_HEIGHT_HEADER)]).toEqual([BINARY_CONTENT_TYPE, '224', '224']);
    expect((await pixels.arrayBuffer()).byteLength).toBe(224 * 224 * 3);
  });

  it('relays vectors in binary, refuses malformed bodies with 400, and keeps the cluster token check with a typed error for a wrong token', async () => {
    const search = (url: string, body: Uint8Array, headers: Record<string, string> = {}) => fetch(`${url}/internal/v1/search`, { method: 'POST', headers: { 'content-type': SEARCH_CONTENT_TYPE, ...headers }, body });
    for (const body of [Buffer.from([1, 2]), encodeSearch([new Float32Array(7)], { k: 5 }), encodeSearch([], { k: 0 }), Buffer.concat([Buffer.from([200, 0, 0, 0]), Buffer.from('{}')])]) {
      const refused = await search(shard0.url, body);
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: string }).error).toBe('BAD_REQUEST');
    }
    const guarded = await startServer(buildConfig({ port: '0', index: fixture.index, role: 'shard', shards: '0', threads: '1', config: fixture.config }, { TESSERA_CLUSTER_TOKEN: 'secret-token' }, join(fixture.scratch, 'home', 'models')));
    started.push(guarded);
    const dimension = (await RemoteShardGroup.connect(shard0.url)).reported.model.dimension;
    const query = encodeSearch([Float32Array.from({ length: dimension }, (_, i) => (i === 3 ? 1 : 0))], { k: 3 });
    expect((await search(guarded.url, query)).status).toBe(401);
    expect((await search(guarded.url, query, { [CLUSTER_TOKEN_HEADER]: 'wrong' })).status).toBe(401);
    const answered = await search(guarded.url, query, { [CLUSTER_TOKEN_HEADER]: 'secret-token' });
    expect(answered.status).toBe(200);
    expect(((await answered.json()) as { hits: unknown[][] }).hits[0]).toHaveLength(3);
    // A router without the nodes' token is told so, with a typed error, not "no node answered".
    await expect(RemoteShardGroup.connect(guarded.url)).rejects.toMatchObject({ code: 'CLUSTER_TOKEN_REJECTED', message: expect.stringMatching(/requires a cluster token and this router has none/) });
    await expect(RemoteShardGroup.connect(guarded.url, { clusterToken: 'wrong' })).rejects.toMatchObject({ code: 'CLUSTER_TOKEN_REJECTED', transient: false, message: expect.stringMatching(/refused this router's cluster token/) });
    const group = await RemoteShardGroup.connect(guarded.url, { clusterToken: 'secret-token' });
    const stored = await group.storedVectors('S2', { mosaic: true }, null);
    expect(stored!.length).toBeGreaterThan(0);
    expect(stored!.every((vector) => vector.length === dimension && Math.abs(Math.hypot(...vector) - 1) < 1e-3)).toBe(true);
  });

  it('reports partial results with the missing shard when a node is down, and a replica takes over', async () => {
    const withReplica = await router([shard0.url, shard1.url], `,${replica1.url}`);
    const without = await router([shard0.url, shard1.url]);
    await shard1.close();
    expect(shardOf('S2', 2)).toBe(0);
    const partial = await client(without.url, KEYS.all)('/v1/search/region', { json: { ...shard0Query, exclude: { ownSlide: false } } });
    expect(partial.status).toBe(200);
    expect(partial.body.coverage).toEqual({ answered: 1, total: 2, missing: [1] });
    expect(partial.body.results.length).toBeGreaterThan(0);
    expect(partial.body.results.every((hit: { shard: number }) => hit.shard === 0)).toBe(true);
    // A query naming a slide on the dead shard has no vector to search with: 503 naming the shard.
    expect(shardOf('S1', 2)).toBe(1);
    const named = await client(without.url, KEYS.all)('/v1/search/region', { json: query });
    expect(named.status).toBe(503);
    expect(named.body.message).toMatch(/shard 1, which holds slide "S1", is unavailable/);
    // An uploaded image needs no shard to be embedded: the live shard answers, with coverage.
    const png = await sharp({ create: { width: 224, height: 224, channels: 3, background: { r: 200, g: 120, b: 180 } } }).png().toBuffer();
    const uploaded = await client(without.url, KEYS.all)('/v1/search/region', { json: { image: png.toString('base64'), k: 3 } });
    expect(uploaded.status).toBe(200);
    expect(uploaded.body.coverage).toEqual({ answered: 1, total: 2, missing: [1] });
    const covered = await client(withReplica.url, KEYS.all)('/v1/search/region', { json: { ...shard0Query, exclude: { ownSlide: false } } });
    expect(covered.body.coverage).toEqual({ answered: 2, total: 2, missing: [] });
    const metrics = await client(without.url)('/metrics');
    expect(metrics.body).toMatch(/tessera_partial_results_total [1-9]/);
  });

  it('refuses a shard node whose model differs', async () => {
    const home = join(fixture.scratch, 'tiny-home');
    const { channelMeanModel } = await import('../engine/embed/tiny-models.js');
    const { writeFileSync } = await import('node:fs');
    const tiny = channelMeanModel(join(fixture.scratch, 'tiny.onnx'), 'dynamic');
    writeFileSync(join(fixture.scratch, 'tiny.json'), JSON.stringify({ id: 'tiny', version: '1', input: 'input', inputSize: 224, mean: [0, 0, 0], std: [1, 1, 1], output: 'embedding', dimension: 3, license: 'test', source: 'test', sha256: '0'.repeat(64), file: 'x' }));
    expect((await runTessera(['models', 'add', tiny, '--manifest', join(fixture.scratch, 'tiny.json')], { TESSERA_HOME: home })).code).toBe(0);
    const tinyIndex = join(fixture.scratch, 'tiny-index');
    expect((await runTessera(['index', '--slides', join(fixture.slides, 'cmu.svs'), '--out', tinyIndex, '--shards', '2', '--model', 'tiny', '--device', 'cpu'], { TESSERA_HOME: home })).code).toBe(0);
    const tinyNode = await serve(fixture, { index: tinyIndex, role: 'shard', shards: '1', config: fixture.config });
    started.push(tinyNode);
    await expect(router([shard0.url, tinyNode.url])).rejects.toThrow(/serves model tiny 1.*refusing to merge/);
  });

  it('refuses a router whose nodes serve the same shard without saying it is a replica', async () => {
    await expect(router([shard0.url, shard0.url])).rejects.toThrow(/shard 0 is served by both/);
  });
});
