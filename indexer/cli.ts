/**
 * The `tessera` command line. Each command parses its flags into typed options once, calls the
 * engine, and turns a TesseraError into one line on stderr and a non-zero exit code.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, homedir } from 'node:os';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import sharp from 'sharp';
import { parse as parseCsv } from 'csv-parse/sync';
import { pino } from 'pino';
import { DEFAULT_TILE_SPEC, Embedder, augmentedRef, calibrationWarning, configureDicomWeb, isDicomWebSeriesUrl, newCaseMosaic, IndexStore, TesseraError, addModel, crashAtStep, isWriteStep, shardDir, upgradeIndex, configureDecoding, hardNegatives, isTesseraError, openSlide, parseDevice, parseFilter, readGridTile, readIndexInfo, resolveModel, searchSlides, shardOf, tileGrid, type RgbImage, type Slide, type TileHit } from '../engine/index.js';
import { discoverDicomWeb } from './discover.js';
import { dryRun, runIndex } from './pipeline.js';
import { EVALUATE_USAGE, evaluateCommand, type CommandKit } from './evaluate-command.js';
import { LOADTEST_USAGE, loadtestCommand } from './loadtest-command.js';
import { PRESETS, listModels, modelFileBytes } from '../models/index.js';

const USAGE = `Usage: tessera <command> [options]

Commands:
  info SLIDE                         print the slide's format, size, levels and calibration as JSON
  region SLIDE --x X --y Y --width W --height H [--level L] --out FILE.png
                                     write a region (x, y in level-0 pixels; W×H at level L)
  tiles SLIDE [--mpp 0.5] [--size 224] [--min-tissue 0.5] [--slide-mpp M]
                                     print one JSON line per tissue tile (level-0 x, y, width, height)

  index --slides DIR|LIST [--metadata slides.csv|METAFLEX_DIR] --out INDEX [--model ID] [--shards N]
        [--partition i/n] [--device auto|cpu|cuda[:N]] [--mpp 0.5] [--size 224] [--min-tissue 0.5]
        [--read-threads N] [--dry-run]
  index --dicomweb URL [--study UID]… [--series UID]… --out INDEX …
                                     index the slide-microscopy series of a DICOMweb server
  index --tiles DIR [--labels labels.csv] --out INDEX …
                                     embed every tissue tile (or tile image) into sharded HNSW indexes
  search --index INDEX (--image FILE | --images LIST | --slide ID --x X --y Y --width W --height H)
         [-k 10] [--ef N] [--filter JSON] [--include-self] [--exclude-own-patient]
                                     similar regions as JSON (NDJSON for --images)
  search --index INDEX --slide ID --mode slide [-k 10] [--filter JSON]
                                     slides like this one, with their matching regions
  search --index INDEX --mode slide (--slide-file PATH | --dicomweb-series URL) [--slide-mpp M] …
                                     slides like a new case (not indexed): its mosaic is computed now
  hard-negatives --index INDEX --queries FILE.csv [-k 10] [--label-field label] [--filter JSON]
                                     for each labelled query image (CSV: file,label), the nearest
                                     tiles with another label, as NDJSON in input order
${EVALUATE_USAGE}
${LOADTEST_USAGE}
  verify --index INDEX               check every shard's invariants (exit 1 on a problem)
  upgrade --index INDEX              convert an index written by an older Tessera (format 1) in place
  delete --index INDEX --slide ID    remove a slide and its tiles
  embed (IMAGE|FOLDER)... [--list FILE] [--model ID] [--device auto|cpu|cuda[:N]] [--batch 32]
                                     print one JSON line per image with its embedding, as they
                                     are embedded (any number of images)
  models list [--json]               list installed models
  models add FILE.onnx (--preset NAME [--id ID] [--version V] | --manifest FILE.json)
                                     validate an ONNX tile encoder and install it

Models are installed under $TESSERA_HOME/models (default ~/.tessera/models; --models-dir DIR).
Presets: ${Object.keys(PRESETS).join(', ')}.

A SLIDE is a file, a folder holding one DICOM series, or a DICOMweb series URL
(http(s)://HOST/ROOT/studies/UID/series/UID). DICOMweb requests carry the Authorization header
from $TESSERA_DICOMWEB_AUTHORIZATION, or from the file named by $TESSERA_DICOMWEB_AUTHORIZATION_FILE.

Options for region and tiles:
  --threads N                        decode JPEG 2000 / JPEG-LS tiles on N worker threads (default 1)

Exit codes: 0 success, 1 the slide or request was refused (message on stderr), 2 bad usage.`;

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

class UsageError extends Error {}
/** Thrown by `parse` in check-only mode once a command's flags have parsed: nothing runs. */
class FlagsParsed extends Error {}
let checkOnly = false;

