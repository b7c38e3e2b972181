/**
 * The routing information bases of RFC 4271 §3.2: Adj-RIB-In per peer, the Loc-RIB with the best
 * path per prefix, and (in adj-out.ts) an Adj-RIB-Out per peer. IPv4 and IPv6 unicast share one
 * table: IPv4 prefixes are numeric keys, IPv6 ones canonical text (src/net/addr.ts).
 *
 * Every change returns a delta `{ prefix, oldBest, newBest }` (STYLE.md §11): the Adj-RIB-Outs
 * and, later, the kernel route reconciler consume deltas and never rescan the table. A change
 * that leaves the best path as it was (same path object, same attributes) returns no delta.
 *
 * What it does not do: policy (policy.ts decides what enters and leaves), I/O, timers. Graceful
 * restart is data here — `markStale(peer)` flags a peer's paths, `sweepStale(peer, family)`
 * removes the ones still flagged — and the speaker owns the timers. A stale path the peer sends
 * again unchanged just loses its flag, without a delta.
 *
 * Paths whose next hop does not resolve (a `NextHopResolver`) stay in the Adj-RIB-In but are not
 * candidates (RFC 4271 §9.1.2.1). The standalone speaker resolves directly connected subnets.
 */
import type { PrefixKey } from '../../net/addr.js';
import {
  type Candidate,
  type DecisionOptions,
  DEFAULT_DECISION,
  type Selection,
  selectBest,
} from '../decision.js';
import type { AsPathSegment } from '../wire/attributes.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import { AttrTable, type RouteAttrs } from './attrs.js';

/** Who a path came from. One object per peer, shared by its paths. */
export interface PeerRef {
  /** The peer's address; '' for locally originated paths. */
  readonly id: string;
  readonly asn: number;
  /** BGP Identifier as uint32. */
  readonly routerId: number;
  readonly ebgp: boolean;
  readonly local: boolean;
  readonly rrClient: boolean;
}

export interface NextHopResolver {
  /** undefined: not reachable; else the IGP cost (0 for a connected next hop). */
  resolve(nextHop: string): number | undefined;
  /** Bumped whenever answers may have changed (interfaces came or went). */
  readonly version?: number;
}

export const ALWAYS_REACHABLE: NextHopResolver = { resolve: () => 0 };

/** One path: a prefix, where it came from, its (shared) attributes. */
export class Path implements Candidate {
  stale = false;
  igpCost: number | undefined;
  constructor(
    readonly prefix: PrefixKey,
    readonly peer: PeerRef,
    readonly pathId: number,
    readonly ra: RouteAttrs,
    /** The next hop resolved; false when it does not (not a candidate). */
    public reachable: boolean,
  ) {}
  get localPref(): number | undefined {
    return this.ra.attrs.localPref;
  }
  get local(): boolean {
    return this.peer.local;
  }
  get asPath(): readonly AsPathSegment[] | undefined {
    return this.ra.attrs.asPath;
  }
  get origin(): number | undefined {
    return this.ra.attrs.origin;
  }
  get med(): number | undefined {
    return this.ra.attrs.med;
  }
  get ebgp(): boolean {
    return this.peer.ebgp;
  }
  get clusterList(): readonly string[] | undefined {
    return this.ra.attrs.clusterList;
  }
  get originatorId(): string | undefined {
    return this.ra.attrs.originatorId;
  }
  get peerRouterId(): number {
    return this.peer.routerId;
  }
  get peerAddress(): string {
    return this.peer.id;
  }
  get nextHop(): string | undefined {
    return this.ra.nextHops[0];
  }
}

export interface Delta {
  prefix: PrefixKey;
  oldBest: Path | undefined;
  newBest: Path | undefined;
}

export interface RibEntry {
  /** Every path for the prefix, candidates and not. */
  paths: Path[];
  best: Path | undefined;
  reason: Selection<Path>['reason'];
}

export const familyOfPrefix = (k: PrefixKey): Family => (typeof k === 'number' ? IPV4_UNICAST : IPV6_UNICAST);

export class Rib {
  readonly attrs = new AttrTable();
  private readonly loc = new Map<PrefixKey, RibEntry>();
  /** Adj-RIB-In: per peer, per prefix, its paths (one per path id). */
  private readonly adjIn = new Map<string, Map<PrefixKey, Path[]>>();
  private resolverVersion: number | undefined;

  constructor(
    private readonly decision: DecisionOptions = DEFAULT_DECISION,
    private readonly resolver: NextHopResolver = ALWAYS_REACHABLE,
  ) {}

  get size(): number {
    return this.loc.size;
  }

  entry(prefix: PrefixKey): RibEntry | undefined {
    return this.loc.get(prefix);
  }

  entries(): IterableIterator<[PrefixKey, RibEntry]> {
    return this.loc.entries();
  }

  /** The prefixes and paths a peer sent (its Adj-RIB-In). */
  adjRibIn(peerId: string): ReadonlyMap<PrefixKey, readonly Path[]> {
    return this.adjIn.get(peerId) ?? new Map();
  }

  countFrom(peerId: string): number {
    let n = 0;
    for (const ps of this.adjRibIn(peerId).values()) n += ps.length;
    return n;
  }

