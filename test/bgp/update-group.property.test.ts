/**
 * Update groups (src/bgp/update-group.ts) against the rule they must keep: whatever the order of
 * route changes, sessions coming and going, sockets that stop taking data and drain again, route
 * refreshes and time passing, every peer ends up holding exactly the export of the Loc-RIB for
 * it: to an eBGP peer every best path, with our AS prepended and NEXT_HOP self, except the paths
 * it sent us itself (split horizon); to an iBGP peer the paths learned over eBGP, and those
 * learned over iBGP only when we reflect them (RFC 4456 §8). Each peer's bytes are decoded as the
 * peer would (Framer, decodeMessage), so a group that sent a member something meant for others,
 * or skipped it while it was stalled, fails. Worlds of eBGP peers only, and of iBGP peers (one of
 * them route-reflector clients when we reflect) beside eBGP ones: iBGP peers that send routes
 * share a group unless we reflect to them.
 *
 * The sessions are stand-ins (a send that reports "full" as Node's socket.write does), the rest
 * is the speaker's own code: Rib, UpdateIn, TxGroups, PeerTx, FakeClock.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/bgp/clock.js';
import { FlushQueue, PeerTx, type TxShared } from '../../src/bgp/peer-tx.js';
import { type LocalInfo, type PeerPolicy, peerPolicy } from '../../src/bgp/policy.js';
import { AttrTable } from '../../src/bgp/rib/attrs.js';
import { type PeerRef, Rib, SlotList } from '../../src/bgp/rib/rib.js';
import { UpdateIn } from '../../src/bgp/update-in.js';
import { SPLIT_AFTER_MS, TxGroups } from '../../src/bgp/update-group.js';
import { negotiate } from '../../src/bgp/wire/context.js';
import {
  AsPathSegmentType,
  Framer,
  IPV4_UNICAST,
  MsgType,
  makeOpen,
  packUpdates,
  Writer,
} from '../../src/bgp/wire/index.js';
import { decodeMessage } from '../../src/bgp/wire/message.js';
import type { DecodedUpdate } from '../../src/bgp/wire/update.js';
import { formatPrefix, parsePrefix } from '../../src/net/addr.js';

const ME: LocalInfo = { asn: 64512, routerId: '10.0.0.9', clusterId: '10.0.0.9' };
const US = '10.0.0.9';
const PEERS = 5;
const PREFIXES = 10;
const CTX = negotiate(
  makeOpen(64512, 90, 0x0a000009, { multiprotocol: [IPV4_UNICAST] }),
  makeOpen(64600, 90, 0xc0000201, { multiprotocol: [IPV4_UNICAST] }),
);
const KEYS = Array.from({ length: PREFIXES }, (_, j) => parsePrefix(`10.${j}.0.0/16`) as number);
const POLICY = peerPolicy();
/** An export policy that keeps the first half of the prefixes from the peer. */
const HALF_RULES = KEYS.slice(0, PREFIXES / 2).map((prefix) => ({
  prefix,
  ge: 16,
  le: 16,
  action: 'reject' as const,
}));

/** Which peers are iBGP (the first `ibgp`), and whether we reflect (then peers 1 and 2 are clients). */
interface Kinds {
  ibgp: number;
  reflector: boolean;
}
const EBGP_ONLY: Kinds = { ibgp: 0, reflector: false };

const isClient = (k: Kinds, i: number) => k.reflector && (i === 1 || i === 2) && i < k.ibgp;
const refOf = (i: number, k: Kinds = EBGP_ONLY): PeerRef => ({
  id: `192.0.2.${i + 1}`,
  asn: i < k.ibgp ? ME.asn : 64600 + i,
  routerId: 0xc0000201 + i,
  ebgp: i >= k.ibgp,
  local: false,
  rrClient: isClient(k, i),
});
const policyOf = (k: Kinds, i: number, half: boolean): PeerPolicy =>
  peerPolicy({ rrClient: isClient(k, i), ...(half ? { exportRules: HALF_RULES } : {}) });

/** A peer's end of a session: what it has been sent, decoded; `stalled`: the socket is "full". */
class FakePeer {
  readonly table = new Map<string, string>();
  eors = 0;
  stalled = false;
  /** send() returned false since the last drain. */
  owesDrain = false;
  up = false;
  private framer = new Framer();
  readonly writable = true;
  readonly localAddress = US;

