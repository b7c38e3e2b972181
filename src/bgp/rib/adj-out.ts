/**
 * Adj-RIB-Out for one peer (RFC 4271 §3.2): what the peer holds from us, and the changes not yet
 * sent. Pure bookkeeping; the speaker writes.
 *
 * `set(prefix, attrs | null)` records the desired state for a prefix (level-triggered: the last
 * call wins). Changes coalesce: a prefix announced and withdrawn before the next flush sends
 * nothing, and one changed twice sends once. `take(max)` hands out up to `max` pending changes,
 * announcements grouped by family and attribute set (so each group packs into full UPDATEs) and
 * withdrawals by family, and records them as sent. Pending state is one slot per prefix at most, so a peer
 * that reads slowly costs memory bounded by the table size, never a growing queue.
 *
 * Layout, for speed (a full table is a million prefixes per peer): prefixes are named by the
 * slots of a `SlotSpace` — in the speaker, the Loc-RIB's own slots, so the Adj-RIB-Outs do no
 * prefix lookups of their own: `setSlot(slot, attrs)` and `take` are array operations. What was
 * sent and what is wanted are attribute-set ids (attrs.ts) in typed arrays indexed by slot, and a
 * queue holds the slots that changed. A slot this table holds anything for (sent, wanted or
 * queued) is pinned in the slot space, so the RIB does not hand it to another prefix while a
 * withdrawal of the old one is still owed. `set(prefix, …)` looks the slot up, for callers
 * without one. Without a RIB (tests, tools) the table makes a slot space of its own.
 *
 * Attribute sets are interned and reference counted: a slot retains the set it sent and the set
 * it wants.
 *
 * A batch's IPv4 lists are Float64Arrays of exactly their length, filled from scratch arrays the
 * table keeps and reading keys straight from the slot space's key array (`keys4`): a mass
 * withdrawal's lists cost one copy each, not the garbage of arrays grown by push.
 *
 * `packBatch` writes a batch as UPDATEs (RFC 4271 §4.3, RFC 4760 for IPv6), the next hops given
 * by the caller; peer-tx.ts's flush uses it (and so the warm-up). An IPv4 set's encoded bytes stay
 * on the set (attrs.ts `wire`) for its next UPDATE, and for the next peer given the same next hop.
 */
import type { PrefixKey } from '../../net/addr.js';
import type { PathAttributes } from '../wire/attributes.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST } from '../wire/constants.js';
import type { CodecContext } from '../wire/context.js';
import { encodeAttributeBytes, type PackRequest, packUpdates } from '../wire/update.js';
import type { Writer } from '../wire/writer.js';
import { type AttrTable, type RouteAttrs, writeWireFromExportKey } from './attrs.js';
import { PrefixIndex } from './prefix-index.js';
import { familyOfPrefix, type SlotSink, type SlotSpace } from './slots.js';

export type { SlotSpace } from './slots.js';

/** A batch's list of prefixes: IPv4 keys in a Float64Array, IPv6 ones (text) in an array. */
export type PrefixList = Float64Array | PrefixKey[];

/** Changes to send. */
export interface Batch {
  /** IPv4 announcements by attribute set. */
  announce: Map<RouteAttrs, PrefixList>;
  /** IPv6 announcements by attribute set. */
  announce6: Map<RouteAttrs, PrefixList>;
  withdraw: Map<Family, PrefixList>;
  count: number;
}

/** A slot space for an Adj-RIB-Out on its own: a slot lives while it is pinned. */
export class OwnSlots implements SlotSpace {
  private readonly idx = new PrefixIndex();
  private pins = new Int32Array(64);

