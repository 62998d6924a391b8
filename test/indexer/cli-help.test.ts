/** Every command explains itself: `tessera NAME --help`, `-h` and `tessera help NAME` print its own usage and exit 0. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { COMMANDS, checkInvocation, commandUsage, main } from '../../indexer/cli/index.js';
import { runTessera } from '../run-cli.js';

/** Runs the CLI's main in this process, capturing what it writes. */
async function runMain(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    return { code: await main(argv), stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

describe('tessera --help', () => {
  afterEach(() => vi.restoreAllMocks());

  it('answers --help, -h and help NAME with the command’s own usage, for every registered command', async () => {
    expect(COMMANDS.length).toBeGreaterThanOrEqual(12);
    for (const command of COMMANDS) {
      const others = COMMANDS.filter((other) => other !== command);
      for (const argv of [[command.name, '--help'], [command.name, '-h'], ['help', command.name], [command.name, '--index', 'x', '--help']]) {
        const { code, stdout, stderr } = await runMain(argv);
        expect({ argv, code, stderr }).toEqual({ argv, code: 0, stderr: '' });
        expect(stdout).toBe(`${commandUsage(command)}\n`);
        expect(stdout).toMatch(new RegExp(`^  ${command.name}( |$)`, 'm'));
        for (const other of others) expect(stdout, `${command.name}'s help shows ${other.name}'s usage`).not.toContain(other.usage);
      }
      expect(await checkInvocation([command.name, '--help'])).toBeNull();
    }
  });

  it('lists every command, serve included, and refuses help for an unknown one', async () => {
    const { code, stdout } = await runMain(['--help']);
    expect(code).toBe(0);
    for (const command of COMMANDS) expect(stdout).toContain(command.usage);
    expect(stdout).toMatch(/^ {2}serve /m);
    const unknown = await runMain(['help', 'frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
  });

  it('prints search usage from the installed command, where it used to fail with "Unknown option"', async () => {
    const { code, stdout, stderr } = await runTessera(['search', '--help']);
    expect(stderr).not.toContain('Unknown option');
    expect(code).toBe(0);
    expect(stdout).toContain('search --index INDEX');
    const serve = await runTessera(['help', 'serve']);
    expect(serve.code).toBe(0);
    expect(serve.stdout).toContain('tessera serve --index INDEX');
  });
});
