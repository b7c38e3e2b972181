/**
 * Route reconciler benchmark: installing N routes through the reconciler (src/dataplane/routes.ts
 * over rtnetlink) against `ip -batch` with the same routes, and a no-change reconcile (a full
 * read-back that finds nothing to do). A benchmark, never a test: it needs root (a network
 * namespace) and takes about a minute.
 *
 *   npm run build && node dist/bench/dataplane/routes.js                 # human table
 *   npm run build && node dist/bench/dataplane/routes.js --json          # the table, then JSON
 *   npm run build && node dist/bench/dataplane/routes.js --n 10000 --reps 5
 *
 * Setup: one namespace (twb-PID-routes) with an uplink veth (10.9.0.1/16, the 200 "node"
 * gateways 10.9.0.2-201 on-link) and a pod-like veth `twl0`. The routes, the same for both sides:
 * N IPv4 /26 blocks from 10.64.0.0/10, of which per 20: 17 via one gateway, 1 ECMP via two,
 * 1 blackhole, 1 `dev twl0 scope link`; protocol 84, table main.
 *
 * Per size N (10k, 50k) and repetition (default 3; the order of the two sides alternates):
 *   ip -batch    wall time of `ip -n NS -batch FILE` (process start included: a few ms), from
 *                an empty table (ours flushed before each run), and its CPU time (user + system,
 *                from this process's cutime/cstime: 10 ms ticks)
 *   cold         the reconciler in a fresh `node` under `ip netns exec` (process start
 *                excluded): from setDesired to the end of its first apply(), which includes the
 *                first read-back (a dump of the whole table) and the batched writes, from an
 *                empty table; and the process's CPU time over the same span
 *   no-change    then, with the N routes installed, markForReadBack() + apply() three times: the
 *                dump, the decode and the diff, writing nothing; time per run, the process's RSS
 *                and V8 heap after them, and its peak RSS (maxRSS)
 *   warm         then, with ours flushed from outside, markForReadBack() + apply() once more:
 *                the read-back finds none of ours and all N go back in, by code the JIT has seen
 * Medians are reported; the table count is checked after every install. CPU time is reported
 * beside wall time because on a shared machine wall time mostly measures the neighbours.
 * Target (issue 17): the reconciler's install within 1.5x `ip -batch`.
 *
 * Cleanup: the child processes are ended by PID and the namespace is deleted on exit, on an
 * error, and on SIGINT/SIGTERM.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { NetlinkKernel } from '../../src/dataplane/netlink-kernel.js';
import { RouteReconciler, type RouteSpec } from '../../src/dataplane/routes.js';

const PROTO = 84;

// ---- the routes -----------------------------------------------------------------------------

function quad(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

const BASE = (10 << 24) | (64 << 16);
const gateway = (i: number) => `10.9.0.${(i % 200) + 2}`;

export function routeSpecs(n: number): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (let i = 0; i < n; i++) {
    const dst = `${quad((BASE + i * 64) >>> 0)}/26`;
    const k = i % 20;
    if (k === 0) out.push({ dst, kind: 'blackhole' });
    else if (k === 1) out.push({ dst, kind: 'via', via: [gateway(i), gateway(i + 1)] });
    else if (k === 2) out.push({ dst, kind: 'dev', dev: 'twl0' });
    else out.push({ dst, kind: 'via', via: [gateway(i)] });
  }
  return out;
}

export function ipBatchText(specs: RouteSpec[]): string {
  const lines: string[] = [];
  for (const s of specs) {
    if (s.kind === 'blackhole') lines.push(`route add blackhole ${s.dst} proto ${PROTO}`);
    else if (s.kind === 'dev') lines.push(`route add ${s.dst} dev ${s.dev} scope link proto ${PROTO}`);
    else if (s.via.length === 1) lines.push(`route add ${s.dst} via ${s.via[0]} proto ${PROTO}`);
    else lines.push(`route add ${s.dst} proto ${PROTO} ${s.via.map((g) => `nexthop via ${g}`).join(' ')}`);
  }
  return `${lines.join('\n')}\n`;
}

// ---- the child: the reconciler inside the namespace ---------------------------------------

async function inner(): Promise<void> {
  const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
  let reconciler: RouteReconciler | undefined;
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = JSON.parse(line) as { cmd: string; n?: number };
    if (cmd.cmd === 'install') {
      const specs = routeSpecs(cmd.n!);
      reconciler = new RouteReconciler({ kernel: () => new NetlinkKernel(), graceMs: 0 });
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      reconciler.setDesired('bgp', specs);
      const stats = await reconciler.apply();
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      out({ ms, cpuMs: (c.user + c.system) / 1000, added: stats.added, failed: stats.failed.length });
    } else if (cmd.cmd === 'repair') {
      // The table was flushed from outside: a read-back finds none of ours and re-adds them all,
      // with the code already warm.
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      reconciler!.markForReadBack();
      const stats = await reconciler!.apply();
      const ms = performance.now() - t0;
      const c = process.cpuUsage(c0);
      out({ ms, cpuMs: (c.user + c.system) / 1000, added: stats.added, failed: stats.failed.length });
    } else if (cmd.cmd === 'noop') {
      const times: number[] = [];
      const cpu: number[] = [];
      let ops = 0;
      for (let i = 0; i < 3; i++) {
        reconciler!.markForReadBack();
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        const s = await reconciler!.apply();
        times.push(performance.now() - t0);
        const c = process.cpuUsage(c0);
        cpu.push((c.user + c.system) / 1000);
        ops += s.added + s.replaced + s.deleted;
      }
      const mem = process.memoryUsage();
      out({
        times,
        cpu,
        ops,
        rssMiB: mem.rss / 2 ** 20,
        heapMiB: mem.heapUsed / 2 ** 20,
        maxRssMiB: process.resourceUsage().maxRSS / 1024,
      });
    } else if (cmd.cmd === 'exit') {
      reconciler?.close();
      process.exit(0);
    }
  }
}

// ---- the outer process ------------------------------------------------------------------

const args = process.argv.slice(2);
const flag = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};

const children = new Set<ChildProcess>();
let ns: string | undefined;
let tmp: string | undefined;

function sh(cmd: string, a: string[], input?: string): string {
  return execFileSync(cmd, a, {
    encoding: 'utf8',
    input,
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 1 << 28,
  });
}

function cleanup(): void {
  for (const c of children)
    if (c.pid !== undefined && c.exitCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  children.clear();
  if (ns) {
    try {
      sh('ip', ['netns', 'del', ns]);
    } catch {
      // gone
    }
    ns = undefined;
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}

/** CPU time (ms) of the children this process has waited for, from /proc/self/stat (10 ms ticks). */
function childCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 16 and 17 of stat(5) (cutime, cstime) are 13 and 14 after the command name.
  return (Number(f[13]) + Number(f[14])) * 10;
}

