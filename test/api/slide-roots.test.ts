/**
 * Serving what was indexed (issue 15): the index records the slide folders it was built from,
 * `tessera serve` started from any other folder reads them by default, and slides outside the
 * roots it is given are counted at start-up and refused with advice.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readIndexInfo, recordSources } from '../../engine/index.js';
import { runTessera, TESSERA_BIN } from '../run-cli.js';
import { hasSharedData, SHARED_MISSING, slidePath } from '../shared-data.js';

interface ServeProcess {
  url: string;
  /** Everything it printed to stdout so far (pino's JSON lines and the "serving at" line). */
  stdout: () => string;
  /** The first stdout line holding `text`, once printed (pino writes asynchronously). */
  lineWith: (text: string) => Promise<string>;
  child: ChildProcess;
}

/** Starts `tessera serve` as a user does, in `cwd`, and waits for its URL. */
function startServe(args: string[], cwd: string, home: string): Promise<ServeProcess> {
  const child = spawn(process.execPath, [TESSERA_BIN, 'serve', '--port', '0', '--no-model', '--no-viewer', '--threads', '1', ...args], { cwd, env: { ...process.env, TESSERA_HOME: home } });
  let stdout = '';
  let stderr = '';
  const lineWith = async (text: string): Promise<string> => {
    for (let waited = 0; waited < 10_000; waited += 50) {
      const line = stdout.split('\n').find((candidate) => candidate.includes(text));
      if (line) return line;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`tessera serve printed no line with ${text}: ${stdout}`);
  };
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /serving at (http:\/\/\S+?)\/\s/.exec(stdout);
      if (match) resolve({ url: match[1] as string, stdout: () => stdout, lineWith, child });
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`tessera serve exited ${code}: ${stderr}`)));
  });
}

describe.skipIf(!hasSharedData)(`serving an index built elsewhere ${hasSharedData ? '' : SHARED_MISSING}`, () => {
  let scratch: string;
  let slides: string;
  let index: string;
  const running: ChildProcess[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'tessera-roots-'));
    slides = join(scratch, 'data', 'slides');
    mkdirSync(slides, { recursive: true });
    copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(slides, 'crop.ome.tif'));
    index = join(scratch, 'index');
    const result = await runTessera(['index', '--slides', slides, '--out', index, '--device', 'cpu', '--min-tissue', '0'], { TESSERA_HOME: join(scratch, 'home') });
    expect(result.code, result.stderr).toBe(0);
  }, 120_000);

  afterAll(() => {
    for (const child of running) child.kill('SIGTERM');
    rmSync(scratch, { recursive: true, force: true });
  });

  it('records the slide folder it was built from in index.json', () => {
    expect(readIndexInfo(index).sources).toEqual({ folders: [slides], dicomWebServers: [] });
  });

  it('shows thumbnails and Deep Zoom tiles when served from another folder without flags', async () => {
    const elsewhere = mkdtempSync(join(scratch, 'cwd-'));
    const server = await startServe(['--index', index], elsewhere, join(scratch, 'home'));
    running.push(server.child);
    const thumbnail = await fetch(`${server.url}/v1/slides/crop.ome.tif/thumbnail`);
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers.get('content-type')).toBe('image/jpeg');
    expect((await fetch(`${server.url}/v1/slides/crop.ome.tif_files/10/0_0.jpeg`)).status).toBe(200);
    expect(JSON.parse(await server.lineWith('slidesOutsideRoots'))).toMatchObject({ slidesOutsideRoots: 0, slideRootsFrom: 'index' });
  }, 60_000);

  it('counts slides outside --slide-roots at start-up, without paths, and refuses their images with advice', async () => {
    const elsewhere = mkdtempSync(join(scratch, 'roots-'));
    const server = await startServe(['--index', index, '--slide-roots', elsewhere], elsewhere, join(scratch, 'home'));
    running.push(server.child);
    expect(JSON.parse(await server.lineWith('slidesOutsideRoots'))).toMatchObject({ slidesOutsideRoots: 1, slideRoots: 1, slideRootsFrom: 'flag' });
    expect(server.stdout()).not.toContain(scratch);
    const response = await fetch(`${server.url}/v1/slides/crop.ome.tif/thumbnail`);
    expect(response.status).toBe(403);
    const body = (await response.json()) as { error: string; message: string };
    expect(body.error).toBe('SLIDE_ACCESS_DENIED');
    expect(body.message).toContain('--slide-roots');
    expect(body.message).not.toContain(scratch);
  }, 60_000);

  it('records both folders when two partition jobs from different folders start together', async () => {
    const folders = ['a', 'b'].map((name) => join(scratch, 'parallel', name));
    for (const folder of folders) {
      mkdirSync(folder, { recursive: true });
      copyFileSync(slidePath('derived/cmu1-crop1024-pyramid.ome.tif'), join(folder, `${folder.slice(-1)}.ome.tif`));
    }
    const out = join(scratch, 'parallel', 'index');
    const runs = await Promise.all(
      folders.map((folder, i) => runTessera(['index', '--slides', folder, '--out', out, '--shards', '2', '--partition', `${i}/2`, '--device', 'cpu', '--mpp', '4', '--min-tissue', '0'], { TESSERA_HOME: join(scratch, 'home') })),
    );
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    expect(readIndexInfo(out).sources).toEqual({ folders, dicomWebServers: [] });
  }, 120_000);

  it('keeps every source when jobs record theirs at the same time', async () => {
    const folders = Array.from({ length: 8 }, (_, i) => join(scratch, `job-${i}`));
    await Promise.all(folders.map((folder, i) => recordSources(index, { folders: [folder], dicomWebServers: i === 0 ? ['http://pacs.example/dicom-web'] : [] })));
    const info = JSON.parse(readFileSync(join(index, 'index.json'), 'utf8')) as ReturnType<typeof readIndexInfo>;
    expect(info.sources?.folders).toEqual([...folders, slides].sort());
    expect(info.sources?.dicomWebServers).toEqual(['http://pacs.example/dicom-web']);
    expect(info.model.id).toBe(readIndexInfo(index).model.id);
  });
});
