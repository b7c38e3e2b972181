/**
 * One BFD session (RFC 5880, asynchronous mode; RFC 5881 single hop runs it over UDP 3784),
 * sans-IO: packets and the time come in as arguments, packets to send and state changes go out
 * as values, and `nextDeadline()` says when to call `tick()` again. The shell (timers, the UDP
 * socket, TTL 255) is another module's; this one only follows the RFC.
 *
 * What it follows:
 * - Reception, §6.8.6, step by step: the session-free checks are packet.ts's; here: a zero Your
 *   Discriminator is accepted only in Down or AdminDown; the remote's discriminator, state,
 *   demand bit and Required Min RX are taken; a Final ends our Poll Sequence; the detection
 *   timer restarts; then the state table (AdminDown received: Down with diag 3 unless already
 *   Down; Down + Down -> Init; Down + Init -> Up; Init + Init/Up -> Up; Up + Down -> Down with
 *   diag 3); a Poll is answered at once with a Final (never P and F together).
 * - Timers, §6.8.2-§6.8.4: packets every max(our Desired Min TX, the remote's Required Min RX),
 *   less 0-25 % jitter (10-25 % with Detect Mult 1); none while the remote's Required Min RX is 0,
 *   nor from a passive session before the remote's discriminator is known, nor while the remote
 *   asks for demand mode and both are Up. Detection time: the remote's Detect Mult times
 *   max(our Required Min RX, the remote's Desired Min TX); on expiry in Init or Up the session
 *   goes Down with diag 1 and forgets the remote's discriminator.
 * - Slow start and timer changes, §6.8.3: while not Up, Desired Min TX is at least 1 s; going Up
 *   (or a new configuration while Up) starts a Poll Sequence, P in every packet until a Final
 *   comes back; a larger Desired Min TX is used for our own sending, and a smaller Required Min
 *   RX for detection, only once the Poll Sequence ends.
 * - Administrative down: state AdminDown, diag 7, sent and kept until enabled again (Down).
 * Departures: a state change is sent at once rather than at the next periodic slot, as BIRD and
 * FRR do, so the peer learns of it without waiting up to an interval. Echo mode, demand mode of
 * our own and authentication are not implemented (Required Min Echo RX is 0, D and A are 0).
 *
 * Time is in milliseconds (any monotonic origin); intervals on the wire are microseconds.
 */
import { BfdState, type ControlPacket, Diag } from './packet.js';

export interface SessionConfig {
  /** Our discriminator: nonzero, unique among this system's sessions. */
  localDiscr: number;
  /** Microseconds; used once Up (at least 1 s before). */
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  detectMult: number;
  /** Passive role (§6.1): send nothing until the remote has spoken. */
  passive?: boolean;
  /** [0, 1): jitter. Default Math.random. */
  random?: () => number;
}

export type SessionOutput =
  | { type: 'send'; packet: ControlPacket }
  | { type: 'state'; from: BfdState; to: BfdState; diag: Diag };

/** §6.8.3: "not less than one second" while not Up. */
export const SLOW_TX_US = 1_000_000;

export class BfdSession {
  private cfg: SessionConfig;
  private readonly random: () => number;

  state: BfdState = BfdState.Down;
  remoteState: BfdState = BfdState.Down;
  localDiag: Diag = Diag.None;
  remoteDiscr = 0;
  /** §6.8.1: initially 1 µs. */
  remoteMinRxUs = 1;
  remoteDesiredMinTxUs = 0;
  remoteDetectMult = 0;
  remoteDemand = false;

  /** What we put in Desired Min TX and Required Min RX. */
  private advertisedTxUs = SLOW_TX_US;
  private advertisedRxUs: number;
  /** What our sending and our detection use (they lag the advertised values during a Poll). */
  private txInUseUs = SLOW_TX_US;
  private rxForDetectUs: number;
  private polling = false;

  private nextTxAt: number | undefined;
  private detectAt: number | undefined;

  /** Counters for status and metrics. */
  readonly counters = { received: 0, sent: 0, discarded: 0, transitions: 0 };
  lastDiscard: string | undefined;

  constructor(cfg: SessionConfig, now: number) {
    checkConfig(cfg);
    this.cfg = { ...cfg };
    this.random = cfg.random ?? Math.random;
    this.advertisedRxUs = cfg.requiredMinRxUs;
    this.rxForDetectUs = cfg.requiredMinRxUs;
    this.scheduleTx(now);
  }

