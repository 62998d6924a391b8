/** `tessera hard-negatives …`: for each labelled query image, the nearest tiles with another label. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { TesseraError, hardNegatives, isTesseraError, type RgbImage, type TileHit } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, filterFlag, kFlag, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { hitsJson, openForQueries } from './queries.js';
import { wholeImage } from './slides.js';

export const hardNegativesCommand: Command = {
  name: 'hard-negatives',
  usage: `  hard-negatives --index INDEX --queries FILE.csv [-k 10] [--label-field label] [--filter JSON]
                                     for each labelled query image (CSV: file,label), the nearest
                                     tiles with another label, as NDJSON in input order`,
  details: MODELS_DETAILS,
  async run(args) {
    const { values } = parseFlags(args, {
      index: { type: 'string' },
      queries: { type: 'string' },
      k: { type: 'string', short: 'k' },
      ef: { type: 'string' },
      'label-field': { type: 'string' },
      filter: { type: 'string' },
      device: { type: 'string' },
      'models-dir': { type: 'string' },
    });
    if (!values.index || !values.queries) throw new UsageError('--index INDEX and --queries FILE.csv are required');
    const k = kFlag(values.k);
    const filter = filterFlag(values.filter);
    const rows = parseCsv(readFileSync(values.queries, 'utf8'), { columns: true, skip_empty_lines: true, trim: true, bom: true }) as Array<{ file?: string; label?: string }>;
    const base = dirname(values.queries);
    const { store, embedder } = await openForQueries(values.index, values['models-dir'], values.device);
    try {
      // Queries are embedded and answered in chunks, streamed line by line: batches of any size fit.
      for (let start = 0; start < rows.length; start += embedder.batchSize) {
        const chunk = rows.slice(start, start + embedder.batchSize);
        const images: Array<RgbImage | null> = [];
        const errors: Array<TesseraError | null> = [];
        for (const row of chunk) {
          try {
            if (!row.file || row.label === undefined) throw new TesseraError('INVALID_ARGUMENT', `${values.queries}: every row needs file and label`);
            images.push(await wholeImage(resolve(base, row.file)));
            errors.push(null);
          } catch (error) {
            if (!isTesseraError(error)) throw error;
            images.push(null);
            errors.push(error);
          }
        }
        const vectors = await embedder.embed(images.filter((image): image is RgbImage => image !== null));
        let next = 0;
        const queries = images.map((image, i) => (image ? { vector: vectors[next++] as Float32Array, label: chunk[i]?.label ?? '' } : null));
        const answers = hardNegatives(store, queries.filter((query) => query !== null), { k, ...(values.ef === undefined ? {} : { ef: numberFlag(values.ef, 'ef') }), labelField: values['label-field'] ?? 'label', ...(filter ? { filter } : {}) });
        for (const [i, query] of queries.entries()) {
          const row = chunk[i] ?? {};
          const error = errors[i];
          if (!query || error) {
            process.stdout.write(`${JSON.stringify({ query: row, error: error?.code, message: error?.message })}\n`);
            continue;
          }
          const hits: TileHit[] = answers.next().value ?? [];
          process.stdout.write(`${JSON.stringify({ query: row, negatives: hitsJson(hits) })}\n`);
        }
      }
    } finally {
      await embedder.close();
      await store.close();
    }
  },
};
