/**
 * The routing information bases of RFC 4271 §3.2: Adj-RIB-In per peer, the Loc-RIB with the best
 * path per prefix, and (in adj-out.ts) an Adj-RIB-Out per peer. IPv4 and IPv6 unicast share one
 * table: IPv4 prefixes are numeric keys, IPv6 ones canonical text (src/net/addr.ts).
 *
 * Every change returns a delta `{ prefix, oldBest, newBest }` (STYLE.md §11): the Adj-RIB-Outs
 * and, later, the kernel route reconciler consume deltas and never rescan the table. A change
 * that leaves the best path as it was (the same path, the same attributes) returns no delta,
 * unless `reportEveryChange` is set (the equal-cost set can change while the best path does not).
 * The speaker's UPDATE path uses the same changes in their compact form: `announceSlot` and
 * `withdrawSlot` return the slot whose best path changed (or -1), and the new best is read from
 * the slot (`bestRowAt`, `raAt`, `peerAt`), so a full table allocates no object per prefix.
 * `announceKeys` and `withdrawKeys` do that for an UPDATE's prefixes into a `SlotList`, and
 * `feed` hands the listed slots' best paths to an Adj-RIB-Out through a peer's `Exports`. Those
 * loops split each IPv4 key into address and length before any call ("Key boxing",
 * prefix-index.ts).
 *
 * Storage is a struct of arrays (see the Rib class): a million prefixes cost typed arrays, not a
 * million objects. `Path` objects are snapshots made for deltas and entries, and die young.
 *
 * The Rib is also the slot space of the Adj-RIB-Outs (adj-out.ts): they name prefixes by the
 * Rib's slots, and pin the ones they hold. A prefix whose last path goes keeps its slot while it
 * is pinned (a withdrawal is still owed to a peer). After that its slot is dead: listed, and
 * freed by `prune()`, which the speaker calls when changes pause (as BIRD prunes its tables in
 * an event of their own), having seen `deadCount` after each change. So a mass withdrawal does no index deletions while it is being passed
 * on, and a prefix that comes back before the prune (a peer's session flapping) finds its slot.
 * The prune also sweeps the attribute sets that lost their last path (attrs.ts).
 * Under churn that never pauses, the prune comes before the tables would grow: dead slots never
 * make the RIB bigger than its live and pinned prefixes need.
 *
 * What it does not do: policy (policy.ts decides what enters and leaves), I/O, timers. Graceful
 * restart is data here — `markStale(peer)` flags a peer's paths, `sweepStale(peer, family)`
 * removes the ones still flagged — and the speaker owns the timers. A stale path the peer sends
 * again unchanged just loses its flag, without a delta.
 *
 * Paths whose next hop does not resolve (a `NextHopResolver`) stay in the Adj-RIB-In but are not
 * candidates (RFC 4271 §9.1.2.1). The standalone speaker resolves directly connected subnets.
 */
import { type PrefixKey, prefix4Addr, prefix4Len } from '../../net/addr.js';
import {
  type Candidate,
  type DecisionOptions,
  DEFAULT_DECISION,
  type Selection,
  STEPS,
  selectBest,
} from '../decision.js';
import type { AsPathSegment } from '../wire/attributes.js';
import type { Family } from '../wire/constants.js';
import { AttrTable, type RouteAttrs } from './attrs.js';
import { PrefixIndex } from './prefix-index.js';
import { familyOfPrefix, type SlotSink, type SlotSpace } from './slots.js';

export { familyOfPrefix } from './slots.js';

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

/**
 * One path as the RIB hands it out: a snapshot of a row of the path table (deltas, entries). The
 * table itself keeps no objects per path; `id` names the row while the path lives.
 */
