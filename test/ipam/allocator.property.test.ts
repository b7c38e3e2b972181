/**
 * The allocator's safety properties under concurrency, conflicts and crashes (issue 16):
 * several allocators (four lanes: two on n0, as CNI ADDs run side by side on a node, one each on
 * n1 and n2) run random commands against one memory store. Every store call goes through
 * fast-check's scheduler, so the operations interleave in a random order; each lane can be told
 * to see Conflicts on its next writes, or to crash (before or after a write lands), after which
 * its allocator is dropped and a new one starts on the same store, and the pod whose ADD crashed
 * gets its DEL, as kubelet sends one.
 *
 * Checked after every operation: an assign never returns an address another live handle holds;
 * each live handle's address is still allocated to it in the store (nothing lost across a
 * restart, a stale release frees nothing live); every block is consistent and no two overlap;
 * no block has two confirmed affinities. At the end: every address is held by a handle the test
 * knows, confirmed affinities match their blocks and every block has its affinity, the most
 * specific originated prefix holding each live address is its pod's node's, and after releasing
 * everything each pool hands out every one of its addresses again.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import type { StoredObject } from '../../src/datastore/types.js';
import { type Assignment, Allocator } from '../../src/ipam/allocator.js';
import { containsAddress, overlaps, parseAddress, parseCidr } from '../../src/ipam/blocks.js';
import { originated } from '../../src/ipam/originate.js';
import {
  type BlockAffinitySpec,
  IpamError,
  type IPAMBlockSpec,
  validateBlock,
} from '../../src/ipam/model.js';
import { Crash, FakeClock, FaultyStore, holdings, ipamConfig, node, pool } from './helpers.js';

type Command =
  | { k: 'assign'; family: 4 | 6 }
  | { k: 'release'; pick: number }
  | { k: 'stale'; pick: number }
  /** Every pod of the lane goes, then two sweeps: the node's emptied blocks go back, but one. */
  | { k: 'drain' }
  /** The agent's empty-block sweep, once or twice in a row (a block goes on its second sighting). */
  | { k: 'releaseEmpty'; twice: boolean }
  | { k: 'conflict'; n: number }
  | { k: 'crash'; after: number; applied: boolean };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant('assign' as const),
      family: fc.constantFrom(4 as const, 4 as const, 6 as const),
    }),
  },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('stale' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('drain' as const) }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('releaseEmpty' as const), twice: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ k: fc.constant('conflict' as const), n: fc.integer({ min: 1, max: 3 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('crash' as const),
      after: fc.integer({ min: 1, max: 4 }),
      applied: fc.boolean(),
    }),
  },
);

const LANES = ['n0', 'n0', 'n1', 'n2'];
// Small pools, so nodes claim and release blocks, borrow and exhaust: IPv4 sixteen blocks of one
// address (every assign claims, every release empties a block), IPv6 two blocks of 4.
const POOLS = [
  pool('v4', { cidr: '10.0.0.0/28', blockSize: 32 }),
  pool('v6', { cidr: 'fd00::/125', blockSize: 126 }),
];
const POOL_SIZE = { 4: 16, 6: 8 };

interface Held {
  address: string;
  sequenceNumber: number;
  /** The node the pod runs on (whose assign took the address). */
  node: string;
}

/** What the runs exercised, so a generator that stops reaching a path fails loudly. */
const stats = {
  assigned: 0,
  borrowed: 0,
  crashes: 0,
  conflicts: 0,
  exhausted: 0,
  blocksReleased: 0,
  staleRefused: 0,
};

function isExpected(e: unknown): boolean {
  return e instanceof Crash || (e instanceof IpamError && (e.code === 'Exhausted' || e.code === 'Conflict'));
}

