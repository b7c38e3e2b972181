import { defineConfig } from 'vitest/config';

// Every test file runs in its own worker process. Tests that need root, namespaces or real
// routers are named *.root.test.ts; each makes uniquely named namespaces of its own (see
// test/helpers/netns.ts), so they run in parallel with the rest.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
