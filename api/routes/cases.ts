/**
 * New cases: slide files under the slide roots and series on the configured DICOMweb servers that
 * are not indexed, for the viewer to open and search from before they are indexed. The list, a
 * record, thumbnail and Deep Zoom tiles of one (the pyramid only: label and macro images are never
 * served), and region search by a rectangle read from the file here. Dataset scope does not apply
 * (these files belong to no dataset) but the roots do; an indexed file is not a new case (it is
 * opened, in scope, as a slide), and is refused like a missing one so that a key scoped to some
 * datasets learns nothing of the others. Registered on servers that hold the index (role all): a
 * router does not know which files are indexed.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { MAX_REGION_SIDE, isDicomWebSeriesUrl, listDicomWebSeries, readGridTile, SlideFiles, slideMppOf, type LocalShardGroup, type Slide } from '../../engine/index.js';
import { isIndexed, listCaseFiles, resolveCasePath } from '../case-files.js';
import { ApiError } from '../errors.js';
import { feedbackOf, refinedJson } from '../refine-examples.js';
import { CaseListReply, CaseParams, CaseRegionSearchBody, CaseSummaryReply, ErrorBody, RegionSearchReply } from '../schemas.js';
import { queryService, type Services } from '../services.js';
import { dziTile, dziXml, thumbnail } from '../slide-images.js';
import { accessOf, hitJson, querySettings } from './shared.js';

const errors = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 413: ErrorBody, 422: ErrorBody, 429: ErrorBody, 503: ErrorBody };

function caseUrl(casePath: string): string {
  return `/v1/cases/${encodeURIComponent(casePath)}`;
}

/** An indexed file or series asked for as a case: "not found", as a missing one. */
function notACase(what: string): ApiError {
  return new ApiError('SLIDE_NOT_FOUND', `${what} is not a new case under the slide roots (missing, or indexed: indexed slides open from the slide list)`);
}

