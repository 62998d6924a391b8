/**
 * SearchQueue: hands search tasks to the search threads in batches. At most one batch per thread
 * is in flight; tasks arriving while every thread is busy wait here and leave together when a
 * thread frees up. Under load one hand-off then carries many queries, so its fixed cost (structured
 * clone, waking a thread: ~0.15 ms here) is paid once per batch instead of once per query; under
 * light load every task leaves alone at once.
 *
 * Deadlines are kept here rather than by aborting piscina tasks: aborting a running task
 * terminates its thread, and a thread terminated inside hnswlib's searchKnn aborts the process.
 */
import { TesseraError } from '../errors.js';
import type { SearchJob, SearchTask, TaskOutcome } from './search-tasks.js';

/** What runs a batch: a piscina pool of one search thread, or (LocalShardGroup threads 0) the calling thread. */
export interface SearchRunner {
  run(task: SearchTask, options?: { transferList?: ArrayBuffer[] }): Promise<unknown>;
  destroy(): Promise<void>;
}

/**
 * Jobs in one hand-off at most. A job arriving behind a full batch waits for all of it (~1 ms a
 * search at 1M tiles), so this bounds the added latency; 8 already gets the throughput of 32 here.
 */
const BATCH_LIMIT = 8;
/** Jobs waiting at most; past this the node is overloaded and says so (503) rather than queue without end. */
const WAITING_LIMIT = 4096;

interface Job {
  task: SearchJob;
  deadline: number | undefined;
  resolve(value: unknown): void;
  reject(error: Error): void;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class SearchQueue {
  private waiting: Job[] = [];
  private inFlight = 0;
  private flushScheduled = false;
  private closed = false;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly pool: SearchRunner,
    private readonly threads: number,
    private readonly describe: string,
  ) {}

  /**
   * Runs `task` on a search thread; with `deadline` (epoch ms) the promise rejects with
   * SHARD_UNAVAILABLE once it passes, whether the task waits or runs (its late answer is dropped).
   */
  run<T>(task: SearchJob, deadline?: number): Promise<T> {
    if (this.closed) return Promise.reject(new TesseraError('SHARD_UNAVAILABLE', `${this.describe} are closing`, { transient: true }));
    if (this.waiting.length >= WAITING_LIMIT) return Promise.reject(new TesseraError('SHARD_UNAVAILABLE', `${this.describe} are overloaded: ${WAITING_LIMIT} searches waiting`, { transient: true }));
    return new Promise<T>((resolve, reject) => {
      const job: Job = { task, deadline, resolve: resolve as (value: unknown) => void, reject, settled: false, timer: undefined };
      if (deadline !== undefined) {
        job.timer = setTimeout(() => this.settle(job, new TesseraError('SHARD_UNAVAILABLE', `${this.describe} missed the deadline`, { transient: true })), Math.max(1, deadline - Date.now()));
      }
      this.waiting.push(job);
      // Tasks arriving in the same turn of the event loop leave together.
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => {
          this.flushScheduled = false;
          this.dispatch();
        });
      }
    });
  }

  /** Refuses new jobs and fails those still waiting; resolves once the running batches finish. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) this.settle(job, new TesseraError('SHARD_UNAVAILABLE', `${this.describe} are closing`, { transient: true }));
    await Promise.all(this.running);
  }

  private dispatch(): void {
    while (this.inFlight < this.threads && this.waiting.length > 0) {
      // Split what waits over the free threads, so that a burst keeps every core busy.
      const share = Math.min(BATCH_LIMIT, Math.ceil(this.waiting.length / (this.threads - this.inFlight)));
      const jobs = this.waiting.splice(0, share).filter((job) => !job.settled);
      if (jobs.length > 0) this.send(jobs);
    }
  }

  private send(jobs: Job[]): void {
    this.inFlight++;
    const tasks = jobs.map((job) => job.task);
    const transferList = tasks.flatMap((task) => (task.op === 'search' ? [task.queries.buffer as ArrayBuffer] : []));
    const deadlines = jobs.map((job) => job.deadline ?? null);
    const batch = this.pool
      .run({ op: 'batch', jobs: tasks, deadlines } satisfies SearchTask, { transferList })
      .then(
        (outcomes) => jobs.forEach((job, i) => this.settle(job, (outcomes as TaskOutcome[])[i] ?? new Error('a search thread answered a batch short'))),
        (error: Error) => jobs.forEach((job) => this.settle(job, error)),
      )
      .finally(() => {
        this.inFlight--;
        this.running.delete(batch);
        if (!this.closed) this.dispatch();
      });
    this.running.add(batch);
  }

  private settle(job: Job, outcome: TaskOutcome | Error): void {
    if (job.settled) return;
    job.settled = true;
    if (job.timer) clearTimeout(job.timer);
    if (outcome instanceof Error) job.reject(outcome);
    else if ('error' in outcome) {
      const { code, message, transient } = outcome.error;
      job.reject(code === null ? new Error(message) : new TesseraError(code, message, { transient }));
    }
    else job.resolve(outcome.value);
  }
}
