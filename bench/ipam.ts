/**
 * IPAM benchmark: 10,000 pod addresses across 100 nodes, through Twill's allocator on the file
 * store and on a real kube-apiserver (started here from the test bed's binaries, see
 * test/k8s/build.sh), and the same number through the reference `host-local` IPAM plugin
 * (Debian's containernetworking-plugins) as the anchor, in the same run.
 *
 *   npm run build && node dist/bench/ipam.js [--addresses N] [--nodes N] [--parallel N]
 *     [--only file,file-watched,kubernetes,kubernetes-watched,host-local]
 *
 * How each is driven:
 * - Twill: one Allocator per node, each with its own store client, in this process; every node
 *   assigns its share one after another (a node's CNI ADDs reach its agent one at a time), and
 *   `--parallel` nodes (default 8) work at once. One IPPool 10.128.0.0/14 with /26 blocks, so
 *   nodes claim blocks as they fill them, as in a cluster coming up.
 * - Twill with watches ("watched"): the same, each allocator also given a `WatchReadCache`, as
 *   the agent gives its own (read-cache.ts), so that an assign into a block the node holds is two
 *   writes and no read. The watches are one set for the process, shared by every node's cache,
 *   where in a cluster each agent has its own on its own machine: 100 sets of watches in one
 *   process would each be woken by every write, which no agent pays for another.
 * - host-local: one process per address, invoked as a runtime invokes an IPAM plugin (CNI_*
 *   environment, config on stdin), each node with its own range (a /25 of 10.192.0.0/10) and
 *   its own data folder, `--parallel` nodes at once. Its figure includes starting a process per
 *   address (a few ms for a Go binary); Twill's does not, since the allocator lives in the
 *   agent (bench/cni measures the plugin's start-up).
 * Reported: assigns per second over the whole run, and p50/p99 of one assign. The figures go
 * into the README as ratios; the machine is shared and noisy, so compare within one run.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileDatastore } from '../src/datastore/file.js';
import { KubernetesStore } from '../src/datastore/kubernetes.js';
import { jitteredBackoff } from '../src/datastore/backoff.js';
import {
  type Datastore,
  type Kind,
  type StoredObject,
  TWILL_API_VERSION,
  type WatchHandle,
} from '../src/datastore/types.js';
import { Allocator } from '../src/ipam/allocator.js';
import { WatchReadCache, type WatchSource } from '../src/ipam/read-cache.js';
import { buildScript, installCrds, startControlPlane } from '../test/k8s/control-plane.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ADDRESSES = opt('addresses', 10_000);
const NODES = opt('nodes', 100);
const PARALLEL = opt('parallel', 8);
const onlyIdx = args.indexOf('--only');
const ONLY = new Set(
  onlyIdx >= 0
    ? args[onlyIdx + 1]!.split(',')
    : ['file', 'file-watched', 'kubernetes', 'kubernetes-watched', 'host-local'],
);
const PER_NODE = Math.ceil(ADDRESSES / NODES);
const HOST_LOCAL = ['/usr/lib/cni/host-local', '/opt/cni/bin/host-local'].find(existsSync);

interface Result {
  name: string;
  seconds: number;
  count: number;
  latenciesMs: number[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Runs `work(node, i)` for every node's share, PARALLEL nodes at a time, timing each call. */
async function drive(name: string, work: (node: number, i: number) => Promise<void>): Promise<Result> {
  const latenciesMs: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL, NODES) }, async () => {
      for (let n = next++; n < NODES; n = next++)
        for (let i = 0; i < PER_NODE && n * PER_NODE + i < ADDRESSES; i++) {
          const t = performance.now();
          await work(n, i);
          latenciesMs.push(performance.now() - t);
        }
    }),
  );
  return { name, seconds: (performance.now() - t0) / 1000, count: latenciesMs.length, latenciesMs };
}

