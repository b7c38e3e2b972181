/**
 * An agent gives back the blocks its pods no longer use: pods through the real CNI plugin fill
 * two /30 blocks on one node; once they are deleted, the agent's periodic release (run every
 * second here, `--ipam-empty-block-release 1`) finds the blocks empty on two consecutive runs and
 * releases all but one (the allocator keeps a block per family), and the released block's
 * blackhole leaves the kernel.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openFileDatastore } from '../../src/datastore/file.js';
import type { Datastore } from '../../src/datastore/types.js';
import { k8sArgs, plugin } from '../cni/helpers.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { type AgentRun, buildSegment, ourRoutes, type Segment, startAgent } from './helpers.js';

describeSystem('an agent releases empty blocks', { root: true, tools: ['ip'] }, () => {
  const lab = new Lab();
  let dir: string;
  let seg: Segment;
  let store: Datastore;
  let agent: AgentRun;
  const conf = () => ({
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'twill',
    mtu: 1500,
    agentSocket: agent.cni,
  });
  const cni = (command: 'ADD' | 'DEL', i: number, netns: string) =>
    plugin(seg.nodes[0]!.ns, {
      command,
      containerID: `c-${i}`,
      netns,
      ifname: 'eth0',
      args: k8sArgs('default', `p${i}`),
      conf: conf(),
    });
  const blackholes = () => ourRoutes(seg.nodes[0]!.ns).filter((r) => r.type === 'blackhole');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twill-empty-'));
    chmodSync(dir, 0o755);
    seg = buildSegment(lab, 1);
    const datastore = `file:${join(dir, 'store')}`;
    agent = startAgent(lab, seg.nodes[0]!, {
      dir,
      datastore,
      extraArgs: ['--pool-block-size', '30', '--ipam-empty-block-release', '1'],
    });
    store = await openFileDatastore(join(dir, 'store'));
  }, 60_000);

  afterAll(async () => {
    await store?.close();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('fills two blocks, then keeps one once the pods are gone', async () => {
    const netns = [0, 1, 2, 3, 4].map((i) => `/run/netns/${lab.ns(`e${i}`)}`);
    await waitFor(
      'the agent serves ADD',
      async () => (await cni('ADD', 0, netns[0]!)).code === 0,
      30_000,
      200,
    );
    for (let i = 1; i < 5; i++) {
      const r = await cni('ADD', i, netns[i]!);
      expect(r.code, r.stdout).toBe(0);
    }
    expect((await store.list('IPAMBlock')).length).toBe(2);
    await waitFor('both blackholes in the kernel', () => blackholes().length === 2, 10_000, 100);
    for (let i = 0; i < 5; i++) expect((await cni('DEL', i, netns[i]!)).code).toBe(0);
    await waitFor('one block left', async () => (await store.list('IPAMBlock')).length === 1, 15_000, 200);
    await waitFor('one blackhole left', () => blackholes().length === 1, 10_000, 100);
    expect(agent.log()).toMatch(/released an empty block/);
    // The node still has its one block: a new pod needs no claim.
    const r = await cni('ADD', 5, `/run/netns/${lab.ns('e5')}`);
    expect(r.code, r.stdout).toBe(0);
    expect((await store.list('IPAMBlock')).length).toBe(1);
  }, 90_000);
});
