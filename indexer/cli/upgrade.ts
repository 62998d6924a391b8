/** `tessera upgrade --index INDEX`: converts an index written by an older Tessera in place. */
import { shardDir, upgradeIndex } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, parseFlags } from './flags.js';

export const upgradeCommand: Command = {
  name: 'upgrade',
  usage: `  upgrade --index INDEX              convert an index written by an older Tessera (format 1) in place`,
  async run(args) {
    const { values } = parseFlags(args, { index: { type: 'string' } });
    if (!values.index) throw new UsageError('--index INDEX is required');
    const report = await upgradeIndex(values.index, shardDir);
    for (const shard of report.shards) {
      process.stdout.write(shard.alreadyCurrent ? `shard ${shard.shard}: already current\n` : `shard ${shard.shard}: ${shard.tiles} tiles, ${shard.tombstones} tombstones, graph kept as its first segment (${shard.segmentBytes} bytes)\n`);
    }
    process.stdout.write(`ok: ${values.index} is in the current format (was format ${report.from})\n`);
  },
};