/**
 * Checks that `argv` (without the leading `tessera`) names a command and flags it accepts,
 * without running it: for deployment files and scripts that build command lines.
 * @returns null when valid, else the reason
 */
export async function checkInvocation(argv: string[]): Promise<string | null> {
  const [name, ...args] = argv;
  const command = name === undefined ? undefined : COMMANDS[name];
  if (!command) return `unknown command '${name ?? ''}'`;
  checkOnly = true;
  try {
    await command(args);
    return 'the command ran without parsing flags';
  } catch (error) {
    if (error instanceof FlagsParsed) return null;
    return (error as Error).message;
  } finally {
    checkOnly = false;
  }
}

type Command = (args: string[]) => Promise<void>;

const COMMANDS: Record<string, Command> = { info, region, tiles, embed, models, index, search, verify, upgrade, delete: deleteSlide, 'hard-negatives': hardNegativesCommand, evaluate: (args) => evaluateCommand(args, commandKit), loadtest: (args) => loadtestCommand(args, commandKit) };

/** Lent to commands kept in their own files. */
const commandKit: CommandKit = {
  usage: (message) => {
    throw new UsageError(message);
  },
  parsed: () => {
    if (checkOnly) throw new FlagsParsed();
  },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`tessera: unknown command '${name}'\n\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  installCrashStep(process.env.TESSERA_CRASH_AT);
  try {
    configureDicomWebFromEnvironment();
    await command(args);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`tessera ${name}: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (isTesseraError(error)) {
      process.stderr.write(`tessera ${name}: ${error.message} [${error.code}]\n`);
      return EXIT_FAILED;
    }
    process.stderr.write(`tessera ${name}: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT_FAILED;
  }
}

/**
 * Fault-injection tests set TESSERA_CRASH_AT=step[@skip] to make a writer die with SIGKILL at a
 * named step of the write protocols (engine/index/write-steps.ts). Read once, here.
 */
function installCrashStep(setting: string | undefined): void {
  if (!setting) return;
  const [step = '', skip = '0'] = setting.split('@');
  if (isWriteStep(step)) crashAtStep(step, Number(skip) || 0);
}

/** The DICOMweb Authorization header: from the environment or a file (never a flag: flags show in `ps`). */
function configureDicomWebFromEnvironment(): void {
  const file = process.env.TESSERA_DICOMWEB_AUTHORIZATION_FILE;
  let authorization = process.env.TESSERA_DICOMWEB_AUTHORIZATION;
  if (file) {
    try {
      authorization = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new TesseraError('INVALID_ARGUMENT', `cannot read TESSERA_DICOMWEB_AUTHORIZATION_FILE: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`, { cause: error });
    }
  }
  if (authorization) configureDicomWeb({ authorization });
}

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (checkOnly) throw new FlagsParsed();
  return parsed;
}

function singleSlide(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`expected one slide path, got ${positionals.length}`);
  return positionals[0] as string;
}

function numberFlag(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${flag} is required`);
    return fallback;
  }
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new UsageError(`--${flag} must be a number, got '${value}'`);
  return parsed;
}

function configureThreads(value: string | undefined): void {
  const threads = numberFlag(value, 'threads', 1);
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new UsageError(`--threads must be an integer from 1 to 64, got '${value}'`);
  configureDecoding({ decodeThreads: threads });
}

