/**
 * The shipped SLURM array script on a real (one-host) SLURM cluster: munged, slurmctld and slurmd
 * started as root in a temporary folder, the array submitted with sbatch over the shared slides,
 * the index checked against a single-process build, and a resubmission that indexes only a new
 * slide. Skips with the reason when the SLURM or munge binaries are absent or not run as root.
 */
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexStore } from '../../engine/index.js';
import { PROJECT_ROOT, SHARED_MISSING, hasSharedData, slidePath } from '../shared-data.js';
import { runTessera } from '../run-cli.js';
import { freePort } from '../free-port.js';

const run = promisify(execFile);
const BINARIES = ['/usr/bin/sbatch', '/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/sbin/munged', '/usr/sbin/mungekey', '/usr/bin/sinfo'];
const missing = BINARIES.filter((binary) => !existsSync(binary));
const isRoot = process.getuid?.() === 0;
const skipReason = !hasSharedData
  ? SHARED_MISSING
  : missing.length > 0
    ? `SLURM or munge not installed (missing ${missing.join(', ')}: apt-get install slurm-wlm munge)`
    : !isRoot
      ? 'the one-host SLURM cluster is started as root'
      : '';

/** One host's SLURM cluster (2 CPUs, one partition) with its own munged, all under `dir`. */
class OneHostCluster {
  readonly env: NodeJS.ProcessEnv;
  private readonly pidFiles: string[];

  private constructor(readonly dir: string) {
    this.env = { ...process.env, SLURM_CONF: join(dir, 'slurm.conf') };
    this.pidFiles = ['slurmd.pid', 'slurmctld.pid', 'munge/munged.pid'].map((file) => join(dir, file));
  }

  static async start(dir: string): Promise<OneHostCluster> {
    const cluster = new OneHostCluster(dir);
    for (const sub of ['state', 'spool', 'log', 'munge']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o700 });
    const munge = join(dir, 'munge');
    execFileSync('/usr/sbin/mungekey', ['--create', '--keyfile', join(munge, 'munge.key')]);
    // --force: munged refuses a socket folder other users cannot reach; this one is private on purpose.
    execFileSync('/usr/sbin/munged', ['--force', `--key-file=${join(munge, 'munge.key')}`, `--socket=${join(munge, 'munge.sock')}`, `--pid-file=${join(munge, 'munged.pid')}`, `--log-file=${join(dir, 'log', 'munged.log')}`, `--seed-file=${join(munge, 'seed')}`]);
    const host = hostname().split('.')[0] ?? 'localhost';
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    writeFileSync(
      join(dir, 'slurm.conf'),
      [
        'ClusterName=tessera-test',
        `SlurmctldHost=${host}(127.0.0.1)`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        'SlurmUser=root',
        'SlurmdUser=root',
        'AuthType=auth/munge',
        'CredType=cred/munge',
        `AuthInfo=socket=${join(munge, 'munge.sock')}`,
        `StateSaveLocation=${join(dir, 'state')}`,
        `SlurmdSpoolDir=${join(dir, 'spool')}`,
        `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
        `SlurmdPidFile=${join(dir, 'slurmd.pid')}`,
        `SlurmctldLogFile=${join(dir, 'log', 'slurmctld.log')}`,
        `SlurmdLogFile=${join(dir, 'log', 'slurmd.log')}`,
        'ProctrackType=proctrack/linuxproc',
        'TaskPlugin=task/none',
        'SelectType=select/cons_tres',
        'SelectTypeParameters=CR_CPU',
        'JobAcctGatherType=jobacct_gather/none',
        'AccountingStorageType=accounting_storage/none',
        'MpiDefault=none',
        'ReturnToService=2',
        'MinJobAge=600',
        'KillWait=5',
        `NodeName=${host} NodeAddr=127.0.0.1 CPUs=2 RealMemory=8192 State=UNKNOWN`,
        `PartitionName=tessera Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
      ].join('\n') + '\n',
    );
    execFileSync('/usr/sbin/slurmctld', ['-f', join(dir, 'slurm.conf')], { env: cluster.env });
    execFileSync('/usr/sbin/slurmd', ['-f', join(dir, 'slurm.conf')], { env: cluster.env });
    for (let attempt = 0; attempt < 60; attempt++) {
      const state = await run('/usr/bin/sinfo', ['-h', '-o', '%T'], { env: cluster.env }).then(({ stdout }) => stdout.trim(), () => '');
      if (state === 'idle') return cluster;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    await cluster.stop();
    throw new Error(`the SLURM node never became idle; see ${join(dir, 'log')}`);
  }

