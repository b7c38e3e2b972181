/**
 * What goes out to one established peer (RFC 4271 §9.2 Update-Send, §9.2.1.1 pacing): its
 * Adj-RIB-Out (rib/adj-out.ts), its export answers (export.ts), the End-of-RIB markers it is owed
 * (RFC 4724 §2) and the Enhanced Route Refresh end markers (RFC 7313 §4), and the flush that
 * writes them. One PeerTx lives as long as one session is Established.
 *
 * - `take(changes)`: best-path changes from the RIB, in either form (the UPDATE path's SlotList,
 *   or Deltas from session changes, origination and sweeps), through the export policy into the
 *   Adj-RIB-Out, for the families the session negotiated. Changes coalesce per prefix there.
 * - `fill(initial)`: everything the Loc-RIB holds, as this peer should have it (a new session,
 *   a new policy, the end of selection deferral); with `initial`, End-of-RIB follows per family.
 * - Flush pacing: a flush runs at the next turn of the event loop (`Clock.soon`) after a change,
 *   or at once when EAGER_FLUSH_PENDING changes wait and the last flush began EAGER_FLUSH_MS
 *   ago, so a table arriving in bulk is passed on while it arrives rather than once all of it has
 *   been read (Node reads many socket chunks in one turn). Flushes asked for wait in one
 *   FlushQueue per speaker, which the speaker also runs as soon as it has handled a small read
 *   (PROMPT_READ_BYTES): a lone UPDATE goes on without waiting for the loop's turn. A flush packs many NLRI per attribute
 *   set (rib/adj-out.ts packBatch, wire/update.ts) and writes only while the socket takes them;
 *   the rest waits for 'drain' (`scheduleFlush` again). A slow peer so holds at most one pending
 *   entry per prefix, never a queue of messages.
 * - NEXT_HOP self is our address on the session; for the other family, an address of that family
 *   on the same interface (host.ts sessionNextHops), read at the first flush and again after
 *   `forgetNextHops` (interfaces may change).
 *
 * Not here: whether the speaker advertises at all (selection deferral, graceful-restart.ts), and
 * the route refresh request itself (the peer module answers it through `refresh`).
 */
import type { Clock } from './clock.js';
import { PeerExport, SessionNextHops } from './export.js';
import type { HostInterfaces } from './host.js';
import { sessionNextHops } from './host.js';
import type { LocalInfo, PeerPolicy } from './policy.js';
import { AdjRibOut, packBatch } from './rib/adj-out.js';
import type { AttrTable } from './rib/attrs.js';
import { type Delta, familyOfPrefix, type PeerRef, type Rib, SlotList } from './rib/rib.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST, RefreshSubtype } from './wire/constants.js';
import type { CodecContext } from './wire/context.js';
import { encodeRouteRefresh } from './wire/route-refresh.js';
import { encodeEndOfRib } from './wire/update.js';
import type { Writer } from './wire/writer.js';

/** A peer's pending changes go out at once when this many wait and the last flush began this long ago. */
export const EAGER_FLUSH_PENDING = 4096;
export const EAGER_FLUSH_MS = 2;
/** Changes per packed batch in the speaker: then the socket is asked again. */
export const BATCH = 16_384;

/**
 * A read of at most this many bytes is sparse traffic, not a table arriving: once its messages
 * are handled, the flushes they asked for run at once instead of at the loop's next turn (which
 * costs a lone UPDATE 30-70 µs). Larger reads keep to the turn, so that the reads of one turn
 * share a flush.
 */
export const PROMPT_READ_BYTES = 4096;

/** The session as the sending side sees it (session.ts Session). */
export interface TxSession {
  readonly writable: boolean;
  readonly localAddress: string | undefined;
  /** false: the socket queues; wait for 'drain'. */
  send(buf: Buffer): boolean;
}

/** What every PeerTx of a speaker shares. */
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
}

/** The flushes asked for since the queue last ran; it runs at the next turn of the loop, or sooner. */
export class FlushQueue {
  private due: PeerTx[] = [];
  private armed = false;

  constructor(private readonly clock: Clock) {}

  add(tx: PeerTx): void {
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
    this.due = [];
    for (const tx of due) tx.runScheduled();
  }
}

