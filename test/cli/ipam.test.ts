/**
 * `twill ipam` and `twill ipam check`: the report's figures from a state the real allocator
 * made (two nodes, a borrowed address, a pod that is gone), each inconsistency `check` names,
 * and the command end to end as an operator runs it — `bin/twill.js` (from dist/, built by
 * npm test's pretest) on a file store, then on the test bed's kube-apiserver — with its exit
 * codes: 0 clean, 1 problems or an unreadable datastore, 2 a usage error.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileDatastore } from '../../src/datastore/file.js';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { type Datastore, type StoredObject, TWILL_API_VERSION } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { formatIpam } from '../../src/cli/ipam.js';
import { ipamReport } from '../../src/ipam/report.js';
import { installCrds } from '../k8s/control-plane.js';
import { describeK8s, sharedControlPlane } from '../k8s/harness.js';
import { BIN } from '../helpers/twill.js';

const nodeObj = (name: string): StoredObject => ({ apiVersion: 'v1', kind: 'Node', metadata: { name } });
const podObj = (namespace: string, name: string): StoredObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { namespace, name },
  spec: { containers: [{ name: 'c', image: 'none' }] },
});

/** Two nodes on a /28 pool of /30 blocks: a fills a block and borrows from b; one pod is gone. */
async function populate(store: Datastore, opts: { pods: boolean; prefix?: string } = { pods: true }) {
  const p = opts.prefix ?? '';
  const poolName = `${p}pool`;
  await store.create(nodeObj(`${p}a`));
  await store.create(nodeObj(`${p}b`));
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPPool',
    metadata: { name: poolName },
    spec: {
      cidr: opts.prefix ? '10.99.0.0/29' : '10.0.0.0/29',
      blockSize: 30,
      nodeSelector: opts.prefix ? `has(${p}ipam)` : 'all()',
    },
  });
  if (opts.prefix) {
    // Only this test's nodes may use its pool.
    for (const n of ['a', 'b']) {
      const o = (await store.get({ kind: 'Node', name: `${p}${n}` }))!;
      await store.update({ ...o, metadata: { ...o.metadata, labels: { [`${p}ipam`]: 'yes' } } });
    }
  }
  const alloc = new Allocator({ store, clock: { now: () => Date.now() } });
  const take = (handle: string, node: string, pod: string) =>
    alloc.assign({
      handle: `${p}${handle}`,
      node: `${p}${node}`,
      family: 4,
      namespace: 'default',
      pod: `${p}${pod}`,
    });
  await take('h-b1', 'b', 'b1'); // b claims the first block
  for (let i = 1; i <= 4; i++) await take(`h-a${i}`, 'a', `a${i}`); // a claims the second and fills it
  await take('h-a5', 'a', 'a5'); // no block left: a borrows from b's
  if (opts.pods)
    for (const pod of ['b1', 'a1', 'a2', 'a3', 'a4']) await store.create(podObj('default', `${p}${pod}`)); // a5's pod is gone
  return { alloc, poolName };
}

async function objects(store: Datastore) {
  const [pools, blocks, affinities, handles, nodes, pods] = await Promise.all(
    (['IPPool', 'IPAMBlock', 'BlockAffinity', 'IPAMHandle', 'Node', 'Pod'] as const).map((k) =>
      store.list(k),
    ),
  );
  return {
    pools: pools!,
    blocks: blocks!,
    affinities: affinities!,
    handles: handles!,
    nodes: nodes!,
    pods: pods!,
  };
}

