/**
 * Open slide files of an index, by slide id: a small LRU of handles (opening a slide parses its
 * TIFF directory, which costs more than a tile read), restricted to the configured slide roots.
 */
import { openSlide, readableUnder, type Slide } from '../slide/index.js';
import { TesseraError } from '../errors.js';

const OPEN_SLIDES = 16;

/** What an operator can do about a slide outside the roots (the API shows it to the caller; it names no path). */
const ACCESS_HINT =
  ': this server reads slide files only under its slide roots (by default the folders and DICOMweb servers recorded in the index when it was built); start it with --slide-roots, or slideRoots and dicomWebServers in its config file, covering where this slide was indexed from';

export class SlideFiles {
  private readonly open = new Map<string, Promise<Slide>>();

  /**
   * `roots`: folders slide files must lie in (symlinks resolved); undefined allows any path.
   * `dicomWebServers`: DICOMweb service roots that slides indexed from a server may be read from.
   */
  constructor(
    private readonly roots: string[] | undefined,
    private readonly dicomWebServers: string[] = [],
  ) {}

  /** The open slide at `path` for `slideId`. @throws TesseraError SLIDE_NOT_FOUND, SLIDE_ACCESS_DENIED, SLIDE_CORRUPT */
  async get(slideId: string, path: string): Promise<Slide> {
    const cached = this.open.get(slideId);
    if (cached) {
      this.open.delete(slideId);
      this.open.set(slideId, cached);
      return cached;
    }
    const opening = openSlide(path, { ...(this.roots ? { roots: this.roots } : {}), dicomWebServers: this.dicomWebServers }).catch((error: unknown) => {
      this.open.delete(slideId);
      // The message names the file; the API must not echo a path, so keep the slide id only.
      if (error instanceof TesseraError) throw new TesseraError(error.code, `slide "${slideId}": ${reasonOf(error.message)}${error.code === 'SLIDE_ACCESS_DENIED' && this.countUnreadable([path]) > 0 ? ACCESS_HINT : ''}`, { cause: error });
      throw error;
    });
    this.open.set(slideId, opening);
    while (this.open.size > OPEN_SLIDES) {
      const [oldestId, oldest] = this.open.entries().next().value as [string, Promise<Slide>];
      this.open.delete(oldestId);
      void oldest.then((slide) => slide.close(), () => undefined);
    }
    return opening;
  }

  /** How many of these slide files or series lie where this server may not read them. */
  countUnreadable(locators: Iterable<string>): number {
    if (this.roots === undefined) return 0;
    const readable = readableUnder({ roots: this.roots, dicomWebServers: this.dicomWebServers });
    let unreadable = 0;
    for (const locator of locators) if (!readable(locator)) unreadable++;
    return unreadable;
  }

  async close(): Promise<void> {
    const slides = [...this.open.values()];
    this.open.clear();
    for (const slide of slides) (await slide.catch(() => null))?.close();
  }
}

/** "name.svs: reason" → "reason". */
function reasonOf(message: string): string {
  const colon = message.indexOf(': ');
  return colon >= 0 ? message.slice(colon + 2) : message;
}
