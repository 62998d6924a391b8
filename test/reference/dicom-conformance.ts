/**
 * Conformance of Tessera's DICOM reader on converters' output: every level of a converted slide
 * read by Tessera against OpenSlide reading the source, at pixel-aligned positions.
 */
import { readdirSync } from 'node:fs';
import { openSlide } from '../../engine/index.js';
import { slidePath } from '../shared-data.js';
import { convertedSlide, conversionName, type Conversion } from './dicomizer.js';
import { meanAbsoluteDifference, readWithOpenSlide, type RegionRequest } from './openslide.js';

export interface LevelConformance {
  level: number;
  width: number;
  height: number;
  /** OpenSlide's level compared with: the finest source level at least as fine as this one. */
  sourceLevel: number;
  /** This level's downsample over the source level's (1 when the source has the same level). */
  ratio: number;
  /** Worst mean absolute difference per channel against OpenSlide, where the source has this level (ratio 1). */
  mad: number | null;
  /**
   * Worst MAD of 8 × 8 px block means against the same area of the source level. Converters build
   * levels the source lacks, and OrthancWSIDicomizer rebuilds every level above 0 when it
   * re-encodes (JPEG 2000, uncompressed, or any source it reads through OpenSlide) with its own
   * downsampling, sharper than the source's: their pixels differ from any source level by the
   * filter, not by the reader. Block means agree whatever the filter, while a tile in the wrong
   * place or wrong colours differ by tens.
   */
  blockMad: number;
}

export interface ConformanceResult {
  name: string;
  conversion: Conversion;
  instances: number;
  levels: LevelConformance[];
  sourceLevels: number;
  width: number;
  height: number;
  sourceWidth: number;
  sourceHeight: number;
  mpp: [number, number] | null;
  sourceMpp: [number, number];
}

const REGION_PX = 256;
const BLOCK_PX = 8;
/** Source pixels one comparison may read (OpenSlide returns RGBA). */
const MAX_SOURCE_REGION_PX = 1024;

interface Planned {
  level: number;
  sourceLevel: number;
  ratio: number;
  requests: Array<{ ours: RegionRequest; theirs: RegionRequest }>;
}

/** Converts (cached) and compares every level; regions at three spots of each level. */
export async function checkConversion(conversion: Conversion): Promise<ConformanceResult> {
  const folder = await convertedSlide(conversion);
  const source = slidePath(conversion.source);
  const instances = readdirSync(folder).filter((file) => file.endsWith('.dcm')).length;
  const sourceSlide = await openSlide(source);
  const sourceMpp = sourceSlide.mpp ?? [0, 0];
  const sourceSize = { width: sourceSlide.width, height: sourceSlide.height };
  sourceSlide.close();
  const slide = await openSlide(folder);
  try {
    // Level geometry from OpenSlide itself (an empty request list reads no pixels).
    const sourceLevels = readWithOpenSlide(source, []).levels;
    const plan: Planned[] = slide.levels.map((level, index) => {
      let sourceLevel = 0;
      sourceLevels.forEach(([, , downsample], i) => {
        if (downsample <= level.downsample * 1.01) sourceLevel = i;
      });
      const [sourceWidth, sourceHeight, sourceDownsample] = sourceLevels[sourceLevel] as [number, number, number];
      const ratio = level.downsample / sourceDownsample;
      const same = Math.abs(ratio - 1) < 0.01;
      const limit = same ? REGION_PX : Math.max(BLOCK_PX, Math.floor(MAX_SOURCE_REGION_PX / ratio / BLOCK_PX) * BLOCK_PX);
      const width = Math.min(limit, level.width, Math.floor(sourceWidth / ratio));
      const height = Math.min(limit, level.height, Math.floor(sourceHeight / ratio));
      const maxX = Math.min(level.width, Math.floor(sourceWidth / ratio)) - width;
      const maxY = Math.min(level.height, Math.floor(sourceHeight / ratio)) - height;
      const spots: Array<[number, number]> = [
        [0, 0],
        [Math.floor(maxX / 2), Math.floor(maxY / 2)],
        [maxX, maxY],
      ];
      const requests = spots.map(([lvlX, lvlY]) => {
        const x = same ? alignedLvl(lvlX, sourceDownsample, level.downsample, maxX) : lvlX;
        const y = same ? alignedLvl(lvlY, sourceDownsample, level.downsample, maxY) : lvlY;
        const baseX = Math.round(x * level.downsample);
        const baseY = Math.round(y * level.downsample);
        return {
          ours: [index, baseX, baseY, width, height] as RegionRequest,
          theirs: [sourceLevel, same ? Math.round(x * sourceDownsample) : baseX, same ? Math.round(y * sourceDownsample) : baseY, same ? width : Math.round(width * ratio), same ? height : Math.round(height * ratio)] as RegionRequest,
        };
      });
      return { level: index, sourceLevel, ratio, requests };
    });
    const reference = readWithOpenSlide(source, plan.flatMap((entry) => entry.requests.map((request) => request.theirs)));
    let at = 0;
    const levels: LevelConformance[] = [];
    for (const entry of plan) {
      let worst: number | null = null;
      let worstBlock = 0;
      const same = Math.abs(entry.ratio - 1) < 0.01;
      for (const { ours, theirs } of entry.requests) {
        const [level, x, y, width, height] = ours;
        const region = await slide.readRegion(level, x, y, width, height);
        const ref = reference.regions[at++] as { rgb: Buffer; opaque: Uint8Array };
        if (same) worst = Math.max(worst ?? 0, meanAbsoluteDifference(region.data, ref).mad);
        worstBlock = Math.max(worstBlock, blockMad(region.data, width, height, ref.rgb, theirs[3], theirs[4]));
      }
      const level = slide.levels[entry.level];
      levels.push({ level: entry.level, width: level?.width ?? 0, height: level?.height ?? 0, sourceLevel: entry.sourceLevel, ratio: entry.ratio, mad: worst, blockMad: worstBlock });
    }
    return {
      name: conversionName(conversion),
      conversion,
      instances,
      levels,
      sourceLevels: sourceLevels.length,
      width: slide.width,
      height: slide.height,
      sourceWidth: sourceSize.width,
      sourceHeight: sourceSize.height,
      mpp: slide.mpp,
      sourceMpp,
    };
  } finally {
    slide.close();
  }
}

