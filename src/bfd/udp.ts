/**
 * BFD over UDP, single hop (RFC 5881): the shell around session.ts. One endpoint per local
 * address: a socket bound to <address>:3784 receives every Control packet for it, and each
 * session sends from a socket of its own, bound to <address>:<a port in 49152-65535> with TTL
 * 255 (§4: "MUST be in the range 49152 through 65535"; §5: TTL 255). A received packet goes to
 * the session its Your Discriminator names, or, when that is zero, to the session with its
 * source address (§6.3 of RFC 5880); others are counted and dropped. One timer per session,
 * set to the session's next deadline.
 *
 * Received TTL: RFC 5881 §5 asks that packets with a TTL other than 255 be dropped. Node's
 * dgram cannot read a datagram's TTL, so the endpoint has netfilter drop them before they reach
 * its socket: at start it inserts `INPUT -d <address> -p udp --dport 3784 -m ttl ! --ttl-eq 255
 * -j DROP` (`ttlRule()`; checked first, so a rule left by a crash is not doubled) and deletes it
 * at stop. Without root or iptables the endpoint runs without it and says so (`ttlEnforced`).
 */
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { type BfdState, decodeControl, encodeControl, STATE_NAMES } from './packet.js';
import { BfdSession, type SessionConfig, type SessionOutput } from './session.js';

export const BFD_PORT = 3784;
const SOURCE_PORTS: [number, number] = [49152, 65535];

export interface PeerOptions {
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  detectMult: number;
  passive?: boolean;
}

export interface StateChange {
  peer: string;
  from: BfdState;
  to: BfdState;
  diag: number;
  /** The remote's state as last received: AdminDown means it was switched off, not lost. */
  remoteState: BfdState;
}

export interface PeerStatus {
  peer: string;
  state: (typeof STATE_NAMES)[number];
  remoteState: (typeof STATE_NAMES)[number];
  localDiscr: number;
  remoteDiscr: number;
  diag: number;
  detectTimeMs: number;
  txIntervalMs: number | undefined;
  received: number;
  sent: number;
  transitions: number;
}

/** The netfilter rule that enforces RFC 5881's received TTL of 255 (iptables arguments). */
export function ttlRule(local: string): string[] {
  return [
    '-d',
    local,
    '-p',
    'udp',
    '--dport',
    String(BFD_PORT),
    '-m',
    'ttl',
    '!',
    '--ttl-eq',
    '255',
    '-j',
    'DROP',
  ];
}

function iptables(args: string[]): Promise<boolean> {
  return new Promise((resolve) =>
    execFile('iptables', ['-w', '5', ...args], { timeout: 10_000 }, (err) => resolve(err === null)),
  );
}

interface Entry {
  peer: string;
  session: BfdSession;
  tx: Socket;
  timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires. */
  timerAt: number;
}

export class BfdEndpoint {
  private rx: Socket | undefined;
  private readonly byPeer = new Map<string, Entry>();
  private readonly byDiscr = new Map<number, Entry>();
  private nextDiscr: number;
  private readonly listeners: ((c: StateChange) => void)[] = [];
  /** Packets that named no session of ours, or did not decode. */
  readonly dropped = { undecodable: 0, unknown: 0 };
  lastDrop: string | undefined;

  constructor(
    readonly localAddress: string,
    private readonly now: () => number = () => performance.now(),
  ) {
    // Discriminators unique per endpoint; random start so a restart does not reuse the last ones.
    this.nextDiscr = 1 + Math.floor(Math.random() * 0x3fffffff);
  }

  onStateChange(fn: (c: StateChange) => void): void {
    this.listeners.push(fn);
  }

  /** Whether the received-TTL rule is in place (see the header); the reason when not. */
  ttlEnforced: true | string = 'not started';