export class Path implements Candidate {
  stale = false;
  igpCost: number | undefined;
  /** The path's row in the RIB; rows are reused once a path is gone. */
  id = -1;
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

const NONE = -1;
const STALE = 1;
const REACHABLE = 2;
/** Reasons a best path won, stored per slot as an index into this list. */
const REASONS: Selection<Path>['reason'][] = ['none', 'only', ...STEPS.map((s) => s.name)];
const REASON_CODE = new Map(REASONS.map((r, i) => [r, i]));

function grown<T extends Int32Array | Uint8Array | Uint16Array | Float64Array | Uint32Array>(
  a: T,
  n: number,
  fill?: number,
): T {
  if (n <= a.length) return a;
  let len = a.length * 2;
  while (len < n) len *= 2;
  const b = new (a.constructor as new (n: number) => T)(len);
  b.set(a);
  if (fill !== undefined) b.fill(fill, a.length);
  return b;
}

/** A reusable list of slots: the RIB's changes in their compact form. */
export class SlotList {
  slots = new Int32Array(1024);
  length = 0;
  push(slot: number): void {
    if (this.length === this.slots.length) {
      const next = new Int32Array(this.slots.length * 2);
      next.set(this.slots);
      this.slots = next;
    }
    this.slots[this.length++] = slot;
  }
}

/** A peer's export policy, as `feed` asks it (export.ts PeerExport in the speaker). */
export interface Exports {
  /**
   * What the peer should hold for `prefix` whose best path has `ra` from `from` (null: nothing):
   * an interned set with a reference for the caller.
   */
  exportOf(ra: RouteAttrs, from: PeerRef, prefix: PrefixKey): RouteAttrs | null;
}

export class Rib implements SlotSpace {
  readonly attrs = new AttrTable();
  /**
   * Storage, for a full table (a million prefixes) without a million objects: the Loc-RIB is a
   * PrefixIndex giving each prefix a slot, and per slot its first path, its best path and the
   * reason it won, in typed arrays. Paths are rows of a path table (typed arrays plus one array of
   * attribute-set references), linked per slot. The Adj-RIB-In is not a table of its own: a
   * peer's paths for a prefix are the rows of that slot with that peer (a prefix has a handful of
   * paths at most); counts per peer are kept so max-prefix and status cost nothing.
   */
  private readonly index = new PrefixIndex(4096);
  private head = new Int32Array(4096).fill(NONE);
  private best = new Int32Array(4096).fill(NONE);
  private reason = new Uint8Array(4096);
  /** Per slot: how many Adj-RIB-Outs hold it. */
  private pins = new Uint16Array(4096);
  /** Slots with at least one path. */
  private nLive = 0;
  /**
   * Slots whose prefix has no path and no pin, to be freed by prune(): `listed` marks them, and
   * the first 4096 are also in `dead`; past that prune() scans `listed` (a byte per slot) rather
   * than keep a list as long as a mass withdrawal.
   */
  private readonly dead = new Int32Array(4096);
  private nDead = 0;
  private listed = new Uint8Array(4096);
  private pNext = new Int32Array(4096);
  private pSlot = new Int32Array(4096);
  /** Peer ordinals: 65536 peers at most. */
  private pPeer = new Uint16Array(4096);
  /** ADD-PATH path ids; null until a path has one that is not 0. */
  private pPathId: Uint32Array | null = null;
  private pFlags = new Uint8Array(4096);
  private pCost = new Float64Array(4096);
  /** The row's attribute set (its id in `attrs`; 0 for a free row). */
  private pRa = new Int32Array(4096);
  private nPaths = 0;
  /** Free rows, linked through pNext. */
  private freeRow = NONE;
  private readonly peerOrd = new Map<string, number>();
  private readonly peerRefs: PeerRef[] = [];
  /** Paths and stale paths per peer ordinal. */
  private readonly counts: number[] = [];
  private readonly staleCounts: number[] = [];
  private lastPeer: PeerRef | undefined;
  private lastOrd = -1;
  private resolverVersion: number | undefined;

  /**
   * Report every change to a prefix's candidate paths, not only changes of its best path: for a
   * consumer of the equal-cost set (best-routes.ts), which drops what did not change for it.
   */
  reportEveryChange = false;

  constructor(
    private readonly decision: DecisionOptions = DEFAULT_DECISION,
    private readonly resolver: NextHopResolver = ALWAYS_REACHABLE,
  ) {}

  /** How many prefixes have a path. */
  get size(): number {
    return this.nLive;
  }

  // ---- the slot space (adj-out.ts) ----

  get slotCount(): number {
    return this.index.slotCount;
  }

  get keys4(): Float64Array {
    return this.index.keys4;
  }

  slotOf(prefix: PrefixKey): number {
    return this.index.get(prefix);
  }

  claim(prefix: PrefixKey): number {
    return this.slotFor(prefix);
  }

