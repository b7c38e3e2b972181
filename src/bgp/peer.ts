/**
 * One configured neighbor: its sessions, the collision between them, and its state per family.
 * The speaker holds one Peer per neighbor and wires its sessions' callbacks here.
 *
 * Sessions and collisions (RFC 4271 §6.8)
 * - At most two sessions: `out` (we dial; absent for a passive neighbor or the higher address
 *   under the Calico mesh rule, config.ts dialsNeighbor) and `in` (accepted).
 * - When a session reaches OpenConfirm the other is looked at (`collisionVerdict`, pure): against
 *   an Established one the new session is dumped; against one in OpenSent or OpenConfirm the
 *   connection opened by the speaker with the higher BGP Identifier survives; a dial still in
 *   progress is stopped quietly. The loser gets OpenCollisionDump (event 23) and sends Cease 6/7.
 * - An outgoing session that lost is paused until the winner goes down, then starts again after
 *   a quarter of the connect-retry time, so it does not redial into a collision every backoff.
 * - One Established session per peer: when an incoming one gets there first, an outgoing one
 *   still trying is stopped (with Cease 6/7 if it got as far as an OPEN) and paused.
 *
 * State per peer and family
 * - `stateName`/`since`: the most advanced of its sessions, for `twill status` (a peer that only
 *   waits shows Active rather than Idle); `lastError`: the last NOTIFICATION either way or the
 *   last connection error.
 * - `eorSeen`: families whose End-of-RIB arrived in this session (RFC 4724 §2); what is owed to
 *   the peer (End-of-RIB, Enhanced Route Refresh markers) is its PeerTx's (peer-tx.ts).
 * - `gr`/`restartTimer`: the graceful-restart helper machine (graceful-restart.ts) and its timer.
 *
 * Time comes from a Clock (clock.ts); the sessions are whatever implements `PeerSession`, so the
 * collision rules are unit-tested with stand-ins and a fake clock.
 */
import type { Clock, TimerHandle } from './clock.js';
import type { NeighborConfig } from './config.js';
import { type FsmEvent, FsmState, type NotificationSummary } from './fsm.js';
import { HELPER_NONE, type HelperState } from './graceful-restart.js';
import type { PeerTx } from './peer-tx.js';
import type { PeerPolicy } from './policy.js';
import type { PeerRef } from './rib/rib.js';
import type { PeerStateName, PeerStatus } from './status.js';
import type { Family } from './wire/constants.js';
import type { OpenMessage } from './wire/open.js';

/** What the peer layer uses of a session (session.ts Session). */
export interface PeerSession {
  readonly state: FsmState;
  readonly direction: 'out' | 'in';
  readonly fsm: { readonly peerOpen?: OpenMessage };
  start(): void;
  feed(e: FsmEvent): void;
  stop(subcode?: number, message?: string): void;
  dispose(): void;
}

/** What to do about the other session when one reaches OpenConfirm. */
export type CollisionVerdict =
  | { kind: 'none' }
  /** The other is our dial, still connecting: stop it quietly; this one goes on. */
  | { kind: 'stopDial' }
  /** Send OpenCollisionDump to `loser`: this session or the other one. */
  | { kind: 'dump'; loser: 'this' | 'other' };

/**
 * RFC 4271 §6.8 for a session `s` that reached OpenConfirm with the peer's BGP Identifier
 * `remoteId`, beside `other`. `localId` is ours; identifiers compare as unsigned 32-bit numbers.
 */
export function collisionVerdict(
  localId: number,
  s: { direction: 'out' | 'in'; remoteId: number },
  other: { direction: 'out' | 'in'; state: FsmState },
): CollisionVerdict {
  switch (other.state) {
    case FsmState.Idle:
      return { kind: 'none' };
    case FsmState.Connect:
    case FsmState.Active:
      return other.direction === 'out' ? { kind: 'stopDial' } : { kind: 'none' };
    case FsmState.Established:
      return { kind: 'dump', loser: 'this' };
    default: {
      // The connection opened by the speaker with the higher BGP Identifier survives.
      const keepOurs = localId >>> 0 > s.remoteId >>> 0;
      const thisIsOurs = s.direction === 'out';
      return { kind: 'dump', loser: keepOurs === thisIsOurs ? 'other' : 'this' };
    }
  }
}

const RANK = [
  FsmState.Idle,
  FsmState.Connect,
  FsmState.Active,
  FsmState.OpenSent,
  FsmState.OpenConfirm,
  FsmState.Established,
];

export class Peer<S extends PeerSession = PeerSession> {
  out: S | undefined;
  in: S | undefined;
  /** The out session lost a collision and waits for the winner to go down. */
  outPaused = false;
  /** Set while Established. */
  ref: PeerRef | undefined;
  /** What the peer is sent; set while Established. */
  tx: PeerTx | undefined;
  peerOpen: OpenMessage | undefined;
  /** Families whose End-of-RIB arrived in this session. */
  eorSeen = new Set<Family>();
  stateName: PeerStateName = 'Idle';
  since: Date;
  lastError: PeerStatus['lastError'] = null;
  /** Removed from the configuration: nothing restarts. */
  removed = false;
  /** Graceful-restart helper (graceful-restart.ts) and its restart timer. */
  gr: HelperState = HELPER_NONE;
  restartTimer: TimerHandle | undefined;

