/** engine/search: slide search by mosaic, hard negatives, leave-one-out evaluation, refine by example, whole-region matches. Region search is IndexStore.search. */
export { mosaicOf, type MosaicOptions } from './mosaic.js';
export { newCaseMosaic, type NewCaseMosaic, type NewCaseOptions } from './new-case.js';
export { searchSlides, rankSlides, type SlideMatch, type SlideSearchOptions } from './slide-search.js';
export { hardNegatives, type HardNegativeOptions, type LabelledQuery } from './hard-negatives.js';
export { refineQuery, ROCCHIO_WEIGHTS, type RocchioWeights } from './refine.js';
export { matchRegions, gridTilesIn, type QueryBox, type QueryTile, type RegionEvidence, type RegionMatch, type RegionMatchOptions } from './region-match.js';
export { evaluateIndex, type Evaluation, type EvaluationOptions, type ModeEvaluation, type RetrievalFigures } from './evaluate.js';
