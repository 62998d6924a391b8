// npm run setup:cuda — puts ONNX Runtime's CUDA provider libraries where onnxruntime-node looks.
//
// The onnxruntime-node package is CPU-only on npm and its own installer downloads the CUDA
// providers from GitHub (not reachable from many clusters). The npm package
// com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (MIT) ships the same two libraries built for
// ONNX Runtime 1.29.0 and CUDA 13: fetch it from the npm registry, copy them beside
// libonnxruntime.so. Needs the machine's CUDA 13 runtime and cuDNN 9 at run time.
// Re-run after `npm ci`, which recreates node_modules.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const PACKAGE = 'com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9';
const LIBRARIES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'];

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`setup:cuda: the CUDA provider package is for linux-x64; this is ${process.platform}-${process.arch}`);
  process.exit(1);
}
const ortVersion = createRequire(import.meta.url)('onnxruntime-node/package.json').version;
if (ortVersion !== '1.29.0') console.warn(`setup:cuda: warning: onnxruntime-node is ${ortVersion}; ${PACKAGE} is built for 1.29.0`);
const binDir = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', 'linux', 'x64');
const work = mkdtempSync(join(tmpdir(), 'tessera-cuda-'));
try {
  console.log(`setup:cuda: fetching ${PACKAGE} from the npm registry (about 180 MB)…`);
  execFileSync('npm', ['pack', PACKAGE, '--pack-destination', work, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const tarball = readdirSync(work).find((file) => file.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack produced no tarball');
  const members = LIBRARIES.map((library) => `package/Plugins/Linux/x64/${library}`);
  execFileSync('tar', ['-xzf', join(work, tarball), '-C', work, ...members]);
  for (const library of LIBRARIES) {
    const source = join(work, 'package', 'Plugins', 'Linux', 'x64', library);
    if (!existsSync(source)) throw new Error(`${library} is not in ${tarball}`);
    copyFileSync(source, join(binDir, library));
    console.log(`setup:cuda: installed ${library} into ${binDir}`);
  }
  // Tell the user now, not at the first run, which CUDA libraries the system lacks.
  try {
    const missing = execFileSync('ldd', [join(binDir, 'libonnxruntime_providers_cuda.so')]).toString().split('\n').filter((line) => line.includes('not found'));
    if (missing.length > 0) console.warn(`setup:cuda: the CUDA provider needs libraries this machine lacks:\n${missing.map((line) => `  ${line.trim()}`).join('\n')}`);
    else console.log('setup:cuda: all CUDA libraries found; use --device cuda or auto');
  } catch {
    // ldd is informative only.
  }
} catch (error) {
  console.error(`setup:cuda: failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
