/**
 * The Rib against a naive reference model (test/bgp/rib-reference.ts), STYLE.md §11 and §13.
 *
 * Random sequences of announce, withdraw, peer down, graceful restart (markStale per family, as
 * the speaker does), End-of-RIB (sweepStale of one family) and stale-timer expiry (sweepStale of
 * everything) drive both. After every operation:
 *   - the best path of every prefix is the reference's (peer, path id and attributes), and so is
 *     the reason it won;
 *   - the deltas the Rib returned, applied in order to a map, give exactly the best paths: each
 *     delta's oldBest is what the map held (nothing missed) and no delta replaces a path by the
 *     same path with the same attributes (nothing spurious);
 *   - each peer's Adj-RIB-In count and stale flag, and the number of interned attribute sets,
 *     match the model; at the end, with every peer down, the attribute table is empty.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DecisionOptions, DEFAULT_DECISION } from '../../src/bgp/decision.js';
import { type Delta, type Path, type PeerRef, Rib } from '../../src/bgp/rib/rib.js';
import type { AsPathSegment, PathAttributes } from '../../src/bgp/wire/attributes.js';
import { AsPathSegmentType, type Family, IPV4_UNICAST, IPV6_UNICAST } from '../../src/bgp/wire/constants.js';
import { type PrefixKey, parseIpv4, parsePrefix } from '../../src/net/addr.js';
import { type RefAttrs, type RefPath, type RefPeer, RefRib } from './rib-reference.js';

const runs = Number(process.env.FC_RUNS ?? 200);

// Peers, in address order (addressRank). Two share a router id so the address decides between
// them; three eBGP peers in two ASes so MED applies within one and not across.
const PEERS: RefPeer[] = [
  { id: '', asn: 65000, routerId: parseIpv4('10.255.0.1'), ebgp: false, local: true, rrClient: false },
  { id: '10.0.0.1', asn: 65001, routerId: parseIpv4('1.1.1.1'), ebgp: true, local: false, rrClient: false },
  { id: '10.0.0.2', asn: 65002, routerId: parseIpv4('1.1.1.1'), ebgp: true, local: false, rrClient: false },
  { id: '10.0.0.10', asn: 65001, routerId: parseIpv4('0.0.0.9'), ebgp: true, local: false, rrClient: false },
  { id: '10.1.0.1', asn: 65000, routerId: parseIpv4('2.2.2.2'), ebgp: false, local: false, rrClient: true },
  {
    id: '2001:db8::1',
    asn: 65000,
    routerId: parseIpv4('0.0.0.5'),
    ebgp: false,
    local: false,
    rrClient: false,
  },
  {
    id: '2001:db8::a',
    asn: 65000,
    routerId: parseIpv4('2.2.2.2'),
    ebgp: false,
    local: false,
    rrClient: false,
  },
].map((p, addressRank) => ({ ...p, addressRank }));
/** The Rib's view of each peer: one object per peer, as the speaker keeps them. */
const REFS: PeerRef[] = PEERS.map(({ addressRank, ...ref }) => ref);

const PREFIXES: PrefixKey[] = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '192.0.2.0/24',
  '0.0.0.0/0',
  '2001:db8::/32',
  '2001:db8:1::/48',
].map((t) => parsePrefix(t));
const isV4 = (k: PrefixKey) => typeof k === 'number';
const inFamily = (f: Family | undefined) => (k: PrefixKey) =>
  f === undefined || (f === IPV4_UNICAST) === isV4(k);

// Next hops and their IGP cost; 203.0.113.1 and 10.0.0.1 do not resolve, but 10.0.0.1 is the
// address of a peer, and a path from that peer with it as next hop is reachable all the same.
const COST: Record<string, number | undefined> = {
  '198.51.100.1': 1,
  '198.51.100.7': 7,
  '2001:db8:ffff::1': 3,
  '203.0.113.1': undefined,
  '10.0.0.1': undefined,
};

const seq = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsSequence, asns });
const AS_PATHS: AsPathSegment[][] = [
  [],
  [seq(65001)],
  [seq(65001, 7)],
  [seq(65002)],
  [seq(65002), { type: AsPathSegmentType.AsSet, asns: [7, 8] }],
  [{ type: AsPathSegmentType.AsConfedSequence, asns: [64512, 64513] }, seq(65001)],
  [{ type: AsPathSegmentType.AsSet, asns: [65001] }],
];

const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined, freq: 3 });
const refAttrs: fc.Arbitrary<RefAttrs> = fc
  .record({
    origin: opt(fc.constantFrom(0, 1, 2)),
    asPath: opt(fc.constantFrom(...AS_PATHS)),
    med: opt(fc.constantFrom(0, 10, 20)),
    localPref: opt(fc.constantFrom(100, 200)),
    originatorId: opt(fc.constantFrom('0.0.0.1', '2.2.2.2')),
    clusterList: opt(fc.constantFrom(['1.1.1.1'], ['1.1.1.1', '3.3.3.3'])),
    communities: opt(fc.constantFrom([1], [2])),
    nextHop: fc.constantFrom(...Object.keys(COST)),
  })
  .map(({ nextHop, ...a }) => {
    const attrs: PathAttributes = {};
    for (const [k, v] of Object.entries(a)) if (v !== undefined) (attrs as Record<string, unknown>)[k] = v;
    return { attrs, nextHop };
  });

