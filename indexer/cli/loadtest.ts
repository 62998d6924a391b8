/**
 * `tessera loadtest URL`: load-tests a running deployment through its public API (and recall
 * through the admin exact-search route) and writes a JSON and a self-contained HTML report. The
 * API key comes from --api-key or $TESSERA_API_KEY and is never printed or written.
 */
import { writeFile } from 'node:fs/promises';
import { TesseraError } from '../../engine/index.js';
import { parseRates, reportHtml, reportTable, runLoadtest, SCENARIO_NAMES, type ScenarioName } from '../loadtest/index.js';
import type { Command } from './command.js';
import { UsageError, parseFlags } from './flags.js';

const USAGE = `  loadtest URL [--api-key KEY] [--scenarios reference,upload,slide,filtered] [--duration 10]
           [--warmup S] [--connections 32] [--rates 25%,50%,75%,90%] [-k 10] [--ef N] [--recall-queries 100]
           [--images A.png,B.png] [--filter JSON] [--out PREFIX] [--json]
                                     load-test a deployment: closed-loop maximum, open-loop fixed
                                     rates (% of the maximum or requests/s), p50/p95/p99, errors by
                                     status, partial answers, recall@k against exact search (admin
                                     key); writes PREFIX.json and PREFIX.html (key: $TESSERA_API_KEY)`;

export const loadtestCommand: Command = {
  name: 'loadtest',
  usage: USAGE,
  run: loadtest,
};

async function loadtest(args: string[]): Promise<void> {
  const { values, positionals } = parseFlags(args, {
    'api-key': { type: 'string' },
    scenarios: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    rates: { type: 'string' },
    k: { type: 'string', short: 'k' },
    ef: { type: 'string' },
    'recall-queries': { type: 'string' },
    images: { type: 'string' },
    filter: { type: 'string' },
    out: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length !== 1) usage('give the deployment URL, e.g. tessera loadtest http://127.0.0.1:8080');
  const url = positionals[0] as string;
  if (!/^https?:\/\/[^/]+/.test(url) || !URL.canParse(url)) usage(`the URL must be http(s)://HOST[:PORT][/PATH], got '${url}'`);
  const scenarios = (values.scenarios ?? SCENARIO_NAMES.join(',')).split(',').map((name) => name.trim());
  for (const name of scenarios) if (!(SCENARIO_NAMES as readonly string[]).includes(name)) usage(`--scenarios: unknown scenario '${name}' (known: ${SCENARIO_NAMES.join(', ')})`);
  const durationSeconds = secondsFlag(values.duration, 'duration', 10);
  const warmupSeconds = values.warmup === '0' ? 0 : values.warmup === undefined ? undefined : secondsFlag(values.warmup, 'warmup', 0);
  const connections = integerFlag(values.connections, 'connections', 32);
  const k = integerFlag(values.k, 'k', 10);
  const ef = values.ef === undefined ? undefined : integerFlag(values.ef, 'ef', 0);
  const recallQueries = values['recall-queries'] === '0' ? 0 : integerFlag(values['recall-queries'], 'recall-queries', 100);
  let rates;
  try {
    rates = parseRates(values.rates ?? '25%,50%,75%,90%');
  } catch (error) {
    usage((error as Error).message);
  }
  let filter: Record<string, unknown> | undefined;
  if (values.filter !== undefined) {
    try {
      filter = JSON.parse(values.filter) as Record<string, unknown>;
    } catch (error) {
      usage(`--filter must be a JSON object, e.g. '{"organ":"lung"}': ${(error as Error).message}`);
    }
    if (filter === null || typeof filter !== 'object' || Array.isArray(filter)) usage(`--filter must be a JSON object, got ${values.filter}`);
  }
  const apiKey = values['api-key'] ?? process.env.TESSERA_API_KEY;
  const report = await runLoadtest({
    url,
    ...(apiKey ? { apiKey } : {}),
    scenarios: scenarios as ScenarioName[],
    durationSeconds,
    ...(warmupSeconds === undefined ? {} : { warmupSeconds }),
    connections,
    rates,
    k,
    ...(ef === undefined ? {} : { ef }),
    recallQueries,
    ...(values.images ? { images: values.images.split(',').map((file) => file.trim()) } : {}),
    ...(filter ? { filter } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  if (report.scenarios.length === 0) throw new TesseraError('INVALID_ARGUMENT', `no scenario could run: ${report.skipped.map(({ name, reason }) => `${name}: ${reason}`).join('; ')}`);
  const prefix = values.out ?? `tessera-loadtest-${report.startedAt.replace(/[:.]/g, '-')}`;
  const json = `${JSON.stringify(report, null, 2)}\n`;
  try {
    await writeFile(`${prefix}.json`, json);
    await writeFile(`${prefix}.html`, reportHtml(report));
  } catch (error) {
    throw new TesseraError('INVALID_ARGUMENT', `cannot write the report ${prefix}.json / .html: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  }
  process.stdout.write(values.json ? json : `${reportTable(report)}\nreport: ${prefix}.json, ${prefix}.html\n`);
}

function integerFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isInteger(parsed) || parsed < 1) usage(`--${flag} must be a positive integer, got '${value}'`);
  return parsed;
}

function secondsFlag(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (value.trim() === '' || !(parsed > 0) || parsed > 3600) usage(`--${flag} must be seconds from 0 to 3600, got '${value}'`);
  return parsed;
}

function usage(message: string): never {
  throw new UsageError(message);
}
