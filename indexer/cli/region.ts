/** `tessera region SLIDE …`: writes a region of a slide as PNG, JPEG or TIFF. */
import { writeFile } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp from 'sharp';
import { TesseraError } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, numberFlag, parseFlags, singleSlide } from './flags.js';
import { configureThreads, withSlide } from './slides.js';

export const THREADS_DETAILS = `Options:
  --threads N                        decode JPEG 2000 / JPEG-LS tiles on N worker threads (default 1)`;

export const regionCommand: Command = {
  name: 'region',
  usage: `  region SLIDE --x X --y Y --width W --height H [--level L] --out FILE.png
                                     write a region (x, y in level-0 pixels; W×H at level L)`,
  details: THREADS_DETAILS,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
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
  },
};