export class PeerTx {
  readonly adjOut: AdjRibOut;
  private exports: PeerExport;
  private nextHops: SessionNextHops | undefined;
  private eorOwed = new Set<Family>();
  private readonly eorrOwed = new Set<Family>();
  private flushScheduled = false;
  /** When the last flush began (Clock.now()). */
  private flushedAt = 0;
  private closed = false;
  /** Prefixes packed into UPDATEs so far, announced or withdrawn. */
  packed = 0;
  private readonly v4: boolean;
  private readonly v6: boolean;

  constructor(
    private readonly shared: TxShared,
    private readonly session: TxSession,
    private readonly ctx: CodecContext,
    private readonly to: PeerRef,
    policy: PeerPolicy,
    reflector: boolean,
  ) {
    this.adjOut = new AdjRibOut(shared.exportTable, shared.rib);
    this.exports = new PeerExport(shared.exportTable, shared.me, to, policy, reflector);
    this.v4 = ctx.families.has(IPV4_UNICAST);
    this.v6 = ctx.families.has(IPV6_UNICAST);
  }

  /** A new export policy (this peer's, or whether we reflect at all): answers worked out again. */
  setPolicy(policy: PeerPolicy, reflector: boolean): void {
    this.exports.clear();
    this.exports = new PeerExport(this.shared.exportTable, this.shared.me, this.to, policy, reflector);
  }

  /** How many prefixes the peer holds from us. */
  get sentCount(): number {
    return this.adjOut.sentCount;
  }

  /** Best-path changes into the Adj-RIB-Out, then a flush soon (or now, see the header). */
  take(changes: SlotList | readonly Delta[]): void {
    if (changes.length === 0) return;
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
    // Nothing for this peer (split horizon, its own route, an export rule): no flush at all.
    if (out.pendingCount === 0) return;
    if (out.pendingCount >= EAGER_FLUSH_PENDING && this.shared.clock.now() - this.flushedAt >= EAGER_FLUSH_MS)
      this.flush();
    else this.scheduleFlush();
  }

  /** Everything the Loc-RIB holds, as this peer should have it; then End-of-RIB if `initial`. */
  fill(initial: boolean): void {
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
    if (initial)
      this.eorOwed = new Set([...this.ctx.families].filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST));
    this.scheduleFlush();
  }

  /** A route refresh for `family` (RFC 2918): the whole Adj-RIB-Out again, framed by BoRR/EoRR if enhanced. */
  refresh(family: Family, enhanced: boolean): void {
    if (enhanced) {
      this.session.send(
        encodeRouteRefresh({
          afi: family >> 8,
          safi: family & 255,
          subtype: RefreshSubtype.BeginningOfRouteRefresh,
        }),
      );
      this.eorrOwed.add(family);
    }
    this.adjOut.resend(family);
    this.scheduleFlush();
  }

  /** Our interfaces may have changed: read the next hops again at the next flush. */
  forgetNextHops(): void {
    this.nextHops = undefined;
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

  /** Send pending changes while the socket takes them; the rest waits for 'drain'. */
  flush(): void {
    const s = this.session;
    if (this.closed || !s.writable) return;
    const shared = this.shared;
    this.flushScheduled = false;
    this.flushedAt = shared.clock.now();
    if (!this.nextHops) {
      const hops = sessionNextHops(shared.host, s.localAddress ?? shared.me.routerId, shared.me.routerId);
      this.nextHops = new SessionNextHops(hops.v4, hops.v6);
    }
    const nextHops = this.nextHops;
    const out = this.adjOut;
    const size = shared.batch;
    while (out.pendingCount > 0) {
      const w = shared.writer.reset();
      const batch = out.take(size);
      packBatch(w, batch, this.ctx, nextHops);
      this.packed += batch.count;
      const more = w.pos === 0 || s.send(w.take());
      shared.afterBatch();
      if (!more) return;
    }
    for (const f of this.eorOwed) if (!s.send(encodeEndOfRib(f, this.ctx))) return;
    this.eorOwed.clear();
    for (const f of this.eorrOwed)
      s.send(encodeRouteRefresh({ afi: f >> 8, safi: f & 255, subtype: RefreshSubtype.EndOfRouteRefresh }));
    this.eorrOwed.clear();
  }

  /** The session is down: everything given back; a flush still scheduled does nothing. */
  close(): void {
    this.closed = true;
    this.adjOut.clear();
    this.exports.clear();
  }
}
