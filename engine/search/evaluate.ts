/**
 * Leave-one-out retrieval evaluation of an index, as validation studies of search engines do it
 * (Lahr et al. 2024, Shang et al. 2023): each slide, or each patient, is the query in turn and its
 * own slides are excluded from its results; a result is right when it carries the query's label.
 *
 * Region search: every tile of the query slides searches with its stored vector (no embedding, so
 * the figures measure the index, not the decoder). Slide search: every query slide searches with
 * its mosaic through searchSlides, as `tessera search --mode slide` does. It reads the index and
 * never writes it.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TesseraError } from '../errors.js';
import type { IndexStore } from '../index/index.js';
import { searchSlides } from './slide-search.js';

export interface EvaluationOptions {
  /** The metadata field holding the label (a slide's metadata, else its first tile's). */
  labelField: string;
  /** What is left out of its own results: the query slide, or every slide of its patient. */
  by: 'slide' | 'patient';
  /** The slide metadata field naming the patient (default `patient_id`). A slide without it is its own patient. */
  patientField?: string;
  /** Results per query (default 5; at least 3). Acc@k, majority vote@k and mAP@k use all k. */
  k?: number;
  /** hnswlib ef for every search (default: each segment's tuned ef). */
  ef?: number;
  /** Which searches to evaluate (default both). */
  modes?: ReadonlyArray<'region' | 'slide'>;
}

/** Figures over a set of queries; every value is a fraction from 0 to 1. */
export interface RetrievalFigures {
  queries: number;
  /** The first result has the query's label. */
  acc1: number;
  /** One of the first 3 results has it. */
  acc3: number;
  /** One of the k results has it. */
  accK: number;
  /** The most frequent label of the k results (ties: the better-ranked label) is the query's. */
  majorityK: number;
  /** Mean over queries of average precision at k (0 for a query with no right result). */
  mapK: number;
  /**
   * Overall: macro-F1 of the majority-vote prediction (the mean of the per-label F1s).
   * Per label: that label's F1.
   */
  f1: number;
}

export interface ModeEvaluation {
  overall: RetrievalFigures;
  /** By label value, sorted by label. */
  perLabel: Record<string, RetrievalFigures>;
  /** Median wall time of one search (ms). */
  medianSearchMs: number;
}

export interface Evaluation {
  labelField: string;
  by: 'slide' | 'patient';
  k: number;
  /** Slides in the index; those without a label are candidates only, never queries. */
  slides: number;
  unlabelledSlides: number;
  /** Query units (slides, or patients). */
  units: number;
  tiles: number;
  region?: ModeEvaluation;
  slide?: ModeEvaluation;
  /** Bytes the index occupies on disk (allocated blocks, run reports excluded), and per slide. */
  indexBytes: number;
  bytesPerSlide: number;
  seconds: number;
}

interface SlideEntry {
  slideId: string;
  label: string | undefined;
  unit: string;
  labels: number[];
  mosaic: number[];
  shard: IndexStore['shards'][number];
}

/**
 * Runs the leave-one-out evaluation over every slide of the open shards.
 * @throws TesseraError INVALID_ARGUMENT when k is out of range or no slide carries the label field
 */
export function evaluateIndex(store: IndexStore, options: EvaluationOptions): Evaluation {
  const started = performance.now();
  const k = options.k ?? 5;
  if (!Number.isInteger(k) || k < 3 || k > 100) throw new TesseraError('INVALID_ARGUMENT', `k must be an integer from 3 to 100, got ${k}`);
  const patientField = options.patientField ?? 'patient_id';
  const modes = new Set(options.modes ?? ['region', 'slide']);
  const slides = catalogueSlides(store, options.labelField, options.by, patientField);
  const labelOf = new Map(slides.map((slide) => [slide.slideId, slide.label]));
  const units = new Map<string, SlideEntry[]>();
  for (const slide of slides) units.set(slide.unit, [...(units.get(slide.unit) ?? []), slide]);
  const labelled = slides.filter((slide) => slide.label !== undefined);
  if (labelled.length === 0) throw new TesseraError('INVALID_ARGUMENT', `no slide or tile of ${store.dir} has the metadata field "${options.labelField}"`);

  const regionOutcomes: Outcome[] = [];
  const slideOutcomes: Outcome[] = [];
  const regionMs: number[] = [];
  const slideMs: number[] = [];
  for (const members of units.values()) {
    const excludeSlides = new Set(members.map((member) => member.slideId));
    for (const slide of members) {
      if (slide.label === undefined) continue;
      if (modes.has('region')) {
        for (const label of slide.labels) {
          const query = slide.shard.vector(label);
          const before = performance.now();
          const hits = store.search(query, { k, ef: options.ef, excludeSlides });
          regionMs.push(performance.now() - before);
          regionOutcomes.push(outcomeOf(slide.label, hits.map((hit) => labelOf.get(hit.tile.slideId) ?? hit.tile.metadata?.[options.labelField]), k));
        }
      }
      if (modes.has('slide') && slide.labels.length > 0) {
        // As `tessera search --mode slide`: the mosaic, or the first tiles of a slide without one.
        const queries = (slide.mosaic.length > 0 ? slide.mosaic : slide.labels.slice(0, 16)).map((label) => slide.shard.vector(label));
        const before = performance.now();
        const matches = searchSlides(store, queries, { k, ef: options.ef, excludeSlides });
        slideMs.push(performance.now() - before);
        slideOutcomes.push(outcomeOf(slide.label, matches.map((match) => labelOf.get(match.slideId)), k));
      }
    }
  }
  const indexBytes = allocatedBytes(store.dir);
  return {
    labelField: options.labelField,
    by: options.by,
    k,
    slides: slides.length,
    unlabelledSlides: slides.length - labelled.length,
    units: new Set(labelled.map((slide) => slide.unit)).size,
    tiles: slides.reduce((sum, slide) => sum + slide.labels.length, 0),
    ...(modes.has('region') ? { region: summarise(regionOutcomes, regionMs) } : {}),
    ...(modes.has('slide') ? { slide: summarise(slideOutcomes, slideMs) } : {}),
    indexBytes,
    bytesPerSlide: slides.length > 0 ? indexBytes / slides.length : 0,
    seconds: (performance.now() - started) / 1000,
  };
}

