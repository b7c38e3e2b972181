import { describe, expect, it } from 'vitest';
import { DatastoreError, type StoredObject } from '../../src/datastore/types.js';
import * as alloc from '../../src/ipam/allocations.js';
import { Allocator } from '../../src/ipam/allocator.js';
import type { BlockAffinitySpec, IPAMBlockSpec } from '../../src/ipam/model.js';
import { IpamError } from '../../src/ipam/model.js';
import { originated } from '../../src/ipam/originate.js';
import { planReclaim, podKey } from '../../src/ipam/reclaim.js';
import { blockSpecs, Crash, FaultyStore, holdings, ipamConfig, node, pool, setup } from './helpers.js';

const affinitySpecs = async (s: { list: (k: 'BlockAffinity') => Promise<StoredObject[]> }) =>
  (await s.list('BlockAffinity')).map((o) => o.spec as BlockAffinitySpec);

describe('assign', () => {
  it("prefers the node's own block, then claims the lowest free block", async () => {
    const { allocator } = await setup([
      pool('p', { cidr: '10.0.0.0/28', blockSize: 30 }),
      node('n1'),
      node('n2'),
    ]);
    const a1 = await allocator.assign({ handle: 'a1', node: 'n1', family: 4 });
    const b1 = await allocator.assign({ handle: 'b1', node: 'n2', family: 4 });
    expect([a1.address, a1.block, b1.address, b1.block]).toEqual([
      '10.0.0.0',
      '10.0.0.0/30',
      '10.0.0.4',
      '10.0.0.4/30',
    ]);
    const more = [];
    for (const h of ['a2', 'a3', 'a4', 'a5'])
      more.push((await allocator.assign({ handle: h, node: 'n1', family: 4 })).address);
    // n1 fills its block, then skips n2's block and claims the next free one.
    expect(more).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.8']);
    expect(await allocator.claimedBlocks('n1')).toEqual(['10.0.0.0/30', '10.0.0.8/30']);
    expect(await allocator.claimedBlocks('n2')).toEqual(['10.0.0.4/30']);
  });

  it('borrows from another node when no block is free, and originates a /32 for it', async () => {
    const { store, allocator } = await setup([
      pool('p', { cidr: '10.0.0.0/29', blockSize: 30 }),
      node('n1'),
      node('n2'),
    ]);
    await allocator.assign({ handle: 'b1', node: 'n2', family: 4 });
    for (const h of ['a1', 'a2', 'a3', 'a4']) await allocator.assign({ handle: h, node: 'n1', family: 4 });
    const borrowed = await allocator.assign({ handle: 'a5', node: 'n1', family: 4 });
    expect(borrowed).toMatchObject({ address: '10.0.0.1', block: '10.0.0.0/30', borrowed: true });
    const blocks = await blockSpecs(store);
    expect(originated('n1', blocks)).toEqual(['10.0.0.1/32', '10.0.0.4/30']);
    expect(originated('n2', blocks)).toEqual(['10.0.0.0/30']);
  });

  it('strictAffinity: never borrows', async () => {
    const { allocator } = await setup([
      pool('p', { cidr: '10.0.0.0/29', blockSize: 30 }),
      ipamConfig({ strictAffinity: true }),
      node('n1'),
      node('n2'),
    ]);
    await allocator.assign({ handle: 'b1', node: 'n2', family: 4 });
    for (const h of ['a1', 'a2', 'a3', 'a4']) await allocator.assign({ handle: h, node: 'n1', family: 4 });
    await expect(allocator.assign({ handle: 'a5', node: 'n1', family: 4 })).rejects.toThrow(
      /Exhausted|no IPv4 address for node n1.*strictAffinity/,
    );
  });

  it('maxBlocksPerHost: a node stops claiming, then borrows', async () => {
    const { allocator } = await setup([
      pool('p', { cidr: '10.0.0.0/28', blockSize: 30 }),
      ipamConfig({ maxBlocksPerHost: 1 }),
      node('n1'),
      node('n2'),
    ]);
    await allocator.assign({ handle: 'b1', node: 'n2', family: 4 });
    for (const h of ['a1', 'a2', 'a3', 'a4']) await allocator.assign({ handle: h, node: 'n1', family: 4 });
    const a5 = await allocator.assign({ handle: 'a5', node: 'n1', family: 4 });
    expect(a5).toMatchObject({ block: '10.0.0.0/30', borrowed: true });
    expect(await allocator.claimedBlocks('n1')).toEqual(['10.0.0.4/30']);
  });

  it('the same handle gets the same address again (a CNI ADD retried after a crash)', async () => {
    const { allocator } = await setup([
      pool('p', { cidr: '10.0.0.0/24' }),
      pool('p6', { cidr: 'fd00::/120' }),
      node('n1'),
    ]);
    const a = await allocator.assign({ handle: 'h', node: 'n1', family: 4 });
    expect(await allocator.assign({ handle: 'h', node: 'n1', family: 4 })).toEqual(a);
    const v6 = await allocator.assign({ handle: 'h', node: 'n1', family: 6 });
    expect(v6).toMatchObject({ address: 'fd00::', block: 'fd00::/122', family: 6 });
    expect((await allocator.release('h')).map((r) => r.address).sort()).toEqual(['10.0.0.0', 'fd00::']);
  });

  it('nodeSelector and disabled decide which pools a node uses', async () => {
    const { allocator } = await setup([
      pool('rack-a', { cidr: '10.1.0.0/24', nodeSelector: "rack == 'a'" }),
      pool('off', { cidr: '10.2.0.0/24', disabled: true }),
      node('in-a', { rack: 'a' }),
      node('in-b', { rack: 'b' }),
    ]);
    expect((await allocator.assign({ handle: 'h1', node: 'in-a', family: 4 })).block).toBe('10.1.0.0/26');
    await expect(allocator.assign({ handle: 'h2', node: 'in-b', family: 4 })).rejects.toThrow(
      'no enabled IPv4 IPPool selects node in-b',
    );
    await expect(allocator.assign({ handle: 'h3', node: 'in-a', family: 6 })).rejects.toThrow(
      'no valid IPv6 IPPool',
    );
  });

  it("podCIDR mode: the node's podCIDR is its one block", async () => {
    const { allocator, invalid } = await setup([
      pool('cluster', { cidr: '10.0.0.0/8', mode: 'podCIDR' }),
      node('n1', {}, ['10.1.2.0/24', 'fd00::/64']),
      node('n2'),
      node('n3', {}, ['10.9.0.0/16']),
    ]);
    const a = await allocator.assign({ handle: 'h1', node: 'n1', family: 4 });
    expect(a).toMatchObject({ address: '10.1.2.0', block: '10.1.2.0/24', borrowed: false });
    await expect(allocator.assign({ handle: 'h2', node: 'n2', family: 4 })).rejects.toThrow(
      'Node n2 has no spec.podCIDRs entry in IPPool cluster (10.0.0.0/8)',
    );
    await expect(allocator.assign({ handle: 'h3', node: 'n3', family: 4 })).rejects.toThrow(
      'Node n3: spec.podCIDRs[0]: /16 cannot be a block',
    );
    expect(invalid.some((e) => e.startsWith('Node n3: spec.podCIDRs[0]'))).toBe(true);
  });

  it('rejects a malformed handle, node or family naming the field', async () => {
    const { allocator } = await setup([pool('p', { cidr: '10.0.0.0/24' })]);
    const e = await allocator.assign({ handle: 'Bad_Handle', node: 'N1', family: 5 as 4 }).catch((x) => x);
    expect(e).toBeInstanceOf(IpamError);
    expect(e.code).toBe('Invalid');
    expect(e.errors.map(String)).toEqual([
      expect.stringContaining('IPAMHandle "Bad_Handle": spec.handleID'),
      'assign: node: "N1" is not a node name',
      'assign: family: 5 is not 4 or 6',
    ]);
  });
});

