/**
 * DICOMweb as a slide source, against a real Orthanc (Debian's orthanc + orthanc-dicomweb) that
 * the test starts on 127.0.0.1 with basic authentication, holding slides converted by
 * OrthancWSIDicomizer: the same pixels as the files, only the frames a read needs, retries on
 * 5xx, and credentials that never show in an error.
 */
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureDicomWeb, dicomWebSeriesUrl, dicomWebStats, IndexStore, listDicomWebSeries, openSlide } from '../../../engine/index.js';
import { buildConfig, startServer } from '../../../api/index.js';
import { CONVERSIONS_ROOT, DICOMIZER_MISSING, convertedSlide, hasDicomizer, type Conversion } from '../../reference/dicomizer.js';
import { ORTHANC_MISSING, hasOrthanc, startOrthanc, type RunningOrthanc } from '../../reference/orthanc.js';
import { runTessera } from '../../run-cli.js';
import { SHARED_MISSING, SLIDES, hasSharedData } from '../../shared-data.js';

const missing = !hasSharedData ? SHARED_MISSING : !hasDicomizer ? DICOMIZER_MISSING : !hasOrthanc ? ORTHANC_MISSING : '';
const USER = { name: 'tessera', password: 'not-a-real-secret-4d1f' };
const CONVERSIONS: Conversion[] = [
  { source: 'derived/cmu1-small-pyramid-jpeg.tif', compression: 'jpeg2000', layout: 'split' },
  { source: 'CMU-1-Small-Region.svs', compression: 'jpeg', layout: 'one' },
  { source: 'ndpi/test3-DAPI-2-387.ndpi', compression: 'none', layout: 'one', viaOpenSlide: true },
];

