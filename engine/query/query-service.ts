/**
 * QueryService: the one place that answers every kind of question asked of an index (region by
 * reference, pixels or image; whole regions; slides; cohorts; hard negatives; refine by example),
 * over a Cluster and an Embedder. The CLI and every API route call it, so the same question gets
 * the same answer whichever way it is asked. It returns engine objects (TileHit, SlideMatch,
 * RegionMatch); callers format them. It knows nothing of HTTP, keys or flags: the caller passes
 * the datasets it may see, and throws its own error when there is no model to embed with.
 */
import type { BaseRect, Cluster, ClusterSearchResult, Coverage, ScopedSearch, SlideSummary } from '../cluster/index.js';
import type { Embedder } from '../embed/index.js';
import { TesseraError } from '../errors.js';
import { parseFilter, type QueryExclusions, type TileHit } from '../index/index.js';
import { newCaseMosaic, rankSlides, refineQuery, type NewCaseMosaic, type QueryTile, type RegionMatch, type SlideMatch } from '../search/index.js';
import { openSlide, type RgbImage } from '../slide/index.js';
import { hasFeedback, isImageQuery, type Feedback, type LabelledTileQuery, type NewCase, type QuerySettings, type RegionRef, type SlideQuery, type TileQuery, type VectorQuery, type WholeRegionQuery } from './questions.js';
import { wholeRegionMatches, wholeRegionTiles } from './whole-region.js';

export interface QueryServiceOptions {
  cluster: Cluster;
  /**
   * The embedder for pixels, asked for only when a question needs one; throws (the caller's own
   * error) on a node without a model.
   */
  embedder: () => Embedder;
  /** Told how long each embedding took, in seconds. */
  onEmbed?: (seconds: number) => void;
  /** Told of each fan-out: time per shard and coverage. */
  onSearch?: (result: Pick<ClusterSearchResult, 'shardMs' | 'coverage'>) => void;
}

/** Largest region (level-0 px per side) a query may name: bigger boxes belong to slide search. */
export const MAX_REGION_SIDE = 16384;
/** Tiles each query tile of a slide search brings to the vote. */
const SLIDE_TILES_PER_QUERY = 50;
/** Evidence tiles shown per matching slide. */
const EVIDENCE_PER_SLIDE = 3;

export interface RegionAnswer {
  hits: TileHit[];
  coverage: Coverage;
  /** Whether the query was embedded now (false: a stored vector). */
  embedded: boolean;
  /** The indexed slide the query came from, if any. */
  querySlide?: SlideSummary | undefined;
}

export interface WholeRegionAnswer {
  /** The query slide's indexed tiles inside the boxes, level-0 px (their stored vectors were the queries). */
  tiles: Array<QueryTile & BaseRect>;
  regions: RegionMatch[];
  /** The k best tiles over every query tile, each once. */
  hits: TileHit[];
  coverage: Coverage;
}

/** What a slide search started from. */
export type SlideQueryInfo = { slideId: string; mosaicTiles: number } | { images: number } | { newCase: Omit<NewCaseMosaic, 'vectors'> & { mosaicTiles: number } };

export interface SlideAnswer {
  matches: SlideMatch[];
  coverage: Coverage;
  query: SlideQueryInfo;
  querySlide?: SlideSummary | undefined;
}

export interface HardNegativesAnswer {
  /** Per query, in input order: its k nearest tiles with another label. */
  hits: TileHit[][];
  /** The worst coverage of the fan-outs (one per label). */
  coverage: Coverage;
}

export class QueryService {
  constructor(private readonly options: QueryServiceOptions) {}

  get cluster(): Cluster {
    return this.options.cluster;
  }

  /** Embeds pixels with the index's model, timing it. @throws the caller's error when there is no model */
  async embed(images: RgbImage[]): Promise<Float32Array[]> {
    if (images.length === 0) return [];
    const embedder = this.options.embedder();
    const started = performance.now();
    const vectors = await embedder.embed(images);
    this.options.onEmbed?.((performance.now() - started) / 1000);
    return vectors;
  }

