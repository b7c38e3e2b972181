import { defineConfig } from 'vitest/config';

// Unit and property tests run in parallel workers; tests that build network namespaces or run
// real routers are named *.root.test.ts and serialise themselves (see test/helpers/root.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
