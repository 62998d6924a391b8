/** `tessera cohort --index INDEX --slide ID …`: the slides most like an indexed slide that pass a filter (POST /v1/cohorts). */
import type { Command } from './command.js';
import { UsageError, filterFlag, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { openQueries, warnPartial } from './queries.js';

export const cohortCommand: Command = {
  name: 'cohort',
  usage: `  cohort --index INDEX --slide ID [-k 100] [--ef N] [--filter JSON] [--include-query] [--exclude-own-patient]
                                     the k slides most like this one that pass the filter, as JSON`,
  details: MODELS_DETAILS,
  async run(args) {
    const { values } = parseFlags(args, {
      index: { type: 'string' },
      slide: { type: 'string' },
      k: { type: 'string', short: 'k' },
      ef: { type: 'string' },
      filter: { type: 'string' },
      'include-query': { type: 'boolean' },
      'exclude-own-patient': { type: 'boolean' },
      device: { type: 'string' },
      'models-dir': { type: 'string' },
    });
    if (!values.index || !values.slide) throw new UsageError('--index INDEX and --slide ID are required');
    const k = numberFlag(values.k, 'k', 100);
    if (!Number.isInteger(k) || k < 1 || k > 1000) throw new UsageError(`-k must be an integer from 1 to 1000, got ${values.k}`);
    const settings = { k, ef: values.ef === undefined ? undefined : numberFlag(values.ef, 'ef'), filter: filterFlag(values.filter), exclude: { ownPatient: values['exclude-own-patient'] === true } };
    const opened = await openQueries(values.index, values['models-dir'], values.device);
    try {
      const answer = await opened.queries.cohort({ slideId: values.slide }, settings, null);
      warnPartial('cohort', answer.coverage);
      const slides = answer.matches.map((match) => ({ slideId: match.slideId, score: Number(match.score.toFixed(6)), metadata: match.metadata }));
      if (answer.querySlide && values['include-query']) slides.unshift({ slideId: answer.querySlide.slideId, score: 1, metadata: answer.querySlide.metadata });
      process.stdout.write(`${JSON.stringify({ query: answer.query, slides }, null, 2)}\n`);
    } finally {
      await opened.close();
    }
  },
};
