/**
 * The start-up warm-up (src/bgp/warmup.ts) runs the real UPDATE path over a synthetic table: every
 * prefix it announces and withdraws must come out of the Adj-RIB-Out, or it warmed code the
 * sessions do not run.
 */
import { describe, expect, it } from 'vitest';
import { warmUp } from '../../src/bgp/warmup.js';

describe('warmUp', () => {
  it('passes every synthetic prefix on, announced and then withdrawn, unless the two cancel out', () => {
    // The first round flushes after every UPDATE: everything goes out twice.
    expect(warmUp(1000, 1, 0)).toBe(2 * 1000);
    // With the part of a set per UPDATE, four prefixes each.
    expect(warmUp(1000, 1, 100)).toBe(2 * 1400);
    // The second flushes every eighth UPDATE and the third only at the end: what was announced
    // and withdrawn in between sends nothing, unless a flush went first (the warm-up reads the
    // real time, and 4096 changes waiting 2 ms go out at once: update-group.ts), so how many
    // cancel out depends on the machine's speed; every announcement sent is withdrawn after.
    const total = 8192 + 4 * 2048;
    const n = warmUp(8192, 3, 2048);
    expect(n).toBeGreaterThan(2 * total);
    expect(n).toBeLessThanOrEqual(3 * 2 * total);
    expect(n % 2).toBe(0);
  });
});
