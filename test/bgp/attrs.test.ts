/**
 * Interned attribute sets (src/bgp/rib/attrs.ts): a set whose last reference goes waits for the
 * sweep, findable; taken again before it, it is the same set with the same id; the sweep frees
 * only sets still unreferenced, once each, however often they died and came back.
 */
import { describe, expect, it } from 'vitest';
import { AttrTable } from '../../src/bgp/rib/attrs.js';

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
