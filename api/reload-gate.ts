/**
 * One reload at a time per server: a reload opens a second copy of the index beside the served
 * one, so overlapping reloads multiplied memory and threads (20 calls peaked at 1,335 MB and 73
 * threads). A reload asked for while one runs is refused, not queued.
 */
import { ApiError } from './errors.js';

export class ReloadGate {
  private running: { since: number } | null = null;

  /** Runs `reload` unless one is running. @throws ApiError RELOAD_IN_PROGRESS */
  async run<T>(reload: () => Promise<T>): Promise<T> {
    if (this.running) throw new ApiError('RELOAD_IN_PROGRESS', `a reload has been running for ${Math.round((Date.now() - this.running.since) / 1000)} s; retry when it is done`);
    this.running = { since: Date.now() };
    try {
      return await reload();
    } finally {
      this.running = null;
    }
  }
}