async function withSlide<T>(path: string, work: (slide: Slide) => Promise<T>): Promise<T> {
  const slide = await openSlide(path);
  try {
    return await work(slide);
  } finally {
    slide.close();
  }
}

async function info(args: string[]): Promise<void> {
  const { positionals } = parse(args, {});
  const path = singleSlide(positionals);
  await withSlide(path, async (slide) => {
    const warning = calibrationWarning(slide, path.split('/').pop() ?? path);
    if (warning) process.stderr.write(`warning: ${warning}\n`);
    const { format, vendor, width, height, mpp, objectivePower, levels, associatedImages, properties } = slide;
    process.stdout.write(`${JSON.stringify({ format, vendor, width, height, mpp, objectivePower, levels, associatedImages, properties }, null, 2)}\n`);
  });
}

async function region(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    x: { type: 'string' },
    y: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
    level: { type: 'string' },
    out: { type: 'string' },
    threads: { type: 'string' },
  });
  configureThreads(values.threads);
  const path = singleSlide(positionals);
  const out = values.out;
  if (!out) throw new UsageError('--out FILE.png is required');
  const format = ({ '.png': 'png', '.jpg': 'jpeg', '.jpeg': 'jpeg', '.tif': 'tiff', '.tiff': 'tiff' } as const)[extname(out).toLowerCase()];
  if (!format) throw new UsageError(`--out must end in .png, .jpg or .tiff, got '${out}'`);
  const request = {
    level: numberFlag(values.level, 'level', 0),
    x: numberFlag(values.x, 'x'),
    y: numberFlag(values.y, 'y'),
    width: numberFlag(values.width, 'width'),
    height: numberFlag(values.height, 'height'),
  };
  await withSlide(path, async (slide) => {
    const image = await slide.readRegion(request.level, request.x, request.y, request.width, request.height);
    const encoded = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } }).toFormat(format).toBuffer();
    try {
      await writeFile(out, encoded);
    } catch (error) {
      throw new TesseraError('INVALID_ARGUMENT', `cannot write ${out}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
  });
}

async function tiles(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    mpp: { type: 'string' },
    size: { type: 'string' },
    'min-tissue': { type: 'string' },
    'slide-mpp': { type: 'string' },
    threads: { type: 'string' },
  });
  configureThreads(values.threads);
  const path = singleSlide(positionals);
  const slideMppValue = values['slide-mpp'] === undefined ? undefined : numberFlag(values['slide-mpp'], 'slide-mpp');
  const options = {
    mpp: numberFlag(values.mpp, 'mpp', DEFAULT_TILE_SPEC.mpp),
    sizePx: numberFlag(values.size, 'size', DEFAULT_TILE_SPEC.sizePx),
    minTissue: numberFlag(values['min-tissue'], 'min-tissue', 0.5),
    ...(slideMppValue === undefined ? {} : { slideMpp: [slideMppValue, slideMppValue] as [number, number] }),
  };
  await withSlide(path, async (slide) => {
    const grid = await tileGrid(slide, path.split('/').pop() ?? path, options);
    const lines = grid.map((tile) => JSON.stringify({ x: tile.baseX, y: tile.baseY, width: tile.baseWidth, height: tile.baseHeight, tissue: Number(tile.tissue.toFixed(4)) }));
    if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  });
}

/** Where installed models live: --models-dir, else $TESSERA_HOME/models, else ~/.tessera/models. */
function modelsDir(flag: string | undefined): string {
  return flag ?? join(process.env.TESSERA_HOME ?? join(homedir(), '.tessera'), 'models');
}

async function embed(args: string[]): Promise<void> {
  const { values, positionals } = parse(args, {
    model: { type: 'string' },
    device: { type: 'string' },
    batch: { type: 'string' },
    list: { type: 'string' },
    'models-dir': { type: 'string' },
  });
  const paths = imagePaths(positionals, values.list);
  if (paths.length === 0) throw new UsageError('expected at least one image (IMAGE…, a folder of images or --list FILE)');
  const batchSize = numberFlag(values.batch, 'batch', 32);
  const model = resolveModel(values.model, modelsDir(values['models-dir']));
  // One batch is preprocessed on this thread; more go to worker threads, ahead of the model.
  const embedder = await Embedder.create(model, { device: parseDevice(values.device ?? 'auto'), batchSize, ...(paths.length <= batchSize ? { preprocessThreads: 0 } : {}) });
  if (embedder.provider === 'cuda') process.stderr.write('tessera embed: using CUDA\n');
  else if (embedder.fallbackReason && values.device === 'auto') process.stderr.write(`tessera embed: using CPU: ${embedder.fallbackReason}\n`);
  let failed = 0;
  try {
    // Batches are read and embedded ahead of the one being printed (as many as the embedder runs
    // at once, plus one), so lines stream out while at most that many batches sit in memory.
    const pending: Array<Promise<{ lines: string[]; failed: number }>> = [];
    let next = 0;
    const startBatch = (): void => {
      const chunk = paths.slice(next, next + batchSize);
      next += chunk.length;
      pending.push(embedChunk(chunk, embedder, model.manifest.id));
    };
    while (next < paths.length || pending.length > 0) {
      while (next < paths.length && pending.length <= embedder.parallelism) startBatch();
      const { lines, failed: unreadable } = await (pending.shift() as Promise<{ lines: string[]; failed: number }>);
      failed += unreadable;
      process.stdout.write(`${lines.join('\n')}\n`);
    }
  } finally {
    await embedder.close();
  }
  if (failed > 0) throw new TesseraError('SLIDE_CORRUPT', `${failed} of ${paths.length} images could not be read (their lines carry the error)`);
}

/** Reads and embeds one chunk of images: a JSON line each, an error line for an image that cannot be read. */
async function embedChunk(paths: string[], embedder: Embedder, modelId: string): Promise<{ lines: string[]; failed: number }> {
  const read = await Promise.all(
    paths.map(async (path) => {
      try {
        return await wholeImage(path);
      } catch (error) {
        if (!isTesseraError(error)) throw error;
        return error;
      }
    }),
  );
  const images = read.filter((image): image is RgbImage => !isTesseraError(image));
  const vectors = images.length > 0 ? await embedder.embed(images) : [];
  let at = 0;
  const lines = read.map((image, index) => {
    if (isTesseraError(image)) return JSON.stringify({ image: paths[index], error: image.code, message: image.message });
    const vector = vectors[at++] as Float32Array;
    return JSON.stringify({ image: paths[index], model: modelId, dimension: vector.length, embedding: Array.from(vector, (v) => Number(v.toFixed(6))) });
  });
  return { lines, failed: read.length - images.length };
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp']);

/**
 * The images `embed` is given: files as named, the image files under a folder (recursively, in
 * name order), and the lines of a list file (relative paths from the list's folder).
 */
function imagePaths(positionals: string[], list: string | undefined): string[] {
  const paths: string[] = [];
  const add = (path: string): void => {
    let isFolder = false;
    try {
      isFolder = statSync(path).isDirectory();
    } catch {
      // A missing file gets its own error line when it is read.
    }
    if (!isFolder) {
      paths.push(path);
      return;
    }
    for (const entry of readdirSync(path, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) add(child);
      else if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) paths.push(child);
    }
  };
  for (const positional of positionals) add(positional);
  if (list !== undefined) {
    let text: string;
    try {
      text = readFileSync(list, 'utf8');
    } catch (error) {
      throw new TesseraError('INVALID_ARGUMENT', `cannot read the list ${list}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
    }
    for (const line of text.split('\n').map((entry) => entry.trim()).filter((entry) => entry && !entry.startsWith('#'))) add(isAbsolute(line) ? line : resolve(dirname(list), line));
  }
  return paths;
}