async function seed(store: Datastore): Promise<void> {
  for (let n = 0; n < NODES; n++)
    await store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${n}` } } as StoredObject);
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'bench' },
    spec: { cidr: '10.128.0.0/14', blockSize: 26 },
  });
}

/** What the allocator reads, watched: the kinds' objects by name once each watch is in sync. */
async function watchMaps(store: Datastore): Promise<{ source: WatchSource; handles: WatchHandle[] }> {
  const kinds: Kind[] = ['IPAMConfig', 'IPPool', 'Node', 'BlockAffinity', 'IPAMBlock'];
  const maps = new Map<Kind, Map<string, StoredObject>>();
  const synced = new Set<Kind>();
  const handles = kinds.map((k) => {
    const m = new Map<string, StoredObject>();
    maps.set(k, m);
    return store.watch(k, (e) => {
      if (e.type === 'synced') synced.add(k);
      else if (e.type === 'deleted') m.delete(e.object.metadata.name);
      else m.set(e.object.metadata.name, e.object);
    });
  });
  while (synced.size < kinds.length) await new Promise((r) => setTimeout(r, 10));
  return { source: (k) => (synced.has(k) ? (maps.get(k) ?? null) : null), handles };
}

async function twill(name: string, open: () => Promise<Datastore>, watched = false): Promise<Result> {
  const admin = await open();
  await seed(admin);
  const stores = await Promise.all(Array.from({ length: NODES }, open));
  const watches = watched ? await watchMaps(admin) : undefined;
  const allocators = stores.map(
    (store) =>
      new Allocator({
        store,
        clock: { now: () => Date.now() },
        backoff: jitteredBackoff(),
        ...(watches ? { cache: new WatchReadCache(watches.source, () => Date.now()) } : {}),
      }),
  );
  // Warm the code paths before the clock runs (the agent is long-lived).
  await allocators[0]!.assign({ handle: 'warm', node: 'node-0', family: 4 });
  await allocators[0]!.release('warm');
  const r = await drive(name, async (n, i) => {
    await allocators[n]!.assign({ handle: `h-${n}-${i}`, node: `node-${n}`, family: 4 });
  });
  for (const h of watches?.handles ?? []) h.stop();
  await Promise.all([admin, ...stores].map((s) => s.close()));
  return r;
}

async function hostLocal(): Promise<Result> {
  if (!HOST_LOCAL) throw new Error('host-local not found: apt-get install containernetworking-plugins');
  const dir = mkdtempSync(join(tmpdir(), 'twill-bench-hl-'));
  try {
    return await drive('host-local', (n, i) => {
      const subnet = `10.${192 + (n >> 9)}.${(n >> 1) & 255}.${(n & 1) * 128}/25`;
      const conf = JSON.stringify({
        cniVersion: '1.0.0',
        name: 'bench',
        ipam: { type: 'host-local', ranges: [[{ subnet }]], dataDir: join(dir, `node-${n}`) },
      });
      return new Promise<void>((resolve, reject) => {
        const child = spawn(HOST_LOCAL, [], {
          env: {
            CNI_COMMAND: 'ADD',
            CNI_CONTAINERID: `c-${n}-${i}`,
            CNI_NETNS: '/var/run/netns/none',
            CNI_IFNAME: 'eth0',
            CNI_PATH: '/usr/lib/cni',
            CNI_ARGS: 'IgnoreUnknown=1',
          },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
        });
        child.on('exit', (code) =>
          code === 0 ? resolve() : reject(new Error(`host-local exited ${code}: ${out}`)),
        );
        child.stdin.end(conf);
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: Result[]): void {
  const anchor = results.find((r) => r.name === 'host-local');
  console.log(
    `\nIPAM: ${ADDRESSES} addresses across ${NODES} nodes, ${PARALLEL} nodes at a time; ` +
      `${cpus().length} x ${cpus()[0]?.model}; Node ${process.version}; ${new Date().toISOString()}\n`,
  );
  console.log('| allocator | assigns/s | p50 ms | p99 ms | assigns/s vs host-local |');
  console.log('|---|---|---|---|---|');
  for (const r of results) {
    const sorted = [...r.latenciesMs].sort((a, b) => a - b);
    const rate = r.count / r.seconds;
    const ratio = anchor ? `${(rate / (anchor.count / anchor.seconds)).toFixed(2)}x` : '-';
    console.log(
      `| ${r.name} | ${rate.toFixed(0)} | ${percentile(sorted, 50).toFixed(2)} | ${percentile(sorted, 99).toFixed(2)} | ${ratio} |`,
    );
  }
}

const results: Result[] = [];
if (ONLY.has('host-local')) results.push(await hostLocal());
for (const watched of [false, true]) {
  if (!ONLY.has(watched ? 'file-watched' : 'file')) continue;
  const dir = mkdtempSync(join(tmpdir(), 'twill-bench-ipam-'));
  try {
    const name = `Twill, file store${watched ? ', watched' : ''}`;
    results.push(await twill(name, () => openFileDatastore(dir), watched));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
for (const watched of [false, true]) {
  if (!ONLY.has(watched ? 'kubernetes-watched' : 'kubernetes')) continue;
  execFileSync('bash', [buildScript], { stdio: 'inherit' });
  // A fresh control plane for each, so that neither finds the other's objects.
  const cp = await startControlPlane();
  try {
    installCrds(cp);
    const name = `Twill, kube-apiserver${watched ? ', watched' : ''}`;
    results.push(await twill(name, async () => KubernetesStore.open({ kubeconfig: cp.kubeconfig }), watched));
  } finally {
    await cp.stop();
  }
}
report(results);
