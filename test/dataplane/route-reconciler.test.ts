/**
 * The route reconciler shell against the in-memory kernel and a fake clock (no root): adoption
 * on restart, foreign routes, link notifications, the periodic read-back, the grace period,
 * and failures (a failed add, an interrupted dump, a broken handle) retried once on a fresh
 * handle then reported. test/dataplane/route-reconciler.root.test.ts runs the same scenarios on
 * the real kernel.
 */
import { describe, expect, it } from 'vitest';
import { FakeKernel } from '../helpers/kernel-fake.js';
import { type KernelRoute, RTPROT_TWILL, RtnType } from '../../src/dataplane/route-model.js';
import { RouteApplyError, RouteReconciler, type RouteSpec } from '../../src/dataplane/routes.js';
import { parsePrefix } from '../../src/net/addr.js';
import { FakeClock } from '../../src/bgp/clock.js';

function setup(opts: { graceMs?: number } = {}) {
  const k = new FakeKernel();
  k.addLink('lo');
  k.addLink('eth0');
  const clock = new FakeClock();
  const warnings: string[] = [];
  const errors: Error[] = [];
  const make = () =>
    new RouteReconciler({
      kernel: () => k.handle(),
      clock,
      graceMs: opts.graceMs ?? 0,
      log: { warn: (_o, msg) => warnings.push(msg) },
      onError: (e) => errors.push(e),
    });
  return { k, clock, make, warnings, errors };
}

/** A pod's route of ours as the CNI plugin writes it: scope link on its veth. */
function podRoute(dst: string, oif: number): KernelRoute {
  return {
    key: parsePrefix(dst),
    family: 4,
    table: 254,
    protocol: RTPROT_TWILL,
    metric: 0,
    type: RtnType.Unicast,
    scope: 253,
    nexthops: [{ gateway: undefined, oif }],
  };
}

/** Let scheduled applies (clock.soon) and their promises run. */
async function settle(clock: FakeClock, ms = 0): Promise<void> {
  for (let i = 0; i < 5; i++) {
    clock.advance(i === 0 ? ms : 0);
    await new Promise((r) => setImmediate(r));
  }
}

const pods = (n: number): RouteSpec[] =>
  Array.from({ length: n }, (_, i) => ({ dst: `10.1.0.${i + 1}/32`, kind: 'dev', dev: `twl${i + 1}` }));
