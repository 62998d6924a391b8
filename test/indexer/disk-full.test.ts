/**
 * A full disk in the middle of a run: indexing into a small tmpfs stops with a clear message,
 * leaves the index at its last commit (verify passes), and a rerun with room resumes it. hnswlib
 * writes its graph without checking for errors; this test caught a truncated graph renamed over
 * the good one. Needs permission to mount a tmpfs (root); skips with the reason otherwise.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runTessera } from '../run-cli.js';
import { PROJECT_ROOT } from '../shared-data.js';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-full-'));
const small = join(scratch, 'small-disk');
const mounted = (() => {
  try {
    execFileSync('mkdir', ['-p', small]);
    // About the size of two commits of the first sample slide: the disk fills during the run.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=560k', 'tmpfs', small], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!mounted) console.warn('skipping the disk-full test: cannot mount a tmpfs here (needs root)');

describe.skipIf(!mounted)('a full disk during indexing', () => {
  afterAll(() => {
    execFileSync('umount', [small]);
  });

  it('stops with a clear message, keeps the last commit, and resumes when there is room', async () => {
    const env = { TESSERA_HOME: join(scratch, 'home') };
    const samples = join(PROJECT_ROOT, 'indexer', 'samples');
    const full = await runTessera(['index', '--slides', samples, '--out', join(small, 'index'), '--device', 'cpu'], env);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(/cannot commit to .*: the disk is full; the shard keeps its last committed state \[INDEX_WRITE_FAILED\]/);
    const afterFull = await runTessera(['verify', '--index', join(small, 'index')], env);
    expect(afterFull.code, afterFull.stderr).toBe(0);
    const committed = Number(/(\d+) slides/.exec(afterFull.stdout)?.[1]);
    expect(committed).toBeLessThan(3);

    const roomy = join(scratch, 'index');
    cpSync(join(small, 'index'), roomy, { recursive: true });
    const resumed = await runTessera(['index', '--slides', samples, '--out', roomy, '--device', 'cpu'], env);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`indexed ${3 - committed} slides .*skipped ${committed} unchanged, failed 0`));
    const verified = await runTessera(['verify', '--index', roomy], env);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/3 slides, 70 tiles/);
  }, 120_000);
});
