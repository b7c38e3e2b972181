/**
 * Import and export rules, pure: what enters the RIB from a peer and what leaves it to a peer.
 *
 * Import (RFC 4271 §9.1.2, RFC 4456 §8):
 *   - AS loop: a path holding our AS more than `allowasIn` times is rejected;
 *   - reflection loops: our router id as ORIGINATOR_ID, or our cluster id in CLUSTER_LIST;
 *   - the peer's import prefix filter (first matching rule wins; no match accepts).
 * Export (RFC 4271 §5.1, §9.2, RFC 4456 §8):
 *   - never back to the peer it came from;
 *   - a path learned over iBGP goes to an iBGP peer only when we reflect it: from a client to
 *     every other peer, from a non-client to clients only (RFC 4456 §8);
 *   - to an eBGP peer: our AS prepended, NEXT_HOP self, no LOCAL_PREF, no MED unless we
 *     originated the path, no ORIGINATOR_ID or CLUSTER_LIST;
 *   - to an iBGP peer: LOCAL_PREF (100 unless set), NEXT_HOP kept unless the peer is configured
 *     next-hop-self or the path is ours; when reflecting, ORIGINATOR_ID set to the originating
 *     speaker's id if absent and our cluster id prepended to CLUSTER_LIST;
 *   - unknown optional transitive attributes pass on with Partial set; non-transitive ones stop;
 *   - the peer's export prefix filter.
 * A next hop of "self" is left as `undefined` in the result: only the session knows its address.
 */
import { formatIpv4, type PrefixKey, prefix4Len, prefix6Parts, prefixAfi } from '../net/addr.js';
import type { PathAttributes } from './wire/attributes.js';
import { forwardUnknown } from './wire/attributes.js';
import { AsPathSegmentType } from './wire/constants.js';
import type { PeerRef } from './rib/rib.js';

export interface PrefixRule {
  /** Prefix key (src/net/addr.ts) the rule matches, with its length range. */
  prefix: PrefixKey;
  /** Lengths matched: [ge, le]; default exactly the prefix length. */
  ge: number;
  le: number;
  action: 'accept' | 'reject';
}

export interface PeerPolicy {
  /** Reflect to this peer as a route-reflector client (we are its reflector). */
  rrClient: boolean;
  nextHopSelf: boolean;
  /** How many times our AS may appear in a received path (0: none). */
  allowasIn: number;
  importRules: PrefixRule[];
  exportRules: PrefixRule[];
}

/**
 * A peer's policy: the defaults, with `o` over them; the rule lists are copied. Every PeerPolicy
 * is made here, so all have one shape, lists included (an array from `map` is of another kind
 * than a literal one): "Warming the UPDATE path", warmup.ts.
 */
export function peerPolicy(o: Partial<PeerPolicy> = {}): PeerPolicy {
  return {
    rrClient: o.rrClient ?? false,
    nextHopSelf: o.nextHopSelf ?? false,
    allowasIn: o.allowasIn ?? 0,
    importRules: o.importRules?.length ? [...o.importRules] : [],
    exportRules: o.exportRules?.length ? [...o.exportRules] : [],
  };
}

export const DEFAULT_PEER_POLICY: PeerPolicy = peerPolicy();

export interface LocalInfo {
  asn: number;
  /** Our BGP Identifier, dotted. */
  routerId: string;
  /** RFC 4456 cluster id, dotted; the router id unless configured. */
  clusterId: string;
}

/** Does `rule` match prefix `k`? Address family, covered by the rule's prefix, length in range. */
export function ruleMatches(rule: PrefixRule, k: PrefixKey): boolean {
  if (prefixAfi(rule.prefix) !== prefixAfi(k)) return false;
  const len = typeof k === 'number' ? prefix4Len(k) : Number(k.slice(k.lastIndexOf('/') + 1));
  if (len < rule.ge || len > rule.le) return false;
  const rlen =
    typeof rule.prefix === 'number'
      ? prefix4Len(rule.prefix)
      : Number(rule.prefix.slice(rule.prefix.lastIndexOf('/') + 1));
  if (len < rlen) return false;
  return covers(rule.prefix, rlen, k);
}

function covers(rule: PrefixKey, rlen: number, k: PrefixKey): boolean {
  if (typeof rule === 'number' && typeof k === 'number') {
    const ra = Math.floor(rule / 64);
    const ka = Math.floor(k / 64);
    if (rlen === 0) return true;
    const mask = (0xffffffff << (32 - rlen)) >>> 0;
    return (ra & mask) >>> 0 === (ka & mask) >>> 0;
  }
  // Compare bytes, not text: canonical IPv6 text keeps a dotted tail for IPv4-mapped addresses.
  const rb = new Uint8Array(16);
  const kb = new Uint8Array(16);
  prefix6Parts(rule as string, rb);
  prefix6Parts(k as string, kb);
  for (let bit = 0; bit < rlen; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((rb[bit >> 3]! & m) !== (kb[bit >> 3]! & m)) return false;
  }
  return true;
}

