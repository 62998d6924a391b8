/**
 * TileCatalogue: what a shard knows of its live tiles in memory, by label, in typed arrays
 * (4 + 8 + 4 bytes a label: the slide it belongs to, its level-0 position, its metadata), plus
 * the slide records. Searches use it for exclusions and filters without reading LMDB; tile
 * references resolve through it.
 *
 * It holds no vectors and writes nothing.
 */
import { SlideListing } from './slide-listing.js';
import type { Label, SlideId, SlideRecord, TileRecord } from './types.js';

const NONE = -1;

export class TileCatalogue {
  private readonly slideRecords = new Map<SlideId, SlideRecord>();
  /** Slide ordinals: index into slideAt; freed ordinals are not reused (a few bytes a deleted slide). */
  private readonly ordinalOf = new Map<SlideId, number>();
  private readonly slideAt: Array<SlideRecord | undefined> = [];
  private tileSlide = new Int32Array(1024).fill(NONE);
  private positions = new Float64Array(1024).fill(Number.NaN);
  private tileMetadataId = new Int32Array(1024).fill(NONE);
  /** Distinct tile metadata objects (tile libraries repeat a few labels over many tiles). */
  private readonly metadataValues: Array<Record<string, string>> = [];
  private readonly metadataIds = new Map<string, number>();
  private live = 0;
  /** The slide list's orderings and counts, kept up to date with the records. */
  readonly listing = new SlideListing(() => this.slideRecords.values());

  get slideCount(): number {
    return this.slideRecords.size;
  }

  get tileCount(): number {
    return this.live;
  }

  /** One past the highest label the arrays can hold. */
  get capacity(): number {
    return this.tileSlide.length;
  }

  slide(slideId: string): SlideRecord | undefined {
    return this.slideRecords.get(slideId as SlideId);
  }

  slides(): IterableIterator<SlideRecord> {
    return this.slideRecords.values();
  }

  slideIds(): SlideId[] {
    return [...this.slideRecords.keys()];
  }

  /** Adds (or replaces) a slide record. Its tiles are added with addTile. */
  putSlide(record: SlideRecord): void {
    this.listing.put(record, this.slideRecords.get(record.slideId));
    let ordinal = this.ordinalOf.get(record.slideId);
    if (ordinal === undefined) {
      ordinal = this.slideAt.length;
      this.ordinalOf.set(record.slideId, ordinal);
      this.slideAt.push(record);
    } else this.slideAt[ordinal] = record;
    this.slideRecords.set(record.slideId, record);
  }

  addTile(label: Label, tile: TileRecord): void {
    const ordinal = this.ordinalOf.get(tile.slideId);
    if (ordinal === undefined) return;
    this.grow(label);
    if (this.tileSlide[label] === NONE) this.live++;
    this.tileSlide[label] = ordinal;
    this.positions[label] = positionKey(tile);
    this.tileMetadataId[label] = tile.metadata ? this.metadataId(tile.metadata) : NONE;
  }

  removeTile(label: Label): void {
    if (label >= this.tileSlide.length || this.tileSlide[label] === NONE) return;
    this.tileSlide[label] = NONE;
    this.positions[label] = Number.NaN;
    this.tileMetadataId[label] = NONE;
    this.live--;
  }

  /** Removes a slide record and its tiles; returns the labels it had. */
  removeSlide(slideId: SlideId): Label[] {
    const record = this.slideRecords.get(slideId);
    if (!record) return [];
    this.listing.remove(record);
    for (const label of record.labels) this.removeTile(label);
    this.slideRecords.delete(slideId);
    const ordinal = this.ordinalOf.get(slideId);
    if (ordinal !== undefined) this.slideAt[ordinal] = undefined;
    this.ordinalOf.delete(slideId);
    return record.labels;
  }

  isLive(label: Label): boolean {
    return label < this.tileSlide.length && this.tileSlide[label] !== NONE;
  }

  /** The slide a live tile belongs to. */
  slideOf(label: Label): SlideRecord | undefined {
    const ordinal = this.tileSlide[label] ?? NONE;
    return ordinal === NONE ? undefined : this.slideAt[ordinal];
  }

  /** The slide ordinal of a live tile, or -1: cheap to compare against a set of ordinals. */
  slideOrdinalOf(label: Label): number {
    return this.tileSlide[label] ?? NONE;
  }

  ordinal(slideId: string): number | undefined {
    return this.ordinalOf.get(slideId as SlideId);
  }

  tileMetadata(label: Label): Record<string, string> | undefined {
    const id = this.tileMetadataId[label] ?? NONE;
    return id === NONE ? undefined : this.metadataValues[id];
  }

  /** The slide's live tile whose level-0 top-left corner is (x, y), or undefined. */
  tileAtCorner(slideId: string, corner: { x: number; y: number }): Label | undefined {
    const wanted = positionKey(corner);
    return this.slideRecords.get(slideId as SlideId)?.labels.find((label) => this.positions[label] === wanted);
  }

  /** Calls `visit` for every live label below `end`. */
  forEachLive(end: Label, visit: (label: Label, slideOrdinal: number) => void): void {
    const limit = Math.min(end, this.tileSlide.length);
    for (let label = 0; label < limit; label++) {
      const ordinal = this.tileSlide[label] as number;
      if (ordinal !== NONE) visit(label, ordinal);
    }
  }

  slideByOrdinal(ordinal: number): SlideRecord | undefined {
    return this.slideAt[ordinal];
  }

  private metadataId(metadata: Record<string, string>): number {
    const key = JSON.stringify(metadata);
    let id = this.metadataIds.get(key);
    if (id === undefined) {
      id = this.metadataValues.length;
      this.metadataValues.push(metadata);
      this.metadataIds.set(key, id);
    }
    return id;
  }

  private grow(label: Label): void {
    if (label < this.tileSlide.length) return;
    const size = Math.max(label + 1, this.tileSlide.length * 2);
    this.tileSlide = grown(this.tileSlide, size, NONE);
    this.positions = grown(this.positions, size, Number.NaN);
    this.tileMetadataId = grown(this.tileMetadataId, size, NONE);
  }
}

function grown<T extends Int32Array | Float64Array>(array: T, size: number, fill: number): T {
  const next = new (array.constructor as new (length: number) => T)(size);
  next.fill(fill);
  next.set(array);
  return next;
}

/** x and y in one number (exact while x < 2^21, far beyond any slide). */
function positionKey(rect: { x: number; y: number }): number {
  return rect.x * 2 ** 32 + rect.y;
}
