/**
 * Indexing real slides into real shards on disk, then searching them: skip and replace,
 * delete, filters, a corrupt slide mid-run, kill -9 and resume, a read-only output folder,
 * partitions built separately, and a model mismatch.
 */
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexStore, parseFilter } from '../../engine/index.js';
import { SHARED_MISSING, TILES, hasSharedData, slidePath } from '../shared-data.js';
import { TESSERA_BIN, runTessera } from '../run-cli.js';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-index-'));

const tessera = (...args: string[]) => runTessera(args, { TESSERA_HOME: join(scratch, 'home') });

/** A folder of small real slides (copied, so tests may change them) with a metadata table. */
function slideFolder(name: string): { dir: string; csv: string } {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  copyFileSync(slidePath('CMU-1-Small-Region.svs'), join(dir, 'cmu.svs'));
  copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(dir, 'crop.ome.tif'));
  copyFileSync(slidePath('ndpi/test3-DAPI-2-387.ndpi'), join(dir, 'dapi.ndpi'));
  copyFileSync(slidePath('broken/broken.svs'), join(dir, 'broken.svs'));
  copyFileSync(slidePath('tcga-cr-7395-01a-01-ts1.svs'), join(dir, 'tcga.svs'));
  const csv = join(dir, 'slides.csv');
  writeFileSync(
    csv,
    [
      'slide_id,path,patient_id,dataset,organ,stain,species,diagnosis,mpp',
      'S1,cmu.svs,P1,cmu,skin,HE,human,normal,',
      'S2,crop.ome.tif,P1,cmu,skin,HE,human,normal,',
      'S3,dapi.ndpi,P2,stritt,kidney,DAPI,mouse,none,',
      'S4,broken.svs,P3,bad,lung,HE,human,LUAD,',
      'S5,tcga.svs,P4,tcga,kidney,HE,human,KIRC,0.25',
    ].join('\n'),
  );
  return { dir, csv };
}