  prefixAt(slot: number): PrefixKey | undefined {
    return this.index.prefixAt(slot);
  }

  pin(slot: number): void {
    const n = this.pins[slot]!;
    if (n === 0xffff) throw new RangeError('more than 65535 Adj-RIB-Outs hold one prefix');
    this.pins[slot] = n + 1;
  }

  unpin(slot: number): void {
    if (--this.pins[slot]! === 0 && this.head[slot] === NONE) this.bury(slot);
  }

  private slotFor(prefix: PrefixKey): number {
    if (typeof prefix === 'number') {
      return this.slotFor4(prefix4Addr(prefix) | 0, prefix4Len(prefix));
    }
    // Dead slots are reused rather than the tables grown.
    if (this.nDead > 0 && this.index.wouldGrow(this.head.length)) this.prune();
    return this.fit(this.index.add(prefix));
  }

  /** slotFor for an IPv4 prefix as address and length ("Key boxing", prefix-index.ts). */
  private slotFor4(addr: number, len: number): number {
    if (this.nDead > 0 && this.index.wouldGrow(this.head.length)) this.prune();
    return this.fit(this.index.add4(addr, len));
  }

  /** The per-slot arrays, grown to hold `slot`. */
  private fit(slot: number): number {
    if (slot >= this.head.length) {
      this.head = grown(this.head, slot + 1, NONE);
      this.best = grown(this.best, slot + 1, NONE);
      this.reason = grown(this.reason, slot + 1);
      this.pins = grown(this.pins, slot + 1);
      this.listed = grown(this.listed, slot + 1);
    }
    return slot;
  }

  /** The slot's prefix has no path and no pin: list it for prune(). */
  private bury(slot: number): void {
    if (this.listed[slot]) return;
    this.listed[slot] = 1;
    if (this.nDead < this.dead.length) this.dead[this.nDead] = slot;
    this.nDead++;
  }

  /** Slots waiting for prune(): the speaker looks after each change it makes. */
  get deadCount(): number {
    return this.nDead;
  }

  /** Free the slots of prefixes that have had no path and no pin since they were listed. */
  prune(): void {
    this.attrs.sweep();
    if (this.nDead <= this.dead.length) {
      for (let i = 0; i < this.nDead; i++) this.free(this.dead[i]!);
    } else {
      const n = this.index.slotCount;
      for (let slot = 0; slot < n; slot++) if (this.listed[slot]) this.free(slot);
    }
    this.nDead = 0;
  }

  private free(slot: number): void {
    this.listed[slot] = 0;
    // Back in use since (announced again, or pinned): not dead after all.
    if (this.head[slot] !== NONE || this.pins[slot] !== 0) return;
    this.index.delete(this.index.prefixAt(slot)!);
  }

  /** The slot's best path (a row), or -1. */
  bestRowAt(slot: number): number {
    return this.best[slot]!;
  }

  /** A row's attribute set. */
  raAt(row: number): RouteAttrs {
    return this.attrs.byId(this.pRa[row]!);
  }

  /** Who a row came from. */
  peerAt(row: number): PeerRef {
    return this.peerRefs[this.pPeer[row]!]!;
  }

  private view(id: number): Path {
    const ref = this.peerRefs[this.pPeer[id]!]!;
    const p = new Path(
      this.index.prefixAt(this.pSlot[id]!)!,
      ref,
      this.pathIdAt(id),
      this.attrs.byId(this.pRa[id]!),
      (this.pFlags[id]! & REACHABLE) !== 0,
    );
    p.stale = (this.pFlags[id]! & STALE) !== 0;
    const c = this.pCost[id]!;
    p.igpCost = Number.isNaN(c) ? undefined : c;
    p.id = id;
    return p;
  }

  private entryAt(slot: number): RibEntry {
    const paths: Path[] = [];
    let best: Path | undefined;
    const b = this.best[slot]!;
    for (let id = this.head[slot]!; id !== NONE; id = this.pNext[id]!) {
      const v = this.view(id);
      if (id === b) best = v;
      paths.push(v);
    }
    return { prefix: this.index.prefixAt(slot)!, paths, best, reason: REASONS[this.reason[slot]!]! };
  }

  /** The prefix's entry: a snapshot, with every path and the best. */
  entry(prefix: PrefixKey): RibEntry | undefined {
    const s = this.index.get(prefix);
    return s < 0 || this.head[s] === NONE ? undefined : this.entryAt(s);
  }

