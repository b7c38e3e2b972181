/**
 * The bench's own minimal BGP peer, shared by the injector and the monitor: one TCP connection
 * that we dial, a hand-built OPEN (4-octet AS, Multiprotocol IPv4 unicast, nothing else), a
 * KEEPALIVE for the peer's OPEN, a KEEPALIVE every third of the negotiated hold time, and every
 * UPDATE handed to the caller as a frame. It implements just enough of RFC 4271 §8 to reach
 * Established with BIRD, FRR, GoBGP and Twill; it checks nothing it does not need and is not a
 * BGP implementation (Twill's own session is in src/bgp/session.ts).
 *
 * It talks to the bench orchestrator (run.ts) over stdio: commands arrive as one JSON object per
 * stdin line, events leave as one JSON object per stdout line. Every timestamp is `now()`:
 * milliseconds on the system clock with sub-millisecond resolution (performance.timeOrigin +
 * performance.now()), so the injector's and the monitor's timestamps, taken in two processes in
 * two namespaces, are comparable.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import {
  decodeNotification,
  encodeOpen,
  Framer,
  IPV4_UNICAST,
  KEEPALIVE,
  MsgType,
  makeOpen,
} from '../../src/bgp/wire/index.js';

/** Wall-clock milliseconds, sub-millisecond resolution, comparable across processes. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function emit(ev: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(ev)}\n`);
}

/** `--name value` from argv, or the default. */
export function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : dflt;
  if (v === undefined) throw new Error(`missing --${name}`);
  return v;
}

export function ipv4(text: string): number {
  const p = text.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

/** Commands from the orchestrator, one JSON object per stdin line. Stdin closing ends the process. */
export function onCommand(handler: (cmd: { op: string; [k: string]: unknown }) => void): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim()) handler(JSON.parse(line) as { op: string });
  });
  rl.on('close', () => process.exit(0));
}

export interface PeerOptions {
  /** The DUT's address; we dial port 179. */
  remote: string;
  /** Our source address. */
  local: string;
  asn: number;
  /** Hold time offered; the session uses the smaller of ours and the DUT's. */
  holdTime: number;
  /** Called for every UPDATE frame; `buf` is valid only during the call. */
  onUpdate: (buf: Buffer, start: number, end: number) => void;
  /**
   * Called once when a connected session ends (NOTIFICATION, socket error, close),
   * with the event that would have been emitted. Without it the process emits that event and
   * exits: one session per process, as the injector and the monitor run. With it the process
   * lives on (many sessions in one process).
   */
  onDown?: (ev: Record<string, unknown>) => void;
  /**
   * A session that ends before Established (the DUT still starting: FRR's bgpd resets sessions
   * that arrive before zebra has told it its interfaces) is dialled again after 200 ms, as a
   * speaker's ConnectRetry timer would, and `onRedial` is told why; once Established, an end is
   * final. Without it, any end of a connected session is final.
   */
  redial?: boolean;
  onRedial?: (ev: Record<string, unknown>) => void;
  /**
   * Give up on a TCP connect that has not completed after this many ms and dial again 200 ms
   * later. Without it the kernel's SYN retransmits (1, 3, 7, 15, 31 s...) decide: when many
   * peers dial at once, a DUT whose listen backlog is short (BIRD's) drops SYNs, and a peer
   * whose SYN was dropped twice waits 7 s before it tries again.
   */
  connectTimeoutMs?: number;
}

export interface Peer {
  socket: Socket;
  /** Resolves when the session is Established (our OPEN and the DUT's KEEPALIVE exchanged). */
  established: Promise<void>;
}

/** Dial the DUT until it answers (it may still be starting), then run the session. */
export function startPeer(o: PeerOptions): Peer {
  const open = encodeOpen(makeOpen(o.asn, o.holdTime, ipv4(o.local), { multiprotocol: [IPV4_UNICAST] }));
  let resolve!: () => void;
  let isEstablished = false;
  const established = new Promise<void>((r) => {
    resolve = r;
  });
  const peer: Peer = { socket: undefined as unknown as Socket, established };

  const attempt = (): void => {
    const s = connect({ host: o.remote, port: 179, localAddress: o.local });
    peer.socket = s;
    s.setNoDelay(true);
    let up = false;
    let opened = false;
    let down = false;
    let keepalives: NodeJS.Timeout | undefined;
    const framer = new Framer();
    const fail = (ev: Record<string, unknown>): void => {
      if (down) return;
      down = true;
      clearInterval(keepalives);
      if (o.redial && !isEstablished) {
        s.destroy();
        o.onRedial?.(ev);
        setTimeout(attempt, 200);
        return;
      }
      if (!o.onDown) {
        emit(ev);
        process.exit(1);
      }
      s.destroy();
      o.onDown(ev);
    };
    const slow = o.connectTimeoutMs
      ? setTimeout(() => {
          if (!up) s.destroy();
        }, o.connectTimeoutMs)
      : undefined;
    s.once('connect', () => {
      up = true;
      clearTimeout(slow);
      s.write(open);
    });
    s.on('error', (err) => {
      if (!up) return; // retried on close
      fail({ ev: 'error', message: err.message });
    });
    s.on('close', () => {
      if (!up) {
        clearTimeout(slow);
        setTimeout(attempt, 200);
        return;
      }
      fail({ ev: 'closed' });
    });
    s.on('data', (chunk: Buffer) => {
      if (down) return;
      framer.push(chunk);
      for (let f = framer.next(); f && !down; f = framer.next()) {
        switch (f.type) {
          case MsgType.Update:
            o.onUpdate(f.buf, f.start, f.end);
            break;
          case MsgType.Open: {
            opened = true;
            const hold = Math.min(o.holdTime, f.buf.readUInt16BE(f.start + 22));
            s.write(KEEPALIVE);
            if (hold > 0) keepalives = setInterval(() => s.write(KEEPALIVE), (hold / 3) * 1000).unref();
            break;
          }
          case MsgType.Keepalive:
            if (opened && !isEstablished) {
              isEstablished = true;
              resolve();
            }
            break;
          case MsgType.Notification: {
            const n = decodeNotification(f.buf, f.start, f.end);
            fail({ ev: 'notification', code: n.code, subcode: n.subcode });
            break;
          }
        }
      }
    });
  };
  attempt();
  return peer;
}
