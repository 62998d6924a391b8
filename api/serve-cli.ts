/**
 * `tessera serve`: parses flags into a ServeConfig, starts the service and prints its URL.
 * Exit 1 when the config or the index is refused (message on stderr), 2 on bad usage.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { configureDicomWeb, isTesseraError } from '../engine/index.js';
import { buildConfig, type ServeFlags } from './config.js';
import { startServer } from './server.js';

const SERVE_OPTIONS = {
  role: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  index: { type: 'string' },
  shards: { type: 'string' },
  nodes: { type: 'string' },
  replicas: { type: 'string' },
  config: { type: 'string' },
  'slide-roots': { type: 'string' },
  'models-dir': { type: 'string' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'decode-threads': { type: 'string' },
  'preprocess-threads': { type: 'string' },
  'deadline-ms': { type: 'string' },
  'no-viewer': { type: 'boolean' },
  'no-model': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const SERVE_USAGE = `Usage:
  tessera serve --index INDEX [--host 127.0.0.1] [--port 8080]            one process, every local shard (role all)
  tessera serve --role shard --index INDEX [--shards 0,1] --port P        a shard node
  tessera serve --role router --nodes URL,URL [--replicas URL|URL,URL]    embeds queries, fans out, merges
Options: --config FILE.json (API keys, slide roots, limits), --slide-roots DIR,DIR (default: the slide
  folders and DICOMweb servers recorded in the index when it was built), --models-dir DIR,
  --device auto|cpu|cuda[:N], --threads N (search threads), --decode-threads N (JPEG 2000 / JPEG-LS
  decoding threads; 1: on the event loop; default half the cores, 2 to 4), --preprocess-threads N
  (query-image preprocessing threads; 0: on the event loop; default half the cores, 1 to 2), --deadline-ms MS, --no-viewer,
  --no-model (serve queries by stored vectors only: tile references and slide mosaics).
Environment: TESSERA_CLUSTER_TOKEN (router ↔ shard nodes), TESSERA_LOG_LEVEL, TESSERA_DICOMWEB_AUTHORIZATION
(for new-case DICOMweb series on the config file's dicomWebServers).`;

/** The flags of `serve`, parsed; throws with the reason when they are not valid. */
export function parseServeFlags(args: string[]): ServeFlags & { help?: boolean } {
  return parseArgs({ args, options: SERVE_OPTIONS, allowPositionals: false, strict: true }).values;
}

/** Checks a `serve` command line without starting anything: null when valid, else the reason. */
export function checkServeInvocation(args: string[]): string | null {
  try {
    const flags = parseServeFlags(args);
    // Config files named in deployment manifests live on the target machine: check the rest.
    buildConfig({ ...flags, config: undefined }, {}, '/nonexistent');
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

export async function main(args: string[]): Promise<number | 'serving'> {
  let flags: ReturnType<typeof parseServeFlags>;
  try {
    flags = parseServeFlags(args);
  } catch (error) {
    process.stderr.write(`tessera serve: ${(error as Error).message}\n\n${SERVE_USAGE}\n`);
    return 2;
  }
  if (flags.help) {
    process.stdout.write(`${SERVE_USAGE}\n`);
    return 0;
  }
  try {
    const config = buildConfig(flags, process.env, join(process.env.TESSERA_HOME ?? join(homedir(), '.tessera'), 'models'));
    // New cases may be DICOMweb series: the server's credentials come from the environment only.
    if (process.env.TESSERA_DICOMWEB_AUTHORIZATION) configureDicomWeb({ authorization: process.env.TESSERA_DICOMWEB_AUTHORIZATION });
    const server = await startServer(config);
    process.stdout.write(`Tessera ${config.role === 'all' ? '' : `${config.role} node `}is serving at ${server.url}/  (API docs: ${server.url}/docs)\n`);
    const stop = (): void => {
      void server.close().then(() => process.exit(0));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return 'serving';
  } catch (error) {
    if (isTesseraError(error)) {
      process.stderr.write(`tessera serve: ${error.message} [${error.code}]\n`);
      return 1;
    }
    process.stderr.write(`tessera serve: ${(error as Error).stack ?? String(error)}\n`);
    return 1;
  }
}
