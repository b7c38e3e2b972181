/**
 * The node agent's cost, beside BIRD doing the BGP part of the same job (`npm run bench:agent`).
 *
 * Topology (network namespaces on one bridge, as test/agent/helpers.ts builds them): the node
 * at 10.77.0.1 and 20 iBGP peers, one BIRD 2 process each on its own address (10.77.0.101-120),
 * as a node in a 21-node mesh has. First the Twill agent is the node (file datastore, the peers
 * as 20 BGPPeer objects); then BIRD 2 takes its place with the same 20 sessions and a kernel
 * protocol, which is what calico-node's BIRD does (the agent also runs IPAM, the CNI endpoint,
 * policy and a route reconciler: it is one process doing the work of BIRD, confd and Felix).
 *
 * Measured for each: RSS (VmRSS) and CPU (utime+stime from /proc/PID/stat) idle, over --idle
 * seconds after 10 s of Established; then peer 0 exports N static /32s (`birdc configure`), the
 * node installs N kernel routes, and then they are withdrawn: CPU seconds per 1,000 route changes
 * and the time until the kernel holds them all (or none), medians of --reps. For reference: the
 * agent's RSS with no peer, and a bare Node process's (`setInterval`), Node's floor.
 *
 * Flags: --n LIST (default 10000), --reps R (default 3), --idle S (default 30).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileDatastore } from '../../src/datastore/file.js';
import { type AgentRun, agentStatus, buildSegment, startAgent, stopAgent } from '../../test/agent/helpers.js';
import { Lab, sh, waitFor } from '../../test/helpers/netns.js';
import { cpuSeconds } from '../proc.js';

const argv = process.argv.slice(2);
const flag = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const SIZES = (flag('n') ?? '10000').split(',').map(Number);
const REPS = Number(flag('reps') ?? 3);
const IDLE_S = Number(flag('idle') ?? 30);
const PEERS = 20;

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Peer i: one session to the node, from its own address; peer 0 originates the routes. */
function peerConfig(dir: string, i: number): string {
  return `router id 10.77.0.${101 + i};
protocol device {}
${i === 0 ? `include "${join(dir, 'routes.conf')}";` : ''}
protocol bgp dut {
  local 10.77.0.${101 + i} as 64512;
  strict bind yes;
  neighbor 10.77.0.1 as 64512;
  ipv4 { import none; export ${i === 0 ? 'where proto = "st"' : 'none'}; next hop self; };
}
`;
}

/** BIRD in the node's place: 20 sessions, best routes into the kernel (protocol bird). */
function dutConfig(): string {
  const protos = [];
  for (let i = 0; i < PEERS; i++)
    protos.push(
      `protocol bgp p${i} { local 10.77.0.1 as 64512; neighbor 10.77.0.${101 + i} as 64512; direct; ipv4 { import all; export none; }; }`,
    );
  return `router id 10.77.0.1;
protocol device {}
protocol kernel { ipv4 { export all; }; }
${protos.join('\n')}
`;
}

function routesFile(dir: string, n: number): void {
  const lines = [];
  for (let i = 0; i < n; i++)
    lines.push(`route 10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 blackhole;`);
  writeFileSync(join(dir, 'routes.conf'), `protocol static st {\n  ipv4;\n${lines.join('\n')}\n}\n`);
}