  send(buf: Buffer): boolean {
    if (!this.up) return false;
    this.framer.push(buf);
    for (let f = this.framer.next(); f; f = this.framer.next()) {
      const m = decodeMessage(f, CTX);
      if (m.type !== MsgType.Update) continue;
      if (m.endOfRib !== undefined) this.eors++;
      for (const k of m.withdrawn) this.table.delete(formatPrefix(k));
      for (const k of m.nlri)
        this.table.set(
          formatPrefix(k),
          `${m.attrs.asPath!.map((s) => s.asns.join(' ')).join(' ')} via ${m.attrs.nextHop}`,
        );
    }
    if (this.stalled) this.owesDrain = true;
    return !this.stalled;
  }

  reset(): void {
    this.table.clear();
    this.eors = 0;
    this.stalled = false;
    this.owesDrain = false;
    this.framer = new Framer();
  }
}

function updateFrom(ref: PeerRef, j: number, withdraw: boolean, med: number): DecodedUpdate {
  const w = new Writer(4096);
  packUpdates(
    w,
    withdraw
      ? { family: IPV4_UNICAST, prefixes: [KEYS[j]!], withdraw: true }
      : {
          family: IPV4_UNICAST,
          prefixes: [KEYS[j]!],
          attrs: {
            origin: 0,
            asPath: ref.ebgp ? [{ type: AsPathSegmentType.AsSequence, asns: [ref.asn] }] : [],
            nextHop: ref.id,
            med,
          },
        },
    CTX,
  );
  const f = new Framer();
  f.push(Buffer.from(w.take()));
  return decodeMessage(f.next()!, CTX) as DecodedUpdate;
}

/** One speaker's sending side, driven by hand. */
class World {
  readonly clock = new FakeClock();
  readonly rib = new Rib();
  readonly groups = new TxGroups((id) => this.rib.countFrom(id) > 0);
  readonly shared: TxShared;
  readonly updateIn = new UpdateIn(this.rib, ME);
  readonly peers = Array.from({ length: PEERS }, () => new FakePeer());
  readonly tx: (PeerTx | undefined)[] = Array.from({ length: PEERS }, () => undefined);
  /** Each peer's export policy. */
  readonly policies: PeerPolicy[];
  /** What each peer has announced to us. */
  readonly sent = Array.from({ length: PEERS }, () => new Set<number>());
  private readonly changed = new SlotList();

  constructor(
    batch: number,
    readonly kinds: Kinds = EBGP_ONLY,
  ) {
    this.policies = Array.from({ length: PEERS }, (_, i) => policyOf(kinds, i, false));
    this.shared = {
      rib: this.rib,
      exportTable: new AttrTable(),
      me: ME,
      clock: this.clock,
      host: { interfaces: () => ({}) },
      flushes: new FlushQueue(this.clock),
      writer: new Writer(1024),
      afterBatch: () => {},
      batch,
      groups: this.groups,
    };
  }

  private receive(i: number, u: DecodedUpdate): void {
    if (u.nlri.length > 0) this.tx[i]?.announcing();
    this.updateIn.receive(u, this.ref(i), POLICY, US, true, this.changed);
    this.groups.fanOut(this.changed, true);
    this.changed.length = 0;
  }

  ref(i: number): PeerRef {
    return refOf(i, this.kinds);
  }

  announce(i: number, j: number, med: number): void {
    this.sent[i]!.add(j);
    this.receive(i, updateFrom(this.ref(i), j, false, med));
  }

  withdraw(i: number, j: number): void {
    this.sent[i]!.delete(j);
    this.receive(i, updateFrom(this.ref(i), j, true, 0));
  }

  connect(i: number): void {
    if (this.tx[i]) return;
    const p = this.peers[i]!;
    p.reset();
    p.up = true;
    const tx = new PeerTx(this.shared, p, CTX, this.ref(i), this.policies[i]!, this.kinds.reflector);
    this.tx[i] = tx;
    tx.fill(true);
  }

  /** The session ends; without graceful restart its routes go with it. */
  disconnect(i: number): void {
    const tx = this.tx[i];
    if (!tx) return;
    this.peers[i]!.up = false;
    tx.close();
    this.tx[i] = undefined;
    for (const j of [...this.sent[i]!]) this.withdraw(i, j);
  }

  stall(i: number): void {
    this.peers[i]!.stalled = true;
  }

  unstall(i: number): void {
    const p = this.peers[i]!;
    p.stalled = false;
    if (p.owesDrain) {
      p.owesDrain = false;
      this.tx[i]?.drained();
    }
  }

