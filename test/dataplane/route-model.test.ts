/**
 * The route reconciler's pure core: normalisation, owners and their priorities, the diff
 * against a read-back (ours vs foreign), interfaces that are missing, down, renamed or new
 * (grace period), and how operation outcomes feed back. Time is a number passed in.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type KernelRoute,
  normaliseRoute,
  parseDst,
  RouteModel,
  RouteSpecError,
  RTPROT_TWILL,
  RtnType,
  RtScope,
} from '../../src/dataplane/route-model.js';
import { parsePrefix } from '../../src/net/addr.js';

const P = RTPROT_TWILL;

function kr(dst: string, over: Partial<KernelRoute> & { oif?: number; gw?: string[] } = {}): KernelRoute {
  const key = parsePrefix(dst);
  const family = typeof key === 'number' ? 4 : 6;
  const { oif, gw, ...rest } = over;
  let nexthops = over.nexthops ?? [];
  if (gw) nexthops = gw.map((g) => ({ gateway: g, oif: oif ?? 2 }));
  else if (oif !== undefined) nexthops = [{ gateway: undefined, oif }];
  return {
    key,
    family,
    table: 254,
    protocol: P,
    metric: family === 4 ? 0 : 1024,
    type: RtnType.Unicast,
    scope: gw ? RtScope.Universe : RtScope.Link,
    ...rest,
    nexthops,
  };
}

const links = [
  { index: 1, name: 'lo', up: true },
  { index: 2, name: 'eth0', up: true },
  { index: 3, name: 'twl1', up: true },
];

/** A model that has read back `routes` at time 0 with grace already over at `now`. */
function loaded(routes: KernelRoute[] = [], opts = {}) {
  const m = new RouteModel({ graceMs: 10_000, ...opts });
  m.loadKernel(routes, links, -20_000);
  return m;
}

const ops = (m: RouteModel, now = 0) =>
  m.plan(now).ops.map((o) => `${o.op} ${typeof o.route.key === 'number' ? dstOf(o.route.key) : o.route.key}`);
const dstOf = (k: number) =>
  `${[24, 16, 8, 0].map((s) => (Math.floor(k / 64) >>> s) & 255).join('.')}/${k - Math.floor(k / 64) * 64}`;

