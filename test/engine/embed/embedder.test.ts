/**
 * The embedder with real ONNX models: the bundled default on real tiles, and tiny generated
 * models whose outputs are known exactly (channel order, mean/std, pooling, validation errors).
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Embedder, TesseraError, addModel, missingCudaLibraries, openSlide, resolveModel, type RgbImage } from '../../../engine/index.js';
import { DEFAULT_MODEL_ID, parseManifest, type InstalledModel, type ModelManifest } from '../../../models/index.js';
import { SHARED_MISSING, TILES, hasSharedData } from '../../shared-data.js';
import { channelMeanModel, pixelTokensModel } from './tiny-models.js';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-embed-'));

function uniformTile(size: number, rgb: [number, number, number]): RgbImage {
  const data = Buffer.alloc(size * size * 3);
  for (let i = 0; i < size * size; i++) data.set(rgb, i * 3);
  return { data, width: size, height: size };
}

function tinyManifest(overrides: Partial<ModelManifest>): ModelManifest {
  return parseManifest(
    {
      id: 'tiny',
      version: '1',
      file: 'model.onnx',
      sha256: '0'.repeat(64),
      input: 'input',
      inputSize: 4,
      channelOrder: 'RGB',
      mean: [0.5, 0.5, 0.5],
      std: [0.25, 0.25, 0.25],
      output: 'embedding',
      pooling: 'none',
      dimension: 3,
      metric: 'cosine',
      license: 'test',
      source: 'generated in the test',
      ...overrides,
    },
    'test manifest',
  );
}

function tinyModel(onnxPath: string, overrides: Partial<ModelManifest> = {}): InstalledModel {
  return { manifest: tinyManifest(overrides), onnxPath, bundled: false };
}

function normalized(values: number[]): number[] {
  const norm = Math.hypot(...values);
  return values.map((v) => v / norm);
}

async function expectModelError(work: Promise<unknown>, code: string, mentions: RegExp): Promise<void> {
  const error = await work.then(() => null, (thrown: unknown) => thrown);
  expect(error).toBeInstanceOf(TesseraError);
  expect((error as TesseraError).code).toBe(code);
  expect((error as TesseraError).message).toMatch(mentions);
}

describe('embedder with generated models', () => {
  const channelMean = channelMeanModel(join(scratch, 'channel-mean.onnx'));
  const pixelTokens = pixelTokensModel(join(scratch, 'pixel-tokens.onnx'));

  it('normalizes with the manifest mean and std in RGB order', async () => {
    const embedder = await Embedder.create(tinyModel(channelMean), { device: { kind: 'cpu' }, preprocessThreads: 0 });
    const [vector] = await embedder.embed([uniformTile(4, [200, 100, 50])]);
    const expected = normalized([200, 100, 50].map((v) => (v / 255 - 0.5) / 0.25));
    expect(Array.from(vector!)).toEqual(expected.map((v) => expect.closeTo(v, 5)));
    await embedder.close();
  });

  it('feeds BGR models their channels reversed, with per-channel statistics', async () => {
    const embedder = await Embedder.create(tinyModel(channelMean, { channelOrder: 'BGR', mean: [0.1, 0.2, 0.3], std: [0.5, 0.25, 0.125] }), { device: { kind: 'cpu' }, preprocessThreads: 1 });
    const [vector] = await embedder.embed([uniformTile(4, [200, 100, 50])]);
    const bgr = [50, 100, 200];
    const expected = normalized(bgr.map((v, c) => (v / 255 - [0.1, 0.2, 0.3][c]!) / [0.5, 0.25, 0.125][c]!));
    expect(Array.from(vector!)).toEqual(expected.map((v) => expect.closeTo(v, 5)));
    await embedder.close();
  });

  it('resizes tiles of another size to the model input', async () => {
    const embedder = await Embedder.create(tinyModel(channelMean), { device: { kind: 'cpu' }, preprocessThreads: 1 });
    const [small, large] = await embedder.embed([uniformTile(4, [10, 200, 30]), uniformTile(224, [10, 200, 30])]);
    expect(Array.from(large!)).toEqual(Array.from(small!).map((v) => expect.closeTo(v, 5)));
    await embedder.close();
  });

  it('pools token outputs: class token, and class token ‖ mean of patch tokens', async () => {
    const tile: RgbImage = { data: Buffer.alloc(4 * 4 * 3), width: 4, height: 4 };
    for (let i = 0; i < tile.data.length; i++) tile.data[i] = (i * 37) % 256;
    const expectedToken = (pixel: number) => [0, 1, 2].map((c) => ((tile.data[pixel * 3 + c]! / 255 - 0.5) / 0.25));
    const cls = await Embedder.create(tinyModel(pixelTokens, { output: 'tokens', pooling: 'cls', dimension: 3 }), { device: { kind: 'cpu' }, preprocessThreads: 0 });
    expect(Array.from((await cls.embed([{ ...tile, data: Buffer.from(tile.data) }]))[0]!)).toEqual(normalized(expectedToken(0)).map((v) => expect.closeTo(v, 5)));
    await cls.close();
    const clsMean = await Embedder.create(tinyModel(pixelTokens, { output: 'tokens', pooling: 'cls+mean', patchTokensFrom: 3, dimension: 6 }), { device: { kind: 'cpu' }, preprocessThreads: 0 });
    const patches = Array.from({ length: 13 }, (_, t) => expectedToken(t + 3));
    const mean = [0, 1, 2].map((c) => patches.reduce((sum, token) => sum + token[c]!, 0) / patches.length);
    expect(Array.from((await clsMean.embed([tile]))[0]!)).toEqual(normalized([...expectedToken(0), ...mean]).map((v) => expect.closeTo(v, 5)));
    await clsMean.close();
  });

  it('refuses a model whose input size differs from its manifest', () =>
    expectModelError(Embedder.create(tinyModel(channelMeanModel(join(scratch, 'eight.onnx'), 8)), { device: { kind: 'cpu' } }), 'MODEL_INVALID', /input "input" is 8×8 but the manifest says inputSize 4/));

  it('refuses a manifest naming an output the model does not have', () =>
    expectModelError(Embedder.create(tinyModel(channelMean, { output: 'features' }), { device: { kind: 'cpu' } }), 'MODEL_INVALID', /has no output "features" \(its outputs: embedding\)/));

  it('refuses a manifest whose dimension does not match the output', () =>
    expectModelError(Embedder.create(tinyModel(channelMean, { dimension: 1280 }), { device: { kind: 'cpu' } }), 'MODEL_INVALID', /shape \[2, 3\].*to 3; the manifest says dimension 1280/));

  it('refuses a file that is not an ONNX model', () => {
    const bogus = join(scratch, 'bogus.onnx');
    writeFileSync(bogus, 'not a model');
    return expectModelError(Embedder.create(tinyModel(bogus), { device: { kind: 'cpu' } }), 'MODEL_INVALID', /cannot load ONNX model bogus\.onnx/);
  });

  it('installs a validated model and refuses an invalid one without installing it', async () => {
    const home = join(scratch, 'home');
    const manifest = { ...tinyManifest({ id: 'tiny-mean' }) } as Record<string, unknown>;
    const installed = await addModel({ onnxFile: channelMean, manifest }, home);
    expect(installed.manifest.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(resolveModel('tiny-mean', home).manifest.dimension).toBe(3);
    await expectModelError(addModel({ onnxFile: channelMean, manifest: { ...manifest, id: 'tiny-wrong', dimension: 7 } }, home), 'MODEL_INVALID', /dimension 7/);
    expect(readdirSync(home).sort()).toEqual(['tiny-mean']);
    await expectModelError(addModel({ onnxFile: channelMean, preset: 'no-such-preset' }, home), 'INVALID_ARGUMENT', /unknown preset "no-such-preset" \(presets: uni, /);
    await expectModelError(addModel({ onnxFile: channelMean, preset: 'uni' }, home), 'MODEL_INVALID', /is 4×4 but the manifest says inputSize 224/);
  });

  it('says which CUDA library is missing when CUDA is asked for, and falls back to CPU with auto', async () => {
    const model = tinyModel(channelMean);
    const cuda = await Embedder.create(model, { device: { kind: 'cuda', deviceId: 0 } }).then(
      async (embedder) => (await embedder.close(), embedder.provider),
      (error: unknown) => error,
    );
    if (cuda === 'cuda') return; // a GPU machine with the provider installed: bench:embed covers it
    expect(cuda).toBeInstanceOf(TesseraError);
    expect((cuda as TesseraError).code).toBe('DEVICE_UNAVAILABLE');
    // Without the provider: its file name and the fix; with it but no CUDA: the system libraries.
    expect((cuda as TesseraError).message).toMatch(/cuda:0 requested but unavailable: .*(libonnxruntime_providers_cuda\.so.*npm run setup:cuda|lib\w+\.so[.\d]*.*LD_LIBRARY_PATH)/);
    const auto = await Embedder.create(model, { device: { kind: 'auto' } });
    expect(auto.provider).toBe('cpu');
    expect(auto.fallbackReason).toMatch(/lib\w+\.so/);
    await auto.close();
  });

  it('lists the CUDA provider libraries a folder lacks', () => {
    expect(missingCudaLibraries(scratch)).toEqual(['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so']);
  });
});

describe.skipIf(!hasSharedData)(`default model on real tiles ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const kather = join(TILES, 'kather2016-samples-24');
  const classes = hasSharedData ? readdirSync(kather).sort() : [];
  const tiles: Array<{ label: string; image: RgbImage }> = [];
  let embedder: Embedder;

  beforeAll(async () => {
    embedder = await Embedder.create(resolveModel(DEFAULT_MODEL_ID), { device: { kind: 'cpu' }, batchSize: 8 });
    for (const label of classes) {
      for (const file of readdirSync(join(kather, label)).sort()) {
        const slide = await openSlide(join(kather, label, file));
        tiles.push({ label, image: await slide.readRegion(0, 0, 0, slide.width, slide.height) });
        slide.close();
      }
    }
  });
  afterAll(() => embedder?.close());

  const copy = (image: RgbImage): RgbImage => ({ ...image, data: Buffer.from(image.data) });
  const cosine = (a: Float32Array, b: Float32Array) => a.reduce((sum, v, i) => sum + v * b[i]!, 0);

  it('embeds into 1280-d unit vectors', async () => {
    const vectors = await embedder.embed(tiles.slice(0, 3).map((tile) => copy(tile.image)));
    for (const vector of vectors) {
      expect(vector).toHaveLength(1280);
      expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
    }
  });

  it('gives the same vector for a tile whatever the batch size (within 1e-4)', async () => {
    const images = tiles.slice(0, 8).map((tile) => tile.image);
    const results: Float32Array[][] = [];
    for (const batchSize of [1, 3, 8]) {
      const batched = await Embedder.create(resolveModel(DEFAULT_MODEL_ID), { device: { kind: 'cpu' }, batchSize, preprocessThreads: 0 });
      results.push(await batched.embed(images.map(copy)));
      await batched.close();
    }
    for (const other of results.slice(1)) {
      other.forEach((vector, index) => {
        const maxDifference = Math.max(...vector.map((v, d) => Math.abs(v - results[0]![index]![d]!)));
        expect(maxDifference).toBeLessThanOrEqual(1e-4);
      });
    }
  });

  // MobileNetV2 is an ImageNet CNN, not rotation-invariant by training: on these 24 tiles × 4
  // transforms one case (a stroma tile rotated 90°) lands nearer a tile of another class. The
  // test holds the default model to 95% of cases and names every miss.
  it('keeps a rotated or flipped tile closer to its original than to tiles of other classes (≥ 95% of cases)', async () => {
    const originals = await embedder.embed(tiles.map((tile) => copy(tile.image)));
    const transforms: Array<[string, (s: Sharp) => Sharp]> = [
      ['rotate 90°', (s) => s.rotate(90)],
      ['rotate 180°', (s) => s.rotate(180)],
      ['flip', (s) => s.flip()],
      ['flop', (s) => s.flop()],
    ];
    const failures: string[] = [];
    for (const [name, transform] of transforms) {
      const changed = await Promise.all(
        tiles.map(async ({ image }) => {
          const data = await transform(sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })).raw().toBuffer();
          return { data, width: image.width, height: image.height };
        }),
      );
      const vectors = await embedder.embed(changed);
      vectors.forEach((vector, index) => {
        const own = cosine(vector, originals[index]!);
        const nearestOther = Math.max(...originals.filter((_, j) => tiles[j]!.label !== tiles[index]!.label).map((other) => cosine(vector, other)));
        if (own <= nearestOther) failures.push(`${name} of ${tiles[index]!.label} #${index}: own ${own.toFixed(3)} ≤ other ${nearestOther.toFixed(3)}`);
      });
    }
    expect(failures.length, failures.join('; ')).toBeLessThanOrEqual(Math.floor(0.05 * tiles.length * transforms.length));
  });
});
