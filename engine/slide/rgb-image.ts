/** Interleaved 8-bit RGB pixels, row-major, no padding: the one pixel format slides hand out. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

/** Expands interleaved pixels with `channels` samples (gray, gray+alpha, RGB, RGBA) to RGB. */
export function rgbFromChannels(pixels: Uint8Array, width: number, height: number, channels: number): RgbImage {
  const count = width * height;
  if (channels === 3) {
    return { data: Buffer.from(pixels.buffer, pixels.byteOffset, count * 3), width, height };
  }
  const data = Buffer.allocUnsafe(count * 3);
  if (channels === 1 || channels === 2) {
    for (let i = 0, o = 0; i < count; i++, o += 3) {
      const v = pixels[i * channels] ?? 0;
      data[o] = v;
      data[o + 1] = v;
      data[o + 2] = v;
    }
  } else {
    // Extra samples (alpha) are dropped: slides are opaque, and pyramidal TIFF writers add an
    // all-opaque alpha channel.
    for (let i = 0, s = 0, o = 0; i < count; i++, s += channels, o += 3) {
      data[o] = pixels[s] ?? 0;
      data[o + 1] = pixels[s + 1] ?? 0;
      data[o + 2] = pixels[s + 2] ?? 0;
    }
  }
  return { data, width, height };
}
