/**
 * JSON schemas of the API (TypeBox): each is validation, OpenAPI documentation and the handler's
 * type at once. Bodies refuse unknown fields; numbers are not coerced from strings in bodies.
 */
import { Type, type Static } from 'typebox';

export const ErrorBody = Type.Object({ error: Type.String(), message: Type.String() }, { $id: 'Error' });

const Metadata = Type.Record(Type.String(), Type.String(), { description: 'Slide metadata (dataset, organ, stain, species, diagnosis, patient_id…) and tile metadata (label)' });
const SlideIdField = Type.String({ minLength: 1, maxLength: 512, description: 'A slide id as indexed' });
const Coordinate = Type.Integer({ minimum: 0, maximum: 10_000_000 });
const Size = Type.Integer({ minimum: 1, maximum: 10_000_000 });

export const FilterSchema = Type.Record(Type.String({ maxLength: 128 }), Type.Unknown(), {
  description: 'Metadata conditions: {"organ": "lung", "diagnosis": {"in": ["LUAD", "LUSC"]}, "label": {"not": "normal"}}',
  maxProperties: 32,
});

export const ExcludeSchema = Type.Object(
  {
    slides: Type.Optional(Type.Array(SlideIdField, { maxItems: 1000 })),
    ownSlide: Type.Optional(Type.Boolean({ description: 'Leave out the query slide (default true)' })),
    ownPatient: Type.Optional(Type.Boolean({ description: "Leave out every slide of the query slide's patient (default false)" })),
  },
  { additionalProperties: false },
);

const SearchOptions = {
  k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Results to return (default 10)' })),
  ef: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'HNSW search breadth; default: the ef each segment was tuned to at build time for recall@10 ≥ 0.95' })),
  filter: Type.Optional(FilterSchema),
  exclude: Type.Optional(ExcludeSchema),
};

const ImageField = Type.String({ minLength: 1, description: 'A PNG, JPEG or TIFF image, base64 (a data: URL is accepted)' });

/** An example for refine-by-example: a tile of an indexed slide, or an image. */
const Example = Type.Union(
  [
    Type.Object({ slideId: SlideIdField, x: Coordinate, y: Coordinate, width: Size, height: Size }, { additionalProperties: false }),
    Type.Object({ image: ImageField }, { additionalProperties: false }),
  ],
  { description: 'A region of an indexed slide ({slideId, x, y, width, height}, level-0 pixels) or an image (base64)' },
);
export type Example = Static<typeof Example>;

/** Refine by example (Rocchio): the query moves toward the positives' mean and away from the negatives'. */
const Feedback = {
  positives: Type.Optional(Type.Array(Example, { maxItems: 16, description: 'Examples marked "more like this"' })),
  negatives: Type.Optional(Type.Array(Example, { maxItems: 16, description: 'Examples marked "not like this"' })),
};

export const RegionSearchBody = Type.Object(
  {
    slideId: Type.Optional(SlideIdField),
    x: Type.Optional(Coordinate),
    y: Type.Optional(Coordinate),
    width: Type.Optional(Size),
    height: Type.Optional(Size),
    image: Type.Optional(ImageField),
    ...SearchOptions,
    ...Feedback,
    regions: Type.Optional(Type.Boolean({ description: 'Whole-region query: cut the box into its indexed tissue tiles and also return region matches (places where several of them land together), with evidence' })),
    boxes: Type.Optional(
      Type.Array(Type.Object({ x: Coordinate, y: Coordinate, width: Size, height: Size }, { additionalProperties: false }), {
        maxItems: 8,
        description: 'With regions: more boxes of the same slide, searched with the first as one query (their tiles keep their arrangement)',
      }),
    ),
  },
  { additionalProperties: false, description: 'A region of an indexed slide ({slideId, x, y, width, height}, level-0 pixels) or an image' },
);
export type RegionSearchBody = Static<typeof RegionSearchBody>;

