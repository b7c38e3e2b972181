/**
 * CNI benchmark: ADD and DEL latency of the Twill plugin for N pods (default 100), invoked as a
 * container runtime invokes a plugin, against Debian's reference `ptp` + `host-local` in the same
 * run, with the cost of starting Node itself measured alongside. A benchmark, never a test.
 *
 *   npm run build && node dist/bench/cni/run.js              # as root; human table
 *   npm run build && node dist/bench/cni/run.js --pods 50 --json
 *   node dist/bench/cni/run.js --node /path/to/node24         # plugin and bare Node on another Node
 *
 * Set-up (all in namespaces the benchmark makes and deletes, also on failure): a "node" namespace
 * and one namespace per pod and plugin. The benchmark re-runs itself inside the node namespace
 * (`ip netns exec`), so each plugin is exec'd directly by a process already in the node's network
 * namespace, as a runtime execs /opt/cni/bin/<type>: CNI_* environment, `IgnoreUnknown=1` and
 * the K8S_POD_* pair in CNI_ARGS, the plugin configuration on stdin, the result read from stdout.
 * Twill's agent endpoint (the real allocator over the in-memory datastore, and the host side of
 * each pod over a netlink socket, as the agent does it) runs in the benchmark's own process, as
 * the node's agent would answer it. host-local keeps its state in a
 * temporary folder.
 *
 * Series, interleaved per pod so that load from other processes on the machine hits all of them
 * alike:
 *   ADD, DEL   twill | ptp + host-local | node -e 0
 *   start-up   node -e 0 | node on an empty ES module | twill VERSION (Node plus the CNI client,
 *              no kernel or agent work) | the same client unbundled, as ES modules from dist/
 *              (what bundling took off) | node importing the whole Twill CLI (what a plugin built
 *              on `twill cni` would load)
 * The plugin is installed as `twill cni-install` installs it (src/cni/install.ts): the bundle
 * dist/cni/twill and the Node binary copied into a temporary bin folder, the bundle's first line
 * naming that Node, so the kernel starts it directly, as on a node.
 * `--node PATH` installs and runs the plugin, and the bare-Node series, on another Node binary;
 * the benchmark's own process and the agent endpoint stay on this one.
 * Each is wall time from spawn to exit. Reported: p50 and p99 (nearest rank) per series, and the
 * target: Twill's p50 minus bare Node's p50 at most 1.5 x ptp's p50.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { wireHostSide } from '../../src/cni/host-wiring.js';
import { DEFAULT_CONFLIST, installCni } from '../../src/cni/install.js';
import { CniHandler, CniServer } from '../../src/cni/server.js';
import { NetlinkKernel } from '../../src/dataplane/netlink-kernel.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { TWILL_API_VERSION } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';

const ROOT = join(import.meta.dirname, '../../..');
const BUNDLE = join(ROOT, 'dist/cni/twill');
const ESM_ENTRY = join(ROOT, 'dist/src/cni/main.js');
const CLI = join(ROOT, 'dist/src/cli.js');
const REFERENCE = '/usr/lib/cni';

const argv = process.argv.slice(2);
const json = argv.includes('--json');
const podsAt = argv.indexOf('--pods');
const PODS = podsAt >= 0 ? Number(argv[podsAt + 1]) : 100;
const nodeAt = argv.indexOf('--node');
const NODE = nodeAt >= 0 ? argv[nodeAt + 1]! : process.execPath;
const TAG = process.env.TWILL_CNI_BENCH_TAG ?? `twb${process.pid}`;
const nodeNs = `${TAG}-node`;
const podNs = (plugin: 't' | 'p', i: number) => `${TAG}-${plugin}${i}`;

interface Timed {
  ms: number;
  code: number;
  stdout: string;
  stderr: string;
}

function timed(cmd: string, args: string[], env: Record<string, string>, stdin: string): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child: ChildProcess = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (c: Buffer) => out.push(c));
    child.stderr!.on('data', (c: Buffer) => err.push(c));
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({
        ms: performance.now() - t0,
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    // A process may exit without reading its stdin (node -e 0): not an error of the benchmark.
    child.stdin!.on('error', () => {});
    child.stdin!.end(stdin);
  });
}

/** Nearest-rank percentile of a sorted list. */
function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

