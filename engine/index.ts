/** The engine's public face: what indexer/ and api/ may import. */
export * from './errors.js';
export * from './slide/index.js';
export * from './tiling/index.js';
export * from './embed/index.js';
export * from './index/index.js';
export * from './search/index.js';
export * from './cluster/index.js';
export * from './query/index.js';