describe('route specs', () => {
  it('canonicalises prefixes and gateways, sorts and de-duplicates ECMP gateways', () => {
    const r = normaliseRoute({
      dst: 'FD00:0:0::/122',
      kind: 'via',
      via: ['fd09::3', 'FD09:0::2', 'fd09::3'],
    });
    expect(r).toMatchObject({ key: 'fd00::/122', family: 6, kind: 'via', via: ['fd09::2', 'fd09::3'] });
    expect(normaliseRoute({ dst: '10.0.0.0/26', kind: 'blackhole' }).key).toBe(parsePrefix('10.0.0.0/26'));
  });

  it("the one-pass IPv4 prefix parser agrees with net/addr's parsePrefix on any text", () => {
    const outcome = (f: () => unknown) => {
      try {
        return { ok: f() };
      } catch (err) {
        return { err: (err as Error).message };
      }
    };
    const v4ish = fc
      .array(fc.constantFrom(...'0123456789./:'.split(''), '00', '255', '256', '/32', '/33', '/0', '/08'), {
        maxLength: 20,
      })
      .map((parts) => parts.join(''));
    const valid = fc
      .tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }))
      .map(([a, len]) => {
        const masked = len === 0 ? 0 : a - (a % 2 ** (32 - len));
        return `${[24, 16, 8, 0].map((s) => Math.floor(masked / 2 ** s) % 256).join('.')}/${len}`;
      });
    fc.assert(
      fc.property(fc.oneof(v4ish, valid, fc.string()), (text) => {
        expect(outcome(() => parseDst(text))).toEqual(outcome(() => parsePrefix(text)));
      }),
      { numRuns: 3000 },
    );
    for (const t of [
      '0.0.0.0/0',
      '255.255.255.255/32',
      '10.0.0.0/8',
      '10.0.0.1/24',
      '1.2.3.4/',
      '01.2.3.4/8',
      '1.2.3.4/08',
    ])
      expect(outcome(() => parseDst(t))).toEqual(outcome(() => parsePrefix(t)));
  });

  it('a gateway given as IPv4 text is not accepted for an IPv6 route, even when seen before', () => {
    const intern = new Map<string, readonly string[]>();
    normaliseRoute({ dst: '10.0.0.0/24', kind: 'via', via: ['10.9.0.2'] }, intern);
    expect(() => normaliseRoute({ dst: 'fd00::/64', kind: 'via', via: ['10.9.0.2'] }, intern)).toThrow(
      /not an IPv6/,
    );
    const a = normaliseRoute({ dst: 'fd00::/64', kind: 'via', via: ['FD09::2'] }, intern);
    const b = normaliseRoute({ dst: 'fd01::/64', kind: 'via', via: ['fd09::2'] }, intern);
    expect(a.via).toBe(b.via);
    expect(a.via).toEqual(['fd09::2']);
  });

  it('rejects a bad spec naming the route and the field', () => {
    expect(() => normaliseRoute({ dst: '10.0.0.1/24', kind: 'blackhole' })).toThrow(
      /10\.0\.0\.1\/24.*host bits/,
    );
    expect(() => normaliseRoute({ dst: '10.0.0.0/24', kind: 'via', via: ['fd00::1'] })).toThrow(
      /gateway "fd00::1" is not an IPv4 address/,
    );
    expect(() => normaliseRoute({ dst: '10.0.0.0/24', kind: 'via', via: [] })).toThrow(RouteSpecError);
    expect(() => normaliseRoute({ dst: '10.0.0.0/24', kind: 'dev', dev: '' })).toThrow(/interface name/);
  });

  it('an owner listing one prefix twice with different routes changes nothing', () => {
    const m = loaded();
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    expect(() =>
      m.setDesired('pods', [
        { dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' },
        { dst: '10.1.0.5/32', kind: 'blackhole' },
      ]),
    ).toThrow(/twice/);
    expect(m.desiredRoute('10.1.0.5/32')?.kind).toBe('dev');
  });
});

describe('owners', () => {
  it('the higher priority wins a prefix; withdrawing it falls back to the next owner', () => {
    const m = loaded();
    m.setDesired('bgp', [{ dst: '10.1.0.5/32', kind: 'via', via: ['10.9.0.2'] }]);
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    expect(m.desiredRoute('10.1.0.5/32')?.kind).toBe('dev');
    m.setDesired('pods', []);
    expect(m.desiredRoute('10.1.0.5/32')?.kind).toBe('via');
    m.setDesired('bgp', []);
    expect(m.desiredRoute('10.1.0.5/32')).toBeUndefined();
  });

  it('equal priorities: the lower owner name wins, whatever the arrival order', () => {
    for (const order of [
      ['a', 'b'],
      ['b', 'a'],
    ]) {
      const m = loaded();
      for (const o of order)
        m.setDesired(o, [{ dst: '10.2.0.0/26', kind: 'via', via: [o === 'a' ? '10.9.0.1' : '10.9.0.2'] }]);
      expect(m.desiredRoute('10.2.0.0/26')?.via).toEqual(['10.9.0.1']);
    }
  });

  it('setDesired replaces the whole set: what is left out is withdrawn', () => {
    const m = loaded();
    m.setDesired('blocks', [
      { dst: '10.2.0.0/26', kind: 'blackhole' },
      { dst: '10.2.0.64/26', kind: 'blackhole' },
    ]);
    expect(ops(m)).toEqual(['add 10.2.0.0/26', 'add 10.2.0.64/26']);
    for (const op of m.plan(0).ops) m.confirm(op);
    m.setDesired('blocks', [{ dst: '10.2.0.64/26', kind: 'blackhole' }]);
    expect(m.desiredCount()).toBe(1);
  });
});

