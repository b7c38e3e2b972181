/**
 * Warming the UPDATE path: before the speaker listens, `warmUp` runs the code a table load runs
 * over synthetic IPv4 prefixes, announced and withdrawn, five times: 8k /24s over four sets, and
 * 4k sets of four /24s each (a set per UPDATE, as from a peer with a real table's variety of
 * paths: the code that runs once per new set, interning it, its export answer, its encoding,
 * must be compiled too; without this part a fresh speaker took its first 100k prefixes over 20k
 * sets in 0.16-0.21 s of CPU in bench/bgp/pipeline.ts, against 0.13 s once warm). Framing,
 * decoding, the UPDATE-in pipeline (update-in.ts: RFC 7606 checks, import policy, the RIB), and
 * the peer-tx side (peer-tx.ts: export, the Adj-RIB-Out on the RIB's slots, packing UPDATEs).
 * About 0.4 s, and as much CPU again in V8's compiler threads; the speaker then has its garbage
 * collected. It opens nothing, and leaves its flush queues' calls at the loop's next turn, which
 * find nothing to run (each round runs its queue itself), and the objects of its last pass (below).
 *
 * Why the last pass's objects are kept: V8's compiled code holds the object shapes it checks for
 * weakly, and a shape that no live object has any more is dropped by a memory-reducing collection,
 * with all the code compiled against it. V8's memory reducer runs such collections in a process
 * gone idle, some 8 s after start; in an idle speaker the warm-up's objects were the only ones of
 * several shapes (a decoded UPDATE and its attributes, an attribute set, an export answer), and
 * a speaker that had sat idle took its first 100k prefixes in code being compiled again: 0.064 s
 * against 0.031 s a second after start (bench/bgp, `--settle 10`). So the warm-up ends with a
 * pass over a small table with four prefixes of each shape, whose objects stay for the life of
 * the process (0.75 MiB, mostly the arrays a new RIB and Adj-RIB-Out start with).
 *
 * Why 4k sets and five rounds: V8 compiles a function once it has run enough of its own
 * bytecode, more for a longer function. With 1k sets, decodeMessage, UpdateIn.receive and
 * packBatch, which run once per UPDATE, were still interpreted when the first real table came;
 * with three rounds, the flush (TxGroup.flush) and the attribute table's growth were, and
 * bench/bgp/pipeline.ts's first load after the warm-up took 85-90 ms against 72 once hot
 * (five rounds: 72-80 ms, for 0.05 s more warm-up; a second warm-up gave the same for 0.3 s).
 *
 * Why: V8 runs new code in its interpreter and compiles a function only after it has run hot, so
 * a fresh speaker takes its first table markedly slower than the next (bench/bgp/HISTORY.md),
 * and for a router the first table after a restart is the one that matters most: its peers are
 * waiting to converge.
 *
 * "Same kinds of object" is the rule that makes it work: V8 compiles for the object shapes and
 * kinds of value it has seen, and a function that later meets another kind is deoptimised at the
 * first real UPDATE and runs slowly until it is hot again. So the warm-up runs the modules the
 * sessions run (UpdateIn, PeerTx, PeerExport, AttrTable, decodeMessage), never stand-ins, with:
 *  - PeerRef literals with the properties in the speaker's order, and addresses made by
 *    formatIpv4 as the configuration's and the decoder's are (string comparisons are specialised
 *    to the kind of string seen);
 *  - a codec context negotiated from two OPENs, policies from `peerPolicy` (with and without
 *    prefix rules, on both sides), raw attribute keys as the sessions make them;
 *  - several shapes of an eBGP peer's attributes (with and without MED and communities), the
 *    many-set part first (run after the rest, it made run.ts's one-set load slower), two
 *    NEXT_HOPs in turn and our address on the session another each round (the code for the
 *    next one runs, not only for the first), an End-of-RIB at the end, and flushes after every
 *    UPDATE, every eighth and only at the end (changes that cancel out before they are sent
 *    take their own path through the Adj-RIB-Out; with the real time, a long queue also goes
 *    out early, as the speaker's does), one per round;
 *  - the speaker's own clock functions for reading the time and for "soon" (systemClock's: a
 *    call compiled for the warm-up's own function would be thrown away at the first real one).
 *
 * Checking: `node --trace-deopt` on the speaker (bench/bgp) shows the deoptimisations, if any, in
 * the UPDATE path while the first table loads and is withdrawn.
 */
import { formatIpv4 } from '../net/addr.js';
import { type Clock, systemClock } from './clock.js';
import { FlushQueue, PeerTx } from './peer-tx.js';
import { TxGroups } from './update-group.js';
import { type LocalInfo, type PrefixRule, peerPolicy } from './policy.js';
import { AttrTable } from './rib/attrs.js';
import { type PeerRef, Rib, SlotList } from './rib/rib.js';
import { UpdateIn } from './update-in.js';
import type { PathAttributes } from './wire/attributes.js';
import { AsPathSegmentType, IPV4_UNICAST, MsgType, Origin } from './wire/constants.js';
import { negotiate } from './wire/context.js';
import { Framer } from './wire/framer.js';
import { decodeMessage } from './wire/message.js';
import { makeOpen } from './wire/open.js';
import { encodeEndOfRib, packUpdates } from './wire/update.js';
import { Writer } from './wire/writer.js';