async function models(args: string[]): Promise<void> {
  const [action, ...rest] = args;
  if (action === 'list') {
    const { values } = parse(rest, { json: { type: 'boolean' }, 'models-dir': { type: 'string' } });
    const installed = listModels(modelsDir(values['models-dir']));
    if (values.json) {
      process.stdout.write(`${JSON.stringify(installed.map((m) => ({ ...m.manifest, bundled: m.bundled, bytes: modelFileBytes(m) })), null, 2)}\n`);
      return;
    }
    const rows = installed.map((m) => [m.manifest.id, m.manifest.version, String(m.manifest.dimension), `${m.manifest.inputSize}px`, m.manifest.license, m.bundled ? 'bundled' : 'installed', `${(modelFileBytes(m) / 2 ** 20).toFixed(1)} MiB`]);
    const header = ['id', 'version', 'dim', 'input', 'license', 'where', 'size'];
    const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)));
    for (const row of [header, ...rows]) process.stdout.write(`${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ')}\n`);
    return;
  }
  if (action === 'add') {
    const { values, positionals } = parse(rest, {
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
    return;
  }
  throw new UsageError('expected "models list" or "models add FILE.onnx …"');
}

function logger(): pino.Logger {
  // Structured logs on stderr; stdout carries the command's output.
  return pino({ name: 'tessera', level: process.env.TESSERA_LOG_LEVEL ?? 'info' }, pino.destination(2));
}

function parsePartition(value: string | undefined): { index: number; count: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+)\/(\d+)$/.exec(value);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (!match || count < 1 || index >= count) throw new UsageError(`--partition must be i/n with 0 ≤ i < n, got '${value}'`);
  return { index, count };
}

