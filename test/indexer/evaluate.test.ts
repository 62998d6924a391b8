/**
 * `tessera evaluate` on a real index of LC25000 tiles, checked against a brute-force leave-one-out
 * computation written here from the definitions (exact cosine over every stored vector).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { IndexStore } from '../../engine/index.js';
import { runTessera } from '../run-cli.js';
import { SHARED_MISSING, TILES, hasSharedData } from '../shared-data.js';

const LUNG = join(TILES, 'lc25000-lung-dev');
const K = 5;

interface Item {
  slideId: string;
  label: string;
  group: string;
  vector: Float32Array;
  mosaic: Float32Array[];
}

interface Figures {
  queries: number;
  acc1: number;
  acc3: number;
  accK: number;
  majorityK: number;
  mapK: number;
  f1: number;
}

const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, value, i) => sum + value * (b[i] as number), 0);

/** Figures of ranked result labels per query, from the textbook definitions. */
function bruteFigures(queries: Array<{ truth: string; ranked: string[] }>): { overall: Figures; perLabel: Record<string, Figures> } {
  const rows = queries.map(({ truth, ranked }) => {
    const top = ranked.slice(0, K);
    const counts: Record<string, number> = {};
    for (const label of top) counts[label] = (counts[label] ?? 0) + 1;
    const best = Math.max(0, ...Object.values(counts));
    const vote = top.find((label) => counts[label] === best);
    let ap = 0;
    let found = 0;
    for (let rank = 0; rank < top.length; rank++) if (top[rank] === truth) ap += ++found / (rank + 1);
    return { truth, vote, a1: top[0] === truth, a3: top.slice(0, 3).includes(truth), ak: top.includes(truth), ap: found ? ap / found : 0 };
  });
  const labels = [...new Set(rows.map((row) => row.truth))].sort();
  const f1 = (label: string) => {
    const tp = rows.filter((row) => row.truth === label && row.vote === label).length;
    const precision = tp / Math.max(1, rows.filter((row) => row.vote === label).length);
    const recall = tp / rows.filter((row) => row.truth === label).length;
    return precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  };
  const summary = (subset: typeof rows, f1Value: number): Figures => ({
    queries: subset.length,
    acc1: subset.filter((row) => row.a1).length / subset.length,
    acc3: subset.filter((row) => row.a3).length / subset.length,
    accK: subset.filter((row) => row.ak).length / subset.length,
    majorityK: subset.filter((row) => row.vote === row.truth).length / subset.length,
    mapK: subset.reduce((sum, row) => sum + row.ap, 0) / subset.length,
    f1: f1Value,
  });
  const perLabel = Object.fromEntries(labels.map((label) => [label, summary(rows.filter((row) => row.truth === label), f1(label))]));
  return { overall: summary(rows, labels.reduce((sum, label) => sum + f1(label), 0) / labels.length), perLabel };
}

function bruteForce(items: Item[], by: 'slide' | 'patient') {
  const leftOut = (query: Item, item: Item) => (by === 'slide' ? item.slideId === query.slideId : item.group === query.group);
  const region = items.map((query) => ({
    truth: query.label,
    ranked: items
      .filter((item) => !leftOut(query, item))
      .map((item) => ({ label: item.label, score: dot(query.vector, item.vector) }))
      .sort((a, b) => b.score - a.score)
      .map((hit) => hit.label),
  }));
  // Slide search: each mosaic tile takes its 50 nearest tiles; a slide scores the mean over the
  // mosaic tiles of its best match among them (0 where it has none).
  const slide = items.map((query) => {
    const candidates = items.filter((item) => !leftOut(query, item));
    const scores = new Map<Item, number[]>();
    query.mosaic.forEach((tile, q) => {
      const nearest = candidates.map((item) => ({ item, score: dot(tile, item.vector) })).sort((a, b) => b.score - a.score).slice(0, 50);
      for (const { item, score } of nearest) {
        const perQuery = scores.get(item) ?? new Array<number>(query.mosaic.length).fill(0);
        perQuery[q] = Math.max(perQuery[q] as number, score);
        scores.set(item, perQuery);
      }
    });
    const ranked = [...scores.entries()].map(([item, perQuery]) => ({ item, score: perQuery.reduce((a, b) => a + b, 0) / perQuery.length })).sort((a, b) => b.score - a.score);
    return { truth: query.label, ranked: ranked.map((entry) => entry.item.label) };
  });
  return { region: bruteFigures(region), slide: bruteFigures(slide) };
}

