/**
 * fast-check arbitraries for every message type, shaped so that decode(encode(x)) must equal x:
 * the fields a decoder normalises (deduplicated families, sorted unknown attributes, empty lists
 * that are never sent) are generated already normal.
 */
import fc from 'fast-check';
import { formatIpv6 } from '../../../src/net/addr.js';
import {
  type Capabilities,
  type CodecContext,
  IPV4_UNICAST,
  IPV6_UNICAST,
  makeContext,
  MsgType,
  type OpenMessage,
  type OutMessage,
  type PathAttributes,
  type Update,
} from '../../../src/bgp/wire/index.js';

const u32 = fc.nat(0xffffffff);
const family = fc.constantFrom(IPV4_UNICAST, IPV6_UNICAST);
const KNOWN_CAPS = new Set([1, 2, 6, 64, 65, 69, 70, 71, 73, 128]);
const KNOWN_ATTRS = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32]);

export const ipv4 = u32.map((a) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`);
/** A next hop the decoder accepts (not 0/8, 127/8 or class D/E). */
export const unicastIpv4 = fc
  .tuple(
    fc.integer({ min: 1, max: 223 }).filter((x) => x !== 127),
    fc.nat(255),
    fc.nat(255),
    fc.nat(255),
  )
  .map(([a, b, c, d]) => `${a}.${b}.${c}.${d}`);

export const prefix4 = fc.tuple(u32, fc.integer({ min: 0, max: 32 })).map(([a, len]) => {
  const masked = len === 0 ? 0 : (a & (0xffffffff << (32 - len))) >>> 0;
  return masked * 64 + len;
});

export const prefix6 = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }))
  .map(([b, len]) => {
    for (let bit = len; bit < 128; bit++) b[bit >> 3]! &= ~(0x80 >> (bit & 7));
    return `${formatIpv6(b)}/${len}`;
  });

export const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIpv6(b));

const ascii = (max: number) =>
  fc.string({
    unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
    maxLength: max,
  });

export const capabilities: fc.Arbitrary<Capabilities> = fc.record(
  {
    multiprotocol: fc.uniqueArray(family, { maxLength: 2 }),
    routeRefresh: fc.boolean(),
    enhancedRouteRefresh: fc.boolean(),
    extendedMessage: fc.boolean(),
    fourOctetAs: u32,
    gracefulRestart: fc.record({
      restarting: fc.boolean(),
      notification: fc.boolean(),
      time: fc.nat(4095),
      families: fc.array(fc.record({ family, forwarding: fc.boolean() }), { maxLength: 2 }),
    }),
    llgr: fc.record({
      families: fc.array(fc.record({ family, forwarding: fc.boolean(), staleTime: fc.nat(0xffffff) }), {
        maxLength: 2,
      }),
    }),
    addPath: fc.array(fc.record({ family, mode: fc.integer({ min: 1, max: 3 }) }), { maxLength: 2 }),
    fqdn: fc.record({ hostname: ascii(64), domain: ascii(64) }),
    unknown: fc.array(
      fc.record({
        code: fc.nat(255).filter((c) => !KNOWN_CAPS.has(c)),
        value: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)),
      }),
      { maxLength: 3 },
    ),
  },
  {
    requiredKeys: [
      'multiprotocol',
      'routeRefresh',
      'enhancedRouteRefresh',
      'extendedMessage',
      'addPath',
      'unknown',
    ],
  },
);

export const open: fc.Arbitrary<OpenMessage> = fc.record({
  version: fc.constant(4),
  myAs: fc.integer({ min: 1, max: 0xffff }),
  holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 0xffff })),
  bgpId: fc.integer({ min: 1, max: 0xffffffff }),
  caps: capabilities,
});

const segment = (asn: fc.Arbitrary<number>, types: number[]) =>
  fc.record({ type: fc.constantFrom(...types), asns: fc.array(asn, { minLength: 1, maxLength: 10 }) });

/** Path attributes for a context; `reach` forces the mandatory ones. */
export function pathAttributes(ctx: CodecContext, reach: boolean): fc.Arbitrary<PathAttributes> {
  const asn = ctx.as4 ? u32 : fc.integer({ min: 0, max: 0xffff });
  const req = reach ? ['origin', 'asPath', 'nextHop'] : [];
  return fc.record(
    {
      origin: fc.integer({ min: 0, max: 2 }),
      asPath: fc.array(segment(asn, [1, 2, 3, 4]), { maxLength: 3 }),
      nextHop: unicastIpv4,
      med: u32,
      localPref: u32,
      atomicAggregate: fc.constant(true),
      aggregator: fc.record({ asn, address: ipv4 }),
      communities: fc.array(u32, { minLength: 1, maxLength: 20 }),
      originatorId: ipv4,
      clusterList: fc.array(ipv4, { minLength: 1, maxLength: 5 }),
      extCommunities: fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 1, maxLength: 5 }),
      largeCommunities: fc.array(fc.tuple(u32, u32, u32), { minLength: 1, maxLength: 5 }),
      unknown: fc
        .uniqueArray(
          fc.record({
            flags: fc.constantFrom(0x80, 0xc0, 0xe0),
            type: fc.integer({ min: 19, max: 255 }).filter((t) => !KNOWN_ATTRS.has(t)),
            value: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          }),
          { selector: (x) => x.type, minLength: 1, maxLength: 2 },
        )
        .map((xs) => xs.sort((a, b) => a.type - b.type)),
    },
    { requiredKeys: req as never[] },
  );
}

/** On a 2-octet session: 4-octet numbers anywhere, no confederation segments (RFC 6793 §4.2.2). */
export function as4OverAs2Attributes(): fc.Arbitrary<PathAttributes> {
  return fc.record(
    {
      origin: fc.integer({ min: 0, max: 2 }),
      asPath: fc.array(segment(u32, [1, 2]), { maxLength: 3 }),
      nextHop: unicastIpv4,
      aggregator: fc.record({ asn: u32.filter((a) => a !== 23456), address: ipv4 }),
    },
    { requiredKeys: ['origin', 'asPath', 'nextHop'] },
  );
}

export const contexts: fc.Arbitrary<CodecContext> = fc
  .record({ as4: fc.boolean(), addPath4: fc.boolean(), addPath6: fc.boolean() })
  .map(({ as4, addPath4, addPath6 }) => {
    const ap = new Set<number>();
    if (addPath4) ap.add(IPV4_UNICAST);
    if (addPath6) ap.add(IPV6_UNICAST);
    return makeContext({ as4, addPathRx: ap, addPathTx: ap, maxLength: 65535 });
  });

function ids(n: number) {
  return fc.array(u32, { minLength: n, maxLength: n });
}

export function update(ctx: CodecContext): fc.Arbitrary<Update> {
  const ap4 = ctx.addPathTx.has(IPV4_UNICAST);
  const ap6 = ctx.addPathTx.has(IPV6_UNICAST);
  return fc
    .record({
      withdrawn: fc.array(prefix4, { maxLength: 30 }),
      nlri: fc.array(prefix4, { maxLength: 30 }),
      reach6: fc.option(
        fc.record({
          hops: fc.array(ipv6, { minLength: 1, maxLength: 2 }),
          prefixes: fc.array(prefix6, { minLength: 1, maxLength: 15 }),
        }),
        { nil: undefined },
      ),
      unreach6: fc.option(fc.array(prefix6, { maxLength: 15 }), { nil: undefined }),
    })
    .chain(({ withdrawn, nlri, reach6, unreach6 }) =>
      fc
        .record({
          attrs: pathAttributes(ctx, nlri.length > 0 || reach6 !== undefined),
          wIds: ids(withdrawn.length),
          nIds: ids(nlri.length),
          rIds: ids(reach6?.prefixes.length ?? 0),
          uIds: ids(unreach6?.length ?? 0),
        })
        .map(({ attrs, wIds, nIds, rIds, uIds }) => {
          if (!(nlri.length > 0 || reach6)) {
            // Attributes without NLRI: keep them, the decoder checks nothing mandatory then.
          }
          const u: Update = { withdrawn, attrs, nlri };
          if (ap4) {
            u.withdrawnIds = wIds;
            u.nlriIds = nIds;
          }
          if (reach6) {
            u.mpReach = { afi: 2, safi: 1, nextHops: reach6.hops, prefixes: reach6.prefixes };
            if (ap6) u.mpReach.pathIds = rIds;
          }
          if (unreach6) {
            u.mpUnreach = { afi: 2, safi: 1, prefixes: unreach6 };
            if (ap6) u.mpUnreach.pathIds = uIds;
          }
          return u;
        }),
    );
}

export const notification = fc.record({
  type: fc.constant(MsgType.Notification as const),
  code: fc.integer({ min: 1, max: 7 }),
  subcode: fc.nat(255),
  data: fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
});

export const routeRefresh = fc.record({
  type: fc.constant(MsgType.RouteRefresh as const),
  afi: fc.nat(0xffff),
  safi: fc.nat(255),
  subtype: fc.nat(255),
});

/** Any message with the context it is encoded under. */
export const anyMessage: fc.Arbitrary<{ ctx: CodecContext; msg: OutMessage }> = contexts.chain((ctx) =>
  fc.oneof(
    open.map((o) => ({ ctx, msg: { type: MsgType.Open as const, ...o } })),
    update(ctx).map((u) => ({ ctx, msg: { type: MsgType.Update as const, ...u } })),
    notification.map((n) => ({ ctx, msg: n })),
    fc.constant({ ctx, msg: { type: MsgType.Keepalive as const } }),
    routeRefresh.map((r) => ({ ctx, msg: r })),
  ),
);