describe('release', () => {
  it('is idempotent', async () => {
    const { store, allocator } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    await allocator.assign({ handle: 'h', node: 'n1', family: 4 });
    expect(await allocator.release('h')).toEqual([{ address: '10.0.0.0', block: '10.0.0.0/26' }]);
    expect(await allocator.release('h')).toEqual([]);
    expect(await allocator.release('never-assigned')).toEqual([]);
    expect(await store.list('IPAMHandle')).toEqual([]);
  });

  it('a stale release (old sequence number) does not free an address handed out again', async () => {
    const { store, allocator, clock } = await setup([
      pool('p', { cidr: '10.0.0.0/32', blockSize: 32 }),
      node('n1'),
    ]);
    const first = await allocator.assign({ handle: 'old', node: 'n1', family: 4 });
    await allocator.release('old');
    clock.advance(1);
    const second = await allocator.assign({ handle: 'new', node: 'n1', family: 4 });
    expect(second.address).toBe(first.address);
    expect(second.sequenceNumber).toBeGreaterThan(first.sequenceNumber);
    expect(await allocator.releaseAddress(first.address, { sequenceNumber: first.sequenceNumber })).toBe(
      false,
    );
    expect(await allocator.releaseAddress(first.address, { handle: 'old' })).toBe(false);
    expect((await holdings(store)).get('new')).toEqual(['10.0.0.0']);
    expect(await allocator.releaseAddress(second.address, { sequenceNumber: second.sequenceNumber })).toBe(
      true,
    );
    expect(await holdings(store)).toEqual(new Map());
  });

  it('sequence numbers keep growing across a block released and claimed again', async () => {
    const { allocator, clock } = await setup([pool('p', { cidr: '10.0.0.0/31', blockSize: 32 }), node('n1')]);
    await allocator.assign({ handle: 'keep', node: 'n1', family: 4 });
    const a = await allocator.assign({ handle: 'a', node: 'n1', family: 4 });
    await allocator.release('a');
    clock.advance(1000);
    await allocator.releaseEmptyBlocks('n1');
    clock.advance(1000);
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual([a.block]);
    clock.advance(1000);
    const b = await allocator.assign({ handle: 'b', node: 'n1', family: 4 });
    expect(b.address).toBe(a.address);
    expect(b.sequenceNumber).toBeGreaterThan(a.sequenceNumber);
  });

  it('releaseAddress of an address nobody holds is false; of a non-address, an error', async () => {
    const { allocator } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    expect(await allocator.releaseAddress('10.0.0.9')).toBe(false);
    await expect(allocator.releaseAddress('10.0.0.999')).rejects.toThrow('releaseAddress: address');
  });
});

