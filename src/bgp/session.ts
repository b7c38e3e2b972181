/**
 * One BGP connection: the FSM of fsm.ts bound to a TCP socket and to timers on a Clock (clock.ts:
 * the event loop's, or a fake one in tests). This, the listener and the speaker's wiring are the
 * only modules of bgp/ that do I/O.
 *
 * What it does:
 * - Turns FSM actions into socket work (dial with TCP_NODELAY from an optional local address,
 *   write, close after flushing the last NOTIFICATION) and timers (one per name, re-armed by
 *   replacement, all cancelled when the session is disposed; the hold timer, restarted by every
 *   message, moves its deadline instead).
 * - Turns socket bytes into FSM events: the framer cuts messages, the codec decodes them under
 *   the session's negotiated context (4-octet AS, ADD-PATH, extended messages from the OPENs),
 *   and each error goes to the FSM as the event RFC 4271 §8.1.4 names (BGPHeaderErr for the
 *   header, BGPOpenMsgErr for the OPEN, UpdateMsgErr for an UPDATE that needs a session reset).
 *   One event skips the FSM: an UPDATE in Established, for which the FSM's answer is always the
 *   same (restart the hold timer, pass the UPDATE on), is acted on directly. A table is thousands
 *   of UPDATEs, and the event, the step and its actions were five objects each.
 * - Respects backpressure: `send` reports whether the socket took the bytes without queueing;
 *   the caller stops producing until 'drain'. While written bytes wait unread the send hold timer
 *   of RFC 9687 runs (default max(8 min, 2 x hold time)); a peer that stops reading is dropped
 *   rather than buffered forever.
 *
 * What it does not do: decide which connection of a colliding pair survives, or what to
 * advertise — that is the peer layer (peer.ts) and the speaker, which see this class through its
 * callbacks.
 */
import { Socket } from 'node:net';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { normalizeAddress } from './host.js';
import {
  createFsm,
  type Fsm,
  type FsmAction,
  type FsmEvent,
  type FsmOptions,
  FsmState,
  step,
  type Timer,
} from './fsm.js';
import { DEFAULT_CONTEXT } from './wire/context.js';
import { ErrorCode, MsgType, OpenSubcode } from './wire/constants.js';
import { BgpError } from './wire/error.js';
import { Framer } from './wire/framer.js';
import { decodeMessage } from './wire/message.js';
import type { DecodedUpdate } from './wire/update.js';

export interface SessionLog {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface SessionCallbacks {
  /** Any state change (for status and logs). */
  state?(s: Session, from: FsmState, to: FsmState): void;
  /** The peer's OPEN was accepted (OpenConfirm): the moment to check for a collision. */
  openConfirm?(s: Session): void;
  established?(s: Session): void;
  down?(s: Session, info: Extract<FsmAction, { kind: 'down' }>): void;
  update?(s: Session, update: Extract<FsmAction, { kind: 'update' }>['update']): void;
  refresh?(s: Session, refresh: Extract<FsmAction, { kind: 'refresh' }>['refresh']): void;
  /** A NOTIFICATION went out (for `twill status`'s last error). */
  notificationSent?(s: Session, n: NonNullable<Extract<FsmAction, { kind: 'send' }>['notification']>): void;
  /** The socket can take more after `send` returned false. */
  drain?(s: Session): void;
  /** Every message of a chunk read from the socket (`bytes` long) has been handled. */
  readDone?(s: Session, bytes: number): void;
}

export interface SessionOptions {
  fsm: FsmOptions;
  remote: { address: string; port: number };
  localAddress?: string;
  /** 'out': we dial; 'in': built around an accepted socket. */
  direction: 'out' | 'in';
  socket?: Socket;
  log: SessionLog;
  callbacks: SessionCallbacks;
  /** RFC 9687 send hold time; default max(480 s, 2 x negotiated hold time). */
  sendHoldMs?: number;
  seed?: number;
  /** Time and timers; default the event loop's (clock.ts). */
  clock?: Clock;
}

/**
 * UPDATE messages received and sent by every session of this process (one speaker per agent),
 * for the agent's /metrics. Monotonic; never reset.
 */
export const sessionCounters = { updatesIn: 0, updatesOut: 0 };

/** The number of UPDATE messages in `buf`, a run of whole BGP messages. */
function countUpdates(buf: Buffer): number {
  let n = 0;
  for (let off = 0; off + 19 <= buf.length; ) {
    const len = buf.readUInt16BE(off + 16);
    if (buf[off + 18] === MsgType.Update) n++;
    if (len < 19) break;
    off += len;
  }
  return n;
}

export class Session {
  fsm: Fsm;
  readonly direction: 'out' | 'in';
  readonly remote: { address: string; port: number };
  private socket: Socket | undefined;
  private readonly framer = new Framer();
  private readonly timers = new Map<Timer | 'sendHold', TimerHandle>();
  private readonly clock: Clock;
  private disposed = false;
  /** Bytes the socket holds unsent; > 0 arms the send hold timer. */
  private blocked = false;