  constructor(
    public cfg: NeighborConfig,
    public readonly dials: boolean,
    public policy: PeerPolicy,
    private readonly clock: Clock,
  ) {
    this.since = clock.date();
  }

  get address(): string {
    return this.cfg.address;
  }

  get established(): S | undefined {
    if (this.out?.state === FsmState.Established) return this.out;
    if (this.in?.state === FsmState.Established) return this.in;
    return undefined;
  }

  sessions(): S[] {
    const list: S[] = [];
    if (this.out) list.push(this.out);
    if (this.in) list.push(this.in);
    return list;
  }

  /** Start: dial if we dial, else wait (shown as Active). */
  start(make: () => S): void {
    if (!this.dials) {
      this.setState('Active');
      return;
    }
    this.out = make();
    this.out.start();
  }

  /** Every session stops, with a Cease of `subcode` to those that got far enough. */
  stop(subcode?: number, message?: string): void {
    for (const s of this.sessions()) s.stop(subcode, message);
  }

  /**
   * An accepted connection: a session for it. One not yet Established is replaced; beside an
   * Established one the new session runs until its collision dump.
   */
  accept(make: () => S): S {
    if (this.in && this.in.state !== FsmState.Established) this.in.dispose();
    const s = make();
    if (this.in?.state !== FsmState.Established) this.in = s;
    s.start();
    return s;
  }

  /** `s` reached OpenConfirm: settle a collision with the other session. The loser, if any. */
  openConfirm(s: S, localId: number): S | undefined {
    const other = s === this.out ? this.in : s === this.in ? this.out : this.established;
    if (!other || other === s) return undefined;
    const v = collisionVerdict(
      localId,
      { direction: s.direction, remoteId: s.fsm.peerOpen!.bgpId },
      { direction: other.direction, state: other.state },
    );
    if (v.kind === 'none') return undefined;
    if (v.kind === 'stopDial') {
      other.stop();
      this.outPaused = true;
      return undefined;
    }
    const loser = v.loser === 'this' ? s : other;
    loser.feed({ type: 'OpenCollisionDump' });
    if (loser === this.out) {
      loser.stop();
      this.outPaused = true;
    }
    return loser;
  }

  /** `s` is Established: an outgoing session still trying gives way to an incoming one. */
  establishedOn(s: S): void {
    const out = this.out;
    if (s !== this.in || !out || out.state === FsmState.Established) return;
    if (out.state === FsmState.OpenSent || out.state === FsmState.OpenConfirm)
      out.feed({ type: 'OpenCollisionDump' });
    out.stop();
    this.outPaused = true;
  }

  /** A session changed state: the peer's shown state follows the most advanced session. */
  sessionStateChanged(): boolean {
    let best = FsmState.Idle;
    for (const x of this.sessions()) if (RANK.indexOf(x.state) > RANK.indexOf(best)) best = x.state;
    const name = (this.dials || best !== FsmState.Idle ? best : 'Active') as PeerStateName;
    return this.setState(name);
  }

  private setState(name: PeerStateName): boolean {
    if (name === this.stateName) return false;
    this.stateName = name;
    this.since = this.clock.date();
    return true;
  }

  notificationSent(n: NotificationSummary): void {
    this.lastError = {
      direction: 'sent',
      code: n.code,
      subcode: n.subcode,
      text: n.text,
      at: this.clock.date().toISOString(),
    };
  }

  /**
   * Session `s` ended. Records the error, disposes an incoming session (the peer dials again),
   * and lets a paused dial start again once the incoming winner is gone (unless `stopping`).
   */
  sessionDown(
    s: S,
    info: {
      wasEstablished: boolean;
      reason: string;
      received?: NotificationSummary;
      sent?: NotificationSummary;
    },
    stopping: boolean,
  ): void {
    const at = this.clock.date().toISOString();
    if (info.received) {
      const r = info.received;
      this.lastError = { direction: 'received', code: r.code, subcode: r.subcode, text: r.text, at };
    } else if (
      !info.sent &&
      info.reason !== 'stopped' &&
      (!this.lastError || this.lastError.direction === 'local' || info.wasEstablished)
    ) {
      this.lastError = { direction: 'local', text: info.reason, at };
    }
    if (s !== this.out) s.dispose();
    if (s === this.in) {
      this.in = undefined;
      if (this.outPaused && this.out && !this.removed && !stopping) {
        this.outPaused = false;
        const out = this.out;
        this.clock.after(this.cfg.connectRetry * 250, () => out.feed({ type: 'ManualStart' }));
      }
    }
    if (!this.dials && !this.in) {
      this.stateName = 'Active';
      this.since = this.clock.date();
    }
  }
}
