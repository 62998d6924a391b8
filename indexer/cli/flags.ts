/**
 * Flag parsing shared by every command: one strict parse into typed values, number and enum
 * checks with messages that name the flag and the bad value, and the check-only mode
 * (checkInvocation) in which a command stops as soon as its flags have parsed.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseFilter } from '../../engine/index.js';

/** Bad usage: the CLI prints the message and exits 2. */
export class UsageError extends Error {}

/** Thrown once a command's flags have parsed when only the invocation is being checked: nothing runs. */
export class FlagsParsed extends Error {}

let checkOnly = false;

/**
 * Runs `command` only as far as its flag parsing.
 * @returns null when the flags parsed, else the reason they did not
 */
export async function checkFlagsOnly(command: () => Promise<void>): Promise<string | null> {
  checkOnly = true;
  try {
    await command();
    return 'the command ran without parsing flags';
  } catch (error) {
    if (error instanceof FlagsParsed) return null;
    return (error as Error).message;
  } finally {
    checkOnly = false;
  }
}

/** For a command that parses its own flags: call once they have parsed. */
export function flagsParsed(): void {
  if (checkOnly) throw new FlagsParsed();
}

/** Parses `args` strictly (unknown flags are usage errors); positionals allowed. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  flagsParsed();
  return parsed;
}

/** A numeric flag; `fallback` when absent, else required. @throws UsageError */
export function numberFlag(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UsageError(`--${flag} is required`);
    return fallback;
  }
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new UsageError(`--${flag} must be a number, got '${value}'`);
  return parsed;
}

/** -k: results per query, 1 to 1000 (default 10). */
export function kFlag(value: string | undefined): number {
  const k = numberFlag(value, 'k', 10);
  if (!Number.isInteger(k) || k < 1 || k > 1000) throw new UsageError(`-k must be an integer from 1 to 1000, got ${value}`);
  return k;
}

/** --filter: a JSON object, checked as a filter; undefined when absent. @throws UsageError, TesseraError INVALID_ARGUMENT */
export function filterFlag(value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  let filter: Record<string, unknown>;
  try {
    filter = JSON.parse(value) as Record<string, unknown>;
  } catch (error) {
    throw new UsageError(`--filter is not valid JSON: ${(error as Error).message}`);
  }
  parseFilter(filter);
  return filter;
}

/** The one slide path a command takes as its positional argument. */
export function singleSlide(positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`expected one slide path, got ${positionals.length}`);
  return positionals[0] as string;
}

/** Where installed models live: --models-dir, else $TESSERA_HOME/models, else ~/.tessera/models. */
export function modelsDir(flag: string | undefined): string {
  return flag ?? join(process.env.TESSERA_HOME ?? join(homedir(), '.tessera'), 'models');
}

/**
 * What a command kept outside this folder's conventions gets lent: its usage error and the
 * check-only stop (the shape `tessera evaluate` was first written against).
 */
export interface CommandKit {
  /** Throws the CLI's usage error (exit 2). */
  usage(message: string): never;
  /** Called once the flags have parsed: stops here when the CLI only checks an invocation. */
  parsed(): void;
}

export const commandKit: CommandKit = {
  usage: (message) => {
    throw new UsageError(message);
  },
  parsed: flagsParsed,
};