function kernelCount(ns: string, proto: string): number {
  const out = execFileSync('ip', ['-n', ns, 'route', 'show', 'proto', proto], {
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  let n = 0;
  for (const l of out.split('\n')) if (l.startsWith('10.1')) n++;
  return n;
}

interface Figures {
  idleRss: number;
  idleCpuPerMin: number;
  /** Per size: median CPU s per 1,000 changes (add, withdraw) and seconds to the kernel. */
  changes: Map<number, { add: number; del: number; addS: number; delS: number }>;
  rssAfter: number;
}

/** Idle and route-change figures of the process `pid` that installs routes with `proto`. */
async function measure(pid: number, ns: string, proto: string, ctl: string, dir: string): Promise<Figures> {
  await sleep(10_000);
  const c0 = cpuSeconds(pid);
  await sleep(IDLE_S * 1000);
  const idleCpuPerMin = ((cpuSeconds(pid) - c0) * 60) / IDLE_S;
  const idleRss = rssMiB(pid);
  const changes = new Map<number, { add: number; del: number; addS: number; delS: number }>();
  for (const n of SIZES) {
    const runs: { add: number; del: number; addS: number; delS: number }[] = [];
    for (let rep = 0; rep < REPS; rep++) {
      const r = { add: 0, del: 0, addS: 0, delS: 0 };
      for (const phase of ['add', 'del'] as const) {
        const want = phase === 'add' ? n : 0;
        routesFile(dir, want);
        const cpu0 = cpuSeconds(pid);
        const t0 = performance.now();
        execFileSync('birdc', ['-s', ctl, 'configure'], { stdio: 'ignore' });
        await waitFor(
          `${phase} of ${n} routes in the kernel`,
          () => kernelCount(ns, proto) === want,
          300_000,
          50,
        );
        const secs = (performance.now() - t0) / 1000;
        const cpu = ((cpuSeconds(pid) - cpu0) * 1000) / n;
        if (phase === 'add') Object.assign(r, { add: cpu, addS: secs });
        else Object.assign(r, { del: cpu, delS: secs });
        await sleep(1000);
      }
      runs.push(r);
    }
    changes.set(n, {
      add: median(runs.map((r) => r.add)),
      del: median(runs.map((r) => r.del)),
      addS: median(runs.map((r) => r.addS)),
      delS: median(runs.map((r) => r.delS)),
    });
  }
  return { idleRss, idleCpuPerMin, changes, rssAfter: rssMiB(pid) };
}

async function main(): Promise<void> {
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), 'twill-bench-agent-'));
  try {
    // A bare Node process: the floor under any Node program.
    const bare = lab.spawn(lab.ns('bare'), process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
    await sleep(1500);
    const bareRss = rssMiB(bare.pid!);

    const seg = buildSegment(lab, 1);
    const node = seg.nodes[0]!;
    const datastore = `file:${join(dir, 'store')}`;
    const extraArgs = ['--health-listen', 'off', '--log-level', 'warn'];
    // The agent alone first: its RSS with no peer.
    let agent: AgentRun = startAgent(lab, node, { dir, datastore, extraArgs });
    await waitFor(
      'the agent answers',
      async () => (await agentStatus(agent)).routerId === node.address,
      30_000,
    );
    await sleep(10_000);
    const loneRss = rssMiB(agent.proc.pid!);
    await stopAgent(agent);

    // 20 peers: one BIRD process each, on its own address, one session to the node.
    const peersNs = lab.ns('peers');
    sh('ip', [
      'link',
      'add',
      'eth1',
      'netns',
      peersNs,
      'type',
      'veth',
      'peer',
      'name',
      'ppeers',
      'netns',
      seg.sw,
    ]);
    sh('ip', ['-n', seg.sw, 'link', 'set', 'ppeers', 'master', 'br0', 'up']);
    for (let i = 0; i < PEERS; i++)
      sh('ip', ['-n', peersNs, 'addr', 'add', `10.77.0.${101 + i}/24`, 'dev', 'eth1']);
    sh('ip', ['-n', peersNs, 'link', 'set', 'eth1', 'up']);
    routesFile(dir, 0);
    const ctl = join(dir, 'peer0.ctl');
    for (let i = 0; i < PEERS; i++) {
      writeFileSync(join(dir, `peer${i}.conf`), peerConfig(dir, i));
      lab.spawn(peersNs, 'bird', ['-f', '-c', join(dir, `peer${i}.conf`), '-s', join(dir, `peer${i}.ctl`)]);
    }

    // The agent with 20 BGPPeers.
    const store = await openFileDatastore(join(dir, 'store'));
    for (let i = 0; i < PEERS; i++)
      await store.create({
        apiVersion: 'crd.twill.dev/v1',
        kind: 'BGPPeer',
        metadata: { name: `peer-${i}` },
        spec: { peerIP: `10.77.0.${101 + i}`, asNumber: 64512 },
      });
    await store.close();
    agent = startAgent(lab, node, { dir, datastore, extraArgs });
    await waitFor(
      `${PEERS} agent sessions Established`,
      async () => (await agentStatus(agent)).peers.filter((p) => p.state === 'Established').length === PEERS,
      90_000,
      500,
    );
    const agentFig = await measure(agent.proc.pid!, node.ns, '84', ctl, dir);
    await stopAgent(agent);
    sh('ip', ['-n', node.ns, 'route', 'flush', 'proto', '84']);

    // BIRD in the node's place, with the same 20 peers.
    writeFileSync(join(dir, 'dut.conf'), dutConfig());
    const dutCtl = join(dir, 'dut.ctl');
    const dut = lab.spawn(node.ns, 'bird', ['-f', '-c', join(dir, 'dut.conf'), '-s', dutCtl]);
    await waitFor(
      `${PEERS} BIRD sessions Established`,
      () =>
        (
          execFileSync('birdc', ['-s', dutCtl, 'show', 'protocols'], { encoding: 'utf8' }).match(
            /Established/g,
          ) ?? []
        ).length === PEERS,
      90_000,
      500,
    );
    const birdFig = await measure(dut.pid!, node.ns, 'bird', ctl, dir);

    const out: string[] = [];
    out.push(
      `Agent bench — ${new Date().toISOString()}, ${cpus().length} cores, load ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );
    out.push('');
    out.push(`| ${PEERS} iBGP peers | idle RSS MiB | idle CPU s/min | RSS after the changes MiB |`);
    out.push('|---|---|---|---|');
    out.push(
      `| Twill agent | ${agentFig.idleRss.toFixed(1)} | ${agentFig.idleCpuPerMin.toFixed(3)} | ${agentFig.rssAfter.toFixed(1)} |`,
    );
    out.push(
      `| BIRD 2 | ${birdFig.idleRss.toFixed(1)} | ${birdFig.idleCpuPerMin.toFixed(3)} | ${birdFig.rssAfter.toFixed(1)} |`,
    );
    out.push(`| Twill agent, no peer | ${loneRss.toFixed(1)} | | |`);
    out.push(`| bare Node (setInterval) | ${bareRss.toFixed(1)} | | |`);
    out.push('');
    out.push(
      '| route changes | Twill CPU s per 1,000 add / withdraw | BIRD | Twill to the kernel s add / withdraw | BIRD |',
    );
    out.push('|---|---|---|---|---|');
    for (const n of SIZES) {
      const a = agentFig.changes.get(n)!;
      const b = birdFig.changes.get(n)!;
      out.push(
        `| ${n} | ${a.add.toFixed(3)} / ${a.del.toFixed(3)} | ${b.add.toFixed(3)} / ${b.del.toFixed(3)} | ${a.addS.toFixed(2)} / ${a.delS.toFixed(2)} | ${b.addS.toFixed(2)} / ${b.delS.toFixed(2)} |`,
      );
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