  get slotCount(): number {
    return this.idx.slotCount;
  }
  get keys4(): Float64Array {
    return this.idx.keys4;
  }
  slotOf(prefix: PrefixKey): number {
    return this.idx.get(prefix);
  }
  claim(prefix: PrefixKey): number {
    const s = this.idx.add(prefix);
    if (s >= this.pins.length) {
      const p = new Int32Array(Math.max(s + 1, this.pins.length * 2));
      p.set(this.pins);
      this.pins = p;
    }
    return s;
  }
  prefixAt(slot: number): PrefixKey | undefined {
    return this.idx.prefixAt(slot);
  }
  pin(slot: number): void {
    this.pins[slot] = this.pins[slot]! + 1;
  }
  unpin(slot: number): void {
    if (--this.pins[slot]! === 0) this.idx.delete(this.idx.prefixAt(slot)!);
  }
}

/** Per slot flags. HELD: this table holds the slot (pinned; its sent/want entries are valid). */
const HELD = 1;
const QUEUED = 2;
/** Sent again at the next take even if unchanged (route refresh). */
const REFRESH = 4;

/** `want` entries: no change wanted, withdraw; else an attribute-set id. */
const SAME = 0;
const WITHDRAW = -1;

export class AdjRibOut implements SlotSink {
  /** Per slot: the id of the set the peer holds, 0 for nothing. */
  private sentAt = new Int32Array(0);
  /** Per slot: SAME, WITHDRAW or the id of the set it should hold. */
  private wantAt = new Int32Array(0);
  private flags = new Uint8Array(0);
  /** Slots queued, from `head` to `qLen`. */
  private queue = new Int32Array(256);
  /** take()'s scratch: IPv4 withdrawals, and IPv4 announcements with their sets' ids. */
  private w4 = new Float64Array(256);
  private a4 = new Float64Array(256);
  private a4Set = new Int32Array(256);
  private head = 0;
  private qLen = 0;
  private nPending = 0;
  private nSent = 0;

  constructor(
    private readonly table: AttrTable,
    private readonly space: SlotSpace = new OwnSlots(),
  ) {}

  get pendingCount(): number {
    return this.nPending;
  }

  /** How many prefixes the peer holds from us. */
  get sentCount(): number {
    return this.nSent;
  }

  /** What the peer holds (a copy; for inspection and tests). */
  get sent(): ReadonlyMap<PrefixKey, RouteAttrs> {
    const m = new Map<PrefixKey, RouteAttrs>();
    for (let s = 0; s < this.flags.length; s++)
      if (this.flags[s]! & HELD && this.sentAt[s])
        m.set(this.space.prefixAt(s)!, this.table.byId(this.sentAt[s]!));
    return m;
  }

  private pending(s: number): boolean {
    if (this.flags[s]! & REFRESH) return true;
    const w = this.wantAt[s]!;
    return w !== SAME && w !== (this.sentAt[s]! || WITHDRAW);
  }

  /** Record the desired state of a prefix. `ra` carries a reference the table now owns. */
  set(prefix: PrefixKey, ra: RouteAttrs | null): void {
    if (ra === null) {
      const s = this.space.slotOf(prefix);
      if (s >= 0) this.setSlot(s, null);
      return;
    }
    this.setSlot(this.space.claim(prefix), ra);
  }

  /** `set` by slot. */
  setSlot(s: number, ra: RouteAttrs | null): void {
    if (s >= this.flags.length) {
      // Never held: a withdrawal is a no-op (the peer a route came from, say).
      if (ra === null) return;
      this.grow(s + 1);
    }
    if (!(this.flags[s]! & HELD)) {
      if (ra === null) return; // Never sent, not wanted.
      this.flags[s] = HELD;
      this.sentAt[s] = 0;
      this.wantAt[s] = SAME;
      this.space.pin(s);
    }
    const before = this.pending(s);
    const old = this.wantAt[s]!;
    if (old > 0) this.table.release(this.table.byId(old));
    let w = ra === null ? WITHDRAW : ra.id;
    if (ra !== null && w === this.sentAt[s] && !(this.flags[s]! & REFRESH)) {
      // Back to what the peer already holds: nothing to send.
      this.table.release(ra);
      w = SAME;
    }
    this.wantAt[s] = w;
    this.account(s, before);
  }

