/**
 * Tessera side of the slide benchmark: reads the given regions once each and prints JSON with
 * regions per second and peak RSS. `--concurrency N` keeps N reads in flight (N > 1 lets sharp's
 * decodes run on several libuv threads; set UV_THREADPOOL_SIZE to match).
 * Usage: tessera-reader.ts SLIDE REGIONS.json [--concurrency N]
 */
import { readFileSync } from 'node:fs';
import { configureDecoding, openSlide } from '../../engine/index.js';

const [slidePath, regionsPath, , concurrencyArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg ?? 1);
const regions = JSON.parse(readFileSync(regionsPath as string, 'utf8')) as Array<[number, number, number, number]>;
configureDecoding({ decodeThreads: concurrency });
const slide = await openSlide(slidePath as string);
let next = 0;
const started = performance.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (next < regions.length) {
      const [x, y, width, height] = regions[next++]!;
      await slide.readRegion(0, x, y, width, height);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
process.stdout.write(`${JSON.stringify({ regionsPerSecond: regions.length / seconds, seconds, peakRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`);
slide.close();
process.exit(0);