  /**
   * Submits a batch script and waits for it (every task of an array) by polling squeue, which
   * answers within half a second (sbatch --wait backs off to 10 s between its own polls).
   * Resolves to the job id once every task has left the queue; rejects unless all completed.
   */
  async submit(script: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
    const { stdout } = await run('/usr/bin/sbatch', ['--parsable', ...args, script], { cwd: PROJECT_ROOT, env: { ...this.env, ...env } });
    const job = stdout.trim().split(';')[0] ?? '';
    for (let waited = 0; ; waited += 500) {
      const { stdout: queued } = await run('/usr/bin/squeue', ['-h', '-j', job, '-o', '%i'], { env: this.env });
      if (queued.trim() === '') break;
      if (waited > 240_000) throw new Error(`job ${job} still queued after 4 minutes`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const { stdout: shown } = await run('/usr/bin/scontrol', ['show', 'job', job, '-o'], { env: this.env });
    const states = [...shown.matchAll(/JobState=(\S+)/g)].map((match) => match[1]);
    if (states.length === 0 || states.some((state) => state !== 'COMPLETED')) throw new Error(`job ${job} ended ${states.join(', ')}; logs in ${join(this.dir, 'log')}`);
    return job;
  }

  /** Stops the daemons by the PIDs they wrote, newest first. */
  async stop(): Promise<void> {
    for (const file of this.pidFiles) {
      const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : 0;
      if (!(pid > 0)) continue;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        continue;
      }
      for (let wait = 0; wait < 50; wait++) {
        try {
          process.kill(pid, 0);
        } catch {
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
}

describe.skipIf(skipReason !== '')(`the SLURM array script on a one-host cluster ${skipReason}`, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'tessera-slurm-'));
  let cluster: OneHostCluster | undefined;
  afterAll(async () => {
    await cluster?.stop();
  });

  it('builds the index with 4 array tasks over 4 shards, like one process; a resubmission indexes only a new slide', async () => {
    cluster = await OneHostCluster.start(join(scratch, 'cluster'));
    const slides = join(scratch, 'slides');
    mkdirSync(slides);
    copyFileSync(slidePath('CMU-1-Small-Region.svs'), join(slides, 'cmu.svs'));
    copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(slides, 'crop.ome.tif'));
    copyFileSync(slidePath('ndpi/test3-DAPI-2-387.ndpi'), join(slides, 'dapi.ndpi'));
    copyFileSync(slidePath('derived/cmu1-small-pyramid-jpeg.tif'), join(slides, 'pyramid.tif'));
    const index = join(scratch, 'index');
    const logs = join(scratch, 'logs');
    mkdirSync(logs);
    const env = { SLIDES: slides, INDEX: index, SHARDS: '4', TESSERA_HOME: join(scratch, 'home') };
    // The site's own limits go on the sbatch line, over the script's #SBATCH defaults.
    const options = (name: string) => ['--array=0-3', '--cpus-per-task=1', '--mem=2G', `--output=${join(logs, `${name}-%A_%a.log`)}`];
    const script = join(PROJECT_ROOT, 'api', 'deploy', 'slurm', 'index-array.sh');
    const taskLogs = (name: string, job: string) => [0, 1, 2, 3].map((task) => readFileSync(join(logs, `${name}-${job}_${task}.log`), 'utf8'));
    const indexedBy = (lines: string[]) => lines.reduce((sum, log) => sum + Number(/indexed (\d+) slides/.exec(log)?.[1] ?? NaN), 0);

    const first = await cluster.submit(script, options('first'), env);
    const firstLogs = taskLogs('first', first);
    expect(indexedBy(firstLogs), firstLogs.join('\n')).toBe(4);
    const verified = await runTessera(['verify', '--index', index]);
    expect(verified.code, verified.stdout).toBe(0);

    const whole = join(scratch, 'whole');
    expect((await runTessera(['index', '--slides', slides, '--out', whole, '--shards', '4', '--device', 'cpu'], env)).code).toBe(0);
    const a = IndexStore.open(index, { readOnly: true });
    const b = IndexStore.open(whole, { readOnly: true });
    try {
      expect(a.shards.map((shard) => [shard.index, shard.slideIds().sort()])).toEqual(b.shards.map((shard) => [shard.index, shard.slideIds().sort()]));
      for (const shard of b.shards.filter((candidate) => candidate.tileCount > 0)) {
        const vector = shard.vector(shard.slide(shard.slideIds()[0]!)!.labels[0]!);
        const top = (store: IndexStore) => store.search(vector, { k: 10 }).map((hit) => [hit.tile.slideId, hit.tile.x, hit.tile.y]);
        expect(top(a)).toEqual(top(b));
      }
    } finally {
      await a.close();
      await b.close();
    }

    copyFileSync(slidePath('ndpi/test3-TRITC-2-560.ndpi'), join(slides, 'tritc.ndpi'));
    const second = await cluster.submit(script, options('second'), env);
    const secondLogs = taskLogs('second', second);
    expect(indexedBy(secondLogs), secondLogs.join('\n')).toBe(1);
    expect(secondLogs.reduce((sum, log) => sum + Number(/skipped (\d+) unchanged/.exec(log)?.[1] ?? NaN), 0)).toBe(4);
    expect((await runTessera(['verify', '--index', index])).code).toBe(0);
  }, 300_000);
});
