/**
 * The in-memory datastore: the contract suite, plus what only this implementation promises
 * (copies in and out, delivery from a microtask).
 */
import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import type { StoredObject, WatchEvent } from '../../src/datastore/types.js';
import { datastoreContract } from './contract.js';

datastoreContract('memory', async () => ({ store: new MemoryDatastore(), cleanup: async () => {} }));

const pool = (name: string): StoredObject => ({
  apiVersion: 'crd.twill.dev/v1',
  kind: 'IPPool',
  metadata: { name },
  spec: { cidr: '10.0.0.0/16', blockSize: 26 },
});

describe('MemoryDatastore', () => {
  it('copies objects in and out, so callers cannot change what is stored', async () => {
    const store = new MemoryDatastore();
    const mine = pool('default-ipv4');
    const created = await store.create(mine);
    (mine.spec as { cidr: string }).cidr = '192.0.2.0/24';
    (created.spec as { cidr: string }).cidr = '192.0.2.0/24';
    const got = await store.get({ kind: 'IPPool', name: 'default-ipv4' });
    expect(got?.spec).toEqual({ cidr: '10.0.0.0/16', blockSize: 26 });
    (got!.spec as { cidr: string }).cidr = '192.0.2.0/24';
    const [listed] = await store.list('IPPool');
    expect(listed?.spec).toEqual({ cidr: '10.0.0.0/16', blockSize: 26 });
    await store.close();
  });

  it('delivers watch events from a microtask, never inside the call that made the change', async () => {
    const store = new MemoryDatastore();
    const seen: WatchEvent['type'][] = [];
    const w = store.watch('IPPool', (e) => seen.push(e.type));
    expect(seen).toEqual([]);
    await Promise.resolve();
    expect(seen).toEqual(['synced']);
    const p = store.create(pool('a'));
    expect(seen).toEqual(['synced']);
    await p;
    await Promise.resolve();
    expect(seen).toEqual(['synced', 'added']);
    w.stop();
    await store.create(pool('b'));
    await Promise.resolve();
    expect(seen).toEqual(['synced', 'added']);
    await store.close();
  });

  it('fails Unavailable after close', async () => {
    const store = new MemoryDatastore();
    await store.close();
    await expect(store.get({ kind: 'IPPool', name: 'a' })).rejects.toMatchObject({ code: 'Unavailable' });
  });
});
