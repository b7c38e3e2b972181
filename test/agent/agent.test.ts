/**
 * The agent in one process without root: a memory datastore, the fake kernel and a fake
 * iptables, its speaker on a port of the kernel's choosing with neighbors on loopback ports
 * that refuse. What it checks is how much each datastore change makes the agent redo: another
 * node's block or affinity moves no speaker call and no route owner, its own block moves the
 * originated prefixes and the `pods` and `blocks` routes but not the neighbors, and a Node
 * moves the neighbors only (desired.ts changeMoves). A regression here makes every agent of a
 * mesh redo its routing for every block any of them claims. And the order: a new block is
 * advertised only once its blackhole is in the kernel; one going away is withdrawn before its
 * blackhole is removed; a block changed again while its blackhole is being installed waits for
 * it too; a failed route apply does not keep a new block from being advertised.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, type MockInstance, vi } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { NODE_ANNOTATIONS } from '../../src/agent/desired.js';
import { Speaker } from '../../src/bgp/speaker.js';
import { FakeKernel } from '../helpers/kernel-fake.js';
import { silent, unitConfig } from './unit.js';
import { RouteReconciler } from '../../src/dataplane/routes.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { formatPrefix } from '../../src/net/addr.js';
import { TWILL_API_VERSION, type StoredObject } from '../../src/datastore/types.js';
import { newBlockSpec } from '../../src/ipam/allocations.js';
import { affinityName, blockName, parseCidr } from '../../src/ipam/blocks.js';
import { eventually } from '../helpers/eventually.js';

/** Another node, peered on a loopback port that refuses (nothing listens on port 1). */
const node = (name: string, address: string): StoredObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: {
    name,
    labels: { 'kubernetes.io/hostname': name },
    annotations: { [NODE_ANNOTATIONS.address]: address, [NODE_ANNOTATIONS.port]: '1' },
  },
  spec: {},
});

/** A claimed block of `owner`: its confirmed affinity, then the block. */
async function claim(store: MemoryDatastore, owner: string, cidr: string): Promise<void> {
  const c = parseCidr(cidr);
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'BlockAffinity',
    metadata: { name: affinityName(owner, c) },
    spec: { node: owner, cidr, state: 'confirmed' },
  });
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPAMBlock',
    metadata: { name: blockName(c) },
    spec: newBlockSpec(c, `host:${owner}`),
  });
}

async function release(store: MemoryDatastore, owner: string, cidr: string): Promise<void> {
  const c = parseCidr(cidr);
  await store.delete({ kind: 'IPAMBlock', name: blockName(c) });
  await store.delete({ kind: 'BlockAffinity', name: affinityName(owner, c) });
}

