/** POST /v1/search/region and /v1/search/slide: similar regions and similar slides. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isAbsolute } from 'node:path';
import { newCaseMosaic, openSlide, rankSlides } from '../../engine/index.js';
import { resolveCasePath } from '../case-files.js';
import { ApiError } from '../errors.js';
import { isMultipartRequest, readMultipartQuery } from '../multipart.js';
import { bytesFromBase64, decodeQueryImage } from '../query-images.js';
import { ErrorBody, RegionSearchBody, RegionSearchReply, SlideSearchBody, SlideSearchReply } from '../schemas.js';
import { embedImages, mosaicVectors, notFound, regionVector, type Services } from '../services.js';
import { hasFeedback, refineByExamples } from '../refine-examples.js';
import { searchWholeRegion } from './region-query.js';
import { accessOf, hitJson, observeSearch, scopedSearch, slideUrl } from './shared.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody, 429: ErrorBody, 502: ErrorBody, 503: ErrorBody };

export async function searchRoutes(app: FastifyInstance, services: Services): Promise<void> {
  app.post(
    '/v1/search/region',
    {
      schema: {
        summary: 'Similar regions',
        description: 'Query by a region of an indexed slide (a rectangle equal to an indexed tile needs no embedding) or by an uploaded image (JSON base64, or multipart with a file field "image").',
        tags: ['search'],
        consumes: ['application/json', 'multipart/form-data'],
        body: { content: { 'application/json': { schema: RegionSearchBody } } },
        response: { 200: RegionSearchReply, ...errors },
      },
    },
    async (request) => {
      const started = performance.now();
      const access = accessOf(request);
      const body = await regionBody(request);
      const k = body.k ?? 10;
      let vector: Float32Array;
      let query: Record<string, unknown>;
      let querySlide;
      if (body.imageBytes) {
        if (body.slideId !== undefined) throw new ApiError('BAD_REQUEST', 'give either an image or a slide region, not both');
        if (body.regions || body.boxes) throw new ApiError('BAD_REQUEST', 'a whole-region query (regions: true) takes a box of an indexed slide, not an image');
        const image = await decodeQueryImage(body.imageBytes, services.config.limits.uploadPixels);
        query = { image: { width: image.width, height: image.height } };
        vector = (await embedImages(services, [image]))[0] as Float32Array;
      } else {
        const { slideId, x, y, width, height } = body;
        if (slideId === undefined || x === undefined || y === undefined || width === undefined || height === undefined) {
          throw new ApiError('BAD_REQUEST', 'give an image, or slideId with x, y, width and height (level-0 pixels)');
        }
        query = { slideId, x, y, width, height, embedded: false };
        if (body.boxes && !body.regions) throw new ApiError('BAD_REQUEST', 'boxes go with regions: true (a whole-region query)');
        if (body.regions) {
          const { tiles, ...found } = await searchWholeRegion(services, access, { ...body, slideId, x, y, width, height }, k);
          return { query: { ...query, tiles, ...(hasFeedback(body) ? { refined: { positives: body.positives?.length ?? 0, negatives: body.negatives?.length ?? 0 } } : {}) }, ...found, tookMs: round(performance.now() - started) };
        }
        // On a single node, a tile reference is resolved and searched in one hand-off to a search thread.
        querySlide = services.cluster.searchesStoredTilesDirectly && !hasFeedback(body) ? await services.cluster.slide(slideId, access.datasets) : undefined;
        const direct = querySlide && (await services.cluster.searchStoredTile(slideId, { x, y, width, height }, scopedSearch(access, { ...body, k }, querySlide)));
        if (direct) {
          observeSearch(services, direct);
          return { query, results: (direct.hits[0] ?? []).map(hitJson), coverage: direct.coverage, tookMs: round(performance.now() - started) };
        }
        const resolved = await regionVector(services, access, { slideId, x, y, width, height });
        querySlide = resolved.slide;
        vector = resolved.vector;
        query.embedded = resolved.embedded;
      }
      if (hasFeedback(body)) {
        [vector] = (await refineByExamples(services, access, [vector], body)) as [Float32Array];
        query.refined = { positives: body.positives?.length ?? 0, negatives: body.negatives?.length ?? 0 };
      }
      const result = await services.cluster.search([vector], scopedSearch(access, { ...body, k }, querySlide));
      observeSearch(services, result);
      return { query, results: (result.hits[0] ?? []).map(hitJson), coverage: result.coverage, tookMs: round(performance.now() - started) };
    },
  );

  app.post<{ Body: SlideSearchBody }>(
    '/v1/search/slide',
    {
      schema: {
        summary: 'Similar slides',
        description: "Query by an indexed slide (its mosaic of representative tiles), by a set of region images, or by a new case not in the index (slidePath under a slide root, or dicomwebSeries on a configured DICOMweb server: its mosaic is computed now, timed in query.ms); slides rank by the mean over query tiles of their best match, with the matching regions as evidence.",
        tags: ['search'],
        body: SlideSearchBody,
        response: { 200: SlideSearchReply, ...errors },
      },
    },
    async (request) => {
      const started = performance.now();
      const access = accessOf(request);
      const body = request.body;
      const { vectors: given, query, querySlide } = body.slidePath !== undefined || body.dicomwebSeries !== undefined ? await newCaseQuery(services, body) : await slideQuery(services, request, body);
      const vectors = await refineByExamples(services, access, given, body);
      if (hasFeedback(body)) Object.assign(query, { refined: { positives: body.positives?.length ?? 0, negatives: body.negatives?.length ?? 0 } });
      const result = await services.cluster.search(vectors, { ...scopedSearch(access, { ...body, k: 50 }, querySlide) });
      observeSearch(services, result);
      const slides = rankSlides(result.hits, { k: body.k ?? 10, evidencePerSlide: 3 });
      return {
        query,
        results: slides.map((match) => ({
          slideId: match.slideId,
          score: Number(match.score.toFixed(6)),
          matchedQueries: match.matchedQueries,
          metadata: match.metadata,
          thumbnailUrl: `${slideUrl(match.slideId)}/thumbnail`,
          evidence: match.evidence.map(hitJson),
        })),
        coverage: result.coverage,
        tookMs: round(performance.now() - started),
      };
    },
  );
}

/** The query vectors of a slide search or cohort: an indexed slide's mosaic, or embedded images. */
export async function slideQuery(services: Services, request: FastifyRequest, body: { slideId?: string | undefined; images?: string[] | undefined }) {
  const access = accessOf(request);
  if ((body.slideId === undefined) === (body.images === undefined)) throw new ApiError('BAD_REQUEST', 'give either slideId or images');
  if (body.slideId !== undefined) {
    const [querySlide, vectors] = await Promise.all([services.cluster.slide(body.slideId, access.datasets), mosaicVectors(services, access, body.slideId)]);
    if (!querySlide) throw notFound(body.slideId);
    return { vectors, query: { slideId: body.slideId, mosaicTiles: vectors.length }, querySlide };
  }
  const images = await Promise.all((body.images ?? []).map((text, i) => decodeQueryImage(bytesFromBase64(text, `images[${i}]`), services.config.limits.uploadPixels)));
  const vectors = await embedImages(services, images);
  return { vectors, query: { images: images.length }, querySlide: undefined };
}