  async start(): Promise<void> {
    const rule = ttlRule(this.localAddress);
    if (await iptables(['-C', 'INPUT', ...rule])) this.ttlEnforced = true;
    else
      this.ttlEnforced = (await iptables(['-I', 'INPUT', '1', ...rule]))
        ? true
        : 'iptables failed (not root?)';
    const rx = createSocket({ type: 'udp4', reuseAddr: true });
    rx.on('message', (msg, rinfo) => this.receive(msg, rinfo.address));
    rx.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      rx.once('error', reject);
      rx.bind(BFD_PORT, this.localAddress, () => {
        rx.off('error', reject);
        resolve();
      });
    });
    this.rx = rx;
  }

  async addPeer(peer: string, o: PeerOptions): Promise<void> {
    if (this.byPeer.has(peer)) return;
    const tx = await this.sourceSocket();
    const cfg: SessionConfig = { localDiscr: this.nextDiscr++, ...o };
    const e: Entry = { peer, session: new BfdSession(cfg, this.now()), tx, timer: undefined, timerAt: 0 };
    this.byPeer.set(peer, e);
    this.byDiscr.set(cfg.localDiscr, e);
    this.arm(e);
  }

  /** Say AdminDown to the peer (as BIRD and FRR do when a session is deconfigured), then go. */
  async removePeer(peer: string): Promise<void> {
    const e = this.byPeer.get(peer);
    if (!e) return;
    this.byPeer.delete(peer);
    this.byDiscr.delete(e.session.localDiscr);
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    const out = e.session.setAdminDown(true, this.now()).concat(e.session.tick(this.now()));
    // The socket closes once the AdminDown packet is out, not before.
    await Promise.all(
      out.map((o) =>
        o.type === 'send'
          ? new Promise<void>((resolve) =>
              e.tx.send(encodeControl(o.packet), BFD_PORT, e.peer, () => resolve()),
            )
          : Promise.resolve(),
      ),
    );
    for (const o of out)
      if (o.type === 'state')
        for (const fn of this.listeners)
          fn({ peer, from: o.from, to: o.to, diag: o.diag, remoteState: e.session.remoteState });
    e.tx.close();
  }

  state(peer: string): BfdState | undefined {
    return this.byPeer.get(peer)?.session.state;
  }

  status(): PeerStatus[] {
    return [...this.byPeer.values()].map(({ peer, session: s }) => ({
      peer,
      state: STATE_NAMES[s.state],
      remoteState: STATE_NAMES[s.remoteState],
      localDiscr: s.localDiscr,
      remoteDiscr: s.remoteDiscr,
      diag: s.localDiag,
      detectTimeMs: s.detectTimeMs,
      txIntervalMs: s.txIntervalMs,
      received: s.counters.received,
      sent: s.counters.sent,
      transitions: s.counters.transitions,
    }));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.byPeer.keys()].map((peer) => this.removePeer(peer)));
    this.rx?.close();
    this.rx = undefined;
    if (this.ttlEnforced === true) await iptables(['-D', 'INPUT', ...ttlRule(this.localAddress)]);
    this.ttlEnforced = 'stopped';
  }

  // ---- internals ----

  private receive(msg: Buffer, from: string): void {
    const p = decodeControl(msg);
    if ('error' in p) {
      this.dropped.undecodable++;
      this.lastDrop = `from ${from}: ${p.error}`;
      return;
    }
    const e = p.yourDiscr !== 0 ? this.byDiscr.get(p.yourDiscr) : this.byPeer.get(from);
    if (!e || e.peer !== from) {
      this.dropped.unknown++;
      this.lastDrop = `from ${from}: no session (Your Discriminator ${p.yourDiscr})`;
      return;
    }
    this.handle(e, e.session.receive(p, this.now()));
    this.arm(e);
  }

  private handle(e: Entry, out: SessionOutput[]): void {
    for (const o of out) {
      if (o.type === 'send') e.tx.send(encodeControl(o.packet), BFD_PORT, e.peer, () => {});
      else
        for (const fn of this.listeners)
          fn({ peer: e.peer, from: o.from, to: o.to, diag: o.diag, remoteState: e.session.remoteState });
    }
  }

  /**
   * One timer per session, at its next deadline. A received packet usually moves the deadline
   * later (the detection timer restarts), so a timer already armed for no later than the new
   * deadline is kept: it fires, finds nothing due or little, and arms again. That spares a
   * clearTimeout and setTimeout per packet.
   */
  private arm(e: Entry): void {
    const at = e.session.nextDeadline();
    if (at === undefined || !this.byPeer.has(e.peer)) {
      if (e.timer) clearTimeout(e.timer);
      e.timer = undefined;
      return;
    }
    if (e.timer && e.timerAt <= at) return;
    if (e.timer) clearTimeout(e.timer);
    e.timerAt = at;
    e.timer = setTimeout(
      () => {
        e.timer = undefined;
        this.handle(e, e.session.tick(this.now()));
        this.arm(e);
      },
      Math.max(0, at - this.now()),
    );
  }

  private async sourceSocket(): Promise<Socket> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = SOURCE_PORTS[0] + Math.floor(Math.random() * (SOURCE_PORTS[1] - SOURCE_PORTS[0] + 1));
      const s = createSocket({ type: 'udp4' });
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.bind(port, this.localAddress, () => {
            s.off('error', reject);
            resolve();
          });
        });
        s.setTTL(255);
        s.on('error', () => {});
        return s;
      } catch {
        s.close();
      }
    }
    throw new Error(`no free UDP source port in ${SOURCE_PORTS.join('-')} on ${this.localAddress}`);
  }
}
