/**
 * Warming a mesh node's block path: before a node agent's speaker listens, `warmUpMesh` runs the
 * code that one pod block runs through a speaker on each side of an iBGP session, over two scratch
 * speakers' parts (never the live speaker's): the origin's (the prefix originated, its deltas, the
 * update group's export with next-hop self and LOCAL_PREF, the UPDATE packed), then the
 * receiver's (that UPDATE decoded, through UpdateIn into the RIB as deltas, the next hop resolved,
 * the group's export refused as an iBGP path to iBGP peers, the best routes for the kernel), and
 * the same for its withdrawal, a block at a time with a flush after each, as blocks come.
 *
 * Why: the table warm-up (warmup.ts) runs a table load, which is a different path: a speaker with
 * route listeners (a node agent: best-routes.ts for its kernel) takes its RIB changes as deltas,
 * not as slots, and an originated prefix enters the RIB by Origination, not by UpdateIn. A block
 * comes minutes or hours apart, so in a node agent this path is always cold: in a 5-node lab mesh
 * the first block a fresh agent received took 1.5-9 ms from its read to the netlink write of its
 * route (the third 0.6), and the first block it originated 2.0-4.6 ms from `setOriginated` to its
 * first socket write (later ones 0.3-0.5). Most of that is V8 compiling each function at its first
 * call and its inline caches meeting their first shapes, which the agent's V8 flags then keep
 * (src/cli/agent-v8.ts). The agent's own share of the path is warmed by src/agent/warmup.ts, from
 * the route changes this returns.
 *
 * The same classes the live speaker runs, with the same kinds of value: PeerRefs with the
 * speaker's property order, a codec context negotiated from two OPENs with both unicast families
 * (as a mesh session's), the agent's export rules for its pool (accept within, reject the rest),
 * next hops resolved by connectedResolver over an interface list, and the Delta arrays the speaker
 * hands on. The sessions are stand-ins whose sockets take everything. A few milliseconds.
 */
import { formatIpv4 } from '../net/addr.js';
import { BestRoutes, type RouteChange } from './best-routes.js';
import type { PrefixRuleConfig } from './config.js';
import { DEFAULT_DECISION } from './decision.js';
import { connectedResolver, type HostInterfaces } from './host.js';
import { policyOf } from './neighbor-config.js';
import { Origination } from './origination.js';
import { BATCH, FlushQueue, PeerTx } from './peer-tx.js';
import type { LocalInfo, PeerPolicy } from './policy.js';
import { AttrTable } from './rib/attrs.js';
import { type Delta, type PeerRef, Rib } from './rib/rib.js';
import { TxGroups } from './update-group.js';
import { UpdateIn } from './update-in.js';
import { warmUpClock } from './warmup.js';
import { IPV4_UNICAST, IPV6_UNICAST, MsgType } from './wire/constants.js';
import { type CodecContext, negotiate } from './wire/context.js';
import { Framer } from './wire/framer.js';
import { decodeMessage } from './wire/message.js';
import { makeOpen } from './wire/open.js';
import { Writer } from './wire/writer.js';

/** Blocks originated and withdrawn in turn, and how many times over. */
export const MESH_WARM_UP = { blocks: 8, rounds: 4 } as const;

const ASN = 64512;
/** The two scratch nodes, on one /24 of TEST-NET-2 (RFC 5737). */
const A = 0xc6336401; // 198.51.100.1
const B = 0xc6336402; // 198.51.100.2

const clock = warmUpClock;

/** One side: what a node agent's speaker runs for a block, towards one mesh peer. */
class Side {
  readonly rib: Rib;
  readonly best: BestRoutes;
  readonly origination: Origination;
  readonly updateIn: UpdateIn;
  readonly tx: PeerTx;
  readonly groups: TxGroups;
  readonly flushes: FlushQueue;
  /** What the socket was given since the last `take`. */
  private sent: Buffer[] = [];
  private readonly framer = new Framer();

  constructor(
    readonly addr: number,
    readonly peer: PeerRef,
    readonly policy: PeerPolicy,
    readonly ctx: CodecContext,
    host: HostInterfaces,
  ) {
    const id = formatIpv4(addr);
    const me: LocalInfo = { asn: ASN, routerId: id, clusterId: id };
    const local: PeerRef = { id: '', asn: ASN, routerId: addr, ebgp: false, local: true, rrClient: false };
    this.rib = new Rib(DEFAULT_DECISION, connectedResolver(host, clock));
    // As Speaker.onRoutes sets it: every change of a prefix's candidates is reported.
    this.rib.reportEveryChange = true;
    this.best = new BestRoutes(this.rib, DEFAULT_DECISION);
    this.origination = new Origination(this.rib, local);
    this.updateIn = new UpdateIn(this.rib, me);
    this.flushes = new FlushQueue(clock);
    this.groups = new TxGroups((peerId) => this.rib.countFrom(peerId) > 0);
    const session = {
      writable: true,
      localAddress: id,
      send: (buf: Buffer) => {
        this.sent.push(Buffer.from(buf));
        return true;
      },
    };
    this.tx = new PeerTx(
      {
        rib: this.rib,
        exportTable: new AttrTable(),
        me,
        clock,
        host,
        flushes: this.flushes,
        writer: new Writer(64 * 1024),
        afterBatch: () => {},
        batch: BATCH,
        groups: this.groups,
      },
      session,
      ctx,
      peer,
      policy,
      false,
    );
  }