  /**
   * The vector of a region of an indexed slide: its stored vector when the rectangle is exactly an
   * indexed tile (no embedding), else the region read at the index's resolution and embedded.
   * @throws TesseraError SLIDE_NOT_FOUND (also for slides outside `datasets`), REGION_TOO_LARGE, REGION_OUT_OF_BOUNDS
   */
  async regionVector(ref: RegionRef, datasets: string[] | null): Promise<{ vector: Float32Array; embedded: boolean; slide: SlideSummary }> {
    checkRegionSize(ref);
    const rect = { x: ref.x, y: ref.y, width: ref.width, height: ref.height };
    // One call: on a router, to the node holding the slide.
    const found = await this.cluster.slideVectors(ref.slideId, { rect }, datasets);
    if (!found) throw slideNotFound(ref.slideId);
    const { slide, vectors: stored } = found;
    if (stored?.[0]) return { vector: stored[0], embedded: false, slide };
    return { vector: await this.embedRegion(ref, slide, datasets), embedded: true, slide };
  }

  /** A region of an indexed slide read at the index's resolution and embedded. @throws TesseraError REGION_OUT_OF_BOUNDS */
  private async embedRegion(ref: RegionRef, slide: SlideSummary, datasets: string[] | null): Promise<Float32Array> {
    if (ref.x < 0 || ref.y < 0 || ref.x + ref.width > slide.width || ref.y + ref.height > slide.height) {
      throw new TesseraError('REGION_OUT_OF_BOUNDS', `region ${ref.x},${ref.y} ${ref.width}×${ref.height} lies outside slide "${ref.slideId}" (${slide.width}×${slide.height})`);
    }
    const image = await this.cluster.readRegion(ref.slideId, { x: ref.x, y: ref.y, width: ref.width, height: ref.height }, datasets);
    const [vector] = await this.embed([image]);
    return vector as Float32Array;
  }

  /** The vectors of query tiles, in order: regions resolved (stored or embedded), images embedded in one batch. */
  async tileVectors(queries: TileQuery[], datasets: string[] | null): Promise<Float32Array[]> {
    const images = queries.flatMap((query) => (isImageQuery(query) ? [query.image] : []));
    const [embedded, regions] = await Promise.all([
      this.embed(images),
      Promise.all(queries.map((query) => (isImageQuery(query) ? undefined : this.regionVector(query, datasets).then((resolved) => resolved.vector)))),
    ]);
    let next = 0;
    return regions.map((vector) => vector ?? (embedded[next++] as Float32Array));
  }

  /** Each query vector refined by the examples (Rocchio); the queries as given when there are none. */
  async refine(queries: Float32Array[], feedback: Feedback | undefined, datasets: string[] | null): Promise<Float32Array[]> {
    if (!hasFeedback(feedback)) return queries;
    const [positives, negatives] = await Promise.all([this.tileVectors(feedback?.positives ?? [], datasets), this.tileVectors(feedback?.negatives ?? [], datasets)]);
    return queries.map((query) => refineQuery(query, positives, negatives));
  }

