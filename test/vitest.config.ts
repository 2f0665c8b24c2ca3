import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Each integration file starts its own PostgreSQL; two at once suit a 2-core machine.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
