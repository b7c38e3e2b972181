/**
 * The agent's side of the CNI endpoint (protocol.ts): the node's IPAM served to the CNI plugin
 * over a unix socket. The agent mounts it; tests run it in their own process.
 *
 * Two pieces:
 * - `CniHandler`: request -> response over an `Allocator` (ipam/allocator.ts) for this node,
 *   with a readiness flag. No sockets, so it is tested directly.
 * - `CniServer`: the socket shell. It creates the socket's folder 0700 and the socket 0600
 *   (created under a 0077 umask, so there is no moment when it is open to others), refuses to
 *   start when another live server answers on the path, removes a stale socket file left by a
 *   crash, and reads one newline-terminated request per connection (protocol.ts).
 *
 * Semantics
 * - Not ready (`setReady(false, reason)`, the state at construction): every request but
 *   `status` is answered `NotReady` with the reason; the plugin returns CNI error 11 (try again
 *   later), so the runtime retries the ADD or DEL instead of failing the pod.
 * - The IPAM handle of an attachment is `<network>.<containerID>` (names.ts `handleFor`;
 *   Calico's `k8s-pod-network.<containerID>` with the shipped conflist).
 * - `assign` asks the allocator for each family in turn under that handle; an address the
 *   handle already holds comes back unchanged, so a repeated ADD gets the same addresses. A
 *   failure after the first family leaves what was assigned: the runtime follows a failed ADD
 *   with a DEL (CNI spec, section 3), which releases the handle.
 * - `wire` does the host side of an attachment assigned in the last five minutes, with the
 *   veth, MAC and addresses recorded at its `assign` (`wireHost`, the agent's kernel); without
 *   `wireHost` it is Unsupported.
 * - `check` compares the handle's addresses with the ones the plugin expects (from prevResult).
 * - `gc` releases every handle of `network` whose addresses were assigned by this node and whose
 *   container is not in `valid`. It reads the blocks once; a release that fails is reported and
 *   the rest go on (CNI GC is best effort).
 * - `onAssigned` / `onReleased` tell the agent which pod, veth and MAC an address went to, so
 *   the route reconciler can want the pod's host route (`pods` owner, protocol 84, scope link
 *   on the host veth) and the neighbour entry that the plugin has just written identically.
 *
 * Errors: IpamError Invalid/Exhausted/Conflict map to the same protocol codes, a datastore that
 * is `Unavailable` to `NotReady`, anything else to `Internal` with its message.
 *
 * Not here: deciding readiness (the agent calls `setReady` when its datastore is in sync and
 * again when it loses it), kernel work (the plugin's and the route reconciler's), leaked-address
 * reclamation for pods the runtime never DELs (the allocator's `reclaimLeaked`, run by the
 * agent). No request is ever queued: the allocator's compare-and-swap lets concurrent ADDs for
 * different pods run side by side.
 */