  private grow(n: number): void {
    let len = Math.max(1024, this.flags.length * 2);
    while (len < n) len *= 2;
    len = Math.max(len, this.space.slotCount);
    const a = new Int32Array(len);
    a.set(this.sentAt);
    this.sentAt = a;
    const b = new Int32Array(len);
    b.set(this.wantAt);
    this.wantAt = b;
    const f = new Uint8Array(len);
    f.set(this.flags);
    this.flags = f;
  }

  private account(s: number, before: boolean): void {
    const after = this.pending(s);
    if (after !== before) this.nPending += after ? 1 : -1;
    const f = this.flags[s]!;
    if (after && !(f & QUEUED)) {
      this.flags[s] = f | QUEUED;
      if (this.qLen === this.queue.length) {
        const q = new Int32Array(this.queue.length * 2);
        q.set(this.queue);
        this.queue = q;
      }
      this.queue[this.qLen++] = s;
    } else if (!after && !(f & QUEUED) && this.sentAt[s] === 0) {
      // Nothing held, nothing owed (a withdrawal of what was never sent is no change).
      this.forget(s);
    }
  }

  private forget(s: number): void {
    this.sentAt[s] = 0;
    this.wantAt[s] = SAME;
    this.flags[s] = 0;
    this.space.unpin(s);
  }

  /**
   * Send everything again (route refresh): every sent prefix of `family` becomes pending. The
   * peer still holds them: a prefix withdrawn before the next take is withdrawn, and one set back
   * to what was sent goes out again all the same.
   */
  resend(family: Family): void {
    for (let s = 0; s < this.flags.length; s++) {
      const f = this.flags[s]!;
      if (!(f & HELD) || !this.sentAt[s] || f & REFRESH) continue;
      if (familyOfPrefix(this.space.prefixAt(s)!) !== family) continue;
      const before = this.pending(s);
      this.flags[s] = f | REFRESH;
      this.account(s, before);
    }
  }

  /**
   * Up to `max` pending changes, recorded as sent. IPv4 lists are Float64Arrays of exactly their
   * size, made from scratch arrays this table keeps: a table's worth of changes goes through here,
   * and JS arrays grown by push cost several times their size in garbage.
   */
  take(max = Number.POSITIVE_INFINITY): Batch {
    const batch: Batch = { announce: new Map(), announce6: new Map(), withdraw: new Map(), count: 0 };
    const q = this.queue;
    const table = this.table;
    const keys = this.space.keys4;
    this.reserve(Math.min(max, this.qLen - this.head));
    const w4 = this.w4;
    const a4 = this.a4;
    const a4Set = this.a4Set;
    let nw = 0;
    let na = 0;
    const w6: PrefixKey[] = [];
    // IPv6 lists: the last one used, as consecutive prefixes mostly share a set.
    let lastId = 0;
    let lastList: PrefixKey[] = [];
    while (this.head < this.qLen && batch.count < max) {
      const s = q[this.head++]!;
      this.flags[s] = this.flags[s]! & ~QUEUED;
      if (!this.pending(s)) {
        if (this.sentAt[s] === 0) this.forget(s);
        continue;
      }
      this.nPending--;
      batch.count++;
      // Read before forget(): a table with slots of its own frees the slot there.
      const k4 = keys[s]!;
      const want = this.wantAt[s]!;
      const sent = this.sentAt[s]!;
      // A refresh with no change re-announces what the peer holds.
      const target = want !== SAME ? want : sent || WITHDRAW;
      this.wantAt[s] = SAME;
      this.flags[s] = HELD;
      if (target === WITHDRAW) {
        const k6 = k4 >= 0 ? undefined : this.space.prefixAt(s);
        if (sent) {
          table.release(table.byId(sent));
          this.nSent--;
        }
        this.forget(s);
        if (k6 === undefined) w4[nw++] = k4;
        else w6.push(k6);
        continue;
      }
      if (want !== SAME) {
        // The wanted set's reference moves to `sent`.
        if (sent) table.release(table.byId(sent));
        else this.nSent++;
        this.sentAt[s] = target;
      }
      if (k4 >= 0) {
        a4[na] = k4;
        a4Set[na++] = target;
        continue;
      }
      if (target !== lastId) {
        const ra = table.byId(target);
        let list = batch.announce6.get(ra) as PrefixKey[] | undefined;
        if (!list) {
          list = [];
          batch.announce6.set(ra, list);
        }
        lastId = target;
        lastList = list;
      }
      lastList.push(this.space.prefixAt(s)!);
    }
    if (nw > 0) batch.withdraw.set(IPV4_UNICAST, w4.slice(0, nw));
    if (w6.length > 0) batch.withdraw.set(IPV6_UNICAST, w6);
    if (na > 0) this.groupAnnounce(batch.announce, na);
    if (this.head === this.qLen) {
      this.head = this.qLen = 0;
      // A burst's queue (a full table: megabytes) is not kept for the next change.
      if (q.length > 65536) this.queue = new Int32Array(256);
    } else if (this.head > 4096 && this.head * 2 > this.qLen) {
      q.copyWithin(0, this.head, this.qLen);
      this.qLen -= this.head;
      this.head = 0;
    }
    return batch;
  }

