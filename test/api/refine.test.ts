/**
 * Refine by example through the API, on a real index of LC25000 tiles served by a real server:
 * region and slide searches with `positives` and `negatives` (tile references or images) answer
 * what an exact search with the Rocchio-moved query (computed here) answers.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../api/index.js';
import { IndexStore } from '../../engine/index.js';
import { runTessera } from '../run-cli.js';
import { SHARED_MISSING, TILES, hasSharedData } from '../shared-data.js';
import { client, serve } from './fixture.js';

const LUNG = join(TILES, 'lc25000-lung-dev');
const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, value, i) => sum + value * (b[i] as number), 0);

/** α q + 0.75 mean(P) − 0.25 mean(N), unit length: written out here, not taken from the engine. */
function rocchio(query: Float32Array, positives: Float32Array[], negatives: Float32Array[]): Float32Array {
  const out = query.map((value, d) => value + (0.75 * positives.reduce((sum, p) => sum + (p[d] as number), 0)) / Math.max(1, positives.length) - (0.25 * negatives.reduce((sum, n) => sum + (n[d] as number), 0)) / Math.max(1, negatives.length));
  const norm = Math.hypot(...out);
  return out.map((value) => value / norm);
}

describe.skipIf(!hasSharedData)(`refine by example ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'tessera-refine-'));
  const index = join(scratch, 'index');
  const vectors = new Map<string, Float32Array>();
  const labels = new Map<string, string>();
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  const sizes = new Map<string, { width: number; height: number }>();
  /** A reference to the one tile of a tile image's "slide". */
  const ref = (slideId: string) => ({ slideId, x: 0, y: 0, ...(sizes.get(slideId) ?? { width: 224, height: 224 }) });

  /** The exact top k for a query vector, leaving out one slide. */
  const exactTop = (query: Float32Array, k: number, leaveOut: string) =>
    [...vectors.entries()]
      .filter(([slideId]) => slideId !== leaveOut)
      .map(([slideId, vector]) => ({ slideId, score: dot(query, vector) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, k);

  beforeAll(async () => {
    // 20 tiles of each class.
    const [header, ...rows] = readFileSync(join(LUNG, 'labels.csv'), 'utf8').trim().split('\n');
    const perClass = new Map<string, number>();
    const kept = rows.filter((row) => {
      const label = row.split(',')[1] as string;
      perClass.set(label, (perClass.get(label) ?? 0) + 1);
      return (perClass.get(label) as number) <= 20;
    });
    writeFileSync(join(scratch, 'labels.csv'), `${[header, ...kept].join('\n')}\n`);
    const built = await runTessera(['index', '--tiles', LUNG, '--labels', join(scratch, 'labels.csv'), '--out', index]);
    expect(built.code, built.stderr).toBe(0);
    const store = IndexStore.open(index, { readOnly: true, graph: false });
    for (const shard of store.shards) {
      for (const slideId of shard.slideIds()) {
        const record = shard.slide(slideId)!;
        vectors.set(slideId, shard.vector(record.labels[0]!));
        labels.set(slideId, record.metadata.label!);
        sizes.set(slideId, { width: record.width, height: record.height });
      }
    }
    await store.close();
    server = await serve({ scratch, slides: LUNG, index, config: '' }, { index });
    api = client(server.url);
  }, 120_000);
  afterAll(async () => {
    await server?.close();
  });

  it('moves a region query toward the positives and away from the negatives, as Rocchio computes', async () => {
    const ids = [...vectors.keys()];
    const query = ids.find((id) => labels.get(id) === 'lung_aca')!;
    const positives = ids.filter((id) => labels.get(id) === 'lung_n').slice(0, 3);
    const negatives = ids.filter((id) => labels.get(id) === 'lung_aca' && id !== query).slice(0, 2);
    const plain = await api('/v1/search/region', { json: { ...ref(query), k: 10 } });
    const refined = await api('/v1/search/region', { json: { ...ref(query), k: 10, ef: 500, positives: positives.map(ref), negatives: negatives.map(ref) } });
    expect(refined.status, JSON.stringify(refined.body)).toBe(200);
    expect(refined.body.query.refined).toEqual({ positives: 3, negatives: 2 });
    const expected = exactTop(rocchio(vectors.get(query)!, positives.map((id) => vectors.get(id)!), negatives.map((id) => vectors.get(id)!)), 10, query);
    expect(refined.body.results.map((hit: { slideId: string }) => hit.slideId)).toEqual(expected.map((hit) => hit.slideId));
    refined.body.results.forEach((hit: { score: number }, i: number) => expect(hit.score).toBeCloseTo(expected[i]!.score, 4));
    // Toward normal lung: more lung_n among the results than before.
    const normals = (body: { results: Array<{ metadata: Record<string, string> }> }) => body.results.filter((hit) => hit.metadata.label === 'lung_n').length;
    expect(normals(refined.body)).toBeGreaterThan(normals(plain.body));
  });

  it('takes images as examples, embedded like the tiles they show', async () => {
    const ids = [...vectors.keys()];
    const query = ids.find((id) => labels.get(id) === 'lung_scc')!;
    const positive = ids.find((id) => labels.get(id) === 'lung_n')!;
    const image = readFileSync(join(LUNG, positive)).toString('base64');
    const byImage = await api('/v1/search/region', { json: { ...ref(query), k: 5, ef: 500, positives: [{ image }] } });
    const byRef = await api('/v1/search/region', { json: { ...ref(query), k: 5, ef: 500, positives: [ref(positive)] } });
    expect(byImage.status, JSON.stringify(byImage.body)).toBe(200);
    expect(byImage.body.results.map((hit: { slideId: string }) => hit.slideId)).toEqual(byRef.body.results.map((hit: { slideId: string }) => hit.slideId));
    byImage.body.results.forEach((hit: { score: number }, i: number) => expect(hit.score).toBeCloseTo(byRef.body.results[i].score, 3));
  });

  it('refines every mosaic tile of a slide search', async () => {
    const ids = [...vectors.keys()];
    const query = ids.find((id) => labels.get(id) === 'lung_aca')!;
    const negatives = ids.filter((id) => labels.get(id) === 'lung_aca' && id !== query).slice(0, 4);
    const result = await api('/v1/search/slide', { json: { slideId: query, k: 5, ef: 500, negatives: negatives.map(ref) } });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    expect(result.body.query.refined).toEqual({ positives: 0, negatives: 4 });
    // One tile per slide: the mosaic is that tile, and a slide scores its tile's similarity.
    const expected = exactTop(rocchio(vectors.get(query)!, [], negatives.map((id) => vectors.get(id)!)), 5, query);
    expect(result.body.results.map((match: { slideId: string }) => match.slideId)).toEqual(expected.map((hit) => hit.slideId));
    result.body.results.forEach((match: { score: number }, i: number) => expect(match.score).toBeCloseTo(expected[i]!.score, 4));
  });

  it('refuses examples it cannot resolve', async () => {
    const query = [...vectors.keys()][0]!;
    const unknown = await api('/v1/search/region', { json: { ...ref(query), positives: [ref('no-such-slide')] } });
    expect(unknown.status).toBe(404);
    const malformed = await api('/v1/search/region', { json: { ...ref(query), negatives: [{ slideId: query }] } });
    expect(malformed.status).toBe(400);
    const notImage = await api('/v1/search/slide', { json: { slideId: query, positives: [{ image: Buffer.from('not an image').toString('base64') }] } });
    expect(notImage.status).toBe(400);
  });
});
