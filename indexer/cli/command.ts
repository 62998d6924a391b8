/** What every `tessera` command is: a name, its usage text, and a function over its arguments. */

export interface Command {
  /** The word after `tessera`. */
  readonly name: string;
  /**
   * The command's synopsis lines as `tessera --help` lists them (indented two spaces, the
   * description column at 39). `tessera NAME --help` prints them too, followed by `details`.
   */
  readonly usage: string;
  /** Further notes shown only by the command's own --help (environment, defaults, formats). */
  readonly details?: string;
  /**
   * Parses `args` (without the command name) through flags.ts `parseFlags` and runs.
   * @throws UsageError on bad usage (exit 2), TesseraError when refused (exit 1)
   */
  run(args: string[]): Promise<void>;
}
