/**
 * Random access into a large baseline JPEG through its restart intervals.
 *
 * Hamamatsu NDPI stores each pyramid level as one JPEG of up to gigapixels, with a restart
 * marker every few MCUs and a table of where each interval starts. A "tile" is a block of
 * intervals: we rewrite the frame header to the block's size and concatenate its intervals with
 * renumbered restart markers, giving a small, valid JPEG that decodes on its own. Decoding a
 * region never decodes the whole level.
 */

export interface JpegLayout {
  width: number;
  height: number;
  /** MCU size in pixels. */
  mcuWidth: number;
  mcuHeight: number;
  /** MCUs per restart interval (0: no restart markers). */
  restartInterval: number;
  /** Bytes from the start of the stream through the end of the SOS header. */
  header: Buffer;
  /** Offset of the SOF0/SOF1 frame header's height field inside `header`. */
  sofDimensionsAt: number;
}

/** Parses markers up to the start of scan. Throws on progressive or malformed streams. */
export function parseJpegLayout(header: Buffer): JpegLayout {
  if (header[0] !== 0xff || header[1] !== 0xd8) throw new Error('JPEG stream does not start with SOI');
  let at = 2;
  let layout: Partial<JpegLayout> = { restartInterval: 0 };
  while (at + 4 <= header.length) {
    if (header[at] !== 0xff) throw new Error(`bad JPEG marker at byte ${at}`);
    const marker = header[at + 1] ?? 0;
    const length = header.readUInt16BE(at + 2);
    if (marker === 0xc0 || marker === 0xc1) {
      const components = header[at + 9] ?? 0;
      let maxH = 1;
      let maxV = 1;
      for (let c = 0; c < components; c++) {
        const sampling = header[at + 11 + c * 3] ?? 0x11;
        maxH = Math.max(maxH, sampling >> 4);
        maxV = Math.max(maxV, sampling & 15);
      }
      layout = { ...layout, height: header.readUInt16BE(at + 5), width: header.readUInt16BE(at + 7), mcuWidth: 8 * maxH, mcuHeight: 8 * maxV, sofDimensionsAt: at + 5 };
    } else if (marker >= 0xc2 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      throw new Error(`JPEG frame type 0x${marker.toString(16)} (progressive or lossless) cannot be split by restart intervals`);
    } else if (marker === 0xdd) {
      layout.restartInterval = header.readUInt16BE(at + 4);
    } else if (marker === 0xda) {
      if (layout.width === undefined) throw new Error('JPEG has no frame header before its scan');
      return { ...(layout as JpegLayout), header: header.subarray(0, at + 2 + length) };
    }
    at += 2 + length;
  }
  throw new Error('JPEG header ends before the start of scan');
}

/**
 * Builds a standalone JPEG of `widthPx × heightPx` from the given entropy-coded intervals
 * (each without its trailing restart marker).
 */
export function jpegFromIntervals(layout: JpegLayout, intervals: Buffer[], widthPx: number, heightPx: number): Buffer {
  const header = Buffer.from(layout.header);
  header.writeUInt16BE(heightPx, layout.sofDimensionsAt);
  header.writeUInt16BE(widthPx, layout.sofDimensionsAt + 2);
  const parts: Buffer[] = [header];
  intervals.forEach((interval, index) => {
    if (index > 0) parts.push(Buffer.from([0xff, 0xd0 + ((index - 1) % 8)]));
    parts.push(interval);
  });
  parts.push(Buffer.from([0xff, 0xd9]));
  return Buffer.concat(parts);
}