describe.skipIf(missing !== '')(`DICOMweb slides from a real Orthanc ${missing}`, () => {
  let orthanc: RunningOrthanc;
  const folders: string[] = [];
  const seriesOf: string[] = [];
  let study = '';
  let indexDir = '';

  beforeAll(async () => {
    orthanc = await startOrthanc({ user: USER });
    for (const conversion of CONVERSIONS) {
      const folder = await convertedSlide(conversion);
      folders.push(folder);
      const [series] = await orthanc.upload(folder);
      seriesOf.push(series as string);
    }
    configureDicomWeb({ authorization: orthanc.authorization, retries: 3 });
  });

  afterAll(async () => {
    configureDicomWeb({ authorization: '' });
    await orthanc?.stop();
  });

  it('lists slide-microscopy series with QIDO-RS, all or by study and series', async () => {
    const all = await listDicomWebSeries(orthanc.dicomWeb);
    expect(all.map((record) => record.series).sort()).toEqual([...seriesOf].sort());
    const first = all.find((record) => record.series === seriesOf[0]);
    study = first?.study ?? '';
    expect(first?.url).toBe(dicomWebSeriesUrl({ base: orthanc.dicomWeb, study, series: seriesOf[0] as string }));
    expect((await listDicomWebSeries(orthanc.dicomWeb, { studies: [study] })).map((record) => record.series)).toEqual([seriesOf[0]]);
    expect((await listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[1] as string] })).map((record) => record.series)).toEqual([seriesOf[1]]);
  });

  it('reads every level of every series with the same pixels as the DICOM files', async () => {
    const all = await listDicomWebSeries(orthanc.dicomWeb);
    for (const [index, folder] of folders.entries()) {
      const record = all.find((candidate) => candidate.series === seriesOf[index]);
      const web = await openSlide(record?.url as string);
      const file = await openSlide(folder);
      try {
        expect(web.levels).toEqual(file.levels);
        expect(web.mpp).toEqual(file.mpp);
        for (const [level, { width, height, downsample }] of web.levels.entries()) {
          const w = Math.min(300, width);
          const h = Math.min(300, height);
          for (const [lvlX, lvlY] of [[0, 0], [Math.floor((width - w) / 2), Math.floor((height - h) / 2)], [width - w, height - h]] as const) {
            const baseX = Math.round(lvlX * downsample);
            const baseY = Math.round(lvlY * downsample);
            const ours = await web.readRegion(level, baseX, baseY, w, h);
            const theirs = await file.readRegion(level, baseX, baseY, w, h);
            expect(Buffer.compare(ours.data, theirs.data), `${seriesOf[index]} level ${level} at (${lvlX}, ${lvlY})`).toBe(0);
          }
        }
      } finally {
        web.close();
        file.close();
      }
    }
  });

  it('fetches only the frames a read needs, several in one request', async () => {
    const url = dicomWebSeriesUrl({ base: orthanc.dicomWeb, study: (await listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[0] as string] }))[0]?.study as string, series: seriesOf[0] as string });
    const slide = await openSlide(url);
    const before = { ...dicomWebStats };
    // 256 px frames: this region touches 2 × 2 frames of level 0 (108 frames in 4 instances).
    await slide.readRegion(0, 300, 300, 300, 300);
    expect(dicomWebStats.frames - before.frames).toBe(4);
    expect(dicomWebStats.requests - before.requests).toBeLessThanOrEqual(2);
    slide.close();
  });

  it('retries 5xx answers with backoff and reads on', async () => {
    // A proxy in front of Orthanc that answers 503 to every other request.
    let count = 0;
    const target = new URL(orthanc.url);
    const proxy: Server = createServer((req, res) => {
      if (count++ % 2 === 0) {
        res.writeHead(503).end('busy');
        return;
      }
      const upstream = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const port = (proxy.address() as { port: number }).port;
    try {
      const before = dicomWebStats.retries;
      const records = await listDicomWebSeries(`http://127.0.0.1:${port}/dicom-web`, { series: [seriesOf[1] as string] });
      const slide = await openSlide(records[0]?.url as string);
      const region = await slide.readRegion(0, 0, 0, 256, 256);
      expect(region.width).toBe(256);
      expect(dicomWebStats.retries - before).toBeGreaterThanOrEqual(2);
      slide.close();
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('refuses wrong credentials with SLIDE_ACCESS_DENIED and never repeats them', async () => {
    configureDicomWeb({ authorization: 'Basic d3Jvbmc6c2VjcmV0LXRoYXQtbXVzdC1ub3Qtc2hvdw==' });
    try {
      const error = await listDicomWebSeries(orthanc.dicomWeb).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ code: 'SLIDE_ACCESS_DENIED' });
      expect(String((error as Error).message)).not.toMatch(/d3Jvbmc|secret|127\.0\.0\.1/);
    } finally {
      configureDicomWeb({ authorization: orthanc.authorization });
    }
  });

  it('tessera info, region and tiles accept a series URL; index --dicomweb indexes the server\'s series; search finds slides like a new case', async () => {
    const env = { TESSERA_DICOMWEB_AUTHORIZATION: orthanc.authorization as string };
    const [record] = await listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[1] as string] });
    const info = await runTessera(['info', record?.url as string], env);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ format: 'dicom', width: 2220, height: 2967 });
    const out = mkdtempSync(join(tmpdir(), 'tessera-dicomweb-'));
    indexDir = join(out, 'index');
    const region = await runTessera(['region', record?.url as string, '--x', '600', '--y', '800', '--width', '300', '--height', '300', '--out', join(out, 'region.png')], env);
    expect(region.code, region.stderr).toBe(0);
    const tiles = await runTessera(['tiles', record?.url as string, '--mpp', '1', '--min-tissue', '0.5'], env);
    expect(tiles.code, tiles.stderr).toBe(0);
    expect(tiles.stdout.trim().split('\n').length).toBeGreaterThan(3);
    const unauthorised = await runTessera(['info', record?.url as string]);
    expect(unauthorised.code).toBe(1);
    expect(unauthorised.stderr).toMatch(/SLIDE_ACCESS_DENIED/);
    const index = await runTessera(['index', '--dicomweb', orthanc.dicomWeb, '--series', seriesOf[1] as string, '--out', join(out, 'index'), '--mpp', '2'], env);
    expect(index.code, index.stderr).toBe(0);
    expect(index.stdout).toMatch(/indexed 1 slides \(\d+ tiles\)/);
    expect(index.stderr + index.stdout).not.toContain(orthanc.authorization as string);

    // New cases, not in the index: the same tissue (the pyramidal TIFF, JPEG 2000) over DICOMweb
    // and from its files finds the indexed CMU slide, with the mosaic's time on stderr.
    const [query] = await listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[0] as string] });
    for (const source of [['--dicomweb-series', query?.url as string], ['--slide-file', folders[0] as string]]) {
      const search = await runTessera(['search', '--index', join(out, 'index'), '--mode', 'slide', ...source, '-k', '3'], env);
      expect(search.code, search.stderr).toBe(0);
      expect(search.stderr).toMatch(/mosaic of .*: \d+ tiles from \d+ embedded of \d+ tissue tiles in \d+ ms/);
      const answer = JSON.parse(search.stdout);
      expect(answer.query.mosaicTiles).toBeGreaterThan(0);
      expect(answer.results[0]).toMatchObject({ slideId: seriesOf[1] });
      expect(answer.results[0].score).toBeGreaterThan(0.5);
    }
  });

  it('index --dicomweb takes --metadata: rows matched to series by series UID, else study UID', async () => {
    const env = { TESSERA_DICOMWEB_AUTHORIZATION: orthanc.authorization as string };
    const [cmu, dapi] = await Promise.all([listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[1] as string] }), listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[2] as string] })]);
    const out = mkdtempSync(join(tmpdir(), 'tessera-dicomweb-metadata-'));
    const csv = join(out, 'slides.csv');
    writeFileSync(csv, ['slide_id,dicom_study_uid,patient_id,organ,dataset', `${cmu[0]?.series},,P1,skin,cmu`, `,${dapi[0]?.study},P2,kidney,stritt`].join('\n'));
    const series = [cmu, dapi].flatMap((records) => ['--series', records[0]?.series as string]);
    const index = await runTessera(['index', '--dicomweb', orthanc.dicomWeb, ...series, '--metadata', csv, '--out', join(out, 'index'), '--mpp', '4', '--min-tissue', '0'], env);
    expect(index.code, index.stderr).toBe(0);
    expect(index.stderr).toContain('metadata: 1 series matched by series UID, 1 by study UID, 0 without metadata; 0 rows matched no listed series');
    const store = IndexStore.open(join(out, 'index'), { readOnly: true, graph: false });
    try {
      expect(store.shardFor(seriesOf[1] as string)?.slide(seriesOf[1] as string)?.metadata).toMatchObject({ patient_id: 'P1', organ: 'skin', dataset: 'cmu', dicom_series_uid: seriesOf[1] });
      expect(store.shardFor(seriesOf[2] as string)?.slide(seriesOf[2] as string)?.metadata).toMatchObject({ patient_id: 'P2', organ: 'kidney', dataset: 'stritt', dicom_study_uid: dapi[0]?.study });
      // The server is recorded as the index's source: a server started anywhere reads its series.
      expect(store.info.sources?.dicomWebServers).toEqual([orthanc.dicomWeb]);
    } finally {
      await store.close();
    }
  });

  it('POST /v1/search/slide takes a new case: a file under a slide root or a series on a configured DICOMweb server', async () => {
    expect(indexDir).not.toBe('');
    const scratch = mkdtempSync(join(tmpdir(), 'tessera-dicomweb-api-'));
    const config = join(scratch, 'config.json');
    writeFileSync(config, JSON.stringify({ dicomWebServers: [orthanc.dicomWeb] }));
    const server = await startServer(buildConfig({ index: indexDir, port: '0', 'slide-roots': CONVERSIONS_ROOT, 'no-viewer': true, threads: '1', config }, { TESSERA_LOG_LEVEL: 'warn' }, join(scratch, 'models')));
    const post = async (json: unknown) => {
      const response = await fetch(`${server.url}/v1/search/slide`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) });
      return { status: response.status, body: (await response.json()) as any };
    };
    try {
      const [query] = await listDicomWebSeries(orthanc.dicomWeb, { series: [seriesOf[0] as string] });
      const byFile = await post({ slidePath: folders[0], k: 3 });
      expect(byFile.status, JSON.stringify(byFile.body)).toBe(200);
      expect(byFile.body.query).toMatchObject({ newCase: 'file' });
      expect(byFile.body.query.ms.total).toBeGreaterThan(0);
      expect(byFile.body.results[0]).toMatchObject({ slideId: seriesOf[1] });
      const bySeries = await post({ dicomwebSeries: query?.url, k: 3 });
      expect(bySeries.status, JSON.stringify(bySeries.body)).toBe(200);
      expect(bySeries.body.results[0]).toMatchObject({ slideId: seriesOf[1] });
      // Outside the slide roots, or on a server the config does not name: refused.
      const outside = await post({ slidePath: join(SLIDES, 'CMU-1-Small-Region.svs') });
      expect(outside).toMatchObject({ status: 403, body: { error: 'SLIDE_ACCESS_DENIED' } });
      const elsewhere = await post({ dicomwebSeries: (query?.url as string).replace(orthanc.dicomWeb, 'http://127.0.0.1:9/dicom-web') });
      expect(elsewhere).toMatchObject({ status: 403, body: { error: 'SLIDE_ACCESS_DENIED' } });
      expect((await post({ slidePath: folders[0], slideId: 'x' })).status).toBe(400);
      // Slides indexed over DICOMweb are served to the viewer from the same server.
      const thumbnail = await fetch(`${server.url}/v1/slides/${seriesOf[1]}/thumbnail`);
      expect(thumbnail.status).toBe(200);
      expect(thumbnail.headers.get('content-type')).toMatch(/^image\//);
      // New cases for the viewer: the series not indexed are listed, shown and searched by a region.
      const cases = (await (await fetch(`${server.url}/v1/cases`)).json()) as { cases: Array<{ path: string; source: string }> };
      const listed = cases.cases.filter((entry) => entry.source === 'dicomweb').map((entry) => entry.path);
      expect(listed).toContain(query?.url);
      expect(listed.some((url) => url.endsWith(seriesOf[1] as string))).toBe(false);
      const caseUrl = `${server.url}/v1/cases/${encodeURIComponent(query?.url as string)}`;
      expect((await fetch(`${caseUrl}_files/8/0_0.jpeg`)).headers.get('content-type')).toBe('image/jpeg');
      const regionSearch = await fetch(`${server.url}/v1/cases/search/region`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ slidePath: query?.url, x: 600, y: 800, width: 448, height: 448, k: 3 }) });
      expect(regionSearch.status).toBe(200);
      expect(((await regionSearch.json()) as { results: Array<{ slideId: string }> }).results[0]?.slideId).toBe(seriesOf[1]);
      expect((await fetch(`${server.url}/v1/cases/${encodeURIComponent((query?.url as string).replace(orthanc.dicomWeb, 'http://127.0.0.1:9/dicom-web'))}`)).status).toBe(403);
    } finally {
      await server.close();
    }
  });
});
