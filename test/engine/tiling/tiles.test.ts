/** Tissue detection and the physical tile grid on real slides. */
import { describe, expect, it } from 'vitest';
import { TesseraError, computeTissueMask, openSlide, readGridTile, tileGrid } from '../../../engine/index.js';
import { SHARED_MISSING, hasSharedData, slidePath } from '../../shared-data.js';

describe.skipIf(!hasSharedData)(`tissue tiles ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  it('keeps tissue tiles and drops glass on an H&E slide', async () => {
    const slide = await openSlide(slidePath('CMU-1-Small-Region.svs'));
    const everything = await tileGrid(slide, 'cmu', { minTissue: 0 });
    const tissue = await tileGrid(slide, 'cmu', { minTissue: 0.5 });
    // 224 px at 0.5 µm/px is 224 px of a 0.499 µm/px slide; whole tiles only.
    expect(everything).toHaveLength(Math.floor(2220 / 224) * Math.floor(2967 / 224));
    expect(tissue.length).toBeGreaterThan(10);
    expect(tissue.length).toBeLessThan(everything.length);
    for (const tile of tissue) {
      expect(tile.tissue).toBeGreaterThanOrEqual(0.5);
      expect([tile.baseWidth, tile.baseHeight]).toEqual([224, 224]);
      expect(tile.baseX + tile.baseWidth).toBeLessThanOrEqual(slide.width);
    }
    // The top-left corner of this slide is glass.
    expect(everything[0]?.tissue).toBeLessThan(0.1);
    slide.close();
  });

  it('finds most of a frozen section as tissue and little of the background', async () => {
    const slide = await openSlide(slidePath('tcga-cr-7395-01a-01-ts1.svs'));
    const mask = await computeTissueMask(slide);
    const covered = mask.data.reduce((sum, v) => sum + v, 0) / mask.data.length;
    expect(covered).toBeGreaterThan(0.4);
    expect(covered).toBeLessThan(0.8);
    slide.close();
  });

  it('refuses to tile a slide without calibration unless one is given', async () => {
    const slide = await openSlide(slidePath('tcga-cr-7395-01a-01-ts1.svs'));
    const error = await tileGrid(slide, 'tcga-cr-7395-01a-01-ts1.svs').catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(TesseraError);
    expect((error as TesseraError).code).toBe('MPP_MISSING');
    expect((error as TesseraError).message).toContain('tcga-cr-7395-01a-01-ts1.svs');
    const tiles = await tileGrid(slide, 'tcga', { slideMpp: [0.25, 0.25] });
    expect(tiles[0]?.baseWidth).toBe(448);
    slide.close();
  });

  it('reads a tile at the target resolution from a coarser level and resizes it', async () => {
    const slide = await openSlide(slidePath('ndpi/test3-DAPI-2-387.ndpi'));
    const [tile] = await tileGrid(slide, 'ndpi', { minTissue: 0.5 });
    expect(tile).toBeDefined();
    expect(tile!.baseWidth).toBe(Math.round((224 * 0.5) / slide.mpp![0]));
    const image = await readGridTile(slide, tile!);
    expect([image.width, image.height, image.data.length]).toEqual([224, 224, 224 * 224 * 3]);
    slide.close();
  });

  it('reads a grid tile identical to the level-0 region when no resize is needed', async () => {
    const slide = await openSlide(slidePath('CMU-1-Small-Region.svs'));
    const [tile] = await tileGrid(slide, 'cmu');
    const image = await readGridTile(slide, tile!);
    const region = await slide.readRegion(0, tile!.baseX, tile!.baseY, 224, 224);
    expect(image.data.equals(region.data)).toBe(true);
    slide.close();
  });
});
