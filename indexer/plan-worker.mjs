// Planning one slide for the indexer on a worker thread: open, calibration, tissue mask and tile
// grid. The tissue mask decodes a low-resolution view of the whole slide (all of level 0 when a
// slide has no pyramid), which on the main thread stopped tile reading for the model.
// Plain JavaScript (worker threads load no TypeScript loader of their own): it registers tsx and
// calls the engine's own openSlide and tileGrid, so a plan is the same code the engine tests.
// The slide is closed before the task returns: the main thread opens its own handle to read tiles.
import { register } from 'tsx/esm/api';

register();

// Loaded by the first task, not when the thread starts: a thread that never ran a task holds no
// native addon, so destroying the pool at the end of a short run cannot interrupt its loading.
let engine;
const PLAN_TILE_CACHE_BYTES = 16 * 1024 * 1024;
async function loadEngine() {
  engine ??= Promise.all([import('../engine/slide/index.ts'), import('../engine/tiling/index.ts'), import('../engine/errors.ts')]).then(([slide, tiling, errors]) => {
    // Each thread has its own tile cache; a plan reads every tile once, so a small one will do
    // (the default 256 MiB per planning thread showed as peak RSS).
    slide.tileCache.setMaxBytes(PLAN_TILE_CACHE_BYTES);
    return { ...slide, ...tiling, ...errors };
  });
  return engine;
}

/**
 * { path, name, explicitMpp?, tile: { mpp, sizePx }, minTissue, dicomWeb } →
 * { ok: true, grid: [{ baseX, baseY, baseWidth, baseHeight, tissue, level }], mpp, mppSupplied, width, height }
 * or { ok: false, code, message } (errors cross the thread as plain data so that the code survives).
 */
export default async function planSlide({ path, name, explicitMpp, tile, minTissue, dicomWeb }) {
  const { openSlide, slideMppOf, tileGrid, configureDicomWeb, isTesseraError } = await loadEngine();
  configureDicomWeb(dicomWeb);
  let slide;
  try {
    slide = await openSlide(path, { access: 'sequential' });
    const mpp = slideMppOf(slide, name, explicitMpp);
    const grid = await tileGrid(slide, name, { ...tile, minTissue, slideMpp: mpp });
    const planned = grid.map((cell) => ({ ...cell, level: slide.levelForDownsample(cell.baseWidth / tile.sizePx) }));
    return { ok: true, grid: planned, mpp, mppSupplied: slide.mpp === null, width: slide.width, height: slide.height };
  } catch (error) {
    return { ok: false, code: isTesseraError(error) ? error.code : 'SLIDE_CORRUPT', message: error instanceof Error ? error.message : String(error) };
  } finally {
    slide?.close();
  }
}