describe('ipamReport', () => {
  it('shows each pool, block and node with its use, borrowing and leaked addresses', async () => {
    const store = new MemoryDatastore();
    await populate(store);
    const r = ipamReport(await objects(store));
    expect(r.pools).toEqual([
      {
        name: 'pool',
        cidr: '10.0.0.0/29',
        blockSize: 30,
        mode: 'blocks',
        disabled: false,
        capacity: 8,
        inBlocks: 8,
        used: 6,
        blocks: 2,
      },
    ]);
    expect(r.blocks).toEqual([
      { cidr: '10.0.0.0/30', node: 'b', size: 4, used: 2, borrowedBy: ['a'] },
      { cidr: '10.0.0.4/30', node: 'a', size: 4, used: 4, borrowedBy: [] },
    ]);
    expect(r.nodes).toEqual([
      { node: 'a', blocks: 1, used: 5, borrowed: 1 },
      { node: 'b', blocks: 1, used: 1, borrowed: 0 },
    ]);
    expect(r.affinities).toEqual([
      { node: 'a', cidr: '10.0.0.4/30', state: 'confirmed' },
      { node: 'b', cidr: '10.0.0.0/30', state: 'confirmed' },
    ]);
    expect(r.leaked).toEqual([
      { address: '10.0.0.1', handle: 'h-a5', namespace: 'default', pod: 'a5', node: 'a' },
    ]);
    expect(r.problems).toEqual([]);
  });

  it('check names every kind of inconsistency', async () => {
    const store = new MemoryDatastore();
    await populate(store);
    // A handle object lost, a node deleted, an affinity without its block, a handle holding nothing,
    // a block that breaks its own schema.
    await store.delete({ kind: 'IPAMHandle', name: 'h-a1' });
    await store.delete({ kind: 'Node', name: 'b' });
    await store.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'c-10-0-1-0-30' },
      spec: { node: 'c', cidr: '10.0.1.0/30', state: 'confirmed' },
    });
    // A claim under way is shown, and is not a problem.
    await store.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: 'd-10-0-2-0-30' },
      spec: { node: 'd', cidr: '10.0.2.0/30', state: 'pending' },
    });
    await store.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'IPAMHandle',
      metadata: { name: 'h-empty' },
      spec: { handleID: 'h-empty', blocks: [] },
    });
    const o = await objects(store);
    const bad = {
      ...o.blocks[0]!,
      metadata: { ...o.blocks[0]!.metadata, name: 'broken' },
      spec: { cidr: '10.0.0.0/30' },
    };
    const r = ipamReport({ ...o, blocks: [...o.blocks, bad] });
    const kinds = [...new Set(r.problems.map((p) => p.kind))].sort();
    expect(kinds).toEqual([
      'address-without-handle',
      'affinity-without-block',
      'block-of-missing-node',
      'handle-without-address',
      'invalid',
    ]);
    expect(formatIpam(r)).toMatch(/\nAFFINITY NODE\s+BLOCK\s+STATE\nd\s+10\.0\.2\.0\/30\s+pending\n/);
    const msg = (k: string) => r.problems.find((p) => p.kind === k)!.message;
    expect(msg('address-without-handle')).toMatch(/10\.0\.0\.4 .* handle h-a1/);
    expect(msg('block-of-missing-node')).toMatch(
      /10\.0\.0\.0\/30\) is affine to node b, which does not exist/,
    );
    expect(msg('affinity-without-block')).toMatch(/node c for 10\.0\.1\.0\/30/);
    expect(msg('handle-without-address')).toMatch(/h-empty/);
    expect(r.problems.filter((p) => p.kind === 'invalid').map((p) => p.message)).toContainEqual(
      expect.stringMatching(/^IPAMBlock broken: spec\.allocations/),
    );
  });
});

