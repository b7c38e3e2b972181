/**
 * The kernel over rtnetlink (`Kernel`, kernel.ts), on the `netlink` package's raw socket (or, for
 * the agent's warm-up, a stand-in given as `socket` that answers as the kernel does).
 *
 * - One request socket for dumps and writes, one more per `subscribe()` bound to the multicast
 *   groups asked for (RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE), so notifications
 *   never interleave with a dump's replies.
 * - Writes are batched: up to `batchMessages` route messages are packed into one datagram (the
 *   kernel's netlink_rcv_skb runs them in order under one RTNL lock) and only the last asks for
 *   an acknowledgement. A message that fails is answered with an error carrying its sequence
 *   number; a message that succeeds is not answered at all; the last one's ACK (or error)
 *   closes the datagram. `window` datagrams are in flight at once. This is what makes a 50k
 *   route batch cost a few hundred system calls instead of `ip -batch`'s one round trip per
 *   route.
 * - Receive buffer: an error echoes the whole request (the binding offers no NETLINK_CAP_ACK),
 *   so a datagram of failures needs room; the buffer is raised to 4 MiB (the kernel caps it at
 *   net.core.rmem_max). If answers are lost anyway (ENOBUFS on the request socket), every
 *   pending request rejects with `KernelError('ENOBUFS')` and the caller reads back. On a
 *   subscription socket ENOBUFS becomes an `overrun` event.
 * - Dumps decode each datagram as it arrives (no copy of the raw dump is kept). A dump marked
 *   NLM_F_DUMP_INTR rejects with `KernelError('EINTR')` once it is complete. The kernel runs
 *   one dump per socket at a time (another gets EBUSY), so dumps are queued; writes may run
 *   beside a dump.
 *
 * Network namespaces: a socket belongs to the namespace of the process that opens it; Node
 * cannot switch namespaces, so tests and the bench run this inside `ip netns exec`.
 */
import { getSystemErrorName } from 'node:util';
import { RawNetlinkSocket } from 'netlink';
import type { EventGroup, Kernel, KernelEvent, NeighbourEntry } from './kernel.js';
import { KernelError } from './kernel.js';
import {
  decodeError,
  decodeLink,
  decodeNeigh,
  decodeRoute,
  encodeDump,
  encodeNeigh,
  encodeRouteOp,
  encodeSetLink,
  familyCode,
  forEachMessage,
  NlFlags,
  NlMsgType,
  RtGroup,
  routeMsgSize,
} from './netlink-codec.js';
import type { Family, KernelRoute, LinkState, RouteOp } from './route-model.js';

const NETLINK_ROUTE = 0;

export interface NetlinkKernelOptions {
  /** Route messages per datagram. Default 256. */
  batchMessages?: number;
  /** Datagrams in flight. Default 2. */
  window?: number;
  /** SO_RCVBUF to ask for. Default 4 MiB. */
  recvBuffer?: number;
  /**
   * The request socket, instead of a new one: a stand-in that answers as the kernel does
   * (src/agent/warmup.ts). Subscriptions always open sockets of their own.
   */
  socket?: NetlinkSocket;
}

/** What the request side uses of the `netlink` package's socket. */
export interface NetlinkSocket {
  send(msg: Buffer, options: object, callback: (err?: NodeJS.ErrnoException) => void): void;
  on(event: 'message', listener: (msg: Buffer) => void): unknown;
  on(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
  ref(): void;
  unref(): void;
  close(): void;
}

type Pending =
  | {
      kind: 'dump';
      onMessage: (type: number, buf: Buffer, off: number, end: number) => void;
      intr: boolean;
      resolve: () => void;
      reject: (err: Error) => void;
    }
  | {
      kind: 'ack';
      resolve: () => void;
      reject: (err: Error) => void;
    }
  | {
      kind: 'batch';
      /** First sequence number of the datagram; op i has seq first + i. */
      first: number;
      last: number;
      results: (string | undefined)[];
      /** Index into results of the datagram's first op. */
      base: number;
      resolve: () => void;
      reject: (err: Error) => void;
    };

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `errno ${Math.abs(errno)}`;
  }
}

export class NetlinkKernel implements Kernel {
  private readonly sock: NetlinkSocket;
  private seq = Math.floor(Math.random() * 0x7fffffff) + 1;
  /** seq -> request; a batch is registered under its last seq and found by range for errors. */
  private readonly pending = new Map<number, Pending>();
  private readonly batches: Extract<Pending, { kind: 'batch' }>[] = [];
  private readonly subs = new Set<RawNetlinkSocket>();
  private readonly batchMessages: number;
  private readonly window: number;
  private closed = false;
  private dumps: Promise<unknown> = Promise.resolve();