import { chmodSync, existsSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { isDatastoreError } from '../datastore/types.js';
import * as alloc from '../ipam/allocations.js';
import type { Allocator } from '../ipam/allocator.js';
import { addressAt, parseAddress } from '../ipam/blocks.js';
import { IpamError } from '../ipam/model.js';
import { handleFor } from './names.js';
import {
  type AgentError,
  type AgentErrorCode,
  type AgentRequest,
  type AgentResponse,
  type AssignedAddress,
  type AssignRequest,
  type CheckRequest,
  DEFAULT_SOCKET,
  type ErrorResponse,
  type GcRequest,
  MAX_MESSAGE,
  ProtocolError,
  parseRequest,
  type ReleaseRequest,
  type WireRequest,
} from './protocol.js';

export interface AttachmentEvent {
  handle: string;
  network: string;
  containerID: string;
  ifname: string;
  namespace?: string;
  pod?: string;
  hostIfname: string;
  mac: string;
  addresses: AssignedAddress[];
}

export interface CniHandlerOptions {
  allocator: Allocator;
  /** This node's name (the allocator's `node`). */
  node: string;
  /** Ready from the start (default false: the agent calls setReady once in sync). */
  ready?: boolean;
  onAssigned?: (e: AttachmentEvent) => void;
  onReleased?: (e: { handle: string; released: string[] }) => void;
  /**
   * The host side of an attachment (`wire`): the agent passes its kernel's (host-wiring.ts).
   * Absent: `wire` is answered Unsupported and the plugin does it itself.
   */
  wireHost?: (e: AttachmentEvent) => Promise<void>;
}

/** How long an `assign` is remembered for the `wire` that follows it. */
const WIRE_WINDOW_MS = 5 * 60_000;

const fail = (code: AgentErrorCode, message: string): ErrorResponse => ({
  ok: false,
  error: { code, message },
});

function errorOf(e: unknown): AgentError {
  if (e instanceof IpamError) return { code: e.code, message: e.message };
  if (isDatastoreError(e, 'Unavailable'))
    return { code: 'NotReady', message: `the datastore is unavailable: ${e.message}` };
  if (e instanceof ProtocolError) return { code: 'Invalid', message: e.message };
  return { code: 'Internal', message: e instanceof Error ? e.message : String(e) };
}

export class CniHandler {
  private readonly allocator: Allocator;
  readonly node: string;
  private ready: boolean;
  private reason = 'the agent is starting (datastore not in sync yet)';
  private readonly onAssigned: (e: AttachmentEvent) => void;
  private readonly onReleased: (e: { handle: string; released: string[] }) => void;
  private readonly wireHost: ((e: AttachmentEvent) => Promise<void>) | undefined;
  /** Attachments assigned lately, by handle, for their `wire`. */
  private readonly assigned = new Map<string, { event: AttachmentEvent; at: number }>();

  constructor(opts: CniHandlerOptions) {
    this.allocator = opts.allocator;
    this.node = opts.node;
    this.ready = opts.ready ?? false;
    this.onAssigned = opts.onAssigned ?? (() => {});
    this.onReleased = opts.onReleased ?? (() => {});
    this.wireHost = opts.wireHost;
  }

  setReady(ready: boolean, reason?: string): void {
    this.ready = ready;
    if (reason !== undefined) this.reason = reason;
    else if (!ready) this.reason = 'the agent is not ready';
  }

  isReady(): boolean {
    return this.ready;
  }

  async handle(req: AgentRequest): Promise<AgentResponse> {
    if (req.op === 'status')
      return { ok: true, ready: this.ready, node: this.node, ...(this.ready ? {} : { reason: this.reason }) };
    if (!this.ready) return fail('NotReady', `node ${this.node}: ${this.reason}`);
    try {
      switch (req.op) {
        case 'assign':
          return await this.assign(req);
        case 'wire':
          return await this.wire(req);
        case 'release':
          return await this.release(req);
        case 'check':
          return await this.check(req);
        case 'gc':
          return await this.gc(req);
      }
    } catch (e) {
      return { ok: false, error: errorOf(e) };
    }
  }

  private async assign(req: AssignRequest): Promise<AgentResponse> {
    const handle = handleFor(req.network, req.containerID);
    const addresses: AssignedAddress[] = [];
    for (const family of [...req.families].sort()) {
      const a = await this.allocator.assign({
        handle,
        node: this.node,
        family,
        ...(req.namespace !== undefined && req.pod !== undefined
          ? { namespace: req.namespace, pod: req.pod }
          : {}),
      });
      addresses.push({ address: a.address, family, block: a.block, borrowed: a.borrowed });
    }
    const { v: _v, op: _op, families: _f, ...rest } = req;
    const event = { ...rest, handle, addresses };
    this.onAssigned(event);
    if (this.wireHost) {
      const now = Date.now();
      for (const [h, a] of this.assigned) if (now - a.at > WIRE_WINDOW_MS) this.assigned.delete(h);
      this.assigned.set(handle, { event, at: now });
    }
    return { ok: true, handle, addresses };
  }

  private async wire(req: WireRequest): Promise<AgentResponse> {
    if (!this.wireHost)
      return fail('Unsupported', `node ${this.node}: this endpoint does not wire host sides`);
    const handle = handleFor(req.network, req.containerID);
    const a = this.assigned.get(handle);
    if (!a || a.event.ifname !== req.ifname)
      return fail('Invalid', `${handle}/${req.ifname}: no assign for this attachment to wire`);
    await this.wireHost(a.event);
    this.assigned.delete(handle);
    return { ok: true, handle };
  }

  private async release(req: ReleaseRequest): Promise<AgentResponse> {
    const handle = handleFor(req.network, req.containerID);
    this.assigned.delete(handle);
    const released = (await this.allocator.release(handle)).map((r) => r.address);
    this.onReleased({ handle, released });
    return { ok: true, handle, released };
  }

  /** Addresses held per handle (by this node, or any node when `mine` is false). */
  private async holdings(mine: boolean): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const b of await this.allocator.blocks()) {
      const spec = b.object.spec!;
      spec.allocations.forEach((index, ordinal) => {
        if (index === null) return;
        const attrs = alloc.attributesAt(spec, ordinal);
        if (!attrs || (mine && attrs.node !== this.node)) return;
        const list = out.get(attrs.handle) ?? [];
        list.push(addressAt(b.cidr, ordinal));
        out.set(attrs.handle, list);
      });
    }
    return out;
  }

  private async check(req: CheckRequest): Promise<AgentResponse> {
    const handle = handleFor(req.network, req.containerID);
    const canonical = (a: string) => {
      try {
        const p = parseAddress(a);
        return addressAt({ family: p.family, base: p.value, len: p.family === 4 ? 32 : 128 }, 0);
      } catch {
        return a;
      }
    };
    const held = new Set((await this.holdings(false)).get(handle) ?? []);
    const want = new Set(req.addresses.map(canonical));
    const missing = [...want].filter((a) => !held.has(a));
    const extra = [...held].filter((a) => !want.has(a));
    if (missing.length + extra.length === 0) return { ok: true, handle };
    const parts: string[] = [];
    if (missing.length > 0) parts.push(`does not hold ${missing.join(', ')}`);
    if (extra.length > 0) parts.push(`also holds ${extra.join(', ')}`);
    return fail('Mismatch', `IPAM handle ${handle} ${parts.join(' and ')}`);
  }

  private async gc(req: GcRequest): Promise<AgentResponse> {
    const prefix = `${req.network}.`;
    const valid = new Set(req.valid.map((a) => handleFor(req.network, a.containerID)));
    const released: string[] = [];
    const errors: string[] = [];
    for (const [handle, addresses] of await this.holdings(true)) {
      if (!handle.startsWith(prefix) || valid.has(handle)) continue;
      try {
        const r = await this.allocator.release(handle);
        released.push(...r.map((x) => x.address));
        this.onReleased({ handle, released: r.map((x) => x.address) });
      } catch (e) {
        errors.push(`release ${handle} (${addresses.join(', ')}): ${errorOf(e).message}`);
      }
    }
    return { ok: true, released, errors };
  }
}