export const SlideSearchBody = Type.Object(
  {
    slideId: Type.Optional(SlideIdField),
    images: Type.Optional(Type.Array(ImageField, { minItems: 1, maxItems: 64 })),
    slidePath: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'A new case: a slide file (or DICOM folder) under a configured slide root, not indexed; its mosaic is computed now' })),
    dicomwebSeries: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, pattern: '^https?://.+/studies/[0-9.]+/series/[0-9.]+/?$', description: 'A new case: a DICOMweb series URL on a configured DICOMweb server' })),
    slideMpp: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100, description: 'µm/px for a new case whose file states none' })),
    ...SearchOptions,
    ...Feedback,
  },
  { additionalProperties: false },
);
export type SlideSearchBody = Static<typeof SlideSearchBody>;

export const CohortBody = Type.Object(
  {
    slideId: Type.Optional(SlideIdField),
    images: Type.Optional(Type.Array(ImageField, { minItems: 1, maxItems: 64 })),
    ...SearchOptions,
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Slides in the cohort (default 100)' })),
    includeQuery: Type.Optional(Type.Boolean({ description: 'Put the query slide first in the cohort (default false)' })),
  },
  { additionalProperties: false },
);
export type CohortBody = Static<typeof CohortBody>;

export const HardNegativeQuery = Type.Object(
  {
    label: Type.String({ minLength: 1, maxLength: 256 }),
    slideId: Type.Optional(SlideIdField),
    x: Type.Optional(Coordinate),
    y: Type.Optional(Coordinate),
    width: Type.Optional(Size),
    height: Type.Optional(Size),
    image: Type.Optional(ImageField),
  },
  { additionalProperties: false },
);

export const HardNegativesBody = Type.Object(
  {
    queries: Type.Array(HardNegativeQuery, { minItems: 1, maxItems: 10_000 }),
    labelField: Type.Optional(Type.String({ minLength: 1, maxLength: 128, description: 'Metadata field holding the label (default "label")' })),
    k: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    ef: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    filter: Type.Optional(FilterSchema),
  },
  { additionalProperties: false },
);
export type HardNegativesBody = Static<typeof HardNegativesBody>;

export const Hit = Type.Object({
  slideId: Type.String(),
  x: Type.Number(),
  y: Type.Number(),
  width: Type.Number(),
  height: Type.Number(),
  mpp: Type.Number({ description: 'µm per level-0 pixel of the slide' }),
  score: Type.Number({ description: 'Cosine similarity; 1.0 for an identical tile' }),
  shard: Type.Integer(),
  metadata: Metadata,
  imageUrl: Type.String(),
  slideUrl: Type.String(),
});
export type Hit = Static<typeof Hit>;

export const Coverage = Type.Object({
  answered: Type.Integer({ description: 'Shards that answered in time' }),
  total: Type.Integer(),
  missing: Type.Array(Type.Integer(), { description: 'Shards left out of these results' }),
});

export const RegionMatchReply = Type.Object({
  slideId: Type.String(),
  x: Type.Number(),
  y: Type.Number(),
  width: Type.Number(),
  height: Type.Number(),
  score: Type.Number({ description: 'Mean over the query tiles of their best similarity inside the region (0 where none)' }),
  matchedQueries: Type.Integer(),
  metadata: Metadata,
  slideUrl: Type.String(),
  evidence: Type.Array(Type.Object({ ...Hit.properties, queryTile: Type.Integer({ description: 'Index of the query tile (query.tiles) this hit matched' }) })),
});

export const RegionSearchReply = Type.Object({
  query: Type.Record(Type.String(), Type.Unknown()),
  regions: Type.Optional(Type.Array(RegionMatchReply)),
  results: Type.Array(Hit),
  coverage: Coverage,
  tookMs: Type.Number(),
});

export const SlideMatchReply = Type.Object({
  slideId: Type.String(),
  score: Type.Number(),
  matchedQueries: Type.Integer(),
  metadata: Metadata,
  thumbnailUrl: Type.String(),
  evidence: Type.Array(Hit),
});

export const SlideSearchReply = Type.Object({
  query: Type.Record(Type.String(), Type.Unknown()),
  results: Type.Array(SlideMatchReply),
  coverage: Coverage,
  tookMs: Type.Number(),
});

export const CohortReply = Type.Object({
  query: Type.Record(Type.String(), Type.Unknown()),
  slides: Type.Array(Type.Object({ slideId: Type.String(), score: Type.Number(), metadata: Metadata })),
  coverage: Coverage,
});