  constructor(opts: NetlinkKernelOptions = {}) {
    this.batchMessages = opts.batchMessages ?? 256;
    this.window = opts.window ?? 2;
    this.sock =
      opts.socket ??
      new RawNetlinkSocket(NETLINK_ROUTE, {
        recvBufferSize: opts.recvBuffer ?? 4 << 20,
        sendBufferSize: 1 << 20,
        // Read into a 64 KiB buffer instead of peeking at each datagram's size: the kernel sizes
        // its dump datagrams by the largest read it has seen (up to 32 KiB), so a big read buffer
        // makes a 50k-route dump take a few hundred datagrams instead of a few thousand.
        messagePeeking: false,
        msgBufferSize: 64 << 10,
      });
    this.sock.unref();
    this.sock.on('message', (buf) => this.receive(buf));
    this.sock.on('error', (err) =>
      this.failAll(new KernelError(err.code ?? 'EIO', `netlink socket: ${err.message}`)),
    );
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = this.seq >= 0xfffffff0 ? 1 : this.seq + 1;
    return s;
  }

  private track(seq: number, p: Pending): void {
    if (this.pending.size === 0) this.sock.ref();
    this.pending.set(seq, p);
  }

  private untrack(seq: number): void {
    this.pending.delete(seq);
    if (this.pending.size === 0 && !this.closed) this.sock.unref();
  }

  private failAll(err: Error): void {
    const all = [...this.pending.entries()];
    this.pending.clear();
    this.batches.length = 0;
    if (!this.closed) this.sock.unref();
    for (const [, p] of all) p.reject(err);
  }

  private send(buf: Buffer): void {
    if (this.closed) throw new KernelError('EBADF', 'netlink handle is closed');
    this.sock.send(buf, {}, (err) => {
      if (err) this.failAll(new KernelError(err.code ?? 'EIO', `netlink send: ${err.message}`));
    });
  }

  private findBatch(seq: number): Extract<Pending, { kind: 'batch' }> | undefined {
    for (const b of this.batches) if (seq >= b.first && seq <= b.last) return b;
    return undefined;
  }

  private receive(buf: Buffer): void {
    forEachMessage(buf, (type, flags, seq, off, end) => {
      if (type === NlMsgType.Error) {
        const { errno, seq: reqSeq } = decodeError(buf, off);
        const batch = this.findBatch(reqSeq);
        if (batch !== undefined) {
          if (errno !== 0) batch.results[batch.base + (reqSeq - batch.first)] = errnoName(errno);
          if (reqSeq === batch.last) {
            this.batches.splice(this.batches.indexOf(batch), 1);
            this.untrack(batch.last);
            batch.resolve();
          }
          return;
        }
        const p = this.pending.get(reqSeq);
        if (p === undefined) return;
        this.untrack(reqSeq);
        if (errno === 0) p.resolve();
        else p.reject(new KernelError(errnoName(errno), `netlink request failed: ${errnoName(errno)}`));
        return;
      }
      const p = this.pending.get(seq);
      if (p === undefined || p.kind !== 'dump') return;
      if (flags & NlFlags.DumpIntr) p.intr = true;
      if (type === NlMsgType.Done) {
        this.untrack(seq);
        const err = end - off >= 4 ? buf.readInt32LE(off) : 0;
        if (err < 0) p.reject(new KernelError(errnoName(err), `netlink dump failed: ${errnoName(err)}`));
        else if (p.intr) p.reject(new KernelError('EINTR', 'netlink dump was interrupted (NLM_F_DUMP_INTR)'));
        else p.resolve();
        return;
      }
      try {
        p.onMessage(type, buf, off, end);
      } catch (err) {
        this.untrack(seq);
        p.reject(err as Error);
      }
    });
  }

  /** The kernel runs one dump per socket at a time (a second one gets EBUSY): queue them. */
  private dump(
    type: NlMsgType,
    family: number,
    onMessage: (type: number, buf: Buffer, off: number, end: number) => void,
  ): Promise<void> {
    const run = this.dumps.then(() => this.dumpNow(type, family, onMessage));
    this.dumps = run.catch(() => undefined);
    return run;
  }