  /** Scratch room for `n` IPv4 changes; a burst's scratch is not kept either. */
  private reserve(n: number): void {
    if (n <= this.w4.length && this.w4.length <= Math.max(n, 1024) * 4) return;
    const len = Math.max(n, 256);
    this.w4 = new Float64Array(len);
    this.a4 = new Float64Array(len);
    this.a4Set = new Int32Array(len);
  }

  /** The first `n` IPv4 announcements of the scratch arrays, one list per set, in order. */
  private groupAnnounce(into: Map<RouteAttrs, PrefixList>, n: number): void {
    const a4 = this.a4;
    const ids = this.a4Set;
    // Prefixes come in runs of one set, mostly one run per set (a table of many sets arrives an
    // UPDATE per set): then each run's list is a view of one copy, and no map of counts is made.
    let stamps = runStamps;
    if (runStamp === 0x7fffffff) {
      stamps.fill(0);
      runStamp = 0;
    }
    const stamp = ++runStamp;
    let once = true;
    for (let i = 0; i < n; ) {
      const id = ids[i]!;
      let j = i + 1;
      while (j < n && ids[j] === id) j++;
      if (id >= stamps.length) {
        const grown = new Int32Array(Math.max(id + 1, stamps.length * 2));
        grown.set(stamps);
        stamps = runStamps = grown;
      }
      if (stamps[id] === stamp) {
        once = false;
        break;
      }
      stamps[id] = stamp;
      i = j;
    }
    if (once) {
      const all = a4.slice(0, n);
      for (let i = 0; i < n; ) {
        const id = ids[i]!;
        let j = i + 1;
        while (j < n && ids[j] === id) j++;
        into.set(this.table.byId(id), all.subarray(i, j));
        i = j;
      }
      return;
    }
    // Count per set a run at a time.
    const counts = new Map<number, number>();
    for (let i = 0; i < n; ) {
      const id = ids[i]!;
      let j = i + 1;
      while (j < n && ids[j] === id) j++;
      counts.set(id, (counts.get(id) ?? 0) + j - i);
      i = j;
    }
    if (counts.size === 1) {
      into.set(this.table.byId(ids[0]!), a4.slice(0, n));
      return;
    }
    const lists = new Map<number, { keys: Float64Array; n: number }>();
    for (const [id, count] of counts) {
      const keys = new Float64Array(count);
      lists.set(id, { keys, n: 0 });
      into.set(this.table.byId(id), keys);
    }
    for (let i = 0; i < n; ) {
      const id = ids[i]!;
      const list = lists.get(id)!;
      for (; i < n && ids[i] === id; i++) list.keys[list.n++] = a4[i]!;
    }
  }

