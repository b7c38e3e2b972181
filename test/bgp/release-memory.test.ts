/**
 * release-memory.ts: the collector is reachable in this Node (so a table's old arrays can be
 * given back), and a table must grow by a quarter, and by at least 64k prefixes, between two
 * collections; the image's ENV is DAEMON_ENV, which the lab and bench/bgp give Twill.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectGarbage, DAEMON_ENV, grewEnough } from '../../src/bgp/release-memory.js';

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