  get localDiscr(): number {
    return this.cfg.localDiscr;
  }

  get config(): Readonly<SessionConfig> {
    return this.cfg;
  }

  /** Whether a Poll Sequence is under way (P in our packets). */
  get pollActive(): boolean {
    return this.polling;
  }

  /** The detection time in ms (0 before the remote has been heard). */
  get detectTimeMs(): number {
    if (this.remoteDetectMult === 0) return 0;
    return (this.remoteDetectMult * Math.max(this.rxForDetectUs, this.remoteDesiredMinTxUs)) / 1000;
  }

  /** The interval we send at, in ms, before jitter; undefined when we must not send. */
  get txIntervalMs(): number | undefined {
    if (this.cfg.passive && this.remoteDiscr === 0) return undefined;
    if (this.remoteMinRxUs === 0) return undefined;
    if (this.remoteDemand && this.state === BfdState.Up && this.remoteState === BfdState.Up) return undefined;
    return Math.max(this.txInUseUs, this.remoteMinRxUs) / 1000;
  }

  /** When `tick` must run next (ms), or undefined when nothing is timed. */
  nextDeadline(): number | undefined {
    const a = this.nextTxAt;
    const b = this.detectAt;
    if (a === undefined) return b;
    if (b === undefined) return a;
    return Math.min(a, b);
  }

  /** Run the timers that are due at `now`. */
  tick(now: number): SessionOutput[] {
    const out: SessionOutput[] = [];
    if (this.detectAt !== undefined && now >= this.detectAt) {
      this.detectAt = undefined;
      this.remoteDiscr = 0;
      if (this.state === BfdState.Init || this.state === BfdState.Up)
        this.transition(BfdState.Down, Diag.ControlDetectionTimeExpired, now, out);
    }
    if (this.nextTxAt !== undefined && now >= this.nextTxAt) {
      out.push(this.send(false));
      this.scheduleTx(now);
    }
    return out;
  }

  /** A Control packet for this session (already selected by discriminator or address). */
  receive(p: ControlPacket, now: number): SessionOutput[] {
    const out: SessionOutput[] = [];
    if (p.yourDiscr === 0 && this.state !== BfdState.Down && this.state !== BfdState.AdminDown) {
      this.discard('Your Discriminator is zero outside Down and AdminDown');
      return out;
    }
    if (p.yourDiscr !== 0 && p.yourDiscr !== this.cfg.localDiscr) {
      this.discard(`Your Discriminator ${p.yourDiscr} is not ours (${this.cfg.localDiscr})`);
      return out;
    }
    this.counters.received++;
    this.remoteDiscr = p.myDiscr;
    this.remoteState = p.state;
    this.remoteDemand = p.demand;
    this.remoteMinRxUs = p.requiredMinRx;
    this.remoteDesiredMinTxUs = p.desiredMinTx;
    this.remoteDetectMult = p.detectMult;
    if (p.final && this.polling) {
      this.polling = false;
      this.txInUseUs = this.advertisedTxUs;
      this.rxForDetectUs = this.advertisedRxUs;
    }
    this.detectAt = now + this.detectTimeMs;

    if (this.state === BfdState.AdminDown) return out;
    if (p.state === BfdState.AdminDown) {
      if (this.state !== BfdState.Down)
        this.transition(BfdState.Down, Diag.NeighborSignaledSessionDown, now, out);
    } else if (this.state === BfdState.Down) {
      if (p.state === BfdState.Down) this.transition(BfdState.Init, Diag.None, now, out);
      else if (p.state === BfdState.Init) this.transition(BfdState.Up, Diag.None, now, out);
    } else if (this.state === BfdState.Init) {
      if (p.state === BfdState.Init || p.state === BfdState.Up)
        this.transition(BfdState.Up, Diag.None, now, out);
    } else if (p.state === BfdState.Down) {
      this.transition(BfdState.Down, Diag.NeighborSignaledSessionDown, now, out);
    }
    if (p.poll) out.push(this.send(true));
    // What the remote asks for may start, stop or speed up our sending.
    const iv = this.txIntervalMs;
    if (iv === undefined) this.nextTxAt = undefined;
    else if (this.nextTxAt === undefined || this.nextTxAt > now + iv) this.scheduleTx(now);
    return out;
  }

