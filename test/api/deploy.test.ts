/**
 * The deployment files (api/deploy) hold tessera command lines that only run on a cluster. This
 * test reads them out of the Dockerfile, the shell scripts and the Kubernetes manifests' `command:`
 * and `args:` lists (including `sh -c` scripts), and checks each against the CLI's own flag
 * parsers, so a renamed or mistyped flag fails here rather than in a pod.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkServeInvocation } from '../../api/serve-cli.js';
import { checkInvocation } from '../../indexer/cli/index.js';
import { PROJECT_ROOT } from '../shared-data.js';

const DEPLOY_DIR = join(PROJECT_ROOT, 'api', 'deploy');

/** The program word of a tessera command line: `tessera`, `tessera.js`, `indexer/bin/tessera.js`. */
const TESSERA_PROGRAM = /(^|\/)tessera(\.js)?$/;
/** A subcommand: `index`, `serve`, `hard-negatives`… (not a flag). */
const COMMAND_WORD = /^[a-z][a-z-]*$/;

/** Values for the variables whose value matters to a flag; every other expansion becomes 0. */
const EXAMPLE_VALUES: Record<string, string> = { SLURM_ARRAY_TASK_COUNT: '8' };

interface Invocation {
  /** The file, relative to api/deploy. */
  file: string;
  /** The words after the program: the command name, then its arguments. */
  argv: string[];
}

/**
 * Replaces shell and Kubernetes expansions by example values, innermost first:
 * `${NAME…}` and `$NAME` by EXAMPLE_VALUES[NAME] or 0, `$(( … ))` and `$( … )` by 0.
 */
function withExampleValues(text: string): string {
  const example = (name: string): string => EXAMPLE_VALUES[name] ?? '0';
  let previous: string;
  do {
    previous = text;
    text = text
      .replace(/\$\{([A-Za-z_]\w*)[^{}]*\}/g, (_, name: string) => example(name))
      .replace(/\$([A-Za-z_]\w*)/g, (_, name: string) => example(name))
      .replace(/\$\(\([^()]*\)\)/g, '0')
      .replace(/\$\([^()]*\)/g, '0');
  } while (text !== previous);
  return text;
}

/**
 * Splits shell text into simple commands, each a list of words with quotes removed. Newlines and
 * unquoted `; & | < >` end a command (a redirection ends the words worth checking); `#` starts a
 * comment; a backslash before a newline continues the line.
 */
function shellCommands(text: string): string[][] {
  const commands: string[][] = [];
  let words: string[] = [];
  let word: string | undefined;
  const endWord = (): void => {
    if (word !== undefined) words.push(word);
    word = undefined;
  };
  const endCommand = (): void => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '\\') {
      const next = text[++i];
      if (next !== undefined && next !== '\n') word = (word ?? '') + next;
    } else if (c === "'") {
      const close = closingQuote(text, i);
      word = (word ?? '') + text.slice(i + 1, close);
      i = close;
    } else if (c === '"') {
      const close = closingQuote(text, i);
      word = (word ?? '') + text.slice(i + 1, close).replace(/\\\n/g, '').replace(/\\(["\\$`])/g, '$1');
      i = close;
    } else if (c === '#' && word === undefined) {
      const newline = text.indexOf('\n', i);
      i = (newline < 0 ? text.length : newline) - 1;
    } else if (c === '\n' || ';&|<>'.includes(c)) {
      endCommand();
    } else if (/\s/.test(c)) {
      endWord();
    } else {
      word = (word ?? '') + c;
    }
  }
  endCommand();
  return commands;
}

function closingQuote(text: string, open: number): number {
  const quote = text[open];
  for (let i = open + 1; i < text.length; i++) {
    if (quote === '"' && text[i] === '\\') i++;
    else if (text[i] === quote) return i;
  }
  throw new Error(`unterminated ${quote} quote in: ${text.slice(open, open + 80)}`);
}

/** The tessera command lines in one command's words, and in any word that is itself a script (`sh -c '…'`). */
function invocationsInWords(words: string[]): string[][] {
  const at = words.findIndex((word) => TESSERA_PROGRAM.test(word));
  const own = at >= 0 && COMMAND_WORD.test(words[at + 1] ?? '') ? [words.slice(at + 1)] : [];
  const scripts = words.filter((word) => /\s/.test(word)).flatMap(invocationsInScript);
  return [...own, ...scripts];
}

function invocationsInScript(script: string): string[][] {
  return shellCommands(withExampleValues(script)).flatMap(invocationsInWords);
}

/**
 * The lists under `command:` and `args:` keys of a Kubernetes manifest, read line by line: a flow
 * list on the key's line (`args: [serve, "--port", "8080"]`) or `- item` lines below it, whose
 * items may be plain, quoted or block scalars (`- |` followed by a more indented script).
 */
function manifestLists(yaml: string): Array<{ key: 'command' | 'args'; items: string[] }> {
  const lines = yaml.split('\n');
  const lists: Array<{ key: 'command' | 'args'; items: string[] }> = [];
  lines.forEach((line, i) => {
    const match = /^\s*(?:-\s+)?(command|args):\s*(.*)$/.exec(line);
    if (!match) return;
    const key = match[1] as 'command' | 'args';
    const rest = (match[2] ?? '').trim();
    if (rest.startsWith('[')) lists.push({ key, items: flowList(rest) });
    else if (rest === '' || rest.startsWith('#')) lists.push({ key, items: blockList(lines, i + 1) });
  });
  return lists;
}

function blockList(lines: string[], from: number): string[] {
  const items: string[] = [];
  let itemIndent: number | undefined;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.trim() === '' || line.trim().startsWith('#')) continue;
    const indent = indentOf(line);
    itemIndent ??= indent;
    if (indent !== itemIndent || !/^-(\s|$)/.test(line.trimStart())) break;
    const value = line.trimStart().slice(1).trim();
    if (/^[|>][-+]?$/.test(value)) {
      const body: string[] = [];
      while (i + 1 < lines.length && (lines[i + 1]?.trim() === '' || indentOf(lines[i + 1] as string) > itemIndent)) body.push(lines[++i] as string);
      const bodyIndent = Math.min(...body.filter((l) => l.trim() !== '').map(indentOf));
      const text = body.map((l) => l.slice(bodyIndent));
      items.push(value.startsWith('>') ? text.join(' ') : text.join('\n'));
    } else {
      items.push(scalar(value));
    }
  }
  return items;
}

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

