/**
 * The questions the query service answers, as plain typed data: parsed once by the CLI or a route,
 * trusted here. Coordinates are level-0 pixels of the slide they name.
 */
import type { BaseRect } from '../cluster/index.js';
import type { RgbImage } from '../slide/index.js';

/** A rectangle of an indexed slide. */
export interface RegionRef extends BaseRect {
  slideId: string;
}

/** Pixels given by the caller (an uploaded image, a file read by the CLI). */
export interface ImageQuery {
  image: RgbImage;
}

/** A query vector given as is (a unit vector of the index's dimension). */
export interface VectorQuery {
  vector: Float32Array;
}

/** One query tile: a region of an indexed slide, or pixels. */
export type TileQuery = RegionRef | ImageQuery;

/** How a search runs, whatever its query. */
export interface QuerySettings {
  /** Results wanted. */
  k: number;
  /** HNSW ef; absent: each segment's ef measured for the target recall when it was built. */
  ef?: number | undefined;
  /** A filter object as users write it (engine/index/filter.ts). */
  filter?: Record<string, unknown> | undefined;
  exclude?:
    | {
        slides?: string[] | undefined;
        /** Leave out the query's own slide (default true). */
        ownSlide?: boolean | undefined;
        /** Leave out every slide of the query slide's patient (default false). */
        ownPatient?: boolean | undefined;
      }
    | undefined;
}

/** Refine by example: tiles like the positives and unlike the negatives (Rocchio). */
export interface Feedback {
  positives?: TileQuery[] | undefined;
  negatives?: TileQuery[] | undefined;
}

/** A whole-region query: a box of an indexed slide (and further boxes of the same slide). */
export interface WholeRegionQuery extends RegionRef {
  boxes?: BaseRect[] | undefined;
}

/** A new case, not in the index: a slide file or a DICOMweb series URL. */
export interface NewCase {
  locator: string;
  /** Folders a file must lie in and DICOMweb servers a series may come from; absent: anywhere. */
  roots?: string[] | undefined;
  dicomWebServers?: string[] | undefined;
  /** Calibration for a slide without one, µm/px. */
  slideMpp?: number | undefined;
}

/** What slide search and cohorts start from. */
export type SlideQuery = { slideId: string } | { images: RgbImage[] } | { newCase: NewCase };

/** A labelled query of hard-negative mining. */
export interface LabelledTileQuery {
  label: string;
  query: TileQuery;
}

export function isImageQuery(query: TileQuery): query is ImageQuery {
  return 'image' in query;
}

export function hasFeedback(feedback: Feedback | undefined): boolean {
  return (feedback?.positives?.length ?? 0) + (feedback?.negatives?.length ?? 0) > 0;
}