  /**
   * Similar regions to one query tile. On a single node a tile reference is resolved and searched
   * in one hand-off to a search thread; on a router, in one call to its slide's node and one to
   * each other node (Cluster.searchFromStoredTile).
   * @throws TesseraError SLIDE_NOT_FOUND, REGION_*, INVALID_ARGUMENT (a bad filter)
   */
  async searchRegion(query: TileQuery, settings: QuerySettings, datasets: string[] | null, feedback?: Feedback): Promise<RegionAnswer> {
    let vector: Float32Array;
    let embedded = true;
    let querySlide: SlideSummary | undefined;
    if (isImageQuery(query)) {
      [vector] = (await this.embed([query.image])) as [Float32Array];
    } else {
      const { slideId, x, y, width, height } = query;
      querySlide = this.cluster.searchesStoredTilesDirectly && !hasFeedback(feedback) ? await this.cluster.slide(slideId, datasets) : undefined;
      const direct = querySlide && (await this.cluster.searchStoredTile(slideId, { x, y, width, height }, scopedSearch(settings, datasets, querySlide)));
      if (direct) {
        this.options.onSearch?.(direct);
        return { hits: direct.hits[0] ?? [], coverage: direct.coverage, embedded: false, querySlide };
      }
      if (this.cluster.groups.length > 1 && !hasFeedback(feedback) && !settings.exclude?.ownPatient) {
        // Several nodes: the slide's node resolves and searches in one round trip, then the others
        // search its vector. The own-slide exclusion needs only the id (the own-patient one needs
        // the record first, so that query takes the path below).
        checkRegionSize(query);
        const request = scopedSearch(settings, datasets, { slideId, metadata: {} });
        const found = await this.cluster.searchFromStoredTile(slideId, { x, y, width, height }, request);
        if (!found) throw slideNotFound(slideId);
        if (found.result) {
          this.options.onSearch?.(found.result);
          return { hits: found.result.hits[0] ?? [], coverage: found.result.coverage, embedded: false, querySlide: found.slide };
        }
        ({ slide: querySlide } = found);
        vector = await this.embedRegion(query, found.slide, datasets);
      } else {
        const resolved = await this.regionVector(query, datasets);
        ({ vector, embedded, slide: querySlide } = resolved);
      }
    }
    [vector] = (await this.refine([vector], feedback, datasets)) as [Float32Array];
    const result = await this.search([vector], scopedSearch(settings, datasets, querySlide));
    return { hits: result.hits[0] ?? [], coverage: result.coverage, embedded, querySlide };
  }

  /**
   * A whole-region query: the box is cut into the query slide's indexed tissue tiles (their stored
   * vectors: nothing is read or embedded), each searches, and the hits are grouped into places on
   * other slides where several query tiles land in the same arrangement.
   * @throws TesseraError SLIDE_NOT_FOUND, REGION_TOO_LARGE (more than 256 tiles), INVALID_ARGUMENT (no indexed tissue tile in the box)
   */
  async searchWholeRegion(query: WholeRegionQuery, settings: QuerySettings, datasets: string[] | null, feedback?: Feedback): Promise<WholeRegionAnswer> {
    const slide = await this.cluster.slide(query.slideId, datasets);
    if (!slide) throw slideNotFound(query.slideId);
    const { box, tiles, vectors } = await wholeRegionTiles(this.cluster, slide, query, datasets);
    const refined = await this.refine(vectors, feedback, datasets);
    const result = await this.search(refined, scopedSearch({ ...settings, k: Math.max(settings.k, SLIDE_TILES_PER_QUERY) }, datasets, slide));
    const { regions, hits } = wholeRegionMatches(box, slide, tiles, result.hits, settings.k);
    return { tiles, regions, hits, coverage: result.coverage };
  }

  /**
   * Slides like the query (an indexed slide's mosaic, a set of images, or a new case's mosaic
   * computed now), ranked by the mean over query tiles of their best match, with evidence.
   * @throws TesseraError SLIDE_NOT_FOUND, SLIDE_ACCESS_DENIED (a new case outside the roots), MPP_MISSING, SLIDE_*
   */
  async searchSlides(query: SlideQuery, settings: QuerySettings, datasets: string[] | null, feedback?: Feedback): Promise<SlideAnswer> {
    const { vectors, info, querySlide } = await this.slideQueryVectors(query, datasets);
    const refined = await this.refine(vectors, feedback, datasets);
    const result = await this.search(refined, scopedSearch({ ...settings, k: SLIDE_TILES_PER_QUERY }, datasets, querySlide));
    return { matches: rankSlides(result.hits, { k: settings.k, evidencePerSlide: EVIDENCE_PER_SLIDE }), coverage: result.coverage, query: info, querySlide };
  }

