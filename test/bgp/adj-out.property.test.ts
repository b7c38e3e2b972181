/**
 * Adj-RIB-Out (src/bgp/rib/adj-out.ts) against a per-prefix sender, STYLE.md §4 and §11.
 *
 * Random sequences of set() (the desired state of one prefix), take(max) at random points and
 * resend(family) (a ROUTE-REFRESH) drive an AdjRibOut; a receiver applies each batch as the peer
 * would. Batching and coalescing may skip intermediate states but must never be seen from the
 * outside:
 *   - every prefix a batch carries is sent as the desired state at the time of the take, i.e.
 *     what a sender that sends each prefix on its own would have sent;
 *   - a batch never withdraws what the receiver does not hold, never carries a prefix twice, and
 *     announces attributes the receiver already holds only when a route refresh asked for them;
 *   - pendingCount is exactly the prefixes where desired and held differ, plus those a refresh
 *     still owes; batches never exceed max;
 *   - once drained the receiver holds exactly the desired state, every refreshed prefix went out
 *     again, and every interned attribute set is released by clear().
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdjRibOut, type Batch, type PrefixList, packBatch } from '../../src/bgp/rib/adj-out.js';
import { AttrTable, type RouteAttrs } from '../../src/bgp/rib/attrs.js';
import { familyOfPrefix } from '../../src/bgp/rib/rib.js';
import type { PathAttributes } from '../../src/bgp/wire/attributes.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST } from '../../src/bgp/wire/constants.js';
import { type PrefixKey, parsePrefix } from '../../src/net/addr.js';
import { pathAttributes } from './wire/arbitraries.js';
import { makeContext, packUpdates, Writer } from '../../src/bgp/wire/index.js';

const runs = Number(process.env.FC_RUNS ?? 300);

const PREFIXES: PrefixKey[] = [
  '10.0.0.0/8',
  '10.1.0.0/16',
  '10.1.2.0/24',
  '192.0.2.0/24',
  '0.0.0.0/0',
  '2001:db8::/32',
  '2001:db8:1::/48',
  '::/0',
].map((t) => parsePrefix(t));

type Op =
  | { op: 'set'; prefix: number; attrs: number | null }
  | { op: 'take'; max: number }
  | { op: 'resend'; family: Family };

const ops = (nAttrs: number): fc.Arbitrary<Op[]> =>
  fc.array(
    fc.oneof(
      {
        weight: 10,
        arbitrary: fc.record({
          op: fc.constant('set' as const),
          prefix: fc.nat(PREFIXES.length - 1),
          attrs: fc.option(fc.nat(nAttrs - 1), { nil: null, freq: 4 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          op: fc.constant('take' as const),
          max: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant(Number.POSITIVE_INFINITY)),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          op: fc.constant('resend' as const),
          family: fc.constantFrom(IPV4_UNICAST, IPV6_UNICAST),
        }),
      },
    ),
    { maxLength: 80, size: 'medium' },
  );

/** A few attribute sets from the codec's arbitraries, next hop apart. */
const pool = fc.array(
  fc.record({ attrs: pathAttributes(makeContext(), false), nextHop: fc.constantFrom('192.0.2.1', 'self') }),
  { minLength: 1, maxLength: 4 },
);

