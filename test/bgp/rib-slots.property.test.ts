/**
 * The Rib as the slot space of Adj-RIB-Outs (rib.ts, adj-out.ts), STYLE.md §11 and §13.
 *
 * The speaker names prefixes by the Rib's slots: the UPDATE path hands each Adj-RIB-Out the slot
 * whose best path changed, and an Adj-RIB-Out pins the slots it holds so the Rib does not give a
 * slot to another prefix while a withdrawal of the old one is still owed. A bug here sends a
 * withdrawal or an announcement under the wrong prefix, so random sequences of announce,
 * withdraw, peer down, takes at random points, session resets (clear and refill, as the
 * speaker does on a new session) and prunes of dead slots drive a Rib and two Adj-RIB-Outs (one
 * IPv4-only), and a receiver applies each batch as a peer would:
 *   - a batch never withdraws what the receiver does not hold;
 *   - once drained, each receiver holds exactly the Loc-RIB's best paths of its families;
 *   - at the end, with everything withdrawn, drained and pruned, no prefix keeps a slot and the
 *     tables hold no attribute set.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdjRibOut } from '../../src/bgp/rib/adj-out.js';
import { AttrTable } from '../../src/bgp/rib/attrs.js';
import { type Delta, type Exports, type PeerRef, Rib, SlotList } from '../../src/bgp/rib/rib.js';
import { type PrefixKey, parsePrefix } from '../../src/net/addr.js';

const runs = Number(process.env.FC_RUNS ?? 300);

const PEERS: PeerRef[] = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((id, i) => ({
  id,
  asn: 65001 + i,
  routerId: i + 1,
  ebgp: true,
  local: false,
  rrClient: false,
}));

// Few prefixes, so slots are freed and handed out again often.
const PREFIXES: PrefixKey[] = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '10.1.2.0/24',
  '192.0.2.0/24',
  '0.0.0.0/0',
  '2001:db8::/32',
  '2001:db8:1::/48',
].map((t) => parsePrefix(t));

type Op =
  | { op: 'announce'; prefix: number; peer: number; med: number }
  | { op: 'withdraw'; prefix: number; peer: number }
  | { op: 'down'; peer: number }
  | { op: 'take'; out: number; max: number }
  | { op: 'reset'; out: number }
  | { op: 'prune' };

const ops: fc.Arbitrary<Op[]> = fc.array(
  fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        op: fc.constant('announce' as const),
        prefix: fc.nat(PREFIXES.length - 1),
        peer: fc.nat(PEERS.length - 1),
        med: fc.nat(2),
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('withdraw' as const),
        prefix: fc.nat(PREFIXES.length - 1),
        peer: fc.nat(PEERS.length - 1),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('down' as const), peer: fc.nat(PEERS.length - 1) }) },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('take' as const),
        out: fc.nat(1),
        max: fc.oneof(fc.integer({ min: 1, max: 3 }), fc.constant(Number.POSITIVE_INFINITY)),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('reset' as const), out: fc.nat(1) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('prune' as const) }) },
  ),
  { maxLength: 120, size: 'medium' },
);

class Receiver {
  readonly held = new Map<PrefixKey, string>();
  constructor(readonly out: AdjRibOut) {}
  drain(max = Number.POSITIVE_INFINITY): void {
    const b = this.out.take(max);
    for (const list of b.withdraw.values())
      for (const k of list) {
        expect(this.held.has(k), `withdrawal of ${String(k)}, not held`).toBe(true);
        this.held.delete(k);
      }
    for (const groups of [b.announce, b.announce6])
      for (const [ra, list] of groups) for (const k of list) this.held.set(k, ra.key);
  }
}

describe('Rib slots shared with Adj-RIB-Outs', () => {
  it('receivers end with the best paths, withdrawals are never for the wrong prefix, no slot leaks', () => {
    fc.assert(
      fc.property(ops, (seq) => {
        const rib = new Rib();
        const table = new AttrTable();
        const v4only = [true, false];
        const outs = [0, 1].map(() => new Receiver(new AdjRibOut(table, rib)));
        const wants = (i: number, k: PrefixKey) => !v4only[i] || typeof k === 'number';
        // The export: the best path's attributes, as a peer's exports give them.
        const feed = (i: number, slot: number) => {
          const k = rib.prefixAt(slot);
          if (k === undefined || !wants(i, k)) return;
          const row = rib.bestRowAt(slot);
          const ra = row < 0 ? null : table.intern({ ...rib.raAt(row).attrs }, rib.raAt(row).nextHops);
          outs[i]!.out.setSlot(slot, ra);
        };
        // The UPDATE path: announceKeys / withdrawKeys collect the changed slots, feed passes
        // them on (as the speaker's onUpdate and applySlots do).
        const exports: Exports = { exportOf: (ra) => table.intern({ ...ra.attrs }, ra.nextHops) };
        const list = new SlotList();
        const changed = () => {
          for (const i of [0, 1]) rib.feed(outs[i]!.out, list, true, !v4only[i], exports);
          list.length = 0;
        };
        const fill = (i: number) => {
          for (let s = 0; s < rib.slotCount; s++) if (rib.bestRowAt(s) >= 0) feed(i, s);
        };
        for (const o of seq) {
          switch (o.op) {
            case 'announce': {
              const ra = rib.attrs.intern({ origin: 0, asPath: [], med: o.med }, [PEERS[o.peer]!.id]);
              rib.announceKeys([PREFIXES[o.prefix]!], undefined, PEERS[o.peer]!, ra, list);
              rib.attrs.release(ra);
              changed();
              break;
            }
            case 'withdraw':
              rib.withdrawKeys([PREFIXES[o.prefix]!], undefined, PEERS[o.peer]!.id, list);
              changed();
              break;
            case 'down':
              // The slow path, as the speaker takes it for a session going down: deltas by prefix.
              for (const d of rib.peerDown(PEERS[o.peer]!.id))
                for (const i of [0, 1]) {
                  if (!wants(i, d.prefix)) continue;
                  const b = d.newBest;
                  outs[i]!.out.set(d.prefix, b ? table.intern({ ...b.ra.attrs }, b.ra.nextHops) : null);
                }
              break;
            case 'take':
              outs[o.out]!.drain(o.max);
              break;
            case 'reset':
              outs[o.out]!.out.clear();
              outs[o.out]!.held.clear();
              fill(o.out);
              break;
            case 'prune':
              rib.prune();
              break;
          }
        }
        const best = (i: number) => {
          const m = new Map<PrefixKey, string>();
          for (const [k, p] of rib.bestPaths())
            if (p && wants(i, k)) m.set(k, table.intern({ ...p.ra.attrs }, p.ra.nextHops).key);
          return m;
        };
        for (const i of [0, 1]) {
          outs[i]!.drain();
          expect(outs[i]!.out.pendingCount).toBe(0);
          expect(outs[i]!.held).toEqual(best(i));
        }
        // Everything goes; once the withdrawals are out, no prefix keeps a slot.
        for (const p of PEERS)
          for (const d of rib.peerDown(p.id))
            for (const i of [0, 1]) if (wants(i, d.prefix)) outs[i]!.out.set(d.prefix, null);
        for (const i of [0, 1]) {
          outs[i]!.drain();
          expect(outs[i]!.held.size).toBe(0);
        }
        rib.prune();
        expect(rib.deadCount).toBe(0);
        for (const k of PREFIXES) expect(rib.slotOf(k), `slot of ${String(k)}`).toBe(-1);
        expect(rib.size).toBe(0);
        expect(rib.attrs.size).toBe(0);
        for (const i of [0, 1]) outs[i]!.out.clear();
      }),
      { numRuns: runs },
    );
  });

  const peer = PEERS[0]!;
  const key = (i: number) => (0x0a000000 + i * 256) * 64 + 24;

  it('a prefix back before the prune keeps its slot; after the prune its slot is free', () => {
    const rib = new Rib();
    const a = rib.announceSlot(key(0), peer, 0, rib.attrs.intern({ origin: 0 }, [peer.id]));
    rib.withdrawSlot(key(0), peer.id);
    expect(rib.deadCount).toBe(1);
    expect(rib.size).toBe(0);
    expect(rib.announceSlot(key(0), peer, 0, rib.attrs.intern({ origin: 0 }, [peer.id]))).toBe(a);
    rib.prune();
    expect(rib.slotOf(key(0)), 'back in use: not freed').toBe(a);
    rib.withdrawSlot(key(0), peer.id);
    rib.prune();
    expect(rib.slotOf(key(0))).toBe(-1);
    expect(rib.prefixAt(a)).toBeUndefined();
  });

  it('dead slots are reused before the tables grow', () => {
    const rib = new Rib();
    const n = 70_000;
    const ra = () => rib.attrs.intern({ origin: 0 }, [peer.id]);
    for (let i = 0; i < n; i++) rib.announceSlot(key(i), peer, 0, ra());
    for (let i = 0; i < n; i++) rib.withdrawSlot(key(i), peer.id);
    expect(rib.deadCount).toBe(n);
    // 140k other prefixes, with no pause between: the dead slots make room (the arrays are
    // sized in powers of two, so slots up to 131072 are there already).
    for (let i = n; i < 3 * n; i++) {
      rib.announceSlot(key(i), peer, 0, ra());
      rib.withdrawSlot(key(i), peer.id);
    }
    expect(rib.slotCount).toBeLessThanOrEqual(131_072);
    expect(rib.slotOf(key(0))).toBe(-1);
  });

  it('announceKeys and withdrawKeys into a Delta list give the deltas announce and withdraw give', () => {
    const keys = [0, 1, 2, 3].map(key);
    const accept = (k: PrefixKey) => k !== key(2);
    const [a, b] = [new Rib(), new Rib()];
    const ra = (r: Rib, med: number) => r.attrs.intern({ origin: 0, med }, [peer.id]);
    // a: per key; b: in one call each.
    const one: unknown[] = [];
    for (const med of [1, 2]) {
      for (const k of keys) one.push(accept(k) ? a.announce(k, peer, 0, ra(a, med)) : a.withdraw(k, peer.id));
      const set = ra(b, med);
      const many: Delta[] = [];
      b.announceKeys(keys, undefined, peer, set, many, accept);
      b.attrs.release(set);
      expect(many).toEqual(one.splice(0).filter((d) => d !== undefined));
    }
    for (const k of keys) one.push(a.withdraw(k, peer.id));
    const many: Delta[] = [];
    b.withdrawKeys(keys, undefined, peer.id, many);
    expect(many).toEqual(one.filter((d) => d !== undefined));
    expect(b.attrs.size).toBe(0);
  });
});
