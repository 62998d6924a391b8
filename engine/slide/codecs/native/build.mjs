// Builds the optional native JPEG region decoder (jpeg_region.c) at install time.
// Never fails the install: without a compiler or libjpeg headers, Tessera decodes with sharp.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const nodeRoot = dirname(dirname(process.execPath));
const gyp = [process.env.npm_config_node_gyp, join(nodeRoot, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find((path) => path && existsSync(path));
// Use the headers installed with Node: node-gyp would otherwise try to download them.
const nodedir = existsSync(join(nodeRoot, 'include', 'node', 'node_api.h')) ? [`--nodedir=${nodeRoot}`] : [];
try {
  if (!gyp) throw new Error('node-gyp not found');
  execFileSync(process.execPath, [gyp, 'rebuild', ...nodedir, '-C', here], { stdio: ['ignore', 'ignore', 'pipe'] });
  console.log('tessera: built the native JPEG region decoder');
} catch (error) {
  const detail = String(error?.stderr ?? error?.message ?? error).split('\n').filter((line) => /error/i.test(line)).slice(0, 3).join(' | ');
  console.warn(`tessera: native JPEG region decoder not built (${detail || 'unknown reason'}); JPEG tiles will be decoded with sharp, which is slower for random region reads. Install a C compiler and libjpeg62-turbo-dev, then run npm rebuild.`);
}
