#!/usr/bin/env node
// Entry point of the `tessera` command: registers tsx so the TypeScript sources run as they are.
// `serve` belongs to the API; every other command to the indexer's CLI.
import { register } from 'tsx/esm/api';

register();
const argv = process.argv.slice(2);
const { main } = argv[0] === 'serve' ? await import('../../api/serve-cli.ts') : await import('../cli.ts');
const code = await main(argv[0] === 'serve' ? argv.slice(1) : argv);
if (code !== 'serving') process.exitCode = code;
