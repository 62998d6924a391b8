/** `tessera search …`: similar regions, similar slides, and slides like a new case. */
import { readFileSync } from 'node:fs';
import { isDicomWebSeriesUrl, isTesseraError, type Feedback, type QuerySettings, type QueryService, type RegionMatch, type SlideAnswer, type TileQuery } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, filterFlag, kFlag, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { hitsJson, openQueries, warnPartial } from './queries.js';
import { DICOMWEB_DETAILS, wholeImage } from './slides.js';

export const searchCommand: Command = {
  name: 'search',
  usage: `  search --index INDEX (--image FILE | --images LIST | --slide ID --x X --y Y --width W --height H [--regions])
         [-k 10] [--ef N] [--filter JSON] [--include-self] [--exclude-own-patient]
                                     similar regions as JSON (NDJSON for --images); a rectangle that is
                                     an indexed tile is searched with its stored vector; --regions
                                     cuts the box into its indexed tiles and also finds matching regions
         [--positive EXAMPLE]… [--negative EXAMPLE]…
                                     refine by example (Rocchio): more like the positives, less like
                                     the negatives; an EXAMPLE is SLIDE_ID@X,Y,WIDTH,HEIGHT or an image
                                     file (any search mode)
  search --index INDEX (--slide ID | --images LIST) --mode slide [-k 10] [--filter JSON]
                                     slides like this one (or like these images together), with
                                     their matching regions
  search --index INDEX --mode slide (--slide-file PATH | --dicomweb-series URL) [--slide-mpp M] …
                                     slides like a new case (not indexed): its mosaic is computed now`,
  details: `${MODELS_DETAILS}\n\n${DICOMWEB_DETAILS}`,
  async run(args) {
    const { values } = parseFlags(args, {
      index: { type: 'string' },
      image: { type: 'string' },
      images: { type: 'string' },
      slide: { type: 'string' },
      x: { type: 'string' },
      y: { type: 'string' },
      width: { type: 'string' },
      height: { type: 'string' },
      regions: { type: 'boolean' },
      k: { type: 'string', short: 'k' },
      ef: { type: 'string' },
      filter: { type: 'string' },
      mode: { type: 'string' },
      'slide-file': { type: 'string' },
      'dicomweb-series': { type: 'string' },
      'slide-mpp': { type: 'string' },
      'include-self': { type: 'boolean' },
      'exclude-own-patient': { type: 'boolean' },
      positive: { type: 'string', multiple: true },
      negative: { type: 'string', multiple: true },
      device: { type: 'string' },
      'models-dir': { type: 'string' },
    });
    if (!values.index) throw new UsageError('--index INDEX is required');
    const mode = values.mode ?? 'region';
    if (mode !== 'region' && mode !== 'slide') throw new UsageError(`--mode must be region or slide, got '${mode}'`);
    const newCase = values['slide-file'] ?? values['dicomweb-series'];
    if (values['dicomweb-series'] && !isDicomWebSeriesUrl(values['dicomweb-series'])) throw new UsageError('--dicomweb-series takes a series URL: http(s)://HOST/ROOT/studies/UID/series/UID');
    if (!values.image && !values.images && !values.slide && !(newCase && mode === 'slide')) throw new UsageError('give --image FILE, --images LIST or --slide ID with --x --y --width --height');
    const settings: QuerySettings = {
      k: kFlag(values.k),
      // No --ef: each segment's ef tuned for recall@10 ≥ 0.95 when it was built.
      ef: values.ef === undefined ? undefined : numberFlag(values.ef, 'ef'),
      filter: filterFlag(values.filter),
      // A query slide's own patient is excluded on request: other slides of one patient look alike.
      exclude: { ownSlide: !values['include-self'], ownPatient: values['exclude-own-patient'] === true },
    };
    const slideMpp = values['slide-mpp'] === undefined ? undefined : numberFlag(values['slide-mpp'], 'slide-mpp');
    const region = values.slide && mode === 'region' ? { slideId: values.slide, x: numberFlag(values.x, 'x'), y: numberFlag(values.y, 'y'), width: numberFlag(values.width, 'width'), height: numberFlag(values.height, 'height') } : undefined;
    const opened = await openQueries(values.index, values['models-dir'], values.device);
    const { queries } = opened;
    try {
      const feedback = { positives: await Promise.all((values.positive ?? []).map(example)), negatives: await Promise.all((values.negative ?? []).map(example)) };
      if (values.image) {
        const answer = await queries.searchRegion({ image: await wholeImage(values.image) }, settings, null, feedback);
        warnPartial('search', answer.coverage);
        print({ query: { image: values.image }, results: hitsJson(answer.hits) });
      } else if (values.images && mode === 'slide') {
        // The images together are the query tiles, as `images` in POST /v1/search/slide.
        const answer = await queries.searchSlides({ images: await Promise.all(listedPaths(values.images).map(wholeImage)) }, settings, null, feedback);
        print({ query: answer.query, results: slidesJson(answer) });
      } else if (values.images) {
        await searchImages(queries, values.images, settings, feedback);
      } else if (newCase && mode === 'slide') {
        // A new case: its mosaic is computed now, with the index's model and tile grid.
        const answer = await queries.searchSlides({ newCase: { locator: newCase, slideMpp } }, settings, null, feedback);
        const name = newCase.split('/').pop() ?? newCase;
        if ('newCase' in answer.query) {
          const { tissueTiles, embeddedTiles, mosaicTiles, ms } = answer.query.newCase;
          process.stderr.write(`mosaic of ${name}: ${mosaicTiles} tiles from ${embeddedTiles} embedded of ${tissueTiles} tissue tiles in ${ms.total} ms (grid ${ms.grid}, embed ${ms.embed}, k-means ${ms.mosaic})\n`);
          print({ query: { slide: name, tissueTiles, embeddedTiles, mosaicTiles, ms }, results: slidesJson(answer) });
        }
      } else if (values.slide && mode === 'slide') {
        const answer = await queries.searchSlides({ slideId: values.slide }, settings, null, feedback);
        print({ query: answer.query, results: slidesJson(answer) });
      } else if (region && values.regions) {
        const answer = await queries.searchWholeRegion(region, settings, null, feedback);
        warnPartial('search', answer.coverage);
        print({ query: { ...region, tiles: answer.tiles }, regions: answer.regions.map(regionJson), results: hitsJson(answer.hits) });
      } else if (region) {
        const answer = await queries.searchRegion(region, settings, null, feedback);
        warnPartial('search', answer.coverage);
        print({ query: { ...region, embedded: answer.embedded }, results: hitsJson(answer.hits) });
      }
    } finally {
      await opened.close();
    }
  },
};

