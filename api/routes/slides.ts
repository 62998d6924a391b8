/**
 * Slides: list (paginated, filtered, with facets), record, thumbnail, region and Deep Zoom. A
 * slide outside the caller's datasets is "not found", never "forbidden", so its existence does not
 * leak. On a router the image routes are relayed to the shard node holding the slide.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { FACET_FIELDS, type Slide, type SlideSummary } from '../../engine/index.js';
import type { Access } from '../auth.js';
import { ApiError } from '../errors.js';
import { ErrorBody, RegionImageQuery, SlideListQuery, SlideListReply, SlideParams, SlideSummaryReply } from '../schemas.js';
import { notFound, type Services } from '../services.js';
import { dziTile, dziXml, region, thumbnail } from '../slide-images.js';
import { accessOf, slideUrl } from './shared.js';

const THUMBNAIL_CACHE = 256;
/** Encoded Deep Zoom tiles kept in memory: viewers of one slide ask for the same few tiles. */
const DZI_CACHE_BYTES = 64 * 2 ** 20;

export async function slideRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const thumbnails = new Map<string, Buffer>();
  const dziTiles = new ByteLru(DZI_CACHE_BYTES);

  app.get<{ Querystring: Static<typeof SlideListQuery> }>(
    '/v1/slides',
    {
      schema: {
        summary: 'List slides (pages in slide-id order, counts, facets)',
        description: 'Each shard answers from its own listing: a page costs the same at any depth when followed by `cursor`. Filters are exact metadata values; `q` is a substring of the id or any metadata value (a scan of the matching slides).',
        tags: ['slides'],
        querystring: SlideListQuery,
        response: { 200: SlideListReply, 400: ErrorBody, 401: ErrorBody },
      },
    },
    async (request) => {
      const access = accessOf(request);
      const { cursor, offset, limit = 50, q } = request.query;
      if (cursor !== undefined && offset !== undefined) throw new ApiError('BAD_REQUEST', 'give either cursor or offset, not both');
      const where: Record<string, string> = {};
      for (const field of FACET_FIELDS) {
        const value = request.query[field];
        if (value !== undefined) where[field] = value;
      }
      const skip = offset ?? 0;
      const after = cursor === undefined ? undefined : slideIdOfCursor(cursor);
      // An offset asks every shard for its first offset + limit slides (bounded by MAX_SLIDE_OFFSET).
      const page = await services.cluster.slidePage({ limit: skip + limit, where, datasets: access.datasets, ...(after !== undefined ? { after } : {}), ...(q ? { text: q } : {}) });
      const slides = page.slides.slice(skip);
      const last = slides[slides.length - 1];
      const nextCursor = page.more && last ? cursorOf(last.slideId) : null;
      return { total: page.total, offset: skip, limit, slides: slides.map(summaryJson), nextCursor, facets: page.facets, coverage: page.coverage };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/slides/:id',
    {
      schema: {
        summary: 'A slide, or its Deep Zoom descriptor',
        description: 'GET /v1/slides/{id} returns the slide record; GET /v1/slides/{id}.dzi its Deep Zoom descriptor (tiles at /v1/slides/{id}_files/{level}/{col}_{row}.jpeg).',
        tags: ['slides'],
        params: SlideParams,
        response: { 200: SlideSummaryReply, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const { id } = request.params;
      if (id.endsWith('.dzi')) {
        const slideId = id.slice(0, -'.dzi'.length);
        if (services.config.role === 'router') return relay(services, request, reply, slideId);
        const summary = await findSlide(services, slideId, access.datasets);
        if (summary) return reply.type('application/xml').header('cache-control', 'private, max-age=3600').send(dziXml(summary));
        // Not a Deep Zoom request after all: a slide id that ends in ".dzi".
      }
      const summary = await findSlide(services, id, access.datasets);
      if (!summary) throw notFound(id);
      return summaryJson(summary);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { size?: number } }>(
    '/v1/slides/:id/thumbnail',
    {
      schema: {
        summary: 'Slide thumbnail (JPEG)',
        tags: ['slides'],
        params: SlideParams,
        querystring: Type.Object({ size: Type.Optional(Type.Integer({ minimum: 16, maximum: 1024 })) }, { additionalProperties: false }),
        produces: ['image/jpeg'],
        response: { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const { id } = request.params;
      if (services.config.role === 'router') return relay(services, request, reply, id);
      const size = request.query.size ?? 256;
      const key = `${id}\u0000${size}`;
      let jpeg = thumbnails.get(key);
      const slide = await openScoped(services, access, id);
      if (!jpeg) {
        jpeg = await thumbnail(slide, size);
        if (thumbnails.size >= THUMBNAIL_CACHE) thumbnails.delete(thumbnails.keys().next().value as string);
        thumbnails.set(key, jpeg);
      }
      return reply.type('image/jpeg').header('cache-control', 'private, max-age=3600').send(jpeg);
    },
  );

  app.get<{ Params: { id: string }; Querystring: Static<typeof RegionImageQuery> }>(
    '/v1/slides/:id/region',
    {
      schema: {
        summary: 'A region of a slide (JPEG or PNG)',
        description: 'x, y, width, height in level-0 pixels; the output fits `size` px, or is read at pyramid level `level`.',
        tags: ['slides'],
        params: SlideParams,
        querystring: RegionImageQuery,
        produces: ['image/jpeg', 'image/png'],
        response: { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 413: ErrorBody },
      },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const { id } = request.params;
      if (services.config.role === 'router') return relay(services, request, reply, id);
      const { x, y, width, height, size, level, format = 'jpeg' } = request.query;
      const slide = await openScoped(services, access, id);
      if (x >= slide.width || y >= slide.height) throw new ApiError('REGION_OUT_OF_BOUNDS', `region ${x},${y} starts outside the slide (${slide.width}×${slide.height})`);
      const image = await region(slide, { x, y, width, height }, { size, level, format });
      return reply.type(`image/${format}`).header('cache-control', 'private, max-age=3600').send(image);
    },
  );

  app.get<{ Params: { id: string; level: string; tile: string } }>(
    '/v1/slides/:id/:level/:tile',
    {
      schema: {
        summary: 'A Deep Zoom tile (JPEG)',
        description: 'Path form: /v1/slides/{id}_files/{level}/{col}_{row}.jpeg',
        tags: ['slides'],
        params: Type.Object({ id: Type.String({ minLength: 1, maxLength: 600 }), level: Type.String({ pattern: '^\\d{1,2}$' }), tile: Type.String({ pattern: '^\\d{1,7}_\\d{1,7}\\.jpe?g$' }) }),
        produces: ['image/jpeg'],
        response: { 400: ErrorBody, 401: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const { id, level, tile } = request.params;
      if (!id.endsWith('_files')) throw new ApiError('NOT_FOUND', 'Deep Zoom tiles live under /v1/slides/{id}_files/');
      const slideId = id.slice(0, -'_files'.length);
      if (services.config.role === 'router') return relay(services, request, reply, slideId);
      const [column, row] = tile.replace(/\.jpe?g$/, '').split('_').map(Number) as [number, number];
      const slide = await openScoped(services, access, slideId);
      // Keyed by the index generation too: a reload may bring a slide id back with another file.
      const key = `${services.local?.generation ?? 0}\u0000${slideId}\u0000${level}/${column}_${row}`;
      let jpeg = dziTiles.get(key);
      if (!jpeg) {
        jpeg = await dziTile(slide, Number(level), column, row);
        dziTiles.set(key, jpeg);
      }
      return reply.type('image/jpeg').header('cache-control', 'private, max-age=86400').send(jpeg);
    },
  );
}

function summaryJson(summary: SlideSummary) {
  return { ...summary, thumbnailUrl: `${slideUrl(summary.slideId)}/thumbnail`, dziUrl: `${slideUrl(summary.slideId)}.dzi` };
}

/** A page cursor: the last slide id of the page, base64url (opaque to clients, safe in a URL). */
function cursorOf(slideId: string): string {
  return Buffer.from(slideId, 'utf8').toString('base64url');
}

/** @throws ApiError BAD_REQUEST when the cursor is not one this API made */
function slideIdOfCursor(cursor: string): string {
  const slideId = /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (!slideId || cursorOf(slideId) !== cursor) throw new ApiError('BAD_REQUEST', `cursor "${cursor.slice(0, 64)}" is not a nextCursor of GET /v1/slides`);
  return slideId;
}

/**
 * The record of a slide the caller may see, or undefined. A shard node answers for its own shards
 * only: a slide of another shard is not found here (a 404, as for a router or a single process),
 * not a missing shard.
 */
async function findSlide(services: Services, slideId: string, datasets: string[] | null): Promise<SlideSummary | undefined> {
  if (services.config.role === 'shard' && services.local) return services.local.slide(slideId, datasets);
  return services.cluster.slide(slideId, datasets);
}

/** The slide file of an indexed slide the caller may see. @throws SLIDE_NOT_FOUND, SLIDE_ACCESS_DENIED (outside slide roots) */
async function openScoped(services: Services, access: Access, slideId: string): Promise<Slide> {
  const found = services.local?.record(slideId, access.datasets);
  if (!found) throw notFound(slideId);
  return services.local!.slideFiles.get(slideId, found.record.path);
}

/** Relays an image request to the shard node holding the slide, with the caller's credentials. */
async function relay(services: Services, request: FastifyRequest, reply: FastifyReply, slideId: string): Promise<FastifyReply> {
  const group = services.cluster.groupFor(slideId);
  const headers: Record<string, string> = {};
  for (const name of ['authorization', 'x-api-key'] as const) {
    const value = request.headers[name];
    if (typeof value === 'string') headers[name] = value;
  }
  let response: Response;
  try {
    response = await fetch(`${group.location}${request.url}`, { headers, signal: AbortSignal.timeout(services.config.deadlineMs * 5) });
  } catch (error) {
    throw new ApiError('SHARD_UNAVAILABLE', `the node holding slide "${slideId}" did not answer: ${(error as Error).message}`);
  }
  const body = Buffer.from(await response.arrayBuffer());
  for (const name of ['content-type', 'cache-control']) {
    const value = response.headers.get(name);
    if (value) void reply.header(name, value);
  }
  return reply.status(response.status).send(body);
}

/** A least-recently-used map of buffers bounded by their total bytes. */
class ByteLru {
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(key: string): Buffer | undefined {
    const value = this.entries.get(key);
    if (value) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: Buffer): void {
    const previous = this.entries.get(key);
    if (previous) this.bytes -= previous.length;
    this.entries.delete(key);
    this.entries.set(key, value);
    this.bytes += value.length;
    while (this.bytes > this.maxBytes) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Buffer];
      this.entries.delete(oldestKey);
      this.bytes -= oldest.length;
    }
  }
}