  /**
   * Announce (or replace) the path `pathId` of `prefix` from `peer`. `ra` must be an interned set
   * with a reference for this path (AttrTable.intern); the RIB releases it when the path goes.
   */
  announce(prefix: PrefixKey, peer: PeerRef, pathId: number, ra: RouteAttrs): Delta | undefined {
    const nh = ra.nextHops[0];
    // The peer's own address is reachable by definition: the session to it is up.
    const cost = peer.local || nh === undefined || nh === peer.id ? 0 : this.resolver.resolve(nh);
    const path = new Path(prefix, peer, pathId, ra, cost !== undefined);
    path.igpCost = cost;
    let byPrefix = this.adjIn.get(peer.id);
    if (!byPrefix) {
      byPrefix = new Map();
      this.adjIn.set(peer.id, byPrefix);
    }
    const mine = byPrefix.get(prefix);
    let entry = this.loc.get(prefix);
    if (!entry) {
      entry = { paths: [], best: undefined, reason: 'none' };
      this.loc.set(prefix, entry);
    }
    if (mine) {
      const i = mine.findIndex((p) => p.pathId === pathId);
      if (i >= 0) {
        const old = mine[i]!;
        if (old.ra === ra) {
          // The same route again: nothing changes. A stale path sent again unchanged (a
          // restarted peer refilling its table, RFC 4724 §4.2) is simply fresh again; replacing
          // it would hand out a delta from a path to its own copy for every prefix it holds.
          old.stale = false;
          this.attrs.release(ra);
          return undefined;
        }
        mine[i] = path;
        entry.paths[entry.paths.indexOf(old)] = path;
        this.attrs.release(old.ra);
      } else {
        mine.push(path);
        entry.paths.push(path);
      }
    } else {
      byPrefix.set(prefix, [path]);
      entry.paths.push(path);
    }
    return this.reselect(prefix, entry);
  }

  withdraw(prefix: PrefixKey, peerId: string, pathId = 0): Delta | undefined {
    const byPrefix = this.adjIn.get(peerId);
    const mine = byPrefix?.get(prefix);
    if (!mine) return undefined;
    const i = mine.findIndex((p) => p.pathId === pathId);
    if (i < 0) return undefined;
    const old = mine[i]!;
    if (mine.length === 1) byPrefix!.delete(prefix);
    else mine.splice(i, 1);
    return this.removePath(old);
  }

  /** Remove every path of a peer (session down without graceful restart). */
  peerDown(peerId: string): Delta[] {
    const byPrefix = this.adjIn.get(peerId);
    if (!byPrefix) return [];
    this.adjIn.delete(peerId);
    const out: Delta[] = [];
    for (const paths of byPrefix.values()) {
      for (const p of paths) {
        const d = this.removePath(p);
        if (d) out.push(d);
      }
    }
    return out;
  }

  /** RFC 4724 §4.2: keep a restarting peer's paths, flagged stale. No best path changes. */
  markStale(peerId: string, family?: Family): number {
    let n = 0;
    for (const [prefix, paths] of this.adjIn.get(peerId) ?? []) {
      if (family !== undefined && familyOfPrefix(prefix) !== family) continue;
      for (const p of paths) {
        p.stale = true;
        n++;
      }
    }
    return n;
  }

  /** Remove the peer's paths still flagged stale (after its End-of-RIB, or when time runs out). */
  sweepStale(peerId: string, family?: Family): Delta[] {
    const byPrefix = this.adjIn.get(peerId);
    if (!byPrefix) return [];
    const out: Delta[] = [];
    for (const [prefix, paths] of [...byPrefix]) {
      if (family !== undefined && familyOfPrefix(prefix) !== family) continue;
      const keep = paths.filter((p) => !p.stale);
      if (keep.length === paths.length) continue;
      if (keep.length) byPrefix.set(prefix, keep);
      else byPrefix.delete(prefix);
      for (const p of paths) {
        if (!p.stale) continue;
        const d = this.removePath(p);
        if (d) out.push(d);
      }
    }
    if (byPrefix.size === 0) this.adjIn.delete(peerId);
    return out;
  }

  /**
   * Resolve every learned path's next hop again, if the resolver's answers may have changed since
   * the last time; returns the best-path deltas.
   */
  revalidate(): Delta[] {
    const v = this.resolver.version;
    if (v === undefined || v === this.resolverVersion) return [];
    this.resolverVersion = v;
    const out: Delta[] = [];
    for (const [prefix, entry] of this.loc) {
      let changed = false;
      for (const p of entry.paths) {
        const nh = p.ra.nextHops[0];
        if (p.peer.local || nh === undefined || nh === p.peer.id) continue;
        const cost = this.resolver.resolve(nh);
        const reachable = cost !== undefined;
        if (reachable !== p.reachable || cost !== p.igpCost) {
          p.reachable = reachable;
          p.igpCost = cost;
          changed = true;
        }
      }
      if (changed) {
        const d = this.reselect(prefix, entry);
        if (d) out.push(d);
      }
    }
    return out;
  }

  hasStale(peerId: string): boolean {
    for (const paths of this.adjIn.get(peerId)?.values() ?? []) if (paths.some((p) => p.stale)) return true;
    return false;
  }

  private removePath(old: Path): Delta | undefined {
    const entry = this.loc.get(old.prefix)!;
    const j = entry.paths.indexOf(old);
    if (j >= 0) entry.paths.splice(j, 1);
    this.attrs.release(old.ra);
    const d = this.reselect(old.prefix, entry);
    if (entry.paths.length === 0) this.loc.delete(old.prefix);
    return d;
  }

  private reselect(prefix: PrefixKey, entry: RibEntry): Delta | undefined {
    const oldBest = entry.best;
    const candidates =
      entry.paths.length === 1
        ? entry.paths[0]!.reachable
          ? entry.paths
          : []
        : entry.paths.filter((p) => p.reachable);
    const sel = selectBest(candidates, this.decision);
    entry.best = sel.best;
    entry.reason = sel.reason;
    if (oldBest === sel.best) return undefined;
    return { prefix, oldBest, newBest: sel.best };
  }
}
