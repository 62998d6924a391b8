/** `tessera info SLIDE`: the slide's format, size, levels and calibration as JSON. */
import { calibrationWarning } from '../../engine/index.js';
import type { Command } from './command.js';
import { parseFlags, singleSlide } from './flags.js';
import { withSlide } from './slides.js';

export const infoCommand: Command = {
  name: 'info',
  usage: `  info SLIDE                         print the slide's format, size, levels and calibration as JSON`,
  async run(args) {
    const { positionals } = parseFlags(args, {});
    const path = singleSlide(positionals);
    await withSlide(path, async (slide) => {
      const warning = calibrationWarning(slide, path.split('/').pop() ?? path);
      if (warning) process.stderr.write(`warning: ${warning}\n`);
      const { format, vendor, width, height, mpp, objectivePower, levels, associatedImages, properties } = slide;
      process.stdout.write(`${JSON.stringify({ format, vendor, width, height, mpp, objectivePower, levels, associatedImages, properties }, null, 2)}\n`);
    });
  },
};