describe('empty blocks', () => {
  async function twoBlocks() {
    const s = await setup([pool('p', { cidr: '10.0.0.0/28', blockSize: 30 }), node('n1')]);
    for (let i = 0; i < 5; i++) await s.allocator.assign({ handle: `h${i}`, node: 'n1', family: 4 });
    for (let i = 0; i < 5; i++) await s.allocator.release(`h${i}`);
    return s;
  }

  it('go back to the pool after two consecutive empty observations; the node keeps one', async () => {
    const { allocator, store } = await twoBlocks();
    expect(await allocator.claimedBlocks('n1')).toEqual(['10.0.0.0/30', '10.0.0.4/30']);
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual([]);
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual(['10.0.0.4/30']);
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual([]);
    expect(await allocator.claimedBlocks('n1')).toEqual(['10.0.0.0/30']);
    expect((await blockSpecs(store)).map((b) => b.cidr)).toEqual(['10.0.0.0/30']);
    expect(await store.list('BlockAffinity')).toHaveLength(1);
  });

  it('an allocation between the two observations starts the count again', async () => {
    const { allocator } = await twoBlocks();
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual([]);
    // x1..x4 fill the first block, x5 lands in the second and leaves again.
    for (let i = 1; i <= 5; i++) await allocator.assign({ handle: `x${i}`, node: 'n1', family: 4 });
    await allocator.release('x5');
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual([]);
    expect(await allocator.releaseEmptyBlocks('n1')).toEqual(['10.0.0.4/30']);
  });

  it('a block that fills between observation and delete is kept, its affinity confirmed again', async () => {
    const { store, clock } = await twoBlocks();
    const faulty = new FaultyStore(store);
    const releasing = new Allocator({ store: faulty, clock });
    await releasing.releaseEmptyBlocks('n1');
    // Just before n1 deletes its empty second block, another node borrows an address in it.
    const inner = faulty.delete.bind(faulty);
    faulty.delete = async (k, p) => {
      if (k.kind === 'IPAMBlock') {
        const b = (await store.get(k))!;
        const r = alloc.allocate(b.spec as IPAMBlockSpec, { handle: 'n2-a', node: 'n2' })!;
        await store.update({ ...b, spec: r.spec });
      }
      return inner(k, p);
    };
    expect(await releasing.releaseEmptyBlocks('n1')).toEqual([]);
    expect((await affinitySpecs(store)).map((a) => [a.cidr, a.state])).toEqual([
      ['10.0.0.0/30', 'confirmed'],
      ['10.0.0.4/30', 'confirmed'],
    ]);
    expect((await holdings(store)).get('n2-a')).toHaveLength(1);
  });

  it("a release that lost its block to a new claim does not delete the new claim's affinity", async () => {
    const { store, clock } = await setup([pool('p', { cidr: '10.0.0.0/29', blockSize: 30 }), node('n1')]);
    const other = new Allocator({ store, clock });
    for (let i = 0; i < 5; i++) await other.assign({ handle: `h${i}`, node: 'n1', family: 4 });
    await other.release('h4'); // 10.0.0.4/30 is empty, 10.0.0.0/30 full
    const faulty = new FaultyStore(store);
    const releasing = new Allocator({ store: faulty, clock });
    await releasing.releaseEmptyBlocks('n1');
    // Between the block's delete and the affinity's, another allocator on n1 needs a block: it
    // finishes the release it finds, claims 10.0.0.4/30 again and allocates from it.
    const inner = faulty.delete.bind(faulty);
    let raced = false;
    faulty.delete = async (k, p) => {
      if (k.kind === 'BlockAffinity' && !raced) {
        raced = true;
        expect((await other.assign({ handle: 'again', node: 'n1', family: 4 })).block).toBe('10.0.0.4/30');
      }
      return inner(k, p);
    };
    await releasing.releaseEmptyBlocks('n1');
    expect(raced).toBe(true);
    expect((await affinitySpecs(store)).map((a) => [a.cidr, a.state])).toEqual([
      ['10.0.0.0/30', 'confirmed'],
      ['10.0.0.4/30', 'confirmed'],
    ]);
    expect((await holdings(store)).get('again')).toEqual(['10.0.0.4']);
  });
});

