/**
 * The allocator's safety properties with real concurrency and real crashes (issue 16): four
 * allocators, each an OS process of its own (two on node n0, as CNI ADDs run side by side with
 * the agent, one each on n1 and n2), run random rounds of assign, release, empty-block release
 * and SIGKILL-in-the-middle against one store — the file store shared by the processes, and the
 * real kube-apiserver with each process its own client. fast-check draws the rounds; in a round
 * every lane's command runs at once, so the store, not the test, decides the interleaving.
 *
 * Checked after every round: the live handles' addresses are distinct and each is still
 * allocated to its handle in the store (nothing lost across a crash or a restart); no address
 * is in two blocks; no two blocks overlap; no block has confirmed affinities to two nodes, and a
 * confirmed affinity agrees with its block. A handle whose assign or release was killed is in
 * doubt until it is released again (as kubelet repeats the DEL). At the end everything is
 * released, and the pools then hand out every one of their addresses again, and no more.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileDatastore } from '../../src/datastore/file.js';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { type Datastore, type StoredObject, TWILL_API_VERSION } from '../../src/datastore/types.js';
import { contains, containsAddress, overlaps, parseAddress, parseCidr } from '../../src/ipam/blocks.js';
import type { BlockAffinitySpec, IPAMBlockSpec } from '../../src/ipam/model.js';
import { bundle } from '../helpers/bundle.js';
import { type ControlPlane, installCrds, startControlPlane } from '../k8s/control-plane.js';
import { describeK8s } from '../k8s/harness.js';
import { holdings } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON; its fields are checked where read
type Json = any;

type Family = 4 | 6;
type Cmd =
  | { k: 'assign'; family: Family; crashMs?: number }
  | { k: 'release'; pick: number; crashMs?: number }
  | { k: 'releaseEmpty' };

/** About one command in eight is killed, 0-25 ms after it was sent (often mid-write). */
const crashMs = fc.oneof(
  { weight: 7, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 25 }) },
);
const cmd: fc.Arbitrary<Cmd | null> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('assign' as const),
      family: fc.constantFrom<Family>(4, 6),
      crashMs,
    }),
  },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('release' as const), pick: fc.nat(), crashMs }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('releaseEmpty' as const) }) },
  { weight: 1, arbitrary: fc.constant(null) },
);
const LANES = ['n0', 'n0', 'n1', 'n2'] as const;
const rounds = fc.array(fc.tuple(cmd, cmd, cmd, cmd), { minLength: 3, maxLength: 8 });

interface Reply {
  id: number;
  ok: boolean;
  result?: Json;
  error?: { name?: string; code?: string; message?: string };
}

class Crashed extends Error {}

/** One allocator process. */
class Lane {
  private child!: ChildProcess;
  private pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private exited!: Promise<void>;

  constructor(
    private readonly worker: string,
    private readonly store: string,
    readonly node: string,
  ) {}

