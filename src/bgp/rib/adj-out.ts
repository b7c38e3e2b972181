/**
 * Adj-RIB-Out for one peer (RFC 4271 §3.2): what the peer holds from us, and the changes not yet
 * sent. Pure bookkeeping; the speaker writes.
 *
 * `set(prefix, attrs | null)` records the desired state for a prefix (level-triggered: the last
 * call wins). Changes coalesce: a prefix announced and withdrawn before the next flush sends
 * nothing, and one changed twice sends once. `take(max)` hands out up to `max` pending changes,
 * announcements grouped by attribute set (so each group packs into full UPDATEs) and withdrawals
 * by family, and records them as sent. Pending state is one entry per prefix at most, so a peer
 * that reads slowly costs memory bounded by the table size, never a growing queue.
 *
 * Attribute sets are interned (attrs.ts) and reference counted: the table retains a set for each
 * prefix that holds it, sent or pending.
 */
import type { PrefixKey } from '../../net/addr.js';
import type { Family } from '../wire/constants.js';
import type { AttrTable, RouteAttrs } from './attrs.js';
import { familyOfPrefix } from './rib.js';

export interface Batch {
  announce: Map<RouteAttrs, PrefixKey[]>;
  withdraw: Map<Family, PrefixKey[]>;
  count: number;
}

export class AdjRibOut {
  /** What the peer holds. */
  readonly sent = new Map<PrefixKey, RouteAttrs>();
  /** Desired changes not yet sent: a set to announce, or null to withdraw. */
  private readonly pending = new Map<PrefixKey, RouteAttrs | null>();
  /** Prefixes a route refresh asked for: sent at the next take even if unchanged. */
  private readonly refresh = new Set<PrefixKey>();

  constructor(private readonly table: AttrTable) {}

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Record the desired state of a prefix. `ra` carries a reference the table now owns. */
  set(prefix: PrefixKey, ra: RouteAttrs | null): void {
    const old = this.pending.get(prefix);
    if (old) this.table.release(old);
    const sent = this.sent.get(prefix);
    if (ra === null ? sent === undefined : sent === ra && !this.refresh.has(prefix)) {
      // Back to what the peer already holds: nothing to send.
      this.pending.delete(prefix);
      if (ra) this.table.release(ra);
      return;
    }
    this.pending.set(prefix, ra);
  }

  /**
   * Send everything again (route refresh): every sent prefix of `family` becomes pending. The
   * peer still holds them, so `sent` stays as it is: a prefix withdrawn before the next take is
   * withdrawn, and one set back to what was sent goes out again all the same.
   */
  resend(family: Family): void {
    for (const [k, ra] of this.sent) {
      if (familyOfPrefix(k) !== family) continue;
      this.refresh.add(k);
      if (!this.pending.has(k)) this.pending.set(k, this.table.retain(ra));
    }
  }

  /** Up to `max` pending changes, recorded as sent. */
  take(max = Number.POSITIVE_INFINITY): Batch {
    const batch: Batch = { announce: new Map(), withdraw: new Map(), count: 0 };
    for (const [k, ra] of this.pending) {
      if (batch.count >= max) break;
      this.pending.delete(k);
      this.refresh.delete(k);
      batch.count++;
      const old = this.sent.get(k);
      if (ra === null) {
        if (!old) continue;
        this.sent.delete(k);
        this.table.release(old);
        const f = familyOfPrefix(k);
        const list = batch.withdraw.get(f);
        if (list) list.push(k);
        else batch.withdraw.set(f, [k]);
      } else {
        if (old) this.table.release(old);
        this.sent.set(k, ra);
        const list = batch.announce.get(ra);
        if (list) list.push(k);
        else batch.announce.set(ra, [k]);
      }
    }
    return batch;
  }

  /** Forget everything (session down). */
  clear(): void {
    for (const ra of this.sent.values()) this.table.release(ra);
    for (const ra of this.pending.values()) if (ra) this.table.release(ra);
    this.sent.clear();
    this.pending.clear();
    this.refresh.clear();
  }
}