describe('leaked addresses', () => {
  it('are reclaimed after the grace period, never while the pod exists', async () => {
    const { store, allocator, clock } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    await allocator.assign({ handle: 'live', node: 'n1', family: 4, namespace: 'default', pod: 'web' });
    await allocator.assign({ handle: 'gone', node: 'n1', family: 4, namespace: 'default', pod: 'old' });
    await allocator.assign({ handle: 'tunnel', node: 'n1', family: 4 });
    const pods = new Set([podKey('default', 'web')]);
    expect(await allocator.reclaimLeaked(pods, 60_000)).toEqual([]);
    clock.advance(59_999);
    expect(await allocator.reclaimLeaked(pods, 60_000)).toEqual([]);
    clock.advance(1);
    const done = await allocator.reclaimLeaked(pods, 60_000);
    expect(done.map((c) => [c.address, c.pod])).toEqual([['10.0.0.1', 'old']]);
    clock.advance(10 * 60_000);
    expect(await allocator.reclaimLeaked(pods, 60_000)).toEqual([]);
    expect([...(await holdings(store)).keys()].sort()).toEqual(['live', 'tunnel']);
  });

  it('a pod that reappears restarts the clock', () => {
    const block: IPAMBlockSpec = {
      cidr: '10.0.0.0/30',
      affinity: 'host:n1',
      allocations: [0, null, null, null],
      unallocated: [1, 2, 3],
      attributes: [{ handle: 'h', node: 'n1', namespace: 'ns', pod: 'p' }],
      sequenceNumber: 1,
      sequenceNumberForAllocation: { 0: 1 },
    };
    const none = new Set<string>();
    const one = new Set([podKey('ns', 'p')]);
    let seen = planReclaim({ blocks: [block], pods: none, now: 0, gracePeriodMs: 10, seen: new Map() }).seen;
    seen = planReclaim({ blocks: [block], pods: one, now: 5, gracePeriodMs: 10, seen }).seen;
    expect(seen.size).toBe(0);
    const p = planReclaim({ blocks: [block], pods: none, now: 12, gracePeriodMs: 10, seen });
    expect(p.reclaim).toEqual([]);
    expect(
      planReclaim({ blocks: [block], pods: none, now: 22, gracePeriodMs: 10, seen: p.seen }).reclaim,
    ).toHaveLength(1);
    // Whatever the time, an existing pod's address is never planned.
    expect(
      planReclaim({ blocks: [block], pods: one, now: 1e12, gracePeriodMs: 0, seen: p.seen }).reclaim,
    ).toEqual([]);
  });

  it('with a node, only the allocations that node made are planned (each agent reclaims its own)', () => {
    const block: IPAMBlockSpec = {
      cidr: '10.0.0.0/30',
      affinity: 'host:n1',
      allocations: [0, 1, null, null],
      unallocated: [2, 3],
      attributes: [
        { handle: 'h1', node: 'n1', namespace: 'ns', pod: 'a' },
        { handle: 'h2', node: 'n2', namespace: 'ns', pod: 'b' },
      ],
      sequenceNumber: 2,
      sequenceNumberForAllocation: { 0: 1, 1: 2 },
    };
    const plan = (node?: string) =>
      planReclaim({
        blocks: [block],
        pods: new Set(),
        now: 0,
        gracePeriodMs: 0,
        seen: new Map(),
        ...(node ? { node } : {}),
      }).reclaim.map((c) => c.pod);
    expect(plan('n2')).toEqual(['b']);
    expect(plan('n3')).toEqual([]);
    expect(plan()).toEqual(['a', 'b']);
  });

  it('a plan applied after the address was handed out again frees nothing', async () => {
    const { store, allocator, clock } = await setup([
      pool('p', { cidr: '10.0.0.0/32', blockSize: 32 }),
      node('n1'),
    ]);
    await allocator.assign({ handle: 'a', node: 'n1', family: 4, namespace: 'ns', pod: 'gone' });
    const plan = planReclaim({
      blocks: await blockSpecs(store),
      pods: new Set(),
      now: 0,
      gracePeriodMs: 0,
      seen: new Map(),
    });
    await allocator.release('a');
    clock.advance(1);
    await allocator.assign({ handle: 'b', node: 'n1', family: 4, namespace: 'ns', pod: 'gone' });
    expect(await allocator.reclaim(plan.reclaim)).toEqual([]);
    expect((await holdings(store)).get('b')).toEqual(['10.0.0.0']);
  });
});

