/**
 * The BGP finite state machine of RFC 4271 §8, sans-IO (STYLE.md §3).
 *
 * `step(state, event, nowMs)` returns the next state and a list of actions: connect, close, send
 * a message (already encoded), arm or cancel a timer, report Established or down, deliver an
 * UPDATE or ROUTE-REFRESH. It never touches a socket or a timer; session.ts does, and feeds back
 * timer expiries and socket events as events. Time comes in as `nowMs`; jitter comes from a
 * small PRNG carried in the state, so a test replays exactly.
 *
 * One FSM runs per TCP connection, as in BIRD and GoBGP: while two connections to one peer race
 * (both sides dialing), the peer layer holds two FSMs and resolves the collision by BGP
 * Identifier (§6.8), sending OpenCollisionDump (event 23) to the loser, which answers with Cease
 * 6/7. So events 14-17 arriving in OpenSent, OpenConfirm or Established are the peer layer's
 * business (it starts a second FSM), not this one's.
 *
 * Every row of §8.2.2 is here, for the mandatory events and these optional ones: 3/5
 * (AutomaticStart, with passive TCP establishment), 8 (AutomaticStop), 13 (IdleHoldTimer_Expires,
 * our automatic restart), 23 (OpenCollisionDump). DelayOpen (12, 20) and the Tcp_CR_Invalid
 * event (15) are not used: an unconfigured address is refused by the listener before any FSM
 * exists.
 *
 * FSM errors (RFC 6608): an unexpected message gets NOTIFICATION 5/1, 5/2 or 5/3 for the state it
 * arrived in (OpenSent, OpenConfirm, Established), with the message's type as the one octet of
 * data (§4); an unexpected event that is not a message (a timer) gets 5/0, Unspecified Error,
 * with no data.
 *
 * Departures, each one deliberate:
 * - Automatic restart. After any fall to Idle that was not a ManualStop, the FSM arms the
 *   IdleHoldTimer and starts again when it fires (RFC 4271 §8.1.1 DampPeerOscillations). After
 *   a TCP connection could not be made the wait is idleHoldMin, doubling for each such failure
 *   in a row up to the ConnectRetry time (a restarting peer is reached as soon as it listens,
 *   not up to a ConnectRetry time later; a connection made starts it over); after a session
 *   that failed once connected, an exponential backoff (idleHoldMin doubling to idleHoldMax,
 *   jittered), so a peer that flaps cannot make a storm. The backoff resets once a session has
 *   stayed Established for `stableAfterMs`.
 * - Jitter (§10): ConnectRetry, keepalive and idle-hold intervals are multiplied by a factor in
 *   [0.75, 1].
 * - A passive FSM (§8.1.1 PassiveTcpEstablishment) never dials: in Active its ConnectRetry expiry
 *   only re-arms the timer.
 * - Hold time (§4.2, §10): the lower of ours and the peer's; 0 means no KEEPALIVEs and no hold
 *   timer; 1-2 s are refused with 2/6 by the decoder; keepalive = hold / 3. The hold timer restarts
 *   on every message received, not only KEEPALIVE and UPDATE (as GoBGP and BIRD do).
 * - Send hold timer (RFC 9687): session.ts arms it while written data waits unread; on expiry the
 *   FSM sends NOTIFICATION 8/0 (best effort) and drops the connection.
 * - A NOTIFICATION received is never answered with one (§8.2.2 OpenSent lists event 25 among
 *   the FSM errors), and a header or OPEN error in Established is reported as itself (§6), not as
 *   an FSM error.
 * - An UPDATE's RFC 7606 treat-as-withdraw and attribute-discard errors arrive inside UpdateMsg:
 *   the RIB handles them; only a session-reset error is UpdateMsgErr.
 */
import type { CodecContext } from './wire/context.js';
import { negotiate } from './wire/context.js';
import { CeaseSubcode, ErrorCode, FsmSubcode, MsgType } from './wire/constants.js';
import type { BgpError } from './wire/error.js';
import {
  describeNotification,
  encodeCease,
  encodeNotification,
  KEEPALIVE,
  type NotificationMessage,
} from './wire/notification.js';
import { checkOpen, encodeOpen, type OpenMessage } from './wire/open.js';
import type { RouteRefreshMessage } from './wire/route-refresh.js';
import type { DecodedUpdate } from './wire/update.js';

