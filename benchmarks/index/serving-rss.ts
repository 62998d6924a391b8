/**
 * Child process of bench:index's growth/serving part: opens an index the way `tessera serve` does
 * (LocalShardGroup with N search threads), answers a few searches, and prints its RSS and open
 * time as one JSON line. Usage: serving-rss.ts INDEX THREADS
 */
import { LocalShardGroup } from '../../engine/cluster/index.js';

const [indexDir = '', threads = '1'] = process.argv.slice(2);
const started = performance.now();
const group = await LocalShardGroup.open(indexDir, { threads: Number(threads) });
const openSeconds = (performance.now() - started) / 1000;
const dimension = group.store.info.model.dimension;
for (let i = 0; i < 200; i++) {
  const query = Float32Array.from({ length: dimension }, (_, d) => Math.sin(i * 31 + d));
  await group.search([query], { k: 10 });
}
const rssMiB = process.memoryUsage().rss / 2 ** 20;
await group.close();
console.log(JSON.stringify({ threads: Number(threads), rssMiB, openSeconds }));
process.exit(0);
