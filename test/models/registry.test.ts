/** Manifests are validated with clear messages; presets are valid; the bundled model is intact. */
import { describe, expect, it } from 'vitest';
import { BUNDLED_MODELS_DIR, DEFAULT_MODEL_ID, ManifestError, PRESETS, findModel, listModels, parseManifest, sha256OfFile } from '../../models/index.js';

const valid = {
  id: 'my-model',
  version: '1',
  file: 'model.onnx',
  sha256: 'a'.repeat(64),
  input: 'input',
  inputSize: 224,
  mean: [0.5, 0.5, 0.5],
  std: [0.5, 0.5, 0.5],
  output: 'embedding',
  dimension: 768,
  license: 'MIT',
  source: 'test',
};

describe('model registry', () => {
  it('ships the default model with a manifest whose sha256 matches its file', () => {
    const model = findModel(DEFAULT_MODEL_ID);
    expect(model.bundled).toBe(true);
    expect(sha256OfFile(model.onnxPath)).toBe(model.manifest.sha256);
    expect(listModels().map((m) => m.manifest.id)).toContain(DEFAULT_MODEL_ID);
    expect(model.onnxPath.startsWith(BUNDLED_MODELS_DIR)).toBe(true);
  });

  it('accepts every preset as a manifest', () => {
    for (const [name, preset] of Object.entries(PRESETS)) {
      const manifest = parseManifest({ ...preset, id: name, version: '1', file: 'model.onnx', sha256: 'b'.repeat(64) }, name);
      expect(manifest.dimension).toBeGreaterThan(0);
    }
    expect(PRESETS.virchow2).toMatchObject({ pooling: 'cls+mean', patchTokensFrom: 5, dimension: 2560 });
    expect(PRESETS['h-optimus-0']?.mean[0]).toBeCloseTo(0.707223, 6);
  });

  it('fills defaults: RGB, no pooling, cosine', () => {
    expect(parseManifest(valid, 'm')).toMatchObject({ channelOrder: 'RGB', pooling: 'none', metric: 'cosine' });
  });

  for (const [change, message] of [
    [{ id: 'My Model' }, '"id" must be lower-case'],
    [{ sha256: 'xyz' }, '"sha256" must be 64 lower-case hex digits'],
    [{ inputSize: -1 }, '"inputSize" must be a positive integer, got -1'],
    [{ std: [0.5, 0, 0.5] }, '"std" must be three positive numbers'],
    [{ mean: [0.5] }, '"mean" must be three numbers'],
    [{ channelOrder: 'RGBA' }, '"channelOrder" must be "RGB" or "BGR"'],
    [{ pooling: 'max' }, '"pooling" must be "none", "cls" or "cls+mean"'],
    [{ metric: 'l2' }, '"metric" must be "cosine"'],
    [{ file: '../escape.onnx' }, '"file" must be a file name beside the manifest'],
    [{ resizeTo: 200 }, '"resizeTo" (200) must be at least "inputSize" (224)'],
    [{ output: '' }, '"output" must be a non-empty string'],
  ] as const) {
    it(`refuses ${JSON.stringify(change)} with: ${message}`, () => {
      expect(() => parseManifest({ ...valid, ...change }, 'manifest.json')).toThrow(ManifestError);
      expect(() => parseManifest({ ...valid, ...change }, 'manifest.json')).toThrow(message);
    });
  }
});