  /** Every entry, as snapshots. */
  *entries(): IterableIterator<[PrefixKey, RibEntry]> {
    const n = this.index.slotCount;
    for (let s = 0; s < n; s++) {
      if (this.head[s] === NONE || this.index.prefixAt(s) === undefined) continue;
      const e = this.entryAt(s);
      yield [e.prefix, e];
    }
  }

  /** Each prefix with its best path only (cheaper than entries()). */
  *bestPaths(): IterableIterator<[PrefixKey, Path | undefined]> {
    const n = this.index.slotCount;
    for (let s = 0; s < n; s++) {
      if (this.head[s] === NONE) continue;
      const k = this.index.prefixAt(s);
      if (k === undefined) continue;
      const b = this.best[s]!;
      yield [k, b === NONE ? undefined : this.view(b)];
    }
  }

  /** How many paths the peer has in the RIB (its Adj-RIB-In). */
  countFrom(peerId: string): number {
    const o = this.peerOrd.get(peerId);
    return o === undefined ? 0 : this.counts[o]!;
  }

  /** How many of the peer's paths are stale (graceful restart). */
  staleFrom(peerId: string): number {
    const o = this.peerOrd.get(peerId);
    return o === undefined ? 0 : this.staleCounts[o]!;
  }

  hasStale(peerId: string): boolean {
    const o = this.peerOrd.get(peerId);
    return o !== undefined && this.staleCounts[o]! > 0;
  }

  /** The ordinal of a peer; a session's PeerRef replaces the one before it. */
  private ordinal(peer: PeerRef): number {
    if (peer === this.lastPeer) return this.lastOrd;
    let o = this.peerOrd.get(peer.id);
    if (o === undefined) {
      o = this.peerRefs.length;
      if (o > 0xffff) throw new RangeError('more than 65536 peers');
      this.peerOrd.set(peer.id, o);
      this.counts[o] = 0;
      this.staleCounts[o] = 0;
    }
    this.peerRefs[o] = peer;
    this.lastPeer = peer;
    this.lastOrd = o;
    return o;
  }

  private pathIdAt(id: number): number {
    return this.pPathId === null ? 0 : this.pPathId[id]!;
  }

  private newRow(): number {
    const free = this.freeRow;
    if (free !== NONE) {
      this.freeRow = this.pNext[free]!;
      return free;
    }
    const id = this.nPaths++;
    if (id >= this.pNext.length) {
      const n = id + 1;
      this.pNext = grown(this.pNext, n);
      this.pSlot = grown(this.pSlot, n);
      this.pPeer = grown(this.pPeer, n);
      if (this.pPathId) this.pPathId = grown(this.pPathId, n);
      this.pFlags = grown(this.pFlags, n);
      this.pCost = grown(this.pCost, n);
      this.pRa = grown(this.pRa, n);
    }
    return id;
  }

  private setRow(id: number, slot: number, ord: number, pathId: number, ra: RouteAttrs, peer: PeerRef): void {
    const nh = ra.nextHops[0];
    // The peer's own address is reachable by definition: the session to it is up.
    const cost = peer.local || nh === undefined || nh === peer.id ? 0 : this.resolver.resolve(nh);
    this.pSlot[id] = slot;
    this.pPeer[id] = ord;
    if (this.pPathId) this.pPathId[id] = pathId;
    else if (pathId !== 0) {
      this.pPathId = new Uint32Array(this.pNext.length);
      this.pPathId[id] = pathId;
    }
    this.pRa[id] = ra.id;
    this.pFlags[id] = cost === undefined ? 0 : REACHABLE;
    this.pCost[id] = cost === undefined ? Number.NaN : cost;
  }

  /**
   * Announce (or replace) the path `pathId` of `prefix` from `peer`. `ra` must be an interned set
   * with a reference for this path (AttrTable.intern); the RIB releases it when the path goes.
   */
  announce(prefix: PrefixKey, peer: PeerRef, pathId: number, ra: RouteAttrs): Delta | undefined {
    const before = this.bestView(prefix);
    const s = this.announceSlot(prefix, peer, pathId, ra);
    return s < 0 ? undefined : this.delta(prefix, s, before);
  }

