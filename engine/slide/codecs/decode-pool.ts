/**
 * Where the WebAssembly decoders run. They are synchronous: on the main thread a JPEG 2000 tile
 * blocks everything for several milliseconds and uses one core. With `decodeThreads` > 1 they run
 * in a pool of worker threads (piscina), and the compressed and decoded bytes move by transfer.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { useNativeJpeg } from './jpeg.js';
import { decodeJpeg2000Raw, decodeJpegLsRaw, type RawDecoded } from './wasm-decoders.mjs';

export interface DecodeOptions {
  /** Worker threads for JPEG 2000 and JPEG-LS tiles; 1 decodes on the calling thread. */
  decodeThreads?: number;
  /** Use the native partial JPEG decoder where it is built (default true). */
  nativeJpeg?: boolean;
}

let poolThreads = 1;
let pool: Piscina | null = null;

/** Sets how slide decoding uses cores. Call once at start-up (CLI flags, server config). */
export function configureDecoding(options: DecodeOptions): void {
  if (options.nativeJpeg !== undefined) useNativeJpeg(options.nativeJpeg);
  if (options.decodeThreads === undefined) return;
  const threads = Math.max(1, Math.floor(options.decodeThreads));
  // Several servers in one process (tests) configure it alike: keep the pool and its decodes in flight.
  if (threads === poolThreads) return;
  poolThreads = threads;
  if (pool) void pool.destroy();
  pool = null;
}

/** Workers start on the first WebAssembly decode: JPEG-only work never pays for them. */
function decodePool(): Piscina | null {
  if (poolThreads <= 1) return null;
  if (!pool) {
    pool = new Piscina({ filename: fileURLToPath(new URL('./wasm-decoders.mjs', import.meta.url)), minThreads: poolThreads, maxThreads: poolThreads, idleTimeout: 30_000 });
    // Idle workers must not keep a CLI run alive.
    pool.threads.forEach((thread) => thread.unref());
  }
  return pool;
}

export async function decodeWasm(codec: 'jpeg2000' | 'jpeg-ls', bytes: Uint8Array): Promise<RawDecoded> {
  const workers = decodePool();
  if (!workers) return codec === 'jpeg2000' ? decodeJpeg2000Raw(bytes) : decodeJpegLsRaw(bytes);
  const copy = Uint8Array.from(bytes);
  return (await workers.run({ codec, bytes: copy }, { transferList: [copy.buffer] })) as RawDecoded;
}
