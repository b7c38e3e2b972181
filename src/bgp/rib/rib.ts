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
import { PrefixIndex } from './prefix-index.js';

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
  readonly prefix: PrefixKey;
  /** Every path for the prefix, candidates and not. */
  paths: Path[];
  best: Path | undefined;
  reason: Selection<Path>['reason'];
}

export const familyOfPrefix = (k: PrefixKey): Family => (typeof k === 'number' ? IPV4_UNICAST : IPV6_UNICAST);

export class Rib {
  readonly attrs = new AttrTable();
  /** The Loc-RIB: a slot per prefix (prefix-index.ts), its entry at that slot. */
  private readonly index = new PrefixIndex(4096);
  private readonly slots: (RibEntry | undefined)[] = [];
  /**
   * The Adj-RIB-In is not a table of its own: a peer's paths for a prefix are the ones in the
   * prefix's Loc-RIB entry with that peer (a prefix has a handful of paths at most). Counts per
   * peer are kept so max-prefix and status cost nothing.
   */
  private readonly counts = new Map<string, number>();
  private readonly staleCounts = new Map<string, number>();
  private resolverVersion: number | undefined;

  constructor(
    private readonly decision: DecisionOptions = DEFAULT_DECISION,
    private readonly resolver: NextHopResolver = ALWAYS_REACHABLE,
  ) {}

  get size(): number {
    return this.index.size;
  }

  entry(prefix: PrefixKey): RibEntry | undefined {
    const s = this.index.get(prefix);
    return s < 0 ? undefined : this.slots[s];
  }

  *entries(): IterableIterator<[PrefixKey, RibEntry]> {
    const n = this.index.slotCount;
    for (let s = 0; s < n; s++) {
      const e = this.slots[s];
      if (e) yield [e.prefix, e];
    }
  }

  /** How many paths the peer has in the RIB (its Adj-RIB-In). */
  countFrom(peerId: string): number {
    return this.counts.get(peerId) ?? 0;
  }

  private count(peerId: string, by: number): void {
    this.counts.set(peerId, (this.counts.get(peerId) ?? 0) + by);
  }

  private countStale(peerId: string, by: number): void {
    this.staleCounts.set(peerId, (this.staleCounts.get(peerId) ?? 0) + by);
  }

  /**
   * Announce (or replace) the path `pathId` of `prefix` from `peer`. `ra` must be an interned set
   * with a reference for this path (AttrTable.intern); the RIB releases it when the path goes.
   */
  announce(prefix: PrefixKey, peer: PeerRef, pathId: number, ra: RouteAttrs): Delta | undefined {
    const nh = ra.nextHops[0];
    const slot = this.index.add(prefix);
    let entry = this.slots[slot];
    if (!entry) {
      // A new prefix: one path, the best if its next hop resolves. (A one-element array: an
      // empty one grown by push would reserve room for 17.)
      const path = this.newPath(prefix, peer, pathId, ra, nh);
      const best = path.reachable ? path : undefined;
      this.slots[slot] = { prefix, paths: [path], best, reason: best ? 'only' : 'none' };
      this.count(peer.id, 1);
      return best ? { prefix, oldBest: undefined, newBest: best } : undefined;
    }
    const paths = entry.paths;
    let i = 0;
    while (i < paths.length && (paths[i]!.peer.id !== peer.id || paths[i]!.pathId !== pathId)) i++;
    const old = paths[i];
    if (old && old.ra === ra) {
      // The same route again: nothing changes. A stale path sent again unchanged (a restarted
      // peer refilling its table, RFC 4724 §4.2) is simply fresh again; replacing it would hand
      // out a delta from a path to its own copy for every prefix it holds.
      if (old.stale) this.countStale(peer.id, -1);
      old.stale = false;
      this.attrs.release(ra);
      return undefined;
    }
    const path = this.newPath(prefix, peer, pathId, ra, nh);
    if (old) {
      if (old.stale) this.countStale(peer.id, -1);
      paths[i] = path;
      this.attrs.release(old.ra);
    } else {
      paths.push(path);
      this.count(peer.id, 1);
    }
    return this.reselect(prefix, entry);
  }

