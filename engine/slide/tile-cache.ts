/**
 * A process-wide LRU cache of decoded tiles, bounded in bytes.
 *
 * Neighbouring region reads share tiles; keeping decoded tiles is what lets a region read cost a
 * memory copy instead of a decode. Concurrent requests for the same tile share one decode.
 */
import type { RgbImage } from './rgb-image.js';

export class TileCache {
  private readonly entries = new Map<string, RgbImage>();
  private readonly pending = new Map<string, Promise<RgbImage | null>>();
  private bytes = 0;

  constructor(private maxBytes: number) {}

  get sizeBytes(): number {
    return this.bytes;
  }

  setMaxBytes(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.evict();
  }

  /** The cached tile, marked as recently used, or undefined. */
  peek(key: string): RgbImage | undefined {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
    }
    return hit;
  }

  /** Returns the cached tile, or decodes it once with `load` (null: no such tile, not cached). */
  getOrLoad(key: string, load: () => Promise<RgbImage | null>): Promise<RgbImage | null> | RgbImage {
    const hit = this.entries.get(key);
    if (hit) {
      // Re-insert to mark as most recently used (Map iterates in insertion order).
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const inFlight = this.pending.get(key);
    if (inFlight) return inFlight;
    const promise = load().then(
      (tile) => {
        this.pending.delete(key);
        if (tile) this.put(key, tile);
        return tile;
      },
      (error: unknown) => {
        this.pending.delete(key);
        throw error;
      },
    );
    this.pending.set(key, promise);
    return promise;
  }

  /** Drops every tile whose key starts with `prefix` (a closed slide). */
  dropPrefix(prefix: string): void {
    for (const [key, tile] of this.entries) {
      if (key.startsWith(prefix)) {
        this.entries.delete(key);
        this.bytes -= tile.data.length;
      }
    }
  }

  private put(key: string, tile: RgbImage): void {
    if (tile.data.length > this.maxBytes) return;
    this.entries.set(key, tile);
    this.bytes += tile.data.length;
    this.evict();
  }

  private evict(): void {
    for (const [key, tile] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(key);
      this.bytes -= tile.data.length;
    }
  }
}

/** Default budget: enough for a whole 20× level of a small slide, small next to a node's memory. */
export const DEFAULT_TILE_CACHE_BYTES = 256 * 1024 * 1024;

export const tileCache = new TileCache(DEFAULT_TILE_CACHE_BYTES);