async function scenario(
  s: fc.Scheduler,
  lanes: Command[][],
  config: { strictAffinity: boolean; maxBlocksPerHost: number },
): Promise<void> {
  const store = new MemoryDatastore();
  for (const o of [...POOLS, node('n0'), node('n1'), node('n2'), ipamConfig(config)]) await store.create(o);
  const clock = new FakeClock();
  const gate = <T>(label: string, f: () => Promise<T>) => s.schedule(Promise.resolve(label), label).then(f);

  const live = new Map<string, Held>();
  const uncertain = new Set<string>();
  const released: Held[] = [];

  const assigned = (handle: string, node: string, r: Assignment) => {
    for (const [h, held] of live) expect(held.address, `${handle} got ${h}'s address`).not.toBe(r.address);
    live.set(handle, { address: r.address, sequenceNumber: r.sequenceNumber, node });
    stats.assigned++;
    if (r.borrowed) stats.borrowed++;
  };

  const check = async () => {
    const before = new Map(live);
    const blocks = (await store.list('IPAMBlock')) as StoredObject[];
    const holder = new Map<string, string>();
    const cidrs = blocks.map((b) => parseCidr((b.spec as IPAMBlockSpec).cidr));
    cidrs.forEach((c, i) => {
      for (let j = i + 1; j < cidrs.length; j++) expect(overlaps(c, cidrs[j]!)).toBe(false);
    });
    for (const b of blocks) {
      const v = validateBlock(b);
      expect(v.errors.map(String)).toEqual([]);
      const spec = b.spec as IPAMBlockSpec;
      spec.allocations.forEach((a, o) => {
        if (a !== null)
          holder.set(`${v.block!.cidr.family}:${v.block!.cidr.base + BigInt(o)}`, spec.attributes[a]!.handle);
      });
    }
    for (const [h, held] of before) {
      if (live.get(h) !== held) continue; // its release started meanwhile
      const p = parseCidr(held.address.includes(':') ? `${held.address}/128` : `${held.address}/32`);
      expect(holder.get(`${p.family}:${p.base}`), `${h} lost ${held.address}`).toBe(h);
    }
    const confirmed = (await store.list('BlockAffinity'))
      .map((a) => a.spec as BlockAffinitySpec)
      .filter((a) => a.state === 'confirmed');
    expect(new Set(confirmed.map((a) => a.cidr)).size).toBe(confirmed.length);
  };

  const runLane = async (lane: number, commands: Command[]) => {
    const nodeName = LANES[lane]!;
    let faulty = new FaultyStore(store, gate);
    let allocator = new Allocator({ store: faulty, clock });
    const restartIfCrashed = (e: unknown) => {
      if (!isExpected(e)) throw e;
      if (e instanceof IpamError && e.code === 'Exhausted') stats.exhausted++;
      if (e instanceof Crash) {
        stats.crashes++;
        faulty = new FaultyStore(store, gate);
        allocator = new Allocator({ store: faulty, clock });
      }
    };
    const mine: string[] = [];
    const dels: string[] = [];
    const release = async (h: string) => {
      live.delete(h);
      try {
        await allocator.release(h);
        uncertain.delete(h);
      } catch (e) {
        uncertain.add(h);
        restartIfCrashed(e);
      }
    };
    let n = 0;
    for (const c of commands) {
      clock.advance(1000);
      // kubelet's DEL for an ADD that failed.
      while (dels.length > 0) await release(dels.pop()!);
      switch (c.k) {
        case 'assign': {
          const handle = `l${lane}-${n++}`;
          try {
            const r = await allocator.assign({ handle, node: nodeName, family: c.family });
            assigned(handle, nodeName, r);
            mine.push(handle);
          } catch (e) {
            uncertain.add(handle);
            dels.push(handle);
            restartIfCrashed(e);
          }
          break;
        }
        case 'release': {
          const stillMine = mine.filter((h) => live.has(h));
          if (stillMine.length === 0) break;
          const h = stillMine[c.pick % stillMine.length]!;
          const held = live.get(h)!;
          await release(h);
          if (!uncertain.has(h)) released.push(held);
          break;
        }
        case 'drain': {
          for (const h of mine.filter((x) => live.has(x))) {
            const held = live.get(h)!;
            await release(h);
            if (!uncertain.has(h)) released.push(held);
          }
          try {
            await allocator.releaseEmptyBlocks(nodeName);
            stats.blocksReleased += (await allocator.releaseEmptyBlocks(nodeName)).length;
          } catch (e) {
            restartIfCrashed(e);
          }
          break;
        }
        case 'stale': {
          if (released.length === 0) break;
          const old = released[c.pick % released.length]!;
          try {
            if (!(await allocator.releaseAddress(old.address, { sequenceNumber: old.sequenceNumber })))
              stats.staleRefused++;
          } catch (e) {
            restartIfCrashed(e);
          }
          break;
        }
        case 'releaseEmpty':
          try {
            stats.blocksReleased += (await allocator.releaseEmptyBlocks(nodeName)).length;
            if (c.twice) stats.blocksReleased += (await allocator.releaseEmptyBlocks(nodeName)).length;
          } catch (e) {
            restartIfCrashed(e);
          }
          break;
        case 'conflict':
          faulty.conflictNext(c.n);
          break;
        case 'crash':
          faulty.crashOnWrite(c.after, c.applied);
          break;
      }
      await check();
    }
    while (dels.length > 0) await release(dels.pop()!);
  };

  await s.waitFor(Promise.all(lanes.map((cmds, i) => runLane(i, cmds))));

  // Quiet now: every address belongs to a handle the test knows; affinities match blocks.
  const held = await holdings(store);
  for (const [h, addresses] of held) {
    if (live.has(h)) expect(addresses).toEqual([live.get(h)!.address]);
    else expect(uncertain.has(h), `${h} holds ${addresses} but nobody knows`).toBe(true);
  }
  for (const [h, l] of live) expect(held.get(h)).toEqual([l.address]);
  const blockAffinity = new Map(
    (await store.list('IPAMBlock')).map((b) => [
      (b.spec as IPAMBlockSpec).cidr,
      (b.spec as IPAMBlockSpec).affinity,
    ]),
  );
  const affinities = (await store.list('BlockAffinity')).map((o) => o.spec as BlockAffinitySpec);
  for (const a of affinities) {
    if (a.state === 'confirmed') expect(blockAffinity.get(a.cidr)).toBe(`host:${a.node}`);
  }
  // Routing: of all the prefixes the nodes originate, the most specific one holding a live
  // address is its pod's node's (a borrowed address's /32 beats the lender's block).
  const blockSpecs = (await store.list('IPAMBlock')).map((b) => b.spec as IPAMBlockSpec);
  const routes = ['n0', 'n1', 'n2'].flatMap((n) =>
    originated(n, blockSpecs).map((p) => ({ n, p: parseCidr(p) })),
  );
  for (const [h, l] of live) {
    const a = parseAddress(l.address);
    const covering = routes.filter((r) => containsAddress(r.p, a.family, a.value));
    const longest = Math.max(...covering.map((r) => r.p.len));
    expect(
      covering.filter((r) => r.p.len === longest).map((r) => r.n),
      `${h} ${l.address}`,
    ).toEqual([l.node]);
  }
  // And back: a block affine to a node has that node's affinity object (no orphan block).
  for (const [cidr, affinity] of blockAffinity) {
    if (affinity === null) continue;
    expect(
      affinities.some((a) => `host:${a.node}` === affinity && a.cidr === cidr),
      `${cidr} orphaned`,
    ).toBe(true);
  }

  // Release everything: nothing is held, no handle is left, and every address comes back.
  const clean = new Allocator({ store, clock });
  for (const h of [...live.keys(), ...uncertain]) await clean.release(h);
  expect(await holdings(store)).toEqual(new Map());
  expect(await store.list('IPAMHandle')).toEqual([]);
  const cfg = (await store.get({ kind: 'IPAMConfig', name: 'default' }))!;
  await store.update({ ...cfg, spec: {} });
  for (const family of [4, 6] as const) {
    // The nodes take turns until none gets more (each may keep an empty block of its own).
    const got: string[] = [];
    const exhausted = new Set<string>();
    for (let i = 0; exhausted.size < 3; i++) {
      const n = ['n0', 'n1', 'n2'][i % 3]!;
      if (exhausted.has(n)) continue;
      clock.advance(1000);
      const r = await clean.assign({ handle: `final-${family}-${i}`, node: n, family }).catch((e) => e);
      if (r instanceof IpamError && r.code === 'Exhausted') exhausted.add(n);
      else {
        expect(r).not.toBeInstanceOf(Error);
        got.push((r as Assignment).address);
      }
    }
    expect(got.length).toBe(POOL_SIZE[family]);
    expect(new Set(got).size).toBe(POOL_SIZE[family]);
  }
}

describe('allocator under random interleavings, conflicts and crashes', () => {
  it('never hands out an address twice, loses nothing, and gets every address back', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.array(command, { minLength: 6, maxLength: 16 }), {
          minLength: LANES.length,
          maxLength: LANES.length,
        }),
        fc.record({ strictAffinity: fc.boolean(), maxBlocksPerHost: fc.integer({ min: 0, max: 2 }) }),
        scenario,
      ),
      { numRuns: 40 },
    );
    stats.conflicts = FaultyStore.conflicts;
    for (const [what, n] of Object.entries(stats)) expect(n, `no run exercised ${what}`).toBeGreaterThan(0);
  }, 60_000);
});