export const enum FsmState {
  Idle = 'Idle',
  Connect = 'Connect',
  Active = 'Active',
  OpenSent = 'OpenSent',
  OpenConfirm = 'OpenConfirm',
  Established = 'Established',
}

/** RFC 9687 §3: Send Hold Timer Expired. */
export const SEND_HOLD_TIMER_EXPIRED = 8;

export type Timer = 'connectRetry' | 'hold' | 'keepalive' | 'idleHold';

export type FsmEvent =
  | { type: 'ManualStart' }
  | { type: 'ManualStartPassive' }
  | { type: 'AutomaticStart' }
  | { type: 'AutomaticStartPassive' }
  | { type: 'ManualStop'; subcode?: CeaseSubcode; message?: string }
  | { type: 'AutomaticStop'; subcode?: CeaseSubcode; message?: string }
  | { type: 'ConnectRetryTimerExpires' }
  | { type: 'HoldTimerExpires' }
  | { type: 'KeepaliveTimerExpires' }
  | { type: 'IdleHoldTimerExpires' }
  | { type: 'SendHoldTimerExpires' }
  /** Event 16: our outgoing connection is up. */
  | { type: 'TcpCrAcked' }
  /** Event 17: an incoming connection from this peer was accepted. */
  | { type: 'TcpConnectionConfirmed' }
  | { type: 'TcpConnectionFails'; reason?: string }
  | { type: 'BgpOpen'; open: OpenMessage }
  | { type: 'BgpHeaderErr'; error: BgpError }
  | { type: 'BgpOpenMsgErr'; error: BgpError }
  | { type: 'OpenCollisionDump' }
  | { type: 'NotifMsgVerErr'; notification: NotificationMessage }
  | { type: 'NotifMsg'; notification: NotificationMessage }
  | { type: 'KeepAliveMsg' }
  | { type: 'UpdateMsg'; update: DecodedUpdate }
  | { type: 'UpdateMsgErr'; error: BgpError }
  | { type: 'RouteRefreshMsg'; refresh: RouteRefreshMessage };

export interface NotificationSummary {
  code: number;
  subcode: number;
  data: Buffer;
  text: string;
}

export type FsmAction =
  | { kind: 'connect' }
  | { kind: 'close' }
  | {
      kind: 'send';
      what: 'open' | 'keepalive' | 'notification';
      buf: Buffer;
      notification?: NotificationSummary;
    }
  | { kind: 'arm'; timer: Timer; ms: number }
  | { kind: 'cancel'; timer: Timer }
  | { kind: 'established'; ctx: CodecContext; peerOpen: OpenMessage; holdTime: number; keepalive: number }
  /** Release the session's resources (§8.2.2 "releases all BGP resources"): routes go, or go stale. */
  | {
      kind: 'down';
      wasEstablished: boolean;
      reason: string;
      received?: NotificationSummary;
      sent?: NotificationSummary;
    }
  | { kind: 'update'; update: DecodedUpdate }
  | { kind: 'refresh'; refresh: RouteRefreshMessage }
  | { kind: 'state'; from: FsmState; to: FsmState };

export interface FsmOptions {
  localAs: number;
  /** Our BGP identifier, uint32. */
  localId: number;
  /** The AS we expect; undefined accepts any. */
  peerAs?: number;
  /** The OPEN we send (capabilities, our hold time). */
  open: OpenMessage;
  minHoldTime: number;
  connectRetryMs: number;
  passive: boolean;
  idleHoldMinMs: number;
  idleHoldMaxMs: number;
  stableAfterMs: number;
  /** §8.2.2: the "large value" the hold timer has in OpenSent (4 minutes suggested). */
  openHoldMs: number;
  /** Capabilities without which we refuse the session (NOTIFICATION 2/7). */
  required?: { code: number; value: Buffer }[];
}

export const DEFAULT_TIMERS = {
  connectRetryMs: 5_000,
  idleHoldMinMs: 1_000,
  idleHoldMaxMs: 60_000,
  stableAfterMs: 60_000,
  openHoldMs: 240_000,
  minHoldTime: 3,
} as const;

export interface Fsm {
  readonly state: FsmState;
  readonly opts: FsmOptions;
  readonly connectRetryCounter: number;
  /** Negotiated, seconds (0: none); undefined before OpenConfirm. */
  readonly holdTime?: number;
  readonly keepaliveTime?: number;
  readonly peerOpen?: OpenMessage;
  readonly ctx?: CodecContext;
  /** The current automatic-restart backoff, ms. */
  readonly backoffMs: number;
  /** Dials in a row that made no connection (the next waits longer: `toIdle`). */
  readonly dialFailures: number;
  readonly establishedAt?: number;
  /** Set by ManualStop: no automatic restart until a ManualStart. */
  readonly adminDown: boolean;
  /** xorshift32 state for jitter. */
  readonly rng: number;
}

