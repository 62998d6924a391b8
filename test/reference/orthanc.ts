/**
 * A real Orthanc (Debian's orthanc + orthanc-dicomweb) for tests and benchmarks: started on
 * 127.0.0.1 on free ports with a temporary storage folder, instances uploaded through its REST
 * API, stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../free-port.js';

export const ORTHANC = '/usr/sbin/Orthanc';
/** The DICOMweb plugin as Debian's orthanc-dicomweb installs it (`dpkg -L orthanc-dicomweb`). */
export const DICOMWEB_PLUGIN = ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so', '/usr/lib/orthanc/libOrthancDicomWeb.so.1.7'].find((path) => existsSync(path));
export const hasOrthanc = existsSync(ORTHANC) && DICOMWEB_PLUGIN !== undefined;
export const ORTHANC_MISSING = 'Orthanc with its DICOMweb plugin not installed (apt-get install orthanc orthanc-dicomweb)';

export interface RunningOrthanc {
  /** REST root, e.g. http://127.0.0.1:PORT */
  url: string;
  /** DICOMweb root: `${url}/dicom-web` */
  dicomWeb: string;
  /** `Basic …` for the user the server was started with, when started with one. */
  authorization: string | undefined;
  /** Uploads every .dcm file of a folder; returns the series UIDs Orthanc reports. */
  upload(folder: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts Orthanc; with `user`, HTTP basic authentication is required for every request. */
export async function startOrthanc(options: { user?: { name: string; password: string } } = {}): Promise<RunningOrthanc> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-orthanc-'));
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const config = {
    Name: 'tessera-test',
    StorageDirectory: join(dir, 'storage'),
    IndexDirectory: join(dir, 'storage'),
    HttpPort: httpPort,
    DicomPort: dicomPort,
    HttpBindAddress: '127.0.0.1',
    DicomBindAddress: '127.0.0.1',
    RemoteAccessAllowed: false,
    AuthenticationEnabled: options.user !== undefined,
    RegisteredUsers: options.user ? { [options.user.name]: options.user.password } : {},
    Plugins: [DICOMWEB_PLUGIN],
    DicomWeb: { Enable: true, Root: '/dicom-web/' },
  };
  const configPath = join(dir, 'orthanc.json');
  writeFileSync(configPath, JSON.stringify(config));
  const log: string[] = [];
  const child: ChildProcess = spawn(ORTHANC, [configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => log.push(chunk.toString()));
  const url = `http://127.0.0.1:${httpPort}`;
  const authorization = options.user ? `Basic ${Buffer.from(`${options.user.name}:${options.user.password}`).toString('base64')}` : undefined;
  const headers: Record<string, string> = authorization ? { authorization } : {};
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`Orthanc exited (${child.exitCode}): ${log.join('').slice(-2000)}`);
    }
    try {
      const response = await fetch(`${url}/system`, { headers });
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Orthanc did not start within 20 s: ${log.join('').slice(-2000)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    dicomWeb: `${url}/dicom-web`,
    authorization,
    async upload(folder) {
      const series = new Set<string>();
      for (const file of readdirSync(folder).filter((name) => name.endsWith('.dcm')).sort()) {
        const response = await fetch(`${url}/instances`, { method: 'POST', headers: { ...headers, 'content-type': 'application/dicom' }, body: readFileSync(join(folder, file)) });
        if (!response.ok) throw new Error(`Orthanc refused ${file}: ${response.status}`);
        const answer = (await response.json()) as { ParentSeries: string };
        const tags = (await (await fetch(`${url}/series/${answer.ParentSeries}`, { headers })).json()) as { MainDicomTags: { SeriesInstanceUID: string } };
        series.add(tags.MainDicomTags.SeriesInstanceUID);
      }
      return [...series];
    },
    stop,
  };
}
