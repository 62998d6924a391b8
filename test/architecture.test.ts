/**
 * Import arrows point one way (DESIGN.md): api and indexer use engine; engine never imports api or
 * indexer; code outside a folder imports only its index.ts; format modules stay inside engine/slide.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from './shared-data.js';

function sourceFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((entry) => {
    const path = join(folder, entry);
    if (statSync(path).isDirectory()) return entry === 'node_modules' ? [] : sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/from '(\.{1,2}\/[^']+)'/g)].map((match) => relative(PROJECT_ROOT, resolve(dirname(file), match[1] ?? '')));
}

describe('architecture', () => {
  const layers = ['engine', 'indexer', 'api', 'models'].filter((layer) => {
    try {
      return statSync(join(PROJECT_ROOT, layer)).isDirectory();
    } catch {
      return false;
    }
  });
  const files = layers.flatMap((layer) => sourceFiles(join(PROJECT_ROOT, layer)));

  it('engine never imports api or indexer', () => {
    const wrong = files
      .filter((file) => relative(PROJECT_ROOT, file).startsWith('engine/'))
      .flatMap((file) => relativeImports(file).filter((target) => /^(api|indexer)\//.test(target)).map((target) => `${relative(PROJECT_ROOT, file)} → ${target}`));
    expect(wrong).toEqual([]);
  });

  it('code outside an engine folder imports only its index', () => {
    const wrong: string[] = [];
    for (const file of files) {
      const from = relative(PROJECT_ROOT, file);
      for (const target of relativeImports(file)) {
        const match = /^engine\/([^/]+)\/(.+)$/.exec(target);
        if (!match) continue;
        const insideSameFolder = from.startsWith(`engine/${match[1]}/`);
        if (!insideSameFolder && match[2] !== 'index.js') wrong.push(`${from} → ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });
});