export function createFsm(opts: FsmOptions, seed = 0x9e3779b9): Fsm {
  return {
    state: FsmState.Idle,
    opts,
    connectRetryCounter: 0,
    backoffMs: opts.idleHoldMinMs,
    dialFailures: 0,
    adminDown: false,
    rng: seed >>> 0 || 1,
  };
}

interface Step {
  s: Fsm;
  out: FsmAction[];
}

function jitter(st: Step, ms: number): number {
  let x = st.s.rng;
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  st.s = { ...st.s, rng: x };
  return Math.round(ms * (0.75 + (x / 0x100000000) * 0.25));
}

function go(st: Step, to: FsmState): void {
  const from = st.s.state;
  if (from === to) return;
  st.s = { ...st.s, state: to };
  st.out.push({ kind: 'state', from, to });
}

function summary(n: {
  code: number;
  subcode: number;
  data?: Buffer;
  shutdownMessage?: string;
}): NotificationSummary {
  return { code: n.code, subcode: n.subcode, data: n.data ?? Buffer.alloc(0), text: describeNotification(n) };
}

function sendNotification(st: Step, code: number, subcode: number, data?: Buffer): void {
  st.out.push({
    kind: 'send',
    what: 'notification',
    buf: encodeNotification({ code, subcode, data }),
    notification: summary({ code, subcode, data }),
  });
}

function sendCease(st: Step, subcode: CeaseSubcode, message?: string): void {
  const buf = encodeCease(subcode, message);
  st.out.push({
    kind: 'send',
    what: 'notification',
    buf,
    notification: summary({
      code: ErrorCode.Cease,
      subcode,
      data: buf.subarray(21),
      shutdownMessage: message,
    }),
  });
}

function sendOpen(st: Step): void {
  st.out.push({ kind: 'send', what: 'open', buf: encodeOpen(st.s.opts.open) });
}

function sendKeepalive(st: Step): void {
  st.out.push({ kind: 'send', what: 'keepalive', buf: KEEPALIVE });
}

const ALL_TIMERS: Timer[] = ['connectRetry', 'hold', 'keepalive', 'idleHold'];

type Counter = 'inc' | 'zero' | 'keep';

/**
 * Fall to Idle: cancel every timer, drop the connection, release resources, count the failure,
 * and — unless stopped by hand — arm the automatic restart.
 */
function toIdle(
  st: Step,
  now: number,
  opts: {
    counter: Counter;
    reason: string;
    received?: NotificationSummary;
    admin?: boolean;
    neverConnected?: boolean;
  },
): void {
  const wasEstablished = st.s.state === FsmState.Established;
  for (const t of ALL_TIMERS) st.out.push({ kind: 'cancel', timer: t });
  st.out.push({ kind: 'close' });
  let sent: NotificationSummary | undefined;
  for (const a of st.out) if (a.kind === 'send' && a.notification) sent = a.notification;
  st.out.push({ kind: 'down', wasEstablished, reason: opts.reason, received: opts.received, sent });
  const count =
    opts.counter === 'inc'
      ? st.s.connectRetryCounter + 1
      : opts.counter === 'zero'
        ? 0
        : st.s.connectRetryCounter;
  let backoff = st.s.backoffMs;
  if (
    wasEstablished &&
    st.s.establishedAt !== undefined &&
    now - st.s.establishedAt >= st.s.opts.stableAfterMs
  ) {
    backoff = st.s.opts.idleHoldMinMs;
  }
  const adminDown = opts.admin ?? st.s.adminDown;
  st.s = {
    ...st.s,
    connectRetryCounter: count,
    holdTime: undefined,
    keepaliveTime: undefined,
    peerOpen: undefined,
    ctx: undefined,
    establishedAt: undefined,
    adminDown,
  };
  go(st, FsmState.Idle);
  if (!adminDown) {
    // Wait before starting again. When no connection could be made (refused: the peer's speaker
    // is not listening yet, as while it restarts), the minimum idle hold time, doubled for each
    // such failure in a row, up to the ConnectRetry time: a peer that comes back in a second or
    // two is reached then, not a whole ConnectRetry time later. Else the damping backoff, which
    // doubles for the next failure.
    if (opts.neverConnected) {
      const n = st.s.dialFailures;
      const wait = Math.min(st.s.opts.connectRetryMs, st.s.opts.idleHoldMinMs * 2 ** Math.min(n, 20));
      st.out.push({ kind: 'arm', timer: 'idleHold', ms: jitter(st, wait) });
      st.s = { ...st.s, backoffMs: backoff, dialFailures: n + 1 };
    } else {
      st.out.push({ kind: 'arm', timer: 'idleHold', ms: jitter(st, backoff) });
      st.s = { ...st.s, backoffMs: Math.min(backoff * 2, st.s.opts.idleHoldMaxMs) };
    }
  }
}