async function index(args: string[]): Promise<void> {
  const { values } = parse(args, {
    slides: { type: 'string' },
    metadata: { type: 'string' },
    dicomweb: { type: 'string' },
    study: { type: 'string', multiple: true },
    series: { type: 'string', multiple: true },
    tiles: { type: 'string' },
    labels: { type: 'string' },
    out: { type: 'string' },
    model: { type: 'string' },
    shards: { type: 'string' },
    partition: { type: 'string' },
    device: { type: 'string' },
    mpp: { type: 'string' },
    size: { type: 'string' },
    'min-tissue': { type: 'string' },
    'models-dir': { type: 'string' },
    'read-threads': { type: 'string' },
    'dry-run': { type: 'boolean' },
  });
  if (!values.out) throw new UsageError('--out INDEX is required');
  if (!values.slides && !values.metadata && !values.tiles && !values.dicomweb) throw new UsageError('give --slides DIR|LIST, --metadata slides.csv, --dicomweb URL or --tiles DIR');
  if (values.dicomweb && (values.slides || values.metadata || values.tiles)) throw new UsageError('--dicomweb indexes a server\'s series; for metadata, give a --metadata table whose path column holds series URLs instead');
  if ((values.study || values.series) && !values.dicomweb) throw new UsageError('--study and --series select series of a --dicomweb server');
  const readThreads = numberFlag(values['read-threads'], 'read-threads', availableParallelism());
  if (!Number.isInteger(readThreads) || readThreads < 1 || readThreads > 256) throw new UsageError(`--read-threads must be an integer from 1 to 256, got '${values['read-threads']}'`);
  const items = values.dicomweb ? await discoverDicomWeb(values.dicomweb, values.study ?? [], values.series ?? []) : undefined;
  // Indexing decodes JPEG 2000 / JPEG-LS tiles on these threads while the model runs.
  configureDecoding({ decodeThreads: readThreads });
  const partition = parsePartition(values.partition);
  const options = {
    ...(values.slides ? { slides: values.slides } : {}),
    ...(values.metadata ? { metadata: values.metadata } : {}),
    ...(items ? { items } : {}),
    ...(values.tiles ? { tiles: values.tiles } : {}),
    ...(values.labels ? { labels: values.labels } : {}),
    out: values.out,
    ...(values.model ? { modelId: values.model } : {}),
    modelsDir: modelsDir(values['models-dir']),
    shards: numberFlag(values.shards, 'shards', 1),
    ...(partition ? { partition } : {}),
    device: parseDevice(values.device ?? 'auto'),
    tile: { mpp: numberFlag(values.mpp, 'mpp', DEFAULT_TILE_SPEC.mpp), sizePx: numberFlag(values.size, 'size', DEFAULT_TILE_SPEC.sizePx) },
    minTissue: numberFlag(values['min-tissue'], 'min-tissue', values.tiles ? 0 : 0.5),
    logger: logger(),
    interactive: process.stderr.isTTY === true,
    readThreads,
  };
  if (values['dry-run']) {
    const plan = await dryRun(options);
    const hours = plan.projectedSeconds / 3600;
    process.stdout.write(
      `dry run: ${plan.slides.toIndex} slides to index (${plan.tiles} tiles), ${plan.slides.skipped} already indexed, ${plan.slides.failed} failed` +
        `${plan.slides.otherPartitions ? `, ${plan.slides.otherPartitions} belong to other partitions` : ''}\n` +
        `projected: ${(plan.projectedBytes / 2 ** 30).toFixed(2)} GiB of index; ${hours >= 1 ? `${hours.toFixed(1)} h` : `${(plan.projectedSeconds / 60).toFixed(1)} min`} at ${plan.modelTilesPerSecond.toFixed(1)} tiles/s (model alone, ${plan.provider}, measured now; reading can only lower it)\n` +
        `planned in ${plan.seconds.toFixed(1)} s; nothing was embedded or written\n`,
    );
    for (const failure of plan.failures) process.stdout.write(`  failed: ${failure.slideId}: ${failure.reason} [${failure.code}]\n`);
    return;
  }
  const report = await runIndex(options);
  const { slides, tiles, seconds, tilesPerSecond, failures } = report;
  process.stdout.write(
    `indexed ${slides.indexed} slides (${tiles} tiles), skipped ${slides.skipped} unchanged, failed ${slides.failed}` +
      `${slides.otherPartitions ? `, ${slides.otherPartitions} belong to other partitions` : ''} in ${seconds.toFixed(1)} s (${tilesPerSecond.toFixed(1)} tiles/s)\n`,
  );
  for (const failure of failures) process.stdout.write(`  failed: ${failure.slideId}: ${failure.reason} [${failure.code}]\n`);
  if (slides.indexed === 0 && slides.skipped === 0 && slides.failed > 0) throw new TesseraError('SLIDE_CORRUPT', `nothing could be indexed (${slides.failed} slides failed)`);
}

