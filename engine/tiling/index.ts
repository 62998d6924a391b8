/** engine/tiling: tissue detection and the physical tile grid. */
export { computeTissueMask, tissueFraction, otsuThreshold, type TissueMask, type TissueMaskOptions } from './tissue-mask.js';
export { tileGrid, readGridTile, slideMppOf, DEFAULT_TILE_SPEC, type GridTile, type TileGridOptions, type TileSpec } from './tile-grid.js';
