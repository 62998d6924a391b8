/**
 * The `tessera` command line. Each command parses its flags into typed options once, calls the
 * engine, and turns a TesseraError into one line on stderr and a non-zero exit code.
 */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import sharp from 'sharp';
import { DEFAULT_TILE_SPEC, TesseraError, configureDecoding, isTesseraError, openSlide, tileGrid, type Slide } from '../engine/index.js';

const USAGE = `Usage: tessera <command> [options]

Commands:
  info SLIDE                         print the slide's format, size, levels and calibration as JSON
  region SLIDE --x X --y Y --width W --height H [--level L] --out FILE.png
                                     write a region (x, y in level-0 pixels; W×H at level L)
  tiles SLIDE [--mpp 0.5] [--size 224] [--min-tissue 0.5] [--slide-mpp M]
                                     print one JSON line per tissue tile (level-0 x, y, width, height)

Options for region and tiles:
  --threads N                        decode JPEG 2000 / JPEG-LS tiles on N worker threads (default 1)

Exit codes: 0 success, 1 the slide or request was refused (message on stderr), 2 bad usage.`;

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

class UsageError extends Error {}

type Command = (args: string[]) => Promise<void>;

const COMMANDS: Record<string, Command> = { info, region, tiles };

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
  try {
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

function parse<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
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
  await withSlide(singleSlide(positionals), async (slide) => {
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
