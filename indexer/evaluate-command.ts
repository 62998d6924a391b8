/**
 * `tessera evaluate`: leave-one-out retrieval figures of an index (engine/search evaluateIndex),
 * printed as a table or as JSON. Reads stored vectors only: no model is loaded.
 */
import { parseArgs } from 'node:util';
import { IndexStore, evaluateIndex, type Evaluation, type ModeEvaluation, type RetrievalFigures } from '../engine/index.js';

/** What cli.ts lends a command kept in its own file: its usage error and its check-only mode. */
export interface CommandKit {
  /** Throws the CLI's usage error (exit 2). */
  usage(message: string): never;
  /** Called once the flags have parsed: stops here when the CLI only checks an invocation. */
  parsed(): void;
}

export const EVALUATE_USAGE = `  evaluate --index INDEX --label-field F [--by slide|patient] [--patient-field patient_id]
           [-k 5] [--ef N] [--mode region|slide] [--json]
                                     leave-one-out retrieval figures per label and overall`;

export async function evaluateCommand(args: string[], kit: CommandKit): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        index: { type: 'string' },
        'label-field': { type: 'string' },
        by: { type: 'string' },
        'patient-field': { type: 'string' },
        k: { type: 'string', short: 'k' },
        ef: { type: 'string' },
        mode: { type: 'string' },
        json: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (error) {
    kit.usage((error as Error).message);
  }
  kit.parsed();
  if (!values.index || !values['label-field']) kit.usage('--index INDEX and --label-field F are required');
  const by = values.by ?? 'slide';
  if (by !== 'slide' && by !== 'patient') kit.usage(`--by must be slide or patient, got '${by}'`);
  const mode = values.mode;
  if (mode !== undefined && mode !== 'region' && mode !== 'slide') kit.usage(`--mode must be region or slide, got '${mode}'`);
  const k = integerFlag(values.k, 'k', 5, kit);
  if (k < 3 || k > 100) kit.usage(`-k must be an integer from 3 to 100, got ${k}`);
  const ef = values.ef === undefined ? undefined : integerFlag(values.ef, 'ef', 0, kit);
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
}

function integerFlag(value: string | undefined, flag: string, fallback: number, kit: CommandKit): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < 1) kit.usage(`--${flag} must be a positive integer, got '${value}'`);
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
