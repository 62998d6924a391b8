/** `tessera embed` and `tessera models`, run as a user runs them. */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { channelMeanModel } from '../engine/embed/tiny-models.js';
import { SHARED_MISSING, TILES, hasSharedData } from '../shared-data.js';
import { runTessera } from '../run-cli.js';

const home = mkdtempSync(join(tmpdir(), 'tessera-home-'));

const tessera = (...args: string[]) => runTessera(args, { TESSERA_HOME: home });

describe('tessera models', () => {
  it('lists the bundled default model', async () => {
    const { code, stdout } = await tessera('models', 'list', '--json');
    expect(code).toBe(0);
    const [model] = JSON.parse(stdout);
    expect(model).toMatchObject({ id: 'mobilenetv2-int8', dimension: 1280, inputSize: 224, output: 'embedding', license: 'Apache-2.0', bundled: true });
    expect(model.sha256).toBe('8008177104dd693ddcdf83a872cb29105df57eb49431875deab3501ef5674252');
  });

  it('adds a model from a manifest, lists it, and refuses a manifest that does not fit the model', async () => {
    const onnx = channelMeanModel(join(home, 'mean.onnx'));
    const manifest = join(home, 'mean.json');
    const fields = { id: 'channel-mean', version: '2', input: 'input', inputSize: 4, channelOrder: 'RGB', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], output: 'embedding', pooling: 'none', dimension: 3, metric: 'cosine', license: 'test', source: 'tests', sha256: '0'.repeat(64), file: 'x.onnx' };
    writeFileSync(manifest, JSON.stringify(fields));
    const added = await tessera('models', 'add', onnx, '--manifest', manifest);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('installed channel-mean 2 (3-d)');
    expect((await tessera('models', 'list')).stdout).toMatch(/channel-mean\s+2\s+3\s+4px\s+test\s+installed/);
    writeFileSync(manifest, JSON.stringify({ ...fields, id: 'too-wide', dimension: 512 }));
    const refused = await tessera('models', 'add', onnx, '--manifest', manifest);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/model too-wide: output "embedding" has shape \[2, 3\].*dimension 512 \[MODEL_INVALID\]/);
    const preset = await tessera('models', 'add', onnx, '--preset', 'uni');
    expect(preset.code).toBe(1);
    expect(preset.stderr).toContain('is 4×4 but the manifest says inputSize 224');
    expect((await tessera('models', 'add', onnx)).code).toBe(2);
  });
});

describe.skipIf(!hasSharedData)(`tessera embed ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const tile = (label: string, file: string) => join(TILES, 'kather2016-samples-24', label, file);
  const tumour = tile('01_TUMOR', '1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif');
  const stroma = tile('02_STROMA', '10A01_CRC-Prim-HE-01_005.tif_Row_1_Col_901.tif');

  it('prints one JSON line per image, in order, with a unit vector from the default model', async () => {
    const { code, stdout } = await tessera('embed', tumour, stroma, '--device', 'cpu');
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((line) => line.image)).toEqual([tumour, stroma]);
    for (const line of lines) {
      expect(line).toMatchObject({ model: 'mobilenetv2-int8', dimension: 1280 });
      expect(Math.hypot(...line.embedding)).toBeCloseTo(1, 3);
    }
  });

  it('embeds 2,000 images given on one command line, streaming a line per image in order', async () => {
    // 2,000 paths are about 150 KB of command line: ONNX Runtime's own parsing of
    // /proc/self/cmdline crashed the process with SIGSEGV past about 20 KB.
    const lung = join(TILES, 'lc25000-lung-dev');
    const files = readdirSync(lung, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.jpeg')).sort().map((name) => join(lung, name));
    const images = Array.from({ length: 2000 }, (_, i) => files[i % files.length] as string);
    const { code, stdout, stderr } = await tessera('embed', ...images, '--device', 'cpu');
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { image: string; embedding: number[] });
    expect(lines.map((line) => line.image)).toEqual(images);
    // A repeated file gets the same vector wherever it falls in the batches.
    const first = lines[0]?.embedding ?? [];
    const again = lines[files.length]?.embedding ?? [];
    expect(Math.max(...first.map((v, i) => Math.abs(v - (again[i] ?? 0))))).toBeLessThan(1e-4);
  }, 120_000);

  it('takes a folder and a list file, and gives an unreadable image an error line', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'tessera-embed-'));
    try {
      const list = join(scratch, 'images.txt');
      writeFileSync(list, `${stroma}\n# a comment\nmissing.png\n`);
      const { code, stdout, stderr } = await tessera('embed', join(TILES, 'kather2016-samples-24', '01_TUMOR'), '--list', list, '--device', 'cpu');
      expect(code).toBe(1);
      expect(stderr).toContain('1 of 5 images could not be read');
      const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { image: string; error?: string });
      expect(lines.map((line) => basename(line.image))).toEqual([...readdirSync(join(TILES, 'kather2016-samples-24', '01_TUMOR')).sort(), basename(stroma), 'missing.png']);
      expect(lines.at(-1)).toMatchObject({ error: 'SLIDE_NOT_FOUND' });
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('refuses an unknown model and an unknown device with the reason', async () => {
    const unknown = await tessera('embed', tumour, '--model', 'uni');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('model "uni" is not installed (installed: mobilenetv2-int8');
    const device = await tessera('embed', tumour, '--device', 'tpu');
    expect(device.code).toBe(1);
    expect(device.stderr).toContain('device must be auto, cpu, cuda or cuda:N, got "tpu"');
  });
});