/** MAD of BLOCK_PX block means of ours against the same blocks of theirs (which may be `ratio` times larger). */
function blockMad(ours: Buffer, width: number, height: number, theirs: Buffer, theirWidth: number, theirHeight: number): number {
  const blocksX = Math.floor(width / BLOCK_PX);
  const blocksY = Math.floor(height / BLOCK_PX);
  if (blocksX === 0 || blocksY === 0) return 0;
  const sx = theirWidth / width;
  const sy = theirHeight / height;
  let sum = 0;
  for (let by = 0; by < blocksY; by++) {
    for (let bx = 0; bx < blocksX; bx++) {
      const a = blockMean(ours, width, bx * BLOCK_PX, by * BLOCK_PX, BLOCK_PX, BLOCK_PX);
      const b = blockMean(theirs, theirWidth, Math.round(bx * BLOCK_PX * sx), Math.round(by * BLOCK_PX * sy), Math.round(BLOCK_PX * sx), Math.round(BLOCK_PX * sy));
      for (let c = 0; c < 3; c++) sum += Math.abs((a[c] ?? 0) - (b[c] ?? 0));
    }
  }
  return sum / (blocksX * blocksY * 3);
}

function blockMean(data: Buffer, stride: number, x0: number, y0: number, w: number, h: number): [number, number, number] {
  const mean: [number, number, number] = [0, 0, 0];
  for (let y = y0; y < y0 + h; y++) {
    for (let x = x0; x < x0 + w; x++) {
      for (let c = 0; c < 3; c++) mean[c as 0 | 1 | 2] += data[(y * stride + x) * 3 + c] ?? 0;
    }
  }
  return [mean[0] / (w * h), mean[1] / (w * h), mean[2] / (w * h)];
}

/**
 * A level position near `target` where OpenSlide's level-0 position (x · its downsample) falls on
 * a level pixel (it interpolates otherwise) and Tessera's rounding lands on the same pixel.
 */
function alignedLvl(target: number, sourceDownsample: number, downsample: number, maxLvl: number): number {
  for (let distance = 0; distance <= maxLvl; distance++) {
    for (const lvl of [target - distance, target + distance]) {
      if (lvl < 0 || lvl > maxLvl) continue;
      const sourceBase = Math.round(lvl * sourceDownsample);
      const base = Math.round(lvl * downsample);
      if (Math.abs(sourceBase / sourceDownsample - lvl) < 0.02 && Math.round(base / downsample) === lvl) return lvl;
    }
  }
  return 0;
}

/** The conformance table as Markdown: one row per conversion, one column per level: `pixel MAD / 8×8 block MAD`. */
export function conformanceTable(results: ConformanceResult[]): string {
  const maxLevels = Math.max(...results.map((result) => result.levels.length));
  const header = ['converter', 'source', 'compression', 'instances', 'mpp (µm/px)', ...Array.from({ length: maxLevels }, (_, i) => `L${i}`)];
  const rows = results.map((result) => [
    'OrthancWSIDicomizer 1.1',
    result.conversion.source.split('/').pop() ?? '',
    `${result.conversion.compression}${result.conversion.layout === 'split' ? ' (--max-size 1)' : ''}`,
    String(result.instances),
    result.mpp ? `${result.mpp[0].toFixed(3)} × ${result.mpp[1].toFixed(3)}` : 'none',
    ...Array.from({ length: maxLevels }, (_, i) => {
      const level = result.levels[i];
      if (!level) return '';
      return `${level.mad === null ? '–' : level.mad.toFixed(2)} / ${level.blockMad.toFixed(2)}`;
    }),
  ]);
  return [header, header.map(() => '---'), ...rows].map((row) => `| ${row.join(' | ')} |`).join('\n');
}
