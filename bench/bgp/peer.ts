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
    const framer = new Framer();
    s.once('connect', () => {
      up = true;
      s.write(open);
    });
    s.on('error', (err) => {
      if (!up) return; // retried on close
      emit({ ev: 'error', message: err.message });
      process.exit(1);
    });
    s.on('close', () => {
      if (!up) {
        setTimeout(attempt, 200);
        return;
      }
      emit({ ev: 'closed' });
      process.exit(1);
    });
    s.on('data', (chunk: Buffer) => {
      framer.push(chunk);
      for (let f = framer.next(); f; f = framer.next()) {
        switch (f.type) {
          case MsgType.Update:
            o.onUpdate(f.buf, f.start, f.end);
            break;
          case MsgType.Open: {
            opened = true;
            const hold = Math.min(o.holdTime, f.buf.readUInt16BE(f.start + 22));
            s.write(KEEPALIVE);
            if (hold > 0) setInterval(() => s.write(KEEPALIVE), (hold / 3) * 1000).unref();
            break;
          }
          case MsgType.Keepalive:
            if (opened) resolve();
            break;
          case MsgType.Notification: {
            const n = decodeNotification(f.buf, f.start, f.end);
            emit({ ev: 'notification', code: n.code, subcode: n.subcode });
            process.exit(1);
          }
        }
      }
    });
  };
  attempt();
  return peer;
}
