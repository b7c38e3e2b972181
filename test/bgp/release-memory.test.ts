/**
 * release-memory.ts: the collector is reachable in this Node (so a table's old arrays can be
 * given back), and a table must grow by a quarter, and by at least 64k prefixes, between two
 * collections; the image's ENV is DAEMON_ENV, which the lab and bench/bgp give Twill; the
 * start-up warm-up does not grow V8's young generation.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectGarbage, DAEMON_ENV, grewEnough } from '../../src/bgp/release-memory.js';
import { ROOT } from '../helpers/twill.js';

describe('release-memory', () => {
  it('collectGarbage frees typed arrays nothing refers to any more', () => {
    collectGarbage();
    const before = process.memoryUsage().arrayBuffers;
    let big: Int32Array | undefined = new Int32Array(16 << 20); // 64 MiB, as a grown column
    big[0] = 1;
    expect(process.memoryUsage().arrayBuffers).toBeGreaterThanOrEqual(before + (60 << 20));
    big = undefined;
    collectGarbage();
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(before + (4 << 20));
  });

  it('asks for a collection only after growth by a quarter and at least 64k prefixes', () => {
    expect(grewEnough(65_535, 0)).toBe(false);
    expect(grewEnough(65_536, 0)).toBe(true);
    expect(grewEnough(1_000_000 + 249_999, 1_000_000)).toBe(false);
    expect(grewEnough(1_250_000, 1_000_000)).toBe(true);
  });

  it("the image's environment is DAEMON_ENV", () => {
    const dockerfile = readFileSync(join(import.meta.dirname, '../../deploy/Dockerfile'), 'utf8');
    const env = Object.fromEntries(
      [...dockerfile.matchAll(/^ENV (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!] as [string, string]),
    );
    expect(env).toEqual(DAEMON_ENV);
  });
});

describe('the warm-up without young-generation growth', () => {
  // In a node of its own (a fresh heap, as a speaker's at start), on the built modules (dist/,
  // built by npm test's pretest): the young generation's size after warmUp, with and without.
  const youngAfterWarmUp = (held: boolean): number => {
    const d = JSON.stringify(`${ROOT}/dist/src/bgp/`);
    const script = `
      const { warmUp } = await import(${d} + 'warmup.js');
      const { withoutYoungGrowth } = await import(${d} + 'release-memory.js');
      const { getHeapSpaceStatistics } = await import('node:v8');
      ${held ? 'withoutYoungGrowth(() => warmUp());' : 'warmUp();'}
      console.log(getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    return Number(r.stdout.trim());
  };

  it('keeps the young generation at its starting size; left alone, V8 grows it several times over', () => {
    const held = youngAfterWarmUp(true);
    const grown = youngAfterWarmUp(false);
    expect(held).toBeLessThanOrEqual(4 << 20);
    expect(grown).toBeGreaterThanOrEqual(4 * held);
  });
});
