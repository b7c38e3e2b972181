/**
 * BGP benchmark in the style of bgperf: Twill's speaker against BIRD 2, FRR bgpd and GoBGP as the
 * device under test (DUT) between an injector peer and a monitor peer. A benchmark, never a test:
 * it needs root (network namespaces) and takes minutes.
 *
 *   npm run build && npm run bench:bgp                        # everything, ~20-30 min on 2 cores
 *   npm run bench:bgp -- --quick                              # 100k, all DUTs, ~2 min
 *   npm run bench:bgp -- --dut twill,bird --n 100000 --json   # a subset; the table, then JSON
 *
 * Flags: --dut LIST (twill,bird,frr,gobgp by default; relay, the Node floor of relay.ts, when
 * named), --n LIST (scenario sizes to keep), --sets LIST (attribute-set counts to keep), --quick,
 * --reps R (each run R times, medians reported), --timeout S (per phase, default 300), --probes P
 * (default 100), --json, --cpu-prof DIR (Twill runs under node --cpu-prof, profiles written to
 * DIR), --node-flags 'F ...' (more flags for Twill's node, such as --trace-deopt; the output is in
 * twill.log), --settle S (seconds between the sessions coming up and the idle RSS, default 1; a
 * fresh Twill holds about 17 MiB more until V8's memory reducer runs, some 8 s after start),
 * --keep (keep the DUTs' temp dirs).
 *
 * Topology: three namespaces (bgpb-PID-inj, -dut, -mon) and two veth links,
 *   injector 10.0.1.1 AS 65001 --- 10.0.1.2 DUT AS 65002 10.0.2.2 --- 10.0.2.1 monitor AS 65003
 * all eBGP. The injector and the monitor (injector.ts, monitor.ts) dial the DUT; the DUT is
 * configured passive, imports and exports everything and writes nothing to the kernel (see
 * duts.ts); the route count of the DUT namespace's table is checked after every load.
 *
 * Scenarios: N = 100k and 1M prefixes with one attribute set; 100k over 20k attribute sets. Each
 * run starts a fresh DUT, monitor and injector; the DUTs take turns within a scenario (the order
 * rotates between scenarios), so slow drift on a shared host spreads over all of them. Per run:
 *   load       injector's first UPDATE byte (its `t0`) -> monitor holds all N
 *   injector   the same `t0` -> the kernel took the injector's last byte (how long the DUT's
 *              reading held the injector back; near 0 means the stream sat in socket buffers)
 *   probes     (100k, one set) with the table loaded, P single new prefixes 30 ms apart; latency
 *              is the monitor's arrival time minus the injector's send time, both on the system
 *              clock (two processes in two namespaces; see peer.ts `now()`); median and p99
 *   withdraw   first withdrawal byte -> monitor holds 0
 *   peak RSS   VmHWM of the DUT's main process (node, bird, bgpd, gobgpd), read with VmRSS from
 *              /proc/PID/status every 100 ms
 *   CPU        user+system seconds of that process over the run
 * A phase that does not finish within --timeout is reported as a timeout with how far it got.
 *
 * Targets for Twill (from the issue; reported, never asserted): load and withdraw time <= 1.0x
 * BIRD's at 100k and 1M, peak RSS <= 2x BIRD's, median single-prefix latency <= 1 ms.
 *
 * Cleanup: every process started here is tracked and ended by PID, and the three namespaces are
 * deleted, on normal exit, on an error, and on SIGINT/SIGTERM.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  ALL_DUT_KINDS,
  DUT_KINDS,
  type Dut,
  type DutKind,
  startDut,
  type Topology,
  versions,
} from './duts.js';
import {
  children,
  cleanup,
  flag,
  fmtX,
  has,
  MiB,
  made,
  median,
  PeerProc,
  quantile,
  Sampler,
  sh,
  sleep,
  Timeout,
  table,
} from './harness.js';

// ---- flags ----

const list = (name: string): string[] | undefined =>
  flag(name)
    ?.split(',')
    .map((s) => s.trim());

const quick = has('quick');
const json = has('json');
const keep = has('keep');
const reps = Number(flag('reps') ?? 1);
const timeoutMs = Number(flag('timeout') ?? 300) * 1000;
const probeCount = Number(flag('probes') ?? (quick ? 50 : 100));
const cpuProfDir = flag('cpu-prof');
const nodeFlags = (flag('node-flags') ?? '').split(' ').filter(Boolean);
const settleMs = Number(flag('settle') ?? 1) * 1000;
const duts = (list('dut') ?? DUT_KINDS) as DutKind[];
for (const d of duts)
  if (!ALL_DUT_KINDS.includes(d)) throw new Error(`unknown DUT ${d} (one of ${ALL_DUT_KINDS.join(', ')})`);

interface Scenario {
  name: string;
  n: number;
  sets: number;
  probes: boolean;
}
let scenarios: Scenario[] = [
  { name: '100k', n: 100_000, sets: 1, probes: true },
  { name: '1M', n: 1_000_000, sets: 1, probes: false },
  { name: '100k/20k sets', n: 100_000, sets: 20_000, probes: false },
];
if (quick) scenarios = scenarios.slice(0, 1);
const ns = list('n')?.map(Number);
if (ns) scenarios = scenarios.filter((s) => ns.includes(s.n));
const setsFilter = list('sets')?.map(Number);
if (setsFilter) scenarios = scenarios.filter((s) => setsFilter.includes(s.sets));
if (scenarios.length === 0) throw new Error('no scenario left after --n/--sets');

const PROBE_INTERVAL_MS = 30;
const INJ_ASN = 65001;
const DUT_ASN = 65002;
const MON_ASN = 65003;

// ---- namespaces, processes, cleanup ----

const tag = `bgpb-${process.pid}`;
const NS = { inj: `${tag}-inj`, dut: `${tag}-dut`, mon: `${tag}-mon` };
function topology(): { dut: Topology; inj: string; mon: string } {
  for (const n of Object.values(NS)) {
    sh('ip', ['netns', 'add', n]);
    made.push(n);
    sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
  }
  const link = (a: string, aIf: string, aAddr: string, b: string, bIf: string, bAddr: string) => {
    sh('ip', ['link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b]);
    sh('ip', ['-n', a, 'addr', 'add', aAddr, 'dev', aIf]);
    sh('ip', ['-n', b, 'addr', 'add', bAddr, 'dev', bIf]);
    sh('ip', ['-n', a, 'link', 'set', aIf, 'up']);
    sh('ip', ['-n', b, 'link', 'set', bIf, 'up']);
  };
  link(NS.inj, 'inj0', '10.0.1.1/24', NS.dut, 'dut-inj', '10.0.1.2/24');
  link(NS.mon, 'mon0', '10.0.2.1/24', NS.dut, 'dut-mon', '10.0.2.2/24');
  return {
    dut: {
      ns: NS.dut,
      routerId: '10.0.1.2',
      asn: DUT_ASN,
      peers: [
        { name: 'injector', local: '10.0.1.2', address: '10.0.1.1', asn: INJ_ASN },
        { name: 'monitor', local: '10.0.2.2', address: '10.0.2.1', asn: MON_ASN },
      ],
    },
    inj: '10.0.1.1',
    mon: '10.0.2.1',
  };
}

// ---- one run ----

interface RunResult {
  dut: DutKind;
  scenario: string;
  n: number;
  sets: number;
  status: 'ok' | 'timeout' | 'error';
  note?: string;
  loadMs?: number;
  /** Injector: t0 to the kernel taking the last byte of the load. */
  injectorLoadMs?: number;
  withdrawMs?: number;
  injectorWithdrawMs?: number;
  latency?: { samples: number; lost: number; medianMs: number; p99Ms: number; maxMs: number };
  peakRssMiB?: number;
  rssStartMiB?: number;
  rssLoadedMiB?: number;
  cpuSeconds?: number;
  kernelRoutes?: number;
}