export const SlideSummaryReply = Type.Object({
  slideId: Type.String(),
  metadata: Metadata,
  width: Type.Integer(),
  height: Type.Integer(),
  mpp: Type.Array(Type.Number()),
  tiles: Type.Integer(),
  shard: Type.Integer(),
  indexedAt: Type.String(),
  thumbnailUrl: Type.String(),
  dziUrl: Type.String(),
});

/** Most slides in one page of GET /v1/slides. */
export const MAX_SLIDE_PAGE = 500;
/** Deepest offset: each shard sends offset + limit slides for it; cursors cost the same at any depth. */
export const MAX_SLIDE_OFFSET = 10_000;

export const SlideListQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'The `nextCursor` of the previous page: the page after it (any depth at the same cost)' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SLIDE_OFFSET, description: `Slides to skip (at most ${MAX_SLIDE_OFFSET}; deeper, follow \`cursor\`)` })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_SLIDE_PAGE, description: `Slides per page (default 50, at most ${MAX_SLIDE_PAGE})` })),
    q: Type.Optional(Type.String({ maxLength: 256 })),
    dataset: Type.Optional(Type.String({ maxLength: 256 })),
    organ: Type.Optional(Type.String({ maxLength: 256 })),
    stain: Type.Optional(Type.String({ maxLength: 256 })),
    species: Type.Optional(Type.String({ maxLength: 256 })),
    diagnosis: Type.Optional(Type.String({ maxLength: 256 })),
  },
  { additionalProperties: false },
);

export const SlideListReply = Type.Object({
  total: Type.Integer(),
  offset: Type.Integer(),
  limit: Type.Integer(),
  slides: Type.Array(SlideSummaryReply),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
  facets: Type.Record(Type.String(), Type.Record(Type.String(), Type.Integer()), { description: 'Per field, value → slides in the caller\'s datasets (not narrowed by the filters)' }),
  coverage: Coverage,
});

export const RegionImageQuery = Type.Object(
  {
    x: Coordinate,
    y: Coordinate,
    width: Size,
    height: Size,
    size: Type.Optional(Type.Integer({ minimum: 8, maximum: 2048, description: 'Longer side of the output, px (default min(longer side, 512))' })),
    level: Type.Optional(Type.Integer({ minimum: 0, maximum: 64, description: 'Read at this pyramid level instead (output = region / downsample, at most 2048 px a side)' })),
    format: Type.Optional(Type.Union([Type.Literal('jpeg'), Type.Literal('png')])),
  },
  { additionalProperties: false },
);

export const SlideParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 600 }) });

/** New cases: slide files under the slide roots that are not indexed (api/routes/cases.ts). */
const CasePath = Type.String({ minLength: 1, maxLength: 600, description: 'A slide file (or DICOM folder) relative to a slide root, "/"-separated, or a DICOMweb series URL on a configured server, as GET /v1/cases lists it' });

export const CaseListReply = Type.Object({
  cases: Type.Array(Type.Object({ path: CasePath, source: Type.Union([Type.Literal('file'), Type.Literal('dicomweb')]), bytes: Type.Optional(Type.Integer({ description: 'File size (files only)' })) })),
  truncated: Type.Boolean({ description: 'More files lie under the roots than one answer lists' }),
  unreachableServers: Type.Integer({ description: 'Configured DICOMweb servers that could not be listed now' }),
});

export const CaseSummaryReply = Type.Object({
  path: CasePath,
  width: Type.Integer(),
  height: Type.Integer(),
  mpp: Type.Array(Type.Number(), { description: 'µm per level-0 pixel, [x, y]; 0 without calibration' }),
  thumbnailUrl: Type.String(),
  dziUrl: Type.String(),
});

export const CaseParams = Type.Object({ path: CasePath });

export const CaseRegionSearchBody = Type.Object(
  { slidePath: CasePath, x: Coordinate, y: Coordinate, width: Size, height: Size, ...SearchOptions, ...Feedback },
  { additionalProperties: false },
);
export type CaseRegionSearchBody = Static<typeof CaseRegionSearchBody>;
