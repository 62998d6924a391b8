#!/usr/bin/env node
// Entry point of the `tessera` command: registers tsx so the TypeScript sources run as they are.
// `serve` belongs to the API; every other command to the indexer's CLI.
//
// A long command line is handed to a child process through a private file instead: ONNX Runtime
// (1.29) reads /proc/self/cmdline when it creates a session and matches it with a recursive
// std::regex, which overflows the stack and kills the process with SIGSEGV once the command line
// passes roughly 20 KB (about 250 image paths for `tessera embed`). The child's own command line
// stays short; its arguments are the same.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

/** Command lines longer than this (bytes of arguments) are handed over through a file. */
const LONG_COMMAND_LINE = 4096;
const ARGV_FILE = 'TESSERA_ARGV_FILE';

const handedOver = handedOverArguments();
const argv = handedOver ?? process.argv.slice(2);
// A child that received its arguments by file never hands them on again.
if (handedOver === undefined && Buffer.byteLength(argv.join('\0')) > LONG_COMMAND_LINE) {
  process.exitCode = await runWithShortCommandLine(argv);
} else {
  register();
  // `tessera help serve` is `tessera serve --help`.
  const serveArgs = argv[0] === 'serve' ? argv.slice(1) : argv[0] === 'help' && argv[1] === 'serve' ? ['--help'] : undefined;
  const { main } = serveArgs ? await import('../../api/serve-cli.ts') : await import('../cli/index.ts');
  const code = await main(serveArgs ?? argv);
  if (code !== 'serving') process.exitCode = code;
}

/** The arguments a parent process wrote for this one, read once and removed. */
function handedOverArguments() {
  const file = process.env[ARGV_FILE];
  if (file === undefined) return undefined;
  delete process.env[ARGV_FILE];
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } finally {
    rmSync(join(file, '..'), { recursive: true, force: true });
  }
}

/** Runs this command again in a child whose command line is short; resolves to its exit code. */
function runWithShortCommandLine(args) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-argv-'));
  const file = join(dir, 'argv.json');
  writeFileSync(file, JSON.stringify(args), { mode: 0o600 });
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], { stdio: 'inherit', env: { ...process.env, [ARGV_FILE]: file } });
  const forward = (signal) => child.kill(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, forward);
  return new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      resolve(code ?? (signal === 'SIGINT' ? 130 : 1));
    });
    child.on('error', () => resolve(1));
  });
}