  private newPath(
    prefix: PrefixKey,
    peer: PeerRef,
    pathId: number,
    ra: RouteAttrs,
    nh: string | undefined,
  ): Path {
    // The peer's own address is reachable by definition: the session to it is up.
    const cost = peer.local || nh === undefined || nh === peer.id ? 0 : this.resolver.resolve(nh);
    const path = new Path(prefix, peer, pathId, ra, cost !== undefined);
    path.igpCost = cost;
    return path;
  }

  withdraw(prefix: PrefixKey, peerId: string, pathId = 0): Delta | undefined {
    const entry = this.entry(prefix);
    if (!entry) return undefined;
    const i = entry.paths.findIndex((p) => p.peer.id === peerId && p.pathId === pathId);
    if (i < 0) return undefined;
    return this.removeAt(prefix, entry, i);
  }

  /** Remove every path of a peer (session down without graceful restart). */
  peerDown(peerId: string): Delta[] {
    return this.removeWhere(peerId, undefined, () => true);
  }

  /** RFC 4724 §4.2: keep a restarting peer's paths, flagged stale. No best path changes. */
  markStale(peerId: string, family?: Family): number {
    if (!this.countFrom(peerId)) return 0;
    let n = 0;
    for (const entry of this.slots) {
      if (!entry || (family !== undefined && familyOfPrefix(entry.prefix) !== family)) continue;
      for (const p of entry.paths) {
        if (p.peer.id !== peerId) continue;
        if (!p.stale) this.countStale(peerId, 1);
        p.stale = true;
        n++;
      }
    }
    return n;
  }

  /** Remove the peer's paths still flagged stale (after its End-of-RIB, or when time runs out). */
  sweepStale(peerId: string, family?: Family): Delta[] {
    if (!this.hasStale(peerId)) return [];
    return this.removeWhere(peerId, family, (p) => p.stale);
  }

  private removeWhere(peerId: string, family: Family | undefined, pick: (p: Path) => boolean): Delta[] {
    const out: Delta[] = [];
    if (!this.countFrom(peerId)) return out;
    for (const entry of this.slots) {
      if (!entry || (family !== undefined && familyOfPrefix(entry.prefix) !== family)) continue;
      for (let i = entry.paths.length - 1; i >= 0; i--) {
        const p = entry.paths[i]!;
        if (p.peer.id !== peerId || !pick(p)) continue;
        const d = this.removeAt(entry.prefix, entry, i);
        if (d) out.push(d);
      }
    }
    return out;
  }

  private removeAt(prefix: PrefixKey, entry: RibEntry, i: number): Delta | undefined {
    const old = entry.paths[i]!;
    entry.paths.splice(i, 1);
    this.count(old.peer.id, -1);
    if (old.stale) this.countStale(old.peer.id, -1);
    this.attrs.release(old.ra);
    const d = this.reselect(prefix, entry);
    if (entry.paths.length === 0) this.slots[this.index.delete(prefix)] = undefined;
    return d;
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
    for (const entry of this.slots) {
      if (!entry) continue;
      const prefix = entry.prefix;
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
    return (this.staleCounts.get(peerId) ?? 0) > 0;
  }

  private reselect(prefix: PrefixKey, entry: RibEntry): Delta | undefined {
    const oldBest = entry.best;
    const paths = entry.paths;
    if (paths.length <= 1) {
      // The common case needs no selection.
      const only = paths[0];
      entry.best = only?.reachable ? only : undefined;
      entry.reason = entry.best ? 'only' : 'none';
    } else {
      const sel = selectBest(
        paths.filter((p) => p.reachable),
        this.decision,
      );
      entry.best = sel.best;
      entry.reason = sel.reason;
    }
    if (oldBest === entry.best) return undefined;
    return { prefix, oldBest, newBest: entry.best };
  }
}