function armConnectRetry(st: Step): void {
  st.out.push({ kind: 'arm', timer: 'connectRetry', ms: jitter(st, st.s.opts.connectRetryMs) });
}

/** Idle -> Connect (dial) or Active (listen only). */
function start(st: Step, passive: boolean, admin: boolean): void {
  st.s = { ...st.s, connectRetryCounter: 0, adminDown: admin ? false : st.s.adminDown };
  st.out.push({ kind: 'cancel', timer: 'idleHold' });
  armConnectRetry(st);
  if (passive) {
    go(st, FsmState.Active);
  } else {
    st.out.push({ kind: 'connect' });
    go(st, FsmState.Connect);
  }
}

/** Connect/Active + connection up: send OPEN, hold timer at the large value (§8.2.2). */
function connectionUp(st: Step): void {
  st.s = { ...st.s, dialFailures: 0 };
  st.out.push({ kind: 'cancel', timer: 'connectRetry' });
  sendOpen(st);
  st.out.push({ kind: 'arm', timer: 'hold', ms: st.s.opts.openHoldMs });
  go(st, FsmState.OpenSent);
}

function errorReason(e: BgpError): string {
  return `sent ${describeNotification(e)}: ${e.message}`;
}

/** OpenSent + BGPOpen: validate against configuration, negotiate, send KEEPALIVE. */
function openReceived(st: Step, open: OpenMessage, now: number): void {
  const o = st.s.opts;
  try {
    checkOpen(open, {
      peerAs: o.peerAs,
      localId: o.localId,
      minHoldTime: o.minHoldTime,
      required: o.required,
    });
  } catch (err) {
    const e = err as BgpError;
    sendNotification(st, e.code, e.subcode, e.data);
    toIdle(st, now, { counter: 'inc', reason: errorReason(e) });
    return;
  }
  const hold = Math.min(o.open.holdTime, open.holdTime);
  const keepalive = Math.floor(hold / 3);
  st.s = { ...st.s, holdTime: hold, keepaliveTime: keepalive, peerOpen: open, ctx: negotiate(o.open, open) };
  st.out.push({ kind: 'cancel', timer: 'connectRetry' });
  sendKeepalive(st);
  if (hold > 0) {
    st.out.push({ kind: 'arm', timer: 'keepalive', ms: jitter(st, keepalive * 1000) });
    st.out.push({ kind: 'arm', timer: 'hold', ms: hold * 1000 });
  } else {
    st.out.push({ kind: 'cancel', timer: 'hold' });
  }
  go(st, FsmState.OpenConfirm);
}

function restartHold(st: Step): void {
  const hold = st.s.holdTime;
  if (hold) st.out.push({ kind: 'arm', timer: 'hold', ms: hold * 1000 });
}

function keepaliveTimer(st: Step): void {
  sendKeepalive(st);
  const k = st.s.keepaliveTime;
  if (k) st.out.push({ kind: 'arm', timer: 'keepalive', ms: jitter(st, k * 1000) });
}

const FSM_ERROR_SUBCODE: Partial<Record<FsmState, number>> = {
  [FsmState.OpenSent]: FsmSubcode.UnexpectedInOpenSent,
  [FsmState.OpenConfirm]: FsmSubcode.UnexpectedInOpenConfirm,
  [FsmState.Established]: FsmSubcode.UnexpectedInEstablished,
};

/** The message an event is the arrival of, for RFC 6608's data octet. */
const MESSAGE_OF_EVENT: Partial<Record<FsmEvent['type'], MsgType>> = {
  BgpOpen: MsgType.Open,
  BgpOpenMsgErr: MsgType.Open,
  UpdateMsg: MsgType.Update,
  UpdateMsgErr: MsgType.Update,
  KeepAliveMsg: MsgType.Keepalive,
  RouteRefreshMsg: MsgType.RouteRefresh,
};

