/**
 * Update groups: peers that would be sent the same UPDATEs share one Adj-RIB-Out, one export
 * cache, and one packing of each batch (as FRR's update groups and Cisco's update groups do; RFC
 * 4271 §9.2 leaves how Update-Send is organised to the implementation). The bytes packed once
 * are written to every member's socket.
 *
 * Who shares: peers with the same group key (export policy, whether we reflect, eBGP or iBGP,
 * the negotiated codec context, and the next hops our side puts in: NEXT_HOP self is our address
 * on the session), and **whose own routes the group would not be sent**: peers that send us no
 * routes, and iBGP peers we do not reflect to (a path learned over iBGP goes to an iBGP peer only
 * by reflection, RFC 4456 §8, so no member of such a group is sent another's paths either). Split
 * horizon ("never back to the peer it came from", policy.ts) is then the same for every member,
 * so one export answers for all. Any other peer that announces a route leaves its group before
 * the route enters the RIB (`announcing`); a peer alone in its group is exported to with split
 * horizon as itself, exactly as before groups. Route reflector clients and eBGP peers that only
 * listen (collectors, a fan-out tier, the receivers of bench/bgp) gain, and so does a full iBGP
 * mesh, where every peer sends routes (each node its pod blocks): one packing of each change
 * for all N-1 peers instead of one each.
 *
 * Life of a member:
 * - A new session starts alone in a group of its own, and is filled from the Loc-RIB (its
 *   End-of-RIB follows).
 * - A group that has sent everything (nothing pending, no member waiting for its socket) looks
 *   for an idle group with the same key and merges, the smaller into the larger. Both hold the
 *   export of the same Loc-RIB then, so the members of the smaller hold exactly what the larger
 *   group's table says they hold.
 * - A member leaves with a copy of the group's table (AdjRibOut.clone) when it asks for a route
 *   refresh, when its export policy or next hops change, when it announces a route, and when its
 *   socket has not drained for SPLIT_AFTER_MS while other members wait: a stuck peer does not
 *   hold the rest back for longer than that. It merges again once idle.
 *
 * Pacing: a group writes a batch to every member, then waits until every member that could not
 * take it has drained ('drain') before it packs the next one. So a slow member costs the group
 * at most one batch of memory per socket, never a growing queue.
 */
import type { Clock, TimerHandle } from './clock.js';
import { PeerExport, SessionNextHops } from './export.js';
import { type HostInterfaces, sessionNextHops } from './host.js';
import { exportAllowed, type LocalInfo, type PeerPolicy } from './policy.js';
import { type AdjRibOut, packBatch } from './rib/adj-out.js';
import type { AttrTable } from './rib/attrs.js';
import { type Delta, familyOfPrefix, type PeerRef, type Rib, SlotList } from './rib/rib.js';
import { IPV4_UNICAST, IPV6_UNICAST } from './wire/constants.js';
import type { CodecContext } from './wire/context.js';
import type { Writer } from './wire/writer.js';

/** A peer's pending changes go out at once when this many wait and the last flush began this long ago. */
export const EAGER_FLUSH_PENDING = 4096;
export const EAGER_FLUSH_MS = 2;
/** A member whose socket has not drained for this long, while others wait, leaves its group. */
export const SPLIT_AFTER_MS = 1000;

/** The session as the sending side sees it (session.ts Session). */
export interface TxSession {
  readonly localAddress: string | undefined;
  /** false: the socket queues; wait for 'drain'. */
  send(buf: Buffer): boolean;
}

/** What the sending side of a speaker shares: its groups and their members. */
export interface TxShared {
  readonly rib: Rib;
  readonly exportTable: AttrTable;
  readonly me: LocalInfo;
  readonly clock: Clock;
  readonly host: HostInterfaces;
  /** Where flushes wait: run at the loop's next turn, or sooner (PROMPT_READ_BYTES). */
  readonly flushes: FlushQueue;
  /** One writer for every flush: flushes run one at a time. */
  readonly writer: Writer;
  /** Called after each batch written: slots whose withdrawal went out may be dead now. */
  afterBatch(): void;
  /** Changes per packed batch (BATCH in the speaker). */
  readonly batch: number;
  /** The speaker's update groups. */
  readonly groups: TxGroups;
}

/**
 * An empty array whose elements are objects from the start. A `[]` starts as an array of small
 * integers, and `add`'s push, compiled for arrays of objects and inlined into the hot path,
 * was thrown away when it met one (at a fresh speaker's first table).
 */
function objectList<T>(): T[] {
  const a: unknown[] = [null];
  a.length = 0;
  return a as T[];
}

/** The flushes asked for since the queue last ran; it runs at the next turn of the loop, or sooner. */
export class FlushQueue {
  private due: TxGroup[] = objectList();
  private armed = false;

