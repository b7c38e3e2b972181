/**
 * The agent's IPAMConfig watch serves only the allocator's reads (read-cache.ts): a datastore
 * that cannot watch the kind (a cluster without its CRD answers 404) must not keep the agent out
 * of sync, and its assigns then read the store. A watch that keeps failing is started again
 * with a growing wait, logged once rather than every time, and shown by the status and metrics
 * until it works.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent, type AgentLogger, WATCH_RETRY_MIN_MS } from '../../src/agent/agent.js';
import { type Clock, systemClock } from '../../src/bgp/clock.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { type Datastore, DatastoreError, TWILL_API_VERSION } from '../../src/datastore/types.js';
import { eventually } from '../helpers/eventually.js';
import { FakeKernel } from '../helpers/kernel-fake.js';
import { silent, unitConfig } from './unit.js';

function withPool(): Promise<MemoryDatastore> {
  const memory = new MemoryDatastore();
  return memory
    .create({
      apiVersion: TWILL_API_VERSION,
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.244.0.0/16', blockSize: 26 },
    })
    .then(() => memory);
}

describe('agent: a datastore without IPAMConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'twill-agent-ipamcfg-'));
  let agent: Agent | undefined;
  let second: Agent | undefined;

  afterAll(async () => {
    await agent?.stop();
    await second?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('comes in sync, and hands out addresses from the store’s reads', async () => {
    const memory = await withPool();
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

  it('starts a failing watch again after 1, 2, 4 s, warns once, and shows it until it works', async () => {
    const memory = await withPool();
    const refuseFirst = 3;
    let attempts = 0;
    // The waits the agent arms for its retries, taken while a refusal is being reported; they
    // run 100 times sooner so the test takes milliseconds.
    let reporting = false;
    const retries: number[] = [];
    const clock: Clock = {
      ...systemClock,
      after(ms, fn) {
        if (!reporting) return systemClock.after(ms, fn);
        retries.push(ms);
        return systemClock.after(ms / 100, fn);
      },
    };
    const store = new Proxy(memory, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver);
        if (prop !== 'watch') return typeof v === 'function' ? v.bind(target) : v;
        return ((kind, onEvent, options) => {
          if (kind !== 'IPAMConfig' || ++attempts > refuseFirst) return target.watch(kind, onEvent, options);
          queueMicrotask(() => {
            reporting = true;
            options?.onError?.(
              new DatastoreError('NotFound', 'the server could not find the requested resource'),
            );
            reporting = false;
          });
          return { stop: () => {} };
        }) satisfies Datastore['watch'];
      },
    });
    const logged: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    const record =
      (level: string) =>
      (fields: object, msg: string): void =>
        void logged.push({ level, msg, fields: fields as Record<string, unknown> });
    const log: AgentLogger = {
      trace: record('trace'),
      debug: record('debug'),
      info: record('info'),
      warn: record('warn'),
      error: record('error'),
      child: () => log,
    };
    const kernel = new FakeKernel();
    second = new Agent(
      { ...unitConfig(dir), apiSocket: join(dir, 'api2.sock'), cniSocket: join(dir, 'cni2.sock') },
      { log, clock, store, kernel: () => kernel.handle(), exec: async () => '', speaker: { warmUp: false } },
    );
    await second.start();
    await eventually(() => expect(attempts).toBeGreaterThanOrEqual(2));
    const failing = second.status().watchErrors;
    expect(failing.map((w) => [w.kind, w.error])).toEqual([
      ['IPAMConfig', 'NotFound: the server could not find the requested resource'],
    ]);
    expect(failing[0]!.failures).toBeGreaterThanOrEqual(1);
    expect(await second.metrics.text()).toMatch(
      /twill_datastore_watch_failures\{kind="IPAMConfig"\} [1-3]\n/,
    );

    await eventually(() => expect(second!.status().watchErrors).toEqual([]));
    expect(attempts).toBe(refuseFirst + 1);
    expect(retries).toEqual([WATCH_RETRY_MIN_MS, 2 * WATCH_RETRY_MIN_MS, 4 * WATCH_RETRY_MIN_MS]);
    const about = logged.filter((l) => l.fields.kind === 'IPAMConfig');
    expect(about.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'watch ended; starting it again',
    ]);
    expect(about.filter((l) => l.level === 'debug' && l.msg.startsWith('watch ended'))).toHaveLength(2);
    expect(about.find((l) => l.msg === 'watch works again')?.fields.failures).toBe(3);
    const text = await second.metrics.text();
    expect(text).toContain('twill_datastore_watch_failures{kind="IPAMConfig"} 0\n');
    expect(text).toContain('twill_datastore_watch_failures{kind="IPAMBlock"} 0\n');
  });
});