const PREFIXES = 8192;
/** The last pass's objects, kept for the life of the process (see above). */
const kept: unknown[] = [];
const ROUNDS = 5;
/**
 * The warm-up for a node agent (agent.ts): its tables are a mesh's blocks, a few hundred prefixes
 * over one set per node, never a router's 100k over 20k sets. The full warm-up leaves a speaker
 * holding about 17 MiB more (81 MiB against 64, a standalone speaker 1 s after start) until V8's
 * memory reducer runs, which a busy process may not let it do: on every node of a cluster, that
 * is not worth a faster first table of many sets.
 */
export const SMALL_WARM_UP = { rounds: 3, manySets: 1024 } as const;

/** Sets of the many-set part of the table. */
const MANY_SETS = 4096;
/** Attributes beyond ORIGIN, AS_PATH and NEXT_HOP, one variant per quarter of the table. */
const VARIANTS: Partial<PathAttributes>[] = [
  {},
  { med: 10 },
  { communities: [(64512 * 65536 + 100) >>> 0] },
  { med: 20, communities: [(64512 * 65536 + 200) >>> 0], largeCommunities: [[64512, 1, 2]] },
];

/**
 * The peers (eBGP from 192.0.2.1 AS 64512, to 192.0.2.3 AS 64514), our address and AS, a codec
 * context negotiated from two OPENs as a session's is, and a clock whose timers never fire: it
 * reads the time and defers "soon" as the speaker's does, and so a flush scheduled runs only
 * when the loop turns, after the caller (which flushes when it means to) is done. The warm-up's,
 * and bench/bgp/pipeline.ts's.
 */
export function syntheticSetup() {
  const peer = (addr: number, asn: number): PeerRef => ({
    id: formatIpv4(addr),
    asn,
    routerId: addr,
    ebgp: true,
    local: false,
    rrClient: false,
  });
  const from = peer(0xc0000201, 64512);
  const to = peer(0xc0000203, 64514);
  const us = formatIpv4(0xc0000202);
  const me: LocalInfo = { asn: 64513, routerId: us, clusterId: us };
  const families = { multiprotocol: [IPV4_UNICAST] };
  const ctx = negotiate(
    makeOpen(me.asn, 90, 0xc0000202, families),
    makeOpen(from.asn, 90, from.routerId, families),
  );
  return { peer, from, to, us, me, ctx, clock: warmUpClock };
}

/**
 * A clock whose timers never fire: it reads the time and defers "soon" as the speaker's does
 * (the warm-ups', here and in warmup-mesh.ts).
 */
export const warmUpClock: Clock = {
  now: systemClock.now,
  date: systemClock.date,
  after: () => ({ cancel() {}, refresh() {} }),
  every: () => ({ cancel() {}, refresh() {} }),
  soon: systemClock.soon,
  sleep: () => Promise.resolve(),
};

