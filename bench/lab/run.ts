/**
 * Lab benchmark: a full mesh of N nodes on one bridge (N = 5, 10, 20 by default), built by
 * `twill lab` (src/lab/lab.ts) twice in one run: Twill agents, then BIRD 2 nodes configured as
 * Calico's confd renders calico-node's BIRD (kernel protocol with learn, persist, scan time 2,
 * graceful restart and merge paths; mesh peers passive towards higher addresses; `bird -R`).
 * A benchmark, never a test. As root:
 *
 *   npm run build && node dist/bench/lab/run.js [--sizes 5,10,20] [--reps 10] [--dead-sizes 5,10,20]
 *     [--idle-cpu 10] [--store-writes 200] [--prewarm] [--json]
 *
 * What is timed (every node's kernel watched with `ip -n NODE monitor route`, each line stamped
 * as it arrives):
 *   new block   from the trigger to the block's route in the kernel of every other node. The
 *               trigger for Twill is the IPAMBlock written to the lab's store (its confirmed
 *               BlockAffinity just before, untimed), as the allocator leaves a claimed block: the
 *               agent then installs the blackhole and advertises it, its whole chain including
 *               the store's commit and watch; for
 *               BIRD it is the blackhole added to the node's kernel (what Felix would do: Felix's
 *               own delay is not counted, in BIRD's favour), which BIRD learns and advertises.
 *               Also from the blackhole's appearance in the origin's own kernel (kernel to
 *               kernels, the like-for-like figure; Twill installs the blackhole before it
 *               advertises, as calico-node's BIRD can only advertise what Felix installed).
 *               And, to tell the chain from the sharing of the cores: the trigger itself (the
 *               store's write; `ip route add`), the trigger to the origin's own kernel, and the
 *               trigger to the first other node's kernel (what a node would see with a machine
 *               of its own, less the others' contention).
 *   withdrawn   the same for the block's removal (affinity and block deleted; the blackhole deleted).
 *   dead node   how long until every other node has dropped a node's block after the node
 *               dies: SIGKILL of its daemon, its link set down, SIGSTOP of its daemon. Both
 *               stacks run with hold time 9 s and a graceful-restart time of 10 s (Twill:
 *               BGPConfiguration; BIRD: `hold time 9; graceful restart time 10`), so the
 *               expected bound is about hold time + restart time.
 *   memory      RSS of each agent (and of each BIRD) once the mesh is up, its anonymous part,
 *               and PSS (shared pages, the Node binary's above all, divided among the processes
 *               mapping them).
 *   CPU         each daemon's CPU time (utime + stime, /proc/PID/stat, all its threads): idle,
 *               per second over --idle-cpu S seconds once the mesh is up; and per block added and
 *               withdrawn, over the new-block repetitions less the idle rate for their duration.
 *               Both are means over the daemons, in milliseconds (the kernel counts in ticks of
 *               10 ms, so a figure needs many repetitions: the default 10 gives about ±1 ms).
 *               Twill only: per store write anywhere, less idle, over --store-writes W writes
 *               (default 200, at most 2048: BlockAffinity objects of a node outside the lab,
 *               created and deleted, 20 ms apart). Every agent reads every write from the store's
 *               change log, so a block, four writes, costs N agents this four times over.
 *   --prewarm   before the timed blocks, each node has one block of its own (every daemon then
 *               has taken one of every other node's too), untimed: by default a 10- or 20-node
 *               mesh's every timed block is its origin's first.
 * Reported: median and p90 over the repetitions, and Twill/BIRD ratios.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { openFileDatastore } from '../../src/datastore/file.js';
import { TWILL_API_VERSION } from '../../src/datastore/types.js';
import { newBlockSpec } from '../../src/ipam/allocations.js';
import { affinityName, blockName, parseCidr } from '../../src/ipam/blocks.js';
import { type LabState, labDown, labUp, nodeReport } from '../../src/lab/lab.js';
import { cpuSeconds } from '../proc.js';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const opt = (name: string, dflt: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1]! : dflt;
};
const SIZES = opt('--sizes', '5,10,20').split(',').map(Number);
const DEAD_SIZES = opt('--dead-sizes', '5,10,20').split(',').filter(Boolean).map(Number);
const REPS = Number(opt('--reps', '10'));
const PREWARM = argv.includes('--prewarm');
const IDLE_CPU_S = Number(opt('--idle-cpu', '10'));
const STORE_WRITES = Number(opt('--store-writes', '200'));
const JSON_OUT = argv.includes('--json');
const HOLD = 9;
const GR = 10;

type Stack = 'twill' | 'bird';
const addr = (i: number) => `10.0.0.${i}`;

function topology(stack: Stack, n: number, dir: string): string {
  const nodes: string[] = [];
  const links: string[] = [];
  const swExec = ['ip link add br0 type bridge', 'ip link set br0 up'];
  for (let i = 1; i <= n; i++) {
    swExec.push(`ip link set eth${i} master br0`);
    links.push(`    - endpoints: ["sw:eth${i}", "n${i}:eth1"]`);
    if (stack === 'twill')
      nodes.push(`    n${i}:\n      kind: linux\n      exec:\n        - ip addr add ${addr(i)}/24 dev eth1`);
    else {
      const peers: string[] = [];
      for (let j = 1; j <= n; j++)
        if (j !== i)
          peers.push(
            `protocol bgp Mesh_10_0_0_${j} from bgp_template {\n  neighbor ${addr(j)} as 64512;${j > i ? '\n  passive on;' : ''}\n}`,
          );
      writeFileSync(
        join(dir, `bird${i}.conf`),
        `router id ${addr(i)};
filter calico_export_to_bgp_peers {
  if (net ~ 10.244.0.0/16) then accept;
  reject;
}
filter calico_kernel_programming {
  if (net ~ 10.244.0.0/16) then accept;
  reject;
}
protocol kernel {
  ipv4 { import all; export filter calico_kernel_programming; };
  learn;
  persist;
  scan time 2;
  graceful restart;
  merge paths on;
}
protocol device { scan time 2; }
protocol direct { ipv4; interface -"cali*", "*"; }
template bgp bgp_template {
  local as 64512;
  hold time ${HOLD};
  graceful restart;
  graceful restart time ${GR};
  connect delay time 2;
  ipv4 { import all; export filter calico_export_to_bgp_peers; next hop self; };
}
${peers.join('\n')}
`,
      );
      nodes.push(
        `    n${i}:\n      kind: linux\n      image: twill-lab/bird2:latest\n      binds:\n        - bird${i}.conf:/etc/bird/bird.conf:ro\n      cmd: bird -R -f -c /etc/bird/bird.conf\n      exec:\n        - ip addr add ${addr(i)}/24 dev eth1`,
      );
    }
  }
  writeFileSync(
    join(dir, 'objects.yaml'),
    `apiVersion: ${TWILL_API_VERSION}\nkind: BGPConfiguration\nmetadata: { name: default }\nspec: { holdTime: ${HOLD}, gracefulRestartTime: ${GR} }\n`,
  );
  const file = join(dir, `${stack}${n}.clab.yml`);
  writeFileSync(
    file,
    `name: lab-bench
topology:
  kinds:
    linux:
      image: ghcr.io/twill-net/twill:latest
      cmd: twill agent --ip-autodetection-method interface=eth1 --as 64512 --pool-cidr 10.244.0.0/16 --log-level warn
      labels:
        twill.dev/objects: objects.yaml
  nodes:
    sw:
      kind: linux
      image: nicolaka/netshoot:latest
      exec:
${swExec.map((l) => `        - ${l}`).join('\n')}
${nodes.join('\n')}
  links:
${links.join('\n')}
`,
  );
  return file;
}

/** `ip monitor route` in every node: route lines as they arrive, stamped. */
class Monitors {
  private readonly procs: ChildProcess[] = [];
  private readonly waiters: {
    match: (ns: string, line: string) => boolean;
    ns: Set<string>;
    /** How many of `ns` are still to print a matching line. */
    left: number;
    done: (t: number) => void;
  }[] = [];
  constructor(namespaces: string[]) {
    for (const ns of namespaces) {
      const p = spawn('ip', ['-n', ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let buf = '';
      p.stdout!.on('data', (c: Buffer) => {
        const t = performance.now();
        buf += c.toString();
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines)
          for (const w of [...this.waiters])
            if (w.ns.has(ns) && w.match(ns, line)) {
              w.ns.delete(ns);
              if (--w.left === 0) {
                this.waiters.splice(this.waiters.indexOf(w), 1);
                w.done(t);
              }
            }
      });
      this.procs.push(p);
    }
  }
  /** Resolves with the time the last of `namespaces` (the `count`th) printed a matching line. */
  waitAll(
    namespaces: string[],
    match: (ns: string, line: string) => boolean,
    timeoutMs: number,
    count = namespaces.length,
  ): Promise<number> {
    return new Promise((resolve, reject) => {
      const w = {
        match,
        ns: new Set(namespaces),
        left: count,
        done: (t: number) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out; waiting for ${[...w.ns].join(', ')}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
  stop(): void {
    for (const p of this.procs) p.kill('SIGKILL');
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)]!;
};
const p90 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.ceil(0.9 * s.length) - 1)]!;
};

/**
 * A daemon's memory, KiB: RSS; its anonymous part (heap and stacks: what it holds for itself);
 * and PSS, shared pages divided among the processes that map them (the Node binary's code is
 * file-backed and mapped by every agent on the host, so RSS counts it N times over).
 */
function memKiB(pid: number): { rss: number; anon: number; pss: number } {
  const field = (text: string, name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : Number.NaN;
  };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  let rollup = '';
  try {
    rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {}
  return { rss: field(status, 'VmRSS'), anon: field(status, 'RssAnon'), pss: field(rollup, 'Pss') };
}

interface Result {
  stack: Stack;
  size: number;
  addMs: number[];
  /** From the block's blackhole in its own node's kernel. */
  addFromKernelMs: number[];
  /** From the trigger to the blackhole in its own node's kernel. */
  toOriginMs: number[];
  /** The trigger itself: Twill's store write, BIRD's `ip route add`. */
  triggerMs: number[];
  /** From the trigger to the block's route in the first other node's kernel. */
  firstMs: number[];
  withdrawMs: number[];
  rssMiB: number[];
  anonMiB: number[];
  pssMiB: number[];
  /** Mean over the daemons: CPU ms per second idle, and per block added and withdrawn. */
  idleCpuMsPerS: number;
  cpuMsPerBlock: number;
  /** Twill: mean CPU ms per agent per store write of an object no agent acts on, less idle. */
  cpuMsPerStoreWrite: number;
  dead: Record<string, number>;
}

async function waitMesh(state: LabState, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const rs = await Promise.all(state.nodes.filter((n) => n.role !== 'plain').map((n) => nodeReport(n)));
    if (
      rs.every(
        (r) =>
          r.running &&
          r.peers.length === state.nodes.length - 2 &&
          r.peers.every((p) => p.state === 'Established'),
      )
    )
      return;
    if (Date.now() > end) throw new Error('the mesh did not come up');
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function runOne(stack: Stack, size: number, root: string): Promise<Result> {
  const dir = join(root, `${stack}${size}`);
  mkdirSync(dir, { recursive: true });
  const file = topology(stack, size, dir);
  const name = `lb${stack[0]}${size}`;
  const stateRoot = join(root, 'state');
  const result: Result = {
    stack,
    size,
    addMs: [],
    addFromKernelMs: [],
    toOriginMs: [],
    triggerMs: [],
    firstMs: [],
    withdrawMs: [],
    rssMiB: [],
    anonMiB: [],
    pssMiB: [],
    idleCpuMsPerS: Number.NaN,
    cpuMsPerBlock: Number.NaN,
    cpuMsPerStoreWrite: Number.NaN,
    dead: {},
  };
  const state = await labUp({ file, name, stateRoot });
  const monitors = new Monitors(state.nodes.filter((n) => n.role !== 'plain').map((n) => n.ns));
  try {
    await waitMesh(state, 120);
    await new Promise((r) => setTimeout(r, 2000));
    const daemons = state.nodes.filter((n) => n.role !== 'plain');
    for (const n of daemons)
      for (const p of n.procs) {
        const m = memKiB(p.pid);
        result.rssMiB.push(m.rss / 1024);
        result.anonMiB.push(m.anon / 1024);
        result.pssMiB.push(m.pss / 1024);
      }
    const pids = daemons.flatMap((n) => n.procs.map((p) => p.pid));
    const cpuOf = () => (pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) * 1000) / pids.length;
    const idle0 = cpuOf();
    const idleT0 = performance.now();
    await new Promise((r) => setTimeout(r, IDLE_CPU_S * 1000));
    result.idleCpuMsPerS = ((cpuOf() - idle0) * 1000) / (performance.now() - idleT0);
    const store = stack === 'twill' ? await openFileDatastore(state.store) : undefined;
    if (store && STORE_WRITES > 0) {
      // A create and a delete per object; the objects' blocks are /26s of 10.245.0.0/16.
      const objects = Math.min(Math.floor(STORE_WRITES / 2), 1024);
      const c0 = cpuOf();
      const t0 = performance.now();
      for (let k = 0; k < objects; k++) {
        const cidr = `10.245.${k >> 2}.${(k & 3) * 64}/26`;
        const name = affinityName('outside', parseCidr(cidr));
        await store.create({
          apiVersion: TWILL_API_VERSION,
          kind: 'BlockAffinity',
          metadata: { name },
          spec: { node: 'outside', cidr, state: 'confirmed' },
        });
        await new Promise((r) => setTimeout(r, 20));
        await store.delete({ kind: 'BlockAffinity', name });
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 500));
      const ms = cpuOf() - c0 - (result.idleCpuMsPerS * (performance.now() - t0)) / 1000;
      result.cpuMsPerStoreWrite = ms / (2 * objects);
    }
    const nsOf = (i: number) => daemons[i - 1]!.ns;
    const others = (i: number) => daemons.filter((_, k) => k !== i - 1).map((n) => n.ns);
    const ip = (args: string[]) => run('ip', args);
    const addBlock = async (i: number, cidr: string) => {
      if (store) {
        const c = parseCidr(cidr);
        // A claimed block: its confirmed affinity, then the block (the allocator writes them
        // the other way round; this way one write makes it both installed and originated).
        await store.create({
          apiVersion: TWILL_API_VERSION,
          kind: 'BlockAffinity',
          metadata: { name: affinityName(`n${i}`, c) },
          spec: { node: `n${i}`, cidr, state: 'confirmed' },
        });
        const t = performance.now();
        await store.create({
          apiVersion: TWILL_API_VERSION,
          kind: 'IPAMBlock',
          metadata: { name: blockName(c) },
          spec: newBlockSpec(c, `host:n${i}`),
        });
        return t;
      }
      const t = performance.now();
      await ip(['-n', nsOf(i), 'route', 'add', 'blackhole', cidr, 'proto', '80']);
      return t;
    };
    const delBlock = async (i: number, cidr: string) => {
      const t = performance.now();
      if (store) {
        const c = parseCidr(cidr);
        await store.delete({ kind: 'IPAMBlock', name: blockName(c) });
        await store.delete({ kind: 'BlockAffinity', name: affinityName(`n${i}`, c) });
      } else await ip(['-n', nsOf(i), 'route', 'del', 'blackhole', cidr]);
      return t;
    };
    const isAdd = (cidr: string) => (_: string, l: string) =>
      !l.startsWith('Deleted') && l.startsWith(`${cidr} via`);
    const isDel = (cidr: string) => (_: string, l: string) => l.startsWith(`Deleted ${cidr} via`);
    // --prewarm: each node's agent has had one block of its own and every other node's before
    // the timed ones, untimed (a node's first block after start runs code V8 has not run yet).
    if (PREWARM)
      for (let i = 1; i <= size; i++) {
        const cidr = `10.244.${200 + i}.0/26`;
        const seen = monitors.waitAll(others(i), isAdd(cidr), 30_000);
        await addBlock(i, cidr);
        await seen;
        await new Promise((res) => setTimeout(res, 100));
        const gone = monitors.waitAll(others(i), isDel(cidr), 30_000);
        await delBlock(i, cidr);
        await gone;
      }
    const reps0 = cpuOf();
    const repsT0 = performance.now();
    for (let r = 0; r < REPS; r++) {
      const i = (r % size) + 1;
      const cidr = `10.244.${100 + r}.0/26`;
      const seen = monitors.waitAll(others(i), isAdd(cidr), 30_000);
      const first = monitors.waitAll(others(i), isAdd(cidr), 30_000, 1);
      const origin = monitors.waitAll([nsOf(i)], (_, l) => l.startsWith(`blackhole ${cidr}`), 30_000);
      const t0 = await addBlock(i, cidr);
      result.triggerMs.push(performance.now() - t0);
      const all = await seen;
      const own = await origin;
      result.addMs.push(all - t0);
      result.addFromKernelMs.push(all - own);
      result.toOriginMs.push(own - t0);
      result.firstMs.push((await first) - t0);
      await new Promise((res) => setTimeout(res, 300));
      const gone = monitors.waitAll(others(i), isDel(cidr), 30_000);
      const t1 = await delBlock(i, cidr);
      result.withdrawMs.push((await gone) - t1);
      await new Promise((res) => setTimeout(res, 300));
    }
    result.cpuMsPerBlock =
      (cpuOf() - reps0 - (result.idleCpuMsPerS * (performance.now() - repsT0)) / 1000) / REPS;
    if (DEAD_SIZES.includes(size)) {
      const modes = ['SIGKILL', 'link down', 'SIGSTOP'] as const;
      const down = new Set<string>();
      for (const [k, mode] of modes.entries()) {
        const victim = size - k;
        const cidr = `10.244.${200 + k}.0/26`;
        const alive = others(victim).filter((ns) => !down.has(ns));
        const seen = monitors.waitAll(alive, isAdd(cidr), 30_000);
        await addBlock(victim, cidr);
        await seen;
        down.add(nsOf(victim));
        const gone = monitors.waitAll(alive, isDel(cidr), (HOLD + GR + 60) * 1000);
        const t0 = performance.now();
        const proc = daemons[victim - 1]!.procs[0]!;
        if (mode === 'SIGKILL') process.kill(proc.pid, 'SIGKILL');
        else if (mode === 'SIGSTOP') process.kill(proc.pid, 'SIGSTOP');
        else await ip(['-n', nsOf(victim), 'link', 'set', 'eth1', 'down']);
        try {
          result.dead[mode] = (await gone) - t0;
        } catch {
          result.dead[mode] = Number.NaN;
        }
        if (mode === 'SIGSTOP') process.kill(proc.pid, 'SIGCONT');
      }
    }
    await store?.close();
  } finally {
    monitors.stop();
    await labDown(stateRoot, name);
  }
  return result;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the lab benchmark needs root (network namespaces)');
  const root = mkdtempSync(join(tmpdir(), 'twill-lab-bench-'));
  const results: Result[] = [];
  try {
    for (const size of SIZES)
      for (const stack of ['twill', 'bird'] as const) {
        process.stderr.write(`${stack} mesh of ${size}...\n`);
        results.push(await runOne(stack, size, root));
      }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  const f = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(x < 10 ? 1 : 0));
  const pair = (size: number) => ({
    t: results.find((r) => r.stack === 'twill' && r.size === size)!,
    b: results.find((r) => r.stack === 'bird' && r.size === size)!,
  });
  console.log(`Twill lab benchmark — ${new Date().toISOString()}`);
  console.log(
    `${cpus()[0]?.model ?? 'CPU'}, ${cpus().length} cores, ${REPS} repetitions, hold ${HOLD} s, GR ${GR} s`,
  );
  console.log('');
  console.log(
    'nodes  new block ms: Twill p50/p90  BIRD p50/p90  ratio | from the origin kernel: Twill  BIRD  ratio | withdrawn: Twill  BIRD  ratio | MiB per node, RSS/anonymous/PSS: Twill  BIRD',
  );
  for (const size of SIZES) {
    const { t, b } = pair(size);
    console.log(
      `${String(size).padStart(5)}  ${f(median(t.addMs))}/${f(p90(t.addMs))}  ${f(median(b.addMs))}/${f(p90(b.addMs))}  ${(median(t.addMs) / median(b.addMs)).toFixed(2)}x | ` +
        `${f(median(t.addFromKernelMs))}/${f(p90(t.addFromKernelMs))}  ${f(median(b.addFromKernelMs))}/${f(p90(b.addFromKernelMs))}  ${(median(t.addFromKernelMs) / median(b.addFromKernelMs)).toFixed(2)}x | ` +
        `${f(median(t.withdrawMs))}/${f(p90(t.withdrawMs))}  ${f(median(b.withdrawMs))}/${f(p90(b.withdrawMs))}  ${(median(t.withdrawMs) / median(b.withdrawMs)).toFixed(2)}x | ` +
        `${f(median(t.rssMiB))}/${f(median(t.anonMiB))}/${f(median(t.pssMiB))}  ${f(median(b.rssMiB))}/${f(median(b.anonMiB))}/${f(median(b.pssMiB))}`,
    );
  }
  console.log('');
  console.log(
    'nodes  the trigger itself ms: Twill (store write)  BIRD (ip route add) | trigger to its own kernel: Twill  BIRD | to the first other kernel: Twill  BIRD',
  );
  for (const size of SIZES) {
    const { t, b } = pair(size);
    console.log(
      `${String(size).padStart(5)}  ${f(median(t.triggerMs))}/${f(p90(t.triggerMs))}  ${f(median(b.triggerMs))}/${f(p90(b.triggerMs))} | ` +
        `${f(median(t.toOriginMs))}/${f(p90(t.toOriginMs))}  ${f(median(b.toOriginMs))}/${f(p90(b.toOriginMs))} | ` +
        `${f(median(t.firstMs))}/${f(p90(t.firstMs))}  ${f(median(b.firstMs))}/${f(p90(b.firstMs))}`,
    );
  }
  console.log('');
  console.log(
    'nodes  CPU per daemon, ms: idle per second: Twill  BIRD | per block added and withdrawn, less idle: Twill  BIRD | per store write: Twill',
  );
  for (const size of SIZES) {
    const { t, b } = pair(size);
    const g = (x: number, digits = 1) => (Number.isNaN(x) ? '-' : x.toFixed(digits));
    console.log(
      `${String(size).padStart(5)}  ${g(t.idleCpuMsPerS)}  ${g(b.idleCpuMsPerS)} | ${g(t.cpuMsPerBlock)}  ${g(b.cpuMsPerBlock)} | ${g(t.cpuMsPerStoreWrite, 2)}`,
    );
  }
  console.log('');
  console.log('dead node, seconds until every other node dropped its block (hold 9 s + GR 10 s):');
  for (const size of DEAD_SIZES.filter((s) => SIZES.includes(s))) {
    const { t, b } = pair(size);
    for (const mode of Object.keys(t.dead))
      console.log(
        `${String(size).padStart(5)}  ${mode.padEnd(9)}  Twill ${f(t.dead[mode]! / 1000)}  BIRD ${f(b.dead[mode]! / 1000)}`,
      );
  }
  if (JSON_OUT) console.log(JSON.stringify(results));
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`lab bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  },
);