type Op =
  | { op: 'announce'; peer: number; prefix: number; pathId: number; attrs: number }
  | { op: 'withdraw'; peer: number; prefix: number; pathId: number }
  | { op: 'peerDown'; peer: number }
  | { op: 'markStale'; peer: number }
  /** The peer sends again some of what it holds, unchanged (a restarted peer refilling). */
  | { op: 'resend'; peer: number; mask: number }
  | { op: 'endOfRib'; peer: number; family: Family }
  | { op: 'staleTimer'; peer: number };

const peerIx = fc.nat(PEERS.length - 1);
const prefixIx = fc.nat(PREFIXES.length - 1);
const pathId = fc.constantFrom(0, 0, 0, 0, 1, 2);
const family = fc.constantFrom(IPV4_UNICAST, IPV6_UNICAST);
const ops = (nAttrs: number): fc.Arbitrary<Op[]> =>
  fc.array(
    fc.oneof(
      {
        weight: 12,
        arbitrary: fc.record({
          op: fc.constant('announce' as const),
          peer: peerIx,
          prefix: prefixIx,
          pathId,
          attrs: fc.nat(nAttrs - 1),
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          op: fc.constant('withdraw' as const),
          peer: peerIx,
          prefix: prefixIx,
          pathId,
        }),
      },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('peerDown' as const), peer: peerIx }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('markStale' as const), peer: peerIx }) },
      {
        weight: 2,
        arbitrary: fc.record({ op: fc.constant('resend' as const), peer: peerIx, mask: fc.nat(0xffffffff) }),
      },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('endOfRib' as const), peer: peerIx, family }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('staleTimer' as const), peer: peerIx }) },
    ),
    { maxLength: 60, size: 'medium' },
  );

const scenario = fc
  .array(refAttrs, { minLength: 1, maxLength: 6 })
  .chain((pool) => fc.tuple(fc.constant(pool), ops(pool.length)));

const attrsKey = (attrs: Readonly<PathAttributes>, nextHop: string | undefined) =>
  JSON.stringify([attrs, nextHop]);
const refKey = (p: RefPath | undefined) =>
  p && `${p.peer.id}#${p.pathId}#${attrsKey(p.attrs.attrs, p.attrs.nextHop)}`;
const ribKey = (p: Path | undefined) => p && `${p.peer.id}#${p.pathId}#${attrsKey(p.ra.attrs, p.nextHop)}`;

