/**
 * Another commit's code beside this checkout, for benchmarks that compare before and after in
 * one run: the commit's tree exported (git archive) under .cache/bench, with this checkout's
 * node_modules and native build linked in. Returns the path of its `tessera` entry point.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../test/shared-data.js';

export function tesseraAtCommit(ref: string): string {
  const tree = join(PROJECT_ROOT, '.cache', 'bench', `tessera-${ref.slice(0, 12)}`);
  if (!existsSync(join(tree, 'package.json'))) {
    mkdirSync(tree, { recursive: true });
    execFileSync('sh', ['-c', `git -C "$0" archive "$1" | tar -x -C "$2"`, PROJECT_ROOT, ref, tree]);
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(tree, 'node_modules'));
    const native = join(PROJECT_ROOT, 'engine', 'slide', 'codecs', 'native', 'build');
    if (existsSync(native)) symlinkSync(native, join(tree, 'engine', 'slide', 'codecs', 'native', 'build'));
  }
  return join(tree, 'indexer', 'bin', 'tessera.js');
}
