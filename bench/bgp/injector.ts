/**
 * Injector of the BGP bench: an eBGP peer of the DUT that announces N IPv4 /24s as fast as the
 * socket takes them, then single probe prefixes, then withdraws everything. All messages are
 * encoded with Twill's packUpdates before the session opens, so during a phase the injector only
 * hands one Buffer to the socket: it is not the bottleneck (its `drained` time, when the kernel
 * has taken the last byte, is reported next to the DUT's time).
 *
 *   node dist/bench/bgp/injector.js --remote A --local A --asn N --n N [--sets S] [--probes P] [--ibgp]
 *
 * Prefixes: load prefix i is (16.0.0.0 + i*256)/24; probe j is (48.0.0.0 + j*256)/24.
 * --sets S spreads the N prefixes over S attribute sets (AS_PATH, MED and COMMUNITIES differ),
 * each packed on its own; S=1 is one attribute set for all. --ibgp: an internal peer's one set
 * (empty AS_PATH, LOCAL_PREF 100), for the route-reflector runs of receivers.ts.
 *
 * Commands (stdin): {op:'load'}, {op:'probe', count, intervalMs}, {op:'withdraw'}.
 * Events (stdout): established; sent {phase, t0, drained}; probes {sends: [j, t][]}.
 */
import {
  type AsPathSegment,
  AsPathSegmentType,
  encodeEndOfRib,
  IPV4_UNICAST,
  makeContext,
  Origin,
  type PathAttributes,
  packUpdates,
  Writer,
} from '../../src/bgp/wire/index.js';
import { arg, emit, now, onCommand, startPeer } from './peer.js';

export const LOAD_BASE = 0x10000000;
export const PROBE_BASE = 0x30000000;

const remote = arg('remote');
const local = arg('local');
const asn = Number(arg('asn'));
const n = Number(arg('n'));
const sets = Number(arg('sets', '1'));
const maxProbes = Number(arg('probes', '0'));
/** iBGP to the DUT (--ibgp): an empty AS_PATH and a LOCAL_PREF, as an internal peer sends. */
const ibgp = process.argv.includes('--ibgp');

const ctx = makeContext({ as4: true });
const key = (base: number, i: number): number => (base + i * 256) * 64 + 24;
const seq = (...asns: number[]): AsPathSegment[] => [{ type: AsPathSegmentType.AsSequence, asns }];

function attrsFor(s: number): PathAttributes {
  if (ibgp) return { origin: Origin.Igp, asPath: [], nextHop: local, localPref: 100 };
  if (sets === 1) return { origin: Origin.Igp, asPath: seq(asn), nextHop: local };
  return {
    origin: s % 7 === 0 ? Origin.Incomplete : Origin.Igp,
    asPath: seq(asn, 64600 + (s % 100), 4200000000 + s),
    nextHop: local,
    med: s % 1000,
    communities: [asn * 65536 + (s % 65536), 65000 * 65536 + (s % 50)],
  };
}

// ---- the streams, encoded before the session opens ----

const w = new Writer(1 << 20);
const loadKeys: number[] = [];
for (let i = 0; i < n; i++) loadKeys.push(key(LOAD_BASE, i));
const per = Math.ceil(n / sets);
for (let s = 0; s < sets; s++) {
  const prefixes = loadKeys.slice(s * per, Math.min(n, (s + 1) * per));
  packUpdates(w, { family: IPV4_UNICAST, prefixes, attrs: attrsFor(s) }, ctx);
}
w.bytes(encodeEndOfRib(IPV4_UNICAST, ctx));
const loadStream = w.take();

const probeMsgs: Buffer[] = [];
const probeKeys: number[] = [];
for (let j = 0; j < maxProbes; j++) {
  probeKeys.push(key(PROBE_BASE, j));
  w.reset();
  packUpdates(w, { family: IPV4_UNICAST, prefixes: [key(PROBE_BASE, j)], attrs: attrsFor(0) }, ctx);
  probeMsgs.push(w.take());
}

w.reset();
packUpdates(w, { family: IPV4_UNICAST, prefixes: loadKeys.concat(probeKeys), withdraw: true }, ctx);
const withdrawStream = w.take();

// ---- the session ----

const peer = startPeer({ remote, local, asn, holdTime: 240, onUpdate: () => {} });
peer.established.then(() => emit({ ev: 'established', loadBytes: loadStream.length }));

function send(phase: string, stream: Buffer): void {
  const t0 = now();
  peer.socket.write(stream, () => emit({ ev: 'sent', phase, t0, drained: now() }));
}

let probesSent = 0;
onCommand((cmd) => {
  switch (cmd.op) {
    case 'load':
      send('load', loadStream);
      break;
    case 'withdraw':
      send('withdraw', withdrawStream);
      break;
    case 'probe': {
      const count = Math.min(Number(cmd.count), maxProbes - probesSent);
      const interval = Number(cmd.intervalMs);
      const sends: [number, number][] = [];
      const one = (k: number): void => {
        if (k === count) {
          emit({ ev: 'probes', sends });
          return;
        }
        const j = probesSent++;
        sends.push([j, now()]);
        peer.socket.write(probeMsgs[j]!);
        setTimeout(() => one(k + 1), interval);
      };
      one(0);
      break;
    }
  }
});
