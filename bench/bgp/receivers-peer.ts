/**
 * The receivers of the many-receivers scenario (receivers.ts): one process holding N sessions to
 * the DUT, one from each of N source addresses, each counting the injector's /24s it holds with a
 * bit each, as monitor.ts does (withdrawn routes and NLRI located by hand, attributes skipped; a
 * bitmap of the n load prefixes only, 12.5 KiB per session at 100k). It
 * says when every session first holds `--n` prefixes and when every one holds none again. One
 * process rather than N: the DUT is what is measured, and N Node processes would take the cores
 * from it.
 *
 *   node dist/bench/bgp/receivers-peer.js --remote A --locals A1,A2,... --asn N --n N
 *
 * Events (stdout): established {count} once all are; full {t} when the last one holds n; empty
 * {t} when the last one holds none after that. Commands (stdin): {op:'status'} -> status {full,
 * empty, held: [min, max]}.
 */
import { decodeNlri4 } from '../../src/bgp/wire/index.js';
import { arg, emit, now, onCommand, startPeer } from './peer.js';

const remote = arg('remote');
const locals = arg('locals').split(',');
const asn = Number(arg('asn'));
const target = Number(arg('n'));

const keys: number[] = [];
/** The first load prefix's /24 number (injector.ts LOAD_BASE). */
const FIRST = 0x10000000 >>> 8;
let fullCount = 0;
let emptyCount = 0;

class Receiver {
  readonly bits = new Uint32Array((target >>> 5) + 1);
  held = 0;
  full = false;
  empty = false;

  onUpdate(buf: Buffer, start: number, end: number): void {
    const p = start + 19;
    const wlen = buf.readUInt16BE(p);
    const alen = buf.readUInt16BE(p + 2 + wlen);
    const bits = this.bits;
    keys.length = 0;
    decodeNlri4(buf, p + 2, p + 2 + wlen, keys, undefined);
    for (let i = 0; i < keys.length; i++) {
      const b = (((keys[i]! - 24) / 64) >>> 8) - FIRST;
      if (b < 0 || b >= target) continue;
      const m = 1 << (b & 31);
      const word = bits[b >>> 5]!;
      if (!(word & m)) continue;
      bits[b >>> 5] = word & ~m;
      this.held--;
    }
    keys.length = 0;
    decodeNlri4(buf, p + 4 + wlen + alen, end, keys, undefined);
    for (let i = 0; i < keys.length; i++) {
      const b = (((keys[i]! - 24) / 64) >>> 8) - FIRST;
      if (b < 0 || b >= target) continue;
      const m = 1 << (b & 31);
      const word = bits[b >>> 5]!;
      if (word & m) continue;
      bits[b >>> 5] = word | m;
      this.held++;
    }
    if (!this.full && this.held >= target) {
      this.full = true;
      if (++fullCount === locals.length) emit({ ev: 'full', t: now() });
    } else if (this.full && !this.empty && this.held === 0) {
      this.empty = true;
      if (++emptyCount === locals.length) emit({ ev: 'empty', t: now() });
    }
  }
}

const receivers = locals.map(() => new Receiver());
const sessions = locals.map((local, i) =>
  startPeer({
    remote,
    local,
    asn,
    holdTime: 240,
    onUpdate: (buf, start, end) => receivers[i]!.onUpdate(buf, start, end),
    // 200 peers dialling at once overflow BIRD's listen backlog (8), and FRR resets sessions that
    // arrive before zebra has told it its interfaces: dial again, as ConnectRetry would.
    redial: true,
    connectTimeoutMs: 1000,
  }),
);
Promise.all(sessions.map((s) => s.established)).then(() =>
  emit({ ev: 'established', count: sessions.length }),
);

onCommand((cmd) => {
  if (cmd.op !== 'status') return;
  const held = receivers.map((r) => r.held);
  emit({ ev: 'status', full: fullCount, empty: emptyCount, held: [Math.min(...held), Math.max(...held)] });
});
