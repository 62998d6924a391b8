/**
 * Bad slides and bad requests give a typed TesseraError that names the file and the reason,
 * quickly, and never a crash, a hang or unbounded memory.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TesseraError, openSlide, type ErrorCode } from '../../../engine/index.js';
import { SHARED_MISSING, hasSharedData, slidePath } from '../../shared-data.js';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-bad-'));

/** Runs `work` and returns the TesseraError it must throw within two seconds. */
async function expectFailure(work: () => Promise<unknown>, code: ErrorCode, mentions: string): Promise<void> {
  const started = performance.now();
  const error = await work().then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(performance.now() - started).toBeLessThan(2000);
  expect(error).toBeInstanceOf(TesseraError);
  expect((error as TesseraError).code).toBe(code);
  expect((error as TesseraError).message).toContain(mentions);
}

function truncatedCopy(file: string, fraction: number): string {
  const bytes = readFileSync(slidePath(file));
  const out = join(scratch, `truncated-${Math.round(fraction * 100)}-${file.replaceAll('/', '_')}`);
  writeFileSync(out, bytes.subarray(0, Math.floor(bytes.length * fraction)));
  return out;
}

async function readWholeSlide(path: string): Promise<void> {
  const slide = await openSlide(path);
  try {
    for (let level = 0; level < slide.levels.length; level++) {
      const { width, height, downsample } = slide.levels[level]!;
      for (let y = 0; y < height; y += 1024) {
        await slide.readRegion(level, 0, Math.round(y * downsample), width, Math.min(1024, height - y));
      }
    }
  } finally {
    slide.close();
  }
}

describe.skipIf(!hasSharedData)(`bad slides ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  it('refuses a corrupt SVS file that is not a TIFF at all (broken.svs)', () => expectFailure(() => openSlide(slidePath('broken/broken.svs')), 'SLIDE_UNSUPPORTED', 'broken.svs'));

  it('refuses a TIFF with an unknown compression (unopenable.tiff)', () => expectFailure(() => openSlide(slidePath('fixtures/unopenable.tiff')), 'SLIDE_UNSUPPORTED', 'compression 52479'));

  it('opens unreadable.svs but reports its corrupt tile data when read', () => expectFailure(() => readWholeSlide(slidePath('fixtures/unreadable.svs')), 'SLIDE_CORRUPT', 'unreadable.svs'));

  it('refuses a text file renamed .svs', () => {
    const path = join(scratch, 'notes.svs');
    writeFileSync(path, 'Patient slide list\nnothing to see here\n');
    return expectFailure(() => openSlide(path), 'SLIDE_UNSUPPORTED', 'notes.svs: not a recognised slide format');
  });

  it('refuses an empty file', () => {
    const path = join(scratch, 'empty.ndpi');
    writeFileSync(path, '');
    return expectFailure(() => openSlide(path), 'SLIDE_CORRUPT', 'empty.ndpi: file is empty');
  });

  it('names a missing file', () => expectFailure(() => openSlide(join(scratch, 'absent.svs')), 'SLIDE_NOT_FOUND', 'absent.svs'));

  for (const [file, fraction] of [
    ['CMU-1-Small-Region.svs', 0.5],
    ['CMU-1-Small-Region.svs', 0.2],
    ['ndpi/test3-DAPI-2-387.ndpi', 0.7],
    ['tcga-small-dicom.dcm', 0.6],
    ['tcga-cr-7395-01a-01-ts1.svs', 0.9],
  ] as const) {
    it(`reports a truncated copy of ${file} (${fraction * 100}%) as corrupt`, () => expectFailure(() => readWholeSlide(truncatedCopy(file, fraction)), 'SLIDE_CORRUPT', 'truncated'));
  }

  it('refuses a folder with no DICOM files', () => {
    const folder = join(scratch, 'empty-folder');
    mkdirSync(folder, { recursive: true });
    return expectFailure(() => openSlide(folder), 'SLIDE_UNSUPPORTED', 'no DICOM files');
  });

  it('refuses a slide outside the configured slide roots, symlinks resolved, whether or not it exists', () => {
    const root = join(scratch, 'root');
    mkdirSync(root, { recursive: true });
    copyFileSync(slidePath('fixtures/small.svs'), join(root, 'small.svs'));
    return Promise.all([
      expectFailure(() => openSlide(slidePath('fixtures/small.svs'), { roots: [root] }), 'SLIDE_ACCESS_DENIED', 'outside the configured slide roots'),
      // A missing file outside the roots is refused like an existing one: the answer tells nothing of what exists there.
      expectFailure(() => openSlide(join(root, '..', '..', 'etc', 'no-such-file'), { roots: [root] }), 'SLIDE_ACCESS_DENIED', 'outside the configured slide roots'),
      expectFailure(() => openSlide(join(root, 'missing.svs'), { roots: [root] }), 'SLIDE_NOT_FOUND', 'missing.svs'),
      openSlide(join(root, 'small.svs'), { roots: [root] }).then((slide) => slide.close()),
    ]);
  });
});

describe.skipIf(!hasSharedData)(`bad region requests ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const open = () => openSlide(slidePath('CMU-1-Small-Region.svs'));

  it('refuses a region entirely outside the slide', async () => {
    const slide = await open();
    await expectFailure(() => slide.readRegion(0, 5000, 5000, 224, 224), 'REGION_OUT_OF_BOUNDS', 'outside the slide');
    await expectFailure(() => slide.readRegion(0, -500, 0, 224, 224), 'REGION_OUT_OF_BOUNDS', 'outside the slide');
    slide.close();
  });

  it('refuses zero, negative and fractional sizes', async () => {
    const slide = await open();
    for (const [width, height] of [[0, 10], [10, -5], [-1, -1], [1.5, 10]]) {
      await expectFailure(() => slide.readRegion(0, 0, 0, width!, height!), 'REGION_INVALID', 'positive integers');
    }
    await expectFailure(() => slide.readRegion(0, Number.NaN, 0, 10, 10), 'REGION_INVALID', 'finite');
    slide.close();
  });

  it('refuses a 200 000 × 200 000 request without allocating it', async () => {
    const slide = await open();
    const before = process.memoryUsage().rss;
    await expectFailure(() => slide.readRegion(0, 0, 0, 200_000, 200_000), 'REGION_TOO_LARGE', '200000×200000');
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    slide.close();
  });

  it('refuses a level that does not exist', async () => {
    const slide = await open();
    await expectFailure(() => slide.readRegion(3, 0, 0, 10, 10), 'LEVEL_INVALID', 'levels 0 to 0');
    slide.close();
  });
});
