/**
 * The Node floor: a DUT that does no BGP work at all. It accepts the injector's and the monitor's
 * sessions like any DUT (a hand-built OPEN, a KEEPALIVE for theirs, KEEPALIVEs every third of the
 * hold time), then writes every UPDATE from the injector to the monitor, bytes unchanged, one
 * socket write per run of UPDATEs in a chunk read. No decoding, no table, no policy: what is left
 * is what any Node.js process pays to be woken by a socket, take its bytes through net.Socket and
 * write them on. No speaker written for Node passes a prefix on faster than this; the bench runs
 * it beside the real DUTs (`--dut relay`) so that its latency is measured in the same run.
 *
 *   node dist/bench/bgp/relay.js --asn N --router-id A --in ADDR --out ADDR
 *
 * `--in` is the injector's address, `--out` the monitor's; both dial our port 179.
 */
import { createServer, type Socket } from 'node:net';
import { encodeOpen, Framer, IPV4_UNICAST, KEEPALIVE, MsgType, makeOpen } from '../../src/bgp/wire/index.js';
import { arg, ipv4 } from './peer.js';

const asn = Number(arg('asn'));
const routerId = arg('router-id');
const inAddr = arg('in');
const outAddr = arg('out');
const HOLD = 90;
const open = encodeOpen(makeOpen(asn, HOLD, ipv4(routerId), { multiprotocol: [IPV4_UNICAST] }));

let monitor: Socket | undefined;

function serve(s: Socket): void {
  s.setNoDelay(true);
  const from = (s.remoteAddress ?? '').replace(/^::ffff:/, '');
  const injector = from === inAddr;
  if (!injector && from !== outAddr) {
    s.destroy();
    return;
  }
  if (!injector) monitor = s;
  const framer = new Framer();
  s.on('error', () => s.destroy());
  s.on('data', (chunk: Buffer) => {
    framer.push(chunk);
    // A chunk's UPDATEs lie next to each other in the framer's buffer: one write for the run.
    let buf: Buffer | undefined;
    let first = -1;
    let last = -1;
    const pass = () => {
      if (buf && first >= 0) monitor?.write(Buffer.from(buf.subarray(first, last)));
      first = -1;
    };
    for (let f = framer.next(); f; f = framer.next()) {
      if (f.type === MsgType.Open) {
        s.write(open);
        s.write(KEEPALIVE);
        const hold = Math.min(HOLD, f.buf.readUInt16BE(f.start + 22));
        if (hold > 0) setInterval(() => s.write(KEEPALIVE), (hold / 3) * 1000).unref();
        continue;
      }
      if (f.type !== MsgType.Update || !injector) continue;
      if (f.buf !== buf || f.start !== last) pass();
      buf = f.buf;
      if (first < 0) first = f.start;
      last = f.end;
    }
    pass();
  });
}

createServer(serve).listen(179, '0.0.0.0');