  private dumpNow(
    type: NlMsgType,
    family: number,
    onMessage: (type: number, buf: Buffer, off: number, end: number) => void,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const seq = this.nextSeq();
      this.track(seq, { kind: 'dump', onMessage, intr: false, resolve, reject });
      try {
        this.send(encodeDump(type, family, seq));
      } catch (err) {
        this.untrack(seq);
        reject(err);
      }
    });
  }

  async listLinks(): Promise<LinkState[]> {
    const out: LinkState[] = [];
    await this.dump(NlMsgType.GetLink, 0, (type, buf, off, end) => {
      if (type === NlMsgType.NewLink) out.push(decodeLink(buf, off, end));
    });
    return out;
  }

  async listRoutes(family?: Family): Promise<KernelRoute[]> {
    const out: KernelRoute[] = [];
    await this.dump(NlMsgType.GetRoute, familyCode(family), (type, buf, off, end) => {
      if (type !== NlMsgType.NewRoute) return;
      const r = decodeRoute(buf, off, end);
      if (r !== undefined) out.push(r);
    });
    return out;
  }

  async listNeighbours(family?: Family): Promise<NeighbourEntry[]> {
    const out: NeighbourEntry[] = [];
    await this.dump(NlMsgType.GetNeigh, familyCode(family), (type, buf, off, end) => {
      if (type !== NlMsgType.NewNeigh) return;
      const n = decodeNeigh(buf, off, end);
      if (n !== undefined) out.push(n);
    });
    return out;
  }

  async writeRoutes(ops: readonly RouteOp[]): Promise<(string | undefined)[]> {
    const results: (string | undefined)[] = new Array(ops.length).fill(undefined);
    let next = 0;
    const sendOne = (): Promise<void> | undefined => {
      if (next >= ops.length) return undefined;
      const base = next;
      const count = Math.min(this.batchMessages, ops.length - base);
      next += count;
      let size = 0;
      for (let i = base; i < base + count; i++) size += routeMsgSize(ops[i]!);
      const buf = Buffer.allocUnsafe(size);
      // Sequence numbers of one datagram are consecutive (wrap-around starts a new batch).
      if (this.seq + count >= 0xfffffff0) this.seq = 1;
      const first = this.seq;
      this.seq += count;
      let off = 0;
      for (let i = 0; i < count; i++)
        off = encodeRouteOp(buf, off, ops[base + i]!, first + i, i === count - 1);
      return new Promise<void>((resolve, reject) => {
        const batch = {
          kind: 'batch' as const,
          first,
          last: first + count - 1,
          results,
          base,
          resolve,
          reject,
        };
        this.batches.push(batch);
        this.track(batch.last, batch);
        try {
          this.send(buf);
        } catch (err) {
          this.batches.splice(this.batches.indexOf(batch), 1);
          this.untrack(batch.last);
          reject(err);
        }
      });
    };
    const lanes: Promise<void>[] = [];
    for (let w = 0; w < this.window; w++) {
      lanes.push(
        (async () => {
          for (let p = sendOne(); p !== undefined; p = sendOne()) await p;
        })(),
      );
    }
    await Promise.all(lanes);
    return results;
  }

  private request(buf: Buffer, seq: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.track(seq, { kind: 'ack', resolve, reject });
      try {
        this.send(buf);
      } catch (err) {
        this.untrack(seq);
        reject(err);
      }
    });
  }

  setNeighbour(n: NeighbourEntry): Promise<void> {
    const seq = this.nextSeq();
    return this.request(encodeNeigh(n, seq, false), seq);
  }

  setLink(name: string, opts: { up?: boolean; alias?: string }): Promise<void> {
    const seq = this.nextSeq();
    return this.request(encodeSetLink(name, opts, seq), seq);
  }

  delNeighbour(n: Pick<NeighbourEntry, 'family' | 'ifindex' | 'address'>): Promise<void> {
    const seq = this.nextSeq();
    return this.request(encodeNeigh(n, seq, true), seq);
  }

  subscribe(groups: readonly EventGroup[], fn: (ev: KernelEvent) => void): () => void {
    const sock = new RawNetlinkSocket(NETLINK_ROUTE, { recvBufferSize: 4 << 20, sendBufferSize: 0 });
    sock.unref();
    for (const g of groups) {
      if (g === 'link') sock.addMembership(RtGroup.Link);
      else {
        sock.addMembership(RtGroup.Ipv4Route);
        sock.addMembership(RtGroup.Ipv6Route);
      }
    }
    sock.on('message', (buf) => {
      forEachMessage(buf, (type, _flags, _seq, off, end) => {
        if (type === NlMsgType.NewLink) fn({ kind: 'link', link: decodeLink(buf, off, end) });
        else if (type === NlMsgType.DelLink) {
          const l = decodeLink(buf, off, end);
          fn({ kind: 'linkGone', index: l.index, name: l.name });
        } else if (type === NlMsgType.NewRoute || type === NlMsgType.DelRoute) {
          const r = decodeRoute(buf, off, end);
          if (r !== undefined)
            fn({ kind: 'route', op: type === NlMsgType.NewRoute ? 'new' : 'del', route: r });
        }
      });
    });
    sock.on('error', () => fn({ kind: 'overrun' }));
    this.subs.add(sock);
    return () => {
      if (this.subs.delete(sock)) sock.close();
    };
  }

  close(): void {
    if (this.closed) return;
    this.failAll(new KernelError('EBADF', 'netlink handle closed'));
    this.closed = true;
    for (const s of this.subs) s.close();
    this.subs.clear();
    this.sock.close();
  }
}
