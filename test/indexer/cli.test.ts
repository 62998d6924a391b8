/** The `tessera` command, run as a user runs it: a child process, JSON on stdout, exit codes. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { SHARED_MISSING, hasSharedData, slidePath } from '../shared-data.js';
import { runTessera } from '../run-cli.js';


const tessera = (...args: string[]) => runTessera(args);

describe.skipIf(!hasSharedData)(`tessera CLI ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  it('prints slide info as JSON', async () => {
    const { code, stdout } = await tessera('info', slidePath('CMU-1-Small-Region.svs'));
    expect(code).toBe(0);
    const info = JSON.parse(stdout);
    expect(info).toMatchObject({ format: 'aperio-svs', vendor: 'aperio', width: 2220, height: 2967, mpp: [0.499, 0.499], objectivePower: 20 });
    expect(info.levels).toEqual([{ width: 2220, height: 2967, downsample: 1, tileWidth: 240, tileHeight: 240 }]);
    expect(info.associatedImages).toEqual(['thumbnail', 'label', 'macro']);
  });

  it('writes a region as PNG at the requested level and size', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'tessera-cli-')), 'region.png');
    const { code } = await tessera('region', slidePath('ndpi/test3-DAPI-2-387.ndpi'), '--x', '1000', '--y', '1000', '--width', '300', '--height', '200', '--level', '2', '--out', out);
    expect(code).toBe(0);
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 300, 200]);
  });

  it('prints one JSON line per tissue tile', async () => {
    const { code, stdout } = await tessera('tiles', slidePath('CMU-1-Small-Region.svs'), '--mpp', '1', '--size', '224', '--min-tissue', '0.3');
    expect(code).toBe(0);
    const tiles = stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(tiles.length).toBeGreaterThan(0);
    for (const tile of tiles) {
      expect(Object.keys(tile)).toEqual(['x', 'y', 'width', 'height', 'tissue']);
      expect(tile.width).toBe(449);
      expect(tile.tissue).toBeGreaterThanOrEqual(0.3);
    }
  });

  it('exits non-zero with a message naming the file and the reason', async () => {
    const corrupt = await tessera('info', slidePath('broken/broken.svs'));
    expect(corrupt.code).toBe(1);
    expect(corrupt.stderr).toContain('broken.svs: not a recognised slide format');
    const uncalibrated = await tessera('tiles', slidePath('tcga-cr-7395-01a-01-ts1.svs'));
    expect(uncalibrated.code).toBe(1);
    expect(uncalibrated.stderr).toMatch(/tcga-cr-7395-01a-01-ts1\.svs: the slide has no µm\/px calibration.*MPP_MISSING/);
    const outside = await tessera('region', slidePath('CMU-1-Small-Region.svs'), '--x', '0', '--y', '0', '--width', '200000', '--height', '200000', '--out', '/tmp/never.png');
    expect(outside.code).toBe(1);
    expect(outside.stderr).toContain('REGION_TOO_LARGE');
  });

  it('exits 2 on bad usage', async () => {
    expect((await tessera('info')).code).toBe(2);
    expect((await tessera('region', slidePath('CMU-1-Small-Region.svs'), '--x', 'abc', '--y', '0', '--width', '1', '--height', '1', '--out', '/tmp/a.png')).stderr).toContain("--x must be a number, got 'abc'");
    expect((await tessera('frobnicate')).code).toBe(2);
  });
});
