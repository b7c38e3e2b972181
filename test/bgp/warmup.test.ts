/**
 * The start-up warm-up (src/bgp/warmup.ts) runs the real UPDATE path over a synthetic table: every
 * prefix it announces and withdraws must come out of the Adj-RIB-Out, or it warmed code the
 * sessions do not run.
 */
import { describe, expect, it } from 'vitest';
import { warmUp } from '../../src/bgp/warmup.js';

describe('warmUp', () => {
  it('passes every synthetic prefix on, announced and then withdrawn, unless the two cancel out', () => {
    // Rounds flush after every UPDATE, every fourth, and only at the end: in the third, each
    // prefix is announced and withdrawn before anything is sent, so nothing goes out.
    expect(warmUp(1000, 1)).toBe(2 * 1000);
    expect(warmUp(1000, 2)).toBe(2 * 2 * 1000);
    expect(warmUp(1000, 3)).toBe(2 * 2 * 1000);
  });
});