describe('agent: what a datastore change makes it redo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'twill-agent-unit-'));
  const store = new MemoryDatastore();
  const kernel = new FakeKernel();
  let agent: Agent;
  let setNeighbors: MockInstance<Speaker['setNeighbors']>;
  let setOriginated: MockInstance<Speaker['setOriginated']>;
  let setDesired: MockInstance<RouteReconciler['setDesired']>;
  /** The kernel's routes at each setOriginated call. */
  const kernelAtOriginate: string[][] = [];
  let slowWrites = 0;

  beforeAll(async () => {
    setNeighbors = vi.spyOn(Speaker.prototype, 'setNeighbors');
    const original = Speaker.prototype.setOriginated;
    setOriginated = vi.spyOn(Speaker.prototype, 'setOriginated').mockImplementation(function (
      this: Speaker,
      prefixes,
    ) {
      kernelAtOriginate.push(kernel.dumpRoutes().map((r) => formatPrefix(r.key)));
      return original.call(this, prefixes);
    });
    setDesired = vi.spyOn(RouteReconciler.prototype, 'setDesired');
    await store.create(node('b', '127.0.0.2'));
    await store.create(node('c', '127.0.0.3'));
    await claim(store, 'a', '10.244.0.0/26');
    agent = new Agent(unitConfig(dir), {
      log: silent,
      store,
      // Route writes held back by `slowWrites` ms when a test asks (see the race test).
      kernel: () =>
        new Proxy(kernel.handle(), {
          get(target, prop, receiver) {
            const v = Reflect.get(target, prop, receiver);
            if (prop !== 'writeRoutes' || typeof v !== 'function')
              return typeof v === 'function' ? v.bind(target) : v;
            return async (ops: unknown) => {
              if (slowWrites > 0) await new Promise((r) => setTimeout(r, slowWrites));
              return v.call(target, ops);
            };
          },
        }),
      exec: async () => '',
      speaker: { warmUp: false },
    });
    await agent.start();
    await eventually(() => {
      expect(setNeighbors.mock.lastCall?.[0].map((n) => n.address)).toEqual(['127.0.0.2', '127.0.0.3']);
      expect(setOriginated.mock.lastCall?.[0]).toEqual(['10.244.0.0/26']);
    });
  });

  afterAll(async () => {
    await agent?.stop();
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  const calls = () => ({
    setNeighbors: setNeighbors.mock.calls.length,
    setOriginated: setOriginated.mock.calls.length,
    setDesired: setDesired.mock.calls.map((c) => c[0]),
  });
  const reset = () => {
    setNeighbors.mockClear();
    setOriginated.mockClear();
    setDesired.mockClear();
  };

  it('another node’s block claimed and released: no speaker call, no route owner; its own: no neighbors', async () => {
    reset();
    await claim(store, 'b', '10.244.1.0/26');
    await new Promise((r) => setTimeout(r, 50));
    expect(calls()).toEqual({ setNeighbors: 0, setOriginated: 0, setDesired: [] });
    await release(store, 'b', '10.244.1.0/26');
    await new Promise((r) => setTimeout(r, 50));
    expect(calls()).toEqual({ setNeighbors: 0, setOriginated: 0, setDesired: [] });
    // Then this node's own block: the spies do see what moves.
    await claim(store, 'a', '10.244.2.0/26');
    await eventually(() => expect(setOriginated).toHaveBeenCalledTimes(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(calls()).toEqual({ setNeighbors: 0, setOriginated: 1, setDesired: ['pods', 'blocks'] });
    expect(setOriginated.mock.lastCall?.[0]).toEqual(['10.244.0.0/26', '10.244.2.0/26']);
    // Advertised only once its blackhole is in the kernel.
    expect(kernelAtOriginate.at(-1)).toContain('10.244.2.0/26');
  });

  it('its own block released: origination and routes, never the neighbors', async () => {
    reset();
    await release(store, 'a', '10.244.2.0/26');
    await eventually(() => expect(setOriginated.mock.lastCall?.[0]).toEqual(['10.244.0.0/26']));
    // Withdrawn while its blackhole is still there; then the blackhole goes.
    expect(kernelAtOriginate.at(-1)).toContain('10.244.2.0/26');
    await eventually(() =>
      expect(kernel.dumpRoutes().map((r) => formatPrefix(r.key))).not.toContain('10.244.2.0/26'),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(calls().setNeighbors).toBe(0);
    expect(new Set(calls().setDesired)).toEqual(new Set(['pods', 'blocks']));
  });

  it('a route apply that fails before a new block is advertised: advertised all the same, the blackhole on retry', async () => {
    reset();
    const c = parseCidr('10.244.3.0/26');
    await store.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name: affinityName('a', c) },
      spec: { node: 'a', cidr: '10.244.3.0/26', state: 'confirmed' },
    });
    await new Promise((r) => setTimeout(r, 50));
    kernel.breakHandle(2); // the apply before advertising, and its one retry
    await store.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'IPAMBlock',
      metadata: { name: blockName(c) },
      spec: newBlockSpec(c, 'host:a'),
    });
    await eventually(() => expect(setOriginated.mock.lastCall?.[0]).toContain('10.244.3.0/26'));
    await eventually(() =>
      expect(kernel.dumpRoutes().map((r) => formatPrefix(r.key))).toContain('10.244.3.0/26'),
    );
    await release(store, 'a', '10.244.3.0/26');
    await eventually(() => expect(setOriginated.mock.lastCall?.[0]).toEqual(['10.244.0.0/26']));
  });

  it('a block changed again while its blackhole is still being installed is not advertised before it is', async () => {
    reset();
    slowWrites = 50;
    try {
      await claim(store, 'a', '10.244.5.0/26');
      await new Promise((r) => setTimeout(r, 15)); // its recomputation ran; the route write is held
      // The allocator's next write to the block, while the route write is held back.
      const b = (await store.get({ kind: 'IPAMBlock', name: blockName(parseCidr('10.244.5.0/26')) }))!;
      await store.update({ ...b, metadata: { ...b.metadata, labels: { touched: 'yes' } } });
      await eventually(() => expect(setOriginated.mock.lastCall?.[0]).toContain('10.244.5.0/26'));
      const first = setOriginated.mock.calls.findIndex((c) => c[0].includes('10.244.5.0/26'));
      const at = kernelAtOriginate.length - setOriginated.mock.calls.length + first;
      expect(kernelAtOriginate[at]).toContain('10.244.5.0/26');
    } finally {
      slowWrites = 0;
    }
    await release(store, 'a', '10.244.5.0/26');
    await eventually(() => expect(setOriginated.mock.lastCall?.[0]).toEqual(['10.244.0.0/26']));
  });

  it('a Node with a new address moves the neighbors only; the same annotations move nothing', async () => {
    reset();
    const b = (await store.get({ kind: 'Node', name: 'b' }))!;
    await store.update({ ...b, status: { addresses: [{ type: 'InternalIP', address: '127.0.0.2' }] } });
    const c = (await store.get({ kind: 'Node', name: 'c' }))!;
    await store.update({
      ...c,
      metadata: {
        ...c.metadata,
        annotations: { ...c.metadata.annotations, [NODE_ANNOTATIONS.address]: '127.0.0.4' },
      },
    });
    await eventually(() =>
      expect(setNeighbors.mock.lastCall?.[0].map((n) => n.address)).toEqual(['127.0.0.2', '127.0.0.4']),
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(calls()).toEqual({ setNeighbors: 1, setOriginated: 0, setDesired: [] });
  });
});