/** A YAML flow list's items: `[a, "b,c", 'd']`. */
function flowList(text: string): string[] {
  const items: string[] = [];
  let i = 1;
  while (i < text.length) {
    while (text[i] === ' ') i++;
    const start = i;
    if (text[i] === '"' || text[i] === "'") i = closingQuote(text, i) + 1;
    while (i < text.length && text[i] !== ',' && text[i] !== ']') i++;
    const item = text.slice(start, i).trim();
    if (item !== '') items.push(scalar(item));
    if (text[i] === ']') break;
    i++;
  }
  return items;
}

function scalar(value: string): string {
  if (value.startsWith('"')) return JSON.parse(value.slice(0, closingQuote(value, 0) + 1)) as string;
  if (value.startsWith("'")) return value.slice(1, closingQuote(value, 0)).replace(/''/g, "'");
  return value.replace(/\s+#.*$/, '');
}

/**
 * The tessera command lines of a deployment file. In a manifest, an `args:` list that starts with
 * a command word runs under the image's entry point, which is tessera.
 */
function tesseraInvocations(name: string, text: string): string[][] {
  if (!/\.ya?ml$/.test(name)) return invocationsInScript(text);
  return manifestLists(text).flatMap(({ key, items }) => {
    const words = items.map(withExampleValues);
    const underEntryPoint = key === 'args' && COMMAND_WORD.test(words[0] ?? '');
    return invocationsInWords(underEntryPoint ? ['tessera', ...words] : words);
  });
}

function deploymentFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return deploymentFiles(path);
    return entry.name === 'Dockerfile' || /\.(ya?ml|sh)$/.test(entry.name) ? [path] : [];
  });
}

/** null when `argv` (command name first) is a valid tessera invocation, else the reason. */
async function checkTessera(argv: string[]): Promise<string | null> {
  const [command, ...args] = argv;
  return command === 'serve' ? checkServeInvocation(args) : checkInvocation(argv);
}

const invocations: Invocation[] = deploymentFiles(DEPLOY_DIR).flatMap((path) => {
  const file = relative(DEPLOY_DIR, path);
  return tesseraInvocations(file, readFileSync(path, 'utf8')).map((argv) => ({ file, argv }));
});

describe('deployment files', () => {
  it('every tessera command in api/deploy is a valid invocation', async () => {
    const invalid: string[] = [];
    for (const { file, argv } of invocations) {
      const reason = await checkTessera(argv);
      if (reason !== null) invalid.push(`${file}: tessera ${argv.join(' ')}: ${reason}`);
    }
    expect(invalid).toEqual([]);
  });

  it('finds the shard, router and indexing commands in the manifests and the SLURM script', () => {
    const found = invocations.map(({ file, argv }) => `${file}: ${argv.slice(0, 3).join(' ')}`);
    expect(found).toEqual(
      expect.arrayContaining([
        'k8s/shard-statefulset.yaml: serve --role shard',
        'k8s/router-deployment.yaml: serve --role router',
        expect.stringMatching(/^k8s\/index-job\.yaml: index /),
        expect.stringMatching(/^slurm\/index-array\.sh: index /),
      ]),
    );
    expect(invocations.length).toBeGreaterThanOrEqual(4);
  });

  it('reads commands from sh -c scripts and args lists, with shell variables set to example values', () => {
    const manifest = [
      'containers:',
      '  - name: a',
      '    command:',
      '      - sh',
      '      - -c',
      '      - |',
      '        # a comment mentioning tessera serve',
      '        exec node indexer/bin/tessera.js serve --role shard \\',
      '          --shards "$(( ${HOSTNAME##*-} * 2 ))" --port 8080',
      '  - name: b',
      '    args: [index, --out, "/data/my index", --partition, "$(JOB_COMPLETION_INDEX)/${SLURM_ARRAY_TASK_COUNT}"]',
    ].join('\n');
    expect(tesseraInvocations('example.yaml', manifest)).toEqual([
      ['serve', '--role', 'shard', '--shards', '0', '--port', '8080'],
      ['index', '--out', '/data/my index', '--partition', '0/8'],
    ]);
    expect(tesseraInvocations('run.sh', `set -e\nnpx tessera verify --index "$INDEX" && echo done\nsh -c 'tessera delete --index /i --slide "a b"'`)).toEqual([
      ['verify', '--index', '0'],
      ['delete', '--index', '/i', '--slide', 'a b'],
    ]);
  });

  it('reports a mistyped flag or an unknown role instead of accepting it', async () => {
    expect(await checkInvocation(['index', '--bogus'])).not.toBeNull();
    expect(checkServeInvocation(['--role', 'nope'])).not.toBeNull();
    const [mistyped] = tesseraInvocations('job.yaml', 'command: [node, indexer/bin/tessera.js, index, --out, /i, --shard, "8"]');
    expect(mistyped).toEqual(['index', '--out', '/i', '--shard', '8']);
    expect(await checkTessera(mistyped as string[])).toMatch(/shard/);
  });
});
