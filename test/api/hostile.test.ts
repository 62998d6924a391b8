/**
 * Malformed and hostile requests against the running server: each gets a 4xx with
 * `{error, message}`, never a 500, and the server keeps serving.
 */
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { SHARED_MISSING, hasSharedData } from '../shared-data.js';
import { KEYS, buildApiFixture, client, serve, type ApiFixture } from './fixture.js';

/** A valid PNG header claiming width × height, with a tiny deflated body: a decompression bomb. */
function pngBomb(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes: Buffer) => {
    let c = 0xffffffff;
    for (const byte of bytes) c = (crcTable[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 0, 0, 0, 0], 8); // 8-bit grayscale
  const rows = deflateSync(Buffer.alloc(1024 * 1024)); // the first rows only: the rest would be zeros too
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', header), chunk('IDAT', rows), chunk('IEND', Buffer.alloc(0))]);
}

describe.skipIf(!hasSharedData)(`hostile requests ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  let validPng: Buffer;

  beforeAll(async () => {
    fixture = await buildApiFixture();
    server = await serve(fixture, { index: fixture.index, config: fixture.config });
    api = client(server.url, KEYS.all);
    validPng = await sharp({ create: { width: 224, height: 224, channels: 3, background: { r: 200, g: 120, b: 180 } } }).png().toBuffer();
  }, 120_000);

  afterAll(async () => {
    await server?.close();
  });

  const expectRefusal = (result: { status: number; body: any }, status: number, code?: string) => {
    expect(result.status, JSON.stringify(result.body)).toBe(status);
    expect(typeof result.body.message).toBe('string');
    if (code) expect(result.body.error).toBe(code);
  };

  it('refuses missing, malformed and unknown keys', async () => {
    expectRefusal(await client(server.url)('/v1/slides'), 401, 'UNAUTHORIZED');
    expectRefusal(await client(server.url, 'not-a-key')('/v1/slides'), 401, 'UNAUTHORIZED');
    expectRefusal(await client(server.url)('/v1/slides', { headers: { authorization: 'Basic abc' } }), 401, 'UNAUTHORIZED');
    expectRefusal(await client(server.url)('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 224, height: 224 } }), 401);
    expect((await client(server.url)('/v1/session')).body).toEqual({ authRequired: true, key: null });
  });

  it('refuses malformed JSON, unknown fields, wrong types and k out of range', async () => {
    const region = { slideId: 'S1', x: 0, y: 0, width: 224, height: 224 };
    expectRefusal(await api('/v1/search/region', { body: '{"slideId": "S1", ', headers: { 'content-type': 'application/json' } }), 400, 'BAD_REQUEST');
    expectRefusal(await api('/v1/search/region', { body: '', headers: { 'content-type': 'application/json' } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, colour: 'red' } }), 400, 'BAD_REQUEST');
    expectRefusal(await api('/v1/search/region', { json: { ...region, k: 0 } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, k: 1001 } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, k: '5' } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, k: true } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, x: -1 } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, width: 1.5 } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { ...region, filter: { organ: { like: 'lu%' } } } }), 400, 'BAD_REQUEST');
    expectRefusal(await api('/v1/search/region', { json: { ...region, filter: ['organ'] } }), 400);
    expectRefusal(await api('/v1/search/region', { json: { slideId: 'S1' } }), 400);
    expectRefusal(await api('/v1/search/region', { json: [1, 2, 3] }), 400);
    expectRefusal(await api('/v1/search/region', { body: 'k=5', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415);
    expectRefusal(await api('/v1/search/slide', { json: {} }), 400);
    expectRefusal(await api('/v1/search/slide', { json: { slideId: 'S1', images: ['aGk='] } }), 400);
    expectRefusal(await api('/v1/hard-negatives', { json: { queries: [] } }), 400);
    expectRefusal(await api('/v1/hard-negatives', { json: { queries: [{ slideId: 'S1', x: 0, y: 0, width: 224, height: 224 }] } }), 400);
    expectRefusal(await api('/v1/hard-negatives', { json: { queries: [{ ...region, label: 'a' }], labelField: 'diagnosis', filter: { diagnosis: 'x' } } }), 400);
    expectRefusal(await api('/v1/slides?limit=0'), 400);
    expectRefusal(await api('/v1/slides?limit=abc'), 400);
    expectRefusal(await api('/v1/slides?colour=red'), 400);
    expectRefusal(await api('/v1/slides/S1/region?x=0&y=0&width=100'), 400);
    expectRefusal(await api('/v1/slides/S1/region?x=0&y=0&width=100&height=100&level=9'), 400, 'LEVEL_INVALID');
    expectRefusal(await api('/v1/slides/S1/region?x=0&y=0&width=100000&height=100000&level=0'), 413);
    expectRefusal(await api('/v1/slides/S1/region?x=99999&y=0&width=100&height=100'), 400, 'REGION_OUT_OF_BOUNDS');
    expectRefusal(await api('/v1/search/region', { json: { slideId: 'S1', x: 5000, y: 5000, width: 224, height: 224 } }), 400, 'REGION_OUT_OF_BOUNDS');
    expectRefusal(await api('/v1/search/region', { json: { slideId: 'S1', x: 0, y: 0, width: 100000, height: 100000 } }), 413, 'REGION_TOO_LARGE');
  });

  it('answers unknown slides, routes and path traversal with 404', async () => {
    expectRefusal(await api('/v1/slides/nope'), 404, 'SLIDE_NOT_FOUND');
    expectRefusal(await api('/v1/search/region', { json: { slideId: 'nope', x: 0, y: 0, width: 224, height: 224 } }), 404, 'SLIDE_NOT_FOUND');
    expectRefusal(await api('/v1/cohorts', { json: { slideId: 'nope' } }), 404);
    for (const id of ['..%2F..%2F..%2Fetc%2Fpasswd', '%2Fetc%2Fpasswd', '..', 'cmu.svs', encodeURIComponent(fixture.slides + '/cmu.svs'), '%00']) {
      const record = await api(`/v1/slides/${id}`);
      expect([400, 404]).toContain(record.status);
      expect([400, 404]).toContain((await api(`/v1/slides/${id}/thumbnail`)).status);
      expect([400, 404]).toContain((await api(`/v1/slides/${id}/region?x=0&y=0&width=10&height=10`)).status);
    }
    expectRefusal(await api('/v1/slides/../../etc/passwd'), 404);
    expectRefusal(await api('/v1/slides/S1_files/99/0_0.jpeg'), 404);
    expectRefusal(await api('/v1/slides/S1_files/12/0_0.png'), 400);
    expectRefusal(await api('/v1/nothing-here'), 404, 'NOT_FOUND');
    expectRefusal(await api('/internal/v1/slide-page', { json: { limit: 1, datasets: null } }), 404);
  });

  it('caps uploads by bytes and decoded pixels, and refuses truncated and non-image uploads', async () => {
    const huge = Buffer.alloc(17 * 2 ** 20, 1);
    expectRefusal(await api('/v1/search/region', { json: { image: huge.toString('base64') } }), 413, 'PAYLOAD_TOO_LARGE');
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(huge)]), 'huge.png');
    expectRefusal(await api('/v1/search/region', { body: form }), 413, 'PAYLOAD_TOO_LARGE');
    const bomb = pngBomb(60_000, 60_000);
    expect(bomb.length).toBeLessThan(64 * 1024);
    const memoryBefore = process.memoryUsage().rss;
    expectRefusal(await api('/v1/search/region', { json: { image: bomb.toString('base64') } }), 413, 'PAYLOAD_TOO_LARGE');
    expect(process.memoryUsage().rss - memoryBefore).toBeLessThan(500 * 2 ** 20);
    expectRefusal(await api('/v1/search/region', { json: { image: validPng.subarray(0, validPng.length / 2).toString('base64') } }), 400, 'IMAGE_INVALID');
    expectRefusal(await api('/v1/search/region', { json: { image: Buffer.from('just some text, not an image').toString('base64') } }), 400, 'IMAGE_INVALID');
    expectRefusal(await api('/v1/search/region', { json: { image: '!!!not base64!!!' } }), 400, 'IMAGE_INVALID');
    const gif = await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).gif().toBuffer();
    expectRefusal(await api('/v1/search/region', { json: { image: gif.toString('base64') } }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    const wrongField = new FormData();
    wrongField.append('picture', new Blob([new Uint8Array(validPng)]), 'x.png');
    expectRefusal(await api('/v1/search/region', { body: wrongField }), 400);
    const badK = new FormData();
    badK.append('image', new Blob([new Uint8Array(validPng)]), 'x.png');
    badK.append('k', 'many');
    expectRefusal(await api('/v1/search/region', { body: badK }), 400);
    expect((await api('/v1/search/region', { json: { image: validPng.toString('base64'), k: 2 } })).status).toBe(200);
  });

  it('survives fuzzed bodies with 4xx answers only, and keeps serving', async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const values = [null, true, -1, 0, 1e308, 'S1', '', '💥', [], {}, [1, 'a'], { in: 3 }, { not: { not: {} } }, 'A'.repeat(10_000)];
    const fields = ['slideId', 'x', 'y', 'width', 'height', 'k', 'ef', 'filter', 'exclude', 'image', 'images', 'queries', 'label', '__proto__', 'constructor'];
    const statuses = new Set<number>();
    for (let i = 0; i < 150; i++) {
      const body: Record<string, unknown> = {};
      const count = 1 + Math.floor(random() * 4);
      for (let f = 0; f < count; f++) body[fields[Math.floor(random() * fields.length)] as string] = values[Math.floor(random() * values.length)];
      const route = ['/v1/search/region', '/v1/search/slide', '/v1/cohorts', '/v1/hard-negatives'][i % 4] as string;
      const result = await api(route, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      statuses.add(result.status);
      expect(result.status, `${route} ${JSON.stringify(body).slice(0, 200)} → ${JSON.stringify(result.body).slice(0, 200)}`).toBeLessThan(500);
      if (result.status >= 400) expect(typeof result.body.error).toBe('string');
    }
    expect([...statuses].every((status) => status < 500)).toBe(true);
    expect((await api('/health')).status).toBe(200);
    expect((await api('/v1/search/region', { json: { slideId: 'S1', x: 1000, y: 1000, width: 224, height: 224, k: 2 } })).status).toBe(200);
  });

  it('rate-limits per key', async () => {
    const limited = client(server.url, KEYS.limited);
    const statuses = [];
    for (let i = 0; i < 7; i++) statuses.push((await limited('/v1/slides')).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    expectRefusal(await limited('/v1/slides'), 429, 'RATE_LIMITED');
    expect((await api('/v1/slides')).status).toBe(200);
  });

  it('refuses to serve open (without keys) on a non-loopback address', async () => {
    await expect(serve(fixture, { index: fixture.index, host: '0.0.0.0' })).rejects.toThrow(/open server may listen on 127.0.0.1 only/);
  });
});
