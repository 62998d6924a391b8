/** `tessera verify --index INDEX`: every shard's invariants checked and reported (exit 1 on a problem). */
import { IndexStore, TesseraError, readIndexInfo } from '../../engine/index.js';
import type { Command } from './command.js';
import { UsageError, parseFlags } from './flags.js';

export const verifyCommand: Command = {
  name: 'verify',
  usage: `  verify --index INDEX               check every shard's invariants (exit 1 on a problem)`,
  async run(args) {
    const { values } = parseFlags(args, { index: { type: 'string' } });
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
  },
};
