/**
 * Interned attribute sets (src/bgp/rib/attrs.ts): a set whose last reference goes waits for the
 * sweep, findable; taken again before it, it is the same set with the same id; the sweep frees
 * only sets still unreferenced, once each, however often they died and came back.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { AttrTable, hashKey, keyHash } from '../../src/bgp/rib/attrs.js';

const A = { origin: 0, med: 1 };
const B = { origin: 0, med: 2 };

describe('AttrTable', () => {
  it('keeps a set with no reference until the sweep, and gives the same one back before it', () => {
    const t = new AttrTable();
    const a = t.intern(A, ['192.0.2.1']);
    t.release(a);
    expect(t.size).toBe(0);
    expect(t.deadCount).toBe(1);
    expect(t.byId(a.id)).toBe(a);
    const again = t.intern(A, ['192.0.2.1']);
    expect(again).toBe(a);
    expect(again.refs).toBe(1);
    expect(t.size).toBe(1);
    expect(t.deadCount).toBe(0);
    t.sweep();
    expect(t.byId(a.id)).toBe(a); // in use: kept
  });

  it('frees at the sweep what is still unreferenced, once, and reuses the id', () => {
    const t = new AttrTable();
    const a = t.intern(A, ['192.0.2.1']);
    const b = t.intern(B, ['192.0.2.1']);
    // a dies, comes back, dies again: listed twice.
    t.release(a);
    t.retain(a);
    t.release(a);
    t.release(b);
    t.release(b); // a stray extra release changes nothing
    expect(t.deadCount).toBe(2);
    t.sweep();
    expect(t.size).toBe(0);
    expect(t.deadCount).toBe(0);
    expect(t.byId(a.id)).toBeUndefined();
    const c = t.intern({ origin: 1 }, ['192.0.2.1']);
    expect([a.id, b.id]).toContain(c.id);
    expect(c).not.toBe(a);
    const d = t.intern(A, ['192.0.2.1']);
    expect(d).not.toBe(a);
    expect(t.size).toBe(2);
  });
});

describe('AttrTable lookup (open addressing, backward-shift deletion)', () => {
  it('behaves as a map of keys to sets through interns, releases and sweeps, whatever the hashes collide on', () => {
    // Hashes from a handful of values, so that runs of colliding keys form and wrap around the
    // table's end, and sweeps delete from the middle of them.
    const op = fc.oneof(
      fc.record({ kind: fc.constant('intern' as const), key: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ kind: fc.constant('release' as const), key: fc.integer({ min: 0, max: 300 }) }),
      fc.record({ kind: fc.constant('sweep' as const) }),
    );
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 100, maxLength: 600, size: 'max' }),
        fc.integer({ min: 1, max: 16 }),
        (ops, spread) => {
          const t = new AttrTable();
          const hashOf = (k: number) => (k % spread) * 0x10001 + (k % 3 === 0 ? 255 : 0);
          const keyOf = (k: number) => `w4key${k}`;
          // The model: each key's live set, and its references.
          const held = new Map<number, { set: ReturnType<AttrTable['internKey']>; refs: number }>();
          for (const o of ops) {
            if (o.kind === 'intern') {
              const set = t.internKey(keyOf(o.key), [], hashOf(o.key));
              const h = held.get(o.key);
              if (h) expect(set).toBe(h.set);
              else expect(set.key).toBe(keyOf(o.key));
              held.set(o.key, { set, refs: (h?.refs ?? 0) + 1 });
            } else if (o.kind === 'release') {
              const h = held.get(o.key);
              if (!h || h.refs === 0) continue;
              t.release(h.set);
              h.refs--;
            } else {
              t.sweep();
              for (const [k, h] of held) if (h.refs === 0) held.delete(k);
            }
            const live = [...held.values()].filter((h) => h.refs > 0).length;
            expect(t.size).toBe(live);
          }
          // Every set still held is found again by its key, and is the one held.
          for (const [k, h] of held) {
            const again = t.internKey(keyOf(k), [], hashOf(k));
            expect(again).toBe(h.set);
            expect(t.byId(again.id)).toBe(again);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('hashes a key from its bytes as from its string', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const s = Buffer.from(bytes).toString('latin1');
        let h = keyHash.start;
        for (const b of bytes) h = keyHash.step(h, b);
        expect(keyHash.end(h)).toBe(hashKey(s));
      }),
    );
  });
});