  /**
   * A second table in the same state: what the peer holds and what is owed, each set retained
   * and each slot pinned once more. An update group hands it to members that leave
   * (update-group.ts): they hold what the group sent.
   */
  clone(): AdjRibOut {
    const c = new AdjRibOut(this.table, this.space);
    c.sentAt = this.sentAt.slice();
    c.wantAt = this.wantAt.slice();
    c.flags = this.flags.slice();
    c.queue = this.queue.slice();
    c.head = this.head;
    c.qLen = this.qLen;
    c.nPending = this.nPending;
    c.nSent = this.nSent;
    const table = this.table;
    for (let s = 0; s < this.flags.length; s++) {
      if (!(this.flags[s]! & HELD)) continue;
      this.space.pin(s);
      const a = this.sentAt[s]!;
      const b = this.wantAt[s]!;
      if (a > 0) table.retain(table.byId(a));
      if (b > 0) table.retain(table.byId(b));
    }
    return c;
  }

  /** Forget everything (session down): every slot is released. */
  clear(): void {
    for (let s = 0; s < this.flags.length; s++) {
      if (!(this.flags[s]! & HELD)) continue;
      const a = this.sentAt[s]!;
      const b = this.wantAt[s]!;
      if (a > 0) this.table.release(this.table.byId(a));
      if (b > 0) this.table.release(this.table.byId(b));
      this.space.unpin(s);
    }
    this.sentAt = new Int32Array(0);
    this.wantAt = new Int32Array(0);
    this.flags = new Uint8Array(0);
    this.queue = new Int32Array(256);
    this.head = this.qLen = 0;
    this.nPending = 0;
    this.nSent = 0;
  }
}

/** The next hops an announcement goes out with, per family. */
export interface NextHopsFor {
  v4(ra: RouteAttrs): string;
  v6(ra: RouteAttrs): string[];
}

/** groupAnnounce's marks, per set id: the set has a run in the batch being grouped. */
let runStamps = new Int32Array(1024);
let runStamp = 0;

let wireScratch = Buffer.alloc(4096);
/** packBatch's request for an IPv4 set, refilled for each: one object per batch is garbage enough. */
const req4: PackRequest = { family: IPV4_UNICAST, prefixes: [], attrBytes: wireScratch, attrLength: 0 };

/** Write a batch into `w` as UPDATEs: withdrawals, then announcements per family and set. */
export function packBatch(w: Writer, batch: Batch, ctx: CodecContext, hops: NextHopsFor): void {
  for (const [family, prefixes] of batch.withdraw) packUpdates(w, { family, prefixes, withdraw: true }, ctx);
  for (const [ra, prefixes] of batch.announce) {
    const hop = hops.v4(ra);
    // An export set's bytes are its key's with the NEXT_HOP put in: a copy, into scratch (the
    // UPDATEs copy them in turn), so a set keeps no buffer of its own.
    let n = -1;
    if (ctx.as4) {
      if (ra.key.length + 6 > wireScratch.length) wireScratch = Buffer.alloc(ra.key.length + 6);
      n = writeWireFromExportKey(ra.key, ra.nextHops, hop, wireScratch);
    }
    if (n >= 0) req4.attrBytes = wireScratch;
    else {
      let enc = ra.wire;
      if (enc === undefined || enc.hop !== hop || enc.as4 !== ctx.as4) {
        enc = { hop, as4: ctx.as4, bytes: encodeAttributeBytes({ ...ra.attrs, nextHop: hop }, ctx) };
        ra.wire = enc;
      }
      req4.attrBytes = enc.bytes;
      n = enc.bytes.length;
    }
    req4.prefixes = prefixes;
    req4.attrLength = n;
    packUpdates(w, req4, ctx);
  }
  req4.prefixes = [];
  for (const [ra, prefixes] of batch.announce6)
    packUpdates(
      w,
      { family: IPV6_UNICAST, prefixes, attrs: ra.attrs as PathAttributes, nextHops: hops.v6(ra) },
      ctx,
    );
}
