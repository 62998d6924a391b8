/** Runs the `tessera` command as a child process, the way a user does. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from './shared-data.js';

const run = promisify(execFile);
export const TESSERA_BIN = join(PROJECT_ROOT, 'indexer', 'bin', 'tessera.js');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runTessera(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [TESSERA_BIN, ...args], { timeout: 120_000, maxBuffer: 64 * 2 ** 20, env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as CliResult;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