  constructor(private readonly opts: SessionOptions) {
    this.direction = opts.direction;
    this.remote = opts.remote;
    this.clock = opts.clock ?? systemClock;
    this.fsm = createFsm(opts.fsm, opts.seed ?? (Math.random() * 0x100000000) >>> 0);
    if (opts.socket) this.attach(opts.socket);
  }

  get state(): FsmState {
    return this.fsm.state;
  }

  /** Start: an outgoing session dials (or listens, if passive); an incoming one is already up. */
  start(): void {
    if (this.direction === 'in') {
      this.feed({ type: 'ManualStartPassive' });
      this.feed({ type: 'TcpConnectionConfirmed' });
    } else {
      this.feed({ type: this.opts.fsm.passive ? 'ManualStartPassive' : 'ManualStart' });
    }
  }

  /** Hand an accepted connection to a session that is waiting in Active or Connect. */
  adopt(socket: Socket): void {
    this.dropSocket();
    this.attach(socket);
    this.feed({ type: 'TcpConnectionConfirmed' });
  }

  stop(subcode?: number, message?: string): void {
    this.feed({ type: 'ManualStop', subcode, message });
  }

  /** Events from the peer layer (collision resolution, automatic stop). */
  feed(e: FsmEvent): void {
    if (this.disposed) return;
    const { state, actions } = step(this.fsm, e, this.readAt ?? this.clock.now());
    this.fsm = state;
    for (const a of actions) this.act(a);
  }

  /** Write bytes in Established; false means the socket is queueing: wait for 'drain'. */
  send(buf: Buffer): boolean {
    const s = this.socket;
    if (!s || this.fsm.state !== FsmState.Established || s.destroyed) return false;
    sessionCounters.updatesOut += countUpdates(buf);
    const ok = s.write(buf);
    if (!ok) this.armSendHold();
    return ok;
  }

  get writable(): boolean {
    return !!this.socket && !this.socket.destroyed && !this.blocked;
  }

  get localAddress(): string | undefined {
    const sock = this.socket;
    // Asked for every UPDATE: read and normalised once per socket.
    if (sock !== undefined && this.localFor === sock) return this.local;
    if (!sock?.localAddress) return undefined;
    this.localFor = sock;
    this.local = normalizeAddress(sock.localAddress);
    return this.local;
  }
  private localFor: Socket | undefined;
  private local: string | undefined;

  /** Stop everything and forget the socket; the FSM is left as it is. */
  dispose(): void {
    this.disposed = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.dropSocket();
  }

  private act(a: FsmAction): void {
    if (this.disposed) return;
    const cb = this.opts.callbacks;
    switch (a.kind) {
      case 'connect':
        this.dial();
        break;
      case 'close':
        this.dropSocket();
        break;
      case 'send':
        if (this.socket && !this.socket.destroyed) {
          if (!this.socket.write(a.buf)) this.armSendHold();
        }
        if (a.notification) cb.notificationSent?.(this, a.notification);
        break;
      case 'arm': {
        if (a.timer === 'hold') {
          this.armHold(a.ms);
          break;
        }
        this.clearTimer(a.timer);
        const t = this.clock.after(a.ms, () => {
          this.timers.delete(a.timer);
          this.feed({ type: TIMER_EVENTS[a.timer] } as FsmEvent);
        });
        this.timers.set(a.timer, t);
        break;
      }
      case 'cancel':
        this.clearTimer(a.timer);
        break;
      case 'state':
        if (a.to === FsmState.OpenConfirm) {
          cb.state?.(this, a.from, a.to);
          cb.openConfirm?.(this);
          return;
        }
        cb.state?.(this, a.from, a.to);
        break;
      case 'established':
        this.framer.setMaxLength(a.ctx.maxLength);
        cb.established?.(this);
        break;
      case 'down':
        this.clearTimer('sendHold');
        cb.down?.(this, a);
        break;
      case 'update':
        cb.update?.(this, a.update);
        break;
      case 'refresh':
        cb.refresh?.(this, a.refresh);
        break;
    }
  }

  /**
   * Every UPDATE and KEEPALIVE restarts the hold timer. Rather than a new timer each time, the
   * deadline moves and the running timer, when it fires, waits out what is left; only a deadline
   * earlier than the running timer's (a shorter hold time) replaces it.
   */
  private armHold(ms: number): void {
    const now = this.readAt ?? this.clock.now();
    this.holdDue = now + ms;
    if (this.timers.has('hold') && this.holdFiresAt <= this.holdDue) return;
    this.clearTimer('hold');
    this.startHold(ms, now);
  }
  private holdDue = 0;
  private holdFiresAt = 0;

  private startHold(ms: number, now: number): void {
    this.holdFiresAt = now + ms;
    const t = this.clock.after(ms, () => {
      this.timers.delete('hold');
      const at = this.clock.now();
      if (this.holdDue > at) this.startHold(this.holdDue - at, at);
      else this.feed({ type: 'HoldTimerExpires' });
    });
    this.timers.set('hold', t);
  }

