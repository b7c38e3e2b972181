/**
 * What one peer is sent (src/bgp/export.ts): PeerExport's answers are what the export rules of
 * policy.ts give, however the cache is hit, and hold exactly the references they hand out; the
 * next hops of a session's announcements.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exportKey, exportKeyFromRaw, PeerExport, SELF, SessionNextHops } from '../../src/bgp/export.js';
import { exportAllowed, exportAttrs, type LocalInfo, peerPolicy } from '../../src/bgp/policy.js';
import {
  AttrTable,
  attrsOfExportKey,
  type RouteAttrs,
  writeWireFromExportKey,
} from '../../src/bgp/rib/attrs.js';
import type { PeerRef } from '../../src/bgp/rib/rib.js';
import { decodeAttributeBytes, type PathAttributes } from '../../src/bgp/wire/attributes.js';
import { AsPathSegmentType } from '../../src/bgp/wire/constants.js';
import { makeContext } from '../../src/bgp/wire/context.js';
import { encodeAttributeBytes } from '../../src/bgp/wire/update.js';
import { pathAttributes, unicastIpv4 } from './wire/arbitraries.js';
import { parseIpv4, parsePrefix } from '../../src/net/addr.js';

const runs = Number(process.env.FC_RUNS ?? 200);

const ME: LocalInfo = { asn: 65000, routerId: '10.255.0.1', clusterId: '10.255.0.1' };
const peer = (id: string, asn: number, x: Partial<PeerRef> = {}): PeerRef => ({
  id,
  asn,
  routerId: parseIpv4(id),
  ebgp: asn !== ME.asn,
  local: false,
  rrClient: false,
  ...x,
});
const EBGP_A = peer('192.0.2.1', 65001);
const EBGP_B = peer('192.0.2.2', 65002);
const IBGP = peer('10.0.0.1', 65000);
const CLIENT = peer('10.0.0.2', 65000, { rrClient: true });
const seq = (...asns: number[]) => [{ type: AsPathSegmentType.AsSequence, asns }];

const AS4 = makeContext({ as4: true });

/** A set's raw key as update-in.ts makes it for an UPDATE from a 4-octet-AS session. */
function rawKey(attrs: PathAttributes): string {
  return `w4${encodeAttributeBytes(attrs, AS4).toString('latin1')}`;
}

/** The attributes in `bytes`, as the decoder gives them; undefined if it found an error. */
function decoded(bytes: Buffer): PathAttributes | undefined {
  const s = decodeAttributeBytes(bytes, AS4);
  return s.errors.length ? undefined : s.attrs;
}

/** writeWireFromExportKey into a buffer of its own; undefined for a key of another kind. */
function wireFromExportKey(key: string, hops: readonly string[], hop: string): Buffer | undefined {
  const out = Buffer.alloc(key.length + 6);
  const n = writeWireFromExportKey(key, hops, hop, out);
  return n < 0 ? undefined : out.subarray(0, n);
}

/** RIB-side sets, as the RIB interns them: by their canonical key, and one by its raw bytes. */
function ribSets(): RouteAttrs[] {
  const rib = new AttrTable();
  const raw: PathAttributes = {
    origin: 1,
    asPath: seq(65001, 9),
    nextHop: '192.0.2.1',
    med: 3,
    communities: [5],
  };
  return [
    rib.intern({ origin: 0, asPath: seq(65001), nextHop: '192.0.2.1' }, ['192.0.2.1']),
    rib.intern({ origin: 0, asPath: seq(65001, 7), med: 5, communities: [1] }, ['192.0.2.1']),
    rib.intern({ origin: 2, asPath: seq(65000), localPref: 200 }, ['10.0.0.9']),
    rib.intern(raw, ['192.0.2.1'], rawKey(raw)),
  ];
}

/** What policy.ts says `to` should hold, as a comparable value. */
function expected(to: PeerRef, ra: RouteAttrs, from: PeerRef, reflector: boolean) {
  const policy = peerPolicy({ rrClient: to.rrClient });
  if (!exportAllowed(from, to, policy, reflector)) return null;
  const e = exportAttrs(ra.attrs, ra.nextHops, from, to, policy, ME);
  return { attrs: e.attrs, nextHops: e.nextHops ?? [SELF] };
}

