/**
 * PrefixIndex against a plain Map: any sequence of add, delete and get over IPv4 and IPv6 keys
 * (drawn from a small pool so probe runs collide and deletions shift them) gives the same answers;
 * live prefixes hold distinct slots and `prefixes[slot]` names each one's prefix.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PrefixIndex } from '../../src/bgp/rib/prefix-index.js';
import type { PrefixKey } from '../../src/net/addr.js';

const pool: PrefixKey[] = [
  ...Array.from({ length: 200 }, (_, i) => (0x0a000000 + i * 256) * 64 + 24),
  ...Array.from({ length: 40 }, (_, i) => (0xc0a80000 + i) * 64 + 32),
  // One address at many lengths: same significant bits, different buckets.
  ...[1, 8, 16, 24, 25, 26, 31].map((len) => 0x0a000000 * 64 + len),
  0,
  0x80000000 * 64 + 1,
  0xffffffff * 64 + 32,
  '2001:db8::/32',
  '2001:db8:1::/48',
  'fd00::/8',
];
const op = fc.record({ kind: fc.constantFrom('add', 'add', 'delete', 'get'), key: fc.constantFrom(...pool) });

describe('PrefixIndex', () => {
  it('agrees with a Map through any sequence of add, delete and get', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 800 }), fc.integer({ min: 1, max: 64 }), (ops, cap) => {
        const idx = new PrefixIndex(cap);
        const ref = new Map<PrefixKey, number>();
        for (const o of ops) {
          if (o.kind === 'add') {
            const s = idx.add(o.key);
            if (ref.has(o.key)) expect(s).toBe(ref.get(o.key));
            else {
              expect([...ref.values()]).not.toContain(s);
              ref.set(o.key, s);
            }
          } else if (o.kind === 'delete') {
            expect(idx.delete(o.key)).toBe(ref.get(o.key) ?? -1);
            ref.delete(o.key);
          } else {
            expect(idx.get(o.key)).toBe(ref.get(o.key) ?? -1);
          }
        }
        expect(idx.size).toBe(ref.size);
        for (const [k, s] of ref) {
          expect(idx.get(k)).toBe(s);
          expect(idx.prefixAt(s)).toBe(k);
        }
        for (const k of pool) if (!ref.has(k)) expect(idx.get(k)).toBe(-1);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 200) },
    );
  });

  it('holds a million IPv4 prefixes', () => {
    const idx = new PrefixIndex();
    for (let i = 0; i < 1_000_000; i++) idx.add((0x0a000000 + i * 256) * 64 + 24);
    expect(idx.size).toBe(1_000_000);
    expect(idx.get((0x0a000000 + 999_999 * 256) * 64 + 24)).toBe(999_999);
    for (let i = 0; i < 1_000_000; i += 2) idx.delete((0x0a000000 + i * 256) * 64 + 24);
    expect(idx.size).toBe(500_000);
    expect(idx.get((0x0a000000 + 1 * 256) * 64 + 24)).toBe(1);
  });
});