  constructor(private readonly clock: Clock) {}

  add(tx: TxGroup): void {
    this.due.push(tx);
    if (this.armed) return;
    this.armed = true;
    this.clock.soon(() => {
      this.armed = false;
      this.run();
    });
  }

  /** Every flush asked for, now. */
  run(): void {
    if (this.due.length === 0) return;
    const due = this.due;
    this.due = objectList();
    for (const tx of due) tx.runScheduled();
  }
}

/** A member of a group, as the group sees it (peer-tx.ts PeerTx). */
export interface GroupMember {
  group: TxGroup;
  readonly session: TxSession;
  readonly to: PeerRef;
  blocked: boolean;
  packed: number;
  /** End-of-RIB and route refresh markers owed; false: the socket is full. */
  sendMarkers(): boolean;
  readNextHops(host: HostInterfaces): SessionNextHops;
}

/** The part of the key that the session and its policy give (not the next hops). */
export function groupBase(ctx: CodecContext, to: PeerRef, policy: PeerPolicy, reflector: boolean): string {
  return JSON.stringify([
    to.ebgp,
    reflector,
    policy.rrClient,
    policy.nextHopSelf,
    policy.exportRules,
    ctx.as4,
    ctx.maxLength,
    [...ctx.families].sort(),
    [...ctx.addPathTx].sort(),
  ]);
}

/** The peer an export is worked out for when the group has several members: nobody in particular. */
function groupTo(to: PeerRef, policy: PeerPolicy): PeerRef {
  return { id: '\0group', asn: to.asn, routerId: 0, ebgp: to.ebgp, local: false, rrClient: policy.rrClient };
}

export class TxGroup {
  readonly members: GroupMember[] = [];
  /** Shown by `twill status`; never reused in a speaker's life. */
  readonly id: number;
  private exports: PeerExport;
  private flushScheduled = false;
  /** When the last flush began (Clock.now()). */
  private flushedAt = 0;
  /** Members whose socket did not take the last batch: the group waits for their 'drain'. */
  private blockedCount = 0;
  private splitTimer: TimerHandle | undefined;
  /** TxGroups.version at the last fill; -1: never filled. */
  filledAt = -1;
  closed = false;
  private readonly v4: boolean;
  private readonly v6: boolean;

  constructor(
    private readonly shared: TxShared,
    /** The key's part that the session and its policy give (groupBase). */
    public base: string,
    readonly ctx: CodecContext,
    private policy: PeerPolicy,
    private reflector: boolean,
    public hops: SessionNextHops,
    readonly adjOut: AdjRibOut,
    first: PeerRef,
  ) {
    this.exports = new PeerExport(shared.exportTable, shared.me, first, policy, reflector);
    this.id = shared.groups.nextId++;
    this.v4 = ctx.families.has(IPV4_UNICAST);
    this.v6 = ctx.families.has(IPV6_UNICAST);
  }

  /** Who may share this group: the same base and the same next hops. */
  get key(): string {
    return `${this.base}|${hopsKey(this.hops)}`;
  }

  get pendingCount(): number {
    return this.adjOut.pendingCount;
  }

  /** Best-path changes into the Adj-RIB-Out, then a flush soon (or now, see peer-tx.ts). */
  take(changes: SlotList | readonly Delta[]): void {
    if (changes.length === 0 || this.closed) return;
    const out = this.adjOut;
    if (changes instanceof SlotList) this.shared.rib.feed(out, changes, this.v4, this.v6, this.exports);
    else {
      for (const d of changes) {
        const fam = familyOfPrefix(d.prefix);
        if (!(fam === IPV4_UNICAST ? this.v4 : this.v6)) continue;
        const best = d.newBest;
        out.set(d.prefix, best ? this.exports.exportOf(best.ra, best.peer, d.prefix) : null);
      }
    }
    // Nothing for these peers (split horizon, an export rule): no flush at all.
    if (out.pendingCount === 0) return;
    if (out.pendingCount >= EAGER_FLUSH_PENDING && this.shared.clock.now() - this.flushedAt >= EAGER_FLUSH_MS)
      this.flush();
    else this.scheduleFlush();
  }

  /** Everything the Loc-RIB holds, as these peers should have it; once per change of the RIB. */
  fill(): void {
    const version = this.shared.groups.version;
    if (this.filledAt === version || this.closed) return;
    this.filledAt = version;
    const rib = this.shared.rib;
    const out = this.adjOut;
    const exports = this.exports;
    for (let slot = 0, n = rib.slotCount; slot < n; slot++) {
      const row = rib.bestRowAt(slot);
      if (row < 0) continue;
      const k = rib.prefixAt(slot)!;
      if (!(typeof k === 'number' ? this.v4 : this.v6)) continue;
      out.setSlot(slot, exports.exportOf(rib.raAt(row), rib.peerAt(row), k));
    }
    this.scheduleFlush();
  }