/** First matching rule decides; no rule matches: accept. */
export function filterAccepts(rules: readonly PrefixRule[], k: PrefixKey): boolean {
  for (const r of rules) if (ruleMatches(r, k)) return r.action === 'accept';
  return true;
}

export type ImportVerdict = { accept: true } | { accept: false; reason: string };
/** One object for every accepted path (an UPDATE each). */
const ACCEPT: ImportVerdict = Object.freeze({ accept: true });

export function importCheck(
  attrs: PathAttributes,
  from: PeerRef,
  policy: PeerPolicy,
  me: LocalInfo,
): ImportVerdict {
  let ours = 0;
  for (const s of attrs.asPath ?? []) for (const a of s.asns) if (a === me.asn) ours++;
  if (ours > policy.allowasIn) return { accept: false, reason: `AS loop: AS ${me.asn} in AS_PATH` };
  if (!from.ebgp) {
    if (attrs.originatorId === me.routerId)
      return { accept: false, reason: 'ORIGINATOR_ID is our router id (RFC 4456 §8)' };
    if (attrs.clusterList?.includes(me.clusterId))
      return { accept: false, reason: 'our cluster id in CLUSTER_LIST (RFC 4456 §8)' };
  }
  return ACCEPT;
}

const isOutside = (g: { type: number }) =>
  g.type === AsPathSegmentType.AsSequence || g.type === AsPathSegmentType.AsSet;

/** Should a path from `from` go to `to` at all (split horizon, iBGP and reflection rules)? */
export function exportAllowed(from: PeerRef, to: PeerRef, toPolicy: PeerPolicy, reflector: boolean): boolean {
  if (from.id === to.id && !from.local) return false;
  if (from.local || from.ebgp || to.ebgp) return true;
  // iBGP to iBGP: only by reflection (RFC 4456 §8).
  if (!reflector) return false;
  return from.rrClient || toPolicy.rrClient;
}

export interface Exported {
  attrs: PathAttributes;
  /** Keep these next hops; undefined: next hop self. */
  nextHops: readonly string[] | undefined;
}

/** The attributes a path carries to `to` (after exportAllowed said yes). */
export function exportAttrs(
  attrs: Readonly<PathAttributes>,
  nextHops: readonly string[],
  from: PeerRef,
  to: PeerRef,
  toPolicy: PeerPolicy,
  me: LocalInfo,
): Exported {
  const out: PathAttributes = {};
  if (attrs.origin !== undefined) out.origin = attrs.origin;
  if (attrs.atomicAggregate) out.atomicAggregate = true;
  if (attrs.aggregator) out.aggregator = attrs.aggregator;
  if (attrs.communities) out.communities = attrs.communities;
  if (attrs.extCommunities) out.extCommunities = attrs.extCommunities;
  if (attrs.largeCommunities) out.largeCommunities = attrs.largeCommunities;
  const unknown = forwardUnknown(attrs.unknown);
  if (unknown) out.unknown = unknown;
  if (to.ebgp) {
    // RFC 5065 §5.3: confederation segments never leave for an external peer.
    const path = attrs.asPath ?? [];
    const outside = path.every(isOutside) ? path : path.filter(isOutside);
    out.asPath = prepend(outside, me.asn);
    if (from.local && attrs.med !== undefined) out.med = attrs.med;
    return { attrs: out, nextHops: undefined };
  }
  out.asPath = attrs.asPath ?? [];
  out.localPref = attrs.localPref ?? 100;
  if (attrs.med !== undefined) out.med = attrs.med;
  const reflecting = !from.local && !from.ebgp;
  if (reflecting) {
    out.originatorId = attrs.originatorId ?? formatIpv4(from.routerId);
    out.clusterList = [me.clusterId, ...(attrs.clusterList ?? [])];
  }
  const self = from.local || toPolicy.nextHopSelf;
  return { attrs: out, nextHops: self ? undefined : nextHops };
}

/**
 * RFC 4271 §5.1.2: prepend to the leading AS_SEQUENCE, or start one. The segments after the
 * first are the path's own, not copies: paths are never changed in place.
 */
export function prepend(
  path: readonly { type: number; asns: readonly number[] }[],
  asn: number,
): { type: number; asns: number[] }[] {
  const first = path[0];
  const out: { type: number; asns: number[] }[] = [];
  let rest = 0;
  if (first && first.type === AsPathSegmentType.AsSequence && first.asns.length < 255) {
    const asns = new Array<number>(first.asns.length + 1);
    asns[0] = asn;
    for (let i = 0; i < first.asns.length; i++) asns[i + 1] = first.asns[i]!;
    out.push({ type: first.type, asns });
    rest = 1;
  } else out.push({ type: AsPathSegmentType.AsSequence, asns: [asn] });
  for (let i = rest; i < path.length; i++) out.push(path[i] as { type: number; asns: number[] });
  return out;
}