  /** What Speaker.fanOut does with deltas, then the flush a small read or the loop's turn runs. */
  private fanOut(deltas: readonly Delta[], routes: RouteChange[]): void {
    this.groups.fanOut(deltas, true);
    if (deltas.length > 0) for (const c of this.best.changes(deltas)) routes.push(c);
    this.flushes.run();
  }

  /** Speaker.setOriginated. */
  originate(prefixes: readonly number[], routes: RouteChange[]): void {
    this.fanOut(this.origination.set(prefixes), routes);
  }

  /** What the session's reads and Speaker.onUpdate do with the peer's bytes. */
  receive(bytes: readonly Buffer[], routes: RouteChange[]): void {
    for (const b of bytes) this.framer.push(b);
    for (let f = this.framer.next(); f; f = this.framer.next()) {
      const m = decodeMessage(f, this.ctx);
      if (m.type !== MsgType.Update) continue;
      const deltas: Delta[] = [];
      if (m.nlri.length > 0 || m.mpReach) this.tx.announcing();
      this.updateIn.receive(m, this.peer, this.policy, formatIpv4(this.addr), this.ctx.as4, deltas);
      this.fanOut(deltas, routes);
    }
  }

  take(): Buffer[] {
    const out = this.sent;
    this.sent = [];
    return out;
  }
}

/**
 * The `n`th /26 block of an IPv4 pool (the agent's default block size; the pool itself when it
 * is smaller), wrapping round: a prefix key (addr * 64 + len).
 */
export function poolBlock(pool: { base: number; len: number }, n: number): number {
  const len = Math.max(26, pool.len);
  return (pool.base + (n % 2 ** (len - pool.len)) * 2 ** (32 - len)) * 64 + len;
}

/**
 * Runs the block path (above) `rounds` times over `blocks` blocks of the IPv4 pool `pool`, with
 * the agent's export rules for its pools (`exportRules`; default: accept within `pool`, reject
 * the rest). Returns the route changes the receiving side's kernel would have been given, in
 * order, for the agent's part of the warm-up.
 */
export function warmUpMesh(
  pool: { base: number; len: number } = { base: 0x0af40000, len: 16 },
  exportRules?: readonly PrefixRuleConfig[],
  blocks: number = MESH_WARM_UP.blocks,
  rounds: number = MESH_WARM_UP.rounds,
): RouteChange[] {
  const families = { multiprotocol: [IPV4_UNICAST, IPV6_UNICAST] };
  const ctx = negotiate(makeOpen(ASN, 90, A, families), makeOpen(ASN, 90, B, families));
  const ref = (addr: number): PeerRef => ({
    id: formatIpv4(addr),
    asn: ASN,
    routerId: addr,
    ebgp: false,
    local: false,
    rrClient: false,
  });
  const policy = policyOf({
    routeReflectorClient: false,
    nextHopSelf: false,
    allowasIn: 0,
    import: [],
    export: exportRules
      ? [...exportRules]
      : [
          { prefix: `${formatIpv4(pool.base)}/${pool.len}`, ge: pool.len, le: 32, action: 'accept' },
          { prefix: '0.0.0.0/0', ge: 0, le: 32, action: 'reject' },
          { prefix: '::/0', ge: 0, le: 128, action: 'reject' },
        ],
  });
  const host: HostInterfaces = {
    interfaces: () => ({
      eth1: [
        {
          address: formatIpv4(A),
          netmask: '255.255.255.0',
          family: 'IPv4',
          mac: '02:00:00:00:00:01',
          internal: false,
          cidr: `${formatIpv4(A)}/24`,
        },
      ],
    }),
  };
  const a = new Side(A, ref(B), policy, ctx, host);
  const b = new Side(B, ref(A), policy, ctx, host);
  const routes: RouteChange[] = [];
  const scratch: RouteChange[] = [];
  for (let round = 0; round < rounds; round++)
    for (let k = 0; k < blocks; k++) {
      const key = poolBlock(pool, round * blocks + k);
      a.originate([key], scratch);
      b.receive(a.take(), routes);
      a.originate([], scratch);
      b.receive(a.take(), routes);
      // The other way round, so that each side runs both parts.
      b.originate([key], scratch);
      a.receive(b.take(), scratch);
      b.originate([], scratch);
      a.receive(b.take(), scratch);
    }
  return routes;
}
