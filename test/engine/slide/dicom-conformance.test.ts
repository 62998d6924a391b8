/**
 * DICOM as converters write it: the shared SVS, pyramidal TIFF and NDPI converted with
 * OrthancWSIDicomizer 1.1 (JPEG, JPEG 2000, uncompressed; one instance per level and several),
 * every level read by Tessera against OpenSlide reading the source. Conversions are cached in
 * .cache/dicom-conversions (about 30 s the first time). The table is printed for notes;
 * `node --import tsx benchmarks/dicom/conformance.ts` prints the same and writes JSON.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { openSlide } from '../../../engine/index.js';
import { runTessera } from '../../run-cli.js';
import { checkConversion, conformanceTable, type ConformanceResult } from '../../reference/dicom-conformance.js';
import { DICOMIZER_MISSING, allConversions, conversionName, convertedSlide, hasDicomizer } from '../../reference/dicomizer.js';
import { OPENSLIDE_MISSING, SHARED_MISSING, hasOpenSlide, hasSharedData } from '../../shared-data.js';

const missing = !hasSharedData ? SHARED_MISSING : !hasOpenSlide ? OPENSLIDE_MISSING : !hasDicomizer ? DICOMIZER_MISSING : '';

/**
 * Levels the converter rebuilt with its own downsampling are compared by 8 × 8 block means
 * (see LevelConformance.blockMad): measured up to 5.8 at the coarsest levels, where a block covers
 * 128 source pixels; frames read in the wrong order measured 124.
 */
const MAX_BUILT_LEVEL_BLOCK_MAD = 8;

describe.skipIf(missing !== '')(`DICOM converted by OrthancWSIDicomizer ${missing}`, () => {
  const results: ConformanceResult[] = [];
  afterAll(() => {
    if (results.length > 0) console.log(`\nDICOM conformance (pixel MAD / 8×8 block MAD per level):\n${conformanceTable(results)}\n`);
  });

  for (const conversion of allConversions()) {
    it(`reads every level of ${conversionName(conversion)} as OpenSlide reads the source`, async () => {
      const result = await checkConversion(conversion);
      results.push(result);
      expect({ width: result.width, height: result.height }).toEqual({ width: result.sourceWidth, height: result.sourceHeight });
      // The true imaged size was passed (crossed, as the converter needs): mpp comes out right.
      expect(result.mpp?.[0]).toBeCloseTo(result.sourceMpp[0], 3);
      expect(result.mpp?.[1]).toBeCloseTo(result.sourceMpp[1], 3);
      // `--max-size 1` splits every level over 1 MB (a JPEG copy of the small TIFF has none that large).
      if (conversion.layout === 'split' && conversion.compression !== 'jpeg') expect(result.instances).toBeGreaterThan(result.levels.length);
      // The converter copies JPEG tiles of a TIFF source as they are; it rebuilds the rest.
      const copied = conversion.compression === 'jpeg' && !conversion.viaOpenSlide;
      for (const level of result.levels) {
        const where = `level ${level.level} (${level.width}×${level.height})`;
        if (level.level === 0 || (copied && level.mad !== null)) {
          expect(level.mad, where).not.toBeNull();
          expect(level.mad ?? Infinity, where).toBeLessThanOrEqual(2);
        }
        expect(level.blockMad, where).toBeLessThanOrEqual(level.level === 0 || copied ? 2 : MAX_BUILT_LEVEL_BLOCK_MAD);
      }
    });
  }

  it('states PixelSpacing as the converter wrote it: crosswise from its default 15 × 15 mm', async () => {
    const folder = await convertedSlide({ source: 'CMU-1-Small-Region.svs', compression: 'jpeg', layout: 'one', imagedMm: [15, 15] });
    const slide = await openSlide(folder);
    // imaged width ÷ rows, imaged height ÷ columns (OrthancWSIDicomizer 1.1).
    expect(slide.mpp?.[0]).toBeCloseTo(15000 / 2220, 3);
    expect(slide.mpp?.[1]).toBeCloseTo(15000 / 2967, 3);
    slide.close();
  });

  it('tessera info warns when a DICOM slide states a scale no microscope has (> 20 µm/px)', async () => {
    const folder = await convertedSlide({ source: 'CMU-1-Small-Region.svs', compression: 'jpeg', layout: 'one', imagedMm: [60, 60] });
    const wrong = await runTessera(['info', folder]);
    expect(wrong.code).toBe(0);
    expect(JSON.parse(wrong.stdout).mpp[0]).toBeGreaterThan(20);
    expect(wrong.stderr).toMatch(/warning: .*implausible for microscopy.*--imaged-width/);
    const right = await runTessera(['info', await convertedSlide({ source: 'CMU-1-Small-Region.svs', compression: 'jpeg', layout: 'one' })]);
    expect(right.stderr).not.toMatch(/warning/);
  });
});
