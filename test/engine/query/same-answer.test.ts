/**
 * One query service: the same question asked through the `tessera` command and through the API
 * (a real server on 127.0.0.1 over the same index) gets the same answer: the same slides and tile
 * positions in the same order, scores within 1e-6.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../../api/index.js';
import { openSlide } from '../../../engine/index.js';
import { buildApiFixture, client, serve, type ApiFixture } from '../../api/fixture.js';
import { runTessera } from '../../run-cli.js';
import { SHARED_MISSING, hasSharedData } from '../../shared-data.js';

interface Tile {
  slideId: string;
  x: number;
  y: number;
  width: number;
  height: number;
  score: number;
}

interface SlideScore {
  slideId: string;
  score: number;
  evidence?: Tile[];
}

/** Asserts two hit lists agree: same tiles in the same order, scores within 1e-6. */
function expectSameTiles(cli: Tile[], api: Tile[]): void {
  expect(cli.length).toBeGreaterThan(0);
  expect(cli.map(({ slideId, x, y, width, height }) => ({ slideId, x, y, width, height }))).toEqual(api.map(({ slideId, x, y, width, height }) => ({ slideId, x, y, width, height })));
  cli.forEach((hit, i) => expect(Math.abs(hit.score - (api[i] as Tile).score)).toBeLessThanOrEqual(1e-6));
}

function expectSameSlides(cli: SlideScore[], api: SlideScore[]): void {
  expect(cli.length).toBeGreaterThan(0);
  expect(cli.map((slide) => slide.slideId)).toEqual(api.map((slide) => slide.slideId));
  cli.forEach((slide, i) => {
    const other = api[i] as SlideScore;
    expect(Math.abs(slide.score - other.score)).toBeLessThanOrEqual(1e-6);
    if (slide.evidence) expectSameTiles(slide.evidence, other.evidence ?? []);
  });
}

