/**
 * POST /v1/search/region and /v1/search/slide: similar regions and similar slides. Each handler
 * parses its body, asks the engine's query service (engine/query) and formats the answer.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isAbsolute } from 'node:path';
import type { SlideQuery, SlideQueryInfo } from '../../engine/index.js';
import { resolveCasePath } from '../case-files.js';
import { ApiError } from '../errors.js';
import { isMultipartRequest, readMultipartQuery } from '../multipart.js';
import { bytesFromBase64, decodeQueryImage } from '../query-images.js';
import { ErrorBody, RegionSearchBody, RegionSearchReply, SlideSearchBody, SlideSearchReply } from '../schemas.js';
import { queryService, type Services } from '../services.js';
import { feedbackOf, refinedJson } from '../refine-examples.js';
import { regionJson } from './region-query.js';
import { accessOf, hitJson, querySettings, slideUrl } from './shared.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 413: ErrorBody, 415: ErrorBody, 422: ErrorBody, 429: ErrorBody, 502: ErrorBody, 503: ErrorBody };

export async function searchRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const queries = queryService(services);

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
      const { datasets } = accessOf(request);
      const body = await regionBody(request);
      const settings = querySettings(body, body.k ?? 10);
      if (body.imageBytes) {
        if (body.slideId !== undefined) throw new ApiError('BAD_REQUEST', 'give either an image or a slide region, not both');
        if (body.regions || body.boxes) throw new ApiError('BAD_REQUEST', 'a whole-region query (regions: true) takes a box of an indexed slide, not an image');
        const image = await decodeQueryImage(body.imageBytes, services.config.limits.uploadPixels);
        const answer = await queries.searchRegion({ image }, settings, datasets, await feedbackOf(body, services.config.limits.uploadPixels));
        return { query: { image: { width: image.width, height: image.height }, ...refinedJson(body) }, results: answer.hits.map(hitJson), coverage: answer.coverage, tookMs: round(performance.now() - started) };
      }
      const { slideId, x, y, width, height } = body;
      if (slideId === undefined || x === undefined || y === undefined || width === undefined || height === undefined) {
        throw new ApiError('BAD_REQUEST', 'give an image, or slideId with x, y, width and height (level-0 pixels)');
      }
      if (body.boxes && !body.regions) throw new ApiError('BAD_REQUEST', 'boxes go with regions: true (a whole-region query)');
      const region = { slideId, x, y, width, height };
      const feedback = await feedbackOf(body, services.config.limits.uploadPixels);
      if (body.regions) {
        const answer = await queries.searchWholeRegion({ ...region, boxes: body.boxes }, settings, datasets, feedback);
        return {
          query: { ...region, embedded: false, tiles: answer.tiles, ...refinedJson(body) },
          regions: answer.regions.map(regionJson),
          results: answer.hits.map(hitJson),
          coverage: answer.coverage,
          tookMs: round(performance.now() - started),
        };
      }
      const answer = await queries.searchRegion(region, settings, datasets, feedback);
      return { query: { ...region, embedded: answer.embedded, ...refinedJson(body) }, results: answer.hits.map(hitJson), coverage: answer.coverage, tookMs: round(performance.now() - started) };
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
      const { datasets } = accessOf(request);
      const body = request.body;
      const settings = querySettings(body, body.k ?? 10);
      const question = body.slidePath !== undefined || body.dicomwebSeries !== undefined ? newCaseQuestion(services, body) : await slideQuestion(services, body);
      const answer = await queries.searchSlides(question, settings, datasets, await feedbackOf(body, services.config.limits.uploadPixels));
      return {
        query: { ...slideQueryJson(answer.query, body), ...refinedJson(body) },
        results: answer.matches.map((match) => ({
          slideId: match.slideId,
          score: Number(match.score.toFixed(6)),
          matchedQueries: match.matchedQueries,
          metadata: match.metadata,
          thumbnailUrl: `${slideUrl(match.slideId)}/thumbnail`,
          evidence: match.evidence.map(hitJson),
        })),
        coverage: answer.coverage,
        tookMs: round(performance.now() - started),
      };
    },
  );
}

/** The query of a slide search or cohort by an indexed slide or by images (decoded here). @throws ApiError BAD_REQUEST, IMAGE_INVALID */
export async function slideQuestion(services: Services, body: { slideId?: string | undefined; images?: string[] | undefined }): Promise<SlideQuery> {
  if ((body.slideId === undefined) === (body.images === undefined)) throw new ApiError('BAD_REQUEST', 'give either slideId or images');
  if (body.slideId !== undefined) return { slideId: body.slideId };
  const images = await Promise.all((body.images ?? []).map((text, i) => decodeQueryImage(bytesFromBase64(text, `images[${i}]`), services.config.limits.uploadPixels)));
  return { images };
}

/** What a reply says its slide query was. */
export function slideQueryJson(info: SlideQueryInfo, body: { dicomwebSeries?: string | undefined }) {
  if (!('newCase' in info)) return info;
  const { tissueTiles, embeddedTiles, mosaicTiles, ms } = info.newCase;
  return { newCase: body.dicomwebSeries ? 'dicomweb' : 'file', tissueTiles, embeddedTiles, mosaicTiles, ms };
}

/**
 * A new case: a file under the slide roots or a
 * series on a configured DICOMweb server; anything else is SLIDE_ACCESS_DENIED when opened.
 */
function newCaseQuestion(services: Services, body: SlideSearchBody): SlideQuery {
  const given = [body.slideId, body.images, body.slidePath, body.dicomwebSeries].filter((value) => value !== undefined).length;
  if (given !== 1) throw new ApiError('BAD_REQUEST', 'give one of slideId, images, slidePath or dicomwebSeries');
  const roots = services.config.slideRoots;
  // A relative path names a case as GET /v1/cases lists it: under the first root that holds it.
  const locator = body.dicomwebSeries ?? (isAbsolute(body.slidePath as string) ? (body.slidePath as string) : resolveCasePath(roots, body.slidePath as string));
  return { newCase: { locator, roots, dicomWebServers: services.config.dicomWebServers, slideMpp: body.slideMpp } };
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