  /** `announce`, returning the slot whose best path changed, or -1. */
  announceSlot(prefix: PrefixKey, peer: PeerRef, pathId: number, ra: RouteAttrs): number {
    return this.announceAt(this.slotFor(prefix), this.ordinal(peer), peer, pathId, ra);
  }

  private announceAt(slot: number, ord: number, peer: PeerRef, pathId: number, ra: RouteAttrs): number {
    let id = this.head[slot]!;
    while (id !== NONE && (this.pPeer[id] !== ord || this.pathIdAt(id) !== pathId)) id = this.pNext[id]!;
    if (id !== NONE && this.pRa[id] === ra.id) {
      // The same route again: nothing changes. A stale path sent again unchanged (a restarted
      // peer refilling its table, RFC 4724 §4.2) is simply fresh again, without a delta.
      if (this.pFlags[id]! & STALE) {
        this.staleCounts[ord] = this.staleCounts[ord]! - 1;
        this.pFlags[id] = this.pFlags[id]! & ~STALE;
      }
      this.attrs.release(ra);
      return -1;
    }
    const oldBest = this.best[slot]!;
    if (id !== NONE) {
      if (this.pFlags[id]! & STALE) this.staleCounts[ord] = this.staleCounts[ord]! - 1;
      this.attrs.release(this.attrs.byId(this.pRa[id]!));
      this.setRow(id, slot, ord, pathId, ra, peer);
    } else {
      id = this.newRow();
      this.setRow(id, slot, ord, pathId, ra, peer);
      if (this.head[slot] === NONE) this.nLive++;
      this.pNext[id] = this.head[slot]!;
      this.head[slot] = id;
      this.counts[ord] = this.counts[ord]! + 1;
    }
    // A path that replaced the best one is a new best even if it wins again.
    return this.reselect(slot, id === oldBest) ? slot : -1;
  }

  /**
   * Withdraw each key (with its path id). The changes go to `changed`: as slots into a SlotList
   * (the compact form), or as Delta objects into an array (for listeners that want the old best).
   */
  withdrawKeys(
    keys: readonly PrefixKey[],
    ids: readonly number[] | undefined,
    peerId: string,
    changed: SlotList | Delta[],
  ): void {
    if (!(changed instanceof SlotList)) {
      for (let i = 0; i < keys.length; i++) this.withdrawInto(keys[i]!, peerId, ids?.[i] ?? 0, changed);
      return;
    }
    const ord = this.ordOf(peerId);
    if (ord === undefined) return;
    // Keys split here into address and length ("Key boxing", prefix-index.ts).
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      let slot: number;
      if (typeof k === 'number') slot = this.index.get4(prefix4Addr(k) | 0, prefix4Len(k));
      else slot = this.index.get(k);
      if (slot < 0) continue;
      const s = this.withdrawAt(slot, ord, ids?.[i] ?? 0);
      if (s >= 0) changed.push(s);
    }
  }

