/**
 * Adj-RIB-Out for one peer (RFC 4271 §3.2): what the peer holds from us, and the changes not yet
 * sent. Pure bookkeeping; the speaker writes.
 *
 * `set(prefix, attrs | null)` records the desired state for a prefix (level-triggered: the last
 * call wins). Changes coalesce: a prefix announced and withdrawn before the next flush sends
 * nothing, and one changed twice sends once. `take(max)` hands out up to `max` pending changes,
 * announcements grouped by attribute set (so each group packs into full UPDATEs) and withdrawals
 * by family, and records them as sent. Pending state is one slot per prefix at most, so a peer
 * that reads slowly costs memory bounded by the table size, never a growing queue.
 *
 * Layout, for speed (a full table is a million prefixes per peer): a PrefixIndex gives each
 * prefix a slot; what was sent and what is wanted are arrays indexed by slot, and a queue holds
 * the slots that changed. `set` is one index lookup; `take` walks the queue and touches the index
 * only to forget a prefix the peer no longer holds.
 *
 * Attribute sets are interned (attrs.ts) and reference counted: a slot retains the set it sent
 * and the set it wants.
 */
import type { PrefixKey } from '../../net/addr.js';
import type { Family } from '../wire/constants.js';
import type { AttrTable, RouteAttrs } from './attrs.js';
import { PrefixIndex } from './prefix-index.js';
import { familyOfPrefix } from './rib.js';

export interface Batch {
  announce: Map<RouteAttrs, PrefixKey[]>;
  withdraw: Map<Family, PrefixKey[]>;
  count: number;
}

const REFRESH = 1;
const QUEUED = 2;

export class AdjRibOut {
  private idx = new PrefixIndex();
  /** Per slot: what the peer holds. */
  private sentAt: (RouteAttrs | undefined)[] = [];
  /** Per slot: what it should hold when that may differ: a set, null to withdraw, undefined for no change. */
  private wantAt: (RouteAttrs | null | undefined)[] = [];
  /** Per slot: REFRESH (sent again at the next take even if unchanged), QUEUED. */
  private flags = new Uint8Array(1024);
  private queue: number[] = [];
  private head = 0;
  private nPending = 0;
  private nSent = 0;

  constructor(private readonly table: AttrTable) {}

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
    for (let s = 0; s < this.idx.slotCount; s++) {
      const k = this.idx.prefixAt(s);
      const ra = this.sentAt[s];
      if (k !== undefined && ra) m.set(k, ra);
    }
    return m;
  }

  private pending(s: number): boolean {
    if (this.flags[s]! & REFRESH) return true;
    const w = this.wantAt[s];
    return w !== undefined && w !== (this.sentAt[s] ?? null);
  }

  /** Record the desired state of a prefix. `ra` carries a reference the table now owns. */
  set(prefix: PrefixKey, ra: RouteAttrs | null): void {
    // Nothing held, nothing pending: a withdrawal is a no-op (the peer a route came from).
    if (ra === null && this.idx.size === 0) return;
    let s = this.idx.get(prefix);
    if (s < 0) {
      if (ra === null) return; // Never sent, not wanted.
      s = this.idx.add(prefix);
      if (s >= this.flags.length) {
        const f = new Uint8Array(this.flags.length * 2);
        f.set(this.flags);
        this.flags = f;
      }
      this.sentAt[s] = undefined;
      this.wantAt[s] = undefined;
      this.flags[s] = 0;
    }
    const before = this.pending(s);
    const old = this.wantAt[s];
    if (old) this.table.release(old);
    this.wantAt[s] = ra;
    if (ra !== null && ra === this.sentAt[s] && !(this.flags[s]! & REFRESH)) {
      // Back to what the peer already holds: nothing to send.
      this.table.release(ra);
      this.wantAt[s] = undefined;
    }
    this.account(s, before);
  }

  private account(s: number, before: boolean): void {
    const after = this.pending(s);
    if (after !== before) this.nPending += after ? 1 : -1;
    const f = this.flags[s]!;
    if (after && !(f & QUEUED)) {
      this.flags[s] = f | QUEUED;
      this.queue.push(s);
    } else if (!after && !(f & QUEUED) && this.sentAt[s] === undefined && this.wantAt[s] === undefined) {
      this.forget(s);
    }
  }

  private forget(s: number): void {
    this.idx.delete(this.idx.prefixAt(s)!);
    this.sentAt[s] = undefined;
    this.wantAt[s] = undefined;
    this.flags[s] = 0;
  }

  /**
   * Send everything again (route refresh): every sent prefix of `family` becomes pending. The
   * peer still holds them: a prefix withdrawn before the next take is withdrawn, and one set back
   * to what was sent goes out again all the same.
   */
  resend(family: Family): void {
    for (let s = 0; s < this.idx.slotCount; s++) {
      const k = this.idx.prefixAt(s);
      if (k === undefined || !this.sentAt[s] || this.flags[s]! & REFRESH || familyOfPrefix(k) !== family)
        continue;
      const before = this.pending(s);
      this.flags[s] = this.flags[s]! | REFRESH;
      this.account(s, before);
    }
  }

  /** Up to `max` pending changes, recorded as sent. */
  take(max = Number.POSITIVE_INFINITY): Batch {
    const batch: Batch = { announce: new Map(), withdraw: new Map(), count: 0 };
    const q = this.queue;
    while (this.head < q.length && batch.count < max) {
      const s = q[this.head++]!;
      this.flags[s] = this.flags[s]! & ~QUEUED;
      if (!this.pending(s)) {
        if (this.sentAt[s] === undefined && this.wantAt[s] === undefined) this.forget(s);
        continue;
      }
      this.nPending--;
      batch.count++;
      const prefix = this.idx.prefixAt(s)!;
      const want = this.wantAt[s];
      const sent = this.sentAt[s];
      // A refresh with no change re-announces what the peer holds.
      const target = want !== undefined ? want : (sent ?? null);
      this.wantAt[s] = undefined;
      this.flags[s] = 0;
      if (target === null) {
        if (sent) {
          this.table.release(sent);
          this.nSent--;
        }
        this.forget(s);
        const f = familyOfPrefix(prefix);
        const list = batch.withdraw.get(f);
        if (list) list.push(prefix);
        else batch.withdraw.set(f, [prefix]);
        continue;
      }
      if (want !== undefined) {
        // The wanted set's reference moves to `sent`.
        if (sent) this.table.release(sent);
        else this.nSent++;
        this.sentAt[s] = target;
      }
      const list = batch.announce.get(target);
      if (list) list.push(prefix);
      else batch.announce.set(target, [prefix]);
    }
    if (this.head === q.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  /** Forget everything (session down). */
  clear(): void {
    for (let s = 0; s < this.idx.slotCount; s++) {
      const a = this.sentAt[s];
      const b = this.wantAt[s];
      if (a) this.table.release(a);
      if (b) this.table.release(b);
    }
    this.idx = new PrefixIndex();
    this.sentAt = [];
    this.wantAt = [];
    this.flags = new Uint8Array(1024);
    this.queue = [];
    this.head = 0;
    this.nPending = 0;
    this.nSent = 0;
  }
}