export async function caseRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const { local } = services;
  if (!local) return;
  const { slideRoots, dicomWebServers } = services.config;
  const files = new SlideFiles(slideRoots, dicomWebServers);
  app.addHook('onClose', async () => files.close());
  const indexedPaths = indexedPathsOf(local);

  /** The open slide of a case. @throws ApiError SLIDE_ACCESS_DENIED, SLIDE_NOT_FOUND (also for an indexed file) */
  const openCase = async (casePath: string): Promise<Slide> => {
    if (isDicomWebSeriesUrl(casePath)) {
      // SlideFiles refuses a series on a server the config does not list (403).
      if (indexedPaths().has(casePath)) throw notACase('this DICOMweb series');
      return files.get(casePath, casePath);
    }
    const path = resolveCasePath(slideRoots, casePath);
    if (isIndexed(path, indexedPaths())) throw notACase(`"${casePath}"`);
    return files.get(casePath, path);
  };

  app.get(
    '/v1/cases',
    { schema: { summary: 'New cases: slide files under the slide roots and DICOMweb series that are not indexed', tags: ['cases'], response: { 200: CaseListReply, 401: ErrorBody } } },
    async (request) => {
      accessOf(request);
      const indexed = indexedPaths();
      const { cases, truncated } = listCaseFiles(slideRoots, indexed);
      const listed = await Promise.allSettled(dicomWebServers.map((server) => listDicomWebSeries(server)));
      const series = listed.flatMap((result) => (result.status === 'fulfilled' ? result.value : [])).filter((record) => !indexed.has(record.url));
      const unreachableServers = listed.filter((result) => result.status === 'rejected').length;
      if (unreachableServers > 0) request.log.warn({ unreachableServers }, 'DICOMweb servers could not be listed for new cases');
      return { cases: [...cases, ...series.map((record) => ({ path: record.url, source: 'dicomweb' as const }))], truncated, unreachableServers };
    },
  );

  app.get<{ Params: Static<typeof CaseParams> }>(
    '/v1/cases/:path',
    {
      schema: {
        summary: 'A new case, or its Deep Zoom descriptor',
        description: 'GET /v1/cases/{path} (the path URL-encoded, "/" as %2F) returns its size and calibration; GET /v1/cases/{path}.dzi its Deep Zoom descriptor (tiles at /v1/cases/{path}_files/{level}/{col}_{row}.jpeg).',
        tags: ['cases'],
        params: CaseParams,
        response: { 200: CaseSummaryReply, ...errors },
      },
    },
    async (request, reply) => {
      accessOf(request);
      const { path } = request.params;
      if (path.endsWith('.dzi')) {
        const slide = await openCase(path.slice(0, -'.dzi'.length));
        return reply.type('application/xml').header('cache-control', 'private, max-age=3600').send(dziXml(slide));
      }
      const slide = await openCase(path);
      return { path, width: slide.width, height: slide.height, mpp: slide.mpp ? [...slide.mpp] : [0, 0], thumbnailUrl: `${caseUrl(path)}/thumbnail`, dziUrl: `${caseUrl(path)}.dzi` };
    },
  );

  app.get<{ Params: Static<typeof CaseParams>; Querystring: { size?: number } }>(
    '/v1/cases/:path/thumbnail',
    {
      schema: {
        summary: 'A new case’s thumbnail (JPEG, from the pyramid)',
        tags: ['cases'],
        params: CaseParams,
        querystring: Type.Object({ size: Type.Optional(Type.Integer({ minimum: 16, maximum: 1024 })) }, { additionalProperties: false }),
        produces: ['image/jpeg'],
        response: errors,
      },
    },
    async (request, reply) => {
      accessOf(request);
      const slide = await openCase(request.params.path);
      return reply.type('image/jpeg').header('cache-control', 'private, max-age=3600').send(await thumbnail(slide, request.query.size ?? 256));
    },
  );

  app.get<{ Params: { path: string; level: string; tile: string } }>(
    '/v1/cases/:path/:level/:tile',
    {
      schema: {
        summary: 'A Deep Zoom tile of a new case (JPEG)',
        description: 'Path form: /v1/cases/{path}_files/{level}/{col}_{row}.jpeg',
        tags: ['cases'],
        params: Type.Object({ path: Type.String({ minLength: 1, maxLength: 610 }), level: Type.String({ pattern: '^\\d{1,2}$' }), tile: Type.String({ pattern: '^\\d{1,7}_\\d{1,7}\\.jpe?g$' }) }),
        produces: ['image/jpeg'],
        response: errors,
      },
    },
    async (request, reply) => {
      accessOf(request);
      const { path, level, tile } = request.params;
      if (!path.endsWith('_files')) throw new ApiError('NOT_FOUND', 'Deep Zoom tiles of a case live under /v1/cases/{path}_files/');
      const [column, row] = tile.replace(/\.jpe?g$/, '').split('_').map(Number) as [number, number];
      const slide = await openCase(path.slice(0, -'_files'.length));
      return reply.type('image/jpeg').header('cache-control', 'private, max-age=3600').send(await dziTile(slide, Number(level), column, row));
    },
  );

  app.post<{ Body: CaseRegionSearchBody }>(
    '/v1/cases/search/region',
    {
      schema: {
        summary: 'Similar regions to a rectangle of a new case',
        description: 'The rectangle (level-0 pixels of the case) is read from the file here at the index’s resolution and embedded; results as POST /v1/search/region.',
        tags: ['cases', 'search'],
        body: CaseRegionSearchBody,
        response: { 200: RegionSearchReply, ...errors },
      },
    },
    async (request) => {
      const started = performance.now();
      const access = accessOf(request);
      const { slidePath, x, y, width, height } = request.body;
      if (width > MAX_REGION_SIDE || height > MAX_REGION_SIDE) throw new ApiError('REGION_TOO_LARGE', `a query region is at most ${MAX_REGION_SIDE} px a side at level 0, got ${width}×${height}; use slide search for whole slides`);
      const slide = await openCase(slidePath);
      if (x + width > slide.width || y + height > slide.height) throw new ApiError('REGION_OUT_OF_BOUNDS', `region ${x},${y} ${width}×${height} lies outside the case (${slide.width}×${slide.height})`);
      const mpp = slideMppOf(slide, slidePath, undefined);
      const spec = services.cluster.index.tile;
      const image = await readGridTile(slide, { baseX: x, baseY: y, baseWidth: width, baseHeight: height, tissue: 1 }, { mpp: spec.mpp, sizePx: Math.max(1, Math.round((width * mpp[0]) / spec.mpp)) }, { resize: false });
      const answer = await queryService(services).searchRegion({ image }, querySettings(request.body, request.body.k ?? 10), access.datasets, await feedbackOf(request.body, services.config.limits.uploadPixels));
      const query = { newCase: 'file', slidePath, x, y, width, height, embedded: true, ...refinedJson(request.body) };
      return { query, results: answer.hits.map(hitJson), coverage: answer.coverage, tookMs: Math.round((performance.now() - started) * 100) / 100 };
    },
  );
}

/**
 * The indexed slides' paths (as recorded and with symlinks resolved; series URLs as they are), read once per generation of
 * the index: a reload may add slides, which then stop being new cases.
 */
function indexedPathsOf(local: LocalShardGroup): () => ReadonlySet<string> {
  let generation = -1;
  let paths = new Set<string>();
  return () => {
    if (generation !== local.generation) {
      generation = local.generation;
      paths = new Set();
      for (const shard of local.store.shards) {
        for (const id of shard.slideIds()) {
          const path = shard.slide(id)?.path;
          if (!path) continue;
          if (isDicomWebSeriesUrl(path)) {
            paths.add(path);
            continue;
          }
          paths.add(resolve(path));
          try {
            paths.add(realpathSync(path));
          } catch {
            // A moved file: its recorded path still names it.
          }
        }
      }
    }
    return paths;
  };
}
