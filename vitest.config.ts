import { defineConfig } from 'vitest/config';

// Every test file runs in its own worker process. Tests that need root, namespaces or real
// routers are named *.root.test.ts; each makes uniquely named namespaces of its own (see
// test/helpers/netns.ts), so they run in parallel with the rest. Kubernetes tests share one real
// control plane per run, started by the first file that needs it (test/k8s/global-setup.ts).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    globalSetup: ['test/k8s/global-setup.ts'],
    // fast-check arbitraries with a maxLength generate up to it (test/helpers/fc-size.ts).
    setupFiles: ['test/helpers/fc-size.ts'],
    reporters: ['default'],
  },
});
