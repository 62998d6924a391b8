/** POST /v1/cohorts: slides like an example, filtered, as JSON or CSV. */
import type { FastifyInstance } from 'fastify';
import { rankSlides } from '../../engine/index.js';
import { CohortBody, CohortReply, ErrorBody } from '../schemas.js';
import type { Services } from '../services.js';
import { slideQuery } from './search.js';
import { accessOf, observeSearch, scopedSearch } from './shared.js';

export async function cohortRoutes(app: FastifyInstance, services: Services): Promise<void> {
  app.post<{ Body: CohortBody }>(
    '/v1/cohorts',
    {
      schema: {
        summary: 'Build a cohort by example',
        description: 'Slides like the example (an indexed slide or region images) that pass the filter, best first. Send "Accept: text/csv" for CSV (slide_id, score, then every metadata column).',
        tags: ['cohorts'],
        body: CohortBody,
        produces: ['application/json', 'text/csv'],
        response: { 200: CohortReply, 400: ErrorBody, 401: ErrorBody, 404: ErrorBody, 413: ErrorBody, 503: ErrorBody },
      },
    },
    async (request, reply) => {
      const access = accessOf(request);
      const body = request.body;
      const k = body.k ?? 100;
      const { vectors, query, querySlide } = await slideQuery(services, request, body);
      // Each query tile brings enough tiles that k distinct slides can appear.
      const result = await services.cluster.search(vectors, scopedSearch(access, { ...body, k: Math.min(1000, Math.max(50, k * 5)) }, querySlide));
      observeSearch(services, result);
      const slides = rankSlides(result.hits, { k }).map((match) => ({ slideId: match.slideId, score: Number(match.score.toFixed(6)), metadata: match.metadata }));
      if (querySlide && body.includeQuery) slides.unshift({ slideId: querySlide.slideId, score: 1, metadata: querySlide.metadata });
      if (request.headers.accept?.includes('text/csv')) {
        void reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="tessera-cohort.csv"');
        return reply.send(cohortCsv(slides));
      }
      return { query, slides, coverage: result.coverage };
    },
  );
}

/** CSV with slide_id, score and the union of metadata columns (RFC 4180 quoting; formulas defused). */
export function cohortCsv(slides: Array<{ slideId: string; score: number; metadata: Record<string, string> }>): string {
  const columns = [...new Set(slides.flatMap((slide) => Object.keys(slide.metadata)))].sort();
  const rows = [['slide_id', 'score', ...columns], ...slides.map((slide) => [slide.slideId, String(slide.score), ...columns.map((column) => slide.metadata[column] ?? '')])];
  return `${rows.map((row) => row.map(csvCell).join(',')).join('\r\n')}\r\n`;
}

function csvCell(value: string): string {
  // A cell starting with = + - @ would run as a formula in a spreadsheet.
  const safe = /^[=+\-@\t\r]/.test(value) && !/^-?\d/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