function run(attrPool: { attrs: PathAttributes; nextHop: string }[], script: Op[]): void {
  const table = new AttrTable();
  const out = new AdjRibOut(table);
  /** The last set() per prefix. */
  const desired = new Map<PrefixKey, RouteAttrs>();
  /** What the receiver holds. */
  const held = new Map<PrefixKey, RouteAttrs>();
  /** Prefixes a route refresh asked for that have not gone out since. */
  const owed = new Set<PrefixKey>();
  const keyOf = (ra: RouteAttrs | undefined) => ra?.key;

  const receive = (b: Batch, max: number, what: string) => {
    expect(b.count, what).toBeLessThanOrEqual(max);
    const seen = new Set<PrefixKey>();
    let n = 0;
    for (const [f, ks] of b.withdraw) {
      for (const k of ks) {
        expect(familyOfPrefix(k), what).toBe(f);
        expect(seen.has(k), `${what}: ${String(k)} twice in one batch`).toBe(false);
        seen.add(k);
        expect(held.has(k), `${what}: withdraws ${String(k)}, which the receiver does not hold`).toBe(true);
        expect(desired.has(k), `${what}: withdraws ${String(k)}, which is still desired`).toBe(false);
        held.delete(k);
        owed.delete(k);
        n++;
      }
    }
    for (const [v4, groups] of [
      [true, b.announce],
      [false, b.announce6],
    ] as const)
      for (const [ra, ks] of groups) {
        for (const k of ks) {
          expect(typeof k === 'number', `${what}: ${String(k)} in the other family's announcements`).toBe(v4);
          expect(seen.has(k), `${what}: ${String(k)} twice in one batch`).toBe(false);
          seen.add(k);
          expect(keyOf(ra), `${what}: announces ${String(k)} as desired now`).toBe(keyOf(desired.get(k)));
          if (held.get(k) === ra)
            expect(owed.has(k), `${what}: announces ${String(k)} unchanged without a refresh`).toBe(true);
          held.set(k, ra);
          owed.delete(k);
          n++;
        }
      }
    expect(b.count, `${what}: count`).toBe(n);
  };

  const invariants = (what: string) => {
    const differ = PREFIXES.filter((k) => desired.get(k) !== held.get(k));
    expect(out.pendingCount, `${what}: pendingCount`).toBe(new Set([...differ, ...owed]).size);
    expect([...out.sent.keys()].sort(), `${what}: sent`).toEqual([...held.keys()].sort());
    for (const [k, ra] of held) expect(out.sent.get(k), what).toBe(ra);
    // One reference per prefix held and per prefix pending: the sets alive are exactly those.
    const alive = new Set<RouteAttrs>(held.values());
    for (const k of [...differ, ...owed]) {
      const d = desired.get(k);
      if (d) alive.add(d);
    }
    expect(table.size, `${what}: interned sets`).toBe(alive.size);
  };

  script.forEach((o, i) => {
    const what = `#${i} ${JSON.stringify(o)}`;
    switch (o.op) {
      case 'set': {
        const k = PREFIXES[o.prefix]!;
        if (o.attrs === null) {
          desired.delete(k);
          out.set(k, null);
        } else {
          const a = attrPool[o.attrs]!;
          // Each set() hands over a reference of its own, as exportFor does.
          const ra = table.intern(structuredClone(a.attrs), [a.nextHop]);
          desired.set(k, ra);
          out.set(k, ra);
        }
        break;
      }
      case 'take':
        receive(out.take(o.max), o.max, what);
        break;
      case 'resend':
        for (const k of held.keys()) if (familyOfPrefix(k) === o.family) owed.add(k);
        out.resend(o.family);
        break;
    }
    invariants(what);
  });

  // Drain, a few at a time as a slow socket would.
  for (let guard = 0; out.pendingCount > 0; guard++) {
    expect(guard).toBeLessThan(PREFIXES.length);
    receive(out.take(3), 3, 'drain');
    invariants('drain');
  }
  expect(out.take().count).toBe(0);
  expect(owed.size, 'every refreshed prefix went out again').toBe(0);
  expect(new Map([...held].map(([k, ra]) => [k, ra.key]))).toEqual(
    new Map([...desired].map(([k, ra]) => [k, ra.key])),
  );
  out.clear();
  expect(out.pendingCount).toBe(0);
  expect(out.sent.size).toBe(0);
  expect(table.size, 'clear() releases every set').toBe(0);
}