/** Run one scenario on a Rib and the model side by side, checking after every operation. */
function check(pool: RefAttrs[], script: Op[], decision: DecisionOptions): void {
  const rib = new Rib(decision, { resolve: (nh) => COST[nh] });
  const ref = new RefRib(decision.alwaysCompareMed, (nh) => COST[nh]);
  /** The best path per prefix as the deltas tell it. */
  const applied = new Map<PrefixKey, string>();

  const apply = (deltas: readonly (Delta | undefined)[], what: string) => {
    for (const d of deltas) {
      if (!d) continue;
      expect(ribKey(d.oldBest), `${what}: delta's oldBest is what the last delta left`).toBe(
        applied.get(d.prefix),
      );
      expect(ribKey(d.newBest), `${what}: delta changes nothing`).not.toBe(ribKey(d.oldBest));
      const k = ribKey(d.newBest);
      if (k === undefined) applied.delete(d.prefix);
      else applied.set(d.prefix, k);
    }
  };

  const compare = (what: string) => {
    for (const k of PREFIXES) {
      const want = ref.best(k);
      const e = rib.entry(k);
      expect(ribKey(e?.best), `${what}: best of ${String(k)}`).toBe(refKey(want.best));
      expect(e?.reason ?? 'none', `${what}: reason for ${String(k)}`).toBe(want.reason);
      expect(applied.get(k), `${what}: deltas for ${String(k)}`).toBe(refKey(want.best));
    }
    for (const [i, p] of PEERS.entries()) {
      const held = ref.paths.filter((x) => x.peer === p);
      expect(rib.countFrom(REFS[i]!.id), `${what}: Adj-RIB-In of ${p.id}`).toBe(held.length);
      expect(rib.hasStale(REFS[i]!.id), `${what}: stale from ${p.id}`).toBe(held.some((x) => x.stale));
    }
    expect(rib.size).toBe(new Set(ref.paths.map((x) => x.prefix)).size);
    expect(rib.attrs.size, `${what}: interned sets`).toBe(
      new Set(ref.paths.map((x) => attrsKey(x.attrs.attrs, x.attrs.nextHop))).size,
    );
  };

  script.forEach((o, step) => {
    const what = `#${step} ${JSON.stringify(o)}`;
    const peer = PEERS[o.peer]!;
    const id = REFS[o.peer]!.id;
    switch (o.op) {
      case 'announce': {
        const a = pool[o.attrs]!;
        const k = PREFIXES[o.prefix]!;
        ref.announce(peer, k, o.pathId, a);
        // Each announce interns its own copy, as the speaker does per UPDATE.
        const ra = rib.attrs.intern(structuredClone(a.attrs), [a.nextHop]);
        apply([rib.announce(k, REFS[o.peer]!, o.pathId, ra)], what);
        break;
      }
      case 'withdraw': {
        const k = PREFIXES[o.prefix]!;
        ref.withdraw(peer, k, o.pathId);
        apply([rib.withdraw(k, id, o.pathId)], what);
        break;
      }
      case 'peerDown':
        ref.peerDown(peer);
        apply(rib.peerDown(id), what);
        break;
      case 'markStale':
        // The speaker's graceful-restart helper: mark each family; no best path changes.
        for (const f of [IPV4_UNICAST, IPV6_UNICAST]) {
          ref.markStale(peer, inFamily(f));
          rib.markStale(id, f);
        }
        break;
      case 'resend': {
        const mine = ref.paths.filter((x) => x.peer === peer);
        const deltas: (Delta | undefined)[] = [];
        mine.forEach((x, i) => {
          if (!((o.mask >>> (i % 32)) & 1)) return;
          ref.announce(peer, x.prefix, x.pathId, x.attrs);
          const ra = rib.attrs.intern(structuredClone(x.attrs.attrs), [x.attrs.nextHop]);
          deltas.push(rib.announce(x.prefix, REFS[o.peer]!, x.pathId, ra));
        });
        apply(deltas, what);
        break;
      }
      case 'endOfRib':
        ref.sweepStale(peer, inFamily(o.family));
        apply(rib.sweepStale(id, o.family), what);
        break;
      case 'staleTimer':
        ref.sweepStale(peer, inFamily(undefined));
        apply(rib.sweepStale(id), what);
        break;
    }
    compare(what);
  });

  // Every peer goes: nothing is left, and every attribute set was released.
  for (const [i, p] of PEERS.entries()) {
    ref.peerDown(p);
    apply(rib.peerDown(REFS[i]!.id), 'teardown');
  }
  compare('teardown');
  expect(rib.size).toBe(0);
  expect(rib.attrs.size).toBe(0);
  expect(applied.size).toBe(0);
}

describe('Rib against a reference model', () => {
  it('agrees after any sequence of announce, withdraw, peer down, GR restart, End-of-RIB, stale timer', () => {
    fc.assert(
      fc.property(scenario, ([pool, script]) => check(pool, script, DEFAULT_DECISION)),
      { numRuns: runs },
    );
  });

  it('agrees with alwaysCompareMed', () => {
    fc.assert(
      fc.property(scenario, ([pool, script]) => check(pool, script, { alwaysCompareMed: true })),
      { numRuns: Math.ceil(runs / 2) },
    );
  });
});

describe('Rib graceful restart', () => {
  const peer = REFS[1]!;
  const P = PREFIXES[0]!;
  const attrs: PathAttributes = { origin: 0, asPath: [seq(65001)] };

  it('a stale path sent again unchanged is fresh again, with no delta', () => {
    // Regression: announce replaced a stale path by a new Path object with the same attributes,
    // so a restarted peer refilling its table produced a delta (old best -> its own copy) for
    // every prefix it was best for, and the speaker re-exported all of them.
    const rib = new Rib();
    rib.announce(P, peer, 0, rib.attrs.intern(structuredClone(attrs), ['10.0.0.1']));
    const before = rib.entry(P)!.best;
    rib.markStale(peer.id);
    expect(rib.announce(P, peer, 0, rib.attrs.intern(structuredClone(attrs), ['10.0.0.1']))).toBeUndefined();
    // The same path (the same row of the RIB), fresh again.
    expect(rib.entry(P)!.best?.id).toBe(before?.id);
    expect(rib.entry(P)!.best?.stale).toBe(false);
    expect(rib.sweepStale(peer.id)).toEqual([]);
    expect(rib.attrs.size).toBe(1);
  });

  it('markStale changes no best path; End-of-RIB sweeps only what was not announced again', () => {
    const rib = new Rib();
    rib.announce(P, peer, 0, rib.attrs.intern(structuredClone(attrs), ['10.0.0.1']));
    rib.announce(PREFIXES[1]!, peer, 0, rib.attrs.intern(structuredClone(attrs), ['10.0.0.1']));
    expect(rib.markStale(peer.id)).toBe(2);
    expect(rib.entry(P)?.best?.stale).toBe(true);
    rib.announce(P, peer, 0, rib.attrs.intern(structuredClone(attrs), ['10.0.0.1']));
    const swept = rib.sweepStale(peer.id, IPV4_UNICAST);
    expect(swept.map((d) => d.prefix)).toEqual([PREFIXES[1]]);
    expect(rib.entry(P)?.best?.stale).toBe(false);
    expect(rib.hasStale(peer.id)).toBe(false);
  });
});