async function runOne(kind: DutKind, sc: Scenario, topo: ReturnType<typeof topology>): Promise<RunResult> {
  const r: RunResult = { dut: kind, scenario: sc.name, n: sc.n, sets: sc.sets, status: 'ok' };
  const dir = mkdtempSync(join(tmpdir(), `twill-bench-bgp-${kind}-`));
  let dut: Dut | undefined;
  let sampler: Sampler | undefined;
  const peers: PeerProc[] = [];
  let phase = 'start';
  try {
    dut = await startDut(kind, topo.dut, dir, { ...(cpuProfDir ? { cpuProfDir } : {}), nodeFlags });
    for (const c of dut.procs) children.add(c);
    const dutProc = dut.procs[dut.procs.length - 1]!;
    const dutDead = () =>
      dutProc.exitCode !== null || dutProc.signalCode !== null
        ? `${kind} exited: ${dut!.logTail()}`
        : undefined;
    sampler = new Sampler(dut.pid);
    const mon = new PeerProc('monitor', NS.mon, 'monitor.js', [
      ...['--remote', '10.0.2.2', '--local', topo.mon, '--asn', String(MON_ASN), '--n', String(sc.n)],
    ]);
    const inj = new PeerProc('injector', NS.inj, 'injector.js', [
      ...['--remote', '10.0.1.2', '--local', topo.inj, '--asn', String(INJ_ASN), '--n', String(sc.n)],
      ...['--sets', String(sc.sets), '--probes', String(sc.probes ? probeCount : 0)],
    ]);
    peers.push(mon, inj);
    phase = 'establish';
    await mon.wait('established', 60_000, dutDead);
    await inj.wait('established', 60_000, dutDead);
    await sleep(settleMs);
    r.rssStartMiB = MiB(sampler.rss);

    phase = 'load';
    inj.send({ op: 'load' });
    const sent = await inj.wait('sent', timeoutMs, dutDead);
    const full = await mon.wait('full', timeoutMs, dutDead);
    const t0 = sent.t0 as number;
    r.loadMs = (full.t as number) - t0;
    r.injectorLoadMs = (sent.drained as number) - t0;
    await sleep(1000);
    sampler.sample();
    r.rssLoadedMiB = MiB(sampler.rss);
    r.kernelRoutes = sh('ip', ['-n', NS.dut, '-4', 'route', 'show', 'table', 'all'])
      .split('\n')
      .filter((l) => /^\d/.test(l)).length;

    if (sc.probes && probeCount > 0) {
      phase = 'probes';
      await sleep(1000);
      inj.send({ op: 'probe', count: probeCount, intervalMs: PROBE_INTERVAL_MS });
      const sends = (await inj.wait('probes', timeoutMs, dutDead)).sends as [number, number][];
      await sleep(1000);
      mon.send({ op: 'arrivals' });
      const arrivals = new Map((await mon.wait('arrivals', 10_000, dutDead)).arrivals as [number, number][]);
      const lat: number[] = [];
      for (const [j, t] of sends) {
        const a = arrivals.get(j);
        if (a !== undefined) lat.push(a - t);
      }
      r.latency = {
        samples: lat.length,
        lost: sends.length - lat.length,
        medianMs: lat.length ? median(lat) : Number.NaN,
        p99Ms: lat.length ? quantile(lat, 0.99) : Number.NaN,
        maxMs: lat.length ? Math.max(...lat) : Number.NaN,
      };
    }

    phase = 'withdraw';
    await sleep(1000);
    inj.send({ op: 'withdraw' });
    const sentW = await inj.wait('sent', timeoutMs, dutDead);
    const empty = await mon.wait('empty', timeoutMs, dutDead);
    r.withdrawMs = (empty.t as number) - (sentW.t0 as number);
    r.injectorWithdrawMs = (sentW.drained as number) - (sentW.t0 as number);
  } catch (err) {
    r.status = err instanceof Timeout ? 'timeout' : 'error';
    let held = '';
    const mon = peers[0];
    if (mon && !mon.exited) {
      try {
        mon.send({ op: 'status' });
        const st = await mon.wait('status', 5000);
        held = `, monitor held ${Number(st.held).toLocaleString('en-US')} of ${sc.n.toLocaleString('en-US')}`;
      } catch {
        // no answer
      }
    }
    r.note = `${r.status} in ${phase}${held}${r.status === 'error' ? `: ${String((err as Error).message).slice(0, 300)}` : ''}`;
  } finally {
    if (sampler) {
      sampler.stop();
      r.peakRssMiB = MiB(Math.max(sampler.hwm, sampler.peakRss));
      r.cpuSeconds = sampler.cpuSeconds();
    }
    await Promise.all(peers.map((p) => p.stop()));
    if (dut) {
      await dut.stop();
      for (const c of dut.procs) children.delete(c);
    }
    if (!keep && r.status === 'ok') rmSync(dir, { recursive: true, force: true });
    else if (r.status !== 'ok') r.note = `${r.note ?? ''} (logs in ${dir})`;
  }
  return r;
}

