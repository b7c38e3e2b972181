/**
 * Warming the agent's share of a block's path, once, before its speaker starts: the speaker's
 * part on scratch speakers (bgp/warmup-mesh.ts), then the agent's on a scratch route reconciler
 * whose netlink socket is a stand-in that answers as the kernel does (an ACK for each datagram
 * that asks for one, the end of each dump), so that nothing reaches this host's kernel:
 *
 * - the origin's: the IPAM block and its affinity read (desired.ts changeMoves, ipam/originate.ts
 *   originated, blockRoutes), its blackhole put into the reconciler and applied: the route model's
 *   plan, the netlink encoding, the ACK's decoding, the confirmation;
 * - the receiver's: each route change the scratch speaker gave (desired.ts applyRouteChanges),
 *   counted and handed to the reconciler as agent.ts onRoutes does, and applied the same way,
 *   each apply's duration observed as the agent's metrics do (scratch metrics, in no registry);
 * - and each withdrawn.
 *
 * Why: a block comes minutes or hours apart, so the agent's code for it seldom runs, and its
 * first run is the slowest by far: in a 5-node lab mesh, a fresh agent took 1.5-9 ms from an
 * UPDATE's read to the netlink write of its route for the first block it received, against 0.6
 * from the third on; the route listener, the reconciler's plan and the netlink encoding were most
 * of it, each at its first call (V8 compiles a function when it first runs it and its inline
 * caches start empty; the agent's V8 flags then keep what was made, src/cli/agent-v8.ts).
 *
 * The reconciler is the agent's own class with the agent's options (owners, clock), and the
 * NetlinkKernel the agent's, over the stand-in; the blocks are of the agent's own pool, the
 * scratch speakers' addresses TEST-NET-2 (RFC 5737), the node name one no Node can have. About
 * 0.1 s at start.
 */
import { EventEmitter } from 'node:events';
import { Counter, Histogram } from 'prom-client';
import type { Clock } from '../bgp/clock.js';
import { poolBlock, warmUpMesh } from '../bgp/warmup-mesh.js';
import { forEachMessage, NLMSG_HDRLEN, NlFlags, NlMsgType } from '../dataplane/netlink-codec.js';
import { NetlinkKernel, type NetlinkSocket } from '../dataplane/netlink-kernel.js';
import type { RouteSpec } from '../dataplane/route-model.js';
import { RouteReconciler } from '../dataplane/routes.js';
import { TWILL_API_VERSION } from '../datastore/types.js';
import { newBlockSpec } from '../ipam/allocations.js';
import { parseCidr } from '../ipam/blocks.js';
import { originated } from '../ipam/originate.js';
import { formatPrefix } from '../net/addr.js';
import { applyRouteChanges, blockRoutes, changeMoves, exportRules } from './desired.js';

/** A node name no Kubernetes Node can have (upper case is not allowed in one). */
const NODE = 'Twill-warm-up';

/**
 * Answers every datagram as the kernel answers a request that succeeds: an NLMSG_ERROR of 0
 * (an ACK) for each message that asks for one, NLMSG_DONE for each dump; at the loop's next turn,
 * as a socket's reply comes.
 */
class KernelStandIn extends EventEmitter implements NetlinkSocket {
  /** Route messages answered. */
  routes = 0;
  send(msg: Buffer, _options: object, callback: (err?: NodeJS.ErrnoException) => void): void {
    const replies: Buffer[] = [];
    forEachMessage(msg, (type, flags, seq, off) => {
      if (type === NlMsgType.NewRoute || type === NlMsgType.DelRoute) this.routes++;
      if ((flags & NlFlags.Dump) === NlFlags.Dump) {
        const done = Buffer.alloc(NLMSG_HDRLEN + 4);
        header(done, NlMsgType.Done, NlFlags.Multi, seq);
        replies.push(done);
      } else if (flags & NlFlags.Ack) {
        // The error code, then the request's own header (its sequence number is read from it).
        const ack = Buffer.alloc(NLMSG_HDRLEN + 4 + NLMSG_HDRLEN);
        header(ack, NlMsgType.Error, 0, seq);
        msg.copy(ack, NLMSG_HDRLEN + 4, off - NLMSG_HDRLEN, off);
        replies.push(ack);
      }
    });
    callback();
    if (replies.length > 0) setImmediate(() => this.emit('message', Buffer.concat(replies)));
  }
  ref(): void {}
  unref(): void {}
  close(): void {}
}

function header(buf: Buffer, type: number, flags: number, seq: number): void {
  buf.writeUInt32LE(buf.length, 0);
  buf.writeUInt16LE(type, 4);
  buf.writeUInt16LE(flags, 6);
  buf.writeUInt32LE(seq, 8);
}

/**
 * Runs the block path (above) for a node of the IPv4 pool `poolCidr` with the agent's export
 * rules for `poolCidrs`. Resolves with the route messages the stand-in answered, when done; a
 * failure is the caller's to log (nothing depends on the warm-up having run).
 */
export async function warmUpBlockPath(opts: {
  clock: Clock;
  poolCidr: string;
  poolCidrs: readonly string[];
}): Promise<number> {
  const cidr = parseCidr(opts.poolCidr);
  if (cidr.family !== 4) return 0;
  const pool = { base: Number(cidr.base), len: cidr.len };
  const changes = warmUpMesh(pool, exportRules(opts.poolCidrs));
  // The agent's metrics as its route listener and its reconciler feed them, in a registry of none.
  const applied = new Histogram({
    name: 'warm_up_apply_seconds',
    help: '-',
    buckets: [0.001],
    registers: [],
  });
  const counted = new Counter({ name: 'warm_up_route_changes_total', help: '-', registers: [] });
  const kernel = new KernelStandIn();
  const reconciler = new RouteReconciler({
    kernel: () => new NetlinkKernel({ socket: kernel }),
    clock: opts.clock,
    expectOwners: ['pods', 'blocks', 'bgp'],
    onApplied: (_stats, seconds) => applied.observe(seconds),
  });
  // Every owner the agent has, so that a route that goes is deleted, not kept for one to come.
  reconciler.setDesired('pods', []);
  reconciler.setDesired('bgp', []);
  const bgp = new Map<string, RouteSpec>();
  for (let i = 0; i < changes.length; i++) {
    // The origin's part: a block of its own (not one the scratch speakers' changes name) and its
    // blackhole, installed, then gone.
    const cidr = formatPrefix(poolBlock(pool, i + changes.length));
    const block = {
      apiVersion: TWILL_API_VERSION,
      kind: 'IPAMBlock' as const,
      metadata: { name: `warm-up-${i}` },
      spec: newBlockSpec(parseCidr(cidr), `host:${NODE}`),
    };
    const affinity = { node: NODE, cidr, state: 'confirmed' as const };
    changeMoves(NODE, 'IPAMBlock', undefined, block);
    originated(NODE, [block.spec], [affinity]);
    reconciler.setDesired('blocks', blockRoutes(NODE, [block.spec], [affinity]));
    await reconciler.apply();
    // The receiver's part: a route change, as agent.ts onRoutes hands it on.
    const c = changes[i]!;
    counted.inc(1);
    applyRouteChanges(bgp, [c]);
    reconciler.updateDesired('bgp', [[c.prefix, bgp.get(c.prefix) ?? null] as const]);
    await reconciler.apply();
    changeMoves(NODE, 'IPAMBlock', block, undefined);
    reconciler.setDesired('blocks', []);
    await reconciler.apply();
  }
  reconciler.close();
  return kernel.routes;
}
