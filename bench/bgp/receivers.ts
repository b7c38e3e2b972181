/**
 * The BGP bench with many receivers: one injector, one DUT (Twill's speaker, BIRD 2 or FRR
 * bgpd), and N receiving peers that each get every route, for N = 10, 50, 200 (as route servers,
 * route reflectors and ToRs have them).
 *
 *   npm run build && sudo npm run bench:bgp:receivers -- [--dut twill,bird,frr]
 *       [--receivers 10,50,200] [--mode ebgp,rr] [--n 100000] [--reps R] [--quick] [--json]
 *
 * Topology: three namespaces (rcvb-PID-inj, -dut, -rcv) and two veth links:
 *   injector 10.0.1.1 --- 10.0.1.2 DUT 10.1.0.1/16 --- 10.1.1.1 ... 10.1.1.N receivers
 * Modes: `ebgp`, the injector AS 65001, the DUT AS 65002, every receiver AS 65003; `rr`, all in
 * AS 65002, the injector and every receiver route-reflector clients of the DUT (RFC 4456), the
 * injector's routes internal (empty AS_PATH, LOCAL_PREF). The DUT runs as in run.ts (duts.ts:
 * every session passive on its side, no kernel writes). The injector is injector.ts with one
 * attribute set; the receivers are one process (receivers-peer.ts) holding all N sessions, so N
 * Node processes do not take the cores from the DUT.
 *
 * Measured per DUT, mode and N, a fresh DUT each time, the DUTs taking turns:
 *   load        from the injector's first UPDATE byte until the last receiver holds all n;
 *   withdraw    from the first withdrawal until the last receiver holds none;
 *   RSS         the DUT's main process: idle (every session up, nothing loaded), loaded (a second
 *               after the load), and peak (sampled every 100 ms);
 *   per extra receiver   (RSS loaded at the largest N - at the smallest) / (extra receivers x n):
 *               what one more receiver of the whole table costs, in bytes per prefix.
 * Targets (the BGP issue): load and withdraw each no slower than the faster of BIRD and FRR; bytes
 * per prefix per extra receiver no more than FRR's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Dut, type DutKind, startDut, type Topology } from './duts.js';
import {
  children,
  flag,
  fmtX,
  has,
  MiB,
  made,
  median,
  PeerProc,
  Sampler,
  sh,
  sleep,
  Timeout,
  table,
} from './harness.js';

const list = (name: string, dflt: string) => (flag(name) ?? dflt).split(',').filter(Boolean);
const quick = has('quick');
const json = has('json');
const duts = list('dut', 'twill,bird,frr') as DutKind[];
const sizes = list('receivers', quick ? '10' : '10,50,200').map(Number);
const modes = list('mode', 'ebgp,rr') as Mode[];
const n = Number(flag('n') ?? 100_000);
const reps = Number(flag('reps') ?? 1);
const timeoutMs = Number(flag('timeout') ?? 120) * 1000;
for (const d of duts)
  if (!['twill', 'bird', 'frr'].includes(d)) throw new Error(`unknown DUT ${d} (twill, bird, frr)`);
for (const m of modes) if (m !== 'ebgp' && m !== 'rr') throw new Error(`unknown mode ${m} (ebgp, rr)`);
if (Math.max(...sizes) > 250) throw new Error('at most 250 receivers (one /16, 10.1.1.0/24)');

type Mode = 'ebgp' | 'rr';
const INJ_ASN = 65001;
const DUT_ASN = 65002;
const RCV_ASN = 65003;
const tag = `rcvb-${process.pid}`;
const NS = { inj: `${tag}-inj`, dut: `${tag}-dut`, rcv: `${tag}-rcv` };
const receiverAddr = (i: number) => `10.1.1.${i + 1}`;

/** The namespaces, links and every receiver address the largest run needs, made once. */
function topology(): void {
  for (const ns of Object.values(NS)) {
    sh('ip', ['netns', 'add', ns]);
    made.push(ns);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  sh('ip', [
    'link',
    'add',
    'inj0',
    'netns',
    NS.inj,
    'type',
    'veth',
    'peer',
    'name',
    'dut-inj',
    'netns',
    NS.dut,
  ]);
  sh('ip', [
    'link',
    'add',
    'rcv0',
    'netns',
    NS.rcv,
    'type',
    'veth',
    'peer',
    'name',
    'dut-rcv',
    'netns',
    NS.dut,
  ]);
  sh('ip', ['-n', NS.inj, 'addr', 'add', '10.0.1.1/24', 'dev', 'inj0']);
  sh('ip', ['-n', NS.dut, 'addr', 'add', '10.0.1.2/24', 'dev', 'dut-inj']);
  sh('ip', ['-n', NS.dut, 'addr', 'add', '10.1.0.1/16', 'dev', 'dut-rcv']);
  const batch = join(tmpdir(), `${tag}.ip`);
  const most = Math.max(...sizes);
  writeFileSync(
    batch,
    Array.from({ length: most }, (_, i) => `addr add ${receiverAddr(i)}/16 dev rcv0\n`).join(''),
  );
  sh('ip', ['-n', NS.rcv, '-batch', batch]);
  rmSync(batch);
  for (const [ns, dev] of [
    [NS.inj, 'inj0'],
    [NS.dut, 'dut-inj'],
    [NS.dut, 'dut-rcv'],
    [NS.rcv, 'rcv0'],
  ] as const)
    sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
}

function dutTopology(mode: Mode, receivers: number): Topology {
  const rr = mode === 'rr';
  return {
    ns: NS.dut,
    routerId: '10.0.1.2',
    asn: DUT_ASN,
    ...(rr ? { clusterId: '10.0.1.2' } : {}),
    peers: [
      { name: 'injector', local: '10.0.1.2', address: '10.0.1.1', asn: rr ? DUT_ASN : INJ_ASN, rrClient: rr },
      ...Array.from({ length: receivers }, (_, i) => ({
        name: `r${i + 1}`,
        local: '10.1.0.1',
        address: receiverAddr(i),
        asn: rr ? DUT_ASN : RCV_ASN,
        rrClient: rr,
      })),
    ],
  };
}

interface Result {
  dut: DutKind;
  mode: Mode;
  receivers: number;
  status: 'ok' | 'timeout' | 'error';
  note?: string;
  loadMs?: number;
  withdrawMs?: number;
  peakRssMiB?: number;
  rssIdleMiB?: number;
  rssLoadedMiB?: number;
}

async function runOne(kind: DutKind, mode: Mode, receivers: number): Promise<Result> {
  const r: Result = { dut: kind, mode, receivers, status: 'ok' };
  const dir = mkdtempSync(join(tmpdir(), `twill-bench-rcv-${kind}-`));
  let dut: Dut | undefined;
  let sampler: Sampler | undefined;
  const procs: PeerProc[] = [];
  try {
    dut = await startDut(kind, dutTopology(mode, receivers), dir);
    for (const c of dut.procs) children.add(c);
    const main = dut.procs[dut.procs.length - 1]!;
    const dead = () =>
      main.exitCode !== null || main.signalCode !== null ? `${kind} exited: ${dut!.logTail()}` : undefined;
    sampler = new Sampler(dut.pid);
    // FRR answers a connection to a neighbor it has not yet set up with NOTIFICATION 5 (FSM
    // error): every DUT gets two seconds to read its configuration before 200 peers dial it.
    await sleep(2000);
    const asn = (peer: number) => (mode === 'rr' ? DUT_ASN : peer);
    const rcv = new PeerProc('receivers', NS.rcv, 'receivers-peer.js', [
      ...['--remote', '10.1.0.1', '--asn', String(asn(RCV_ASN)), '--n', String(n)],
      ...['--locals', Array.from({ length: receivers }, (_, i) => receiverAddr(i)).join(',')],
    ]);
    const inj = new PeerProc('injector', NS.inj, 'injector.js', [
      ...['--remote', '10.0.1.2', '--local', '10.0.1.1', '--asn', String(asn(INJ_ASN)), '--n', String(n)],
      ...(mode === 'rr' ? ['--ibgp'] : []),
    ]);
    procs.push(rcv, inj);
    await rcv.wait('established', 120_000, dead);
    await inj.wait('established', 60_000, dead);
    await sleep(1000);
    sampler.sample();
    r.rssIdleMiB = MiB(sampler.rss);

    inj.send({ op: 'load' });
    const sent = await inj.wait('sent', timeoutMs, dead);
    const full = await rcv.wait('full', timeoutMs, dead);
    r.loadMs = (full.t as number) - (sent.t0 as number);
    await sleep(1000);
    sampler.sample();
    r.rssLoadedMiB = MiB(sampler.rss);

    await sleep(500);
    inj.send({ op: 'withdraw' });
    const sentW = await inj.wait('sent', timeoutMs, dead);
    const empty = await rcv.wait('empty', timeoutMs, dead);
    r.withdrawMs = (empty.t as number) - (sentW.t0 as number);
  } catch (err) {
    r.status = err instanceof Timeout ? 'timeout' : 'error';
    r.note = (err as Error).message.split('\n')[0]!.slice(0, 200);
  } finally {
    if (sampler) {
      sampler.stop();
      r.peakRssMiB = MiB(Math.max(sampler.hwm, sampler.peakRss));
    }
    for (const p of procs) await p.stop();
    await dut?.stop();
    for (const c of dut?.procs ?? []) children.delete(c);
    rmSync(dir, { recursive: true, force: true });
  }
  return r;
}

// ---- the run ----

const fmtS = (ms: number | undefined) => (ms === undefined ? '-' : (ms / 1000).toFixed(3));
const fmt0 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(0));
const fmt1 = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(1));

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the receivers bench needs root (network namespaces)');
  const started = Date.now();
  topology();
  const results: Result[] = [];
  for (const mode of modes)
    for (const size of sizes)
      for (let rep = 0; rep < reps; rep++)
        for (const kind of duts) {
          const t = Date.now();
          const r = await runOne(kind, mode, size);
          results.push(r);
          console.error(
            `  ${mode} ${String(size).padStart(3)} ${kind.padEnd(5)} ${r.status} load ${fmtS(r.loadMs)} s, ` +
              `withdraw ${fmtS(r.withdrawMs)} s, RSS idle/loaded/peak ${fmt0(r.rssIdleMiB)}/${fmt0(r.rssLoadedMiB)}/` +
              `${fmt0(r.peakRssMiB)} MiB (${((Date.now() - t) / 1000).toFixed(0)} s)${r.note ? ` — ${r.note}` : ''}`,
          );
        }

  const cell = (kind: DutKind, mode: Mode, size: number, f: (r: Result) => number | undefined) => {
    const xs = results
      .filter((r) => r.dut === kind && r.mode === mode && r.receivers === size && r.status === 'ok')
      .map(f)
      .filter((x): x is number => x !== undefined);
    return xs.length ? median(xs) : undefined;
  };
  const out: string[] = [];
  out.push(
    `Many receivers: ${n} prefixes, one attribute set; ${cpus()[0]?.model ?? 'CPU'}, ${cpus().length} cores; ` +
      `${reps} run(s) per cell (median)`,
  );
  out.push('');
  const rows: string[][] = [
    [
      'mode',
      'receivers',
      'DUT',
      'load s',
      'withdraw s',
      'RSS idle MiB',
      'RSS loaded MiB',
      'peak RSS MiB',
      'note',
    ],
  ];
  for (const mode of modes)
    for (const size of sizes)
      for (const kind of duts) {
        const failed = results.find(
          (r) => r.dut === kind && r.mode === mode && r.receivers === size && r.status !== 'ok',
        );
        rows.push([
          mode,
          String(size),
          kind,
          fmtS(cell(kind, mode, size, (r) => r.loadMs)),
          fmtS(cell(kind, mode, size, (r) => r.withdrawMs)),
          fmt0(cell(kind, mode, size, (r) => r.rssIdleMiB)),
          fmt0(cell(kind, mode, size, (r) => r.rssLoadedMiB)),
          fmt0(cell(kind, mode, size, (r) => r.peakRssMiB)),
          failed ? `${failed.status}: ${failed.note ?? ''}` : '',
        ]);
      }
  out.push(table(rows));

  const lo = Math.min(...sizes);
  const hi = Math.max(...sizes);
  const perExtra = (kind: DutKind, mode: Mode) => {
    const a = cell(kind, mode, lo, (r) => r.rssLoadedMiB);
    const b = cell(kind, mode, hi, (r) => r.rssLoadedMiB);
    return a === undefined || b === undefined || hi === lo
      ? undefined
      : ((b - a) * 2 ** 20) / ((hi - lo) * n);
  };
  const targets: string[][] = [['mode', 'receivers', 'target', 'Twill', 'best other', 'ratio', 'met']];
  if (duts.includes('twill') && duts.length > 1) {
    const others = duts.filter((d) => d !== 'twill');
    for (const mode of modes) {
      for (const size of sizes)
        for (const [what, f] of [
          ['load', (r: Result) => r.loadMs],
          ['withdraw', (r: Result) => r.withdrawMs],
        ] as const) {
          const t = cell('twill', mode, size, f);
          const best = Math.min(...others.map((d) => cell(d, mode, size, f) ?? Number.POSITIVE_INFINITY));
          const x = t === undefined || !Number.isFinite(best) ? undefined : t / best;
          targets.push([
            mode,
            String(size),
            `${what} <= the faster of ${others.join(', ')}`,
            fmtS(t),
            Number.isFinite(best) ? fmtS(best) : '-',
            fmtX(x),
            x === undefined ? 'n/a' : x <= 1 ? 'yes' : 'NO',
          ]);
        }
      if (hi > lo) {
        const t = perExtra('twill', mode);
        const frr = duts.includes('frr') ? perExtra('frr', mode) : undefined;
        targets.push([
          mode,
          `${lo}->${hi}`,
          'bytes per prefix per extra receiver <= FRR',
          fmt1(t),
          fmt1(frr),
          fmtX(t !== undefined && frr ? t / frr : undefined),
          t === undefined || frr === undefined ? 'n/a' : t <= frr ? 'yes' : 'NO',
        ]);
      }
    }
  }
  if (hi > lo) {
    out.push('');
    out.push(`Bytes per prefix per extra receiver (RSS loaded, ${lo} -> ${hi} receivers):`);
    const pr: string[][] = [['mode', ...duts]];
    for (const mode of modes) pr.push([mode, ...duts.map((d) => fmt1(perExtra(d, mode)))]);
    out.push(table(pr));
  }
  if (targets.length > 1) {
    out.push('');
    out.push('Targets for Twill');
    out.push(table(targets));
  }
  out.push('');
  out.push(`total ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log(out.join('\n'));
  if (json) console.log(JSON.stringify({ bench: 'bgp-receivers', n, reps, sizes, modes, results }));
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
