/**
 * The UPDATE path in one process, without sockets: the injector's table (injector.ts: N prefixes
 * over S attribute sets, from an eBGP peer) framed, decoded, taken into the RIB (update-in.ts)
 * and passed on to one eBGP receiver's update group (update-group.ts), packed into UPDATEs; then
 * withdrawn the same way. The modules are the speaker's, set up as warmup.ts sets them up
 * (syntheticSetup); a flush after every 64 KiB of input stands for one socket read. The first
 * load after the warm-up is reported apart: it is a fresh speaker's first table.
 *
 *   node --expose-gc dist/bench/bgp/pipeline.js [--n 100000] [--sets 20000] [--reps 15] [--second]
 *
 * --second: after the load, a second eBGP peer sends the same table, each path one AS longer:
 * every prefix is compared with the first peer's path, which stays best, and nothing is sent.
 *
 * What it is for: comparing two versions of the UPDATE path on one machine, run after run. The
 * end-to-end bench (run.ts) has three processes on two cores and moves by ±5 % between runs of
 * the same code; this has one, and its median moves by about 1 %. It leaves out the session and
 * the socket, which run.ts measures, and there is nothing here to compare with BIRD.
 */
import { FlushQueue, PeerTx } from '../../src/bgp/peer-tx.js';
import { peerPolicy } from '../../src/bgp/policy.js';
import { AttrTable } from '../../src/bgp/rib/attrs.js';
import { type PeerRef, Rib, SlotList } from '../../src/bgp/rib/rib.js';
import { TxGroups } from '../../src/bgp/update-group.js';
import { UpdateIn } from '../../src/bgp/update-in.js';
import { syntheticSetup, warmUp } from '../../src/bgp/warmup.js';
import {
  AsPathSegmentType,
  decodeMessage,
  Framer,
  IPV4_UNICAST,
  MsgType,
  Origin,
  type PathAttributes,
  packUpdates,
  Writer,
} from '../../src/bgp/wire/index.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
}
const N = Number(arg('n', '100000'));
const SETS = Number(arg('sets', '20000'));
const REPS = Number(arg('reps', '15'));
const SECOND = process.argv.includes('--second');

const { peer, from, to, us, me, ctx, clock } = syntheticSetup();

/** A second eBGP peer, which sends the same table with one AS more in each path (`--second`). */
const second = peer(0xc0000204, 64515);

/** The injector's sets (injector.ts attrsFor); from the second peer, one AS longer. */
function attrsFor(s: number, p: PeerRef): PathAttributes {
  const seq = (...asns: number[]) => [
    { type: AsPathSegmentType.AsSequence, asns: p === from ? asns : [p.asn, ...asns] },
  ];
  if (SETS === 1) return { origin: Origin.Igp, asPath: seq(from.asn), nextHop: p.id };
  return {
    origin: s % 7 === 0 ? Origin.Incomplete : Origin.Igp,
    asPath: seq(from.asn, 64600 + (s % 100), 4200000000 + s),
    nextHop: p.id,
    med: s % 1000,
    communities: [from.asn * 65536 + (s % 65536), 65000 * 65536 + (s % 50)],
  };
}

interface Streams {
  load: Buffer;
  /** The second peer's copy of the table. */
  load2: Buffer;
  withdraw: Buffer;
}

function streams(): Streams {
  const w = new Writer(1 << 20);
  const keys: number[] = [];
  for (let i = 0; i < N; i++) keys.push((0x10000000 + i * 256) * 64 + 24);
  const per = Math.ceil(N / SETS);
  const table = (p: PeerRef) => {
    w.reset();
    for (let s = 0; s < SETS; s++)
      packUpdates(
        w,
        { family: IPV4_UNICAST, prefixes: keys.slice(s * per, (s + 1) * per), attrs: attrsFor(s, p) },
        ctx,
      );
    return w.take();
  };
  const load = table(from);
  const load2 = table(second);
  w.reset();
  packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, withdraw: true }, ctx);
  return { load, load2, withdraw: w.take() };
}

/** One load and withdrawal through fresh tables; the times in ms and the bytes packed. */
function once(s: Streams): { load: number; load2: number; withdraw: number; bytes: number } {
  const rib = new Rib();
  const groups = new TxGroups(() => false);
  const w = new Writer(1 << 16);
  let bytes = 0;
  const session = {
    writable: true,
    localAddress: us,
    send: (b: Buffer) => {
      bytes += b.length;
      return true;
    },
  };
  const tx = new PeerTx(
    {
      rib,
      exportTable: new AttrTable(),
      me,
      clock,
      host: { interfaces: () => ({}) },
      flushes: new FlushQueue(clock),
      writer: w,
      afterBatch: () => {},
      batch: 8192,
      groups,
    },
    session,
    ctx,
    to,
    peerPolicy(),
    false,
  );
  const pipeline = new UpdateIn(rib, me);
  const imports = peerPolicy();
  const changed = new SlotList();
  const run = (stream: Buffer, sender: PeerRef): number => {
    const t0 = process.hrtime.bigint();
    const framer = new Framer();
    for (let off = 0; off < stream.length; off += 65536) {
      framer.push(stream.subarray(off, Math.min(stream.length, off + 65536)));
      for (let f = framer.next(); f; f = framer.next()) {
        const m = decodeMessage(f, ctx);
        if (m.type !== MsgType.Update) continue;
        pipeline.receive(m, sender, imports, us, ctx.as4, changed);
        groups.fanOut(changed, true);
        changed.length = 0;
      }
      tx.flush();
    }
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const load = run(s.load, from);
  // The second peer's copy: every prefix compared with the first peer's path, which stays best.
  const load2 = SECOND ? run(s.load2, second) : 0;
  const withdraw = run(s.withdraw, from);
  rib.prune();
  tx.close();
  return { load, load2, withdraw, bytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const gc = (globalThis as { gc?: () => void }).gc;

const s = streams();
warmUp();
// The first load after the warm-up is a fresh speaker's; the rest, the code as V8 leaves it.
const first = once(s);
const loads: number[] = [];
const withdraws: number[] = [];
const seconds: number[] = [];
let bytes = 0;
for (let r = 0; r < REPS; r++) {
  gc?.();
  const t = once(s);
  loads.push(t.load);
  withdraws.push(t.withdraw);
  seconds.push(t.load2);
  bytes = t.bytes;
}
console.log(
  `${N} prefixes / ${SETS} sets, ${REPS} reps: load ${median(loads).toFixed(1)} ms (min ${Math.min(...loads).toFixed(1)}), withdraw ${median(withdraws).toFixed(1)} ms;${SECOND ? ` the second peer's copy ${median(seconds).toFixed(1)} ms;` : ''} the first after the warm-up: load ${first.load.toFixed(1)} ms, withdraw ${first.withdraw.toFixed(1)} ms; ${bytes} bytes out${gc ? '' : ' (no --expose-gc)'}`,
);
