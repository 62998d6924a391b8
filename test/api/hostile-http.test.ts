/**
 * Hostile input below the JSON layer, against the real server over raw sockets: malformed
 * multipart bodies, requests that never finish, CONNECT, too many connections, damaged TIFF
 * uploads, huge regions for tiny images, overlapping reloads and what /health tells a stranger.
 * Timeouts are set small in this server's config so that the held requests end quickly.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { SHARED_MISSING, hasSharedData } from '../shared-data.js';
import { KEYS, buildApiFixture, client, serve, type ApiFixture } from './fixture.js';

const LIMITS = { headersTimeoutMs: 800, requestTimeoutMs: 1200, handlerTimeoutMs: 20_000, keepAliveTimeoutMs: 1000, idleTimeoutMs: 3000, connectionsPerClient: 24 };
const AUTH = `Authorization: Bearer ${KEYS.all}\r\n`;

/** What came back on a raw socket: the status line's code (0: none), the body, and how long until the socket closed. */
interface RawResult {
  status: number;
  body: string;
  ms: number;
}

/** Sends bytes on a fresh connection and waits for the server to close it (or `waitMs`). */
function rawRequest(port: number, bytes: string | Buffer, waitMs = 10_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4), ms: performance.now() - started });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish();
    }, waitMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('close', finish);
    socket.on('error', () => undefined);
    socket.write(bytes);
  });
}

