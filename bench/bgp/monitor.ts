/**
 * Monitor of the BGP bench: an eBGP peer of the DUT that counts the IPv4 prefixes it holds and
 * says when it first holds `--n` of them and when it holds none again. It keeps one bit per /24
 * (2 MiB), locates the withdrawn-routes and NLRI fields of each UPDATE itself and decodes them
 * with Twill's decodeNlri4 into one reused array; path attributes are skipped, never decoded.
 * An announcement of a prefix already held (an implicit withdraw) does not count twice.
 *
 *   node dist/bench/bgp/monitor.js --remote A --local A --asn N --n N
 *
 * Events (stdout): established; full {t, held} the first time it holds n; empty {t} when it
 * holds 0 after full; status {held, ...} and arrivals {arrivals: [j, t][]} on request.
 * Probe prefixes (48.0.0.0/24 + j*256, see injector.ts) are held like the others, and the first
 * arrival time of each is kept.
 * Commands (stdin): {op:'status'}, {op:'arrivals'}.
 */
import { decodeNlri4 } from '../../src/bgp/wire/index.js';
import { arg, emit, now, onCommand, startPeer } from './peer.js';

const PROBE_BASE = 0x30000000;

const remote = arg('remote');
const local = arg('local');
const asn = Number(arg('asn'));
const target = Number(arg('n'));

const bits = new Uint32Array(1 << 19);
let held = 0;
let announced = 0;
let withdrawn = 0;
let updates = 0;
/** Prefixes that are not /24 (none expected): held in a Set. */
const other = new Set<number>();
let full = false;
let empty = false;
const arrivals = new Map<number, number>();
const keys: number[] = [];

function add(k: number): void {
  announced++;
  if (k % 64 !== 24) {
    if (!other.has(k)) held++;
    other.add(k);
    return;
  }
  const addr = (k - 24) / 64;
  const i = addr >>> 8;
  const m = 1 << (i & 31);
  const word = bits[i >>> 5]!;
  if (word & m) return;
  bits[i >>> 5] = word | m;
  held++;
  if (addr >= PROBE_BASE && addr < PROBE_BASE + (1 << 24)) {
    const j = (addr - PROBE_BASE) >>> 8;
    if (!arrivals.has(j)) arrivals.set(j, now());
  }
}

function remove(k: number): void {
  withdrawn++;
  if (k % 64 !== 24) {
    if (other.delete(k)) held--;
    return;
  }
  const i = ((k - 24) / 64) >>> 8;
  const m = 1 << (i & 31);
  const word = bits[i >>> 5]!;
  if (!(word & m)) return;
  bits[i >>> 5] = word & ~m;
  held--;
}

function onUpdate(buf: Buffer, start: number, end: number): void {
  updates++;
  const p = start + 19;
  const wlen = buf.readUInt16BE(p);
  const alen = buf.readUInt16BE(p + 2 + wlen);
  keys.length = 0;
  decodeNlri4(buf, p + 2, p + 2 + wlen, keys, undefined);
  for (let i = 0; i < keys.length; i++) remove(keys[i]!);
  keys.length = 0;
  decodeNlri4(buf, p + 4 + wlen + alen, end, keys, undefined);
  for (let i = 0; i < keys.length; i++) add(keys[i]!);
  if (!full && held >= target) {
    full = true;
    emit({ ev: 'full', t: now(), held });
  } else if (full && !empty && held === 0) {
    empty = true;
    emit({ ev: 'empty', t: now() });
  }
}

const peer = startPeer({ remote, local, asn, holdTime: 240, onUpdate });
peer.established.then(() => emit({ ev: 'established' }));

onCommand((cmd) => {
  if (cmd.op === 'status') emit({ ev: 'status', held, announced, withdrawn, updates });
  else if (cmd.op === 'arrivals') emit({ ev: 'arrivals', arrivals: [...arrivals] });
});
