import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run in parallel across them, tests inside a file in order.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
