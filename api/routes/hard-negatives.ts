/**
 * POST /v1/hard-negatives: for each labelled query (a tile reference or an image), its nearest
 * tiles whose label differs. Queries run in chunks; with "Accept: application/x-ndjson" each
 * chunk's lines are written as soon as they are ready, so a large batch streams.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Coverage, LabelledTileQuery, QueryService } from '../../engine/index.js';
import type { Access } from '../auth.js';
import { ApiError } from '../errors.js';
import { bytesFromBase64, decodeQueryImage } from '../query-images.js';
import { Coverage as CoverageSchema, ErrorBody, HardNegativesBody, Hit } from '../schemas.js';
import { queryService, type Services } from '../services.js';
import { Type } from 'typebox';
import { accessOf, hitJson, querySettings } from './shared.js';

/** Queries resolved and searched together; bounds memory and lets the first lines out early. */
const CHUNK = 64;

export async function hardNegativeRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const queries = queryService(services);

  app.post<{ Body: HardNegativesBody }>(
    '/v1/hard-negatives',
    {
      schema: {
        summary: 'Hard negatives in bulk',
        description: 'For each labelled query, the k nearest tiles whose label field differs from its label. JSON, or NDJSON ({index, results} per line, in input order) with "Accept: application/x-ndjson".',
        tags: ['hard negatives'],
        body: HardNegativesBody,
        produces: ['application/json', 'application/x-ndjson'],
        response: {
          200: Type.Object({ results: Type.Array(Type.Object({ index: Type.Integer(), label: Type.String(), results: Type.Array(Hit) })), coverage: CoverageSchema }),
          400: ErrorBody,
          401: ErrorBody,
          404: ErrorBody,
          413: ErrorBody,
        },
      },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const body = request.body;
      const labelField = body.labelField ?? 'label';
      // Checked here too (the service refuses it as well) so that the refusal is BAD_REQUEST before any work.
      if (body.filter && labelField in body.filter) throw new ApiError('BAD_REQUEST', `the filter must not name the label field "${labelField}": it is set per query`);
      if (body.queries.length > services.config.limits.queriesPerRequest) throw new ApiError('PAYLOAD_TOO_LARGE', `at most ${services.config.limits.queriesPerRequest} queries per request`);
      const chunks = runChunks(services, queries, request, access, body);
      if (request.headers.accept?.includes('application/x-ndjson')) {
        // The first chunk runs before the status goes out, so a bad first query is still a 4xx.
        const first = await chunks.next();
        const lines = async function* () {
          if (!first.done) yield* first.value.lines.map((line) => `${JSON.stringify(line)}\n`);
          for await (const chunk of chunks) yield* chunk.lines.map((line) => `${JSON.stringify(line)}\n`);
        };
        void reply.header('content-type', 'application/x-ndjson; charset=utf-8');
        return reply.send(Readable.from(lines()));
      }
      const results = [];
      let coverage: Coverage | undefined;
      for await (const chunk of chunks) {
        results.push(...chunk.lines);
        coverage = worst(coverage, chunk.coverage);
      }
      return { results, coverage: coverage ?? { answered: 0, total: 0, missing: [] } };
    },
  );
}

interface Line {
  index: number;
  label: string;
  results: Hit[];
}

async function* runChunks(services: Services, queries: QueryService, request: FastifyRequest, access: Access, body: HardNegativesBody): AsyncGenerator<{ lines: Line[]; coverage: Coverage }> {
  const settings = { ...querySettings(body, body.k ?? 10), labelField: body.labelField };
  for (let start = 0; start < body.queries.length; start += CHUNK) {
    const chunk = await Promise.all(body.queries.slice(start, start + CHUNK).map((query, i) => labelledQuery(services, query, start + i)));
    const answer = await queries.hardNegatives(chunk, settings, access.datasets);
    const lines = chunk.map((query, i) => ({ index: start + i, label: query.label, results: (answer.hits[i] ?? []).map(hitJson) }));
    request.log.debug({ queries: chunk.length }, 'hard negatives chunk');
    yield { lines, coverage: answer.coverage };
  }
}

/** A query of the body as the query service takes it, its image decoded. @throws ApiError BAD_REQUEST, IMAGE_INVALID */
async function labelledQuery(services: Services, query: HardNegativesBody['queries'][number], index: number): Promise<LabelledTileQuery> {
  if (query.image !== undefined) {
    return { label: query.label, query: { image: await decodeQueryImage(bytesFromBase64(query.image, `queries[${index}].image`), services.config.limits.uploadPixels) } };
  }
  const { slideId, x, y, width, height } = query;
  if (slideId === undefined || x === undefined || y === undefined || width === undefined || height === undefined) {
    throw new ApiError('BAD_REQUEST', `queries[${index}]: give an image, or slideId with x, y, width and height`);
  }
  return { label: query.label, query: { slideId, x, y, width, height } };
}

function worst(a: Coverage | undefined, b: Coverage): Coverage {
  return !a || b.answered < a.answered ? b : a;
}