describe('PeerExport', () => {
  it('answers what the export rules give, in any order of questions, and hands out one reference per answer', () => {
    const sets = ribSets();
    const sources = [EBGP_A, EBGP_B, IBGP, CLIENT];
    const targets = [EBGP_B, IBGP, CLIENT];
    fc.assert(
      fc.property(
        fc.constantFrom(...targets),
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(sets.length - 1), fc.nat(sources.length - 1)), { maxLength: 40 }),
        (to, reflector, asks) => {
          const table = new AttrTable();
          const x = new PeerExport(table, ME, to, peerPolicy({ rrClient: to.rrClient }), reflector);
          const held: RouteAttrs[] = [];
          for (const [si, fi] of asks) {
            const ra = sets[si]!;
            const from = sources[fi]!;
            const got = x.exportOf(ra, from, parsePrefix('198.51.100.0/24'));
            const want = expected(to, ra, from, reflector);
            if (want === null) expect(got).toBeNull();
            else {
              expect(got).not.toBeNull();
              expect({ attrs: { ...got!.attrs }, nextHops: [...got!.nextHops] }).toEqual(want);
              held.push(got!);
            }
          }
          // Every answer handed out holds a reference of its own; the cache holds the rest.
          x.clear();
          for (const ra of new Set(held)) expect(ra.refs).toBe(held.filter((h) => h === ra).length);
          for (const ra of held) table.release(ra);
          expect(table.size).toBe(0);
        },
      ),
      { numRuns: runs },
    );
  });

  it('applies the export filter per prefix, past the cache', () => {
    const table = new AttrTable();
    const [ra] = ribSets();
    const rule = { prefix: parsePrefix('10.0.0.0/8'), ge: 8, le: 32, action: 'reject' as const };
    const x = new PeerExport(table, ME, EBGP_B, peerPolicy({ exportRules: [rule] }), false);
    const inside = parsePrefix('10.1.0.0/16');
    const outside = parsePrefix('192.168.0.0/16');
    const a = x.exportOf(ra!, EBGP_A, outside);
    expect(a).not.toBeNull();
    expect(x.exportOf(ra!, EBGP_A, inside)).toBeNull();
    const b = x.exportOf(ra!, EBGP_A, outside);
    expect(b).toBe(a);
    table.release(a!);
    table.release(b!);
    x.clear();
    expect(table.size).toBe(0);
  });

  it('keys sets by their wire encoding: equal attributes built in another order are one set', () => {
    const a = exportKey({ origin: 0, asPath: seq(65000, 65001), med: 1 }, [SELF]);
    const b = exportKey({ med: 1, asPath: seq(65000, 65001), origin: 0 }, [SELF]);
    expect(a).toBeDefined();
    expect(a).toBe(b);
    expect(exportKey({ origin: 0, asPath: seq(65000) }, [SELF])).not.toBe(a);
    expect(exportKey({ origin: 0, asPath: seq(65000, 65001), med: 1 }, ['192.0.2.9'])).not.toBe(a);
  });
});

describe('exportKeyFromRaw', () => {
  const policy = peerPolicy();
  /** What the long way gives: decode, exportAttrs, exportKey. */
  const longWay = (attrs: PathAttributes) => {
    const e = exportAttrs(attrs, [attrs.nextHop ?? '192.0.2.1'], EBGP_A, EBGP_B, policy, ME);
    return { key: exportKey(e.attrs, [SELF]), attrs: e.attrs };
  };
  /** Holds only what an external peer's export keeps or drops, and no confederation segment. */
  const plain = (a: PathAttributes) =>
    !a.unknown && !a.originatorId && !a.clusterList && !a.asPath?.some((g) => g.type > 2);

  it('gives the key the long way gives, for every set it takes, and takes every plain one', () => {
    fc.assert(
      fc.property(fc.oneof(pathAttributes(AS4, true), pathAttributes(AS4, false)), (attrs) => {
        const bytes = encodeAttributeBytes(attrs, AS4);
        const back = decoded(bytes);
        if (back === undefined) return;
        const fast = exportKeyFromRaw(`w4${bytes.toString('latin1')}`, ME.asn);
        const want = longWay(back);
        if (plain(back)) expect(fast).toBeDefined();
        if (fast === undefined) return;
        expect(fast).toBe(want.key);
        // A set made from the key alone decodes to the long way's attributes.
        expect(attrsOfExportKey(fast, [SELF])).toEqual(want.attrs);
      }),
      { numRuns: runs * 5 },
    );
  });

  it('prepends before a full leading AS_SEQUENCE, and takes an AS_PATH past 255 octets', () => {
    const full = Array.from({ length: 255 }, (_, i) => 70000 + i);
    for (const attrs of [
      { origin: 0, asPath: [{ type: AsPathSegmentType.AsSequence, asns: full }], nextHop: '192.0.2.1' },
      { origin: 0, asPath: [{ type: AsPathSegmentType.AsSequence, asns: full.slice(0, 70) }] },
      { origin: 0, asPath: [{ type: AsPathSegmentType.AsSet, asns: [1, 2] }], communities: [7] },
      { origin: 0, communities: [7] },
      { origin: 0 },
    ] as PathAttributes[]) {
      const fast = exportKeyFromRaw(rawKey(attrs), ME.asn);
      expect(fast).toBeDefined();
      expect(fast).toBe(longWay(attrs).key);
    }
  });

  it('declines bytes another encoder wrote (a Partial bit, Extended Length for a short attribute, types out of order), confederation segments, a 2-octet session', () => {
    const attrs: PathAttributes = { origin: 0, asPath: seq(65001), nextHop: '192.0.2.1', communities: [1] };
    const bytes = encodeAttributeBytes(attrs, AS4);
    const key = (b: Buffer) => `w4${b.toString('latin1')}`;
    expect(exportKeyFromRaw(key(bytes), ME.asn)).toBeDefined();
    // COMMUNITIES is the last attribute: ORIGIN 4, AS_PATH 9, NEXT_HOP 7 octets before it.
    const partial = Buffer.from(bytes);
    partial[20] = partial[20]! | 0x20;
    expect(exportKeyFromRaw(key(partial), ME.asn)).toBeUndefined();
    const extended = Buffer.concat([Buffer.from([0x50, 1, 0, 1, 0]), bytes.subarray(4)]);
    expect(decoded(extended)).toEqual(attrs);
    expect(exportKeyFromRaw(key(extended), ME.asn)).toBeUndefined();
    const swapped = Buffer.concat([bytes.subarray(4, 13), bytes.subarray(0, 4), bytes.subarray(13)]);
    expect(decoded(swapped)).toEqual(attrs);
    expect(exportKeyFromRaw(key(swapped), ME.asn)).toBeUndefined();
    const confed = {
      ...attrs,
      asPath: [{ type: AsPathSegmentType.AsConfedSequence, asns: [1] }, ...seq(65001)],
    };
    expect(exportKeyFromRaw(rawKey(confed), ME.asn)).toBeUndefined();
    expect(exportKeyFromRaw(`w2${bytes.toString('latin1')}`, ME.asn)).toBeUndefined();
  });
});

