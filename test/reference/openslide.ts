/** Runs the OpenSlide reference reader (reference/openslide_regions.py) and returns RGB regions. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT, SYSTEM_PYTHON } from '../shared-data.js';

export type RegionRequest = [level: number, x: number, y: number, width: number, height: number];

export interface ReferenceResult {
  levels: Array<[number, number, number]>;
  properties: Record<string, string>;
  /** RGB bytes of each region, and which pixels OpenSlide painted opaque. */
  regions: Array<{ rgb: Buffer; opaque: Uint8Array }>;
}

export function readWithOpenSlide(path: string, regions: RegionRequest[]): ReferenceResult {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ref-'));
  const out = join(dir, 'regions.bin');
  try {
    const stdout = execFileSync(SYSTEM_PYTHON, [join(PROJECT_ROOT, 'test', 'reference', 'openslide_regions.py')], {
      input: JSON.stringify({ path, regions, out }),
      maxBuffer: 64 * 1024 * 1024,
    });
    const meta = JSON.parse(stdout.toString()) as Omit<ReferenceResult, 'regions'>;
    const rgba = readFileSync(out);
    let at = 0;
    const decoded = regions.map(([, , , width, height]) => {
      const count = width * height;
      const rgb = Buffer.alloc(count * 3);
      const opaque = new Uint8Array(count);
      for (let i = 0; i < count; i++) {
        rgb[i * 3] = rgba[at + i * 4] ?? 0;
        rgb[i * 3 + 1] = rgba[at + i * 4 + 1] ?? 0;
        rgb[i * 3 + 2] = rgba[at + i * 4 + 2] ?? 0;
        opaque[i] = (rgba[at + i * 4 + 3] ?? 0) === 255 ? 1 : 0;
      }
      at += count * 4;
      return { rgb, opaque };
    });
    return { ...meta, regions: decoded };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mean absolute difference per channel over the pixels OpenSlide painted opaque. */
export function meanAbsoluteDifference(ours: Buffer, reference: { rgb: Buffer; opaque: Uint8Array }): { mad: number; compared: number } {
  let sum = 0;
  let compared = 0;
  for (let i = 0; i < reference.opaque.length; i++) {
    if (!reference.opaque[i]) continue;
    for (let c = 0; c < 3; c++) sum += Math.abs((ours[i * 3 + c] ?? 0) - (reference.rgb[i * 3 + c] ?? 0));
    compared++;
  }
  return { mad: compared === 0 ? 0 : sum / (compared * 3), compared };
}
