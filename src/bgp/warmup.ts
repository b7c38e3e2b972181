/**
 * Warming the UPDATE path at start. V8 runs new code in its interpreter and compiles a function
 * only after it has run hot for a while, so the first hundred thousand prefixes a fresh speaker
 * takes in cost about half as much again as the next ones (bench/bgp: 0.15 s against 0.10 s for
 * 100k). For a router the first table after a restart is the one that matters most: its peers
 * are waiting to converge. So before the speaker listens, `warmUp` runs the code a table load
 * runs — framing, UPDATE decoding and validation, interning, the RIB, an Adj-RIB-Out on the
 * RIB's slots, packing UPDATEs — over 8k synthetic IPv4 prefixes, announced and withdrawn, three
 * times. It costs about a tenth of a second of CPU once, opens nothing and leaves nothing: every
 * object is a scratch one.
 *
 * The objects are of the kinds the real ones are, because V8 compiles for what it has seen: a
 * function that then meets another kind of object is thrown away (deoptimised) at the first real
 * UPDATE and runs slowly until it is hot again, which undid most of the warm-up (100k load: 50 ms
 * with those deoptimisations, 35-40 without). So:
 *  - PeerRef literals with the properties in the speaker's order, and addresses made by
 *    formatIpv4 as the configuration's and the decoder's are (string comparisons are specialised
 *    to the kind of string seen);
 *  - a codec context negotiated from two OPENs, policies from `peerPolicy`, the speaker's own
 *    export and next-hop classes (export.ts), attribute sets from AttrTable, updates from
 *    decodeMessage;
 *  - several shapes of an eBGP peer's attributes (with and without MED and communities), three
 *    policies, and flushes after every UPDATE, every eighth and only at the end (changes that
 *    cancel out before they are sent), one per round.
 *
 * Checking for deoptimisations: `node --trace-deopt` on the speaker (bench/bgp). In most runs
 * there are none in the UPDATE path while the first table loads and is withdrawn; in some, one,
 * at a branch only a bigger table takes (a queue past 65,536 slots given back).
 */
import { formatIpv4 } from '../net/addr.js';
import { PeerExport, SessionNextHops } from './export.js';
import { type LocalInfo, type PrefixRule, peerPolicy } from './policy.js';
import { AdjRibOut, packBatch } from './rib/adj-out.js';
import { AttrTable } from './rib/attrs.js';
import { type PeerRef, Rib, SlotList } from './rib/rib.js';
import type { PathAttributes } from './wire/attributes.js';
import { AsPathSegmentType, IPV4_UNICAST, MsgType, Origin } from './wire/constants.js';
import { negotiate } from './wire/context.js';
import { Framer } from './wire/framer.js';
import { decodeMessage } from './wire/message.js';
import { makeOpen } from './wire/open.js';
import { packUpdates } from './wire/update.js';
import { validateUpdate } from './wire/validate.js';
import { Writer } from './wire/writer.js';

const PREFIXES = 8192;
const ROUNDS = 3;
/** Attributes beyond ORIGIN, AS_PATH and NEXT_HOP, one variant per quarter of the table. */
const VARIANTS: Partial<PathAttributes>[] = [
  {},
  { med: 10 },
  { communities: [(64512 * 65536 + 100) >>> 0] },
  { med: 20, communities: [(64512 * 65536 + 200) >>> 0], largeCommunities: [[64512, 1, 2]] },
];

/** Run a synthetic table through the UPDATE path; returns the prefixes it passed on. */
export function warmUp(prefixes = PREFIXES, rounds = ROUNDS): number {
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
  // A context negotiated from two OPENs, as a session's is.
  const families = { multiprotocol: [IPV4_UNICAST] };
  const ctx = negotiate(
    makeOpen(me.asn, 90, 0xc0000202, families),
    makeOpen(from.asn, 90, from.routerId, families),
  );
  // The default policy, then an export filter and next-hop-self (which an eBGP peer ignores).
  const all: PrefixRule = { prefix: 0, ge: 0, le: 32, action: 'accept' };
  const policies = [peerPolicy(), peerPolicy({ exportRules: [all] }), peerPolicy({ nextHopSelf: true })];
  const keys: number[] = [];
  for (let i = 0; i < prefixes; i++) keys.push((0x0a000000 + i * 256) * 64 + 24);
  const base: PathAttributes = {
    origin: Origin.Igp,
    asPath: [{ type: AsPathSegmentType.AsSequence, asns: [from.asn, 64600] }],
    nextHop: from.id,
  };
  // Small, so that packing grows it, as a flush of a long queue grows the speaker's.
  const w = new Writer(4096);
  // A quarter of the table for each of the common shapes of an eBGP peer's attributes: V8
  // specialises property reads to the shapes it has seen, and a set of another shape at the first
  // real UPDATE would throw that code away.
  const quarter = prefixes / VARIANTS.length;
  VARIANTS.forEach((extra, i) => {
    const part = keys.slice(i * quarter, (i + 1) * quarter);
    packUpdates(w, { family: IPV4_UNICAST, prefixes: part, attrs: { ...base, ...extra } }, ctx);
  });
  packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, withdraw: true }, ctx);
  const stream = Buffer.from(w.take());
  const ourHops = new SessionNextHops(us, [`::ffff:${us}`]);
  // What the speaker's flush does.
  const flush = (out: AdjRibOut): number => {
    let sent = 0;
    while (out.pendingCount > 0) {
      // Smaller batches than the speaker's, so that a flush also takes part of a long queue.
      const batch = out.take(1024);
      packBatch(w.reset(), batch, ctx, ourHops);
      sent += batch.count;
    }
    return sent;
  };
  let passed = 0;
  for (let round = 0; round < rounds; round++) {
    const rib = new Rib();
    const table = new AttrTable();
    const out = new AdjRibOut(table, rib);
    const exports = new PeerExport(table, me, to, policies[round % policies.length]!, false);
    const changed = new SlotList();
    const framer = new Framer();
    framer.push(stream);
    // Flushes after every UPDATE, every eighth, and only at the end: changes that cancel out
    // before they are sent take their own path through the Adj-RIB-Out.
    const every = [1, 8, Number.POSITIVE_INFINITY][round % 3]!;
    let n = 0;
    for (let f = framer.next(); f; f = framer.next()) {
      const m = decodeMessage(f, ctx);
      if (m.type !== MsgType.Update) continue;
      validateUpdate(m, { ebgp: true, peerAs: from.asn, localAddress: us });
      // What the speaker's onUpdate and applySlots do.
      rib.withdrawKeys(m.withdrawn, m.withdrawnIds, from.id, changed);
      if (m.nlri.length) {
        const ra = rib.attrs.intern(m.attrs, m.attrs.nextHop ? [m.attrs.nextHop] : []);
        rib.announceKeys(m.nlri, m.nlriIds, from, ra, changed);
        rib.attrs.release(ra);
      }
      rib.feed(out, changed, true, false, exports);
      changed.length = 0;
      if (++n % every === 0) passed += flush(out);
    }
    passed += flush(out);
    rib.prune();
    exports.clear();
    out.clear();
  }
  return passed;
}