/**
 * A new case's mosaic, computed now with the index's model and tile grid. Files must lie under the
 * slide roots and series on a configured DICOMweb server (SLIDE_ACCESS_DENIED otherwise).
 */
async function newCaseQuery(services: Services, body: SlideSearchBody) {
  const given = [body.slideId, body.images, body.slidePath, body.dicomwebSeries].filter((value) => value !== undefined).length;
  if (given !== 1) throw new ApiError('BAD_REQUEST', 'give one of slideId, images, slidePath or dicomwebSeries');
  if (!services.embedder) throw new ApiError('NOT_READY', 'this node has no model loaded: send new cases to a router or an all-in-one server');
  const roots = services.config.slideRoots;
  // A relative path names a case as GET /v1/cases lists it: under the first root that holds it.
  const locator = body.dicomwebSeries ?? (isAbsolute(body.slidePath as string) ? (body.slidePath as string) : resolveCasePath(roots, body.slidePath as string));
  const slide = await openSlide(locator, { roots, dicomWebServers: services.config.dicomWebServers, access: 'sequential' });
  try {
    const name = locator.split('/').pop() ?? 'slide';
    const mosaic = await newCaseMosaic(slide, name, services.embedder, { tile: services.cluster.index.tile, ...(body.slideMpp ? { slideMpp: [body.slideMpp, body.slideMpp] as [number, number] } : {}) });
    const query = { newCase: body.dicomwebSeries ? 'dicomweb' : 'file', tissueTiles: mosaic.tissueTiles, embeddedTiles: mosaic.embeddedTiles, mosaicTiles: mosaic.vectors.length, ms: mosaic.ms };
    return { vectors: mosaic.vectors, query, querySlide: undefined };
  } finally {
    slide.close();
  }
}

/** A region search body from JSON or multipart, with the image (if any) as bytes. */
async function regionBody(request: FastifyRequest): Promise<RegionSearchBody & { imageBytes?: Buffer }> {
  if (isMultipartRequest(request)) return readMultipartQuery(request);
  const body = request.body as RegionSearchBody | undefined;
  // Without a content type Fastify parses nothing and the schema (declared per content type) does not run.
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError('BAD_REQUEST', 'send a JSON object (Content-Type: application/json) or multipart/form-data');
  return body.image === undefined ? body : { ...body, imageBytes: bytesFromBase64(body.image, 'image') };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