  /**
   * A cohort: the k slides most like the query that pass the filter, best first. Each query tile
   * brings enough tiles that k distinct slides can appear.
   * @throws TesseraError SLIDE_NOT_FOUND, INVALID_ARGUMENT
   */
  async cohort(query: SlideQuery, settings: QuerySettings, datasets: string[] | null): Promise<SlideAnswer> {
    const { vectors, info, querySlide } = await this.slideQueryVectors(query, datasets);
    const result = await this.search(vectors, scopedSearch({ ...settings, k: Math.min(1000, Math.max(50, settings.k * 5)) }, datasets, querySlide));
    return { matches: rankSlides(result.hits, { k: settings.k }), coverage: result.coverage, query: info, querySlide };
  }

  /**
   * For each labelled query, its k nearest tiles whose `labelField` differs from its label.
   * Queries sharing a label share a filter, so they go to the shards as one batch.
   * @throws TesseraError INVALID_ARGUMENT (the filter names the label field), SLIDE_NOT_FOUND, REGION_*
   */
  async hardNegatives(queries: LabelledTileQuery[], settings: Omit<QuerySettings, 'exclude'> & { labelField?: string | undefined }, datasets: string[] | null): Promise<HardNegativesAnswer> {
    const labelField = settings.labelField ?? 'label';
    if (settings.filter && labelField in settings.filter) throw new TesseraError('INVALID_ARGUMENT', `the filter must not name the label field "${labelField}": it is set per query`);
    const vectors = await this.tileVectors(queries.map((labelled) => labelled.query), datasets);
    const byLabel = new Map<string, number[]>();
    queries.forEach((labelled, i) => byLabel.set(labelled.label, [...(byLabel.get(labelled.label) ?? []), i]));
    const hits: TileHit[][] = queries.map(() => []);
    let coverage: Coverage | undefined;
    for (const [label, members] of byLabel) {
      const filter = { ...(settings.filter ?? {}), [labelField]: { not: label } };
      const result = await this.search(members.map((i) => vectors[i] as Float32Array), scopedSearch({ k: settings.k, ef: settings.ef, filter }, datasets));
      coverage = worstCoverage(coverage, result.coverage);
      members.forEach((i, j) => {
        hits[i] = result.hits[j] ?? [];
      });
    }
    return { hits, coverage: coverage ?? { answered: 0, total: 0, missing: [] } };
  }

  /**
   * Ground truth for recall measurements: each query's exact nearest tiles, by a scan of every
   * live vector of every shard, under the scope, filter and exclusions the served search would
   * use (a region's own slide left out unless `settings.exclude.ownSlide` is false, its patient on
   * request). One scan serves every query.
   * @throws TesseraError SLIDE_NOT_FOUND, REGION_*, INVALID_ARGUMENT
   */
  async exactSearch(queries: Array<TileQuery | VectorQuery>, settings: QuerySettings, datasets: string[] | null): Promise<{ hits: TileHit[][]; coverage: Coverage }> {
    const vectors: Float32Array[] = [];
    const perQuery: QueryExclusions[] = [];
    // One after another: a region that needs the model embeds one image at a time either way.
    for (const query of queries) {
      if ('vector' in query) {
        vectors.push(query.vector);
        perQuery.push({});
      } else if (isImageQuery(query)) {
        vectors.push((await this.embed([query.image]))[0] as Float32Array);
        perQuery.push({});
      } else {
        const resolved = await this.regionVector(query, datasets);
        vectors.push(resolved.vector);
        const patient = resolved.slide.metadata.patient_id;
        perQuery.push({
          ...((settings.exclude?.ownSlide ?? true) ? { slides: [resolved.slide.slideId] } : {}),
          ...(settings.exclude?.ownPatient && patient ? { patients: [patient] } : {}),
        });
      }
    }
    const shared = scopedSearch({ ...settings, exclude: { slides: settings.exclude?.slides, ownSlide: false } }, datasets);
    const result = await this.cluster.exactSearch(vectors, shared, perQuery);
    return { hits: result.hits, coverage: result.coverage };
  }

