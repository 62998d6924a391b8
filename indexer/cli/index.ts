/** The indexer's command line: `main` for indexer/bin/tessera.js, `checkInvocation` for deployment checks. */
export { EXIT_FAILED, EXIT_OK, EXIT_USAGE, checkInvocation, commandUsage, main, usage } from './main.js';
export { COMMANDS, commandNamed } from './commands.js';
export { commandKit, type CommandKit } from './flags.js';
export type { Command } from './command.js';