describe('faults', () => {
  it('retries through conflicts; gives up after maxRetries with nothing changed', async () => {
    const { store, clock } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    const faulty = new FaultyStore(store);
    faulty.conflictNext(3);
    const a = new Allocator({ store: faulty, clock, maxRetries: 3 });
    expect((await a.assign({ handle: 'h1', node: 'n1', family: 4 })).address).toBe('10.0.0.0');
    faulty.conflictNext(100);
    const e = await a.assign({ handle: 'h2', node: 'n1', family: 4 }).catch((x) => x);
    expect(e).toBeInstanceOf(IpamError);
    expect(e.code).toBe('Conflict');
    expect(e.message).toContain('gave up after 4 attempts');
    expect(await holdings(store)).toEqual(new Map([['h1', ['10.0.0.0']]]));
  });

  it('waits through its backoff between attempts after a Conflict, not before the first', async () => {
    const { store, clock } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    const faulty = new FaultyStore(store);
    const waits: number[] = [];
    const a = new Allocator({ store: faulty, clock, backoff: async (attempt) => void waits.push(attempt) });
    await a.assign({ handle: 'h0', node: 'n1', family: 4 });
    expect(waits).toEqual([]);
    faulty.conflictNext(3);
    expect((await a.assign({ handle: 'h1', node: 'n1', family: 4 })).address).toBe('10.0.0.1');
    expect(waits).toEqual([0, 1, 2]);
  });

  it('an unreachable store is reported as it is, not retried', async () => {
    const { store, clock } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    const down = new FaultyStore(store);
    let calls = 0;
    down.get = async () => {
      calls++;
      throw new DatastoreError('Unavailable', 'connection refused');
    };
    const a = new Allocator({ store: down, clock });
    await expect(a.assign({ handle: 'h', node: 'n1', family: 4 })).rejects.toMatchObject({
      code: 'Unavailable',
    });
    // One attempt's reads (they go out together: handle, config, node), and no second attempt.
    expect(calls).toBe(3);
    expect(await holdings(store)).toEqual(new Map());
  });

  it.each([1, 2, 3, 4, 5])(
    'a crash at write %i of a first assign: the restarted allocator finishes cleanly',
    async (n) => {
      for (const applied of [false, true]) {
        const { store, clock } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
        const faulty = new FaultyStore(store);
        faulty.crashOnWrite(n, applied);
        const first = new Allocator({ store: faulty, clock });
        const r = await first.assign({ handle: 'h', node: 'n1', family: 4 }).catch((x) => x);
        const restarted = new Allocator({ store, clock });
        const again = await restarted.assign({ handle: 'h', node: 'n1', family: 4 });
        if (!(r instanceof Crash)) expect(again).toEqual(r);
        expect(again.address).toBe('10.0.0.0');
        expect(await affinitySpecs(store)).toEqual([{ node: 'n1', cidr: '10.0.0.0/26', state: 'confirmed' }]);
        expect(await holdings(store)).toEqual(new Map([['h', ['10.0.0.0']]]));
      }
    },
  );
});