  /** A new export policy (as neighbors.ts applies one): then what the peer should hold, again. */
  setPolicy(i: number, half: boolean): void {
    const policy = policyOf(this.kinds, i, half);
    this.policies[i] = policy;
    const tx = this.tx[i];
    if (!tx) return;
    tx.setPolicy(policy, this.kinds.reflector);
    tx.fill(false);
  }

  refresh(i: number): void {
    this.tx[i]?.refresh(IPV4_UNICAST, false);
  }

  /** Every socket drains, time passes until nothing is left to do. */
  settle(): void {
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < PEERS; i++) this.unstall(i);
      this.clock.advance(SPLIT_AFTER_MS * 2);
      if (this.peers.every((p) => !p.owesDrain)) break;
    }
  }

  /**
   * What peer `i` should hold: every best path but its own; to an eBGP peer prepended with
   * NEXT_HOP self, to an iBGP peer as it came (learned over iBGP: only when reflected).
   */
  expected(i: number): Map<string, string> {
    const m = new Map<string, string>();
    const to = this.ref(i);
    for (const k of KEYS) {
      const slot = this.rib.slotOf(k);
      const row = slot < 0 ? -1 : this.rib.bestRowAt(slot);
      if (row < 0) continue;
      const from = this.rib.peerAt(row);
      if (from.id === to.id) continue;
      if (!to.ebgp && !from.ebgp && !(this.kinds.reflector && (isClient(this.kinds, i) || from.rrClient)))
        continue;
      if (this.policies[i]!.exportRules.length > 0 && KEYS.indexOf(k) < PREFIXES / 2) continue;
      const path = from.ebgp ? [from.asn] : [];
      m.set(
        formatPrefix(k),
        to.ebgp ? `${[ME.asn, ...path].join(' ')} via ${US}` : `${path.join(' ')} via ${from.id}`,
      );
    }
    return m;
  }

  /**
   * No group with several members holds a peer that sends routes, unless it is an iBGP group we
   * do not reflect to (no member is sent another's paths, its own included).
   */
  checkSharing(): void {
    for (const [i, tx] of this.tx.entries()) {
      if (!tx || tx.group.members.length < 2 || this.rib.countFrom(tx.to.id) === 0) continue;
      expect(tx.to.ebgp).toBe(false);
      expect(this.kinds.reflector && isClient(this.kinds, i)).toBe(false);
    }
  }
}

type Op =
  | { op: 'announce'; i: number; j: number; med: number }
  | { op: 'withdraw'; i: number; j: number }
  | { op: 'connect' | 'disconnect' | 'stall' | 'unstall' | 'refresh'; i: number }
  | { op: 'advance'; ms: number }
  | { op: 'policy'; i: number; half: boolean };

const peerIx = fc.integer({ min: 0, max: PEERS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('announce' as const),
      i: peerIx,
      j: fc.integer({ min: 0, max: PREFIXES - 1 }),
      med: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('withdraw' as const),
      i: peerIx,
      j: fc.integer({ min: 0, max: PREFIXES - 1 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constantFrom(
        'connect' as const,
        'disconnect' as const,
        'stall' as const,
        'unstall' as const,
        'refresh' as const,
      ),
      i: peerIx,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('advance' as const),
      ms: fc.constantFrom(0, 1, SPLIT_AFTER_MS + 1),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('policy' as const), i: peerIx, half: fc.boolean() }) },
);

function run(w: World, ops: Op[]): void {
  for (const o of ops) {
    switch (o.op) {
      case 'announce':
        w.announce(o.i, o.j, o.med);
        break;
      case 'withdraw':
        w.withdraw(o.i, o.j);
        break;
      case 'advance':
        w.clock.advance(o.ms);
        break;
      case 'policy':
        w.setPolicy(o.i, o.half);
        break;
      default:
        w[o.op](o.i);
    }
    w.checkSharing();
  }
  w.settle();
}