  private clearTimer(name: Timer | 'sendHold'): void {
    const t = this.timers.get(name);
    if (t) {
      t.cancel();
      this.timers.delete(name);
    }
  }

  private armSendHold(): void {
    this.blocked = true;
    if (this.timers.has('sendHold')) return;
    const hold = (this.fsm.holdTime ?? 90) * 2000;
    const ms = this.opts.sendHoldMs ?? Math.max(480_000, hold);
    const t = this.clock.after(ms, () => {
      this.timers.delete('sendHold');
      this.feed({ type: 'SendHoldTimerExpires' });
    });
    this.timers.set('sendHold', t);
  }

  private dial(): void {
    this.dropSocket();
    const s = new Socket();
    this.attach(s);
    s.connect({ host: this.remote.address, port: this.remote.port, localAddress: this.opts.localAddress });
    s.once('connect', () => {
      if (this.socket === s) this.feed({ type: 'TcpCrAcked' });
    });
  }

  private attach(s: Socket): void {
    this.socket = s;
    this.blocked = false;
    s.setNoDelay(true);
    s.on('data', (chunk: Buffer) => {
      if (this.socket !== s) return;
      this.receive(chunk);
      this.opts.callbacks.readDone?.(this, chunk.length);
    });
    s.on('drain', () => {
      if (this.socket !== s) return;
      this.blocked = false;
      this.clearTimer('sendHold');
      this.opts.callbacks.drain?.(this);
    });
    s.on('error', (err) => {
      if (this.socket !== s) return;
      this.opts.log.debug({ peer: this.remote.address, err: err.message }, 'socket error');
    });
    s.on('close', () => {
      if (this.socket !== s) return;
      this.socket = undefined;
      this.feed({ type: 'TcpConnectionFails', reason: 'connection closed' });
    });
  }

  private dropSocket(): void {
    const s = this.socket;
    if (!s) return;
    this.socket = undefined;
    this.clearTimer('sendHold');
    // Flush what is queued (a NOTIFICATION) and close; do not wait on a peer that stopped reading.
    s.end();
    const t = this.clock.after(2000, () => s.destroy());
    s.once('close', () => t.cancel());
  }

  /**
   * The time a read began, for the messages it holds: one clock read per read, not two per
   * message (a read holds hundreds of UPDATEs when a table of many attribute sets arrives). Their
   * timers start at most the read's handling time early.
   */
  private readAt: number | undefined;

  private receive(chunk: Buffer): void {
    this.readAt = this.clock.now();
    try {
      this.receiveFrames(chunk);
    } finally {
      this.readAt = undefined;
    }
  }

  private receiveFrames(chunk: Buffer): void {
    this.framer.push(chunk);
    for (;;) {
      if (this.disposed || !this.socket) return;
      let frame: ReturnType<Framer['next']>;
      try {
        frame = this.framer.next();
      } catch (err) {
        this.feed({ type: 'BgpHeaderErr', error: err as BgpError });
        return;
      }
      if (!frame) return;
      const type = frame.type;
      let ev: FsmEvent | undefined;
      let update: DecodedUpdate | undefined;
      try {
        const m = decodeMessage(frame, this.fsm.ctx ?? DEFAULT_CONTEXT);
        switch (m.type) {
          case MsgType.Open:
            ev = { type: 'BgpOpen', open: m };
            break;
          case MsgType.Update:
            sessionCounters.updatesIn++;
            if (this.fsm.state === FsmState.Established) update = m;
            else ev = { type: 'UpdateMsg', update: m };
            break;
          case MsgType.Notification:
            ev =
              m.code === ErrorCode.OpenMessage && m.subcode === OpenSubcode.UnsupportedVersionNumber
                ? { type: 'NotifMsgVerErr', notification: m }
                : { type: 'NotifMsg', notification: m };
            break;
          case MsgType.Keepalive:
            ev = { type: 'KeepAliveMsg' };
            break;
          case MsgType.RouteRefresh:
            ev = { type: 'RouteRefreshMsg', refresh: m };
            break;
        }
      } catch (err) {
        if (!(err instanceof BgpError)) throw err;
        ev =
          type === MsgType.Open
            ? { type: 'BgpOpenMsgErr', error: err }
            : type === MsgType.Update
              ? { type: 'UpdateMsgErr', error: err }
              : { type: 'BgpHeaderErr', error: err };
      }
      if (update !== undefined) {
        // What step() answers for an UPDATE in Established (fsm.ts), acted on without making
        // the event and the actions: the hold timer restarted, the UPDATE passed on. A table is
        // thousands of these.
        const hold = this.fsm.holdTime;
        if (hold) this.armHold(hold * 1000);
        this.opts.callbacks.update?.(this, update);
      } else if (ev !== undefined) this.feed(ev);
    }
  }
}

const TIMER_EVENTS: Record<Timer, FsmEvent['type']> = {
  connectRetry: 'ConnectRetryTimerExpires',
  hold: 'HoldTimerExpires',
  keepalive: 'KeepaliveTimerExpires',
  idleHold: 'IdleHoldTimerExpires',
};
