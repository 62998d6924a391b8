/**
 * `npm run build`: bundles the web viewer (api/viewer/src) into api/viewer/dist, which the API
 * serves at `/`: index.html, app.js, app.css (minified, with source maps), app.js.LEGAL.txt (the
 * bundled licences) and OpenSeadragon's button images under osd-images/. Everything the viewer
 * needs at run time is in dist: nothing is fetched from a CDN. Prints one line.
 */
import { build } from 'esbuild';
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const started = performance.now();
const viewerDir = dirname(fileURLToPath(import.meta.url));
const srcDir = join(viewerDir, 'src');
const distDir = join(viewerDir, 'dist');
const require = createRequire(import.meta.url);
const osdBuild = dirname(require.resolve('openseadragon'));
const osdImages = join(osdBuild, 'images');
const osdLicense = join(osdBuild, '..', '..', 'LICENSE.txt');

try {
  // A clean folder each time, so files of an older build are never served.
  rmSync(distDir, { recursive: true, force: true });
  mkdirSync(distDir, { recursive: true });
  await build({
    entryPoints: { app: join(srcDir, 'main.ts') },
    outdir: distDir,
    entryNames: '[name]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  writeFileSync(join(distDir, 'index.html'), readFileSync(join(srcDir, 'index.html')));
  // OpenSeadragon's BSD licence asks for its notice beside the bundle: the banner alone is not it.
  appendFileSync(join(distDir, 'app.js.LEGAL.txt'), `\n\nOpenSeadragon licence (node_modules/openseadragon/LICENSE.txt):\n\n${readFileSync(osdLicense, 'utf8')}`);
  cpSync(osdImages, join(distDir, 'osd-images'), { recursive: true });
  const kb = (file) => `${(statSync(join(distDir, file)).size / 1024).toFixed(0)} kB`;
  console.log(`viewer built in ${(performance.now() - started).toFixed(0)} ms → ${relative(process.cwd(), distDir) || distDir} (app.js ${kb('app.js')}, app.css ${kb('app.css')})`);
} catch (error) {
  console.error(`viewer build failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
