/**
 * What goes out to one established peer (RFC 4271 §9.2 Update-Send, §9.2.1.1 pacing): its place
 * in an update group (update-group.ts: the Adj-RIB-Out, export answers and packing it shares with
 * peers that are sent the same), the End-of-RIB markers it is owed (RFC 4724 §2) and the Enhanced
 * Route Refresh end markers (RFC 7313 §4). One PeerTx lives as long as one session is Established.
 *
 * - Best-path changes go to the groups (`TxGroups.fanOut`), through the export policy into the
 *   Adj-RIB-Out, for the families the sessions negotiated. Changes coalesce per prefix there.
 * - `fill(initial)`: everything the Loc-RIB holds, as this peer should have it (a new session,
 *   a new policy, the end of selection deferral); with `initial`, End-of-RIB follows per family.
 * - Flush pacing: a flush runs at the next turn of the event loop (`Clock.soon`) after a change,
 *   or at once when EAGER_FLUSH_PENDING changes wait and the last flush began EAGER_FLUSH_MS
 *   ago, so a table arriving in bulk is passed on while it arrives rather than once all of it has
 *   been read (Node reads many socket chunks in one turn). Flushes asked for wait in one
 *   FlushQueue per speaker, which the speaker also runs as soon as it has handled a small read
 *   (PROMPT_READ_BYTES): a lone UPDATE goes on without waiting for the loop's turn. A flush packs
 *   many NLRI per attribute set (rib/adj-out.ts packBatch, wire/update.ts) and writes only while
 *   the sockets take them; the rest waits for 'drain'. A slow peer so holds at most one pending
 *   entry per prefix, never a queue of messages.
 * - NEXT_HOP self is our address on the session; for the other family, an address of that family
 *   on the same interface (host.ts sessionNextHops), read when the session is established and
 *   again by `TxGroups.forgetNextHops` (interfaces may change).
 *
 * Not here: whether the speaker advertises at all (selection deferral, graceful-restart.ts), and
 * the route refresh request itself (the peer module answers it through `refresh`).
 */
import type { SessionNextHops } from './export.js';
import type { HostInterfaces } from './host.js';
import type { PeerPolicy } from './policy.js';
import { AdjRibOut } from './rib/adj-out.js';
import type { PeerRef } from './rib/rib.js';
import {
  type GroupMember,
  groupBase,
  nextHopsOf,
  TxGroup,
  type TxSession,
  type TxShared,
} from './update-group.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST, RefreshSubtype } from './wire/constants.js';
import type { CodecContext } from './wire/context.js';
import { encodeRouteRefresh } from './wire/route-refresh.js';
import { encodeEndOfRib } from './wire/update.js';

export { EAGER_FLUSH_MS, EAGER_FLUSH_PENDING } from './update-group.js';
/** Changes per packed batch in the speaker: then the socket is asked again. */
export const BATCH = 16_384;

/**
 * A read of at most this many bytes is sparse traffic, not a table arriving: once its messages
 * are handled, the flushes they asked for run at once instead of at the loop's next turn (which
 * costs a lone UPDATE 30-70 µs). Larger reads keep to the turn, so that the reads of one turn
 * share a flush.
 */
export const PROMPT_READ_BYTES = 4096;

export { FlushQueue, type TxSession, type TxShared } from './update-group.js';

export class PeerTx implements GroupMember {
  /** The update group this peer is in (update-group.ts). */
  group!: TxGroup;
  /** Its socket did not take the group's last batch: the group waits for its 'drain'. */
  blocked = false;
  private eorOwed = new Set<Family>();
  /** Families whose End-of-RIB this session has sent (`twill status`). */
  readonly eorSent = new Set<Family>();
  private readonly eorrOwed = new Set<Family>();
  private closed = false;
  /** Prefixes packed into UPDATEs for this peer so far, announced or withdrawn. */
  packed = 0;
  private base: string;

  constructor(
    private readonly shared: TxShared,
    readonly session: TxSession,
    private readonly ctx: CodecContext,
    readonly to: PeerRef,
    policy: PeerPolicy,
    reflector: boolean,
  ) {
    this.base = groupBase(ctx, to, policy, reflector);
    const hops = this.readNextHops(shared.host);
    const g = new TxGroup(
      shared,
      this.base,
      ctx,
      policy,
      reflector,
      hops,
      new AdjRibOut(shared.exportTable, shared.rib),
      to,
    );
    g.add(this);
    shared.groups.register(g);
  }

  /** The next hops of this session's announcements, from our interfaces now. */
  readNextHops(host: HostInterfaces): SessionNextHops {
    return nextHopsOf(host, this.session.localAddress, this.shared.me.routerId);
  }

  /** What the peer holds from us, as its group's table has it. */
  get adjOut(): AdjRibOut {
    return this.group.adjOut;
  }

  /** A new export policy (this peer's, or whether we reflect at all): answers worked out again. */
  setPolicy(policy: PeerPolicy, reflector: boolean): void {
    const base = groupBase(this.ctx, this.to, policy, reflector);
    if (base === this.base) return;
    this.base = base;
    this.alone().rekey(base, policy, reflector);
  }

  /** This peer in a group of its own (it leaves with a copy of its group's table). */
  private alone(): TxGroup {
    return this.group.members.length === 1 ? this.group : this.group.split([this]);
  }

  /**
   * Routes from this peer are about to enter the RIB: it leaves a shared group first (split
   * horizon), unless the group would never be sent them (update-group.ts `exportsFrom`).
   */
  announcing(): void {
    if (this.group.members.length > 1 && this.group.exportsFrom(this.to)) this.alone();
  }

  /** How many prefixes the peer holds from us. */
  get sentCount(): number {
    return this.group.adjOut.sentCount;
  }

  /** Everything the Loc-RIB holds, as this peer should have it; then End-of-RIB if `initial`. */
  fill(initial: boolean): void {
    if (initial)
      this.eorOwed = new Set([...this.ctx.families].filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST));
    this.group.fill();
    this.group.scheduleFlush();
  }

  /** A route refresh for `family` (RFC 2918): the whole Adj-RIB-Out again, framed by BoRR/EoRR if enhanced. */
  refresh(family: Family, enhanced: boolean): void {
    const g = this.alone();
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
    g.adjOut.resend(family);
    g.scheduleFlush();
  }

  /** The socket drained. */
  drained(): void {
    if (!this.closed) this.group.drained(this);
  }

  /** Send what the group has pending now (and this peer's markers). */
  flush(): void {
    this.group.flush();
  }

  /**
   * The End-of-RIB (and End of Route Refresh) markers this peer is owed, once its group has sent
   * everything; false: the socket is full, the rest wait for 'drain'.
   */
  sendMarkers(): boolean {
    const s = this.session;
    // A write that returns false is queued all the same: the marker counts as sent.
    let ok = true;
    for (const f of this.eorOwed) {
      ok = s.send(encodeEndOfRib(f, this.ctx)) && ok;
      this.eorSent.add(f);
    }
    this.eorOwed.clear();
    for (const f of this.eorrOwed)
      ok =
        s.send(
          encodeRouteRefresh({ afi: f >> 8, safi: f & 255, subtype: RefreshSubtype.EndOfRouteRefresh }),
        ) && ok;
    this.eorrOwed.clear();
    return ok;
  }

  /** The session is down: this peer leaves its group (the last one out gives everything back). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.group.remove(this);
  }
}