describe('SessionNextHops', () => {
  const table = new AttrTable();
  const hops = new SessionNextHops('192.0.2.254', ['2001:db8::fe', 'fe80::fe']);
  const self = table.intern({ origin: 0 }, [SELF]);
  const v4 = table.intern({ origin: 0 }, ['192.0.2.7']);
  const v6 = table.intern({ origin: 0 }, ['2001:db8::7', 'fe80::7']);

  it('puts our address on the session in place of self, and keeps a set’s own next hop', () => {
    expect(hops.v4(self)).toBe('192.0.2.254');
    expect(hops.v4(v4)).toBe('192.0.2.7');
  });

  it('gives IPv6 routes our IPv6 addresses for self or an IPv4 next hop, else the set’s own', () => {
    expect(hops.v6(self)).toEqual(['2001:db8::fe', 'fe80::fe']);
    expect(hops.v6(v4)).toEqual(['2001:db8::fe', 'fe80::fe']);
    expect(hops.v6(v6)).toEqual(['2001:db8::7', 'fe80::7']);
  });
});

describe('writeWireFromExportKey', () => {
  it('gives the bytes a fresh encoding with the NEXT_HOP gives', () => {
    const ctx = makeContext({ as4: true });
    fc.assert(
      fc.property(
        pathAttributes(ctx, true),
        unicastIpv4,
        fc.constantFrom([SELF], ['192.0.2.7'], ['2001:db8::1', 'fe80::1']),
        (attrs, hop, hops) => {
          const { nextHop: _, ...rest } = attrs;
          const key = exportKey(rest, hops);
          if (key === undefined) return;
          expect(wireFromExportKey(key, hops, hop)).toEqual(
            encodeAttributeBytes({ ...rest, nextHop: hop }, ctx),
          );
        },
      ),
      { numRuns: runs * 5 },
    );
  });

  it('declines a key of another kind', () => {
    expect(wireFromExportKey('[{"origin":0}]', [SELF], '192.0.2.1')).toBeUndefined();
  });

  it('writes nothing into a buffer too small for the set', () => {
    const key = exportKey({ origin: 0, asPath: [], med: 7 }, [SELF])!;
    // The key less its 'x' and '|self', with a NEXT_HOP of 7 bytes.
    const n = key.length - 1 - (1 + SELF.length) + 7;
    const small = Buffer.alloc(n - 1, 0xee);
    expect(writeWireFromExportKey(key, [SELF], '192.0.2.1', small)).toBe(-1);
    expect(small.every((b) => b === 0xee)).toBe(true);
    expect(writeWireFromExportKey(key, [SELF], '192.0.2.1', Buffer.alloc(n))).toBe(n);
  });
});
