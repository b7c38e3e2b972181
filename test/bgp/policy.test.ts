/**
 * Import and export rules (src/bgp/policy.ts): AS and reflection loops, prefix filters, who gets
 * a path (split horizon, iBGP, RFC 4456 reflection) and what it carries there (RFC 4271 §5.1,
 * §9.2; RFC 4456 §8).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { asPathLength } from '../../src/bgp/decision.js';
import {
  DEFAULT_PEER_POLICY,
  exportAllowed,
  exportAttrs,
  filterAccepts,
  importCheck,
  type LocalInfo,
  type PeerPolicy,
  type PrefixRule,
  prepend,
  ruleMatches,
} from '../../src/bgp/policy.js';
import type { PeerRef } from '../../src/bgp/rib/rib.js';
import type { AsPathSegment, PathAttributes } from '../../src/bgp/wire/attributes.js';
import { AsPathSegmentType, AttrFlag } from '../../src/bgp/wire/constants.js';
import { makeContext } from '../../src/bgp/wire/index.js';
import { formatIpv6, parseIpv4, parsePrefix, prefix6Parts } from '../../src/net/addr.js';
import { pathAttributes } from './wire/arbitraries.js';

const runs = Number(process.env.FC_RUNS ?? 300);

const ME: LocalInfo = { asn: 65000, routerId: '10.255.0.1', clusterId: '10.255.0.100' };
const seq = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsSequence, asns });
const set = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsSet, asns });

const peer = (id: string, x: Partial<PeerRef> = {}): PeerRef => ({
  id,
  asn: 65000,
  routerId: parseIpv4(id === '' || id.includes(':') ? '9.9.9.9' : id),
  ebgp: false,
  local: false,
  rrClient: false,
  ...x,
});
const LOCAL = peer('', { routerId: parseIpv4(ME.routerId), local: true });
const EBGP_A = peer('192.0.2.1', { asn: 65001, ebgp: true });
const EBGP_B = peer('192.0.2.2', { asn: 65002, ebgp: true });
const CLIENT_A = peer('10.0.0.1', { rrClient: true });
const CLIENT_B = peer('10.0.0.2', { rrClient: true });
const NON_CLIENT_A = peer('10.0.1.1');
const NON_CLIENT_B = peer('10.0.1.2');
const policyOf = (p: PeerRef, x: Partial<PeerPolicy> = {}): PeerPolicy => ({
  ...DEFAULT_PEER_POLICY,
  rrClient: p.rrClient,
  ...x,
});

describe('import', () => {
  const check = (attrs: PathAttributes, from: PeerRef, allowasIn = 0) =>
    importCheck(attrs, from, policyOf(from, { allowasIn }), ME).accept;

  it('rejects a path holding our AS, up to allowasIn times allowed', () => {
    expect(check({ asPath: [seq(65001, 65002)] }, EBGP_A)).toBe(true);
    expect(check({ asPath: [seq(65001, 65000, 65002)] }, EBGP_A)).toBe(false);
    expect(check({ asPath: [seq(65001, 65000, 65002)] }, EBGP_A, 1)).toBe(true);
    expect(check({ asPath: [seq(65001, 65000, 65000)] }, EBGP_A, 1)).toBe(false);
    expect(check({ asPath: [seq(65001, 65000, 65000)] }, EBGP_A, 2)).toBe(true);
    // In an AS_SET too.
    expect(check({ asPath: [seq(65001), set(7, 65000)] }, EBGP_A)).toBe(false);
    expect(check({}, EBGP_A)).toBe(true);
    const v = importCheck({ asPath: [seq(65000)] }, EBGP_A, DEFAULT_PEER_POLICY, ME);
    expect(v).toEqual({ accept: false, reason: 'AS loop: AS 65000 in AS_PATH' });
  });

  it('accepts exactly when our AS appears at most allowasIn times', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.constantFrom(AsPathSegmentType.AsSequence, AsPathSegmentType.AsSet),
            asns: fc.array(fc.constantFrom(65000, 65001, 7), { minLength: 1, maxLength: 4 }),
          }),
          { maxLength: 3 },
        ),
        fc.nat(3),
        (asPath, allowasIn) => {
          const ours = asPath.flatMap((s) => s.asns).filter((a) => a === ME.asn).length;
          expect(check({ asPath }, EBGP_A, allowasIn)).toBe(ours <= allowasIn);
        },
      ),
      { numRuns: runs },
    );
  });

  it('rejects our router id as ORIGINATOR_ID on iBGP (RFC 4456 §8)', () => {
    expect(check({ originatorId: ME.routerId }, CLIENT_A)).toBe(false);
    expect(check({ originatorId: ME.routerId }, NON_CLIENT_A)).toBe(false);
    expect(check({ originatorId: '10.0.0.9' }, NON_CLIENT_A)).toBe(true);
    expect(importCheck({ originatorId: ME.routerId }, NON_CLIENT_A, DEFAULT_PEER_POLICY, ME)).toEqual({
      accept: false,
      reason: 'ORIGINATOR_ID is our router id (RFC 4456 §8)',
    });
  });

  it('rejects our cluster id in CLUSTER_LIST on iBGP (RFC 4456 §8)', () => {
    expect(check({ clusterList: ['10.9.9.9', ME.clusterId] }, CLIENT_A)).toBe(false);
    expect(check({ clusterList: [ME.clusterId] }, NON_CLIENT_A)).toBe(false);
    expect(check({ clusterList: ['10.9.9.9'] }, NON_CLIENT_A)).toBe(true);
    // The router id is not the cluster id when one is configured.
    expect(check({ clusterList: [ME.routerId] }, NON_CLIENT_A)).toBe(true);
    expect(importCheck({ clusterList: [ME.clusterId] }, NON_CLIENT_A, DEFAULT_PEER_POLICY, ME)).toEqual({
      accept: false,
      reason: 'our cluster id in CLUSTER_LIST (RFC 4456 §8)',
    });
  });
});

describe('prefix rules', () => {
  const rule = (p: string, ge: number, le: number, action: PrefixRule['action'] = 'accept'): PrefixRule => ({
    prefix: parsePrefix(p),
    ge,
    le,
    action,
  });
  const matches = (r: PrefixRule, p: string) => ruleMatches(r, parsePrefix(p));

  it('IPv4: covered by the rule prefix, length within ge..le', () => {
    const r = rule('10.0.0.0/8', 8, 24);
    expect(matches(r, '10.0.0.0/8')).toBe(true);
    expect(matches(r, '10.1.0.0/16')).toBe(true);
    expect(matches(r, '10.255.255.0/24')).toBe(true);
    expect(matches(r, '10.1.2.128/25')).toBe(false);
    expect(matches(r, '11.0.0.0/8')).toBe(false);
    expect(matches(r, '0.0.0.0/0')).toBe(false);
    const exact = rule('192.0.2.0/24', 24, 24);
    expect(matches(exact, '192.0.2.0/24')).toBe(true);
    expect(matches(exact, '192.0.2.0/25')).toBe(false);
    expect(matches(exact, '192.0.3.0/24')).toBe(false);
    // ge above the rule's own length: only more specifics.
    const more = rule('10.0.0.0/8', 16, 32);
    expect(matches(more, '10.0.0.0/8')).toBe(false);
    expect(matches(more, '10.0.0.1/32')).toBe(true);
    const any = rule('0.0.0.0/0', 0, 32);
    expect(matches(any, '0.0.0.0/0')).toBe(true);
    expect(matches(any, '203.0.113.7/32')).toBe(true);
    expect(matches(any, '::/0')).toBe(false);
  });

  it('IPv6: covered by the rule prefix, length within ge..le', () => {
    const r = rule('2001:db8::/32', 48, 64);
    expect(matches(r, '2001:db8:1::/48')).toBe(true);
    expect(matches(r, '2001:db8:ffff:ffff::/64')).toBe(true);
    expect(matches(r, '2001:db8::/32')).toBe(false);
    expect(matches(r, '2001:db8::/65')).toBe(false);
    expect(matches(r, '2001:db9::/48')).toBe(false);
    expect(matches(r, '10.0.0.0/8')).toBe(false);
    const any = rule('::/0', 0, 128);
    expect(matches(any, '::/0')).toBe(true);
    expect(matches(any, 'fe80::1/128')).toBe(true);
    expect(matches(any, '0.0.0.0/0')).toBe(false);
  });

  it('IPv6: IPv4-mapped prefixes compare by their bits', () => {
    // Regression: the IPv6 bit string was built from the canonical text group by group, and the
    // dotted tail of an IPv4-mapped prefix ("::ffff:10.0.0.0/104") parsed as hex, so the rule
    // for ::ffff:10.0.0.0/104 matched ::ffff:11.0.0.0/104 too.
    const r = rule('::ffff:10.0.0.0/104', 104, 128);
    expect(matches(r, '::ffff:10.0.0.0/104')).toBe(true);
    expect(matches(r, '::ffff:10.1.0.0/112')).toBe(true);
    expect(matches(r, '::ffff:11.0.0.0/104')).toBe(false);
    expect(matches(r, '::ffff:9.255.0.0/112')).toBe(false);
    expect(matches(rule('::ffff:0.0.0.0/96', 96, 128), '::ffff:192.0.2.0/120')).toBe(true);
    expect(matches(rule('::ffff:0.0.0.0/96', 96, 128), '::fffe:0.0.0.0/120')).toBe(false);
  });

  it('IPv6 matching agrees with a bitwise reference', () => {
    // Addresses near one another, IPv4-mapped ones included, so coverage goes both ways.
    const addr = fc.oneof(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc
        .uint8Array({ minLength: 4, maxLength: 4 })
        .map((v4) => Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...v4])),
    );
    const flip = fc.option(fc.nat(127), { nil: undefined });
    const masked = (b: Uint8Array, len: number) => {
      const c = b.slice();
      for (let bit = len; bit < 128; bit++) c[bit >> 3]! &= ~(0x80 >> (bit & 7));
      return `${formatIpv6(c)}/${len}`;
    };
    fc.assert(
      fc.property(addr, flip, fc.nat(128), fc.nat(128), fc.nat(128), (a, f, rlen, klen, spread) => {
        const b = a.slice();
        if (f !== undefined) b[f >> 3]! ^= 0x80 >> (f & 7);
        const r: PrefixRule = {
          prefix: masked(a, rlen),
          ge: Math.min(rlen, spread),
          le: 128,
          action: 'accept',
        };
        const k = masked(b, klen);
        const rb = new Uint8Array(16);
        const kb = new Uint8Array(16);
        prefix6Parts(r.prefix as string, rb);
        prefix6Parts(k, kb);
        let same = true;
        for (let bit = 0; bit < rlen; bit++)
          if ((rb[bit >> 3]! ^ kb[bit >> 3]!) & (0x80 >> (bit & 7))) same = false;
        expect(ruleMatches(r, k)).toBe(klen >= rlen && klen >= r.ge && same);
      }),
      { numRuns: runs },
    );
  });

  it('the first matching rule wins; no match accepts', () => {
    const rules = [
      rule('10.1.0.0/16', 16, 32, 'reject'),
      rule('10.0.0.0/8', 8, 32, 'accept'),
      rule('0.0.0.0/0', 0, 32, 'reject'),
      rule('2001:db8::/32', 32, 128, 'reject'),
    ];
    expect(filterAccepts(rules, parsePrefix('10.1.2.0/24'))).toBe(false);
    expect(filterAccepts(rules, parsePrefix('10.2.0.0/16'))).toBe(true);
    expect(filterAccepts(rules, parsePrefix('192.0.2.0/24'))).toBe(false);
    expect(filterAccepts(rules, parsePrefix('2001:db8:1::/48'))).toBe(false);
    expect(filterAccepts(rules, parsePrefix('2001:db9::/32'))).toBe(true);
    expect(filterAccepts([], parsePrefix('10.0.0.0/8'))).toBe(true);
    // Order matters: the same rules the other way round.
    expect(filterAccepts([rules[1]!, rules[0]!], parsePrefix('10.1.2.0/24'))).toBe(true);
  });
});

describe('export: who gets a path', () => {
  const allowed = (from: PeerRef, to: PeerRef, reflector = true) =>
    exportAllowed(from, to, policyOf(to), reflector);

  it('never back to the peer it came from', () => {
    for (const p of [EBGP_A, CLIENT_A, NON_CLIENT_A]) expect(allowed(p, p)).toBe(false);
    // Our own paths go to everyone.
    for (const p of [EBGP_A, CLIENT_A, NON_CLIENT_A]) expect(allowed(LOCAL, p)).toBe(true);
  });

  it('eBGP-learned paths go to every other peer', () => {
    for (const to of [EBGP_B, CLIENT_A, NON_CLIENT_A]) {
      expect(allowed(EBGP_A, to, true)).toBe(true);
      expect(allowed(EBGP_A, to, false)).toBe(true);
    }
  });

  it('iBGP-learned paths go to eBGP peers, and to iBGP peers only when reflecting', () => {
    for (const from of [CLIENT_A, NON_CLIENT_A]) {
      expect(allowed(from, EBGP_A, false)).toBe(true);
      expect(allowed(from, NON_CLIENT_B, false)).toBe(false);
      expect(allowed(from, CLIENT_B, false)).toBe(false);
    }
  });

  it('RFC 4456 §8: from a client to every peer; from a non-client to clients only', () => {
    expect(allowed(CLIENT_A, CLIENT_B)).toBe(true);
    expect(allowed(CLIENT_A, NON_CLIENT_A)).toBe(true);
    expect(allowed(CLIENT_A, EBGP_A)).toBe(true);
    expect(allowed(NON_CLIENT_A, CLIENT_A)).toBe(true);
    expect(allowed(NON_CLIENT_A, NON_CLIENT_B)).toBe(false);
    expect(allowed(NON_CLIENT_A, EBGP_A)).toBe(true);
  });
});

describe('export: what a path carries', () => {
  const unknown = [
    { flags: AttrFlag.Optional | AttrFlag.Transitive, type: 99, value: Buffer.from([1, 2]) },
    { flags: AttrFlag.Optional, type: 100, value: Buffer.from([3]) },
  ];
  const learned: PathAttributes = {
    origin: 1,
    asPath: [seq(65001, 7)],
    nextHop: '192.0.2.1',
    med: 50,
    localPref: 300,
    communities: [65001 * 65536 + 1],
    originatorId: '10.0.0.77',
    clusterList: ['10.9.9.9'],
    unknown,
  };
  const HOPS = ['192.0.2.1'];
  const exp = (attrs: PathAttributes, from: PeerRef, to: PeerRef, x: Partial<PeerPolicy> = {}) =>
    exportAttrs(Object.freeze({ ...attrs }), HOPS, from, to, policyOf(to, x), ME);

  it('to eBGP: our AS prepended, next hop self, no LOCAL_PREF, MED, ORIGINATOR_ID or CLUSTER_LIST', () => {
    const e = exp(learned, CLIENT_A, EBGP_B);
    expect(e.nextHops).toBeUndefined();
    expect(e.attrs.asPath).toEqual([seq(65000, 65001, 7)]);
    expect(e.attrs).not.toHaveProperty('localPref');
    expect(e.attrs).not.toHaveProperty('med');
    expect(e.attrs).not.toHaveProperty('originatorId');
    expect(e.attrs).not.toHaveProperty('clusterList');
    expect(e.attrs.origin).toBe(1);
    expect(e.attrs.communities).toEqual(learned.communities);
  });

  it('to eBGP: MED kept on a path we originated', () => {
    expect(exp({ origin: 0, asPath: [], med: 7 }, LOCAL, EBGP_A).attrs.med).toBe(7);
    expect(exp({ origin: 0, asPath: [], med: 7 }, EBGP_B, EBGP_A).attrs).not.toHaveProperty('med');
  });

  it('to eBGP: prepends into the leading AS_SEQUENCE, or starts one', () => {
    expect(exp({ asPath: [] }, LOCAL, EBGP_A).attrs.asPath).toEqual([seq(65000)]);
    expect(exp({}, LOCAL, EBGP_A).attrs.asPath).toEqual([seq(65000)]);
    expect(exp({ asPath: [seq(1), set(2, 3)] }, EBGP_B, EBGP_A).attrs.asPath).toEqual([
      seq(65000, 1),
      set(2, 3),
    ]);
    // A leading AS_SET: a new AS_SEQUENCE in front.
    expect(exp({ asPath: [set(2, 3), seq(1)] }, CLIENT_A, EBGP_A).attrs.asPath).toEqual([
      seq(65000),
      set(2, 3),
      seq(1),
    ]);
    // A full AS_SEQUENCE (255 ASes): a new one in front.
    const full = Array.from({ length: 255 }, (_, i) => i + 1);
    expect(prepend([seq(...full)], 65000)).toEqual([seq(65000), seq(...full)]);
    const almost = full.slice(1);
    expect(prepend([seq(...almost)], 65000)).toEqual([seq(65000, ...almost)]);
    // A leading confederation segment is not extended either.
    const confed = { type: AsPathSegmentType.AsConfedSequence, asns: [64512] };
    expect(prepend([confed], 65000)).toEqual([seq(65000), confed]);
  });

  it('to iBGP from eBGP: next hop and AS_PATH kept, LOCAL_PREF 100 when absent, MED kept, no reflection', () => {
    const e = exp(
      { ...learned, localPref: undefined, originatorId: undefined, clusterList: undefined },
      EBGP_A,
      NON_CLIENT_A,
    );
    expect(e.nextHops).toEqual(HOPS);
    expect(e.attrs.asPath).toEqual(learned.asPath);
    expect(e.attrs.localPref).toBe(100);
    expect(e.attrs.med).toBe(50);
    expect(e.attrs).not.toHaveProperty('originatorId');
    expect(e.attrs).not.toHaveProperty('clusterList');
    expect(
      exp({ ...learned, originatorId: undefined, clusterList: undefined }, EBGP_A, CLIENT_A).attrs.localPref,
    ).toBe(300);
  });

  it('to iBGP: next hop self when configured or when the path is ours', () => {
    expect(exp(learned, EBGP_A, NON_CLIENT_A, { nextHopSelf: true }).nextHops).toBeUndefined();
    const local = exp({ origin: 0, asPath: [] }, LOCAL, NON_CLIENT_A);
    expect(local.nextHops).toBeUndefined();
    expect(local.attrs.localPref).toBe(100);
    expect(local.attrs.asPath).toEqual([]);
    expect(local.attrs).not.toHaveProperty('originatorId');
    expect(local.attrs).not.toHaveProperty('clusterList');
  });

  it('reflecting: ORIGINATOR_ID set to the source’s router id when absent, kept when present; our cluster id first', () => {
    const fresh = exp(
      { ...learned, originatorId: undefined, clusterList: undefined },
      CLIENT_A,
      NON_CLIENT_A,
    );
    expect(fresh.attrs.originatorId).toBe('10.0.0.1');
    expect(fresh.attrs.clusterList).toEqual([ME.clusterId]);
    expect(fresh.nextHops).toEqual(HOPS);
    expect(fresh.attrs.localPref).toBe(300);
    const again = exp(learned, NON_CLIENT_A, CLIENT_B);
    expect(again.attrs.originatorId).toBe('10.0.0.77');
    expect(again.attrs.clusterList).toEqual([ME.clusterId, '10.9.9.9']);
    // A router id above 2^31 comes out as a dotted quad, not a negative number.
    const high = peer('10.0.0.3', { routerId: parseIpv4('200.1.2.3'), rrClient: true });
    expect(exp({ origin: 0 }, high, NON_CLIENT_A).attrs.originatorId).toBe('200.1.2.3');
  });

  it('unknown transitive attributes go on with Partial set; non-transitive ones stop', () => {
    for (const [from, to] of [
      [EBGP_A, EBGP_B],
      [EBGP_A, CLIENT_A],
      [CLIENT_A, NON_CLIENT_A],
    ] as const) {
      expect(exp(learned, from, to).attrs.unknown).toEqual([
        {
          flags: AttrFlag.Optional | AttrFlag.Transitive | AttrFlag.Partial,
          type: 99,
          value: Buffer.from([1, 2]),
        },
      ]);
    }
    expect(exp({ unknown: [unknown[1]!] }, EBGP_A, EBGP_B).attrs).not.toHaveProperty('unknown');
  });

  it('any attributes: never mutated; eBGP export one AS longer with ours first and no iBGP-only attributes', () => {
    fc.assert(
      fc.property(
        pathAttributes(makeContext(), false),
        fc.constantFrom(LOCAL, EBGP_A, CLIENT_A, NON_CLIENT_A),
        (a, from) => {
          const snapshot = (x: unknown) =>
            JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
          const before = snapshot(a);
          const frozen = Object.freeze(a);
          const e = exportAttrs(frozen, HOPS, from, EBGP_B, policyOf(EBGP_B), ME);
          expect(snapshot(a)).toBe(before);
          expect(asPathLength(e.attrs.asPath)).toBe(asPathLength(a.asPath) + 1);
          expect(e.attrs.asPath?.[0]?.type).toBe(AsPathSegmentType.AsSequence);
          expect(e.attrs.asPath?.[0]?.asns[0]).toBe(ME.asn);
          for (const k of ['localPref', 'originatorId', 'clusterList', 'nextHop'] as const)
            expect(e.attrs).not.toHaveProperty(k);
          for (const u of e.attrs.unknown ?? [])
            expect(u.flags & (AttrFlag.Transitive | AttrFlag.Partial)).toBe(0x60);
          const i = exportAttrs(frozen, HOPS, from, CLIENT_B, policyOf(CLIENT_B), ME);
          expect(snapshot(a)).toBe(before);
          expect(i.attrs.localPref).toBe(a.localPref ?? 100);
          expect(i.attrs.asPath).toEqual(a.asPath ?? []);
        },
      ),
      { numRuns: runs },
    );
  });
});

describe('eBGP export and confederations (RFC 5065 §5.3)', () => {
  it('confederation segments are removed before our AS is prepended', () => {
    const from = { id: '10.0.0.2', asn: 64512, routerId: 2, ebgp: false, local: false, rrClient: false };
    const to = { id: '10.0.0.9', asn: 65009, routerId: 9, ebgp: true, local: false, rrClient: false };
    const me = { asn: 64512, routerId: '10.0.0.1', clusterId: '10.0.0.1' };
    const e = exportAttrs(
      {
        origin: 0,
        asPath: [
          { type: 3, asns: [65100] },
          { type: 2, asns: [65001] },
        ],
      },
      ['10.0.0.2'],
      from,
      to,
      DEFAULT_PEER_POLICY,
      me,
    );
    expect(e.attrs.asPath).toEqual([{ type: 2, asns: [64512, 65001] }]);
  });
});
