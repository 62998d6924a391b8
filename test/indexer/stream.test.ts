/**
 * The indexer's single stream of tiles: several slides in one batch, a kill while several slides
 * are in flight, tile images batched together, and a dry run that plans the same work.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { IndexStore } from '../../engine/index.js';
import { SHARED_MISSING, TILES, hasSharedData, slidePath } from '../shared-data.js';
import { TESSERA_BIN, runTessera } from '../run-cli.js';

const scratch = mkdtempSync(join(tmpdir(), 'tessera-stream-'));
const env = { TESSERA_HOME: join(scratch, 'home'), TESSERA_LOG_LEVEL: 'debug' };
const tessera = (...args: string[]) => runTessera(args, env);

interface LogLine {
  msg: string;
  tiles?: number;
  slidesInBatch?: number;
  slidesInFlight?: number;
}
const logLines = (stderr: string): LogLine[] => stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as LogLine);

/** Copies of one small slide (42 tissue tiles each: batches of 32 span slide boundaries). */
function copies(name: string, count: number): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) copyFileSync(slidePath('CMU-1-Small-Region.svs'), join(dir, `copy-${String(i).padStart(2, '0')}.svs`));
  return dir;
}

describe.skipIf(!hasSharedData)(`one stream of tiles ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  it('resumes after kill -9 with several slides in flight, every slide indexed exactly once', async () => {
    const folder = copies('many', 10);
    const out = join(scratch, 'killed');
    const child = spawn(process.execPath, [TESSERA_BIN, 'index', '--slides', folder, '--out', out, '--shards', '3', '--device', 'cpu'], { env: { ...process.env, ...env } });
    let inFlightAtKill = 0;
    let doneAtKill = 0;
    await new Promise<void>((resolve) => {
      let buffered = '';
      let done = 0;
      child.stderr.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of logLines(lines.join('\n'))) {
          if (line.msg === 'slide done') done++;
          // Kill once a slide has committed and more than one slide is between planning and commit.
          if (line.msg === 'batch embedded' && done >= 1 && (line.slidesInFlight ?? 0) >= 2 && child.exitCode === null && inFlightAtKill === 0) {
            inFlightAtKill = line.slidesInFlight ?? 0;
            doneAtKill = done;
            child.kill('SIGKILL');
          }
        }
      });
      child.on('exit', () => resolve());
    });
    expect(inFlightAtKill).toBeGreaterThanOrEqual(2);
    const resumed = await tessera('index', '--slides', folder, '--out', out, '--shards', '3', '--device', 'cpu');
    expect(resumed.code, resumed.stderr).toBe(0);
    const [, indexed, skipped] = /indexed (\d+) slides .* skipped (\d+) unchanged, failed 0/.exec(resumed.stdout) ?? [];
    expect(Number(indexed) + Number(skipped)).toBe(10);
    // Slides in flight at the kill had not committed: the rerun indexes them again.
    expect(Number(indexed)).toBeGreaterThanOrEqual(inFlightAtKill);
    expect(Number(skipped)).toBeGreaterThanOrEqual(doneAtKill);
    expect((await tessera('verify', '--index', out)).code).toBe(0);
    const store = IndexStore.open(out, { readOnly: true });
    const perSlide = store.shards.flatMap((shard) => shard.slideIds().map((id) => shard.slide(id)!.labels.length));
    expect(perSlide).toHaveLength(10);
    expect(new Set(perSlide)).toEqual(new Set([42]));
    expect(store.shards.reduce((sum, shard) => sum + shard.tileCount, 0)).toBe(10 * 42);
    await store.close();
  }, 120_000);

  it('fills batches across slide boundaries and batches tile images together', async () => {
    const folder = copies('three', 3);
    const slides = await tessera('index', '--slides', folder, '--out', join(scratch, 'three-index'), '--device', 'cpu');
    expect(slides.code, slides.stderr).toBe(0);
    const batches = logLines(slides.stderr).filter((line) => line.msg === 'batch embedded');
    // 126 tiles in batches of 32: three full batches and the rest, some spanning two slides.
    expect(batches.map((line) => line.tiles)).toEqual([32, 32, 32, 30]);
    expect(batches.some((line) => (line.slidesInBatch ?? 0) >= 2)).toBe(true);
    const tiles = await tessera('index', '--tiles', join(TILES, 'kather2016-samples-24'), '--out', join(scratch, 'tile-index'), '--device', 'cpu');
    expect(tiles.code, tiles.stderr).toBe(0);
    expect(tiles.stdout).toMatch(/indexed 24 slides \(24 tiles\)/);
    expect(logLines(tiles.stderr).filter((line) => line.msg === 'batch embedded').map((line) => line.tiles)).toEqual([24]);
    expect(slides.stderr).not.toContain('copy-'); // logs carry no file names
  }, 120_000);

  it('plans a run without embedding or writing, and counts what a real run indexes', async () => {
    const folder = copies('planned', 2);
    copyFileSync(slidePath('broken/broken.svs'), join(folder, 'broken.svs'));
    const out = join(scratch, 'planned-index');
    const plan = await tessera('index', '--slides', folder, '--out', out, '--device', 'cpu', '--dry-run');
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/dry run: 2 slides to index \(84 tiles\), 0 already indexed, 1 failed/);
    expect(plan.stdout).toMatch(/projected: [\d.]+ GiB of index; [\d.]+ (min|h) at [\d.]+ tiles\/s \(model alone, cpu/);
    expect(plan.stdout).toContain('failed: broken.svs');
    expect(existsSync(out)).toBe(false);
    const run = await tessera('index', '--slides', folder, '--out', out, '--device', 'cpu', '--read-threads', '1');
    expect(run.stdout).toMatch(/indexed 2 slides \(84 tiles\)/);
    const again = await tessera('index', '--slides', folder, '--out', out, '--device', 'cpu', '--dry-run');
    expect(again.stdout).toMatch(/dry run: 0 slides to index \(0 tiles\), 2 already indexed, 1 failed/);
    expect(readdirSync(join(out, 'reports'))).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')).shards).toBe(1);
  }, 120_000);
});
