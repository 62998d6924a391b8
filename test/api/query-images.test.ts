/**
 * An uploaded query image is decoded to the same pixels as the same file read by the indexer
 * (engine/slide image source): alpha flattened onto white, not dropped, so a transparent
 * background is white in both and a query for an indexed image finds it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeQueryImage } from '../../api/query-images.js';
import { openSlide } from '../../engine/index.js';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-query-images-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('uploaded query images', () => {
  it('flatten alpha onto white as indexed image tiles do', async () => {
    const width = 8;
    const height = 4;
    // Left half opaque red, right half fully transparent black (RGB 0,0,0 under alpha 0).
    const rgba = Buffer.alloc(width * height * 4);
    for (let y = 0; y < height; y++) for (let x = 0; x < width / 2; x++) rgba.set([200, 30, 40, 255], (y * width + x) * 4);
    const png = await sharp(rgba, { raw: { width, height, channels: 4 } }).png().toBuffer();
    const path = join(scratch, 'tile.png');
    writeFileSync(path, png);

    const uploaded = await decodeQueryImage(png, 1_000_000);
    const slide = await openSlide(path);
    const indexed = await slide.readRegion(0, 0, 0, width, height);
    slide.close();

    expect(uploaded.width).toBe(width);
    expect(Buffer.from(uploaded.data).equals(Buffer.from(indexed.data))).toBe(true);
    // The transparent half is white, not the black hidden under alpha 0.
    expect([...uploaded.data.subarray((width - 1) * 3, width * 3)]).toEqual([255, 255, 255]);
  });
});