function fsmError(st: Step, now: number, e: FsmEvent): void {
  const type = MESSAGE_OF_EVENT[e.type];
  const subcode =
    type === undefined ? FsmSubcode.Unspecified : (FSM_ERROR_SUBCODE[st.s.state] ?? FsmSubcode.Unspecified);
  sendNotification(st, ErrorCode.Fsm, subcode, type === undefined ? undefined : Buffer.of(type));
  toIdle(st, now, {
    counter: 'inc',
    reason: `sent Finite State Machine Error (5/${subcode}): ${e.type} in ${st.s.state}`,
  });
}

/** A NOTIFICATION from the peer ends the session: to Idle, counting as §8.2.2 says. */
function notificationReceived(st: Step, now: number, n: NotificationMessage, counter: Counter): void {
  toIdle(st, now, { counter, reason: `received ${describeNotification(n)}`, received: summary(n) });
}

export function step(fsm: Fsm, e: FsmEvent, now: number): { state: Fsm; actions: FsmAction[] } {
  const st: Step = { s: fsm, out: [] };
  const passive = fsm.opts.passive;
  switch (fsm.state) {
    case FsmState.Idle:
      switch (e.type) {
        case 'ManualStart':
          start(st, passive, true);
          break;
        case 'ManualStartPassive':
          start(st, true, true);
          break;
        case 'AutomaticStart':
        case 'IdleHoldTimerExpires':
          if (!fsm.adminDown) start(st, passive, false);
          break;
        case 'AutomaticStartPassive':
          if (!fsm.adminDown) start(st, true, false);
          break;
        case 'ManualStop':
          // §8.2.2 Idle: ignored — but a stop also cancels a pending automatic restart.
          st.s = { ...st.s, adminDown: true };
          st.out.push({ kind: 'cancel', timer: 'idleHold' });
          break;
        default:
          // Events 8-12, 14-28 do not change Idle.
          break;
      }
      break;

    case FsmState.Connect:
    case FsmState.Active:
      switch (e.type) {
        case 'ManualStart':
        case 'ManualStartPassive':
        case 'AutomaticStart':
        case 'AutomaticStartPassive':
          break;
        case 'ManualStop':
          toIdle(st, now, { counter: 'zero', reason: 'stopped', admin: true });
          break;
        case 'ConnectRetryTimerExpires':
          if (fsm.state === FsmState.Connect) {
            // Give up on the attempt in flight and dial again.
            st.out.push({ kind: 'close' });
            armConnectRetry(st);
            st.out.push({ kind: 'connect' });
          } else if (passive) {
            armConnectRetry(st);
          } else {
            armConnectRetry(st);
            st.out.push({ kind: 'connect' });
            go(st, FsmState.Connect);
          }
          break;
        case 'TcpCrAcked':
        case 'TcpConnectionConfirmed':
          connectionUp(st);
          break;
        case 'TcpConnectionFails':
          // Connect: to Idle (§8.2.2, no DelayOpen). Active: to Idle, counting the failure.
          toIdle(st, now, {
            counter: fsm.state === FsmState.Active ? 'inc' : 'keep',
            reason: `connection failed${e.reason ? `: ${e.reason}` : ''}`,
            neverConnected: true,
          });
          break;
        case 'BgpHeaderErr':
        case 'BgpOpenMsgErr':
          toIdle(st, now, { counter: 'inc', reason: errorReason(e.error) });
          break;
        case 'NotifMsgVerErr':
          notificationReceived(st, now, e.notification, 'inc');
          break;
        default:
          // Events 8, 10, 11, 13, 19, 23, 25-28: drop everything, count, Idle.
          toIdle(st, now, {
            counter: 'inc',
            reason: `${e.type} in ${fsm.state}`,
            received: 'notification' in e ? summary(e.notification) : undefined,
          });
          break;
      }
      break;

    case FsmState.OpenSent:
    case FsmState.OpenConfirm:
    case FsmState.Established: {
      const est = fsm.state === FsmState.Established;
      switch (e.type) {
        case 'ManualStart':
        case 'ManualStartPassive':
        case 'AutomaticStart':
        case 'AutomaticStartPassive':
          break;
        case 'ManualStop':
          sendCease(st, e.subcode ?? CeaseSubcode.AdministrativeShutdown, e.message);
          toIdle(st, now, { counter: 'zero', reason: 'stopped', admin: true });
          break;
        case 'AutomaticStop':
          sendCease(st, e.subcode ?? CeaseSubcode.OtherConfigurationChange, e.message);
          toIdle(st, now, { counter: 'inc', reason: `stopped: ${e.message ?? 'automatic stop'}` });
          break;
        case 'HoldTimerExpires':
          sendNotification(st, ErrorCode.HoldTimerExpired, 0);
          toIdle(st, now, { counter: 'inc', reason: 'sent Hold Timer Expired (4/0)' });
          break;
        case 'SendHoldTimerExpires':
          sendNotification(st, SEND_HOLD_TIMER_EXPIRED, 0);
          toIdle(st, now, {
            counter: 'inc',
            reason: 'sent Send Hold Timer Expired (8/0): the peer stopped reading',
          });
          break;
        case 'KeepaliveTimerExpires':
          if (fsm.state === FsmState.OpenSent) fsmError(st, now, e);
          else keepaliveTimer(st);
          break;
        case 'TcpCrAcked':
        case 'TcpConnectionConfirmed':
          // A second connection: the peer layer runs a second FSM and resolves the collision.
          break;
        case 'TcpConnectionFails':
          if (fsm.state === FsmState.OpenSent) {
            // §8.2.2 OpenSent event 18: close, restart ConnectRetry, listen: Active.
            st.out.push({ kind: 'close' });
            st.out.push({ kind: 'cancel', timer: 'hold' });
            armConnectRetry(st);
            go(st, FsmState.Active);
          } else {
            toIdle(st, now, { counter: 'inc', reason: `connection lost${e.reason ? `: ${e.reason}` : ''}` });
          }
          break;
        case 'BgpOpen':
          if (fsm.state === FsmState.OpenSent) openReceived(st, e.open, now);
          else fsmError(st, now, e);
          break;
        case 'UpdateMsgErr':
          if (!est) {
            fsmError(st, now, e);
            break;
          }
          sendNotification(st, e.error.code, e.error.subcode, e.error.data);
          toIdle(st, now, { counter: 'inc', reason: errorReason(e.error) });
          break;
        case 'BgpHeaderErr':
        case 'BgpOpenMsgErr':
          // §6: the NOTIFICATION names the error, in Established too (§8.2.2 would say 5/3).
          sendNotification(st, e.error.code, e.error.subcode, e.error.data);
          toIdle(st, now, { counter: 'inc', reason: errorReason(e.error) });
          break;
        case 'OpenCollisionDump':
          sendCease(st, CeaseSubcode.ConnectionCollisionResolution);
          toIdle(st, now, { counter: 'inc', reason: 'connection collision: the other connection wins' });
          break;
        case 'NotifMsgVerErr':
          // §8.2.2: counted in Established only.
          notificationReceived(st, now, e.notification, est ? 'inc' : 'keep');
          break;
        case 'NotifMsg':
          // Never answered with a NOTIFICATION (§8.2.2 OpenSent would send 5/1 here; pointless).
          notificationReceived(st, now, e.notification, 'inc');
          break;
        case 'KeepAliveMsg':
          if (fsm.state === FsmState.OpenSent) {
            fsmError(st, now, e);
          } else {
            restartHold(st);
            if (fsm.state === FsmState.OpenConfirm) {
              st.s = { ...st.s, establishedAt: now };
              go(st, FsmState.Established);
              st.out.push({
                kind: 'established',
                ctx: st.s.ctx!,
                peerOpen: st.s.peerOpen!,
                holdTime: st.s.holdTime!,
                keepalive: st.s.keepaliveTime!,
              });
            }
          }
          break;
        case 'UpdateMsg':
          if (!est) fsmError(st, now, e);
          else {
            restartHold(st);
            st.out.push({ kind: 'update', update: e.update });
          }
          break;
        case 'RouteRefreshMsg':
          if (!est) fsmError(st, now, e);
          else {
            restartHold(st);
            st.out.push({ kind: 'refresh', refresh: e.refresh });
          }
          break;
        default:
          // ConnectRetryTimerExpires, IdleHoldTimerExpires: unexpected here.
          fsmError(st, now, e);
          break;
      }
      break;
    }
  }
  return { state: st.s, actions: st.out };
}
