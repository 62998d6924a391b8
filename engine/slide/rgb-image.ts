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

/**
 * Shrinks by an integer factor, averaging each factor × factor block (partial blocks at the edges
 * average what they have). This is what JPEG DCT scaling approximates, so levels made this way
 * match readers that use it (OpenSlide's NDPI levels) to within a grey level or so.
 */
export function boxDownscale(image: RgbImage, factor: number): RgbImage {
  const width = Math.ceil(image.width / factor);
  const height = Math.ceil(image.height / factor);
  const data = Buffer.allocUnsafe(width * height * 3);
  for (let y = 0; y < height; y++) {
    const y0 = y * factor;
    const y1 = Math.min(y0 + factor, image.height);
    for (let x = 0; x < width; x++) {
      const x0 = x * factor;
      const x1 = Math.min(x0 + factor, image.width);
      let r = 0;
      let g = 0;
      let b = 0;
      for (let yy = y0; yy < y1; yy++) {
        for (let p = (yy * image.width + x0) * 3, end = (yy * image.width + x1) * 3; p < end; p += 3) {
          r += image.data[p] ?? 0;
          g += image.data[p + 1] ?? 0;
          b += image.data[p + 2] ?? 0;
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      const o = (y * width + x) * 3;
      data[o] = Math.round(r / n);
      data[o + 1] = Math.round(g / n);
      data[o + 2] = Math.round(b / n);
    }
  }
  return { data, width, height };
}
