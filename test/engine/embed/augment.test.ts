/**
 * `augment: "d8"` with the bundled model on real tiles: the embedding is the renormalized mean of
 * the plain embeddings of the 8 rotations and mirror images (made here with sharp), so it does
 * not change when the tile is turned; an index built with it refuses queries without it.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Embedder, augmentedRef, resolveModel, type RgbImage } from '../../../engine/index.js';
import { parseManifest } from '../../../models/index.js';
import { runTessera } from '../../run-cli.js';
import { SHARED_MISSING, TILES, hasSharedData } from '../../shared-data.js';

const KATHER = join(TILES, 'kather2016-samples-24');
const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, value, i) => sum + value * (b[i] as number), 0);

async function rgb(image: Sharp): Promise<RgbImage> {
  const { data, info } = await image.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** A tile at the model's input size, turned by `degrees` and mirrored (left-right) after that when asked. */
async function view(file: string, degrees: number, mirror: boolean): Promise<RgbImage> {
  const turned = await sharp(file).resize(224, 224).rotate(degrees).png().toBuffer();
  return rgb(mirror ? sharp(turned).flop() : sharp(turned));
}

describe.skipIf(!hasSharedData)(`augment d8 ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const model = resolveModel();
  const d8Model = { ...model, manifest: { ...model.manifest, augment: 'd8' as const } };
  let plain: Embedder;
  let d8: Embedder;
  const tile = join(KATHER, '01_TUMOR', readdirSync(join(KATHER, '01_TUMOR'))[0] as string);

  beforeAll(async () => {
    plain = await Embedder.create(model, { device: { kind: 'cpu' }, preprocessThreads: 0, sessions: 1, batchSize: 16 });
    d8 = await Embedder.create(d8Model, { device: { kind: 'cpu' }, preprocessThreads: 0, sessions: 1, batchSize: 16 });
  }, 60_000);
  afterAll(async () => {
    await plain?.close();
    await d8?.close();
  });

  it('is the renormalized mean of the plain embeddings of the 8 rotations and mirror images', async () => {
    const views: RgbImage[] = [];
    for (const mirror of [false, true]) for (const degrees of [0, 90, 180, 270]) views.push(await view(tile, degrees, mirror));
    const embedded = await plain.embed(views);
    const mean = new Float32Array(embedded[0]!.length);
    for (const vector of embedded) vector.forEach((value, d) => (mean[d] = mean[d]! + value));
    const norm = Math.hypot(...mean);
    const expected = mean.map((value) => value / norm);
    const [augmented] = await d8.embed([await view(tile, 0, false)]);
    expect(Math.hypot(...augmented!)).toBeCloseTo(1, 5);
    expect(dot(augmented!, expected)).toBeGreaterThan(0.9999);
    // The plain embedding does move when the tile turns: the test would notice a no-op.
    expect(dot(embedded[0]!, embedded[1]!)).toBeLessThan(0.99);
  });

  it('gives the same embedding for a tile turned or mirrored, in batches of any size', async () => {
    const turned = [await view(tile, 0, false), await view(tile, 90, false), await view(tile, 270, true), await view(tile, 180, true)];
    const vectors = await d8.embed(turned);
    for (const vector of vectors.slice(1)) expect(dot(vector, vectors[0]!)).toBeGreaterThan(0.9999);
  });

  it('is recorded in the index, and a query or an addition without it is refused as MODEL_MISMATCH', async () => {
    expect(augmentedRef(d8Model.manifest).version).toBe(`${model.manifest.version}+d8`);
    expect(parseManifest({ ...JSON.parse(readFileSync(join(model.onnxPath, '..', 'manifest.json'), 'utf8')), augment: 'd8' }, 'm').augment).toBe('d8');
    expect(() => parseManifest({ ...JSON.parse(readFileSync(join(model.onnxPath, '..', 'manifest.json'), 'utf8')), augment: 'c4' }, 'm')).toThrow('"augment" must be "d8" or absent');
    const dir = mkdtempSync(join(tmpdir(), 'tessera-d8-'));
    const modelsDir = join(dir, 'models');
    const manifestFile = join(dir, 'manifest.json');
    writeFileSync(manifestFile, JSON.stringify({ ...JSON.parse(readFileSync(join(model.onnxPath, '..', 'manifest.json'), 'utf8')), augment: 'd8' }));
    const added = await runTessera(['models', 'add', model.onnxPath, '--manifest', manifestFile, '--models-dir', modelsDir]);
    expect(added.code, added.stderr).toBe(0);
    const tiles = join(dir, 'tiles', '01_TUMOR');
    mkdirSync(tiles, { recursive: true });
    for (const file of readdirSync(join(KATHER, '01_TUMOR'))) copyFileSync(join(KATHER, '01_TUMOR', file), join(tiles, file));
    const index = join(dir, 'index');
    const built = await runTessera(['index', '--tiles', join(dir, 'tiles'), '--out', index, '--models-dir', modelsDir]);
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(index, 'index.json'), 'utf8')).model.version).toBe(`${model.manifest.version}+d8`);
    const same = await runTessera(['search', '--index', index, '--image', tile, '-k', '1', '--models-dir', modelsDir]);
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout).results[0].score).toBeGreaterThan(0.9999);
    const query = await runTessera(['search', '--index', index, '--image', tile, '--models-dir', join(dir, 'none')]);
    expect(query.code).toBe(1);
    expect(query.stderr).toContain('MODEL_MISMATCH');
    const addition = await runTessera(['index', '--tiles', join(dir, 'tiles'), '--out', index, '--models-dir', join(dir, 'none')]);
    expect(addition.code).toBe(1);
    expect(addition.stderr).toContain('MODEL_MISMATCH');
  }, 90_000);
});
