/**
 * Pixels against OpenSlide 3.4.1 at every level of every fixture it reads: the same dimensions,
 * the same level count (except SubIFD pyramids, which OpenSlide 3.4.1 ignores and Tessera reads),
 * and a mean absolute difference of at most 2 per channel (decoders round differently).
 */
import { describe, expect, it } from 'vitest';
import { openSlide } from '../../../engine/index.js';
import { meanAbsoluteDifference, readWithOpenSlide, type RegionRequest } from '../../reference/openslide.js';
import { OPENSLIDE_MISSING, SHARED_MISSING, hasOpenSlide, hasSharedData, slidePath } from '../../shared-data.js';

interface Fixture {
  file: string;
  what: string;
  /** OpenSlide 3.4.1's level count when it differs from Tessera's (SubIFD pyramids). */
  openSlideLevels?: number;
}

const FIXTURES: Fixture[] = [
  { file: 'CMU-1-Small-Region.svs', what: 'Aperio RGB JPEG tiles with OpenSlide\'s colours' },
  { file: 'tcga-cr-7395-01a-01-ts1.svs', what: 'Aperio JPEG 2000 (33005) tiles' },
  { file: 'ndpi/test3-DAPI-2-387.ndpi', what: 'Hamamatsu NDPI restart-interval tiles (DAPI)' },
  { file: 'ndpi/test3-TRITC-2-560.ndpi', what: 'Hamamatsu NDPI restart-interval tiles (TRITC)' },
  { file: 'derived/cmu1-small-pyramid-jpeg.tif', what: 'generic TIFF with YCbCr JPEG tiles and an IFD pyramid' },
  { file: 'derived/cmu1-crop1024-pyramid-deflate.tif', what: 'generic TIFF with Deflate + predictor tiles and alpha' },
  { file: 'derived/cmu1-crop1024-pyramid-lzw-subifd.tif', what: 'generic TIFF with LZW tiles and a SubIFD pyramid', openSlideLevels: 1 },
  { file: 'derived/cmu1-crop1024-pyramid.ome.tif', what: 'OME-TIFF SubIFD pyramid', openSlideLevels: 1 },
  { file: 'fixtures/boxes.tiff', what: 'generic TIFF with 64 px Deflate tiles' },
];

/**
 * Three regions per level: the corner, the middle, and one touching the bottom-right edge.
 * OpenSlide 3.4.1 places a level-0 position at x / downsample, a fraction, and paints it with
 * bilinear interpolation; Tessera returns the nearest pixel. So each spot moves to the nearest
 * position where that fraction is under 0.02 px, where the two readers agree on what to return.
 */
function regionsFor(levels: Array<{ width: number; height: number; downsample: number }>, count: number): RegionRequest[] {
  const regions: RegionRequest[] = [];
  levels.slice(0, count).forEach((level, index) => {
    const width = Math.min(256, level.width);
    const height = Math.min(256, level.height);
    const spots: Array<[number, number]> = [
      [0, 0],
      [Math.floor((level.width - width) / 2), Math.floor((level.height - height) / 2)],
      [level.width - width, level.height - height],
    ];
    for (const [lvlX, lvlY] of spots) {
      const baseX = alignedBase(lvlX, level.downsample, level.width - width);
      const baseY = alignedBase(lvlY, level.downsample, level.height - height);
      regions.push([index, baseX, baseY, width, height]);
    }
  });
  return regions;
}

function alignedBase(target: number, downsample: number, maxLvl: number): number {
  for (let distance = 0; distance <= maxLvl; distance++) {
    for (const lvl of [target - distance, target + distance]) {
      if (lvl < 0 || lvl > maxLvl) continue;
      const base = Math.round(lvl * downsample);
      if (Math.abs(base / downsample - lvl) < 0.02) return base;
    }
  }
  return 0;
}

describe.skipIf(!hasSharedData || !hasOpenSlide)(`pixels match OpenSlide 3.4.1 ${!hasSharedData ? SHARED_MISSING : !hasOpenSlide ? OPENSLIDE_MISSING : ''}`, () => {
  for (const fixture of FIXTURES) {
    it(`reads ${fixture.what} (${fixture.file})`, async () => {
      const path = slidePath(fixture.file);
      const slide = await openSlide(path);
      try {
        const requests = regionsFor(slide.levels, fixture.openSlideLevels ?? slide.levels.length);
        const reference = readWithOpenSlide(path, requests);
        expect(slide.levels.length).toBe(fixture.openSlideLevels === undefined ? reference.levels.length : slide.levels.length);
        expect(reference.levels.length).toBe(fixture.openSlideLevels ?? slide.levels.length);
        reference.levels.forEach(([width, height], index) => {
          expect({ level: index, width: slide.levels[index]?.width, height: slide.levels[index]?.height }).toEqual({ level: index, width, height });
        });
        for (const [index, request] of requests.entries()) {
          const [level, x, y, width, height] = request;
          const ours = await slide.readRegion(level, x, y, width, height);
          expect([ours.width, ours.height]).toEqual([width, height]);
          const { mad, compared } = meanAbsoluteDifference(ours.data, reference.regions[index]!);
          expect(compared, `OpenSlide painted nothing at ${request.join(',')}`).toBeGreaterThan(0);
          expect(mad, `mean absolute difference at level ${level} (${x}, ${y})`).toBeLessThanOrEqual(2);
        }
      } finally {
        slide.close();
      }
    });
  }
});