describe('update groups', () => {
  const kindsArb: fc.Arbitrary<Kinds> = fc.oneof(
    fc.constant(EBGP_ONLY),
    fc.record({ ibgp: fc.constant(3), reflector: fc.boolean() }),
  );
  it('every peer ends up holding the export of the Loc-RIB for it, whatever happened on the way', () => {
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 80 }),
        fc.constantFrom(1, 3, 64),
        kindsArb,
        (ops, batch, kinds) => {
          const w = new World(batch, kinds);
          run(w, ops);
          for (let i = 0; i < PEERS; i++) {
            if (!w.tx[i]) continue;
            expect(Object.fromEntries(w.peers[i]!.table)).toEqual(Object.fromEntries(w.expected(i)));
            expect(w.peers[i]!.eors).toBe(1);
            expect(w.tx[i]!.sentCount).toBe(w.expected(i).size);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('peers that send no routes share one group; a stuck one leaves it, and comes back once it has caught up', () => {
    const w = new World(2);
    for (let j = 0; j < PREFIXES; j++) w.announce(0, j, 0);
    for (let i = 0; i < PEERS; i++) w.connect(i);
    w.settle();
    // The source on its own, the four receivers together: one Adj-RIB-Out and one packing for them.
    expect(w.groups.sizes().sort()).toEqual([1, 4]);
    expect(w.tx[1]!.group).toBe(w.tx[4]!.group);

    // Receiver 4 stops taking data while the table changes: after SPLIT_AFTER_MS the rest go on.
    w.stall(4);
    for (let j = 0; j < PREFIXES; j++) w.withdraw(0, j);
    w.clock.advance(0);
    expect(w.tx[4]!.group).toBe(w.tx[1]!.group);
    w.clock.advance(SPLIT_AFTER_MS + 1);
    expect(w.tx[4]!.group).not.toBe(w.tx[1]!.group);
    expect(w.peers[1]!.table.size).toBe(0);
    // The source has withdrawn everything: it sends no routes now, and has joined the others.
    expect(w.tx[0]!.group).toBe(w.tx[1]!.group);
    expect(w.groups.sizes().sort()).toEqual([1, 4]);

    // It drains, catches up, and joins the others again.
    w.settle();
    expect(w.peers[4]!.table.size).toBe(0);
    expect(w.tx[4]!.group).toBe(w.tx[1]!.group);

    // A receiver that starts announcing leaves first: it is not sent its own route back.
    w.announce(2, 0, 0);
    w.settle();
    expect(w.tx[2]!.group.members).toEqual([w.tx[2]]);
    expect(w.peers[2]!.table.size).toBe(0);
    expect([...w.peers[1]!.table.keys()]).toEqual(['10.0.0.0/16']);
    expect(w.groups.sizes().sort()).toEqual([1, 4]);
  });

  it('a full iBGP mesh shares one group though every peer sends routes; reflection splits what it must', () => {
    const w = new World(2, { ibgp: 4, reflector: false });
    for (let i = 0; i < PEERS; i++) w.connect(i);
    for (let i = 0; i < PEERS; i++) w.announce(i, i, 0); // each node its own block; peer 4 is eBGP
    w.settle();
    // The four iBGP peers in one group (one packing of each change), the eBGP sender alone.
    expect(w.groups.sizes().sort()).toEqual([1, 4]);
    expect(w.tx[0]!.group).toBe(w.tx[3]!.group);
    // None is sent another's block, nor its own; the eBGP route goes to all four as it came.
    for (let i = 0; i < 4; i++)
      expect(Object.fromEntries(w.peers[i]!.table)).toEqual({ '10.4.0.0/16': '64604 via 192.0.2.5' });
    expect([...w.peers[4]!.table.keys()].sort()).toEqual([
      '10.0.0.0/16',
      '10.1.0.0/16',
      '10.2.0.0/16',
      '10.3.0.0/16',
    ]);

    // When we reflect (clients 1 and 2), a client's routes go to every other iBGP peer: clients
    // that send routes are each alone, the non-clients 0 and 3 still share.
    const rr = new World(2, { ibgp: 4, reflector: true });
    for (let i = 0; i < PEERS; i++) rr.connect(i);
    for (let i = 0; i < PEERS; i++) rr.announce(i, i, 0);
    rr.settle();
    expect(rr.groups.sizes().sort()).toEqual([1, 1, 1, 2]);
    expect(rr.tx[0]!.group).toBe(rr.tx[3]!.group);
    expect(rr.tx[1]!.group.members).toEqual([rr.tx[1]]);
    expect([...rr.peers[0]!.table.keys()].sort()).toEqual(['10.1.0.0/16', '10.2.0.0/16', '10.4.0.0/16']);
    expect([...rr.peers[1]!.table.keys()].sort()).toEqual([
      '10.0.0.0/16',
      '10.2.0.0/16',
      '10.3.0.0/16',
      '10.4.0.0/16',
    ]);
  });
});
