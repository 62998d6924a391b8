/**
 * Prints the DICOM conformance table: every shared slide converted with OrthancWSIDicomizer
 * (JPEG, JPEG 2000, uncompressed; one and several instances per level), each level read by
 * Tessera against OpenSlide reading the source (MAD per channel at pixel-aligned positions).
 * Conversions are cached in .cache/dicom-conversions. Writes JSON to benchmarks/results/.
 *   node --import tsx benchmarks/dicom/conformance.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { checkConversion, conformanceTable, type ConformanceResult } from '../../test/reference/dicom-conformance.js';
import { allConversions, hasDicomizer } from '../../test/reference/dicomizer.js';
import { PROJECT_ROOT, hasOpenSlide, hasSharedData } from '../../test/shared-data.js';

if (!hasSharedData || !hasOpenSlide || !hasDicomizer) {
  console.error('needs ../shared/data, python3-openslide and orthanc-wsi');
  process.exit(1);
}
console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.version}`);
const results: ConformanceResult[] = [];
for (const conversion of allConversions()) {
  const started = performance.now();
  results.push(await checkConversion(conversion));
  console.error(`${results.at(-1)?.name}: ${Math.round(performance.now() - started)} ms`);
}
console.log(conformanceTable(results));
const out = join(PROJECT_ROOT, 'benchmarks', 'results');
mkdirSync(out, { recursive: true });
const file = join(out, `dicom-conformance-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(results, null, 2));
console.log(`\nwrote ${file}`);