  async start(): Promise<void> {
    this.pending = new Map();
    const child = spawn(process.execPath, [this.worker, this.store, this.node], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    let ready!: () => void;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    let buf = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (msg.ready) ready();
        else {
          this.pending.get(msg.id)?.resolve(msg);
          this.pending.delete(msg.id);
        }
      }
    });
    const pending = this.pending;
    child.once('exit', () => {
      for (const p of pending.values()) p.reject(new Crashed('worker exited'));
      pending.clear();
    });
    await Promise.race([
      isReady,
      this.exited.then(() => Promise.reject(new Error(`worker for ${this.node} exited at start`))),
    ]);
  }

  send(c: Record<string, unknown>): Promise<Reply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin!.write(`${JSON.stringify({ id, ...c })}\n`);
    });
  }

  /** SIGKILL, as a node or a runtime dies, then a fresh process in its place. */
  async crashAndRestart(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
    await this.start();
  }

  async stop(): Promise<void> {
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

interface Backend {
  /** What the worker is given (file:DIR or kubeconfig:FILE). */
  spec: string;
  /** The same store, opened in the test process, for seeding and checking. */
  open(): Promise<Datastore>;
}

let runCounter = 0;

async function scenario(
  backend: Backend,
  worker: string,
  plan: Array<[Cmd | null, Cmd | null, Cmd | null, Cmd | null]>,
) {
  const run = `r${process.pid.toString(36)}x${(runCounter++).toString(36)}`;
  const k = runCounter % 250;
  const v4 = `10.77.${k}.0/28`;
  const v6 = `fd00:77:${k.toString(16)}::/124`;
  const admin = await backend.open();
  const label = 'twill.dev/ipam-run';
  const nodes = ['n0', 'n1', 'n2'].map((n) => `${n}-${run}`);
  for (const name of nodes)
    await admin.create({ apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [label]: run } } });
  const poolObj = (name: string, cidr: string, blockSize: number): StoredObject => ({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPPool',
    metadata: { name },
    spec: { cidr, blockSize, nodeSelector: `${label} == '${run}'` },
  });
  await admin.create(poolObj(`p4-${run}`, v4, 30));
  await admin.create(poolObj(`p6-${run}`, v6, 126));
  const pools = [parseCidr(v4), parseCidr(v6)];
  const inRun = (cidr: string) => pools.some((p) => contains(p, parseCidr(cidr)));

  const lanes = LANES.map((n) => new Lane(worker, backend.spec, `${n}-${run}`));
  await Promise.all(lanes.map((l) => l.start()));
  const live = new Map<string, string>(); // handle -> address, acknowledged
  const inDoubt = new Set<string>();
  let seq = 0;

  async function check(): Promise<void> {
    const held = await holdings(admin);
    const blocks = (await admin.list('IPAMBlock'))
      .map((o) => o.spec as IPAMBlockSpec)
      .filter((b) => inRun(b.cidr));
    // Distinct live addresses, each still held by its handle.
    expect(new Set(live.values()).size).toBe(live.size);
    for (const [h, a] of live) expect(held.get(h) ?? [], `handle ${h} lost ${a}`).toContain(a);
    // No address twice, no overlapping blocks.
    const all = [...held.values()].flat();
    expect(new Set(all).size).toBe(all.length);
    for (let i = 0; i < blocks.length; i++)
      for (let j = i + 1; j < blocks.length; j++)
        expect(overlaps(parseCidr(blocks[i]!.cidr), parseCidr(blocks[j]!.cidr))).toBe(false);
    // No block confirmed to two nodes; a confirmed affinity agrees with its block.
    const confirmed = new Map<string, string[]>();
    for (const o of await admin.list('BlockAffinity')) {
      const a = o.spec as BlockAffinitySpec;
      if (a.state === 'confirmed' && inRun(a.cidr))
        confirmed.set(a.cidr, [...(confirmed.get(a.cidr) ?? []), a.node]);
    }
    for (const [cidr, ns] of confirmed) {
      expect(ns, `block ${cidr} confirmed to ${ns.join(', ')}`).toHaveLength(1);
      const b = blocks.find((x) => x.cidr === cidr);
      if (b) expect(b.affinity).toBe(`host:${ns[0]}`);
    }
  }

  async function runCmd(lane: Lane, c: Cmd, reserved: Set<string>): Promise<void> {
    if (c.k === 'releaseEmpty') {
      const r = await lane.send({ op: 'releaseEmpty' }).catch(() => undefined);
      if (r && !r.ok) expect(r.error?.code, r.error?.message).toBe('Conflict');
      return;
    }
    let handle: string;
    let p: Promise<Reply>;
    if (c.k === 'assign') {
      handle = `h-${run}-${seq++}`;
      inDoubt.add(handle);
      p = lane.send({ op: 'assign', handle, family: c.family });
    } else {
      const choices = [...live.keys()].filter((h) => !reserved.has(h));
      if (choices.length === 0) return;
      handle = choices[c.pick % choices.length]!;
      reserved.add(handle);
      live.delete(handle);
      inDoubt.add(handle);
      p = lane.send({ op: 'release', handle });
    }
    if (c.crashMs !== undefined) {
      p.catch(() => {});
      await new Promise((r) => setTimeout(r, c.crashMs));
      await lane.crashAndRestart();
      return; // the handle stays in doubt
    }
    const r = await p;
    if (!r.ok) {
      // Running out of addresses is an answer; anything else is a failure.
      expect(r.error?.code, r.error?.message).toBe('Exhausted');
      return;
    }
    inDoubt.delete(handle);
    if (c.k === 'assign') live.set(handle, r.result.address);
  }

  try {
    for (const round of plan) {
      const reserved = new Set<string>();
      await Promise.all(round.map((c, i) => (c ? runCmd(lanes[i]!, c, reserved) : undefined)));
      await check();
    }
    // kubelet repeats the DEL of what it is unsure of; then everything else is released.
    for (const h of [...inDoubt, ...live.keys()]) {
      const r = await lanes[0]!.send({ op: 'release', handle: h });
      expect(r.ok, r.error?.message).toBe(true);
    }
    live.clear();
    inDoubt.clear();
    expect([...(await holdings(admin)).keys()].filter((h) => h.includes(run))).toEqual([]);
    // Every address is allocatable again, from any node, and no more than the pools hold.
    const got: string[] = [];
    await Promise.all(
      lanes.map(async (lane, i) => {
        for (let n = 0; n < 8; n++) {
          const family: Family = n % 2 === 0 ? 4 : 6;
          const r = await lane.send({ op: 'assign', handle: `full-${run}-${i}-${n}`, family });
          expect(r.ok, r.error?.message).toBe(true);
          got.push(r.result.address);
        }
      }),
    );
    expect(new Set(got).size).toBe(32);
    for (const a of got) {
      const { family, value } = parseAddress(a);
      expect(pools.some((p) => containsAddress(p, family, value))).toBe(true);
    }
    const more = await lanes[3]!.send({ op: 'assign', handle: `extra-${run}`, family: 4 });
    expect(more.error?.code).toBe('Exhausted');
  } finally {
    await Promise.all(lanes.map((l) => l.stop()));
    await admin.close();
  }
}

function properties(name: string, backend: () => Backend, numRuns: number) {
  let worker: string;
  beforeAll(async () => {
    worker = await bundle(join(import.meta.dirname, 'alloc-worker.ts'));
  });
  it(name, async () => {
    await fc.assert(
      fc.asyncProperty(rounds, (plan) => scenario(backend(), worker, plan)),
      { numRuns, endOnFailure: true },
    );
  }, 300_000);
}

describe('allocators in separate processes on the file store', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'twill-ipam-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  properties(
    'never hand out an address twice, lose nothing across SIGKILL and restart, and give every address back',
    () => ({ spec: `file:${dir}`, open: () => openFileDatastore(dir, { onWarning: () => {} }) }),
    5,
  );
});

describeK8s('allocators as separate clients of a real kube-apiserver', () => {
  let cp: ControlPlane;
  beforeAll(async () => {
    // A control plane of its own: the allocators take from every pool their node may use.
    cp = await startControlPlane();
    installCrds(cp);
  }, 180_000);
  afterAll(() => cp?.stop());
  properties(
    'never hand out an address twice, lose nothing across SIGKILL and restart, and give every address back',
    () => ({
      spec: `kubeconfig:${cp.kubeconfig}`,
      open: async () => KubernetesStore.open({ kubeconfig: cp.kubeconfig }),
    }),
    6,
  );
});
