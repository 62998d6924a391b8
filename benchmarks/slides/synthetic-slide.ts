/**
 * Builds the benchmark's large synthetic slide: a 40 960 × 40 960 px tiled TIFF of 256 px JPEG
 * tiles, each a 256 px crop of real tissue from the shared slides (a pool of distinct crops
 * repeated across the grid), at 0.25 µm/px. Written once and cached outside git.
 */
import { closeSync, existsSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';
import { openSlide, tileGrid } from '../../engine/index.js';

const TILE = 256;
export const SYNTHETIC_SIZE = 40_960;

export async function ensureSyntheticSlide(path: string, sourceSlides: string[]): Promise<string> {
  if (existsSync(path)) return path;
  mkdirSync(dirname(path), { recursive: true });
  const pool = await tissueCrops(sourceSlides, 400);
  const across = SYNTHETIC_SIZE / TILE;
  const count = across * across;
  const partial = `${path}.partial`;
  const fd = openSync(partial, 'w');
  let at = 8;
  const offsets: number[] = [];
  const byteCounts: number[] = [];
  writeSync(fd, Buffer.from([0x49, 0x49, 42, 0, 0, 0, 0, 0]), 0, 8, 0);
  for (let i = 0; i < count; i++) {
    // A fixed pseudo-random pick so neighbouring tiles differ.
    const jpeg = pool[(i * 2654435761) % pool.length] as Buffer;
    writeSync(fd, jpeg, 0, jpeg.length, at);
    offsets.push(at);
    byteCounts.push(jpeg.length);
    at += jpeg.length + (jpeg.length % 2);
  }
  const offsetsAt = at;
  const offsetTable = Buffer.alloc(count * 4);
  offsets.forEach((offset, i) => offsetTable.writeUInt32LE(offset, i * 4));
  writeSync(fd, offsetTable, 0, offsetTable.length, offsetsAt);
  const countsAt = offsetsAt + offsetTable.length;
  const countTable = Buffer.alloc(count * 4);
  byteCounts.forEach((bytes, i) => countTable.writeUInt32LE(bytes, i * 4));
  writeSync(fd, countTable, 0, countTable.length, countsAt);
  const valuesAt = countsAt + countTable.length;
  // BitsPerSample (3 shorts), X/YResolution (rationals): 40 000 px/cm = 0.25 µm/px.
  const values = Buffer.alloc(6 + 16);
  values.writeUInt16LE(8, 0);
  values.writeUInt16LE(8, 2);
  values.writeUInt16LE(8, 4);
  values.writeUInt32LE(40_000, 6);
  values.writeUInt32LE(1, 10);
  values.writeUInt32LE(40_000, 14);
  values.writeUInt32LE(1, 18);
  writeSync(fd, values, 0, values.length, valuesAt);
  const entries: Array<[tag: number, type: number, count: number, value: number]> = [
    [256, 4, 1, SYNTHETIC_SIZE],
    [257, 4, 1, SYNTHETIC_SIZE],
    [258, 3, 3, valuesAt],
    [259, 3, 1, 7],
    [262, 3, 1, 6],
    [277, 3, 1, 3],
    [282, 5, 1, valuesAt + 6],
    [283, 5, 1, valuesAt + 14],
    [284, 3, 1, 1],
    [296, 3, 1, 3],
    [322, 3, 1, TILE],
    [323, 3, 1, TILE],
    [324, 4, count, offsetsAt],
    [325, 4, count, countsAt],
    [530, 3, 2, 2 | (2 << 16)],
  ];
  const ifdAt = valuesAt + values.length + (values.length % 2);
  const ifd = Buffer.alloc(2 + entries.length * 12 + 4);
  ifd.writeUInt16LE(entries.length, 0);
  entries.forEach(([tag, type, n, value], i) => {
    ifd.writeUInt16LE(tag, 2 + i * 12);
    ifd.writeUInt16LE(type, 4 + i * 12);
    ifd.writeUInt32LE(n, 6 + i * 12);
    ifd.writeUInt32LE(value, 10 + i * 12);
  });
  writeSync(fd, ifd, 0, ifd.length, ifdAt);
  const header = Buffer.alloc(4);
  header.writeUInt32LE(ifdAt, 0);
  writeSync(fd, header, 0, 4, 4);
  closeSync(fd);
  renameSync(partial, path);
  return path;
}

async function tissueCrops(sourceSlides: string[], wanted: number): Promise<Buffer[]> {
  const crops: Buffer[] = [];
  for (const source of sourceSlides) {
    const slide = await openSlide(source);
    const tiles = await tileGrid(slide, source, { mpp: slide.mpp?.[0] ?? 0.5, sizePx: TILE, minTissue: 0.6 });
    for (const tile of tiles) {
      const region = await slide.readRegion(0, tile.baseX, tile.baseY, TILE, TILE);
      crops.push(await sharp(region.data, { raw: { width: TILE, height: TILE, channels: 3 } }).jpeg({ quality: 80, chromaSubsampling: '4:2:0' }).toBuffer());
      if (crops.length >= wanted) break;
    }
    slide.close();
    if (crops.length >= wanted) break;
  }
  if (crops.length === 0) throw new Error('no tissue found in the source slides');
  return crops;
}
