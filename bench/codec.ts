/**
 * Codec benchmark: throughput of the UPDATE encoder (packUpdates) and of the receive path
 * (Framer + decodeUpdate), in prefixes per second, with peak memory. A benchmark, never a test.
 *
 *   npm run build && npm run bench:codec            # human table
 *   npm run build && npm run bench:codec -- --json  # the table, then one JSON line
 *
 * Streams (4-octet AS session, 4096-octet messages, no ADD-PATH):
 *   A  1,000,000 unique IPv4 /24s sharing one attribute set (ORIGIN, AS_PATH, NEXT_HOP, MED,
 *      LOCAL_PREF, COMMUNITIES), packed by one packUpdates call into full UPDATEs: a full table
 *      from one peer, the common case the codec is built for.
 *   B  100,000 prefixes (/24, /26, /28, /32) over 20,000 attribute sets, 5 prefixes each, each set
 *      its own packUpdates call: the worst case, one small UPDATE per attribute set.
 *
 * Phases:
 *   encode  the whole stream into one reused Writer (reset per run).
 *   decode  the encoded stream pushed through a Framer in 64 KiB chunks (TCP-sized reads), each
 *           frame through decodeUpdate; every NLRI key is counted and summed, and both are checked
 *           against the input so no work can be skipped.
 * Each phase: warm-up runs, then RUNS timed runs; the median, min and max are reported. gc() runs
 * between phases (node --expose-gc). Memory: process RSS and V8 heapUsed, high-water marks
 * sampled before and after every run and every 64 frames / 256 sets of one extra sampled run.
 *
 * Targets (stream A): decode >= 10M prefixes/s, encode >= 5M prefixes/s.
 */
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import {
  type AsPathSegment,
  AsPathSegmentType,
  type CodecContext,
  Framer,
  decodeUpdate,
  IPV4_UNICAST,
  MsgType,
  makeContext,
  Origin,
  type PathAttributes,
  packUpdates,
  Writer,
} from '../src/bgp/wire/index.js';

const N_A = 1_000_000;
const SETS_B = 20_000;
const PER_SET_B = 5;
const N_B = SETS_B * PER_SET_B;
const CHUNK = 64 * 1024;
const WARMUP = 3;
const RUNS = 7;
const TARGET_DECODE_A = 10e6;
const TARGET_ENCODE_A = 5e6;

const json = process.argv.includes('--json');
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc (npm run bench:codec does)');
  process.exit(2);
}

const ctx: CodecContext = makeContext({ as4: true });

// ---- memory high-water marks ----

const mem = { rss: 0, heap: 0 };
function sampleMem(): void {
  const m = process.memoryUsage();
  if (m.rss > mem.rss) mem.rss = m.rss;
  if (m.heapUsed > mem.heap) mem.heap = m.heapUsed;
}
function resetMem(): void {
  mem.rss = 0;
  mem.heap = 0;
  sampleMem();
}

// ---- inputs ----

const path = (...asns: number[]): AsPathSegment[] => [{ type: AsPathSegmentType.AsSequence, asns }];

/** Stream A: 1.0.0.0/24, 1.0.1.0/24, ... — 2^20 of them would reach 16.255.255.0/24. */
function prefixesA(): number[] {
  const keys = new Array<number>(N_A);
  for (let i = 0; i < N_A; i++) keys[i] = (0x01000000 + i * 256) * 64 + 24;
  return keys;
}

const attrsA: PathAttributes = {
  origin: Origin.Igp,
  asPath: path(64512, 65001, 4200000001, 13335),
  nextHop: '192.0.2.1',
  med: 100,
  localPref: 200,
  communities: [64512 * 65536 + 100, 64512 * 65536 + 200, 65535 * 65536 + 1],
};

interface SetB {
  attrs: PathAttributes;
  prefixes: number[];
}

/** Stream B: 20,000 attribute sets differing in AS_PATH, MED and COMMUNITIES; 5 prefixes each. */
function setsB(): SetB[] {
  const lens = [24, 26, 28, 32];
  const sets: SetB[] = [];
  let k = 0;
  for (let s = 0; s < SETS_B; s++) {
    const prefixes: number[] = [];
    for (let j = 0; j < PER_SET_B; j++, k++) {
      prefixes.push((0x0a000000 + k * 256) * 64 + lens[k % lens.length]!);
    }
    const attrs: PathAttributes = {
      origin: s % 7 === 0 ? Origin.Incomplete : Origin.Igp,
      asPath: path(64512, 65000 + (s % 100), 4200000000 + s),
      nextHop: `192.0.2.${1 + (s % 200)}`,
      med: s % 1000,
      localPref: 100,
      communities: [64512 * 65536 + (s % 65536), 65000 * 65536 + (s % 50)],
    };
    if (s % 3 === 0) attrs.communities!.push(65535 * 65536 + 2);
    sets.push({ attrs, prefixes });
  }
  return sets;
}