function countOurs(): number {
  return (JSON.parse(sh('ip', ['-n', ns!, '-j', '-4', 'route', 'show', 'proto', String(PROTO)])) as unknown[])
    .length;
}

function flushOurs(): void {
  sh('ip', ['-n', ns!, '-4', 'route', 'flush', 'proto', String(PROTO)]);
  if (countOurs() !== 0) throw new Error('flush left routes of ours behind');
}

class Child {
  private readonly proc: ChildProcess;
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;

  constructor() {
    this.proc = spawn('ip', ['netns', 'exec', ns!, process.execPath, import.meta.filename, '--inner'], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    children.add(this.proc);
    createInterface({ input: this.proc.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.wake?.();
    });
  }

  async call<T>(cmd: Record<string, unknown>): Promise<T> {
    this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
    while (this.lines.length === 0) {
      if (this.proc.exitCode !== null) throw new Error('bench child exited');
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 1000);
      });
    }
    return JSON.parse(this.lines.shift()!) as T;
  }

  async exit(): Promise<void> {
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.stdin!.write(`${JSON.stringify({ cmd: 'exit' })}\n`);
    await done;
    children.delete(this.proc);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function outer(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error('needs root (a network namespace)');
    process.exit(2);
  }
  const sizes = (flag('--n') ?? '10000,50000').split(',').map(Number);
  const reps = Number(flag('--reps') ?? 3);
  const json = args.includes('--json');
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.on(sig, () => {
      cleanup();
      process.exit(130);
    });
  process.on('exit', cleanup);

  ns = `twb-${process.pid}-routes`;
  tmp = mkdtempSync(join(tmpdir(), 'twl-bench-routes-'));
  sh('ip', ['netns', 'add', ns]);
  const ip = (...a: string[]) => sh('ip', ['-n', ns!, ...a]);
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1');
  ip('addr', 'add', '10.9.0.1/16', 'dev', 'up0');
  ip('link', 'set', 'up0', 'up');
  ip('link', 'set', 'up1', 'up');
  ip('link', 'add', 'twl0', 'type', 'veth', 'peer', 'name', 'twl0p');
  ip('link', 'set', 'twl0', 'up');
  ip('link', 'set', 'twl0p', 'up');

  interface Result {
    n: number;
    ipBatchMs: number[];
    ipBatchCpuMs: number[];
    reconcilerMs: number[];
    reconcilerCpuMs: number[];
    warmMs: number[];
    warmCpuMs: number[];
    noChangeMs: number[];
    noChangeCpuMs: number[];
    rssMiB: number;
    heapMiB: number;
    maxRssMiB: number;
  }
  const results: Result[] = [];
  for (const n of sizes) {
    const specs = routeSpecs(n);
    const file = join(tmp, `routes-${n}.txt`);
    writeFileSync(file, ipBatchText(specs));
    const r: Result = {
      n,
      ipBatchMs: [],
      ipBatchCpuMs: [],
      reconcilerMs: [],
      reconcilerCpuMs: [],
      warmMs: [],
      warmCpuMs: [],
      noChangeMs: [],
      noChangeCpuMs: [],
      rssMiB: 0,
      heapMiB: 0,
      maxRssMiB: 0,
    };
    for (let rep = 0; rep < reps; rep++) {
      const sides = rep % 2 === 0 ? ['ip', 'reconciler'] : ['reconciler', 'ip'];
      for (const side of sides) {
        flushOurs();
        if (side === 'ip') {
          const c0 = childCpuMs();
          const t0 = performance.now();
          sh('ip', ['-n', ns, '-batch', file]);
          r.ipBatchMs.push(performance.now() - t0);
          r.ipBatchCpuMs.push(childCpuMs() - c0);
        } else {
          const child = new Child();
          const inst = await child.call<{ ms: number; cpuMs: number; added: number; failed: number }>({
            cmd: 'install',
            n,
          });
          if (inst.added !== n || inst.failed !== 0)
            throw new Error(`reconciler added ${inst.added} of ${n}`);
          r.reconcilerMs.push(inst.ms);
          r.reconcilerCpuMs.push(inst.cpuMs);
          const noop = await child.call<{
            times: number[];
            cpu: number[];
            ops: number;
            rssMiB: number;
            heapMiB: number;
            maxRssMiB: number;
          }>({ cmd: 'noop' });
          if (noop.ops !== 0) throw new Error(`a no-change reconcile wrote ${noop.ops} routes`);
          r.noChangeMs.push(median(noop.times));
          r.noChangeCpuMs.push(median(noop.cpu));
          r.rssMiB = Math.max(r.rssMiB, noop.rssMiB);
          r.heapMiB = Math.max(r.heapMiB, noop.heapMiB);
          r.maxRssMiB = Math.max(r.maxRssMiB, noop.maxRssMiB);
          flushOurs();
          const again = await child.call<{ ms: number; cpuMs: number; added: number; failed: number }>({
            cmd: 'repair',
          });
          if (again.added !== n || again.failed !== 0) throw new Error(`repair added ${again.added} of ${n}`);
          r.warmMs.push(again.ms);
          r.warmCpuMs.push(again.cpuMs);
          await child.exit();
        }
        const count = countOurs();
        if (count !== n) throw new Error(`${side}: ${count} routes of ours in the table, expected ${n}`);
      }
    }
    results.push(r);
  }

  const f = (x: number) => x.toFixed(0);
  const cell = (wall: number[], cpu: number[]) => `${f(median(wall))} (${f(median(cpu))})`.padStart(12);
  const ratio = (a: number[], b: number[]) => `${(median(a) / median(b)).toFixed(2)}x`.padStart(6);
  console.log(`medians of ${reps}, milliseconds, wall (CPU); ip -batch includes its process start; the`);
  console.log(
    'reconciler runs in a started process: "cold" is its first apply, "warm" re-adds them all after',
  );
  console.log('a flush from outside; no-change = a full read-back that writes nothing');
  console.log(
    'routes     ip -batch  reconciler cold  ratio  reconciler warm  ratio     no-change  RSS  heap  peak RSS (MiB)',
  );
  for (const r of results) {
    console.log(
      `${String(r.n).padStart(6)}  ${cell(r.ipBatchMs, r.ipBatchCpuMs)}     ${cell(r.reconcilerMs, r.reconcilerCpuMs)} ${ratio(r.reconcilerMs, r.ipBatchMs)}` +
        `     ${cell(r.warmMs, r.warmCpuMs)} ${ratio(r.warmMs, r.ipBatchMs)}  ${cell(r.noChangeMs, r.noChangeCpuMs)}` +
        `  ${f(r.rssMiB).padStart(3)}  ${f(r.heapMiB).padStart(4)}  ${f(r.maxRssMiB).padStart(8)}`,
    );
  }
  if (json) console.log(JSON.stringify(results));
}

if (args.includes('--inner')) await inner();
else {
  try {
    await outer();
  } finally {
    cleanup();
  }
}
