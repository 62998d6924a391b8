/** engine/query: the one query service the CLI and every API route ask their questions through. */
export { MAX_REGION_SIDE, QueryService, scopedSearch, slideNotFound, type HardNegativesAnswer, type QueryServiceOptions, type RegionAnswer, type SlideAnswer, type SlideQueryInfo, type WholeRegionAnswer } from './query-service.js';
export { hasFeedback, isImageQuery, type Feedback, type ImageQuery, type LabelledTileQuery, type NewCase, type QuerySettings, type RegionRef, type SlideQuery, type TileQuery, type VectorQuery, type WholeRegionQuery } from './questions.js';
