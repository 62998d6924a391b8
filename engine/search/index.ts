/** engine/search: slide search by mosaic, hard negatives, leave-one-out evaluation. Region search is IndexStore.search. */
export { mosaicOf, type MosaicOptions } from './mosaic.js';
export { searchSlides, rankSlides, type SlideMatch, type SlideSearchOptions } from './slide-search.js';
export { hardNegatives, type HardNegativeOptions, type LabelledQuery } from './hard-negatives.js';
export { evaluateIndex, type Evaluation, type EvaluationOptions, type ModeEvaluation, type RetrievalFigures } from './evaluate.js';
