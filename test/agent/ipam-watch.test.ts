/**
 * The agent's IPAMConfig watch serves only the allocator's reads (read-cache.ts): a datastore
 * that cannot watch the kind (a cluster without its CRD answers 404) must not keep the agent out
 * of sync, and its assigns then read the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { type Datastore, DatastoreError, TWILL_API_VERSION } from '../../src/datastore/types.js';
import { eventually } from '../helpers/eventually.js';
import { FakeKernel } from '../helpers/kernel-fake.js';
import { silent, unitConfig } from './unit.js';

describe('agent: a datastore without IPAMConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'twill-agent-ipamcfg-'));
  let agent: Agent | undefined;

  afterAll(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('comes in sync, and hands out addresses from the store’s reads', async () => {
    const memory = new MemoryDatastore();
    await memory.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.244.0.0/16', blockSize: 26 },
    });
    let refused = 0;
    const store = new Proxy(memory, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'watch') return typeof v === 'function' ? v.bind(target) : v;
        return ((kind, onEvent, options) => {
          if (kind !== 'IPAMConfig') return target.watch(kind, onEvent, options);
          refused++;
          queueMicrotask(() => options?.onError?.(new DatastoreError('NotFound', 'no such resource')));
          return { stop: () => {} };
        }) satisfies Datastore['watch'];
      },
    });
    const kernel = new FakeKernel();
    agent = new Agent(unitConfig(dir), {
      log: silent,
      store,
      kernel: () => kernel.handle(),
      exec: async () => '',
      speaker: { warmUp: false },
    });
    await agent.start();
    await eventually(() => expect(agent!.ready().reasons).not.toContain('the datastore is not in sync yet'));
    expect(refused).toBeGreaterThan(0);
    const allocator = (agent as unknown as { allocator: import('../../src/ipam/allocator.js').Allocator })
      .allocator;
    const first = await allocator.assign({ handle: 'h1', node: 'a', family: 4 });
    const second = await allocator.assign({ handle: 'h2', node: 'a', family: 4 });
    expect([first.address, second.address]).toEqual(['10.244.0.0', '10.244.0.1']);
    expect(allocator.assigns).toEqual({ watch: 0, store: 2 });
  });
});