describe('bad input keeps what is allocated', () => {
  it('a pool made invalid or overlapped: errors name the object and field; allocations stay and release', async () => {
    const { store, allocator, invalid } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    await allocator.assign({ handle: 'h1', node: 'n1', family: 4 });
    await store.create(pool('overlap', { cidr: '10.0.0.128/25' }));
    expect((await allocator.assign({ handle: 'h2', node: 'n1', family: 4 })).address).toBe('10.0.0.1');
    expect(invalid).toContain(
      'IPPool overlap: spec.cidr: 10.0.0.128/25 overlaps IPPool p (10.0.0.0/24); pools must not overlap',
    );
    // A pool edited into an invalid one: no new addresses from it, the error names the field.
    await store.delete({ kind: 'IPPool', name: 'overlap' });
    const p = (await store.get({ kind: 'IPPool', name: 'p' }))!;
    await store.update({ ...p, spec: { cidr: '10.0.0.0/24', blockSize: 99 } });
    const e = await allocator.assign({ handle: 'h3', node: 'n1', family: 4 }).catch((x) => x);
    expect(e.message).toContain('IPPool p: spec.blockSize: 99 is out of range (20..32 for IPv4)');
    expect(await holdings(store)).toEqual(
      new Map([
        ['h1', ['10.0.0.0']],
        ['h2', ['10.0.0.1']],
      ]),
    );
    expect(await allocator.release('h1')).toEqual([{ address: '10.0.0.0', block: '10.0.0.0/26' }]);
  });

  it('an inconsistent block is never written and never handed out from', async () => {
    const { store, allocator } = await setup([pool('p', { cidr: '10.0.0.0/24' }), node('n1')]);
    await allocator.assign({ handle: 'h1', node: 'n1', family: 4 });
    const b = (await store.list('IPAMBlock'))[0]!;
    const broken = { ...(b.spec as IPAMBlockSpec), unallocated: [] };
    const stored = await store.update({ ...b, spec: broken });
    await expect(allocator.release('h1')).rejects.toThrow(
      /IPAMBlock 10-0-0-0-26: spec.allocations\[1\]: is free but not in unallocated/,
    );
    const next = await allocator.assign({ handle: 'h2', node: 'n1', family: 4 });
    expect(next.block).not.toBe('10.0.0.0/26');
    expect((await store.get({ kind: 'IPAMBlock', name: '10-0-0-0-26' }))?.metadata.resourceVersion).toBe(
      stored.metadata.resourceVersion,
    );
  });
});

describe('originated', () => {
  it('with affinities, only confirmed blocks count', () => {
    const blocks: IPAMBlockSpec[] = [
      {
        cidr: 'fd00::/127',
        affinity: 'host:n1',
        allocations: [null, null],
        unallocated: [0, 1],
        attributes: [],
        sequenceNumber: 0,
        sequenceNumberForAllocation: {},
      },
      {
        cidr: '10.0.0.4/30',
        affinity: 'host:n1',
        allocations: [null, null, null, null],
        unallocated: [0, 1, 2, 3],
        attributes: [],
        sequenceNumber: 0,
        sequenceNumberForAllocation: {},
      },
      {
        cidr: '10.0.0.0/30',
        affinity: 'host:n1',
        allocations: [null, null, null, null],
        unallocated: [0, 1, 2, 3],
        attributes: [],
        sequenceNumber: 0,
        sequenceNumberForAllocation: {},
      },
      {
        cidr: 'fd00::2/127',
        affinity: null,
        allocations: [null, 0],
        unallocated: [0],
        attributes: [{ handle: 'h', node: 'n1' }],
        sequenceNumber: 1,
        sequenceNumberForAllocation: { 1: 1 },
      },
    ];
    expect(originated('n1', blocks)).toEqual(['10.0.0.0/30', '10.0.0.4/30', 'fd00::/127', 'fd00::3/128']);
    const affinities: BlockAffinitySpec[] = [
      { node: 'n1', cidr: '10.0.0.0/30', state: 'confirmed' },
      { node: 'n1', cidr: '10.0.0.4/30', state: 'pending' },
      { node: 'n2', cidr: 'fd00::/127', state: 'confirmed' },
    ];
    expect(originated('n1', blocks, affinities)).toEqual(['10.0.0.0/30', 'fd00::3/128']);
  });
});
