/** `tessera search …`: similar regions, similar slides, and slides like a new case. */
import { readFileSync } from 'node:fs';
import { TesseraError, isDicomWebSeriesUrl, isTesseraError, newCaseMosaic, openSlide, parseFilter, readGridTile, searchSlides, type RgbImage } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, filterFlag, kFlag, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { hitsJson, openForQueries } from './queries.js';
import { DICOMWEB_DETAILS, wholeImage, withSlide } from './slides.js';

export const searchCommand: Command = {
  name: 'search',
  usage: `  search --index INDEX (--image FILE | --images LIST | --slide ID --x X --y Y --width W --height H)
         [-k 10] [--ef N] [--filter JSON] [--include-self] [--exclude-own-patient]
                                     similar regions as JSON (NDJSON for --images)
  search --index INDEX --slide ID --mode slide [-k 10] [--filter JSON]
                                     slides like this one, with their matching regions
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
      k: { type: 'string', short: 'k' },
      ef: { type: 'string' },
      filter: { type: 'string' },
      mode: { type: 'string' },
      'slide-file': { type: 'string' },
      'dicomweb-series': { type: 'string' },
      'slide-mpp': { type: 'string' },
      'include-self': { type: 'boolean' },
      'exclude-own-patient': { type: 'boolean' },
      device: { type: 'string' },
      'models-dir': { type: 'string' },
    });
    if (!values.index) throw new UsageError('--index INDEX is required');
    const mode = values.mode ?? 'region';
    if (mode !== 'region' && mode !== 'slide') throw new UsageError(`--mode must be region or slide, got '${mode}'`);
    const k = kFlag(values.k);
    // No --ef: each segment's ef tuned for recall@10 ≥ 0.95 when it was built.
    const ef = values.ef === undefined ? undefined : numberFlag(values.ef, 'ef');
    const filter = parseFilter(filterFlag(values.filter));
    const { info, store, embedder } = await openForQueries(values.index, values['models-dir'], values.device);
    // A query slide's own patient is excluded on request: other slides of one patient look alike.
    const ownPatient = values.slide && values['exclude-own-patient'] ? store.shardFor(values.slide)?.slide(values.slide)?.metadata.patient_id : undefined;
    const excludePatients = ownPatient ? new Set([ownPatient]) : undefined;
    const query = async (image: RgbImage, exclude?: string) =>
      hitsJson(store.search((await embedder.embed([image]))[0] as Float32Array, { k, ef, filter, ...(exclude ? { excludeSlides: new Set([exclude]) } : {}), ...(excludePatients ? { excludePatients } : {}) }));
    try {
      if (values.image) {
        process.stdout.write(`${JSON.stringify({ query: { image: values.image }, results: await query(await wholeImage(values.image)) }, null, 2)}\n`);
      } else if (values.images) {
        const paths = readFileSync(values.images, 'utf8').split('\n').map((line) => line.trim()).filter(Boolean);
        for (const path of paths) {
          try {
            process.stdout.write(`${JSON.stringify({ query: { image: path }, results: await query(await wholeImage(path)) })}\n`);
          } catch (error) {
            if (!isTesseraError(error)) throw error;
            process.stdout.write(`${JSON.stringify({ query: { image: path }, error: error.code, message: error.message })}\n`);
          }
        }
      } else if ((values['slide-file'] || values['dicomweb-series']) && mode === 'slide') {
        // A new case: its mosaic is computed now, with the index's model and tile grid.
        const locator = (values['slide-file'] ?? values['dicomweb-series']) as string;
        if (values['dicomweb-series'] && !isDicomWebSeriesUrl(locator)) throw new UsageError('--dicomweb-series takes a series URL: http(s)://HOST/ROOT/studies/UID/series/UID');
        const slideMpp = values['slide-mpp'] === undefined ? undefined : numberFlag(values['slide-mpp'], 'slide-mpp');
        const name = locator.split('/').pop() ?? locator;
        const mosaic = await withSlide(locator, (slide) => newCaseMosaic(slide, name, embedder, { tile: info.tile, ...(slideMpp === undefined ? {} : { slideMpp: [slideMpp, slideMpp] as [number, number] }) }));
        process.stderr.write(`mosaic of ${name}: ${mosaic.vectors.length} tiles from ${mosaic.embeddedTiles} embedded of ${mosaic.tissueTiles} tissue tiles in ${mosaic.ms.total} ms (grid ${mosaic.ms.grid}, embed ${mosaic.ms.embed}, k-means ${mosaic.ms.mosaic})\n`);
        const slides = searchSlides(store, mosaic.vectors, { k, ef, filter });
        const results = slides.map((match) => ({ slideId: match.slideId, score: Number(match.score.toFixed(6)), matchedQueries: match.matchedQueries, metadata: match.metadata, evidence: hitsJson(match.evidence) }));
        process.stdout.write(`${JSON.stringify({ query: { slide: name, tissueTiles: mosaic.tissueTiles, embeddedTiles: mosaic.embeddedTiles, mosaicTiles: mosaic.vectors.length, ms: mosaic.ms }, results }, null, 2)}\n`);
      } else if (values.slide && mode === 'slide') {
        const record = store.shardFor(values.slide)?.slide(values.slide);
        if (!record) throw new TesseraError('SLIDE_NOT_FOUND', `slide "${values.slide}" is not in ${values.index}`);
        const shard = store.shardFor(values.slide)!;
        const queries = (record.mosaic.length > 0 ? record.mosaic : record.labels.slice(0, 16)).map((label) => shard.vector(label));
        const slides = searchSlides(store, queries, { k, ef, filter, excludeSlides: new Set(values['include-self'] ? [] : [record.slideId]), ...(excludePatients ? { excludePatients } : {}) });
        const results = slides.map((match) => ({ slideId: match.slideId, score: Number(match.score.toFixed(6)), matchedQueries: match.matchedQueries, metadata: match.metadata, evidence: hitsJson(match.evidence) }));
        process.stdout.write(`${JSON.stringify({ query: { slideId: record.slideId, mosaicTiles: queries.length }, results }, null, 2)}\n`);
      } else if (values.slide) {
        const shard = store.shardFor(values.slide);
        const record = shard?.slide(values.slide);
        if (!record) throw new TesseraError('SLIDE_NOT_FOUND', `slide "${values.slide}" is not in ${values.index}`);
        const slide = await openSlide(record.path);
        try {
          const tile = { baseX: numberFlag(values.x, 'x'), baseY: numberFlag(values.y, 'y'), baseWidth: numberFlag(values.width, 'width'), baseHeight: numberFlag(values.height, 'height'), tissue: 1 };
          const targetPx = Math.max(1, Math.round((tile.baseWidth * record.mpp[0]) / info.tile.mpp));
          const image = await readGridTile(slide, tile, { mpp: info.tile.mpp, sizePx: targetPx }, { resize: false });
          const results = await query(image, values['include-self'] ? undefined : record.slideId);
          process.stdout.write(`${JSON.stringify({ query: { slideId: record.slideId, x: tile.baseX, y: tile.baseY, width: tile.baseWidth, height: tile.baseHeight }, results }, null, 2)}\n`);
        } finally {
          slide.close();
        }
      } else {
        throw new UsageError('give --image FILE, --images LIST or --slide ID with --x --y --width --height');
      }
    } finally {
      await embedder.close();
      await store.close();
    }
  },
};
