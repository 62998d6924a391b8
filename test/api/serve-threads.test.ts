/**
 * `tessera serve` keeps CPU work off the event loop by default: JPEG 2000 / JPEG-LS decoding on
 * worker threads (at least 2: 1 would decode on the event loop) and query-image preprocessing on
 * at least one; the flags change both and bad values are refused naming the flag.
 */
import { describe, expect, it } from 'vitest';
import { buildConfig } from '../../api/index.js';
import { checkServeInvocation } from '../../api/serve-cli.js';

describe('serve threads', () => {
  it('decodes and preprocesses on worker threads unless told otherwise', () => {
    const config = buildConfig({ index: '/tmp/some-index' }, {}, '/nonexistent');
    expect(config.decodeThreads).toBeGreaterThanOrEqual(2);
    expect(config.preprocessThreads).toBeGreaterThanOrEqual(1);
    const chosen = buildConfig({ index: '/tmp/some-index', 'decode-threads': '1', 'preprocess-threads': '0' }, {}, '/nonexistent');
    expect([chosen.decodeThreads, chosen.preprocessThreads]).toEqual([1, 0]);
  });

  it('refuses thread counts that are not whole numbers in range, naming the flag', () => {
    expect(checkServeInvocation(['--index', '/tmp/i', '--decode-threads', '0'])).toMatch(/--decode-threads must be an integer from 1/);
    expect(checkServeInvocation(['--index', '/tmp/i', '--preprocess-threads', 'two'])).toMatch(/--preprocess-threads must be an integer from 0/);
    expect(checkServeInvocation(['--index', '/tmp/i', '--decode-threads', '3', '--preprocess-threads', '2'])).toBeNull();
  });
});