// ---- aggregation and report ----

interface Row {
  dut: DutKind;
  scenario: string;
  runs: RunResult[];
  ok: boolean;
  loadMs?: number;
  withdrawMs?: number;
  injectorLoadMs?: number;
  peakRssMiB?: number;
  rssIdleMiB?: number;
  rssLoadedMiB?: number;
  /** (RSS loaded - RSS idle) / prefixes: what the table costs above the idle process. */
  bytesPerPrefix?: number;
  cpuSeconds?: number;
  latencyMedianMs?: number;
  latencyP99Ms?: number;
  kernelRoutes?: number;
  note?: string;
}

function aggregate(runs: RunResult[]): Row {
  const ok = runs.filter((r) => r.status === 'ok');
  const med = (f: (r: RunResult) => number | undefined): number | undefined => {
    const xs = ok.map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x));
    return xs.length ? median(xs) : undefined;
  };
  const first = runs[0]!;
  const row: Row = { dut: first.dut, scenario: first.scenario, runs, ok: ok.length === runs.length };
  const set = <K extends keyof Row>(k: K, v: Row[K] | undefined) => {
    if (v !== undefined) row[k] = v;
  };
  set(
    'loadMs',
    med((r) => r.loadMs),
  );
  set(
    'withdrawMs',
    med((r) => r.withdrawMs),
  );
  set(
    'injectorLoadMs',
    med((r) => r.injectorLoadMs),
  );
  set('peakRssMiB', med((r) => r.peakRssMiB) ?? Math.max(...runs.map((r) => r.peakRssMiB ?? 0)));
  set(
    'rssIdleMiB',
    med((r) => r.rssStartMiB),
  );
  set(
    'rssLoadedMiB',
    med((r) => r.rssLoadedMiB),
  );
  set(
    'bytesPerPrefix',
    med((r) =>
      r.rssLoadedMiB === undefined || r.rssStartMiB === undefined
        ? undefined
        : ((r.rssLoadedMiB - r.rssStartMiB) * 2 ** 20) / r.n,
    ),
  );
  set(
    'cpuSeconds',
    med((r) => r.cpuSeconds),
  );
  set(
    'latencyMedianMs',
    med((r) => r.latency?.medianMs),
  );
  set(
    'latencyP99Ms',
    med((r) => r.latency?.p99Ms),
  );
  set('kernelRoutes', Math.max(...runs.map((r) => r.kernelRoutes ?? 0)));
  const notes = runs.map((r) => r.note).filter(Boolean);
  if (notes.length) row.note = notes.join('; ');
  return row;
}