export interface CniServerOptions {
  handler: CniHandler;
  /** Default protocol.ts DEFAULT_SOCKET. */
  path?: string;
  /** Told about connection-level failures (a client that sent garbage, a write that failed). */
  onError?: (err: Error) => void;
}

export class CniServer {
  readonly path: string;
  private readonly handler: CniHandler;
  private readonly onError: (err: Error) => void;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(opts: CniServerOptions) {
    this.handler = opts.handler;
    this.path = opts.path ?? DEFAULT_SOCKET;
    this.onError = opts.onError ?? (() => {});
  }

  async listen(): Promise<void> {
    const dir = dirname(this.path);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    if (existsSync(this.path)) {
      if (!statSync(this.path).isSocket())
        throw new Error(`${this.path} exists and is not a socket; refusing to replace it`);
      if (await answers(this.path))
        throw new Error(`another agent already serves ${this.path}; refusing to take it over`);
      unlinkSync(this.path);
    }
    // Half-open: a client that ends its side after the request still gets the answer.
    const server = createServer({ allowHalfOpen: true }, (s) => this.serve(s));
    const mask = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(mask);
    }
    chmodSync(this.path, 0o600);
    server.on('error', (e) => this.onError(e));
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private serve(s: Socket): void {
    this.sockets.add(s);
    s.on('close', () => this.sockets.delete(s));
    s.on('error', (e) => this.onError(e));
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const reply = (r: AgentResponse) => {
      done = true;
      s.end(`${JSON.stringify(r)}\n`);
    };
    s.on('data', (chunk: Buffer) => {
      if (done) return;
      const nl = chunk.indexOf(10);
      chunks.push(nl === -1 ? chunk : chunk.subarray(0, nl));
      size += nl === -1 ? chunk.length : nl;
      if (size > MAX_MESSAGE) {
        reply(fail('Invalid', `request longer than ${MAX_MESSAGE} bytes`));
        return;
      }
      if (nl === -1) return;
      done = true;
      let req: AgentRequest;
      try {
        req = parseRequest(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        reply({ ok: false, error: errorOf(e) });
        return;
      }
      this.handler.handle(req).then(reply, (e) => reply({ ok: false, error: errorOf(e) }));
    });
    s.on('end', () => {
      if (!done) reply(fail('Invalid', 'connection closed before a complete request (no newline)'));
    });
  }
}

/** Whether a server answers on the unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}
