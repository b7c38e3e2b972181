/**
 * Golden messages captured from BIRD 2, FRR and GoBGP (test/fixtures/golden, with provenance and
 * the script that regenerates them) decode to the values their configurations and tshark say.
 * The loader asserts it found every file it should: a glob that matches nothing must fail, not
 * pass quietly.
 *
 * The files hold only the sender's messages. The session context each was sent under is derived
 * from the files themselves: every capture negotiated 4-octet AS numbers, and ADD-PATH was in
 * force for a family exactly where tshark's decode lists path identifiers for it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatPrefix } from '../../../src/net/addr.js';
import {
  type DecodedUpdate,
  decodeAll,
  family,
  familyName,
  formatAsPath,
  formatCommunity,
  formatExtCommunity,
  formatLargeCommunity,
  IPV4_UNICAST,
  IPV6_UNICAST,
  makeContext,
  type Message,
  MsgType,
  openAs,
} from '../../../src/bgp/wire/index.js';

const DIR = join(import.meta.dirname, '../../fixtures/golden');
const TYPES: Record<string, MsgType> = {
  OPEN: MsgType.Open,
  UPDATE: MsgType.Update,
  NOTIFICATION: MsgType.Notification,
  KEEPALIVE: MsgType.Keepalive,
  'ROUTE-REFRESH': MsgType.RouteRefresh,
};
const ORIGINS = ['IGP', 'EGP', 'INCOMPLETE'];
const SEGMENTS: Record<number, string> = {
  1: 'AS_SET',
  2: 'AS_SEQUENCE',
  3: 'AS_CONFED_SEQUENCE',
  4: 'AS_CONFED_SET',
};

interface Golden {
  provenance: { sender: string; peer: string; capturedAt: string; how: string; config: string };
  messages: {
    type: string;
    hex: string;
    expect: Record<string, unknown>;
    expectExtra?: Record<string, unknown>;
  }[];
}

const files = ['bird', 'frr', 'gobgp'].flatMap((d) =>
  readdirSync(join(DIR, d))
    .filter((f) => f.endsWith('.json'))
    .map((f) => join(d, f)),
);

function addPathFamilies(g: Golden): Set<number> {
  const out = new Set<number>();
  for (const m of g.messages) {
    const x = m.expectExtra ?? {};
    if (x.nlriPathIds || x.withdrawnPathIds) out.add(IPV4_UNICAST);
    const reach = m.expect.mpReach as { afi: number } | undefined;
    const unreach = m.expect.mpUnreach as { afi: number } | undefined;
    if (x.mpReachPathIds && reach) out.add(family(reach.afi, 1));
    if (x.mpUnreachPathIds && unreach) out.add(family(unreach.afi, 1));
  }
  return out;
}

/** The decoded message in the vocabulary of the fixtures' `expect`. */
function view(m: Message): Record<string, unknown> {
  if (m.type === MsgType.Open) {
    const c = m.caps;
    return {
      asn: openAs(m),
      holdTime: m.holdTime,
      bgpId: formatIpv4(m.bgpId),
      capabilityCount: c.multiprotocol.length,
    };
  }
  if (m.type !== MsgType.Update) return {};
  const u = m as DecodedUpdate;
  const a = u.attrs;
  const v: Record<string, unknown> = {};
  if (u.endOfRib !== undefined) return { endOfRib: familyName(u.endOfRib) };
  if (u.withdrawn.length) v.withdrawn = u.withdrawn.map(formatPrefix);
  if (u.nlri.length) v.nlri = u.nlri.map(formatPrefix);
  if (a.origin !== undefined) v.origin = ORIGINS[a.origin];
  if (a.asPath) v.asPath = a.asPath.map((s) => ({ type: SEGMENTS[s.type], asns: s.asns }));
  if (a.med !== undefined) v.med = a.med;
  if (a.localPref !== undefined) v.localPref = a.localPref;
  if (a.communities) v.communities = a.communities.map(formatCommunity);
  if (a.extCommunities) v.extCommunities = a.extCommunities.map(formatExtCommunity);
  if (a.largeCommunities) v.largeCommunities = a.largeCommunities.map(formatLargeCommunity);
  if (u.mpReach)
    v.mpReach = {
      afi: u.mpReach.afi,
      nextHops: u.mpReach.nextHops,
      nlri: u.mpReach.prefixes.map(formatPrefix),
    };
  if (u.mpUnreach) v.mpUnreach = { afi: u.mpUnreach.afi, nlri: u.mpUnreach.prefixes.map(formatPrefix) };
  return v;
}

function formatIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

describe('golden messages from BIRD, FRR and GoBGP', () => {
  it('the loader found captures from every implementation', () => {
    for (const d of ['bird', 'frr', 'gobgp'])
      expect(files.filter((f) => f.startsWith(d)).length).toBeGreaterThanOrEqual(2);
  });

  for (const file of files) {
    describe(file, () => {
      const g = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as Golden;
      const ap = addPathFamilies(g);
      const ctx = makeContext({ as4: true, addPathRx: ap, addPathTx: ap, maxLength: 65535 });

      it('has provenance', () => {
        expect(g.provenance.sender).toMatch(/BIRD|bgpd|GoBGP/i);
        expect(g.provenance.config.length).toBeGreaterThan(50);
        expect(g.messages.length).toBeGreaterThan(3);
      });

      it('every message decodes, with no errors, to the expected values', () => {
        for (const [i, gm] of g.messages.entries()) {
          const msgs = decodeAll(Buffer.from(gm.hex, 'hex'), ctx);
          expect(msgs.length, `message ${i}`).toBe(1);
          const m = msgs[0]!;
          expect(m.type, `message ${i}`).toBe(TYPES[gm.type]);
          if (m.type === MsgType.Update) expect(m.errors, `message ${i}`).toEqual([]);
          const got = view(m);
          const want = { ...gm.expect };
          if (m.type === MsgType.Open) {
            const caps = want.capabilities as number[];
            delete want.capabilities;
            want.capabilityCount = caps.filter((c) => c === 1).length;
          }
          // ext communities are listed only when all are route targets/origins.
          if (!('extCommunities' in want)) delete got.extCommunities;
          expect(got, `message ${i}: ${gm.type}`).toEqual(want);
          const x = gm.expectExtra ?? {};
          if (m.type === MsgType.Update) {
            if (x.nlriPathIds) expect(m.nlriIds).toEqual(x.nlriPathIds);
            if (x.withdrawnPathIds) expect(m.withdrawnIds).toEqual(x.withdrawnPathIds);
            if (x.mpReachPathIds) expect(m.mpReach?.pathIds).toEqual(x.mpReachPathIds);
            if (x.nextHop) expect(m.attrs.nextHop).toBe(x.nextHop);
            if (x.aggregator) expect(m.attrs.aggregator).toEqual(x.aggregator);
            if (x.atomicAggregate) expect(m.attrs.atomicAggregate).toBe(true);
            if (x.extCommunitiesHex) {
              expect(m.attrs.extCommunities?.map((c) => c.toString(16).padStart(16, '0'))).toEqual(
                x.extCommunitiesHex,
              );
            }
            for (const t of (x.otherAttributes as number[] | undefined) ?? []) {
              expect(m.attrs.unknown?.map((u) => u.type)).toContain(t);
            }
            if (m.attrs.asPath) expect(formatAsPath(m.attrs.asPath)).not.toBe(undefined);
          }
          if (m.type === MsgType.Notification && x.shutdownMessage !== undefined) {
            expect(m.shutdownMessage).toBe(x.shutdownMessage);
          }
          if (m.type === MsgType.RouteRefresh && x.subtype !== undefined) {
            expect([m.afi, m.safi, m.subtype]).toEqual([x.afi, x.safi, x.subtype]);
          }
          if (m.type === MsgType.Open && x.hostname) expect(m.caps.fqdn?.hostname).toBe(x.hostname);
        }
      });
    });
  }

  it('a real OPEN carries the families Twill reads', () => {
    const g = JSON.parse(readFileSync(join(DIR, 'bird/ibgp-ipv4-session.json'), 'utf8')) as Golden;
    const [open] = decodeAll(Buffer.from(g.messages[0]!.hex, 'hex'), makeContext());
    expect(open!.type === MsgType.Open && open!.caps.multiprotocol).toEqual([IPV4_UNICAST, IPV6_UNICAST]);
  });
});
