/** `tessera tiles SLIDE …`: one JSON line per tissue tile of the grid at a physical resolution. */
import { DEFAULT_TILE_SPEC, tileGrid } from '../../engine/index.js';
import type { Command } from './command.js';
import { numberFlag, parseFlags, singleSlide } from './flags.js';
import { THREADS_DETAILS } from './region.js';
import { configureThreads, withSlide } from './slides.js';

export const tilesCommand: Command = {
  name: 'tiles',
  usage: `  tiles SLIDE [--mpp 0.5] [--size 224] [--min-tissue 0.5] [--slide-mpp M]
                                     print one JSON line per tissue tile (level-0 x, y, width, height)`,
  details: THREADS_DETAILS,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
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
  },
};
