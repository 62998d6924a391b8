/**
 * The `tessera` command line: finds the command, answers --help, and turns what a command throws
 * into an exit code: a UsageError into its message and 2, a TesseraError into its message and
 * code and 1. Each command parses its own flags (flags.ts) and calls the engine.
 */
import { readFileSync } from 'node:fs';
import { TesseraError, configureDicomWeb, crashAtStep, isTesseraError, isWriteStep } from '../../engine/index.js';
import type { Command } from './command.js';
import { COMMANDS, commandNamed } from './commands.js';
import { UsageError, checkFlagsOnly } from './flags.js';
import { MODELS_DETAILS } from './models.js';
import { THREADS_DETAILS } from './region.js';
import { DICOMWEB_DETAILS } from './slides.js';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

const EXIT_CODES = 'Exit codes: 0 success, 1 the slide or request was refused (message on stderr), 2 bad usage.';

/** What `tessera --help` prints: every command's synopsis, then the notes they share. */
export function usage(): string {
  return [
    'Usage: tessera <command> [options]',
    '',
    'Commands:',
    ...COMMANDS.map((command) => command.usage),
    `  serve --index INDEX …              serve the index over HTTP with the web viewer (tessera serve --help)`,
    '',
    `Run "tessera <command> --help" (or "tessera help <command>") for one command's usage.`,
    '',
    MODELS_DETAILS,
    '',
    DICOMWEB_DETAILS,
    '',
    THREADS_DETAILS.replace('Options:', 'Options for region and tiles:'),
    '',
    EXIT_CODES,
  ].join('\n');
}

/** What `tessera NAME --help` prints. */
export function commandUsage(command: Command): string {
  return ['Usage:', command.usage, ...(command.details ? ['', command.details] : []), '', EXIT_CODES].join('\n');
}

/** Whether the arguments ask for help (before any `--`, after which everything is a positional). */
function asksForHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
}

/**
 * Checks that `argv` (without the leading `tessera`) names a command and flags it accepts,
 * without running it: for deployment files and scripts that build command lines.
 * @returns null when valid, else the reason
 */
export async function checkInvocation(argv: string[]): Promise<string | null> {
  const [name, ...args] = argv;
  const command = name === undefined ? undefined : commandNamed(name);
  if (!command) return `unknown command '${name ?? ''}'`;
  if (asksForHelp(args)) return null;
  return checkFlagsOnly(() => command.run(args));
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || (name === 'help' && args.length === 0)) {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const helpFor = name === 'help' ? args[0] : undefined;
  const command = commandNamed(helpFor ?? name);
  if (!command) {
    process.stderr.write(`tessera: unknown command '${helpFor ?? name}'\n\n${usage()}\n`);
    return EXIT_USAGE;
  }
  if (helpFor !== undefined || asksForHelp(args)) {
    process.stdout.write(`${commandUsage(command)}\n`);
    return EXIT_OK;
  }
  installCrashStep(process.env.TESSERA_CRASH_AT);
  try {
    configureDicomWebFromEnvironment();
    await command.run(args);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`tessera ${name}: ${error.message}\n`);
      return EXIT_USAGE;
    }
    if (isTesseraError(error)) {
      process.stderr.write(`tessera ${name}: ${error.message} [${error.code}]\n`);
      return EXIT_FAILED;
    }
    process.stderr.write(`tessera ${name}: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT_FAILED;
  }
}

/**
 * Fault-injection tests set TESSERA_CRASH_AT=step[@skip] to make a writer die with SIGKILL at a
 * named step of the write protocols (engine/index/write-steps.ts). Read once, here.
 */
function installCrashStep(setting: string | undefined): void {
  if (!setting) return;
  const [step = '', skip = '0'] = setting.split('@');
  if (isWriteStep(step)) crashAtStep(step, Number(skip) || 0);
}

/** The DICOMweb Authorization header: from the environment or a file (never a flag: flags show in `ps`). */
function configureDicomWebFromEnvironment(): void {
  const file = process.env.TESSERA_DICOMWEB_AUTHORIZATION_FILE;
  let authorization = process.env.TESSERA_DICOMWEB_AUTHORIZATION;
  if (file) {
    try {
      authorization = readFileSync(file, 'utf8').trim();
    } catch (error) {
      throw new TesseraError('INVALID_ARGUMENT', `cannot read TESSERA_DICOMWEB_AUTHORIZATION_FILE: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`, { cause: error });
    }
  }
  if (authorization) configureDicomWeb({ authorization });
}