/** -k: results per query, 1 to 1000 (default 10). */
function kFlag(value: string | undefined): number {
  const k = numberFlag(value, 'k', 10);
  if (!Number.isInteger(k) || k < 1 || k > 1000) throw new UsageError(`-k must be an integer from 1 to 1000, got ${value}`);
  return k;
}

/** --filter: a JSON object, checked as a filter; undefined when absent. */
function filterFlag(value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  let filter: Record<string, unknown>;
  try {
    filter = JSON.parse(value) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--filter is not valid JSON: ${(error as Error).message}`);
  }
  parseFilter(filter);
  return filter;
}

/** Opens an index read-only with the model it was built with, and an embedder for query images. */
async function openForQueries(indexDir: string, modelsDirFlag: string | undefined, device: string | undefined) {
  const info = readIndexInfo(indexDir);
  const model = resolveModel(info.model.id, modelsDir(modelsDirFlag));
  const store = IndexStore.open(indexDir, { readOnly: true, expectModel: augmentedRef(model.manifest) });
  try {
    const embedder = await Embedder.create(model, { device: parseDevice(device ?? 'auto'), preprocessThreads: 0, sessions: 1 });
    return { info, store, embedder };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** A hit as the CLI prints it: location in level-0 pixels, cosine score, slide and tile metadata. */
function hitsJson(hits: TileHit[]) {
  return hits.map((hit) => ({ slideId: hit.tile.slideId, x: hit.tile.x, y: hit.tile.y, width: hit.tile.width, height: hit.tile.height, mpp: hit.tile.mpp, score: Number(hit.score.toFixed(6)), metadata: { ...hit.slideMetadata, ...hit.tile.metadata } }));
}

async function search(args: string[]): Promise<void> {
  const { values } = parse(args, {
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
}

async function wholeImage(path: string): Promise<RgbImage> {
  const slide = await openSlide(path);
  try {
    if (slide.width * slide.height > 4096 * 4096) throw new TesseraError('REGION_TOO_LARGE', `${path.split('/').pop()}: a query image must be at most 4096×4096 px; query a region of a slide instead`);
    return await slide.readRegion(0, 0, 0, slide.width, slide.height);
  } finally {
    slide.close();
  }
}

async function verify(args: string[]): Promise<void> {
  const { values } = parse(args, { index: { type: 'string' } });
  if (!values.index) throw new UsageError('--index INDEX is required');
  const info = readIndexInfo(values.index);
  const store = IndexStore.open(values.index, { readOnly: true, graph: false });
  try {
    const problems = store.shards.flatMap((shard) => shard.verify());
    const missing = info.shards - store.shards.length;
    for (const shard of store.shards) {
      const { tail } = shard;
      process.stdout.write(`shard ${shard.index}: ${shard.slideCount} slides, ${shard.tileCount} tiles; ${shard.segments.length} segments, ${shard.tombstoneCount} tombstones, tail of ${tail.endLabel - tail.firstLabel} labels\n`);
      for (const ref of shard.segments) {
        const tuned = ref.tuned ? `default ef ${ref.tuned.ef}: recall@10 ${ref.tuned.recall10.toFixed(3)} measured at build (target ${ref.tuned.target})` : 'no measured ef (adopted from format 1): ef 64';
        process.stdout.write(`  segment ${ref.file}: ${ref.vectors} vectors, labels ${ref.firstLabel}–${ref.endLabel - 1}, ${tuned}\n`);
      }
      const orphans = shard.orphanFiles();
      if (shard.manifestLag() > 0) process.stdout.write(`note: shard ${shard.index}'s manifest.json is ${shard.manifestLag()} commit(s) behind its commit point (a writer stopped between the two); the next writer rewrites it\n`);
      if (orphans.length > 0) process.stdout.write(`note: shard ${shard.index} has ${orphans.length} file(s) no commit lists, left by an interrupted segment build; the next writer removes them\n`);
    }
    if (missing > 0) process.stdout.write(`${missing} of ${info.shards} shards are not on this machine (built by other partitions?)\n`);
    if (problems.length > 0) {
      for (const problem of problems) process.stdout.write(`problem: ${problem}\n`);
      throw new TesseraError('INDEX_CORRUPT', `${values.index}: ${problems.length} problem(s) found`);
    }
    process.stdout.write('ok: every invariant holds\n');
  } finally {
    await store.close();
  }
}

