import { describe, expect, it } from 'vitest';
import type { Datastore, Kind, ObjectKey, StoredObject } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { WatchReadCache } from '../../src/ipam/read-cache.js';
import { FakeClock, holdings, ipamConfig, node, pool, setup } from './helpers.js';

const KINDS: Kind[] = ['IPAMConfig', 'IPPool', 'Node', 'BlockAffinity', 'IPAMBlock'];

/** The store's objects now, as a watch's maps: what the watch saw, frozen there. */
async function snapshot(store: Datastore): Promise<Map<Kind, Map<string, StoredObject>>> {
  const maps = new Map<Kind, Map<string, StoredObject>>();
  for (const k of KINDS) maps.set(k, new Map((await store.list(k)).map((o) => [o.metadata.name, o])));
  return maps;
}

/** Every call the allocator makes to the store, by method. */
function counting(store: Datastore): { store: Datastore; calls: string[] } {
  const calls: string[] = [];
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const a = args[0] as ObjectKey | StoredObject | string;
        const kind = typeof a === 'string' ? a : a.kind;
        calls.push(`${String(prop)} ${kind}`);
        return v.apply(target, args);
      };
    },
  });
  return { store: wrapped, calls };
}

async function bed() {
  const { store, allocator } = await setup([
    pool('p', { cidr: '10.0.0.0/28', blockSize: 29 }),
    node('n1'),
    node('n2'),
    ipamConfig({}),
  ]);
  // n1 claims its block the long way; the watch sees the result.
  await allocator.assign({ handle: 'first', node: 'n1', family: 4 });
  const clock = new FakeClock();
  const maps = await snapshot(store);
  const cache = new WatchReadCache(
    (k) => maps.get(k) ?? null,
    () => clock.now(),
  );
  const c = counting(store);
  const cached = new Allocator({ store: c.store, clock, cache });
  return { store, allocator, cached, calls: c.calls, maps, clock, cache };
}

describe('assign through a watch cache (read-cache.ts)', () => {
  it('the common ADD is two writes, the new handle and the block, and no read', async () => {
    const { store, cached, calls } = await bed();
    const a = await cached.assign({ handle: 'h1', node: 'n1', family: 4 });
    expect(a).toMatchObject({ address: '10.0.0.1', block: '10.0.0.0/29', borrowed: false });
    expect(calls).toEqual(['create IPAMHandle', 'update IPAMBlock']);
    expect((await holdings(store)).get('h1')).toEqual(['10.0.0.1']);
  });

  it('reads back its own writes: ADDs one after another, the watch not moving, take no conflict', async () => {
    const { store, cached, calls } = await bed();
    for (const h of ['h1', 'h2', 'h3'])
      expect((await cached.assign({ handle: h, node: 'n1', family: 4 })).block).toBe('10.0.0.0/29');
    expect(calls.filter((c) => !c.startsWith('create'))).toEqual([
      'update IPAMBlock',
      'update IPAMBlock',
      'update IPAMBlock',
    ]);
    const held = await holdings(store);
    expect([held.get('h1'), held.get('h2'), held.get('h3')]).toEqual([
      ['10.0.0.1'],
      ['10.0.0.2'],
      ['10.0.0.3'],
    ]);
  });

  it('a stale block is a Conflict, and the store gives a free address: nothing held twice', async () => {
    const { store, allocator, cached, calls } = await bed();
    // Another allocator takes the next address; the cache still has the block before it.
    const other = await allocator.assign({ handle: 'other', node: 'n1', family: 4 });
    const mine = await cached.assign({ handle: 'mine', node: 'n1', family: 4 });
    expect(other.address).toBe('10.0.0.1');
    expect(mine.address).toBe('10.0.0.2');
    expect(calls.slice(0, 2)).toEqual(['create IPAMHandle', 'update IPAMBlock']);
    expect(calls.filter((c) => c.startsWith('get') || c.startsWith('list')).length).toBeGreaterThan(0);
    const held = await holdings(store);
    expect([held.get('first'), held.get('other'), held.get('mine')]).toEqual([
      ['10.0.0.0'],
      ['10.0.0.1'],
      ['10.0.0.2'],
    ]);
  });

  it('a retried ADD (its handle exists) gets the address it holds, no second one', async () => {
    const { store, cached } = await bed();
    const again = await cached.assign({ handle: 'first', node: 'n1', family: 4 });
    expect(again.address).toBe('10.0.0.0');
    expect((await holdings(store)).get('first')).toEqual(['10.0.0.0']);
  });

  it('what the cache does not know, or a block to claim, goes the long way', async () => {
    const { store, maps, cached, calls } = await bed();
    maps.delete('IPAMConfig'); // not watched
    await cached.assign({ handle: 'h1', node: 'n1', family: 4 });
    expect(calls.some((c) => c.startsWith('get') || c.startsWith('list'))).toBe(true);
    calls.length = 0;
    // n2 has no block: a claim, from the store's reads.
    const b = await cached.assign({ handle: 'h2', node: 'n2', family: 4 });
    expect(b.block).toBe('10.0.0.8/29');
    expect(calls).toContain('create BlockAffinity');
    expect((await holdings(store)).get('h2')).toEqual(['10.0.0.8']);
  });
});

describe('WatchReadCache', () => {
  const obj = (name: string, rv: string): StoredObject => ({
    apiVersion: 'x',
    kind: 'IPAMBlock',
    metadata: { name, resourceVersion: rv },
  });

  it('reads its own write until the watch moves on for the object, or the ttl passes', () => {
    const clock = new FakeClock();
    const map = new Map([['b', obj('b', '1')]]);
    const cache = new WatchReadCache(
      (k) => (k === 'IPAMBlock' ? map : null),
      () => clock.now(),
      1000,
    );
    expect(cache.get({ kind: 'Node', name: 'n' })).toBeNull();
    cache.wrote(obj('b', '2'));
    expect(cache.get({ kind: 'IPAMBlock', name: 'b' })?.metadata.resourceVersion).toBe('2');
    expect(cache.list('IPAMBlock')!.map((o) => o.metadata.resourceVersion)).toEqual(['2']);
    map.set('b', obj('b', '2')); // the write's own event
    expect(cache.get({ kind: 'IPAMBlock', name: 'b' })).toBe(map.get('b'));
    map.set('b', obj('b', '3'));
    expect(cache.get({ kind: 'IPAMBlock', name: 'b' })?.metadata.resourceVersion).toBe('3');

    cache.wrote(obj('b', '4'));
    clock.advance(999);
    expect(cache.get({ kind: 'IPAMBlock', name: 'b' })?.metadata.resourceVersion).toBe('4');
    clock.advance(2);
    expect(cache.get({ kind: 'IPAMBlock', name: 'b' })?.metadata.resourceVersion).toBe('3');
  });
});
