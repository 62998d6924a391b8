/** The decoded-tile cache stays within its byte budget and decodes a tile once for concurrent readers. */
import { describe, expect, it } from 'vitest';
import { TileCache } from '../../../engine/slide/tile-cache.js';

const tile = (bytes: number) => ({ data: Buffer.alloc(bytes), width: bytes / 3, height: 1 });

describe('tile cache', () => {
  it('evicts least recently used tiles to stay within its byte budget', async () => {
    const cache = new TileCache(3000);
    for (let i = 0; i < 10; i++) await cache.getOrLoad(`t${i}`, async () => tile(999));
    expect(cache.sizeBytes).toBeLessThanOrEqual(3000);
    let loads = 0;
    await cache.getOrLoad('t9', async () => (loads++, tile(999)));
    await cache.getOrLoad('t0', async () => (loads++, tile(999)));
    expect(loads).toBe(1);
  });

  it('shares one decode among concurrent requests for the same tile', async () => {
    const cache = new TileCache(1 << 20);
    let loads = 0;
    const load = async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 10));
      return tile(300);
    };
    await Promise.all([cache.getOrLoad('a', load), cache.getOrLoad('a', load), cache.getOrLoad('a', load)]);
    expect(loads).toBe(1);
  });

  it('does not cache a failed decode', async () => {
    const cache = new TileCache(1 << 20);
    await expect(cache.getOrLoad('bad', async () => Promise.reject(new Error('corrupt')))).rejects.toThrow('corrupt');
    expect(await cache.getOrLoad('bad', async () => tile(3))).toEqual(tile(3));
  });
});