/** Run a synthetic table through the UPDATE path; returns the prefixes it passed on. */
export function warmUp(prefixes = PREFIXES, rounds = ROUNDS, manySets = MANY_SETS): number {
  const { from, to, us, me, ctx, clock } = syntheticSetup();
  // The default policy, then an export filter and next-hop-self (which an eBGP peer ignores).
  const all: PrefixRule = { prefix: 0, ge: 0, le: 32, action: 'accept' };
  const policies = [peerPolicy(), peerPolicy({ exportRules: [all] }), peerPolicy({ nextHopSelf: true })];
  const importPolicies = [peerPolicy(), peerPolicy({ importRules: [all] })];
  const keys: number[] = [];
  for (let i = 0; i < prefixes; i++) keys.push((0x0a000000 + i * 256) * 64 + 24);
  const base: PathAttributes = {
    origin: Origin.Igp,
    asPath: [{ type: AsPathSegmentType.AsSequence, asns: [from.asn, 64600] }],
    nextHop: from.id,
  };
  // Small, so that packing grows it, as a flush of a long queue grows the speaker's.
  const w = new Writer(4096);
  const otherHop = formatIpv4(0xc0000209);
  // A quarter of the table for each of the common shapes of an eBGP peer's attributes: V8
  // specialises property reads to the shapes it has seen, and a set of another shape at the first
  // real UPDATE would throw that code away.
  // First a table of many sets, a few prefixes each: the code a set runs once (interning a new
  // set, its export answer, its encoding) must be hot too.
  const manyKeys: number[] = [];
  for (let i = 0; i < manySets * 4; i++) manyKeys.push((0x0b000000 + i * 256) * 64 + 24);
  const manySet = (s: number): PathAttributes => ({
    ...base,
    ...VARIANTS[s % VARIANTS.length]!,
    asPath: [{ type: AsPathSegmentType.AsSequence, asns: [from.asn, 64600 + (s % 50), 4200000000 + s] }],
    // Two next hops in turn: the code for a peer's next NEXT_HOP runs, not only the first.
    nextHop: s % 2 ? from.id : otherHop,
    med: s,
  });
  for (let s = 0; s < manySets; s++)
    packUpdates(
      w,
      { family: IPV4_UNICAST, prefixes: manyKeys.slice(s * 4, s * 4 + 4), attrs: manySet(s) },
      ctx,
    );
  packUpdates(w, { family: IPV4_UNICAST, prefixes: manyKeys, withdraw: true }, ctx);
  const quarter = prefixes / VARIANTS.length;
  VARIANTS.forEach((extra, i) => {
    const part = keys.slice(i * quarter, (i + 1) * quarter);
    packUpdates(w, { family: IPV4_UNICAST, prefixes: part, attrs: { ...base, ...extra } }, ctx);
  });
  packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, withdraw: true }, ctx);
  // A peer's table ends with one, and the decoder takes it apart from other UPDATEs.
  w.bytes(encodeEndOfRib(IPV4_UNICAST, ctx));
  const stream = Buffer.from(w.take());
  // The table of the last pass, whose objects stay (`kept`): four prefixes of each shape above,
  // a withdrawal and an End-of-RIB.
  const few = (first: number, i: number) => [0, 1, 2, 3].map((j) => (first + (i * 4 + j) * 256) * 64 + 24);
  for (let s = 0; s < 2 * VARIANTS.length; s++)
    packUpdates(w, { family: IPV4_UNICAST, prefixes: few(0x0c000000, s), attrs: manySet(s) }, ctx);
  VARIANTS.forEach((extra, i) => {
    packUpdates(w, { family: IPV4_UNICAST, prefixes: few(0x0d000000, i), attrs: { ...base, ...extra } }, ctx);
  });
  packUpdates(w, { family: IPV4_UNICAST, prefixes: few(0x0c000000, 0), withdraw: true }, ctx);
  w.bytes(encodeEndOfRib(IPV4_UNICAST, ctx));
  const keptStream = Buffer.from(w.take(stream.length));
  // A session whose socket takes everything, on an interface the host does not list.
  const noInterfaces = { interfaces: () => ({}) };
  let passed = 0;
  // The rounds, then one pass over the small table, whose objects are kept.
  for (let round = 0; round <= rounds; round++) {
    const last = round === rounds;
    // Our address on the session, another each round: the sending side's code for a session's
    // next address runs too (a real session's is never the warm-up's).
    const local = round === 0 ? us : formatIpv4(0xc0000202 + round * 256);
    const session = { writable: true, localAddress: local, send: () => true };
    const rib = new Rib();
    const groups = new TxGroups(() => false);
    const flushes = new FlushQueue(clock);
    const tx = new PeerTx(
      {
        rib,
        exportTable: new AttrTable(),
        me,
        clock,
        host: noInterfaces,
        flushes,
        writer: w,
        afterBatch: () => {},
        // Smaller batches than the speaker's, so that a flush also takes part of a long queue.
        batch: 1024,
        groups,
      },
      session,
      ctx,
      to,
      policies[round % policies.length]!,
      false,
    );
    const pipeline = new UpdateIn(rib, me);
    const imports = importPolicies[round % importPolicies.length]!;
    const changed = new SlotList();
    const framer = new Framer();
    framer.push(last ? keptStream : stream);
    const messages: unknown[] = [];
    // Flushes after every UPDATE, every eighth, and only at the end: changes that cancel out
    // before they are sent take their own path through the Adj-RIB-Out.
    const every = [1, 8, Number.POSITIVE_INFINITY][round % 3]!;
    let n = 0;
    for (let f = framer.next(); f; f = framer.next()) {
      const m = decodeMessage(f, ctx);
      if (m.type !== MsgType.Update) continue;
      // What the speaker's onUpdate and fanOut do.
      pipeline.receive(m, from, imports, local, ctx.as4, changed);
      groups.fanOut(changed, true);
      changed.length = 0;
      if (++n % every === 0) tx.flush();
      if (last) messages.push(m);
    }
    tx.flush();
    // What the loop's next turn does: the queue of flushes asked for runs (each finds nothing to
    // send) and takes a new array. Left to the turn after the warm-up, that first new array
    // changed what V8 had assumed of the queue, and TxGroups.fanOut's code was thrown away.
    flushes.run();
    if (last) {
      kept.length = 0;
      kept.push(messages, framer, pipeline, rib, groups, tx, session, imports, changed);
      break;
    }
    passed += tx.packed;
    rib.prune();
    tx.close();
  }
  return passed;
}