// ---- phases ----

function encodeA(w: Writer, keys: number[]): number {
  w.reset();
  return packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, attrs: attrsA }, ctx);
}

function encodeB(w: Writer, sets: SetB[], sample: boolean): number {
  w.reset();
  let msgs = 0;
  for (let s = 0; s < sets.length; s++) {
    const set = sets[s]!;
    msgs += packUpdates(w, { family: IPV4_UNICAST, prefixes: set.prefixes, attrs: set.attrs }, ctx);
    if (sample && (s & 255) === 0) sampleMem();
  }
  return msgs;
}

interface DecodeResult {
  count: number;
  sum: number;
  messages: number;
}

/** Push the stream through a Framer in CHUNK-sized reads and decode every UPDATE. */
function decodeStream(chunks: Buffer[], sample: boolean): DecodeResult {
  const framer = new Framer();
  let count = 0;
  let sum = 0;
  let messages = 0;
  for (const chunk of chunks) {
    framer.push(chunk);
    for (let f = framer.next(); f; f = framer.next()) {
      if (f.type !== MsgType.Update) throw new Error(`unexpected message type ${f.type}`);
      const u = decodeUpdate(f.buf, f.start, f.end, ctx);
      if (u.errors.length) throw new Error(`decode error: ${u.errors[0]!.message}`);
      const nlri = u.nlri;
      for (let i = 0; i < nlri.length; i++) sum += nlri[i]!;
      count += nlri.length;
      messages++;
      if (sample && (messages & 63) === 0) sampleMem();
    }
  }
  if (framer.pending) throw new Error(`${framer.pending} octets left over`);
  return { count, sum, messages };
}

function split(stream: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let p = 0; p < stream.length; p += CHUNK) chunks.push(stream.subarray(p, p + CHUNK));
  return chunks;
}