  /** AdminDown (true) or back to Down (false). */
  setAdminDown(down: boolean, now: number): SessionOutput[] {
    const out: SessionOutput[] = [];
    if (down && this.state !== BfdState.AdminDown) {
      this.transition(BfdState.AdminDown, Diag.AdministrativelyDown, now, out);
      this.detectAt = undefined;
    } else if (!down && this.state === BfdState.AdminDown) {
      this.transition(BfdState.Down, Diag.None, now, out);
    }
    return out;
  }

  /** New intervals or multiplier; while Up this starts a Poll Sequence (§6.8.3). */
  reconfigure(
    c: Pick<SessionConfig, 'desiredMinTxUs' | 'requiredMinRxUs' | 'detectMult'>,
    now: number,
  ): void {
    checkConfig({ ...this.cfg, ...c });
    this.cfg = { ...this.cfg, ...c };
    this.applyIntervals(now);
  }

  // ---- internals ----

  private transition(to: BfdState, diag: Diag, now: number, out: SessionOutput[]): void {
    const from = this.state;
    this.state = to;
    this.localDiag = diag;
    this.counters.transitions++;
    out.push({ type: 'state', from, to, diag });
    this.applyIntervals(now);
    // Tell the remote at once (see the header), then carry on periodically.
    if (this.txIntervalMs !== undefined || to === BfdState.AdminDown) {
      this.nextTxAt = now;
    }
  }

  /** The advertised and in-use intervals for the current state and configuration. */
  private applyIntervals(now: number): void {
    const tx =
      this.state === BfdState.Up ? this.cfg.desiredMinTxUs : Math.max(SLOW_TX_US, this.cfg.desiredMinTxUs);
    const rx = this.cfg.requiredMinRxUs;
    if (tx === this.advertisedTxUs && rx === this.advertisedRxUs) return;
    const up = this.state === BfdState.Up;
    // A faster rate of ours, and a longer wait for theirs, are safe at once; the other way round
    // waits for the remote to acknowledge (the Poll's Final) while Up.
    if (!up || tx < this.txInUseUs) this.txInUseUs = tx;
    if (!up || rx > this.rxForDetectUs) this.rxForDetectUs = rx;
    this.advertisedTxUs = tx;
    this.advertisedRxUs = rx;
    if (up) this.polling = true;
    else this.polling = false;
    if (this.nextTxAt !== undefined) {
      const iv = this.txIntervalMs;
      if (iv !== undefined && this.nextTxAt > now + iv) this.scheduleTx(now);
    }
  }

  private scheduleTx(now: number): void {
    const iv = this.txIntervalMs;
    if (iv === undefined && this.state !== BfdState.AdminDown) {
      this.nextTxAt = undefined;
      return;
    }
    const base = iv ?? this.txInUseUs / 1000;
    // §6.8.7: 75-100 % of the interval; at most 90 % with Detect Mult 1.
    const max = this.cfg.detectMult === 1 ? 0.9 : 1;
    this.nextTxAt = now + base * (0.75 + this.random() * (max - 0.75));
  }

  private send(final: boolean): SessionOutput {
    this.counters.sent++;
    return {
      type: 'send',
      packet: {
        diag: this.localDiag,
        state: this.state,
        poll: this.polling && !final,
        final,
        cpi: false,
        auth: false,
        demand: false,
        multipoint: false,
        detectMult: this.cfg.detectMult,
        myDiscr: this.cfg.localDiscr,
        yourDiscr: this.remoteDiscr,
        desiredMinTx: this.advertisedTxUs,
        requiredMinRx: this.advertisedRxUs,
        requiredMinEchoRx: 0,
      },
    };
  }

  private discard(why: string): void {
    this.counters.discarded++;
    this.lastDiscard = why;
  }
}

function checkConfig(c: SessionConfig): void {
  const bad = (m: string) => {
    throw new RangeError(`BFD session: ${m}`);
  };
  if (!Number.isInteger(c.localDiscr) || c.localDiscr < 1 || c.localDiscr > 0xffffffff)
    bad('the local discriminator must be 1..2^32-1');
  if (!Number.isInteger(c.detectMult) || c.detectMult < 1 || c.detectMult > 255)
    bad('detect multiplier must be 1..255');
  for (const [k, v] of [
    ['desired min tx', c.desiredMinTxUs],
    ['required min rx', c.requiredMinRxUs],
  ] as const)
    if (!Number.isInteger(v) || v < 1 || v > 0xffffffff) bad(`${k} must be 1..2^32-1 µs`);
}
