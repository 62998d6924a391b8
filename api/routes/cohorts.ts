/** POST /v1/cohorts: slides like an example, filtered, as JSON or CSV. */
import type { FastifyInstance } from 'fastify';
import { CohortBody, CohortReply, ErrorBody } from '../schemas.js';
import { queryService, type Services } from '../services.js';
import { slideQueryJson, slideQuestion } from './search.js';
import { accessOf, querySettings } from './shared.js';

export async function cohortRoutes(app: FastifyInstance, services: Services): Promise<void> {
  const queries = queryService(services);

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
      const { datasets } = accessOf(request);
      const body = request.body;
      const settings = querySettings(body, body.k ?? 100);
      const answer = await queries.cohort(await slideQuestion(services, body), settings, datasets);
      const slides = answer.matches.map((match) => ({ slideId: match.slideId, score: Number(match.score.toFixed(6)), metadata: match.metadata }));
      const { querySlide } = answer;
      if (querySlide && body.includeQuery) slides.unshift({ slideId: querySlide.slideId, score: 1, metadata: querySlide.metadata });
      if (request.headers.accept?.includes('text/csv')) {
        void reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="tessera-cohort.csv"');
        return reply.send(cohortCsv(slides));
      }
      return { query: slideQueryJson(answer.query, {}), slides, coverage: answer.coverage };
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