describe.skipIf(!hasSharedData)(`the same question through the CLI and the API ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let fixture: ApiFixture;
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  let image: string;
  const tessera = async (...args: string[]) => {
    const result = await runTessera([args[0] as string, '--index', fixture.index, '--device', 'cpu', ...args.slice(1)], { TESSERA_HOME: join(fixture.scratch, 'home') });
    expect(result.code, result.stderr).toBe(0);
    return result.stdout;
  };
  const post = async (path: string, json: unknown) => {
    const answer = await api(path, { json });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body;
  };

  beforeAll(async () => {
    fixture = await buildApiFixture();
    // An open server (no keys) on 127.0.0.1: the CLI has no keys either, both see every dataset.
    server = await serve(fixture, { index: fixture.index });
    api = client(server.url);
    // A query image: a region of S1 as PNG, read by the CLI from the file and uploaded to the API.
    const slide = await openSlide(join(fixture.slides, 'cmu.svs'));
    const region = await slide.readRegion(0, 900, 1300, 256, 256);
    slide.close();
    image = join(fixture.scratch, 'query.png');
    writeFileSync(image, await sharp(region.data, { raw: { width: region.width, height: region.height, channels: 3 } }).png().toBuffer());
  }, 240_000);
  afterAll(async () => {
    await server?.close();
  });

  it('answers a region by tile reference, by a rectangle that is no tile, refined by example, with a filter and as a whole region alike', async () => {
    const rectangle = { slideId: 'S1', x: 1001, y: 1203, width: 300, height: 300 };
    const byRectangle = await post('/v1/search/region', { ...rectangle, k: 5 });
    expect(byRectangle.query.embedded).toBe(true);
    const cliRectangle = JSON.parse(await tessera('search', '--slide', 'S1', '--x', '1001', '--y', '1203', '--width', '300', '--height', '300', '-k', '5'));
    expect(cliRectangle.query.embedded).toBe(true);
    expectSameTiles(cliRectangle.results, byRectangle.results);

    // An indexed tile of S2 (the first hit above) as a tile reference: its stored vector, no embedding.
    const tile: Tile = byRectangle.results.find((hit: Tile) => hit.slideId === 'S2') ?? byRectangle.results[0];
    const byReference = await post('/v1/search/region', { slideId: tile.slideId, x: tile.x, y: tile.y, width: tile.width, height: tile.height, k: 5 });
    expect(byReference.query.embedded).toBe(false);
    const cliReference = JSON.parse(await tessera('search', '--slide', tile.slideId, '--x', String(tile.x), '--y', String(tile.y), '--width', String(tile.width), '--height', String(tile.height), '-k', '5'));
    expect(cliReference.query.embedded).toBe(false);
    expectSameTiles(cliReference.results, byReference.results);
    expect(byReference.results.every((hit: Tile) => hit.slideId !== tile.slideId)).toBe(true);

    // Refined by example: toward that tile, away from the query image.
    const png = (await sharp(image).toBuffer()).toString('base64');
    const refined = await post('/v1/search/region', { ...rectangle, k: 5, positives: [{ slideId: tile.slideId, x: tile.x, y: tile.y, width: tile.width, height: tile.height }], negatives: [{ image: png }] });
    expect(refined.query.refined).toEqual({ positives: 1, negatives: 1 });
    const cliRefined = JSON.parse(await tessera('search', '--slide', 'S1', '--x', '1001', '--y', '1203', '--width', '300', '--height', '300', '-k', '5', '--positive', `${tile.slideId}@${tile.x},${tile.y},${tile.width},${tile.height}`, '--negative', image));
    expectSameTiles(cliRefined.results, refined.results);
    expect(cliRefined.results.map((hit: Tile) => hit.score)).not.toEqual(cliRectangle.results.map((hit: Tile) => hit.score));

    const filter = { organ: 'skin' };
    const filtered = await post('/v1/search/region', { ...rectangle, k: 5, filter, exclude: { ownSlide: false } });
    const cliFiltered = JSON.parse(await tessera('search', '--slide', 'S1', '--x', '1001', '--y', '1203', '--width', '300', '--height', '300', '-k', '5', '--filter', JSON.stringify(filter), '--include-self'));
    expectSameTiles(cliFiltered.results, filtered.results);
    expect(filtered.results.every((hit: { metadata: { organ: string } }) => hit.metadata.organ === 'skin')).toBe(true);
    expect(filtered.results.some((hit: Tile) => hit.slideId === 'S1')).toBe(true);

    // A whole-region query: S2's box cut into its indexed tiles, matched as regions.
    const box = { slideId: 'S2', x: 0, y: 0, width: 672, height: 672 };
    const whole = await post('/v1/search/region', { ...box, k: 5, regions: true });
    const cliWhole = JSON.parse(await tessera('search', '--slide', 'S2', '--x', '0', '--y', '0', '--width', '672', '--height', '672', '--regions', '-k', '5'));
    expect(cliWhole.query.tiles).toEqual(whole.query.tiles);
    expectSameTiles(cliWhole.regions, whole.regions);
    cliWhole.regions.forEach((region: { evidence: Array<Tile & { queryTile: number }> }, i: number) => {
      expectSameTiles(region.evidence, whole.regions[i].evidence);
      expect(region.evidence.map((hit) => hit.queryTile)).toEqual(whole.regions[i].evidence.map((hit: { queryTile: number }) => hit.queryTile));
    });
    expectSameTiles(cliWhole.results, whole.results);
  });

  it('answers an uploaded image and hard negatives for it alike', async () => {
    const png = (await sharp(image).toBuffer()).toString('base64');
    const byImage = await post('/v1/search/region', { image: png, k: 5 });
    const cliImage = JSON.parse(await tessera('search', '--image', image, '-k', '5'));
    expectSameTiles(cliImage.results, byImage.results);

    const queries = join(fixture.scratch, 'negatives.csv');
    writeFileSync(queries, `file,label\n${image},normal\n${image},nevus\n`);
    const negatives = await post('/v1/hard-negatives', { queries: [{ image: png, label: 'normal' }, { image: png, label: 'nevus' }], labelField: 'diagnosis', k: 4 });
    const cliNegatives = (await tessera('hard-negatives', '--queries', queries, '--label-field', 'diagnosis', '-k', '4')).trim().split('\n').map((line) => JSON.parse(line));
    expect(cliNegatives).toHaveLength(2);
    cliNegatives.forEach((line, i) => expectSameTiles(line.negatives, negatives.results[i].results));
    expect(negatives.results[0].results.every((hit: { metadata: { diagnosis: string } }) => hit.metadata.diagnosis !== 'normal')).toBe(true);
  });

  it('answers slide search of an indexed slide, of images, of a new case file, and a cohort alike', async () => {
    const bySlide = await post('/v1/search/slide', { slideId: 'S2', k: 3 });
    const cliSlide = JSON.parse(await tessera('search', '--slide', 'S2', '--mode', 'slide', '-k', '3'));
    expect(cliSlide.query.mosaicTiles).toBe(bySlide.query.mosaicTiles);
    expectSameSlides(cliSlide.results, bySlide.results);

    const list = join(fixture.scratch, 'images.txt');
    writeFileSync(list, `${image}\n`);
    const byImages = await post('/v1/search/slide', { images: [(await sharp(image).toBuffer()).toString('base64')], k: 3 });
    const cliImages = JSON.parse(await tessera('search', '--images', list, '--mode', 'slide', '-k', '3'));
    expect(cliImages.query).toEqual({ images: 1 });
    expectSameSlides(cliImages.results, byImages.results);

    // A new case under the server's slide root (the crop, as a file: its mosaic computed now, twice).
    const byNewCase = await post('/v1/search/slide', { slidePath: 'crop.ome.tif', k: 3 });
    const cliNewCase = JSON.parse(await tessera('search', '--mode', 'slide', '--slide-file', join(fixture.slides, 'crop.ome.tif'), '-k', '3'));
    expect(cliNewCase.query.mosaicTiles).toBe(byNewCase.query.mosaicTiles);
    expectSameSlides(cliNewCase.results, byNewCase.results);

    const cohort = await post('/v1/cohorts', { slideId: 'S2', k: 5, filter: { dataset: 'cmu' } });
    const cliCohort = JSON.parse(await tessera('cohort', '--slide', 'S2', '-k', '5', '--filter', JSON.stringify({ dataset: 'cmu' })));
    expectSameSlides(cliCohort.slides, cohort.slides);
  });
});