  private async search(queries: Float32Array[], request: ScopedSearch): Promise<ClusterSearchResult> {
    const result = await this.cluster.search(queries, request);
    this.options.onSearch?.(result);
    return result;
  }

  /** The query vectors of a slide search or cohort. */
  private async slideQueryVectors(query: SlideQuery, datasets: string[] | null): Promise<{ vectors: Float32Array[]; info: SlideQueryInfo; querySlide?: SlideSummary }> {
    if ('slideId' in query) {
      const found = await this.cluster.slideVectors(query.slideId, { mosaic: true }, datasets);
      if (!found?.vectors) throw slideNotFound(query.slideId);
      return { vectors: found.vectors, info: { slideId: query.slideId, mosaicTiles: found.vectors.length }, querySlide: found.slide };
    }
    if ('images' in query) return { vectors: await this.embed(query.images), info: { images: query.images.length } };
    const { vectors, ...newCase } = await this.newCaseMosaic(query.newCase);
    return { vectors, info: { newCase: { ...newCase, mosaicTiles: vectors.length } } };
  }

  /** A new case's mosaic, computed now with the index's model and tile grid. */
  private async newCaseMosaic(newCase: NewCase): Promise<NewCaseMosaic> {
    const embedder = this.options.embedder();
    const slide = await openSlide(newCase.locator, {
      ...(newCase.roots ? { roots: newCase.roots } : {}),
      ...(newCase.dicomWebServers ? { dicomWebServers: newCase.dicomWebServers } : {}),
      access: 'sequential',
    });
    try {
      const name = newCase.locator.split('/').pop() ?? 'slide';
      return await newCaseMosaic(slide, name, embedder, { tile: this.cluster.index.tile, ...(newCase.slideMpp ? { slideMpp: [newCase.slideMpp, newCase.slideMpp] as [number, number] } : {}) });
    } finally {
      slide.close();
    }
  }
}

/**
 * The search shards run for a caller: the filter (checked here, before any fan-out), exclusions
 * of the query slide and its patient, and the caller's datasets.
 * @throws TesseraError INVALID_ARGUMENT for a bad filter
 */
export function scopedSearch(settings: QuerySettings, datasets: string[] | null, querySlide?: Pick<SlideSummary, 'slideId' | 'metadata'>): ScopedSearch {
  parseFilter(settings.filter);
  const excludeSlides = [...(settings.exclude?.slides ?? [])];
  if (querySlide && (settings.exclude?.ownSlide ?? true)) excludeSlides.push(querySlide.slideId);
  const patient = querySlide?.metadata.patient_id;
  const excludePatients = querySlide && settings.exclude?.ownPatient && patient ? [patient] : [];
  return {
    k: settings.k,
    ...(settings.ef === undefined ? {} : { ef: settings.ef }),
    ...(settings.filter ? { filter: settings.filter } : {}),
    ...(excludeSlides.length ? { excludeSlides } : {}),
    ...(excludePatients.length ? { excludePatients } : {}),
    datasets,
  };
}

/** @throws TesseraError REGION_TOO_LARGE for a query region larger than MAX_REGION_SIDE a side */
function checkRegionSize(ref: RegionRef): void {
  if (ref.width > MAX_REGION_SIDE || ref.height > MAX_REGION_SIDE) {
    throw new TesseraError('REGION_TOO_LARGE', `a query region is at most ${MAX_REGION_SIDE} px a side at level 0, got ${ref.width}×${ref.height}; use slide search for whole slides`);
  }
}

export function slideNotFound(slideId: string): TesseraError {
  return new TesseraError('SLIDE_NOT_FOUND', `slide "${slideId}" is not in this index`);
}

function worstCoverage(a: Coverage | undefined, b: Coverage): Coverage {
  return !a || b.answered < a.answered ? b : a;
}