function expectFigures(actual: Figures, expected: Figures): void {
  expect(actual.queries).toBe(expected.queries);
  for (const key of ['acc1', 'acc3', 'accK', 'majorityK', 'mapK', 'f1'] as const) expect(actual[key], key).toBeCloseTo(expected[key], 9);
}

describe.skipIf(!hasSharedData)(`tessera evaluate ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-evaluate-'));
  const index = join(dir, 'index');
  let items: Item[] = [];

  beforeAll(async () => {
    // The first 10 groups of each class (LC25000's groups are augmentations of one image).
    const [header, ...rows] = readFileSync(join(LUNG, 'labels.csv'), 'utf8').trim().split('\n');
    const groupsPerClass = new Map<string, Set<string>>();
    const kept = rows.filter((row) => {
      const [, label = '', group = ''] = row.split(',');
      const groups = groupsPerClass.get(label) ?? new Set<string>();
      groupsPerClass.set(label, groups);
      if (!groups.has(group) && groups.size >= 10) return false;
      groups.add(group);
      return true;
    });
    writeFileSync(join(dir, 'labels.csv'), `${[header, ...kept].join('\n')}\n`);
    const built = await runTessera(['index', '--tiles', LUNG, '--labels', join(dir, 'labels.csv'), '--out', index, '--shards', '2']);
    expect(built.code, built.stderr).toBe(0);
    const store = IndexStore.open(index, { readOnly: true, graph: false });
    for (const shard of store.shards) {
      for (const slideId of shard.slideIds()) {
        const record = shard.slide(slideId)!;
        items.push({ slideId, label: record.metadata.label!, group: record.metadata.group!, vector: shard.vector(record.labels[0]!), mosaic: record.mosaic.map((label) => shard.vector(label)) });
      }
    }
    await store.close();
    items = items.sort((a, b) => a.slideId.localeCompare(b.slideId));
    expect(items.length).toBe(kept.length);
  }, 120_000);

  it('gives the brute-force leave-one-out figures, leaving out each patient (group) or each slide', async () => {
    for (const by of ['patient', 'slide'] as const) {
      const run = await runTessera(['evaluate', '--index', index, '--label-field', 'label', '--by', by, '--patient-field', 'group', '-k', String(K), '--ef', '500', '--json']);
      expect(run.code, run.stderr).toBe(0);
      const evaluation = JSON.parse(run.stdout);
      const expected = bruteForce(items, by);
      expect(evaluation).toMatchObject({ by, k: K, slides: items.length, tiles: items.length, unlabelledSlides: 0, units: new Set(items.map((item) => (by === 'slide' ? item.slideId : item.group))).size });
      for (const mode of ['region', 'slide'] as const) {
        expectFigures(evaluation[mode].overall, expected[mode].overall);
        expect(Object.keys(evaluation[mode].perLabel)).toEqual(['lung_aca', 'lung_n', 'lung_scc']);
        for (const [label, figures] of Object.entries(expected[mode].perLabel)) expectFigures(evaluation[mode].perLabel[label], figures);
        expect(evaluation[mode].medianSearchMs).toBeGreaterThan(0);
      }
      expect(evaluation.indexBytes).toBeGreaterThan(0);
      expect(evaluation.bytesPerSlide).toBeCloseTo(evaluation.indexBytes / items.length, 6);
      if (by === 'slide') {
        // Augmented copies of the query's own image are then allowed to match: easier.
        expect(evaluation.region.overall.acc1).toBeGreaterThanOrEqual(bruteForce(items, 'patient').region.overall.acc1);
      }
    }
  }, 60_000);

  it('prints a table per search with a row per label and overall', async () => {
    const run = await runTessera(['evaluate', '--index', index, '--label-field', 'label', '--by', 'patient', '--patient-field', 'group']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/leave-one-out by patient \(field group\): 30 query units/);
    expect(run.stdout).toMatch(/region search .*\n\s+label\s+queries\s+Acc@1\s+Acc@3\s+Acc@5\s+MV@5\s+mAP@5\s+F1\n\s+lung_aca/);
    expect(run.stdout).toMatch(/slide search /);
    expect(run.stdout).toMatch(/KiB per slide/);
  });

  it('refuses a label field no slide has, and bad flags', async () => {
    const missing = await runTessera(['evaluate', '--index', index, '--label-field', 'diagnosis']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('"diagnosis" [INVALID_ARGUMENT]');
    expect((await runTessera(['evaluate', '--index', index])).code).toBe(2);
    expect((await runTessera(['evaluate', '--index', index, '--label-field', 'label', '--by', 'case'])).stderr).toContain("--by must be slide or patient, got 'case'");
    expect((await runTessera(['evaluate', '--index', index, '--label-field', 'label', '-k', '2'])).code).toBe(2);
  });
});
