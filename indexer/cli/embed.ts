/** `tessera embed IMAGE…`: one JSON line per image with its embedding, streamed as batches finish. */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { Embedder, TesseraError, isTesseraError, parseDevice, resolveModel, type RgbImage } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, modelsDir, numberFlag, parseFlags } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { wholeImage } from './slides.js';

export const embedCommand: Command = {
  name: 'embed',
  usage: `  embed (IMAGE|FOLDER)... [--list FILE] [--model ID] [--device auto|cpu|cuda[:N]] [--batch 32]
                                     print one JSON line per image with its embedding, as they
                                     are embedded (any number of images)`,
  details: MODELS_DETAILS,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
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
  },
};

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