async function upgrade(args: string[]): Promise<void> {
  const { values } = parse(args, { index: { type: 'string' } });
  if (!values.index) throw new UsageError('--index INDEX is required');
  const report = await upgradeIndex(values.index, shardDir);
  for (const shard of report.shards) {
    process.stdout.write(shard.alreadyCurrent ? `shard ${shard.shard}: already current\n` : `shard ${shard.shard}: ${shard.tiles} tiles, ${shard.tombstones} tombstones, graph kept as its first segment (${shard.segmentBytes} bytes)\n`);
  }
  process.stdout.write(`ok: ${values.index} is in the current format (was format ${report.from})\n`);
}

async function deleteSlide(args: string[]): Promise<void> {
  const { values } = parse(args, { index: { type: 'string' }, slide: { type: 'string' } });
  if (!values.index || !values.slide) throw new UsageError('--index INDEX and --slide ID are required');
  const info = readIndexInfo(values.index);
  const store = IndexStore.open(values.index, { shards: [shardOf(values.slide, info.shards)] });
  try {
    const shard = store.shards[0];
    if (!shard?.deleteSlide(values.slide)) throw new TesseraError('SLIDE_NOT_FOUND', `slide "${values.slide}" is not in ${values.index}`);
    process.stdout.write(`deleted ${values.slide}\n`);
  } finally {
    await store.close();
  }
}

async function hardNegativesCommand(args: string[]): Promise<void> {
  const { values } = parse(args, {
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
}
