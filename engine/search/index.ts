/** engine/search: slide search by mosaic, hard negatives. Region search is IndexStore.search. */
export { mosaicOf, type MosaicOptions } from './mosaic.js';
export { newCaseMosaic, type NewCaseMosaic, type NewCaseOptions } from './new-case.js';
export { searchSlides, rankSlides, type SlideMatch, type SlideSearchOptions } from './slide-search.js';
export { hardNegatives, type HardNegativeOptions, type LabelledQuery } from './hard-negatives.js';