function post(contentType: string, body: string | Buffer, path = '/v1/search/region'): Buffer {
  const data = Buffer.from(body as string, typeof body === 'string' ? 'latin1' : undefined);
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${AUTH}Content-Type: ${contentType}\r\nContent-Length: ${data.length}\r\nConnection: close\r\n\r\n`), data]);
}

/**
 * A little-endian uncompressed RGB TIFF of one strip. `pixelBytes` of data follow the header;
 * `stripOffset` and `nextDirectory` override what the directory says.
 */
function craftTiff(options: { width: number; height: number; pixelBytes: number; stripOffset?: number; stripByteCount?: number; nextDirectory?: 'self' }): Buffer {
  const entries: Array<[tag: number, type: number, count: number, value: number]> = [];
  const ifdOffset = 8;
  const entryCount = 10;
  const ifdBytes = 2 + entryCount * 12 + 4;
  const bitsAt = ifdOffset + ifdBytes;
  const pixelsAt = bitsAt + 6;
  entries.push([256, 4, 1, options.width], [257, 4, 1, options.height], [258, 3, 3, bitsAt], [259, 3, 1, 1], [262, 3, 1, 2]);
  entries.push([273, 4, 1, options.stripOffset ?? pixelsAt], [277, 3, 1, 3], [278, 4, 1, options.height], [279, 4, 1, options.stripByteCount ?? options.width * options.height * 3], [284, 3, 1, 1]);
  const file = Buffer.alloc(pixelsAt + options.pixelBytes, 0x80);
  file.write('II', 0, 'latin1');
  file.writeUInt16LE(42, 2);
  file.writeUInt32LE(ifdOffset, 4);
  file.writeUInt16LE(entryCount, ifdOffset);
  entries.forEach(([tag, type, count, value], i) => {
    const at = ifdOffset + 2 + i * 12;
    file.writeUInt16LE(tag, at);
    file.writeUInt16LE(type, at + 2);
    file.writeUInt32LE(count, at + 4);
    if (type === 3 && count === 1) file.writeUInt16LE(value, at + 8);
    else file.writeUInt32LE(value, at + 8);
  });
  file.writeUInt32LE(options.nextDirectory === 'self' ? ifdOffset : 0, ifdOffset + 2 + entryCount * 12);
  for (let i = 0; i < 3; i++) file.writeUInt16LE(8, bitsAt + i * 2);
  return file;
}

describe.skipIf(!hasSharedData)(`hostile HTTP ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let server: RunningServer;
  let port: number;
  let api: ReturnType<typeof client>;

  beforeAll(async () => {
    fixture = await buildApiFixture();
    const config = join(fixture.scratch, 'hostile-config.json');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(fixture.config, 'utf8')), limits: LIMITS }));
    server = await serve(fixture, { index: fixture.index, config });
    port = Number(new URL(server.url).port);
    api = client(server.url, KEYS.all);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
  });

  it('answers every malformed multipart body with a typed 400, never 500', async () => {
    const field = (name: string, value: string, eol = '\r\n') => `Content-Disposition: form-data; name="${name}"${eol}${eol}${value}${eol}`;
    const cases: Record<string, Buffer> = {
      'no closing boundary': post('multipart/form-data; boundary=XX', `--XX\r\n${field('k', '5')}`),
      'a file part cut short': post('multipart/form-data; boundary=XX', '--XX\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x1a\n\0\0\0\rIHDR'),
      'multipart without boundary=': post('multipart/form-data', `--XX\r\n${field('k', '5')}--XX--\r\n`),
      'an unquoted boundary with a space': post('multipart/form-data; boundary=a b', `--a b\r\n${field('k', '5')}--a b--\r\n`),
      'random bytes': post('multipart/form-data; boundary=XX', Buffer.from(Array.from({ length: 2048 }, (_, i) => (i * 7919 + 13) % 256))),
      'LF instead of CRLF': post('multipart/form-data; boundary=XX', `--XX\n${field('k', '5', '\n')}--XX--\n`),
      'no body and no content type': Buffer.from(`POST /v1/search/region HTTP/1.1\r\nHost: x\r\n${AUTH}Connection: close\r\n\r\n`),
    };
    for (const size of [1024, 16 * 1024, 30 * 1024, 50 * 1024, 80 * 1024]) {
      cases[`a part without Content-Disposition of ${size} bytes`] = post('multipart/form-data; boundary=XX', `--XX\r\nContent-Type: text/plain\r\n\r\n${'a'.repeat(size)}\r\n--XX--\r\n`);
    }
    for (const [name, bytes] of Object.entries(cases)) {
      const result = await rawRequest(port, bytes, 5000);
      expect(result.status, `${name}: ${result.body}`).toBe(400);
      const body = JSON.parse(result.body);
      expect(body.error, name).toBe('BAD_REQUEST');
      expect(typeof body.message).toBe('string');
    }
    // A sound multipart upload still works.
    const png = await sharp({ create: { width: 224, height: 224, channels: 3, background: { r: 200, g: 120, b: 180 } } }).png().toBuffer();
    const form = new FormData();
    form.append('image', new Blob([new Uint8Array(png)]), 'q.png');
    form.append('k', '2');
    const sound = await api('/v1/search/region', { body: form });
    expect(sound.status, JSON.stringify(sound.body)).toBe(200);
    expect(sound.body.results).toHaveLength(2);
  });

  it('ends requests that never finish within the timeouts, answering /health throughout', async () => {
    const held = {
      'a body shorter than its Content-Length': `POST /v1/search/region HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"slideId"`,
      'a chunk size of 7fffffffffffffff': `POST /v1/search/region HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc`,
      'headers that never end': `GET /v1/slides HTTP/1.1\r\nHost: x\r\n${AUTH}X-Slow: 1`,
      'a multipart part without Content-Disposition, cut short': `POST /v1/search/region HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 40000\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n${'a'.repeat(20_000)}`,
    };
    const pending = Object.entries(held).flatMap(([name, bytes]) => Array.from({ length: 3 }, () => rawRequest(port, bytes, 10_000).then((result) => ({ name, ...result }))));
    const healthMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await client(server.url)('/health')).status).toBe(200);
      healthMs.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(Math.max(...healthMs)).toBeLessThan(1000);
    for (const result of await Promise.all(pending)) {
      // 408 from the request timeout, or a closed socket; never left open.
      expect([0, 400, 408], `${result.name}: ${result.body}`).toContain(result.status);
      expect(result.ms, result.name).toBeLessThan(LIMITS.requestTimeoutMs + 2500);
    }
    expect((await client(server.url)('/health')).status).toBe(200);
  });

  it('answers CONNECT with 405 instead of dropping the socket', async () => {
    const result = await rawRequest(port, 'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n', 3000);
    expect(result.status).toBe(405);
    expect(JSON.parse(result.body).error).toBe('METHOD_NOT_ALLOWED');
  });

  it('caps open connections per client, and serves again once they close', async () => {
    const sockets: Socket[] = [];
    const answers: string[] = [];
    for (let i = 0; i < LIMITS.connectionsPerClient + 4; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('data', (chunk: Buffer) => answers.push(chunk.toString('latin1')));
      socket.on('error', () => undefined);
      sockets.push(socket);
      await new Promise((resolve) => socket.once('connect', resolve));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(answers.filter((answer) => answer.startsWith('HTTP/1.1 429')).length).toBeGreaterThanOrEqual(4);
    expect(answers.join('')).toContain('TOO_MANY_CONNECTIONS');
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await client(server.url)('/health')).status).toBe(200);
  });

  it('refuses damaged TIFF uploads with 400 IMAGE_INVALID naming the problem', async () => {
    const search = (image: Buffer) => api('/v1/search/region', { json: { image: image.toString('base64'), k: 2 } });
    const claims = await search(craftTiff({ width: 4096, height: 4096, pixelBytes: 300, stripByteCount: 300 }));
    expect(claims.status, JSON.stringify(claims.body)).toBe(400);
    expect(claims.body.error).toBe('IMAGE_INVALID');
    expect(claims.body.message).toMatch(/claims 4096×4096 px uncompressed .* stores 300 bytes/);
    const pastEnd = await search(craftTiff({ width: 64, height: 64, pixelBytes: 64 * 64 * 3, stripOffset: 10_000_000 }));
    expect(pastEnd.status).toBe(400);
    expect(pastEnd.body.message).toMatch(/strip 0 .* past the end of the file/);
    const loop = await search(craftTiff({ width: 64, height: 64, pixelBytes: 64 * 64 * 3, nextDirectory: 'self' }));
    expect(loop.status).toBe(400);
    expect(loop.body.message).toMatch(/loop/);
    // The same construction, sound, is searched; so is a compressed TIFF written by libvips.
    expect((await search(craftTiff({ width: 64, height: 64, pixelBytes: 64 * 64 * 3 }))).status).toBe(200);
    const lzw = await sharp({ create: { width: 96, height: 96, channels: 3, background: 'teal' } }).tiff({ compression: 'lzw', tile: true, tileWidth: 32, tileHeight: 32 }).toBuffer();
    expect((await search(lzw)).status).toBe(200);
  });

  it('reads a huge region for a tiny image from bounded memory', async () => {
    const path = '/v1/slides/S1/region?x=0&y=0&width=8192&height=8192&size=8';
    const before = process.memoryUsage().rss;
    const answers = await Promise.all(Array.from({ length: 8 }, () => api(path)));
    const grownMb = (process.memoryUsage().rss - before) / 2 ** 20;
    for (const answer of answers) {
      expect(answer.status).toBe(200);
      const meta = await sharp(answer.body as Buffer).metadata();
      expect([meta.width, meta.height]).toEqual([8, 8]);
    }
    // One piece read at level 0 took about 219 MB a request; blocks of 1024² take 3 MB each.
    expect(grownMb).toBeLessThan(200);
  });

  it('refuses a reload while one runs', async () => {
    const answers = await Promise.all(Array.from({ length: 3 }, () => api('/v1/admin/reload', { json: {} })));
    const statuses = answers.map((answer) => answer.status).sort();
    expect(statuses[0]).toBe(200);
    expect(statuses.filter((status) => status === 409).length).toBeGreaterThanOrEqual(1);
    expect(answers.find((answer) => answer.status === 409)?.body.error).toBe('RELOAD_IN_PROGRESS');
    expect((await api('/v1/admin/reload', { json: {} })).status).toBe(200);
  });

  it('answers a request whose handler runs past its deadline with 503 DEADLINE_EXCEEDED', async () => {
    const config = join(fixture.scratch, 'deadline-config.json');
    writeFileSync(config, JSON.stringify({ ...JSON.parse(readFileSync(fixture.config, 'utf8')), limits: { ...LIMITS, handlerTimeoutMs: 30 } }));
    const hurried = await serve(fixture, { index: fixture.index, config, 'no-model': true });
    try {
      const started = performance.now();
      // Reading all of S1 (one level) in blocks, resizing and encoding a 1024 px PNG takes far over 30 ms.
      const slow = await client(hurried.url, KEYS.all)('/v1/slides/S1/region?x=0&y=0&width=2220&height=2967&size=1024&format=png');
      expect(slow.status, JSON.stringify(slow.body)).toBe(503);
      expect(slow.body.error).toBe('DEADLINE_EXCEEDED');
      expect(performance.now() - started).toBeLessThan(2000);
      expect((await client(hurried.url)('/health')).status).toBe(200);
    } finally {
      await hurried.close();
    }
  });

  it('tells a caller without a key only that the server is alive', async () => {
    expect((await client(server.url)('/health')).body).toEqual({ status: 'ok', role: 'all' });
    const index = await api('/v1/index');
    expect(index.body.totals.slides).toBe(3);
    expect(index.body.groups[0].shards.length).toBe(2);
    const scoped = await client(server.url, KEYS.stritt)('/v1/index');
    expect(scoped.body.totals.slides).toBe(1);
    expect(scoped.body.groups).toEqual([]);
    expect((await client(server.url)('/v1/index')).status).toBe(401);
  });
});
