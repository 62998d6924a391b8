/**
 * Queries by image: a file picked with "Search by image…" or dropped anywhere on the page becomes
 * a base64 data URL for POST /v1/search/region. Only PNG, JPEG and TIFF are taken (what the API
 * decodes); it does not search itself.
 */

const ACCEPTED = new Set(['image/png', 'image/jpeg', 'image/tiff']);
/** Larger files are refused here, before a 16 MiB request body is refused by the server. */
const MAX_BYTES = 10 * 2 ** 20;

/** An image to search for, as the API takes it. */
export interface QueryImage {
  /** data: URL, base64. */
  image: string;
  name: string;
}

/** The file picker and the page-wide drop target for query images. */
export class ImageQuery {
  /** Called with the image to search for. */
  onImage: (image: QueryImage) => void = () => {};
  /** Called when a file cannot be used, with the reason. */
  onRefused: (reason: string) => void = () => {};

  constructor(button: HTMLButtonElement, input: HTMLInputElement, dropZone: HTMLElement) {
    button.addEventListener('click', () => input.click());
    input.addEventListener('change', () => {
      const file = input.files?.[0];
      input.value = '';
      if (file) void this.take(file);
    });
    let depth = 0;
    const hasFiles = (event: DragEvent): boolean => event.dataTransfer?.types.includes('Files') ?? false;
    document.addEventListener('dragenter', (event) => {
      if (!hasFiles(event)) return;
      depth++;
      dropZone.hidden = false;
    });
    document.addEventListener('dragleave', () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) dropZone.hidden = true;
    });
    document.addEventListener('dragover', (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    document.addEventListener('drop', (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      dropZone.hidden = true;
      const file = event.dataTransfer?.files[0];
      if (file) void this.take(file);
    });
  }

  private async take(file: File): Promise<void> {
    const type = file.type || (/\.tiff?$/i.test(file.name) ? 'image/tiff' : '');
    if (!ACCEPTED.has(type)) {
      this.onRefused(`${file.name} is not a PNG, JPEG or TIFF image.`);
      return;
    }
    if (file.size > MAX_BYTES) {
      this.onRefused(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB; images up to ${MAX_BYTES / 2 ** 20} MiB can be searched (crop it to the region of interest).`);
      return;
    }
    const image = await new Promise<string>((resolve, reject) => {
      const reader = new FileReader();
      reader.onload = () => resolve(String(reader.result));
      reader.onerror = () => reject(reader.error ?? new Error('the file could not be read'));
      reader.readAsDataURL(file);
    }).catch((error: Error) => {
      this.onRefused(`${file.name} could not be read: ${error.message}`);
      return null;
    });
    if (image) this.onImage({ image, name: file.name });
  }
}
