/**
 * A real index of shared slides (two shards, metadata in two datasets) built with the CLI, and
 * real servers on 127.0.0.1 over it, for the API tests.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildConfig, hashKey, startServer, type RunningServer } from '../../api/index.js';
import type { ServeFlags } from '../../api/config.js';
import { runTessera } from '../run-cli.js';
import { slidePath } from '../shared-data.js';

export const KEYS = { all: 'key-all-datasets-0123456789', stritt: 'key-stritt-only-0123456789', limited: 'key-rate-limited-0123456789' } as const;

export interface ApiFixture {
  scratch: string;
  slides: string;
  index: string;
  config: string;
}

/** Slides S1, S2 (dataset cmu, patient P1, skin) and S3 (dataset stritt, patient P2, kidney), in 2 shards. */
export async function buildApiFixture(): Promise<ApiFixture> {
  const scratch = mkdtempSync(join(tmpdir(), 'tessera-api-'));
  const slides = join(scratch, 'slides');
  mkdirSync(slides);
  copyFileSync(slidePath('CMU-1-Small-Region.svs'), join(slides, 'cmu.svs'));
  copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(slides, 'crop.ome.tif'));
  copyFileSync(slidePath('ndpi/test3-DAPI-2-387.ndpi'), join(slides, 'dapi.ndpi'));
  const csv = join(slides, 'slides.csv');
  writeFileSync(
    csv,
    ['slide_id,path,patient_id,dataset,organ,stain,species,diagnosis', 'S1,cmu.svs,P1,cmu,skin,HE,human,normal', 'S2,crop.ome.tif,P1,cmu,skin,HE,human,nevus', 'S3,dapi.ndpi,P2,stritt,kidney,DAPI,mouse,none'].join('\n'),
  );
  const index = join(scratch, 'index');
  const result = await runTessera(['index', '--slides', slides, '--metadata', csv, '--out', index, '--shards', '2', '--device', 'cpu', '--min-tissue', '0.3'], { TESSERA_HOME: join(scratch, 'home') });
  if (result.code !== 0) throw new Error(`indexing the API fixture failed: ${result.stderr}`);
  const config = writeKeysConfig(scratch);
  return { scratch, slides, index, config };
}

/** The keys file of the API tests in `scratch`: KEYS.all (admin, every dataset), stritt (its dataset only), limited (5 a minute). */
export function writeKeysConfig(scratch: string): string {
  const config = join(scratch, 'config.json');
  writeFileSync(
    config,
    JSON.stringify({
      keys: [
        { id: 'all', sha256: hashKey(KEYS.all), datasets: ['*'], admin: true },
        { id: 'stritt', sha256: hashKey(KEYS.stritt), datasets: ['stritt'], admin: false },
        { id: 'limited', sha256: hashKey(KEYS.limited), datasets: ['*'], admin: false, rateLimitPerMinute: 5 },
      ],
    }),
  );
  return config;
}

/** Starts a real server on 127.0.0.1 (a free port unless given). */
export function serve(fixture: ApiFixture, flags: ServeFlags): Promise<RunningServer> {
  return startServer(buildConfig({ port: '0', 'slide-roots': fixture.slides, 'no-viewer': true, threads: '1', ...flags }, {}, join(fixture.scratch, 'home', 'models')));
}

/** fetch against a server with a key; JSON bodies are sent as JSON. */
export function client(baseUrl: string, key?: string) {
  return async (path: string, init: { method?: string; json?: unknown; body?: string | FormData; headers?: Record<string, string> } = {}) => {
    const headers: Record<string, string> = { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(init.json === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers };
    const response = await fetch(`${baseUrl}${path}`, { method: init.method ?? (init.json === undefined && init.body === undefined ? 'GET' : 'POST'), headers, ...(init.json === undefined ? (init.body === undefined ? {} : { body: init.body }) : { body: JSON.stringify(init.json) }) });
    const type = response.headers.get('content-type') ?? '';
    const body = type.includes('ndjson') ? await response.text() : type.includes('json') ? await response.json() : type.startsWith('text/') || type.includes('xml') ? await response.text() : Buffer.from(await response.arrayBuffer());
    return { status: response.status, type, body: body as any };
  };
}
