/**
 * POST /v1/hard-negatives: for each labelled query (a tile reference or an image), its nearest
 * tiles whose label differs. Queries run in chunks; with "Accept: application/x-ndjson" each
 * chunk's lines are written as soon as they are ready, so a large batch streams.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Coverage } from '../../engine/index.js';
import type { Access } from '../auth.js';
import { ApiError } from '../errors.js';
import { bytesFromBase64, decodeQueryImage } from '../query-images.js';
import { Coverage as CoverageSchema, ErrorBody, HardNegativesBody, Hit } from '../schemas.js';
import { embedImages, regionVector, type Services } from '../services.js';
import { Type } from 'typebox';
import { accessOf, hitJson, observeSearch, scopedSearch } from './shared.js';

/** Queries resolved and searched together; bounds memory and lets the first lines out early. */
const CHUNK = 64;

export async function hardNegativeRoutes(app: FastifyInstance, services: Services): Promise<void> {
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
      if (body.filter && labelField in body.filter) throw new ApiError('BAD_REQUEST', `the filter must not name the label field "${labelField}": it is set per query`);
      if (body.queries.length > services.config.limits.queriesPerRequest) throw new ApiError('PAYLOAD_TOO_LARGE', `at most ${services.config.limits.queriesPerRequest} queries per request`);
      const chunks = runChunks(services, request, access, body, labelField);
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

async function* runChunks(services: Services, request: FastifyRequest, access: Access, body: HardNegativesBody, labelField: string): AsyncGenerator<{ lines: Line[]; coverage: Coverage }> {
  for (let start = 0; start < body.queries.length; start += CHUNK) {
    const queries = body.queries.slice(start, start + CHUNK);
    const vectors = await Promise.all(queries.map((query, i) => queryVector(services, access, query, start + i)));
    // Queries sharing a label share a filter, so they go to the shards as one batch.
    const byLabel = new Map<string, number[]>();
    queries.forEach((query, i) => byLabel.set(query.label, [...(byLabel.get(query.label) ?? []), i]));
    const lines: Line[] = new Array(queries.length);
    let coverage: Coverage | undefined;
    for (const [label, members] of byLabel) {
      const filter = { ...(body.filter ?? {}), [labelField]: { not: label } };
      const result = await services.cluster.search(
        members.map((i) => vectors[i] as Float32Array),
        scopedSearch(access, { k: body.k ?? 10, ef: body.ef, filter }),
      );
      observeSearch(services, result);
      coverage = worst(coverage, result.coverage);
      members.forEach((i, j) => {
        lines[i] = { index: start + i, label, results: (result.hits[j] ?? []).map(hitJson) };
      });
    }
    request.log.debug({ queries: queries.length }, 'hard negatives chunk');
    yield { lines, coverage: coverage ?? { answered: 0, total: 0, missing: [] } };
  }
}

async function queryVector(services: Services, access: Access, query: HardNegativesBody['queries'][number], index: number): Promise<Float32Array> {
  if (query.image !== undefined) {
    const image = await decodeQueryImage(bytesFromBase64(query.image, `queries[${index}].image`), services.config.limits.uploadPixels);
    return (await embedImages(services, [image]))[0] as Float32Array;
  }
  const { slideId, x, y, width, height } = query;
  if (slideId === undefined || x === undefined || y === undefined || width === undefined || height === undefined) {
    throw new ApiError('BAD_REQUEST', `queries[${index}]: give an image, or slideId with x, y, width and height`);
  }
  return (await regionVector(services, access, { slideId, x, y, width, height })).vector;
}

function worst(a: Coverage | undefined, b: Coverage): Coverage {
  return !a || b.answered < a.answered ? b : a;
}
