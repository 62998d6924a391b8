/**
 * SlideListing against the obvious answer (sort, filter, slice every record) over a catalogue
 * that is written to after its orderings were built: pages, counts and facets stay right.
 */
import { describe, expect, it } from 'vitest';
import { asSlideId, compareIds, datasetOf, FACET_FIELDS, type SlidePageQuery, type SlideRecord } from '../../../engine/index.js';
import { SlideListing } from '../../../engine/index/slide-listing.js';
import { seeded, slideRecord } from './synthetic-shards.js';

const ORGANS = ['lung', 'kidney', 'skin'];
const DATASETS = ['a', 'b', 'c'];

function record(id: string, random: () => number): SlideRecord {
  const metadata: Record<string, string> = { organ: ORGANS[Math.floor(random() * ORGANS.length)] as string, diagnosis: random() < 0.3 ? 'tumour' : 'normal' };
  if (random() < 0.9) metadata.dataset = DATASETS[Math.floor(random() * DATASETS.length)] as string;
  const labels = Array.from({ length: 1 + Math.floor(random() * 4) }, (_, i) => i);
  return { ...slideRecord(id, metadata), slideId: asSlideId(id), labels, mosaic: [] };
}

/** Every page of a query, followed by cursor, and the first page's total. */
function walk(listing: SlideListing, query: Omit<SlidePageQuery, 'after'>): { ids: string[]; total: number } {
  const ids: string[] = [];
  let after: string | undefined;
  let total = -1;
  for (;;) {
    const page = listing.page({ ...query, ...(after ? { after } : {}) });
    if (total < 0) total = page.total;
    ids.push(...page.records.map((entry) => entry.slideId));
    if (!page.more) return { ids, total };
    after = page.records[page.records.length - 1]!.slideId;
  }
}

function expected(records: Map<string, SlideRecord>, query: Omit<SlidePageQuery, 'after' | 'limit'>): string[] {
  return [...records.values()]
    .filter((entry) => (!query.datasets || query.datasets.includes(datasetOf(entry.metadata))) && Object.entries(query.where ?? {}).every(([field, value]) => entry.metadata[field] === value) && (!query.text || entry.slideId.toLowerCase().includes(query.text.toLowerCase()) || Object.values(entry.metadata).some((value) => value.toLowerCase().includes(query.text!.toLowerCase()))))
    .map((entry) => entry.slideId)
    .sort(compareIds);
}

describe('SlideListing', () => {
  it('pages, counts and facets as a full scan would, before and after writes', () => {
    const random = seeded(5);
    const records = new Map<string, SlideRecord>();
    const listing = new SlideListing(() => records.values());
    const put = (entry: SlideRecord) => {
      listing.put(entry, records.get(entry.slideId));
      records.set(entry.slideId, entry);
    };
    for (let i = 0; i < 300; i++) put(record(`S${Math.floor(random() * 1e6)}`, random));
    const queries: Array<Omit<SlidePageQuery, 'after'>> = [
      { limit: 17, datasets: null },
      { limit: 7, datasets: ['a'] },
      { limit: 50, datasets: ['a', 'default'], where: { organ: 'skin' } },
      { limit: 9, datasets: null, where: { organ: 'lung', diagnosis: 'tumour' } },
      { limit: 4, datasets: ['b'], where: { diagnosis: 'normal', organ: 'kidney' } },
      { limit: 6, datasets: null, where: { organ: 'skin', diagnosis: 'normal', dataset: 'a' } },
      { limit: 5, datasets: ['b', 'c'], text: 's1' },
      { limit: 3, datasets: null, where: { dataset: 'c' } },
    ];
    const check = () => {
      for (const query of queries) {
        const want = expected(records, query);
        expect(walk(listing, query)).toEqual({ ids: want, total: want.length });
      }
      const facets = listing.facets(['a', 'b']);
      for (const field of FACET_FIELDS) {
        const counts: Record<string, number> = {};
        for (const entry of records.values()) {
          const value = entry.metadata[field];
          if (['a', 'b'].includes(datasetOf(entry.metadata)) && value) counts[value] = (counts[value] ?? 0) + 1;
        }
        expect(facets[field]).toEqual(counts);
      }
      const inC = [...records.values()].filter((entry) => datasetOf(entry.metadata) === 'c');
      expect(listing.totals(['c'])).toEqual({ slides: inC.length, tiles: inC.reduce((sum, entry) => sum + entry.labels.length, 0) });
    };
    check();
    // Orderings are built now: replace some slides (new metadata), add and remove others.
    const ids = [...records.keys()];
    for (let i = 0; i < 60; i++) put(record(ids[i * 3] as string, random));
    for (let i = 0; i < 40; i++) put(record(`T${i}`, random));
    for (let i = 1; i < 100; i += 4) {
      const gone = records.get(ids[i] as string)!;
      listing.remove(gone);
      records.delete(gone.slideId);
    }
    check();
  });
});
