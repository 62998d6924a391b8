/**
 * `tessera evaluate`: leave-one-out retrieval figures of an index (engine/search evaluateIndex),
 * printed as a table or as JSON. Reads stored vectors only: no model is loaded.
 */
import { IndexStore, evaluateIndex, type Evaluation, type ModeEvaluation, type RetrievalFigures } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, parseFlags } from './flags.js';

export const evaluateCommand: Command = {
  name: 'evaluate',
  usage: `  evaluate --index INDEX --label-field F [--by slide|patient] [--patient-field patient_id]
           [-k 5] [--ef N] [--mode region|slide] [--json]
                                     leave-one-out retrieval figures per label and overall`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      index: { type: 'string' },
      'label-field': { type: 'string' },
      by: { type: 'string' },
      'patient-field': { type: 'string' },
      k: { type: 'string', short: 'k' },
      ef: { type: 'string' },
      mode: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}': evaluate takes flags only`);
    if (!values.index || !values['label-field']) throw new UsageError('--index INDEX and --label-field F are required');
    const by = values.by ?? 'slide';
    if (by !== 'slide' && by !== 'patient') throw new UsageError(`--by must be slide or patient, got '${by}'`);
    const mode = values.mode;
    if (mode !== undefined && mode !== 'region' && mode !== 'slide') throw new UsageError(`--mode must be region or slide, got '${mode}'`);
    const k = integerFlag(values.k, 'k', 5);
    if (k < 3 || k > 100) throw new UsageError(`-k must be an integer from 3 to 100, got ${k}`);
    const ef = values.ef === undefined ? undefined : integerFlag(values.ef, 'ef', 0);
    const store = IndexStore.open(values.index, { readOnly: true });
    try {
      const evaluation = evaluateIndex(store, {
        labelField: values['label-field'],
        by,
        k,
        ...(values['patient-field'] ? { patientField: values['patient-field'] } : {}),
        ...(ef !== undefined ? { ef } : {}),
        ...(mode ? { modes: [mode] } : {}),
      });
      process.stdout.write(values.json ? `${JSON.stringify(evaluation, null, 2)}\n` : table(evaluation, values['patient-field'] ?? 'patient_id'));
    } finally {
      await store.close();
    }
  },
};

function integerFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < 1) throw new UsageError(`--${flag} must be a positive integer, got '${value}'`);
  return parsed;
}

function table(evaluation: Evaluation, patientField: string): string {
  const { k } = evaluation;
  const lines = [
    `leave-one-out by ${evaluation.by}${evaluation.by === 'patient' ? ` (field ${patientField})` : ''}: ${evaluation.units} query units, ` +
      `${evaluation.slides} slides (${evaluation.unlabelledSlides} without "${evaluation.labelField}"), ${evaluation.tiles} tiles, k ${k}`,
  ];
  const section = (name: string, result: ModeEvaluation | undefined) => {
    if (!result) return;
    lines.push('', `${name} (${result.overall.queries} queries, median ${result.medianSearchMs.toFixed(2)} ms a search)`);
    const width = Math.max(8, ...Object.keys(result.perLabel).map((label) => label.length));
    lines.push(`  ${'label'.padEnd(width)}  queries  Acc@1  Acc@3  Acc@${k}  MV@${k}  mAP@${k}     F1`);
    const row = (label: string, figures: RetrievalFigures) =>
      lines.push(`  ${label.padEnd(width)}  ${String(figures.queries).padStart(7)}  ${[figures.acc1, figures.acc3, figures.accK, figures.majorityK, figures.mapK, figures.f1].map((value) => value.toFixed(3).padStart(5)).join('  ')}`);
    for (const [label, figures] of Object.entries(result.perLabel)) row(label, figures);
    row('overall', result.overall);
  };
  section('region search (each tile a query)', evaluation.region);
  section('slide search (each slide a query, by mosaic)', evaluation.slide);
  lines.push('', `index ${(evaluation.indexBytes / 2 ** 20).toFixed(1)} MiB on disk, ${(evaluation.bytesPerSlide / 1024).toFixed(1)} KiB per slide; evaluated in ${evaluation.seconds.toFixed(1)} s`, '');
  return lines.join('\n');
}