describe('Adj-RIB-Out', () => {
  it('batches are what a per-prefix sender would send, and the receiver ends with the desired state', () => {
    fc.assert(
      fc.property(
        pool.chain((p) => fc.tuple(fc.constant(p), ops(p.length))),
        ([p, script]) => run(p, script),
      ),
      { numRuns: runs },
    );
  });

  const A: PathAttributes = { origin: 0, asPath: [] };
  const B: PathAttributes = { origin: 1, asPath: [] };
  const P = PREFIXES[0]!;
  const Q = PREFIXES[5]!;

  it('coalesces: announced then withdrawn before a take sends nothing; changed twice sends once', () => {
    const table = new AttrTable();
    const out = new AdjRibOut(table);
    out.set(P, table.intern({ ...A }, ['192.0.2.1']));
    out.set(P, null);
    expect(out.pendingCount).toBe(0);
    expect(out.take().count).toBe(0);
    out.set(P, table.intern({ ...A }, ['192.0.2.1']));
    out.set(P, table.intern({ ...B }, ['192.0.2.1']));
    const b = out.take();
    expect(b.count).toBe(1);
    expect([...b.announce.keys()].map((ra) => ra.attrs)).toEqual([B]);
    expect(table.size).toBe(1);
  });

  it('groups announcements by family and attribute set, and withdrawals by family', () => {
    const table = new AttrTable();
    const out = new AdjRibOut(table);
    for (const k of PREFIXES) out.set(k, table.intern({ ...A }, ['192.0.2.1']));
    const a = out.take();
    const lists = (m: Map<unknown, PrefixList>) => [...m.values()].map((l) => [...l]);
    expect(lists(a.announce)).toEqual([PREFIXES.filter((k) => typeof k === 'number')]);
    expect(lists(a.announce6)).toEqual([PREFIXES.filter((k) => typeof k === 'string')]);
    for (const k of PREFIXES) out.set(k, null);
    const b = out.take();
    expect(lists(b.withdraw)).toEqual([
      PREFIXES.filter((k) => typeof k === 'number'),
      PREFIXES.filter((k) => typeof k === 'string'),
    ]);
    expect(b.withdraw.get(IPV4_UNICAST)).toBeInstanceOf(Float64Array);
    expect(table.size).toBe(0);
  });

  it('a route refresh sends the family again, even a prefix set back to what the peer holds', () => {
    const table = new AttrTable();
    const out = new AdjRibOut(table);
    out.set(P, table.intern({ ...A }, ['192.0.2.1']));
    out.set(Q, table.intern({ ...A }, ['192.0.2.1']));
    out.take();
    out.resend(IPV4_UNICAST);
    expect(out.pendingCount).toBe(1);
    out.set(P, table.intern({ ...A }, ['192.0.2.1']));
    const b = out.take();
    expect([...b.announce.values()].map((l) => [...l])).toEqual([[P]]);
  });

  it('a prefix withdrawn after a route refresh and before the next take is withdrawn', () => {
    // Regression: resend() forgot that the peer held the prefix, so set(prefix, null) in that
    // window looked like a withdrawal of something never sent and was dropped; the peer kept
    // the route for the rest of the session.
    const table = new AttrTable();
    const out = new AdjRibOut(table);
    out.set(P, table.intern({ ...A }, ['192.0.2.1']));
    out.take();
    out.resend(IPV4_UNICAST);
    out.set(P, null);
    const b = out.take();
    expect([...b.withdraw.get(IPV4_UNICAST)!]).toEqual([P]);
    expect(out.sent.size).toBe(0);
    expect(table.size).toBe(0);
  });
});

describe('packBatch', () => {
  it('a set sent again, to the same or another next hop and AS size, is the bytes a fresh encoding gives', () => {
    const sends = fc.array(
      fc.record({ hop: fc.constantFrom('192.0.2.1', '198.51.100.7'), as4: fc.boolean() }),
      { minLength: 1, maxLength: 6 },
    );
    fc.assert(
      fc.property(pathAttributes(makeContext(), false), sends, (attrs, seq) => {
        const table = new AttrTable();
        const ra = table.intern(attrs, []);
        const prefixes = new Float64Array([parsePrefix('10.1.2.0/24') as number]);
        for (const { hop, as4 } of seq) {
          const ctx = makeContext({ as4 });
          const batch: Batch = {
            announce: new Map([[ra, prefixes]]),
            announce6: new Map(),
            withdraw: new Map(),
            count: 1,
          };
          const got = new Writer();
          packBatch(got, batch, ctx, { v4: () => hop, v6: () => [] });
          const want = new Writer();
          packUpdates(want, { family: IPV4_UNICAST, prefixes, attrs: { ...attrs, nextHop: hop } }, ctx);
          expect(Buffer.from(got.view()).toString('hex')).toBe(Buffer.from(want.view()).toString('hex'));
        }
      }),
      { numRuns: runs },
    );
  });
});
