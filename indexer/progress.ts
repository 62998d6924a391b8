/**
 * Progress of a run: a live bar on a terminal (slides, tiles/s, ETA, failures), plain structured
 * log lines otherwise. Never prints slide ids or paths (they often hold patient identifiers).
 */
import { SingleBar } from 'cli-progress';
import type { Logger } from 'pino';

export class Progress {
  private readonly bar: SingleBar | null;
  private readonly started = performance.now();
  private done = 0;
  private tiles = 0;
  private failed = 0;

  constructor(
    private readonly total: number,
    private readonly log: Logger,
    interactive: boolean,
  ) {
    this.bar = interactive
      ? new SingleBar({ format: 'indexing [{bar}] {value}/{total} slides | {tiles} tiles | {rate} tiles/s | ETA {eta_formatted} | {failed} failed', hideCursor: true, etaBuffer: 20 })
      : null;
    this.bar?.start(total, 0, { tiles: 0, rate: '0.0', failed: 0 });
  }

  slideDone(ordinal: number, tiles: number, outcome: 'indexed' | 'skipped' | 'failed', ms: number): void {
    this.done++;
    this.tiles += tiles;
    if (outcome === 'failed') this.failed++;
    const rate = this.tiles / ((performance.now() - this.started) / 1000);
    if (this.bar) this.bar.update(this.done, { tiles: this.tiles, rate: rate.toFixed(1), failed: this.failed });
    else this.log.info({ slide: ordinal, of: this.total, outcome, tiles, ms: Math.round(ms), tilesPerSecond: Number(rate.toFixed(1)), failed: this.failed }, 'slide done');
  }

  stop(): void {
    this.bar?.stop();
  }
}