function catalogueSlides(store: IndexStore, labelField: string, by: 'slide' | 'patient', patientField: string): SlideEntry[] {
  const entries: SlideEntry[] = [];
  for (const shard of store.shards) {
    for (const slideId of shard.slideIds()) {
      const record = shard.slide(slideId);
      if (!record) continue;
      const first = record.labels[0];
      // Tile datasets keep labels on the tile; slide metadata wins where both have one.
      const label = record.metadata[labelField] ?? (first === undefined ? undefined : shard.tile(first)?.metadata?.[labelField]);
      const patient = record.metadata[patientField];
      entries.push({
        slideId,
        label: label === '' ? undefined : label,
        unit: by === 'patient' && patient ? `patient:${patient}` : `slide:${slideId}`,
        labels: record.labels,
        mosaic: record.mosaic,
        shard,
      });
    }
  }
  return entries.sort((a, b) => (a.slideId < b.slideId ? -1 : a.slideId > b.slideId ? 1 : 0));
}

interface Outcome {
  truth: string;
  /** The majority-vote prediction, undefined when there were no results. */
  predicted: string | undefined;
  hit1: boolean;
  hit3: boolean;
  hitK: boolean;
  averagePrecision: number;
}

/** Scores one query's ranked result labels (undefined: a result without a label, never right). */
function outcomeOf(truth: string, ranked: Array<string | undefined>, k: number): Outcome {
  const top = ranked.slice(0, k);
  const right = top.map((label) => label === truth);
  let relevant = 0;
  let precisionSum = 0;
  right.forEach((isRight, rank) => {
    if (!isRight) return;
    relevant++;
    precisionSum += relevant / (rank + 1);
  });
  const votes = new Map<string, number>();
  for (const label of top) if (label !== undefined) votes.set(label, (votes.get(label) ?? 0) + 1);
  // Map keeps first-seen order, so among tied counts the best-ranked label wins.
  let predicted: string | undefined;
  let most = 0;
  for (const [label, count] of votes) {
    if (count > most) {
      most = count;
      predicted = label;
    }
  }
  return {
    truth,
    predicted,
    hit1: right[0] === true,
    hit3: right.slice(0, 3).includes(true),
    hitK: right.includes(true),
    averagePrecision: relevant > 0 ? precisionSum / relevant : 0,
  };
}

function summarise(outcomes: Outcome[], searchMs: number[]): ModeEvaluation {
  const labels = [...new Set(outcomes.map((outcome) => outcome.truth))].sort();
  const f1Of = (label: string): number => {
    const truePositives = outcomes.filter((outcome) => outcome.truth === label && outcome.predicted === label).length;
    const predicted = outcomes.filter((outcome) => outcome.predicted === label).length;
    const actual = outcomes.filter((outcome) => outcome.truth === label).length;
    return truePositives === 0 ? 0 : (2 * truePositives) / (predicted + actual);
  };
  const f1s = new Map(labels.map((label) => [label, f1Of(label)]));
  const perLabel: Record<string, RetrievalFigures> = {};
  for (const label of labels) perLabel[label] = figuresOf(outcomes.filter((outcome) => outcome.truth === label), f1s.get(label) ?? 0);
  const macroF1 = labels.length > 0 ? [...f1s.values()].reduce((sum, f1) => sum + f1, 0) / labels.length : 0;
  return { overall: figuresOf(outcomes, macroF1), perLabel, medianSearchMs: median(searchMs) };
}

function figuresOf(outcomes: Outcome[], f1: number): RetrievalFigures {
  const share = (count: number) => (outcomes.length > 0 ? count / outcomes.length : 0);
  return {
    queries: outcomes.length,
    acc1: share(outcomes.filter((outcome) => outcome.hit1).length),
    acc3: share(outcomes.filter((outcome) => outcome.hit3).length),
    accK: share(outcomes.filter((outcome) => outcome.hitK).length),
    majorityK: share(outcomes.filter((outcome) => outcome.predicted === outcome.truth).length),
    mapK: share(outcomes.reduce((sum, outcome) => sum + outcome.averagePrecision, 0)),
    f1,
  };
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** Allocated bytes of every file under the index folder, its run reports aside (LMDB files are sparse). */
function allocatedBytes(dir: string): number {
  let total = 0;
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!(folder === dir && entry.name === 'reports')) walk(path);
      } else if (entry.isFile()) {
        const stats = statSync(path);
        total += Math.min(stats.size, stats.blocks * 512);
      }
    }
  };
  walk(dir);
  return total;
}
