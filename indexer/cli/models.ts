/** `tessera models list|add`: the installed tile encoders, and installing a new one. */
import { readFile } from 'node:fs/promises';
import { TesseraError, addModel } from '../../engine/index.js';
import { PRESETS, listModels, modelFileBytes } from '../../models/index.js';
import type { Command } from './command.js';
import { UsageError, modelsDir, parseFlags } from './flags.js';

/** Where models come from: shown by the --help of every command that loads one. */
export const MODELS_DETAILS = `Models are installed under $TESSERA_HOME/models (default ~/.tessera/models; --models-dir DIR).
Presets: ${Object.keys(PRESETS).join(', ')}.`;

export const modelsCommand: Command = {
  name: 'models',
  usage: `  models list [--json]               list installed models
  models add FILE.onnx (--preset NAME [--id ID] [--version V] | --manifest FILE.json)
                                     validate an ONNX tile encoder and install it`,
  details: MODELS_DETAILS,
  async run(args) {
    const [action, ...rest] = args;
    if (action === 'list') return list(rest);
    if (action === 'add') return add(rest);
    throw new UsageError('expected "models list" or "models add FILE.onnx …"');
  },
};

async function list(args: string[]): Promise<void> {
  const { values } = parseFlags(args, { json: { type: 'boolean' }, 'models-dir': { type: 'string' } });
  const installed = listModels(modelsDir(values['models-dir']));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(installed.map((m) => ({ ...m.manifest, bundled: m.bundled, bytes: modelFileBytes(m) })), null, 2)}\n`);
    return;
  }
  const rows = installed.map((m) => [m.manifest.id, m.manifest.version, String(m.manifest.dimension), `${m.manifest.inputSize}px`, m.manifest.license, m.bundled ? 'bundled' : 'installed', `${(modelFileBytes(m) / 2 ** 20).toFixed(1)} MiB`]);
  const header = ['id', 'version', 'dim', 'input', 'license', 'where', 'size'];
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
  for (const row of [header, ...rows]) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ')}\n`);
}

async function add(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    preset: { type: 'string' },
    manifest: { type: 'string' },
    id: { type: 'string' },
    version: { type: 'string' },
    'models-dir': { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('expected one ONNX file');
  if ((values.preset === undefined) === (values.manifest === undefined)) throw new UsageError('give exactly one of --preset NAME or --manifest FILE.json');
  let manifest: unknown;
  if (values.manifest !== undefined) {
    try {
      manifest = JSON.parse(await readFile(values.manifest, 'utf8'));
    } catch (error) {
      throw new TesseraError('MODEL_INVALID', `${values.manifest}: cannot read the manifest: ${(error as Error).message}`, { cause: error });
    }
  }
  const installed = await addModel(
    {
      onnxFile: positionals[0] as string,
      ...(values.preset === undefined ? {} : { preset: values.preset }),
      ...(manifest === undefined ? {} : { manifest }),
      ...(values.id === undefined ? {} : { id: values.id }),
      ...(values.version === undefined ? {} : { version: values.version }),
    },
    modelsDir(values['models-dir']),
  );
  process.stdout.write(`installed ${installed.manifest.id} ${installed.manifest.version} (${installed.manifest.dimension}-d) at ${installed.onnxPath}\n`);
}
