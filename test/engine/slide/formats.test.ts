/**
 * Every shared slide format opens through one Slide interface with trustworthy metadata, and
 * DICOM tiles equal their frames decoded independently of Tessera's reader.
 */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dicomParser from 'dicom-parser';
import sharp from 'sharp';
import { describe, expect, it, onTestFinished } from 'vitest';
import { configureDecoding, openSlide } from '../../../engine/index.js';
import { SHARED_MISSING, TILES, hasSharedData, slidePath } from '../../shared-data.js';

describe.skipIf(!hasSharedData)(`slide formats ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const cases = [
    { file: 'CMU-1-Small-Region.svs', format: 'aperio-svs', width: 2220, height: 2967, levels: 1, mpp: 0.499, power: 20, associated: ['thumbnail', 'label', 'macro'] },
    { file: 'tcga-cr-7395-01a-01-ts1.svs', format: 'aperio-svs', width: 4443, height: 3567, levels: 2, mpp: null, power: null, associated: ['thumbnail'] },
    { file: 'ndpi/test3-DAPI-2-387.ndpi', format: 'hamamatsu-ndpi', width: 3968, height: 4864, levels: 7, mpp: 0.2282, power: 40, associated: ['macro', 'map'] },
    { file: 'derived/cmu1-crop1024-pyramid.ome.tif', format: 'ome-tiff', width: 1024, height: 1024, levels: 3, mpp: 0.499, power: null, associated: [] },
    { file: 'derived/cmu1-crop1024-pyramid-lzw-subifd.tif', format: 'generic-tiff', width: 1024, height: 1024, levels: 3, mpp: 0.499, power: null, associated: [] },
    { file: 'tcga-small-dicom.dcm', format: 'dicom', width: 3236, height: 2638, levels: 1, mpp: null, power: null, associated: [] },
    { file: 'fixtures/boxes_0.dcm', format: 'dicom', width: 16, height: 16, levels: 1, mpp: 0.499, power: 20, associated: ['thumbnail'] },
    { file: 'dicom/sm_image_jpegls.dcm', format: 'dicom', width: 50, height: 50, levels: 1, mpp: 0.499, power: null, associated: [] },
    { file: 'fixtures/boxes.png', format: 'image', width: 300, height: 250, levels: 1, mpp: null, power: null, associated: [] },
  ];
  for (const expected of cases) {
    it(`reports format, size, levels and calibration of ${expected.file}`, async () => {
      const slide = await openSlide(slidePath(expected.file));
      try {
        expect(slide.format).toBe(expected.format);
        expect([slide.width, slide.height]).toEqual([expected.width, expected.height]);
        expect(slide.levels).toHaveLength(expected.levels);
        expect(slide.levels[0]?.downsample).toBe(1);
        if (expected.mpp === null) expect(slide.mpp).toBeNull();
        else expect(slide.mpp?.[0]).toBeCloseTo(expected.mpp, 3);
        expect(slide.objectivePower).toBe(expected.power);
        expect(slide.associatedImages).toEqual(expected.associated);
      } finally {
        slide.close();
      }
    });
  }

  it('reads a Kather tile (plain TIFF) as a single-level slide with its colours', async () => {
    const path = slidePath('../tiles/kather2016-samples-24/01_TUMOR/1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif');
    const slide = await openSlide(path);
    const region = await slide.readRegion(0, 0, 0, slide.width, slide.height);
    const direct = await sharp(path).removeAlpha().raw().toBuffer();
    expect(region.data.equals(direct)).toBe(true);
    slide.close();
  });

  for (const [file, nativeJpeg] of [
    ['CMU-1-Small-Region.svs', true],
    ['derived/cmu1-small-pyramid-jpeg.tif', true],
    ['ndpi/test3-TRITC-2-560.ndpi', true],
    ['tcga-small-dicom.dcm', true],
    ['CMU-1-Small-Region.svs', false],
    ['tcga-small-dicom.dcm', false],
  ] as const) {
    it(`returns the same pixels whether JPEG tiles are decoded in part or whole (${file}, ${nativeJpeg ? 'native libjpeg-turbo' : 'sharp fallback'})`, async () => {
      configureDecoding({ nativeJpeg });
      onTestFinished(() => configureDecoding({ nativeJpeg: true }));
      const slide = await openSlide(slidePath(file));
      const spots = [[37, 41], [301, 499], [1001, 777], [1500, 1900]].filter(([x, y]) => x! + 100 < slide.width && y! + 60 < slide.height);
      // Fresh tiles: a small region uses a small share of each, so only that part is decoded.
      const partial = await Promise.all(spots.map(([x, y]) => slide.readRegion(0, x!, y!, 100, 60)));
      // A large read decodes the same tiles whole and caches them; the small reads then copy.
      for (const [x, y] of spots) await slide.readRegion(0, Math.max(0, x! - 300), Math.max(0, y! - 300), 700, 700);
      for (const [index, [x, y]] of spots.entries()) {
        const whole = await slide.readRegion(0, x!, y!, 100, 60);
        expect(whole.data.equals(partial[index]!.data), `region at (${x}, ${y})`).toBe(true);
      }
      slide.close();
    });
  }

  it('decodes JPEG 2000 tiles in worker threads to the same pixels as on the main thread', async () => {
    const path = slidePath('tcga-cr-7395-01a-01-ts1.svs');
    const onMain = await openSlide(path);
    const expected = await onMain.readRegion(0, 1000, 1000, 600, 600);
    onMain.close();
    configureDecoding({ decodeThreads: 2 });
    try {
      const inWorkers = await openSlide(path);
      const region = await inWorkers.readRegion(0, 1000, 1000, 600, 600);
      expect(region.data.equals(expected.data)).toBe(true);
      inWorkers.close();
    } finally {
      configureDecoding({ decodeThreads: 1 });
    }
  });

  it('makes a thumbnail that fits the requested size and keeps the aspect ratio', async () => {
    const slide = await openSlide(slidePath('CMU-1-Small-Region.svs'));
    const thumbnail = await slide.thumbnail(300);
    expect(Math.max(thumbnail.width, thumbnail.height)).toBe(300);
    expect(thumbnail.width / thumbnail.height).toBeCloseTo(2220 / 2967, 2);
    slide.close();
  });

  it('builds the thumbnail of a slide without a pyramid from tiles decoded at 1/8 size, as a full-resolution resize looks', async () => {
    // One 2220×2967 level of 240 px JPEG tiles: a 256 px view is over 8× smaller, so it comes
    // from tiles scaled in the DCT domain, placed edge tiles included.
    const slide = await openSlide(slidePath('CMU-1-Small-Region.svs'));
    onTestFinished(() => slide.close());
    const thumbnail = await slide.thumbnail(256);
    const whole = await slide.readRegion(0, 0, 0, slide.width, slide.height);
    const reference = await sharp(whole.data, { raw: { width: slide.width, height: slide.height, channels: 3 } }).resize(thumbnail.width, thumbnail.height, { fit: 'fill' }).raw().toBuffer();
    let difference = 0;
    for (let i = 0; i < reference.length; i++) difference += Math.abs((thumbnail.data[i] ?? 0) - (reference[i] ?? 0));
    expect(difference / reference.length).toBeLessThan(6);
  });

  it('decodes plain JPEG tile images to the pixels sharp gives, and sends one with an ICC profile through sharp', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'tessera-images-'));
    const lung = join(TILES, 'lc25000-lung-dev', 'lung_scc');
    const withProfile = join(scratch, 'p3.jpeg');
    // Saturated colours tagged Display P3: converting them to sRGB changes them.
    await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 250, g: 20, b: 40 } } }).withIccProfile('p3').jpeg().toFile(withProfile);
    const files = [...readdirSync(lung).sort().slice(0, 3).map((name) => join(lung, name)), withProfile];
    for (const file of files) {
      const image = await openSlide(file);
      onTestFinished(() => image.close());
      const pixels = await image.readRegion(0, 0, 0, image.width, image.height);
      const expected = await sharp(file).flatten({ background: '#ffffff' }).toColourspace('srgb').raw().toBuffer();
      expect(pixels.data.equals(expected), file).toBe(true);
    }
    const naive = await sharp(withProfile).raw().keepIccProfile().toBuffer();
    const converted = await sharp(withProfile).toColourspace('srgb').raw().toBuffer();
    expect(naive.equals(converted)).toBe(false); // the profile matters, so the last case proves the route
  });

  it('fills the part of a region beyond the slide edge with white', async () => {
    const slide = await openSlide(slidePath('CMU-1-Small-Region.svs'));
    const region = await slide.readRegion(0, 2220 - 10, 0, 20, 1);
    expect([...region.data.subarray(30, 60)].every((v) => v === 255)).toBe(true);
    expect([...region.data.subarray(0, 30)].some((v) => v !== 255)).toBe(true);
    slide.close();
  });

  const dicomCases = ['tcga-small-dicom.dcm', 'fixtures/boxes_0.dcm', 'dicom/sm_image.dcm', 'dicom/sm_image_jpegls.dcm', 'dicom/sm_image_grayscale.dcm'];
  for (const file of dicomCases) {
    it(`reads every DICOM frame of ${file} as its frame decoded independently`, async () => {
      const path = slidePath(file);
      const bytes = readFileSync(path);
      const dataSet = dicomParser.parseDicom(new Uint8Array(bytes));
      const pixelData = dataSet.elements['x7fe00010']!;
      const frameWidth = dataSet.uint16('x00280011')!;
      const frameHeight = dataSet.uint16('x00280010')!;
      const frames = Number(dataSet.string('x00280008') ?? '1');
      const syntax = dataSet.string('x00020010');
      const samples = dataSet.uint16('x00280002') ?? 1;
      const bitsAllocated = dataSet.uint16('x00280100') ?? 8;
      const slide = await openSlide(path);
      const across = Math.ceil(slide.width / frameWidth);
      for (let frame = 0; frame < Math.min(frames, across * Math.ceil(slide.height / frameHeight)); frame++) {
        let expected: Buffer;
        if (pixelData.encapsulatedPixelData) {
          const encoded = Buffer.from(dicomParser.readEncapsulatedImageFrame(dataSet, pixelData, frame, pixelData.basicOffsetTable?.length ? pixelData.basicOffsetTable : dicomParser.createJPEGBasicOffsetTable(dataSet, pixelData)));
          if (syntax === '1.2.840.10008.1.2.4.50') expected = await sharp(encoded).raw().toBuffer();
          else {
            // JPEG-LS: decode with CharLS directly, outside Tessera's codec module.
            const { createRequire } = await import('node:module');
            const factory = createRequire(import.meta.url)('@cornerstonejs/codec-charls/decodewasmjs') as (o: object) => Promise<{ JpegLSDecoder: new () => { getEncodedBuffer(n: number): Uint8Array; decode(): void; getDecodedBuffer(): Uint8Array } }>;
            const decoder = new (await factory({ print: () => {}, printErr: () => {} })).JpegLSDecoder();
            decoder.getEncodedBuffer(encoded.length).set(encoded);
            decoder.decode();
            expected = Buffer.from(decoder.getDecodedBuffer());
          }
        } else {
          const frameBytes = frameWidth * frameHeight * samples * (bitsAllocated / 8);
          const raw = bytes.subarray(pixelData.dataOffset + frame * frameBytes, pixelData.dataOffset + (frame + 1) * frameBytes);
          expected = Buffer.alloc(frameWidth * frameHeight * 3);
          for (let i = 0; i < frameWidth * frameHeight; i++) {
            for (let c = 0; c < 3; c++) {
              expected[i * 3 + c] = samples === 3 ? raw[i * 3 + c]! : bitsAllocated === 16 ? Math.min(255, raw.readUInt16LE(i * 2) >> 8) : raw[i]!;
            }
          }
        }
        const col = frame % across;
        const row = Math.floor(frame / across);
        const width = Math.min(frameWidth, slide.width - col * frameWidth);
        const height = Math.min(frameHeight, slide.height - row * frameHeight);
        const region = await slide.readRegion(0, col * frameWidth, row * frameHeight, width, height);
        for (let y = 0; y < height; y++) {
          const ours = region.data.subarray(y * width * 3, (y + 1) * width * 3);
          const theirs = expected.subarray(y * frameWidth * 3, y * frameWidth * 3 + width * 3);
          expect(ours.equals(theirs), `frame ${frame} row ${y}`).toBe(true);
        }
      }
      slide.close();
    });
  }
});
