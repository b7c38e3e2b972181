/**
 * A naive reference model of the Loc-RIB for test/bgp/rib.property.test.ts, written apart from
 * src/bgp/decision.ts and src/bgp/rib/rib.ts and as plainly as possible: every path in a flat
 * array, the best one found by filtering the array once per RFC 4271 §9.1.2.2 rule.
 *
 * It shares no code with what it checks: peer addresses compare by a rank the fixture writes out
 * by hand, neighbour ASes and path lengths are counted here again.
 */
import type { PrefixKey } from '../../src/net/addr.js';
import type { AsPathSegment, PathAttributes } from '../../src/bgp/wire/attributes.js';

export interface RefPeer {
  id: string;
  asn: number;
  routerId: number;
  ebgp: boolean;
  local: boolean;
  rrClient: boolean;
  /** Position of the peer's address in byte order (IPv4 before IPv6), written by hand. */
  addressRank: number;
}

export interface RefAttrs {
  attrs: PathAttributes;
  nextHop: string;
}

export interface RefPath {
  peer: RefPeer;
  prefix: PrefixKey;
  pathId: number;
  attrs: RefAttrs;
  stale: boolean;
}

export type RefReason =
  | 'none'
  | 'only'
  | 'localPref'
  | 'local'
  | 'asPathLength'
  | 'origin'
  | 'med'
  | 'ebgp'
  | 'igpCost'
  | 'clusterList'
  | 'routerId'
  | 'peerAddress'
  | 'pathId';

// Segment types, RFC 4271 §4.3 and RFC 5065 §3.
const AS_SET = 1;
const AS_SEQUENCE = 2;

function pathLength(segments: readonly AsPathSegment[] | undefined): number {
  let n = 0;
  for (const s of segments ?? []) {
    if (s.type === AS_SEQUENCE) n += s.asns.length;
    if (s.type === AS_SET) n += 1;
  }
  return n;
}

/** The AS we heard the path from: first AS of a leading AS_SEQUENCE after any confed segments. */
function neighbourAs(segments: readonly AsPathSegment[] | undefined): number {
  const first = (segments ?? []).find((s) => s.type === AS_SET || s.type === AS_SEQUENCE);
  return first?.type === AS_SEQUENCE ? first.asns[0]! : 0;
}

function dotted(text: string): number {
  const [a, b, c, d] = text.split('.').map(Number) as [number, number, number, number];
  return a * 2 ** 24 + b * 2 ** 16 + c * 2 ** 8 + d;
}

export class RefRib {
  paths: RefPath[] = [];

  constructor(
    private readonly alwaysCompareMed: boolean,
    /** IGP cost of a next hop; undefined: unreachable. */
    private readonly cost: (nextHop: string) => number | undefined,
  ) {}

  announce(peer: RefPeer, prefix: PrefixKey, pathId: number, attrs: RefAttrs): void {
    this.withdraw(peer, prefix, pathId);
    this.paths.push({ peer, prefix, pathId, attrs, stale: false });
  }

  withdraw(peer: RefPeer, prefix: PrefixKey, pathId: number): void {
    this.paths = this.paths.filter((p) => !(p.peer === peer && p.prefix === prefix && p.pathId === pathId));
  }

  peerDown(peer: RefPeer): void {
    this.paths = this.paths.filter((p) => p.peer !== peer);
  }

  markStale(peer: RefPeer, inFamily: (k: PrefixKey) => boolean): void {
    for (const p of this.paths) if (p.peer === peer && inFamily(p.prefix)) p.stale = true;
  }

  sweepStale(peer: RefPeer, inFamily: (k: PrefixKey) => boolean): void {
    this.paths = this.paths.filter((p) => !(p.peer === peer && inFamily(p.prefix) && p.stale));
  }

  igpCost(p: RefPath): number | undefined {
    if (p.peer.local || p.attrs.nextHop === p.peer.id) return 0;
    return this.cost(p.attrs.nextHop);
  }

  best(prefix: PrefixKey): { best: RefPath | undefined; reason: RefReason } {
    let left = this.paths.filter((p) => p.prefix === prefix && this.igpCost(p) !== undefined);
    if (left.length === 0) return { best: undefined, reason: 'none' };
    if (left.length === 1) return { best: left[0], reason: 'only' };
    const lowest = (reason: RefReason, score: (p: RefPath) => number): RefReason | undefined => {
      const min = Math.min(...left.map(score));
      left = left.filter((p) => score(p) === min);
      return left.length === 1 ? reason : undefined;
    };
    const a = (p: RefPath) => p.attrs.attrs;
    const reason =
      lowest('localPref', (p) => -(a(p).localPref ?? 100)) ??
      lowest('local', (p) => (p.peer.local ? 0 : 1)) ??
      lowest('asPathLength', (p) => pathLength(a(p).asPath)) ??
      lowest('origin', (p) => a(p).origin ?? 2) ??
      this.medRule(left, (kept) => {
        left = kept;
      }) ??
      lowest('ebgp', (p) => (p.peer.ebgp ? 0 : 1)) ??
      lowest('igpCost', (p) => this.igpCost(p)!) ??
      lowest('clusterList', (p) => a(p).clusterList?.length ?? 0) ??
      lowest('routerId', (p) => (a(p).originatorId ? dotted(a(p).originatorId!) : p.peer.routerId)) ??
      lowest('peerAddress', (p) => p.peer.addressRank) ??
      lowest('pathId', (p) => p.pathId) ??
      'pathId';
    return { best: left[0], reason };
  }

  /** RFC 4271 §9.1.2.2 (c): in each group of paths from one neighbouring AS, keep the lowest MED. */
  private medRule(left: RefPath[], set: (kept: RefPath[]) => void): RefReason | undefined {
    const group = (p: RefPath) => (this.alwaysCompareMed ? 0 : neighbourAs(p.attrs.attrs.asPath));
    const med = (p: RefPath) => p.attrs.attrs.med ?? 0;
    const kept = left.filter((p) => !left.some((q) => group(q) === group(p) && med(q) < med(p)));
    set(kept);
    return kept.length === 1 ? 'med' : undefined;
  }
}
