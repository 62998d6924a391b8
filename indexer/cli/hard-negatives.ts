/** `tessera hard-negatives …`: for each labelled query image, the nearest tiles with another label. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { TesseraError, isTesseraError, type LabelledTileQuery } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, filterFlag, kFlag, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { hitsJson, openQueries, warnPartial } from './queries.js';
import { wholeImage } from './slides.js';

export const hardNegativesCommand: Command = {
  name: 'hard-negatives',
  usage: `  hard-negatives --index INDEX --queries FILE.csv [-k 10] [--ef N] [--label-field label] [--filter JSON]
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
    const settings = { k: kFlag(values.k), ef: values.ef === undefined ? undefined : numberFlag(values.ef, 'ef'), filter: filterFlag(values.filter), labelField: values['label-field'] ?? 'label' };
    const rows = parseCsv(readFileSync(values.queries, 'utf8'), { columns: true, skip_empty_lines: true, trim: true, bom: true }) as Array<{ file?: string; label?: string }>;
    const base = dirname(values.queries);
    const opened = await openQueries(values.index, values['models-dir'], values.device);
    try {
      // Queries are read and answered in chunks, streamed line by line: batches of any size fit.
      for (let start = 0; start < rows.length; start += CHUNK) {
        const chunk = rows.slice(start, start + CHUNK);
        const read = await Promise.all(chunk.map((row) => labelledQuery(row, base, values.queries as string)));
        const answer = await opened.queries.hardNegatives(read.filter((query): query is LabelledTileQuery => !isTesseraError(query)), settings, null);
        warnPartial('hard-negatives', answer.coverage);
        let next = 0;
        for (const [i, query] of read.entries()) {
          const row = chunk[i] ?? {};
          if (isTesseraError(query)) process.stdout.write(`${JSON.stringify({ query: row, error: query.code, message: query.message })}\n`);
          else process.stdout.write(`${JSON.stringify({ query: row, negatives: hitsJson(answer.hits[next++] ?? []) })}\n`);
        }
      }
    } finally {
      await opened.close();
    }
  },
};

/** Rows read, embedded and answered together: bounds memory and lets the first lines out early. */
const CHUNK = 64;

/** A CSV row as a labelled query, or the error that keeps it from being one (printed on its line). */
async function labelledQuery(row: { file?: string; label?: string }, base: string, csv: string): Promise<LabelledTileQuery | TesseraError> {
  try {
    if (!row.file || row.label === undefined) throw new TesseraError('INVALID_ARGUMENT', `${csv}: every row needs file and label`);
    return { label: row.label, query: { image: await wholeImage(resolve(base, row.file)) } };
  } catch (error) {
    if (!isTesseraError(error)) throw error;
    return error;
  }
}