  scheduleFlush(): void {
    if (this.flushScheduled || this.closed) return;
    this.flushScheduled = true;
    this.shared.flushes.add(this);
  }

  /** The flush `scheduleFlush` asked for, unless one ran since. */
  runScheduled(): void {
    if (!this.flushScheduled) return;
    this.flushScheduled = false;
    this.flush();
  }

  /**
   * Pack pending changes once and write them to every member, while every member's socket takes
   * them; then each member's End-of-RIB and route refresh markers. Then, idle, look for a group
   * to merge with.
   */
  flush(): void {
    if (this.closed || this.blockedCount > 0) return;
    const shared = this.shared;
    this.flushScheduled = false;
    this.flushedAt = shared.clock.now();
    const out = this.adjOut;
    const members = this.members;
    const size = shared.batch;
    while (out.pendingCount > 0) {
      const w = shared.writer.reset();
      const batch = out.take(size);
      packBatch(w, batch, this.ctx, this.hops);
      if (w.pos > 0) {
        const buf = w.take();
        for (const m of members) {
          m.packed += batch.count;
          if (!m.session.send(buf)) this.block(m);
        }
      }
      shared.afterBatch();
      if (this.blockedCount > 0) return;
    }
    for (const m of members) if (!m.sendMarkers()) this.block(m);
    if (this.blockedCount === 0) shared.groups.idle(this);
  }

  private block(m: GroupMember): void {
    if (m.blocked) return;
    m.blocked = true;
    this.blockedCount++;
    if (this.members.length > 1 && !this.splitTimer)
      this.splitTimer = this.shared.clock.after(SPLIT_AFTER_MS, () => {
        this.splitTimer = undefined;
        this.splitSlow();
      });
  }

  /** A member's socket drained: once all have, the next batch. */
  drained(m: GroupMember): void {
    if (m.blocked) {
      m.blocked = false;
      this.blockedCount--;
    }
    if (this.blockedCount === 0) {
      this.splitTimer?.cancel();
      this.splitTimer = undefined;
      this.scheduleFlush();
    }
  }

  /** Members still blocked after SPLIT_AFTER_MS leave together; the rest go on. */
  private splitSlow(): void {
    const slow = this.members.filter((m) => m.blocked);
    if (slow.length === 0 || slow.length === this.members.length) return;
    this.split(slow);
    this.scheduleFlush();
  }

  add(m: GroupMember): void {
    this.members.push(m);
    m.group = this;
    if (m.blocked) this.blockedCount++;
    this.exportsFor();
  }

  /** `m` leaves; a group left empty is closed. */
  remove(m: GroupMember): void {
    const i = this.members.indexOf(m);
    if (i < 0) return;
    this.members.splice(i, 1);
    if (m.blocked) {
      this.blockedCount--;
      if (this.blockedCount === 0) {
        this.splitTimer?.cancel();
        this.splitTimer = undefined;
        this.scheduleFlush();
      }
    }
    if (this.members.length === 0) this.close();
    else this.exportsFor();
  }

  /**
   * `ms` leave for a new group of their own, with a copy of this group's table: they hold what
   * it sent, and are owed what it is owed.
   */
  split(ms: readonly GroupMember[]): TxGroup {
    const g = new TxGroup(
      this.shared,
      this.base,
      this.ctx,
      this.policy,
      this.reflector,
      this.hops,
      this.adjOut.clone(),
      ms[0]!.to,
    );
    g.filledAt = this.filledAt;
    for (const m of ms) {
      this.remove(m);
      g.add(m);
    }
    this.shared.groups.register(g);
    if (g.pendingCount > 0) g.scheduleFlush();
    return g;
  }

  /**
   * Whether a path from the member `from` could go to this group at all. When it could not (a
   * path learned over iBGP goes to an iBGP peer only by reflection, policy.ts exportAllowed), the
   * member's split horizon changes nothing, and a member that sends routes may share the group.
   */
  exportsFrom(from: PeerRef): boolean {
    return exportAllowed(from, groupTo(from, this.policy), this.policy, this.reflector);
  }

  /** A member on its own gets its export policy changed in place: worked out again, then filled. */
  rekey(base: string, policy: PeerPolicy, reflector: boolean): void {
    const groups = this.shared.groups;
    groups.unregister(this);
    this.base = base;
    this.policy = policy;
    this.reflector = reflector;
    this.exports.clear();
    this.exports = new PeerExport(
      this.shared.exportTable,
      this.shared.me,
      this.members[0]!.to,
      policy,
      reflector,
    );
    this.filledAt = -1;
    groups.register(this);
  }