// Milliseconds shown: a 100k load takes a few hundredths of a second.
const fmtS = (ms: number | undefined, ok = true) =>
  ms === undefined ? (ok ? '-' : 'timeout') : (ms / 1000).toFixed(3);
const fmtMs = (ms: number | undefined) => (ms === undefined ? '-' : ms.toFixed(2));
const fmtMiB = (m: number | undefined) => (m === undefined ? '-' : m.toFixed(0));
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || b === 0 ? undefined : a / b;

// ---- main ----

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench makes network namespaces');
  const cpu = cpus();
  const machine = {
    cpu: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    date: new Date().toISOString(),
  };
  const vers = versions();
  const topo = topology();
  const started = Date.now();
  const results: RunResult[] = [];
  const log = (s: string) => console.error(s);
  log(`BGP bench: ${scenarios.map((s) => s.name).join(', ')} x ${duts.join(', ')} x ${reps} rep(s)`);
  for (let rep = 0; rep < reps; rep++) {
    for (const [si, sc] of scenarios.entries()) {
      const shift = (si + rep) % duts.length;
      const order = [...duts.slice(shift), ...duts.slice(0, shift)];
      for (const kind of order) {
        const t = Date.now();
        const r = await runOne(kind, sc, topo);
        results.push(r);
        log(
          `  ${sc.name.padEnd(14)} ${kind.padEnd(6)} ${r.status.padEnd(7)} load ${fmtS(r.loadMs)} s, withdraw ${fmtS(r.withdrawMs)} s, peak RSS ${fmtMiB(r.peakRssMiB)} MiB` +
            `${r.latency ? `, latency median ${fmtMs(r.latency.medianMs)} ms` : ''} (${((Date.now() - t) / 1000).toFixed(0)} s)${r.note ? ` — ${r.note}` : ''}`,
        );
      }
    }
  }

  const rows: Row[] = [];
  for (const sc of scenarios)
    for (const d of duts) rows.push(aggregate(results.filter((r) => r.dut === d && r.scenario === sc.name)));
  const find = (d: DutKind, s: string) => rows.find((r) => r.dut === d && r.scenario === s);

  const out: string[] = [];
  out.push(`BGP bench — ${machine.date}`);
  out.push(`${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, Linux ${machine.kernel}`);
  for (const d of duts) out.push(`${d}: ${vers[d]}`);
  out.push(
    `${reps} run(s) per cell (median shown); timeout ${timeoutMs / 1000} s per phase; ${probeCount} probes ${PROBE_INTERVAL_MS} ms apart`,
  );
  out.push('');
  out.push(
    table([
      [
        'scenario',
        'DUT',
        'load s',
        'injector s',
        'withdraw s',
        'peak RSS MiB',
        'RSS idle MiB',
        'RSS loaded MiB',
        'B/prefix',
        'CPU s',
        'latency median ms',
        'latency p99 ms',
        'note',
      ],
      ...rows.map((r) => [
        r.scenario,
        r.dut,
        fmtS(r.loadMs, r.ok),
        fmtS(r.injectorLoadMs),
        fmtS(r.withdrawMs, r.ok),
        fmtMiB(r.peakRssMiB),
        fmtMiB(r.rssIdleMiB),
        fmtMiB(r.rssLoadedMiB),
        r.bytesPerPrefix === undefined ? '-' : r.bytesPerPrefix.toFixed(0),
        r.cpuSeconds === undefined ? '-' : r.cpuSeconds.toFixed(1),
        fmtMs(r.latencyMedianMs),
        fmtMs(r.latencyP99Ms),
        [
          r.kernelRoutes && r.kernelRoutes > 2 ? `${r.kernelRoutes} kernel routes!` : '',
          r.ok ? '' : (r.note ?? ''),
        ]
          .filter(Boolean)
          .join(' '),
      ]),
    ]),
  );

  const ratios: Record<string, { load?: number; withdraw?: number; peakRss?: number; perPrefix?: number }> =
    {};
  const targets: { target: string; measured: string; met: boolean | null }[] = [];
  if (duts.includes('twill') && duts.includes('bird')) {
    out.push('');
    out.push('Twill / BIRD');
    const rr: string[][] = [['scenario', 'load', 'withdraw', 'peak RSS', 'B/prefix above idle']];
    for (const sc of scenarios) {
      const t = find('twill', sc.name);
      const b = find('bird', sc.name);
      const x = {
        load: ratio(t?.loadMs, b?.loadMs),
        withdraw: ratio(t?.withdrawMs, b?.withdrawMs),
        peakRss: ratio(t?.peakRssMiB, b?.peakRssMiB),
        perPrefix: ratio(t?.bytesPerPrefix, b?.bytesPerPrefix),
      };
      ratios[sc.name] = x;
      rr.push([sc.name, fmtX(x.load), fmtX(x.withdraw), fmtX(x.peakRss), fmtX(x.perPrefix)]);
      const timedOut = t !== undefined && !t.ok;
      if (sc.sets === 1) {
        for (const k of ['load', 'withdraw'] as const) {
          targets.push({
            target: `${k} time at ${sc.name} <= 1.0x BIRD`,
            measured: timedOut && x[k] === undefined ? (t?.note ?? 'timeout') : fmtX(x[k]),
            met: x[k] === undefined ? (timedOut ? false : null) : x[k]! <= 1.0,
          });
        }
      }
      targets.push({
        target: `peak RSS at ${sc.name} <= 2x BIRD`,
        measured: fmtX(x.peakRss),
        met: x.peakRss === undefined ? null : x.peakRss <= 2,
      });
      if (sc.n >= 1_000_000)
        targets.push({
          target: `bytes per prefix above idle at ${sc.name} <= BIRD's`,
          measured: fmtX(x.perPrefix),
          met: x.perPrefix === undefined ? null : x.perPrefix <= 1,
        });
    }
    out.push(table(rr));
  }
  const tl = scenarios.filter((s) => s.probes).map((s) => find('twill', s.name));
  for (const t of tl) {
    if (!t) continue;
    targets.push({
      target: `median single-prefix latency after ${t.scenario} <= 1 ms`,
      measured: t.latencyMedianMs === undefined ? '-' : `${fmtMs(t.latencyMedianMs)} ms`,
      met: t.latencyMedianMs === undefined ? null : t.latencyMedianMs <= 1,
    });
    targets.push({
      target: `p99 single-prefix latency after ${t.scenario} <= 2 ms`,
      measured: t.latencyP99Ms === undefined ? '-' : `${fmtMs(t.latencyP99Ms)} ms`,
      met: t.latencyP99Ms === undefined ? null : t.latencyP99Ms <= 2,
    });
    const b = find('bird', t.scenario);
    if (b?.latencyMedianMs !== undefined && t.latencyMedianMs !== undefined)
      targets.push({
        target: `median single-prefix latency after ${t.scenario} <= BIRD's`,
        measured: `${fmtMs(t.latencyMedianMs)} vs ${fmtMs(b.latencyMedianMs)} ms`,
        met: t.latencyMedianMs <= b.latencyMedianMs,
      });
    const floor = find('relay', t.scenario);
    if (floor?.latencyMedianMs !== undefined && t.latencyMedianMs !== undefined)
      targets.push({
        target: `median latency above the Node floor after ${t.scenario} <= 0.25 ms`,
        measured: `${fmtMs(t.latencyMedianMs - floor.latencyMedianMs)} ms`,
        met: t.latencyMedianMs - floor.latencyMedianMs <= 0.25,
      });
  }
  if (targets.length) {
    out.push('');
    out.push('Targets for Twill');
    out.push(
      table([
        ['target', 'measured', 'met'],
        ...targets.map((t) => [t.target, t.measured, t.met === null ? 'n/a' : t.met ? 'yes' : 'NO']),
      ]),
    );
  }
  out.push('');
  out.push(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log(out.join('\n'));
  if (json) {
    console.log(
      JSON.stringify({
        bench: 'bgp',
        machine,
        versions: vers,
        reps,
        timeoutSeconds: timeoutMs / 1000,
        probes: { count: probeCount, intervalMs: PROBE_INTERVAL_MS },
        scenarios,
        rows: rows.map(({ runs: _runs, ...r }) => r),
        runs: results,
        ratiosTwillOverBird: ratios,
        targets,
      }),
    );
  }
}

main()
  .catch((err) => {
    console.error(err instanceof Error ? err.stack : err);
    process.exitCode = 1;
  })
  .finally(cleanup);