describe('diff against the kernel', () => {
  it('adopts what is already right: a restart plans no operation', () => {
    const m = loaded([
      kr('10.1.0.5/32', { oif: 3 }),
      kr('10.2.0.0/26', { type: RtnType.Blackhole, scope: 0 }),
      kr('10.3.0.0/26', { gw: ['10.9.0.3', '10.9.0.2'] }),
      kr('fd00::5/128', { oif: 3, scope: 0 }),
    ]);
    m.setDesired('pods', [
      { dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' },
      { dst: 'fd00::5/128', kind: 'dev', dev: 'twl1' },
    ]);
    m.setDesired('blocks', [{ dst: '10.2.0.0/26', kind: 'blackhole' }]);
    m.setDesired('bgp', [{ dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2', '10.9.0.3'] }]);
    expect(m.plan(0).ops).toEqual([]);
  });

  it('replaces ours when it differs, adds what is missing, deletes ours nobody wants', () => {
    const m = loaded([kr('10.3.0.0/26', { gw: ['10.9.0.2'] }), kr('10.4.0.0/26', { gw: ['10.9.0.2'] })]);
    m.setDesired('bgp', [
      { dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2', '10.9.0.3'] },
      { dst: '10.5.0.0/26', kind: 'via', via: ['10.9.0.2'] },
    ]);
    expect(ops(m).sort()).toEqual(['add 10.5.0.0/26', 'del 10.4.0.0/26', 'replace 10.3.0.0/26']);
  });

  it('never plans an operation on a foreign route and reports it', () => {
    const foreign = kr('10.3.0.0/26', { gw: ['10.9.0.9'], protocol: 4 /* static */ });
    const other = kr('10.6.0.0/26', { gw: ['10.9.0.9'], protocol: 12 /* bird */ });
    const m = loaded([foreign, other]);
    m.setDesired('bgp', [{ dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2'] }]);
    const plan = m.plan(0);
    expect(plan.ops).toEqual([]);
    expect(plan.conflicts).toEqual([{ dst: '10.3.0.0/26', protocol: 4, metric: 0, blocking: true }]);
    expect(m.conflicts()).toHaveLength(1);
  });

  it('a foreign route at another metric is reported and ours goes in beside it', () => {
    const m = loaded([kr('10.3.0.0/26', { gw: ['10.9.0.9'], protocol: 186, metric: 20 })]);
    m.setDesired('bgp', [{ dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2'] }]);
    const plan = m.plan(0);
    expect(plan.ops.map((o) => o.op)).toEqual(['add']);
    expect(plan.conflicts[0]).toMatchObject({ protocol: 186, metric: 20, blocking: false });
  });

  it('ours at a metric we no longer use is deleted', () => {
    const m = loaded([kr('10.3.0.0/26', { gw: ['10.9.0.2'], metric: 50 })]);
    expect(m.plan(0).ops.map((o) => [o.op, o.route.metric])).toEqual([['del', 50]]);
  });

  it('routes in other tables are not ours', () => {
    const m = loaded([kr('10.3.0.0/26', { gw: ['10.9.0.2'], table: 100 })]);
    expect(m.plan(0).ops).toEqual([]);
  });

  it('plans only what changed since the last plan', () => {
    const m = loaded();
    m.setDesired(
      'bgp',
      Array.from({ length: 1000 }, (_, i) => ({
        dst: `10.${i >> 8}.${i & 255}.0/24`,
        kind: 'via' as const,
        via: ['10.255.0.1'],
      })),
    );
    for (const op of m.plan(0).ops) m.confirm(op);
    m.setDesired(
      'bgp',
      Array.from({ length: 1000 }, (_, i) => ({
        dst: `10.${i >> 8}.${i & 255}.0/24`,
        kind: 'via' as const,
        via: [i === 7 ? '10.255.0.2' : '10.255.0.1'],
      })),
    );
    expect(ops(m)).toEqual(['replace 10.0.7.0/24']);
    expect(m.plan(0).ops).toEqual([]);
  });

  it('nothing is planned before the first read-back', () => {
    const m = new RouteModel();
    m.setDesired('blocks', [{ dst: '10.2.0.0/26', kind: 'blackhole' }]);
    expect(m.plan(0).ops).toEqual([]);
    m.loadKernel([], links, 0);
    expect(m.plan(0).ops).toHaveLength(1);
  });
});

describe('interfaces', () => {
  it('a route waits for its interface and goes out when the link appears', () => {
    const m = loaded();
    m.setDesired('pods', [{ dst: '10.1.0.9/32', kind: 'dev', dev: 'twl9' }]);
    const p = m.plan(0);
    expect(p.ops).toEqual([]);
    expect(p.waiting).toEqual([{ dst: '10.1.0.9/32', dev: 'twl9' }]);
    expect(m.waiting()).toHaveLength(1);
    m.linkUpdate({ index: 9, name: 'twl9', up: true }, 0);
    const p2 = m.plan(0);
    expect(p2.ops.map((o) => [o.op, o.route.nexthops[0]?.oif, o.route.scope])).toEqual([
      ['add', 9, RtScope.Link],
    ]);
    expect(m.waiting()).toEqual([]);
  });

  it('a link that goes down loses its routes (the kernel flushed them); up brings them back', () => {
    const m = loaded([kr('10.1.0.5/32', { oif: 3 })]);
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    expect(m.plan(0).ops).toEqual([]);
    m.linkUpdate({ index: 3, name: 'twl1', up: false }, 0);
    expect(m.believed(parsePrefix('10.1.0.5/32'))).toBeUndefined();
    expect(m.plan(0)).toMatchObject({ ops: [], waiting: [{ dev: 'twl1' }] });
    m.linkUpdate({ index: 3, name: 'twl1', up: true }, 0);
    expect(ops(m)).toEqual(['add 10.1.0.5/32']);
  });

  it('a deleted and re-created veth gets its routes back on the new ifindex', () => {
    const m = loaded([kr('10.1.0.5/32', { oif: 3 })]);
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    m.plan(0);
    m.linkGone(3);
    expect(m.plan(0).waiting).toHaveLength(1);
    m.linkUpdate({ index: 12, name: 'twl1', up: true }, 0);
    const p = m.plan(0);
    expect(p.ops.map((o) => [o.op, o.route.nexthops[0]!.oif])).toEqual([['add', 12]]);
  });

  it('a rename: the route wanted on the old name waits; ours on the renamed link goes', () => {
    const m = loaded([kr('10.1.0.5/32', { oif: 3 })]);
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    m.plan(0);
    m.linkUpdate({ index: 3, name: 'renamed', up: true }, 0);
    const p = m.plan(0);
    expect(p.ops.map((o) => o.op)).toEqual(['del']);
    expect(p.waiting).toEqual([{ dst: '10.1.0.5/32', dev: 'twl1' }]);
  });

  it('grace period: an unexpected route of ours on a new interface stays until the grace ends', () => {
    const m = loaded();
    m.linkUpdate({ index: 20, name: 'twl20', up: true }, 1_000);
    m.loadKernel(
      [kr('10.1.0.20/32', { oif: 20 })],
      [...links, { index: 20, name: 'twl20', up: true }],
      2_000,
    );
    const p = m.plan(5_000);
    expect(p.ops).toEqual([]);
    expect(p.deferred).toBe(1);
    expect(p.wakeAtMs).toBe(11_000);
    expect(m.plan(10_999).ops).toEqual([]);
    expect(ops(m, 11_000)).toEqual(['del 10.1.0.20/32']);
  });

  it('interfaces seen at start-up get the grace too: a restart removes nothing at once', () => {
    const m = new RouteModel({ graceMs: 10_000 });
    m.loadKernel([kr('10.1.0.5/32', { oif: 3 })], links, 0);
    expect(m.plan(0).ops).toEqual([]);
    expect(ops(m, 10_000)).toEqual(['del 10.1.0.5/32']);
  });

  it('expected owners: no route of ours is deleted until each has reported once', () => {
    const m = new RouteModel({ graceMs: 0, expectOwners: ['pods', 'bgp'] });
    m.loadKernel(
      [kr('10.3.0.0/26', { gw: ['10.9.0.2'] }), kr('10.4.0.0/26', { gw: ['10.9.0.2'] })],
      links,
      0,
    );
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    const p = m.plan(0);
    expect(p.ops.map((o) => o.op)).toEqual(['add']);
    expect(p.deferred).toBe(2);
    // The speaker has converged: it wants one of the two.
    m.setDesired('bgp', [{ dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2'] }]);
    expect(ops(m)).toEqual(['del 10.4.0.0/26']);
  });

  it('a route without an interface (blackhole) has no grace', () => {
    const m = new RouteModel({ graceMs: 10_000 });
    m.loadKernel([kr('10.2.0.0/26', { type: RtnType.Blackhole, scope: 0 })], links, 0);
    expect(ops(m)).toEqual(['del 10.2.0.0/26']);
  });
});

describe('outcomes', () => {
  it('a delete of something already gone counts as done', () => {
    const m = loaded([kr('10.4.0.0/26', { gw: ['10.9.0.2'] })]);
    const [op] = m.plan(0).ops;
    expect(m.failed(op!, 'ESRCH')).toBe('ok');
    expect(m.believedCount()).toBe(0);
    expect(m.needReadBack).toBe(false);
  });

  it('a missing interface means wait; anything else means read back; both retry the prefix', () => {
    const m = loaded();
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    const [op] = m.plan(0).ops;
    expect(m.failed(op!, 'ENODEV')).toBe('wait');
    expect(m.needReadBack).toBe(true);
    expect(m.pending).toBe(true);
    expect(m.failed(op!, 'EEXIST')).toBe('readback');
  });

  it("a route this process's CNI wiring wrote is adopted: no add, no EEXIST, no read-back", () => {
    // The agent's wiring wrote the pod's route before the block's change reached the reconciler.
    const m = loaded();
    const wired = kr('10.1.0.5/32', { oif: 3 });
    m.adopt(wired);
    expect(m.believed(parsePrefix('10.1.0.5/32'))).toBe(wired);
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    expect(ops(m)).toEqual([]);
    // Before the desired state comes, the new interface's grace keeps it (as after a read-back).
    const early = loaded();
    early.linkUpdate({ index: 4, name: 'twl2', up: true }, 0);
    early.adopt(kr('10.1.0.6/32', { oif: 4 }));
    expect(ops(early, 1)).toEqual([]);
    expect(ops(early, 20_000)).toEqual(['del 10.1.0.6/32']);
  });

  it('an add met by EEXIST after the same route was adopted is done; otherwise read back', () => {
    // The reconciler's add was on its way when the wiring's route landed and was adopted.
    const m = loaded();
    m.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    const [op] = m.plan(0).ops;
    expect(op!.op).toBe('add');
    m.adopt(kr('10.1.0.5/32', { oif: 3 }));
    expect(m.failed(op!, 'EEXIST')).toBe('ok');
    expect(m.needReadBack).toBe(false);
    // Something else in the way (another interface): read back as before.
    const other = loaded();
    other.setDesired('pods', [{ dst: '10.1.0.5/32', kind: 'dev', dev: 'twl1' }]);
    const [op2] = other.plan(0).ops;
    other.adopt(kr('10.1.0.5/32', { oif: 2 }));
    expect(other.failed(op2!, 'EEXIST')).toBe('readback');
  });

  it('adopts only routes of its own protocol, table and metric, and only once it has read back', () => {
    const m = loaded();
    m.adopt(kr('10.1.0.7/32', { oif: 3, protocol: 4 }));
    m.adopt(kr('10.1.0.8/32', { oif: 3, metric: 100 }));
    m.adopt(kr('10.1.0.9/32', { oif: 3, table: 100 }));
    expect(m.believedCount()).toBe(0);
    const fresh = new RouteModel({ graceMs: 10_000 });
    fresh.adopt(kr('10.1.0.5/32', { oif: 3 }));
    expect(fresh.believedCount()).toBe(0);
  });

  it('confirmed operations become the believed state', () => {
    const m = loaded();
    m.setDesired('bgp', [{ dst: 'fd00:2::/122', kind: 'via', via: ['fd09::2', 'fd09::3'] }]);
    const [op] = m.plan(0).ops;
    expect(op!.route).toMatchObject({
      family: 6,
      metric: 1024,
      protocol: P,
      nexthops: [{ gateway: 'fd09::2' }, { gateway: 'fd09::3' }],
    });
    m.confirm(op!);
    expect(m.believed('fd00:2::/122')).toBe(op!.route);
    expect(m.plan(0).ops).toEqual([]);
  });
});