  /** New next hops for every member (our interfaces changed): future UPDATEs carry them. */
  rehop(hops: SessionNextHops): void {
    const groups = this.shared.groups;
    groups.unregister(this);
    this.hops = hops;
    groups.register(this);
  }

  /**
   * The export is worked out for the member itself while it is alone (split horizon as itself),
   * for nobody in particular once there are several (none of them is sent its own routes).
   */
  private exportsFor(): void {
    const one = this.members.length === 1 ? this.members[0]!.to : undefined;
    const want = one ?? groupTo(this.members[0]!.to, this.policy);
    if (one ? this.exports.to === one : this.exports.to.id === want.id) return;
    this.exports.clear();
    this.exports = new PeerExport(this.shared.exportTable, this.shared.me, want, this.policy, this.reflector);
  }

  /** Members of `other` join this group; `other` closes. Both hold the same state (TxGroups.idle). */
  absorb(other: TxGroup): void {
    for (const m of [...other.members]) {
      other.remove(m);
      this.add(m);
    }
    this.scheduleFlush(); // markers the newcomers are owed
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.splitTimer?.cancel();
    this.splitTimer = undefined;
    this.adjOut.clear();
    this.exports.clear();
    this.shared.groups.unregister(this);
  }
}

/** Every update group of a speaker, by key. */
export class TxGroups {
  /** Bumped by every change of the Loc-RIB: a fill at the same version has nothing new to do. */
  version = 0;
  /** The next group's id. */
  nextId = 1;
  private readonly byKey = new Map<string, Set<TxGroup>>();
  private readonly all = new Set<TxGroup>();

  constructor(
    /** Whether `id` has paths in the RIB (a peer that sends routes shares no group). */
    private readonly sendsRoutes: (id: string) => boolean,
  ) {}

  /** Groups and how many members each has (status, tests). */
  sizes(): number[] {
    return [...this.all].map((g) => g.members.length);
  }

  register(g: TxGroup): void {
    this.all.add(g);
    let set = this.byKey.get(g.key);
    if (!set) {
      set = new Set();
      this.byKey.set(g.key, set);
    }
    set.add(g);
  }

  unregister(g: TxGroup): void {
    this.all.delete(g);
    const set = this.byKey.get(g.key);
    set?.delete(g);
    if (set?.size === 0) this.byKey.delete(g.key);
  }

  /** Best-path changes: to every group if `deliver` (not while selection is deferred). */
  fanOut(changes: SlotList | readonly Delta[], deliver: boolean): void {
    if (changes.length === 0) return;
    this.version++;
    if (deliver) for (const g of this.all) g.take(changes);
  }

  /** `g` has sent everything: merge it with an idle group of the same key, if there is one. */
  idle(g: TxGroup): void {
    if (g.closed || g.filledAt < 0 || !this.mayShare(g)) return;
    const set = this.byKey.get(g.key);
    if (!set || set.size < 2) return;
    for (const o of set) {
      if (o === g || o.closed || o.filledAt < 0 || o.pendingCount > 0 || !this.mayShare(o)) continue;
      if (o.members.length >= g.members.length) o.absorb(g);
      else g.absorb(o);
      return;
    }
  }

  private mayShare(g: TxGroup): boolean {
    for (const m of g.members) if (this.sendsRoutes(m.to.id) && g.exportsFrom(m.to)) return false;
    return true;
  }

  /**
   * Our interfaces may have changed: each member's next hops read again. A group whose members
   * all moved the same way moves with them; members that differ from the rest leave.
   */
  forgetNextHops(host: HostInterfaces): void {
    // One read of the interfaces for all.
    const ifs = host.interfaces();
    const once: HostInterfaces = { interfaces: () => ifs };
    for (const g of [...this.all]) {
      if (g.closed) continue;
      const byHops = new Map<string, { hops: SessionNextHops; ms: GroupMember[] }>();
      for (const m of g.members) {
        const h = m.readNextHops(once);
        const k = hopsKey(h);
        const e = byHops.get(k);
        if (e) e.ms.push(m);
        else byHops.set(k, { hops: h, ms: [m] });
      }
      const [first, ...rest] = byHops.values();
      if (!first) continue;
      if (hopsKey(first.hops) !== hopsKey(g.hops)) g.rehop(first.hops);
      for (const e of rest) g.split(e.ms).rehop(e.hops);
    }
  }
}

export function hopsKey(h: SessionNextHops): string {
  return `${h.v4Self}/${h.v6Self.join(',')}`;
}

/** A session's next hops (NEXT_HOP self), read from our interfaces. */
export function nextHopsOf(
  host: HostInterfaces,
  local: string | undefined,
  routerId: string,
): SessionNextHops {
  const h = sessionNextHops(host, local ?? routerId, routerId);
  return new SessionNextHops(h.v4, h.v6);
}