class Series {
  readonly ms: number[] = [];
  failures: string[] = [];
  constructor(readonly name: string) {}
  add(t: Timed, what: string): void {
    if (t.code !== 0) this.failures.push(`${what}: exit ${t.code}: ${t.stdout.trim()} ${t.stderr.trim()}`);
    else this.ms.push(t.ms);
  }
  get p50(): number {
    return pct(
      [...this.ms].sort((a, b) => a - b),
      50,
    );
  }
  get p99(): number {
    return pct(
      [...this.ms].sort((a, b) => a - b),
      99,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Outside: namespaces, then the benchmark again inside the node namespace, then clean-up.

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

async function outside(): Promise<number> {
  if (process.getuid?.() !== 0) throw new Error('the CNI benchmark needs root (network namespaces)');
  for (const p of ['ptp', 'host-local'])
    if (!existsSync(join(REFERENCE, p)))
      throw new Error(`no ${REFERENCE}/${p}: install Debian's containernetworking-plugins`);
  if (!existsSync(BUNDLE)) throw new Error('run `npm run build` first');
  const made: string[] = [];
  const cleanup = () => {
    for (const ns of made.reverse()) {
      try {
        sh('ip', ['netns', 'del', ns]);
      } catch {
        // already gone
      }
    }
  };
  process.once('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    for (const ns of [
      nodeNs,
      ...Array.from({ length: PODS }, (_, i) => [podNs('t', i), podNs('p', i)]).flat(),
    ]) {
      sh('ip', ['netns', 'add', ns]);
      made.push(ns);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    const inner = spawn(
      'ip',
      ['netns', 'exec', nodeNs, process.execPath, ...process.execArgv, process.argv[1]!, ...argv],
      {
        env: { ...process.env, TWILL_CNI_BENCH_INNER: '1', TWILL_CNI_BENCH_TAG: TAG },
        stdio: 'inherit',
      },
    );
    return await new Promise<number>((resolve) => inner.once('close', (code) => resolve(code ?? 1)));
  } finally {
    cleanup();
  }
}

// ---------------------------------------------------------------------------------------------
// Inside the node namespace: the agent endpoint and the timed invocations.

async function inside(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'twill-cni-bench-'));
  const store = new MemoryDatastore();
  await store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'bench-node' }, spec: {} });
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'bench' },
    spec: { cidr: '10.99.0.0/16', blockSize: 26 },
  });
  // As the agent does: the pods' host sides over a netlink socket of this process, which runs in
  // the node's namespace.
  const kernel = new NetlinkKernel();
  const handler = new CniHandler({
    allocator: new Allocator({ store, clock: { now: () => Date.now() } }),
    node: 'bench-node',
    ready: true,
    wireHost: async (e) => {
      await wireHostSide({ kernel }, e);
    },
  });
  const socket = join(dir, 'run', 'cni.sock');
  const server = new CniServer({ handler, path: socket });
  await server.listen();
  const bin = join(dir, 'bin');
  const netd = join(dir, 'net.d');
  mkdirSync(bin);
  mkdirSync(netd);
  await installCni({
    binDir: bin,
    hostBinDir: bin,
    confDir: netd,
    confName: '10-twill.conflist',
    conflist: JSON.stringify(DEFAULT_CONFLIST),
    node: NODE,
    plugin: BUNDLE,
  });
  const PLUGIN = join(bin, 'twill');
  const empty = join(dir, 'empty.mjs');
  writeFileSync(empty, 'export {};\n');

  const PATH = `${dirname(NODE)}:/usr/sbin:/usr/bin:/sbin:/bin`;
  const nodeVersion = execFileSync(NODE, ['--version'], { encoding: 'utf8' }).trim();
  const twillConf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'twill',
    mtu: 1500,
    agentSocket: socket,
  });
  const ptpConf = JSON.stringify({
    cniVersion: '1.0.0',
    name: 'bench-ptp',
    type: 'ptp',
    mtu: 1500,
    ipMasq: false,
    ipam: { type: 'host-local', ranges: [[{ subnet: '10.98.0.0/16' }]], dataDir: join(dir, 'host-local') },
  });
  const env = (command: string, plugin: 't' | 'p', i: number): Record<string, string> => ({
    PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: `bench${plugin}${i.toString().padStart(4, '0')}`,
    CNI_NETNS: `/run/netns/${podNs(plugin, i)}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=pod-${plugin}${i}`,
    CNI_PATH: REFERENCE,
  });
  const bare = () => timed(NODE, ['-e', '0'], { PATH }, '');

  const s = {
    twillAdd: new Series('twill ADD'),
    ptpAdd: new Series('ptp + host-local ADD'),
    nodeAdd: new Series('node -e 0 (during ADD)'),
    twillDel: new Series('twill DEL'),
    ptpDel: new Series('ptp + host-local DEL'),
    nodeDel: new Series('node -e 0 (during DEL)'),
    bare: new Series('node -e 0'),
    esm: new Series('node empty.mjs'),
    version: new Series('twill VERSION'),
    esmVersion: new Series('twill VERSION, ES modules'),
    cli: new Series('node + import Twill CLI'),
  };

  try {
    // Warm the page cache and the agent once; untimed.
    for (let i = 0; i < 3; i++) {
      await bare();
      await timed(PLUGIN, [], { PATH, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
      await timed(join(REFERENCE, 'ptp'), [], { PATH, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}');
    }
    // Rotate the order per pod, so no series always runs right after another.
    const rotate = async (i: number, jobs: (() => Promise<void>)[]) => {
      for (let k = 0; k < jobs.length; k++) await jobs[(i + k) % jobs.length]!();
    };
    for (let i = 0; i < PODS; i++)
      await rotate(i, [
        async () => s.twillAdd.add(await timed(PLUGIN, [], env('ADD', 't', i), twillConf), `twill ADD ${i}`),
        async () =>
          s.ptpAdd.add(await timed(join(REFERENCE, 'ptp'), [], env('ADD', 'p', i), ptpConf), `ptp ADD ${i}`),
        async () => s.nodeAdd.add(await bare(), 'node'),
      ]);
    const cliRuns = Math.max(5, Math.ceil(PODS / 4));
    for (let i = 0; i < PODS; i++)
      await rotate(i, [
        async () => s.bare.add(await bare(), 'node'),
        async () => s.esm.add(await timed(NODE, [empty], { PATH }, ''), 'esm'),
        async () =>
          s.esmVersion.add(
            await timed(NODE, [ESM_ENTRY], { PATH, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}'),
            'VERSION (ES modules)',
          ),
        async () =>
          s.version.add(
            await timed(PLUGIN, [], { PATH, CNI_COMMAND: 'VERSION' }, '{"cniVersion":"1.0.0"}'),
            'VERSION',
          ),
        async () => {
          if (i < cliRuns)
            s.cli.add(
              await timed(
                process.execPath,
                ['--input-type=module', '-e', `await import(${JSON.stringify(CLI)})`],
                { PATH },
                '',
              ),
              'cli',
            );
        },
      ]);
    for (let i = 0; i < PODS; i++)
      await rotate(i, [
        async () => s.twillDel.add(await timed(PLUGIN, [], env('DEL', 't', i), twillConf), `twill DEL ${i}`),
        async () =>
          s.ptpDel.add(await timed(join(REFERENCE, 'ptp'), [], env('DEL', 'p', i), ptpConf), `ptp DEL ${i}`),
        async () => s.nodeDel.add(await bare(), 'node'),
      ]);
  } finally {
    await server.close();
    kernel.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const failures = Object.values(s).flatMap((x) => x.failures);
  const f = (n: number) => n.toFixed(1);
  const rows: string[][] = [['series', 'n', 'p50 ms', 'p99 ms']];
  for (const x of Object.values(s))
    if (x.ms.length + x.failures.length > 0) rows.push([x.name, String(x.ms.length), f(x.p50), f(x.p99)]);
  const target = (tw: Series, ref: Series, node: Series) => {
    const own = tw.p50 - node.p50;
    return { own, ref: ref.p50, ratio: own / ref.p50, ok: own <= 1.5 * ref.p50 };
  };
  const add = target(s.twillAdd, s.ptpAdd, s.nodeAdd);
  const del = target(s.twillDel, s.ptpDel, s.nodeDel);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`Twill CNI benchmark — ${new Date().toISOString()}`);
  console.log(`${cpu}, ${cpus().length} cores, plugin on Node ${nodeVersion.slice(1)}, ${PODS} pods`);
  console.log('');
  console.log(line(rows[0]!));
  console.log(line(widths.map((n) => '-'.repeat(n))));
  for (const r of rows.slice(1)) console.log(line(r));
  console.log('');
  for (const [name, t] of [
    ['ADD', add],
    ['DEL', del],
  ] as const)
    console.log(
      `${name}: Twill p50 - node p50 = ${f(t.own)} ms; ptp p50 = ${f(t.ref)} ms; ratio ${t.ratio.toFixed(2)} (target <= 1.50: ${t.ok ? 'met' : 'missed'})`,
    );
  console.log(
    `start-up: the bundled CNI client adds ${f(s.version.p50 - s.bare.p50)} ms to bare Node; unbundled ES modules ${f(s.esmVersion.p50 - s.bare.p50)} ms (an empty ES module alone: ${f(s.esm.p50 - s.bare.p50)} ms); the whole CLI would add ${f(s.cli.p50 - s.bare.p50)} ms`,
  );
  if (failures.length > 0) {
    console.log(`\n${failures.length} invocations failed:`);
    for (const x of failures.slice(0, 10)) console.log(`  ${x}`);
  }
  if (json)
    console.log(
      JSON.stringify({
        pods: PODS,
        node: nodeVersion.slice(1),
        series: Object.fromEntries(
          Object.entries(s).map(([k, x]) => [k, { n: x.ms.length, p50: x.p50, p99: x.p99 }]),
        ),
        add,
        del,
        failures: failures.length,
      }),
    );
  return failures.length > 0 ? 1 : 0;
}

(process.env.TWILL_CNI_BENCH_INNER === '1' ? inside() : outside()).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`cni bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