describe('twill ipam on a file store, as an operator runs it', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twill-ipam-cli-'));
    const store = await openFileDatastore(dir);
    await populate(store);
    await store.close();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const twill = (...args: string[]) =>
    spawnSync(process.execPath, [BIN, 'ipam', ...args, '--datastore', `file:${dir}`], { encoding: 'utf8' });

  it('prints the tables and, with --json, the report', () => {
    const r = twill();
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(
      /^POOL\s+CIDR\s+BLOCK\s+MODE\s+IN USE\s+CAPACITY\s+BLOCKS\npool\s+10\.0\.0\.0\/29\s+\/30\s+blocks\s+6 \(75\.0%\)\s+8\s+2\n/,
    );
    expect(r.stdout).toMatch(/\na\s+1\s+5\s+1\n/);
    expect(r.stdout).toMatch(/10\.0\.0\.0\/30\s+b\s+2\/4\s+a\n/);
    expect(r.stdout).toMatch(
      /leaked addresses \(their pod is gone\):\nADDRESS\s+POD\s+NODE\s+HANDLE\n10\.0\.0\.1\s+default\/a5\s+a\s+h-a5\n/,
    );
    expect(r.stdout).not.toContain('AFFINITY');
    const j = JSON.parse(twill('--json').stdout);
    expect(j.affinities).toHaveLength(2);
    expect(j.nodes).toHaveLength(2);
    expect(j.leaked[0].pod).toBe('a5');
  });

  it('check exits 0 on a clean store and 1 with each problem listed', async () => {
    expect(twill('check')).toMatchObject({ status: 0, stdout: 'no problems found\n' });
    const store = await openFileDatastore(dir);
    await store.delete({ kind: 'Node', name: 'b' });
    await store.close();
    const r = twill('check');
    expect(r.status).toBe(1);
    expect(r.stdout).toBe(
      'block-of-missing-node: IPAMBlock 10-0-0-0-30 (10.0.0.0/30) is affine to node b, which does not exist\n',
    );
    expect(JSON.parse(twill('check', '--json').stdout).problems).toHaveLength(1);
  });

  it('a bad --datastore is a usage error naming the forms; an unreadable one exits 1', () => {
    const bad = spawnSync(process.execPath, [BIN, 'ipam', '--datastore', 'etcd:x'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('expected file:DIR or kubernetes');
    const file = join(dir, 'not-a-dir');
    execFileSync('touch', [file]);
    const gone = spawnSync(process.execPath, [BIN, 'ipam', '--datastore', `file:${file}`], {
      encoding: 'utf8',
    });
    expect(gone.status).not.toBe(0);
    expect(gone.stderr).toContain('not a folder');
    // A mistyped path is an error, not a new empty store.
    const typo = join(dir, 'no-such-store');
    const missing = spawnSync(process.execPath, [BIN, 'ipam', '--datastore', `file:${typo}`], {
      encoding: 'utf8',
    });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain(`${typo}: no such folder`);
    expect(existsSync(typo)).toBe(false);
  });
});

describeK8s('twill ipam on a real kube-apiserver', () => {
  it('reads the same report through --datastore kubernetes', async () => {
    const cp = await sharedControlPlane();
    installCrds(cp);
    // The state is made by the allocator in memory and copied over: an allocator on the shared
    // API server could take from other test files' pools.
    const prefix = `ipamcli${Math.random().toString(36).slice(2, 7)}-`;
    const mem = new MemoryDatastore();
    await populate(mem, { pods: false, prefix });
    const store = KubernetesStore.open({ kubeconfig: cp.kubeconfig });
    try {
      for (const kind of ['Node', 'IPPool', 'BlockAffinity', 'IPAMBlock', 'IPAMHandle'] as const)
        for (const o of await mem.list(kind)) {
          const { resourceVersion: _r, uid: _u, creationTimestamp: _c, ...metadata } = o.metadata;
          await store.create({ ...o, metadata });
        }
    } finally {
      await store.close();
    }
    const r = spawnSync(
      process.execPath,
      [BIN, 'ipam', '--json', '--datastore', 'kubernetes', '--kubeconfig', cp.kubeconfig],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.pools.find((p: { name: string }) => p.name === `${prefix}pool`)).toMatchObject({
      used: 6,
      blocks: 2,
    });
    expect(j.nodes.find((n: { node: string }) => n.node === `${prefix}a`)).toEqual({
      node: `${prefix}a`,
      blocks: 1,
      used: 5,
      borrowed: 1,
    });
  }, 120_000);
});