const remote: RouteSpec[] = [
  { dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2', '10.9.0.3'] },
  { dst: 'fd00:3::/122', kind: 'via', via: ['fd09::2'] },
];
const blocks: RouteSpec[] = [
  { dst: '10.1.0.0/26', kind: 'blackhole' },
  { dst: 'fd00:1::/122', kind: 'blackhole' },
];

describe('route reconciler (fake kernel)', () => {
  it('installs every kind of route in one batch', async () => {
    const { k, make } = setup();
    for (let i = 1; i <= 3; i++) k.addLink(`twl${i}`);
    const r = make();
    r.setDesired('pods', pods(3));
    r.setDesired('blocks', blocks);
    r.setDesired('bgp', remote);
    const s = await r.apply();
    expect(s).toMatchObject({ readBack: true, added: 7, replaced: 0, deleted: 0, waiting: 0 });
    expect(k.route(parsePrefix('10.1.0.0/26'), 0)?.type).toBe(RtnType.Blackhole);
    expect(k.route(parsePrefix('10.3.0.0/26'), 0)?.nexthops.map((n) => n.gateway)).toEqual([
      '10.9.0.2',
      '10.9.0.3',
    ]);
    expect(k.route('fd00:3::/122', 1024)?.protocol).toBe(RTPROT_TWILL);
    expect((await r.apply()).added).toBe(0);
  });

  it('a restart adopts what is there: no delete, no add, no replace', async () => {
    const { k, make } = setup({ graceMs: 10_000 });
    for (let i = 1; i <= 3; i++) k.addLink(`twl${i}`);
    const a = make();
    a.setDesired('pods', pods(3));
    a.setDesired('blocks', blocks);
    a.setDesired('bgp', remote);
    await a.apply();
    a.close();
    const before = k.ops.length;
    const b = make();
    b.setDesired('pods', pods(3));
    b.setDesired('blocks', blocks);
    b.setDesired('bgp', remote);
    expect(await b.apply()).toMatchObject({ readBack: true, added: 0, replaced: 0, deleted: 0 });
    expect(k.ops.length).toBe(before);
  });

  it('a restart before the speaker has re-learned anything withdraws nothing (expected owners)', async () => {
    const { k, make } = setup();
    const a = make();
    a.setDesired('blocks', blocks);
    a.setDesired('bgp', remote);
    await a.apply();
    a.close();
    const before = k.ops.length;
    const b = new RouteReconciler({ kernel: () => k.handle(), graceMs: 0, expectOwners: ['blocks', 'bgp'] });
    b.setDesired('blocks', blocks);
    expect(await b.apply()).toMatchObject({ added: 0, deleted: 0, deferred: 2 });
    expect(k.ops.length).toBe(before);
    b.setDesired('bgp', remote.slice(0, 1));
    expect(await b.apply()).toMatchObject({ added: 0, deleted: 1, deferred: 0 });
    b.close();
  });

  it('foreign routes stay untouched, also when nobody wants the prefix; a conflict is reported once', async () => {
    const { k, make, warnings } = setup();
    const foreign: KernelRoute = {
      key: parsePrefix('10.3.0.0/26'),
      family: 4,
      table: 254,
      protocol: 4,
      metric: 0,
      type: RtnType.Unicast,
      scope: 0,
      nexthops: [{ gateway: '10.9.0.9', oif: 2 }],
    };
    const bird: KernelRoute = { ...foreign, key: parsePrefix('10.7.0.0/24'), protocol: 12 };
    k.inject(foreign);
    k.inject(bird);
    const r = make();
    r.setDesired('bgp', remote);
    const s = await r.apply();
    expect(s.conflicts).toEqual([{ dst: '10.3.0.0/26', protocol: 4, metric: 0, blocking: true }]);
    expect(k.route(foreign.key, 0)).toEqual(foreign);
    expect(k.route(bird.key, 0)).toEqual(bird);
    r.markForReadBack();
    await r.apply();
    expect(warnings.filter((w) => w.includes('10.3.0.0/26'))).toHaveLength(1);
    expect(k.ops.filter((o) => o.key === foreign.key || o.key === bird.key)).toEqual([]);
    expect(r.status().conflicts).toHaveLength(1);
  });

  it('a veth that disappears and comes back gets its routes back (link notifications)', async () => {
    const { k, clock, make } = setup();
    k.addLink('twl1');
    const r = make();
    r.setDesired('pods', pods(1));
    await r.apply();
    r.start();
    k.delLink('twl1');
    await settle(clock);
    expect(r.status().waiting).toEqual([{ dst: '10.1.0.1/32', dev: 'twl1' }]);
    const index = k.addLink('twl1');
    await settle(clock);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)?.nexthops).toEqual([{ gateway: undefined, oif: index }]);
    r.close();
  });

  it('a link down then up gets its routes back; a route for a link not there yet waits for it', async () => {
    const { k, clock, make } = setup();
    k.addLink('twl1');
    const r = make();
    r.setDesired('pods', pods(2));
    expect((await r.apply()).waiting).toBe(1);
    r.start();
    k.setLinkUp('twl1', false);
    await settle(clock);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)).toBeUndefined();
    k.setLinkUp('twl1', true);
    k.addLink('twl2');
    await settle(clock);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)).toBeDefined();
    expect(k.route(parsePrefix('10.1.0.2/32'), 0)).toBeDefined();
    r.close();
  });

  it('a rename moves nothing by itself: the route follows the name', async () => {
    const { k, clock, make } = setup();
    k.addLink('twl1');
    const r = make();
    r.setDesired('pods', pods(1));
    await r.apply();
    r.start();
    k.renameLink('twl1', 'old1');
    await settle(clock);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)).toBeUndefined();
    const index = k.addLink('twl1');
    await settle(clock);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)?.nexthops[0]?.oif).toBe(index);
    r.close();
  });

  it('a route deleted from outside is restored by the next read-back (90 s)', async () => {
    const { k, clock, make } = setup();
    const r = make();
    r.setDesired('bgp', remote);
    r.start();
    await r.apply();
    k.remove(254, parsePrefix('10.3.0.0/26'), 0);
    const dumps = k.dumps;
    await settle(clock, 89_000);
    expect(k.route(parsePrefix('10.3.0.0/26'), 0)).toBeUndefined();
    await settle(clock, 1_000);
    expect(k.dumps).toBe(dumps + 1);
    expect(k.route(parsePrefix('10.3.0.0/26'), 0)).toBeDefined();
    r.close();
  });

  it('started after the first apply, it reads back once (link events in between are not lost)', async () => {
    const { k, clock, make } = setup();
    k.addLink('twl1');
    const r = make();
    r.setDesired('pods', pods(1));
    await r.apply();
    k.delLink('twl1');
    k.addLink('twl1');
    const dumps = k.dumps;
    r.start();
    await settle(clock);
    expect(k.dumps).toBe(dumps + 1);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)?.nexthops[0]?.oif).toBe(k.linkIndex('twl1'));
    r.close();
  });

  it('lost notifications force a read-back', async () => {
    const { k, clock, make } = setup();
    const r = make();
    r.setDesired('bgp', remote);
    await r.apply();
    r.start();
    k.remove(254, parsePrefix('10.3.0.0/26'), 0);
    k.overrun();
    await settle(clock);
    expect(k.route(parsePrefix('10.3.0.0/26'), 0)).toBeDefined();
    r.close();
  });

  it('applySoon coalesces a burst of changes into one batch', async () => {
    const { k, clock, make } = setup();
    const r = make();
    r.start();
    await r.apply();
    const ops = k.ops.length;
    const batches = k.batches;
    for (let i = 1; i <= 20; i++) {
      r.setDesired(
        'bgp',
        Array.from(
          { length: i },
          (_, j): RouteSpec => ({ dst: `10.20.${j}.0/24`, kind: 'via', via: ['10.9.0.2'] }),
        ),
      );
      r.applySoon();
    }
    await settle(clock);
    expect(k.batches - batches).toBe(1);
    expect(k.ops.slice(ops).map((o) => o.op)).toEqual(new Array(20).fill('add'));
    r.close();
  });

  it('writes nothing on its own before the first apply', async () => {
    const { k, clock, make } = setup();
    const r = make();
    r.setDesired('blocks', blocks);
    r.start();
    k.addLink('twl1');
    await settle(clock, 100_000);
    expect(k.ops).toEqual([]);
    r.close();
  });

  it('grace period: an unexpected route of ours on a new veth is removed only after it', async () => {
    const { k, clock, make } = setup({ graceMs: 10_000 });
    const r = make();
    await r.apply();
    r.start();
    const index = k.addLink('twl5');
    // The CNI plugin programs the pod's route before the agent has heard of the pod.
    k.inject(podRoute('10.1.0.5/32', index));
    r.markForReadBack();
    expect((await r.apply()).deferred).toBe(1);
    await settle(clock, 9_000);
    expect(k.route(parsePrefix('10.1.0.5/32'), 0)).toBeDefined();
    await settle(clock, 1_000);
    expect(k.route(parsePrefix('10.1.0.5/32'), 0)).toBeUndefined();
    r.close();
  });

  it('an add that finds a route put there since the read-back is no failure: ours adopted, a foreign one reported', async () => {
    const { k, clock, make, warnings, errors } = setup();
    const r = make();
    r.start();
    await r.apply();
    const twl = k.addLink('twl1');
    await settle(clock);
    // Behind the reconciler's back: the plugin's own host script writes a pod's route (ours),
    // another daemon a route for a block (foreign).
    const pod = podRoute('10.1.0.5/32', twl);
    const foreign: KernelRoute = {
      ...pod,
      key: parsePrefix('10.5.0.0/26'),
      protocol: 4,
      scope: 0,
      nexthops: [{ gateway: '10.9.0.9', oif: 2 }],
    };
    k.inject(pod);
    k.inject(foreign);
    r.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    r.setDesired('bgp', [{ dst: '10.5.0.0/26', kind: 'via', via: ['10.9.0.2'] }]);
    const s = await r.apply();
    expect(s.failed.map((f) => `${f.op} ${f.dst} ${f.code}`).sort()).toEqual([
      'add 10.1.0.5/32 EEXIST',
      'add 10.5.0.0/26 EEXIST',
    ]);
    // The apply it scheduled reads back: the pod's route is believed, the foreign one reported.
    const dumps = k.dumps;
    await settle(clock);
    expect(k.dumps).toBeGreaterThan(dumps);
    expect(r.status().installed).toBe(1);
    expect(r.status().conflicts).toEqual([{ dst: '10.5.0.0/26', protocol: 4, metric: 0, blocking: true }]);
    expect(warnings.filter((w) => /route apply failed/.test(w))).toEqual([]);
    expect(warnings.filter((w) => w.includes('10.5.0.0/26'))).toHaveLength(1);
    expect(errors).toEqual([]);
    expect(k.handlesOpened).toBe(1);
    r.close();
  });

  it('a failed add is retried once on a fresh handle after a read-back', async () => {
    const { k, make } = setup();
    const r = make();
    r.setDesired('blocks', blocks);
    k.failNext('add', 'ENOMEM');
    const s = await r.apply();
    expect(s.readBack).toBe(true);
    expect(k.handlesOpened).toBe(2);
    expect(k.route(parsePrefix('10.1.0.0/26'), 0)).toBeDefined();
    expect(k.route('fd00:1::/122', 1024)).toBeDefined();
  });

  it('a second failure is reported so the caller reschedules; the next apply reads back', async () => {
    const { k, make } = setup();
    const r = make();
    r.setDesired('blocks', blocks.slice(0, 1));
    k.failNext('add', 'ENOMEM', 2);
    await expect(r.apply()).rejects.toThrow(RouteApplyError);
    const dumps = k.dumps;
    const s = await r.apply();
    expect(s.readBack).toBe(true);
    expect(k.dumps).toBe(dumps + 1);
    expect(k.route(parsePrefix('10.1.0.0/26'), 0)).toBeDefined();
  });

  it('an interrupted dump (NLM_F_DUMP_INTR) is read again', async () => {
    const { k, make } = setup();
    const r = make();
    r.setDesired('blocks', blocks);
    k.interruptDumps(2);
    expect((await r.apply()).added).toBe(2);
    expect(k.handlesOpened).toBe(1);
  });

  it('a broken handle (acknowledgements lost) is replaced and the batch redone', async () => {
    const { k, make } = setup();
    const r = make();
    r.setDesired('blocks', blocks);
    k.breakHandle();
    expect((await r.apply()).added).toBe(2);
    expect(k.handlesOpened).toBe(2);
  });

  it('an interface vanishing under an add is not an error: the route waits', async () => {
    const { k, clock, make, errors } = setup();
    k.addLink('twl1');
    const r = make();
    r.setDesired('pods', pods(1));
    k.failNext('add', 'ENODEV');
    const s = await r.apply();
    expect(s.failed).toEqual([{ dst: '10.1.0.1/32', op: 'add', code: 'ENODEV' }]);
    r.start();
    await settle(clock, 90_000);
    expect(k.route(parsePrefix('10.1.0.1/32'), 0)).toBeDefined();
    expect(errors).toEqual([]);
    r.close();
  });

  it('applies it scheduled itself report failures and retry', async () => {
    const { k, clock, make, errors } = setup();
    const r = make();
    await r.apply();
    r.start();
    r.setDesired('blocks', blocks.slice(0, 1));
    k.failNext('add', 'ENOMEM', 2);
    r.markForReadBack();
    await settle(clock, 90_000);
    expect(errors).toHaveLength(1);
    await settle(clock, 1_000);
    expect(k.route(parsePrefix('10.1.0.0/26'), 0)).toBeDefined();
    r.close();
  });
});