interface PhaseResult {
  phase: string;
  prefixes: number;
  messages: number;
  bytes: number;
  /** prefixes/s over the timed runs */
  median: number;
  min: number;
  max: number;
  /** MB/s (10^6 octets) at the median */
  mbps: number;
  medianMs: number;
  peakRssMiB: number;
  peakHeapMiB: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/**
 * Warm up, time RUNS runs of `run`, then one sampled run for memory. `run(sample)` returns what
 * the phase produced; `check` throws if it is wrong.
 */
function phase<T>(
  name: string,
  prefixes: number,
  bytes: number,
  messages: (r: T) => number,
  run: (sample: boolean) => T,
  check: (r: T) => void,
): PhaseResult {
  gc!();
  resetMem();
  for (let i = 0; i < WARMUP; i++) check(run(false));
  const times: number[] = [];
  let last: T | undefined;
  for (let i = 0; i < RUNS; i++) {
    sampleMem();
    const t0 = performance.now();
    last = run(false);
    const t1 = performance.now();
    sampleMem();
    check(last);
    times.push(t1 - t0);
  }
  check(run(true));
  sampleMem();
  const rates = times.map((ms) => prefixes / (ms / 1000));
  const medMs = median(times);
  return {
    phase: name,
    prefixes,
    messages: messages(last!),
    bytes,
    median: prefixes / (medMs / 1000),
    min: Math.min(...rates),
    max: Math.max(...rates),
    mbps: bytes / 1e6 / (medMs / 1000),
    medianMs: medMs,
    peakRssMiB: mem.rss / 2 ** 20,
    peakHeapMiB: mem.heap / 2 ** 20,
  };
}

// ---- main ----

const cpu = cpus();
const machine = {
  cpu: cpu[0]?.model.trim() ?? 'unknown',
  cores: cpu.length,
  node: process.version,
  date: new Date().toISOString(),
};

const keysA = prefixesA();
let sumA = 0;
for (const k of keysA) sumA += k;
const sets = setsB();
let sumB = 0;
for (const s of sets) for (const k of s.prefixes) sumB += k;

const w = new Writer(1 << 16);

// The streams, encoded once for the decode phases (copies: the writer is reused).
encodeA(w, keysA);
const streamA = w.take();
encodeB(w, sets, false);
const streamB = w.take();
const chunksA = split(streamA);
const chunksB = split(streamB);
gc();
const base = process.memoryUsage();
const baseline = { rssMiB: base.rss / 2 ** 20, heapMiB: base.heapUsed / 2 ** 20 };

const checkDecode = (n: number, sum: number) => (r: DecodeResult) => {
  if (r.count !== n || r.sum !== sum)
    throw new Error(`decoded ${r.count} prefixes (sum ${r.sum}), expected ${n} (sum ${sum})`);
};
const checkEncode = (bytes: number) => () => {
  if (w.pos !== bytes) throw new Error(`encoded ${w.pos} octets, expected ${bytes}`);
};

const results: PhaseResult[] = [
  phase(
    'A encode',
    N_A,
    streamA.length,
    (m: number) => m,
    () => encodeA(w, keysA),
    checkEncode(streamA.length),
  ),
  phase(
    'A decode',
    N_A,
    streamA.length,
    (r: DecodeResult) => r.messages,
    (sample) => decodeStream(chunksA, sample),
    checkDecode(N_A, sumA),
  ),
  phase(
    'B encode',
    N_B,
    streamB.length,
    (m: number) => m,
    (sample) => encodeB(w, sets, sample),
    checkEncode(streamB.length),
  ),
  phase(
    'B decode',
    N_B,
    streamB.length,
    (r: DecodeResult) => r.messages,
    (sample) => decodeStream(chunksB, sample),
    checkDecode(N_B, sumB),
  ),
];

const byPhase = (name: string) => results.find((r) => r.phase === name)!;
const targets = {
  decodeA: { target: TARGET_DECODE_A, measured: byPhase('A decode').median },
  encodeA: { target: TARGET_ENCODE_A, measured: byPhase('A encode').median },
};
const met = (t: { target: number; measured: number }) => t.measured >= t.target;

// ---- report ----

const M = (x: number) => `${(x / 1e6).toFixed(2)}M`;
const rows = [
  ['phase', 'prefixes', 'msgs', 'MB', 'prefixes/s (median)', 'min', 'max', 'MB/s', 'peak RSS', 'peak heap'],
  ...results.map((r) => [
    r.phase,
    r.prefixes.toLocaleString('en-US'),
    String(r.messages),
    (r.bytes / 1e6).toFixed(1),
    M(r.median),
    M(r.min),
    M(r.max),
    r.mbps.toFixed(0),
    `${r.peakRssMiB.toFixed(0)} MiB`,
    `${r.peakHeapMiB.toFixed(0)} MiB`,
  ]),
];
const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
const line = (r: string[]) =>
  r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');

console.log(`Twill codec benchmark — ${machine.date}`);
console.log(`${machine.cpu}, ${machine.cores} cores, Node ${machine.node}`);
console.log(
  `${RUNS} timed runs after ${WARMUP} warm-up; decode in ${CHUNK / 1024} KiB chunks; 4-octet AS, 4096-octet messages`,
);
console.log(
  `baseline with inputs and encoded streams built: RSS ${baseline.rssMiB.toFixed(0)} MiB, heap ${baseline.heapMiB.toFixed(0)} MiB`,
);
console.log('');
console.log(line(rows[0]!));
console.log(line(widths.map((n) => '-'.repeat(n))));
for (const r of rows.slice(1)) console.log(line(r));
console.log('');
console.log(
  `target A decode >= ${M(TARGET_DECODE_A)} prefixes/s: ${met(targets.decodeA) ? 'met' : 'MISSED'} (${M(targets.decodeA.measured)})`,
);
console.log(
  `target A encode >= ${M(TARGET_ENCODE_A)} prefixes/s: ${met(targets.encodeA) ? 'met' : 'MISSED'} (${M(targets.encodeA.measured)})`,
);

if (json) {
  console.log(
    JSON.stringify({
      bench: 'codec',
      machine,
      runs: RUNS,
      warmup: WARMUP,
      chunkBytes: CHUNK,
      baseline,
      results,
      targets: {
        decodeA: { ...targets.decodeA, met: met(targets.decodeA) },
        encodeA: { ...targets.encodeA, met: met(targets.encodeA) },
      },
    }),
  );
}
