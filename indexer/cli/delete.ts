/** `tessera delete --index INDEX --slide ID`: removes a slide and its tiles from its one shard. */
import { IndexStore, TesseraError, readIndexInfo, shardOf } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, parseFlags } from './flags.js';

export const deleteCommand: Command = {
  name: 'delete',
  usage: `  delete --index INDEX --slide ID    remove a slide and its tiles`,
  async run(args) {
    const { values } = parseFlags(args, { index: { type: 'string' }, slide: { type: 'string' } });
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
  },
};