  /**
   * Announce each key with one attribute set: each path takes a reference of its own, and the
   * caller keeps the one it has. A key `accept` refuses is withdrawn instead (an import filter).
   * The changes go to `changed`, as for withdrawKeys.
   */
  announceKeys(
    keys: readonly PrefixKey[],
    ids: readonly number[] | undefined,
    peer: PeerRef,
    ra: RouteAttrs,
    changed: SlotList | Delta[],
    accept?: (prefix: PrefixKey) => boolean,
  ): void {
    const ord = this.ordinal(peer);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      const pathId = ids?.[i] ?? 0;
      if (accept && !accept(k)) this.withdrawInto(k, peer.id, pathId, changed);
      else if (changed instanceof SlotList) {
        const slot =
          typeof k === 'number' ? this.slotFor4(prefix4Addr(k) | 0, prefix4Len(k)) : this.slotFor(k);
        const s = this.announceAt(slot, ord, peer, pathId, this.attrs.retain(ra));
        if (s >= 0) changed.push(s);
      } else {
        const d = this.announce(k, peer, pathId, this.attrs.retain(ra));
        if (d) changed.push(d);
      }
    }
  }

  private withdrawInto(k: PrefixKey, peerId: string, pathId: number, changed: SlotList | Delta[]): void {
    if (changed instanceof SlotList) {
      const slot = this.withdrawSlot(k, peerId, pathId);
      if (slot >= 0) changed.push(slot);
    } else {
      const d = this.withdraw(k, peerId, pathId);
      if (d) changed.push(d);
    }
  }

  /**
   * Pass the changed slots' best paths to an Adj-RIB-Out, as its peer's `exports` has them,
   * for the families it takes. A slot freed since is skipped: no path and no Adj-RIB-Out held it,
   * so nobody is owed anything.
   */
  feed(out: SlotSink, changed: SlotList, v4: boolean, v6: boolean, exports: Exports): void {
    const slots = changed.slots;
    for (let i = 0, n = changed.length; i < n; i++) {
      const slot = slots[i]!;
      const k = this.index.prefixAt(slot);
      if (k === undefined || !(typeof k === 'number' ? v4 : v6)) continue;
      const row = this.best[slot]!;
      out.setSlot(slot, row < 0 ? null : exports.exportOf(this.raAt(row), this.peerAt(row), k));
    }
  }

  private bestView(prefix: PrefixKey): Path | undefined {
    const s = this.index.get(prefix);
    const b = s < 0 ? NONE : this.best[s]!;
    return b === NONE ? undefined : this.view(b);
  }

  /** The delta of a change at `slot` (which may be freed by now: `prefix` is given). */
  private delta(prefix: PrefixKey, slot: number, before: Path | undefined): Delta {
    const b = this.index.prefixAt(slot) === prefix ? this.best[slot]! : NONE;
    return { prefix, oldBest: before, newBest: b === NONE ? undefined : this.view(b) };
  }

  withdraw(prefix: PrefixKey, peerId: string, pathId = 0): Delta | undefined {
    const before = this.bestView(prefix);
    const s = this.withdrawSlot(prefix, peerId, pathId);
    return s < 0 ? undefined : this.delta(prefix, s, before);
  }

  /** `withdraw`, returning the slot whose best path changed, or -1. */
  withdrawSlot(prefix: PrefixKey, peerId: string, pathId = 0): number {
    const slot = this.index.get(prefix);
    const ord = this.ordOf(peerId);
    if (slot < 0 || ord === undefined) return -1;
    return this.withdrawAt(slot, ord, pathId);
  }

  /** The ordinal of a peer the RIB has seen, or undefined. */
  private ordOf(peerId: string): number | undefined {
    return peerId === this.lastPeer?.id ? this.lastOrd : this.peerOrd.get(peerId);
  }

  private withdrawAt(slot: number, ord: number, pathId: number): number {
    let prev = NONE;
    let id = this.head[slot]!;
    while (id !== NONE && (this.pPeer[id] !== ord || this.pathIdAt(id) !== pathId)) {
      prev = id;
      id = this.pNext[id]!;
    }
    if (id === NONE) return -1;
    return this.removeRow(slot, prev, id) ? slot : -1;
  }

  /** Remove every path of a peer (session down without graceful restart). */
  peerDown(peerId: string): Delta[] {
    return this.removeWhere(peerId, undefined, false);
  }

  /** RFC 4724 §4.2: keep a restarting peer's paths, flagged stale. No best path changes. */
  markStale(peerId: string, family?: Family): number {
    const ord = this.peerOrd.get(peerId);
    if (ord === undefined || !this.countFrom(peerId)) return 0;
    let n = 0;
    for (let id = 0; id < this.nPaths; id++) {
      if (this.pRa[id] === 0 || this.pPeer[id] !== ord) continue;
      if (family !== undefined && familyOfPrefix(this.index.prefixAt(this.pSlot[id]!)!) !== family) continue;
      if (!(this.pFlags[id]! & STALE)) {
        this.staleCounts[ord] = this.staleCounts[ord]! + 1;
        this.pFlags[id] = this.pFlags[id]! | STALE;
      }
      n++;
    }
    return n;
  }

  /** Remove the peer's paths still flagged stale (after its End-of-RIB, or when time runs out). */
  sweepStale(peerId: string, family?: Family): Delta[] {
    if (!this.hasStale(peerId)) return [];
    return this.removeWhere(peerId, family, true);
  }

  private removeWhere(peerId: string, family: Family | undefined, staleOnly: boolean): Delta[] {
    const out: Delta[] = [];
    const ord = this.peerOrd.get(peerId);
    if (ord === undefined || !this.countFrom(peerId)) return out;
    const n = this.index.slotCount;
    for (let slot = 0; slot < n; slot++) {
      if (this.head[slot] === NONE) continue;
      if (family !== undefined && familyOfPrefix(this.index.prefixAt(slot)!) !== family) continue;
      let prev = NONE;
      let id = this.head[slot]!;
      while (id !== NONE) {
        const next = this.pNext[id]!;
        if (this.pPeer[id] === ord && (!staleOnly || this.pFlags[id]! & STALE)) {
          const b = this.best[slot]!;
          const before = b === NONE ? undefined : this.view(b);
          const prefix = this.index.prefixAt(slot)!;
          if (this.removeRow(slot, prev, id)) out.push(this.delta(prefix, slot, before));
          if (this.head[slot] === NONE) break;
        } else {
          prev = id;
        }
        id = next;
      }
    }
    return out;
  }

  /** Unlink row `id` (after `prev`) from the slot; true when the best path changed. */
  private removeRow(slot: number, prev: number, id: number): boolean {
    const oldBest = this.best[slot]!;
    const ord = this.pPeer[id]!;
    if (prev === NONE) this.head[slot] = this.pNext[id]!;
    else this.pNext[prev] = this.pNext[id]!;
    this.counts[ord] = this.counts[ord]! - 1;
    if (this.pFlags[id]! & STALE) this.staleCounts[ord] = this.staleCounts[ord]! - 1;
    this.attrs.release(this.attrs.byId(this.pRa[id]!));
    this.pRa[id] = 0;
    this.pFlags[id] = 0;
    this.pNext[id] = this.freeRow;
    this.freeRow = id;
    const news = this.reselect(slot, id === oldBest);
    if (this.head[slot] === NONE) {
      this.nLive--;
      this.best[slot] = NONE;
      // A pinned slot stays until the Adj-RIB-Outs have sent the withdrawal (unpin).
      if (this.pins[slot] === 0) this.bury(slot);
    }
    return news;
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
    const n = this.index.slotCount;
    for (let slot = 0; slot < n; slot++) {
      if (this.head[slot] === NONE) continue;
      let changed = false;
      for (let id = this.head[slot]!; id !== NONE; id = this.pNext[id]!) {
        const peer = this.peerRefs[this.pPeer[id]!]!;
        const nh = this.attrs.byId(this.pRa[id]!).nextHops[0];
        if (peer.local || nh === undefined || nh === peer.id) continue;
        const cost = this.resolver.resolve(nh);
        const reachable = cost !== undefined;
        const was = (this.pFlags[id]! & REACHABLE) !== 0;
        const oldCost = this.pCost[id]!;
        if (reachable !== was || (reachable && cost !== oldCost)) {
          this.pFlags[id] = reachable ? this.pFlags[id]! | REACHABLE : this.pFlags[id]! & ~REACHABLE;
          this.pCost[id] = reachable ? cost : Number.NaN;
          changed = true;
        }
      }
      if (changed) {
        const b = this.best[slot]!;
        const before = b === NONE ? undefined : this.view(b);
        if (this.reselect(slot, true)) out.push(this.delta(this.index.prefixAt(slot)!, slot, before));
      }
    }
    return out;
  }

  /**
   * Select the slot's best path again; true when that is news. `changed` says the old best row
   * itself changed (replaced, removed or re-resolved), so it is news even if the same row wins.
   */
  private reselect(slot: number, changed: boolean): boolean {
    const oldId = this.best[slot]!;
    const h = this.head[slot]!;
    let best = NONE;
    let reason = 0;
    if (h === NONE) {
      best = NONE;
    } else if (this.pNext[h] === NONE) {
      // The common case needs no selection.
      if (this.pFlags[h]! & REACHABLE) {
        best = h;
        reason = 1;
      }
    } else {
      const candidates: Path[] = [];
      for (let id = h; id !== NONE; id = this.pNext[id]!)
        if (this.pFlags[id]! & REACHABLE) candidates.push(this.view(id));
      const sel = selectBest(candidates, this.decision);
      best = sel.best ? sel.best.id : NONE;
      reason = REASON_CODE.get(sel.reason)!;
    }
    this.best[slot] = best;
    this.reason[slot] = reason;
    return best !== oldId || ((changed || this.reportEveryChange) && best !== NONE);
  }
}
