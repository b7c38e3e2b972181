/**
 * The start-up warm-up (src/bgp/warmup.ts) runs the real UPDATE path over a synthetic table: every
 * prefix it announces and withdraws must come out of the Adj-RIB-Out, or it warmed code the
 * sessions do not run.
 */
import { describe, expect, it } from 'vitest';
import { warmUp } from '../../src/bgp/warmup.js';

describe('warmUp', () => {
  it('passes every synthetic prefix on, announced and then withdrawn', () => {
    expect(warmUp(1000, 2)).toBe(2 * 2 * 1000);
  });
});
