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
 * The objects have the shapes the real ones have (a PeerRef literal with the properties in the
 * speaker's order, attribute sets from AttrTable, updates from decodeMessage), so what V8
 * compiles for them is what the sessions use.
 */
import { AdjRibOut, type NextHopsFor, packBatch } from './rib/adj-out.js';
import { AttrTable } from './rib/attrs.js';
import { type ExportFn, type PeerRef, Rib, SlotList } from './rib/rib.js';
import { AsPathSegmentType, IPV4_UNICAST, MsgType, Origin } from './wire/constants.js';
import { makeContext } from './wire/context.js';
import { Framer } from './wire/framer.js';
import { decodeMessage } from './wire/message.js';
import { packUpdates } from './wire/update.js';
import { validateUpdate } from './wire/validate.js';
import { Writer } from './wire/writer.js';

const PREFIXES = 8192;
const ROUNDS = 3;

/** Run a synthetic table through the UPDATE path; returns the prefixes it passed on. */
export function warmUp(prefixes = PREFIXES, rounds = ROUNDS): number {
  const ctx = makeContext({ as4: true });
  const from: PeerRef = {
    id: '192.0.2.1',
    asn: 64512,
    routerId: 0xc0000201,
    ebgp: true,
    local: false,
    rrClient: false,
  };
  const keys: number[] = [];
  for (let i = 0; i < prefixes; i++) keys.push((0x0a000000 + i * 256) * 64 + 24);
  const attrs = {
    origin: Origin.Igp,
    asPath: [{ type: AsPathSegmentType.AsSequence, asns: [from.asn] }],
    nextHop: from.id,
  };
  const w = new Writer(1 << 16);
  packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, attrs }, ctx);
  packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, withdraw: true }, ctx);
  const stream = Buffer.from(w.take());
  const ourHops: NextHopsFor = { v4: () => '192.0.2.2', v6: () => ['2001:db8::2'] };
  let passed = 0;
  for (let round = 0; round < rounds; round++) {
    const rib = new Rib();
    const table = new AttrTable();
    const out = new AdjRibOut(table, rib);
    const exported = table.intern({ origin: Origin.Igp, asPath: [] }, ['self']);
    const exportOf: ExportFn = (_ra, peer) => (peer === from ? table.retain(exported) : null);
    const changed = new SlotList();
    const framer = new Framer();
    framer.push(stream);
    for (let f = framer.next(); f; f = framer.next()) {
      const m = decodeMessage(f, ctx);
      if (m.type !== MsgType.Update) continue;
      validateUpdate(m, { ebgp: true, peerAs: from.asn, localAddress: '192.0.2.2' });
      // What the speaker's onUpdate and applySlots do.
      rib.withdrawKeys(m.withdrawn, m.withdrawnIds, from.id, changed);
      if (m.nlri.length) {
        const ra = rib.attrs.intern(m.attrs, [from.id]);
        rib.announceKeys(m.nlri, m.nlriIds, from, ra, changed);
        rib.attrs.release(ra);
      }
      rib.feed(out, changed, true, false, exportOf);
      changed.length = 0;
      // What a flush does.
      while (out.pendingCount > 0) {
        const batch = out.take(4096);
        packBatch(w.reset(), batch, ctx, ourHops);
        passed += batch.count;
      }
    }
    rib.prune();
    table.release(exported);
    out.clear();
  }
  return passed;
}