/** --images LIST: one NDJSON line per image, in list order; an unreadable image gets an error line. */
async function searchImages(queries: QueryService, list: string, settings: QuerySettings, feedback: Feedback): Promise<void> {
  for (const path of listedPaths(list)) {
    try {
      const answer = await queries.searchRegion({ image: await wholeImage(path) }, settings, null, feedback);
      warnPartial('search', answer.coverage);
      process.stdout.write(`${JSON.stringify({ query: { image: path }, results: hitsJson(answer.hits) })}\n`);
    } catch (error) {
      if (!isTesseraError(error)) throw error;
      process.stdout.write(`${JSON.stringify({ query: { image: path }, error: error.code, message: error.message })}\n`);
    }
  }
}

/** A region match as the CLI prints it: its box in level-0 pixels, score, and evidence with the query tile each answers. */
function regionJson(match: RegionMatch) {
  const { slideId, x, y, width, height, matchedQueries, metadata } = match;
  const evidence = hitsJson(match.evidence).map((hit, i) => ({ ...hit, queryTile: match.evidence[i]?.queryTile }));
  return { slideId, x, y, width, height, score: Number(match.score.toFixed(6)), matchedQueries, metadata, evidence };
}

/**
 * A --positive or --negative example: `SLIDE_ID@X,Y,WIDTH,HEIGHT` (a region of an indexed slide,
 * level-0 pixels) or an image file.
 */
async function example(value: string): Promise<TileQuery> {
  const region = /^(.+)@(\d+),(\d+),(\d+),(\d+)$/.exec(value);
  if (!region) return { image: await wholeImage(value) };
  const [, slideId = '', x, y, width, height] = region;
  return { slideId, x: Number(x), y: Number(y), width: Number(width), height: Number(height) };
}

/** The image paths of a list file, one a line. */
function listedPaths(list: string): string[] {
  return readFileSync(list, 'utf8').split('\n').map((line) => line.trim()).filter(Boolean);
}

function slidesJson(answer: SlideAnswer) {
  warnPartial('search', answer.coverage);
  return answer.matches.map((match) => ({ slideId: match.slideId, score: Number(match.score.toFixed(6)), matchedQueries: match.matchedQueries, metadata: match.metadata, evidence: hitsJson(match.evidence) }));
}

function print(answer: unknown): void {
  process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
}
