/**
 * Bundles a TypeScript entry (a worker a test runs as a separate OS process) into one ES module
 * with esbuild, next to node_modules so that its package imports resolve, and returns its path.
 * Packages stay external (loaded from node_modules as the product loads them); only our sources
 * are bundled. One file per entry and test process, so parallel test files never race.
 */
import { chmodSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { build } from 'esbuild';

const root = join(import.meta.dirname, '..', '..');
const COMMON = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  logLevel: 'silent',
} as const;

export async function bundle(entry: string): Promise<string> {
  const outfile = join(
    root,
    'node_modules',
    '.cache',
    'twill-test',
    `${basename(entry, '.ts')}-${process.pid}.mjs`,
  );
  await build({ ...COMMON, entryPoints: [entry], packages: 'external', outfile });
  return outfile;
}

/**
 * The same, self-contained (packages bundled too) in a temporary folder anyone may read: for a
 * worker run as another user (nobody), who may not be able to read the checkout at all.
 */
export async function bundleStandalone(entry: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'twill-worker-'));
  chmodSync(dir, 0o755);
  const outfile = join(dir, `${basename(entry, '.ts')}.mjs`);
  await build({
    ...COMMON,
    entryPoints: [entry],
    outfile,
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
  });
  chmodSync(outfile, 0o644);
  return outfile;
}
