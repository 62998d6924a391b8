/**
 * Every `tessera` command, in the order `tessera --help` lists them. Adding a command is one line
 * here (and its import). `serve` is not here: indexer/bin/tessera.js hands it to the API's CLI.
 */
import { cohortCommand } from './cohort.js';
import type { Command } from './command.js';
import { deleteCommand } from './delete.js';
import { embedCommand } from './embed.js';
import { evaluateCommand } from './evaluate.js';
import { hardNegativesCommand } from './hard-negatives.js';
import { indexCommand } from './index-command.js';
import { infoCommand } from './info.js';
import { loadtestCommand } from './loadtest.js';
import { modelsCommand } from './models.js';
import { regionCommand } from './region.js';
import { searchCommand } from './search.js';
import { tilesCommand } from './tiles.js';
import { upgradeCommand } from './upgrade.js';
import { verifyCommand } from './verify.js';

export const COMMANDS: readonly Command[] = [
  infoCommand,
  regionCommand,
  tilesCommand,
  indexCommand,
  searchCommand,
  cohortCommand,
  hardNegativesCommand,
  evaluateCommand,
  loadtestCommand,
  verifyCommand,
  upgradeCommand,
  deleteCommand,
  embedCommand,
  modelsCommand,
];

/** The command named `name`, if there is one. */
export function commandNamed(name: string): Command | undefined {
  return COMMANDS.find((command) => command.name === name);
}