describe.skipIf(!hasSharedData)(`indexing and searching ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const { dir, csv } = hasSharedData ? slideFolder('collection') : { dir: '', csv: '' };
  const out = join(scratch, 'index');

  it('indexes a collection, records the corrupt slide and keeps going, and verifies', async () => {
    const result = await tessera('index', '--slides', dir, '--metadata', csv, '--out', out, '--shards', '3', '--device', 'cpu', '--min-tissue', '0.3');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/indexed 4 slides \(\d+ tiles\), skipped 0 unchanged, failed 1/);
    expect(result.stdout).toContain('failed: S4: broken.svs: not a recognised slide format');
    const report = JSON.parse(readFileSync(join(out, 'reports', (await import('node:fs')).readdirSync(join(out, 'reports'))[0]!), 'utf8'));
    expect(report.failures).toEqual([expect.objectContaining({ slideId: 'S4', code: 'SLIDE_UNSUPPORTED' })]);
    expect(result.stderr).not.toContain('cmu.svs'); // logs carry no file names
    const verified = await tessera('verify', '--index', out);
    expect(verified.code, verified.stdout).toBe(0);
    expect(verified.stdout).toContain('ok: every invariant holds');
  });

  it('skips unchanged slides on a rerun and replaces a changed one', async () => {
    const before = IndexStore.open(out, { readOnly: true });
    const oldLabels = before.shardFor('S2')!.slide('S2')!.labels;
    await before.close();
    const rerun = await tessera('index', '--slides', dir, '--metadata', csv, '--out', out, '--shards', '3', '--device', 'cpu', '--min-tissue', '0.3');
    expect(rerun.stdout).toMatch(/indexed 0 slides \(0 tiles\), skipped 4 unchanged, failed 1/);
    copyFileSync(slidePath('derived/cmu1-crop1024-pyramid-deflate.tif'), join(dir, 'crop.ome.tif'));
    const changed = await tessera('index', '--slides', dir, '--metadata', csv, '--out', out, '--shards', '3', '--device', 'cpu', '--min-tissue', '0.3');
    expect(changed.stdout).toMatch(/indexed 1 slides/);
    const after = IndexStore.open(out, { readOnly: true });
    const newLabels = after.shardFor('S2')!.slide('S2')!.labels;
    expect(newLabels.some((label) => oldLabels.includes(label))).toBe(false);
    for (const label of oldLabels) expect(after.shardFor('S2')!.tile(label)).toBeUndefined();
    await after.close();
    expect((await tessera('verify', '--index', out)).code).toBe(0);
  });

  it('returns exactly the tiles a filter admits, and never a deleted slide', async () => {
    const store = IndexStore.open(out, { readOnly: true });
    const all = store.shards.flatMap((shard) => shard.slideIds().flatMap((id) => shard.slide(id)!.labels.map((label) => ({ shard, label }))));
    const query = all[0]!.shard.vector(all[0]!.label);
    const everything = store.search(query, { k: 1000 });
    expect(everything).toHaveLength(all.length);
    expect(everything[0]!.score).toBeGreaterThan(0.999);
    const kidney = store.search(query, { k: 1000, filter: parseFilter({ organ: 'kidney', stain: { not: 'DAPI' } }) });
    const expected = all.filter(({ shard, label }) => shard.tile(label)!.slideId === 'S5').length;
    expect(kidney).toHaveLength(expected);
    expect(new Set(kidney.map((hit) => hit.tile.slideId))).toEqual(new Set(['S5']));
    const notPatient = store.search(query, { k: 1000, excludePatients: new Set(['P1']) });
    expect(notPatient.every((hit) => hit.slideMetadata.patient_id !== 'P1')).toBe(true);
    const inList = store.search(query, { k: 5, filter: parseFilter({ diagnosis: { in: ['KIRC', 'none'] } }) });
    expect(inList).toHaveLength(5);
    expect(inList.every((hit) => ['KIRC', 'none'].includes(hit.slideMetadata.diagnosis!))).toBe(true);
    await store.close();
    const deleted = await tessera('delete', '--index', out, '--slide', 'S1');
    expect(deleted.code).toBe(0);
    const after = IndexStore.open(out, { readOnly: true });
    expect(after.search(query, { k: 1000 }).some((hit) => hit.tile.slideId === 'S1')).toBe(false);
    await after.close();
    expect((await tessera('delete', '--index', out, '--slide', 'S1')).stderr).toContain('slide "S1" is not in');
  });

  it('answers search by image and by slide region as JSON', async () => {
    const byRegion = await tessera('search', '--index', out, '--slide', 'S5', '--x', '1000', '--y', '1000', '--width', '448', '--height', '448', '-k', '3', '--include-self', '--device', 'cpu');
    expect(byRegion.code, byRegion.stderr).toBe(0);
    const { results } = JSON.parse(byRegion.stdout);
    expect(results).toHaveLength(3);
    expect(Object.keys(results[0])).toEqual(['slideId', 'x', 'y', 'width', 'height', 'mpp', 'score', 'metadata']);
    expect(results[0].score).toBeGreaterThanOrEqual(results[1].score);
    const tile = join(TILES, 'kather2016-samples-24', '01_TUMOR', '1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif');
    const list = join(scratch, 'queries.txt');
    writeFileSync(list, `${tile}\n${join(scratch, 'missing.png')}\n${tile}\n`);
    const batch = await tessera('search', '--index', out, '--images', list, '-k', '2', '--filter', '{"organ":"kidney"}', '--device', 'cpu');
    const lines = batch.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((line) => line.query.image)).toEqual([tile, join(scratch, 'missing.png'), tile]);
    expect(lines[1].error).toBe('SLIDE_NOT_FOUND');
    expect(lines[0].results.every((hit: { metadata: { organ: string } }) => hit.metadata.organ === 'kidney')).toBe(true);
    expect((await tessera('search', '--index', out, '--image', tile, '--filter', '{"organ": {"like": "k"}}')).stderr).toContain('filter field "organ"');
  });

  it('finds the slide a crop came from first when searching slides like the crop', async () => {
    const result = await tessera('search', '--index', out, '--slide', 'S2', '--mode', 'slide', '-k', '3', '--device', 'cpu');
    expect(result.code, result.stderr).toBe(0);
    const { query, results } = JSON.parse(result.stdout);
    expect(query.mosaicTiles).toBeGreaterThan(0);
    // S1 was deleted above; S2 is a crop of the same tissue as the OME copy: the remaining slides rank below 1.
    expect(results.map((match: { slideId: string }) => match.slideId)).not.toContain('S2');
    expect(results[0].evidence.length).toBeGreaterThan(0);
    expect(results[0].score).toBeGreaterThanOrEqual(results[results.length - 1].score);
    // With its own slide allowed back in, S3 (patient P2) still never appears once its patient is excluded.
    const withSelf = JSON.parse((await tessera('search', '--index', out, '--slide', 'S3', '--mode', 'slide', '--include-self', '--device', 'cpu')).stdout);
    expect(withSelf.results.map((match: { slideId: string }) => match.slideId)).toContain('S3');
    const ownPatient = JSON.parse((await tessera('search', '--index', out, '--slide', 'S3', '--mode', 'slide', '--include-self', '--exclude-own-patient', '--device', 'cpu')).stdout);
    expect(ownPatient.results.length).toBeGreaterThan(0);
    expect(ownPatient.results.every((match: { metadata: { patient_id: string } }) => match.metadata.patient_id !== 'P2')).toBe(true);
  });

  it('resumes after kill -9 with no duplicate and no missing tile', async () => {
    const folder = join(scratch, 'many');
    mkdirSync(folder, { recursive: true });
    for (let i = 0; i < 8; i++) copyFileSync(slidePath('CMU-1-Small-Region.svs'), join(folder, `copy-${i}.svs`));
    const killed = join(scratch, 'killed');
    const child = spawn(process.execPath, [TESSERA_BIN, 'index', '--slides', folder, '--out', killed, '--shards', '2', '--device', 'cpu'], { env: { ...process.env, TESSERA_HOME: join(scratch, 'home') } });
    await new Promise<void>((resolve) => {
      let seen = 0;
      child.stderr.on('data', (chunk: Buffer) => {
        seen += (chunk.toString().match(/slide done/g) ?? []).length;
        if (seen >= 2 && child.exitCode === null) {
          child.kill('SIGKILL');
        }
      });
      child.on('exit', () => resolve());
    });
    const resumed = await tessera('index', '--slides', folder, '--out', killed, '--shards', '2', '--device', 'cpu');
    expect(resumed.code, resumed.stderr).toBe(0);
    // Killed after its second commit: the rerun keeps what was committed and does the rest.
    expect(resumed.stdout).toMatch(/indexed [1-6] slides .* skipped [2-7] unchanged/);
    expect((await tessera('verify', '--index', killed)).code).toBe(0);
    const store = IndexStore.open(killed, { readOnly: true });
    const perSlide = store.shards.flatMap((shard) => shard.slideIds().map((id) => shard.slide(id)!.labels.length));
    expect(perSlide).toHaveLength(8);
    expect(new Set(perSlide).size).toBe(1); // the same slide, the same tiles: nothing doubled or lost
    expect(store.shards.reduce((sum, shard) => sum + shard.tileCount, 0)).toBe(8 * perSlide[0]!);
    await store.close();
  });

  it('stops with a clear message when the output folder is read-only', async () => {
    const locked = join(scratch, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555);
    if (process.getuid?.() === 0) {
      // root ignores permission bits; an index path under a file fails the same way.
      const result = await tessera('index', '--slides', dir, '--out', join(csv, 'index'), '--device', 'cpu');
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/cannot create the index in .*ENOTDIR.*\[INDEX_WRITE_FAILED\]/);
      return;
    }
    const result = await tessera('index', '--slides', dir, '--out', join(locked, 'index'), '--device', 'cpu');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\[INDEX_WRITE_FAILED\]/);
  });

  it('builds partitions separately that search together like one index', async () => {
    const parts = join(scratch, 'parts');
    const whole = join(scratch, 'whole');
    for (const partition of ['0/2', '1/2']) expect((await tessera('index', '--slides', dir, '--metadata', csv, '--out', parts, '--shards', '4', '--partition', partition, '--device', 'cpu', '--min-tissue', '0.3')).code).toBe(0);
    expect((await tessera('index', '--slides', dir, '--metadata', csv, '--out', whole, '--shards', '4', '--device', 'cpu', '--min-tissue', '0.3')).code).toBe(0);
    const a = IndexStore.open(parts, { readOnly: true });
    const b = IndexStore.open(whole, { readOnly: true });
    expect(a.shards.map((shard) => [shard.index, shard.slideIds().sort()])).toEqual(b.shards.map((shard) => [shard.index, shard.slideIds().sort()]));
    const query = b.shards.find((shard) => shard.tileCount > 0)!;
    const vector = query.vector(query.slide(query.slideIds()[0]!)!.labels[0]!);
    expect(a.search(vector, { k: 10 }).map((hit) => [hit.tile.slideId, hit.tile.x, hit.tile.y])).toEqual(b.search(vector, { k: 10 }).map((hit) => [hit.tile.slideId, hit.tile.x, hit.tile.y]));
    await a.close();
    await b.close();
  });

  it('refuses to add embeddings of another model to an index', async () => {
    const { channelMeanModel } = await import('../engine/embed/tiny-models.js');
    const tiny = channelMeanModel(join(scratch, 'tiny.onnx'), 'dynamic');
    writeFileSync(join(scratch, 'tiny.json'), JSON.stringify({ id: 'tiny', version: '1', input: 'input', inputSize: 224, mean: [0, 0, 0], std: [1, 1, 1], output: 'embedding', dimension: 3, license: 'test', source: 'test', sha256: '0'.repeat(64), file: 'x' }));
    expect((await tessera('models', 'add', tiny, '--manifest', join(scratch, 'tiny.json'))).code).toBe(0);
    const result = await tessera('index', '--slides', dir, '--out', out, '--shards', '3', '--model', 'tiny', '--device', 'cpu');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/was built with model mobilenetv2-int8 .*refusing to add tiny 1 \(3-d\) embeddings \[MODEL_MISMATCH\]/);
  });

  it('indexes a tile dataset by class folder and filters on the tile label', async () => {
    const tilesIndex = join(scratch, 'kather');
    const result = await tessera('index', '--tiles', join(TILES, 'kather2016-samples-24'), '--out', tilesIndex, '--device', 'cpu');
    expect(result.stdout).toMatch(/indexed 24 slides \(24 tiles\)/);
    const store = IndexStore.open(tilesIndex, { readOnly: true });
    const tumour = store.shards.flatMap((shard) => shard.slideIds().filter((id) => id.startsWith('01_TUMOR')).map((id) => shard.vector(shard.slide(id)!.labels[0]!)))[0]!;
    const others = store.search(tumour, { k: 5, filter: parseFilter({ label: { not: '01_TUMOR' } }) });
    expect(others).toHaveLength(5);
    expect(others.every((hit) => hit.tile.metadata?.label !== '01_TUMOR')).toBe(true);
    await store.close();
  });

  it('mines hard negatives in bulk as NDJSON, one line per query in order', async () => {
    const tilesIndex = join(scratch, 'kather');
    const folder = join(TILES, 'kather2016-samples-24');
    const queries = join(scratch, 'negatives.csv');
    writeFileSync(queries, ['file,label', `${join(folder, '01_TUMOR', '1A11_CRC-Prim-HE-07_022.tif_Row_601_Col_151.tif')},01_TUMOR`, 'nope.png,02_STROMA', `${join(folder, '02_STROMA', '10A01_CRC-Prim-HE-01_005.tif_Row_1_Col_901.tif')},02_STROMA`].join('\n'));
    const result = await tessera('hard-negatives', '--index', tilesIndex, '--queries', queries, '-k', '4', '--device', 'cpu');
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line));
    expect(lines.map((line) => line.query.label)).toEqual(['01_TUMOR', '02_STROMA', '02_STROMA']);
    expect(lines[1].error).toBe('SLIDE_NOT_FOUND');
    expect(lines[0].negatives).toHaveLength(4);
    expect(lines[0].negatives.every((hit: { metadata: { label: string } }) => hit.metadata.label !== '01_TUMOR')).toBe(true);
    expect(lines[2].negatives.every((hit: { metadata: { label: string } }) => hit.metadata.label !== '02_STROMA')).toBe(true);
  });
});
