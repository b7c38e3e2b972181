/**
 * The route reconciler on the real kernel, in a throwaway namespace (the scenarios of
 * route-reconciler.test.ts, STYLE.md §14). The reconciler runs in route-driver.mjs under
 * `ip netns exec`; `ip monitor route` watches the kernel's own notifications, so "a restart
 * deletes and re-adds nothing" is checked against every RTM_NEWROUTE / RTM_DELROUTE the kernel
 * sent, not against the reconciler's word.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { ipRoutes, RouteDriver, RouteMonitor } from './helpers-routes.js';

const desired = {
  pods: [
    { dst: '10.1.0.1/32', kind: 'dev', dev: 'twl1' },
    { dst: '10.1.0.2/32', kind: 'dev', dev: 'twl2' },
    { dst: 'fd00:1::1/128', kind: 'dev', dev: 'twl1' },
  ],
  blocks: [
    { dst: '10.1.0.0/26', kind: 'blackhole' },
    { dst: 'fd00:1::/122', kind: 'blackhole' },
  ],
  bgp: [
    { dst: '10.3.0.0/26', kind: 'via', via: ['10.9.0.2', '10.9.0.3'] },
    { dst: '10.4.0.0/26', kind: 'via', via: ['10.9.0.2'] },
    { dst: 'fd00:3::/122', kind: 'via', via: ['fd09::3', 'fd09::2'] },
    // A foreign static route holds this one: reported, never overwritten.
    { dst: '10.5.0.0/26', kind: 'via', via: ['10.9.0.2'] },
  ],
};

interface Stats {
  readBack: boolean;
  added: number;
  replaced: number;
  deleted: number;
  waiting: number;
  conflicts: { dst: string; protocol: number; blocking: boolean }[];
}

describeSystem('route reconciler on the kernel', { root: true, tools: ['ip'] }, () => {
  const lab = new Lab();
  let ns = '';

  const ip = (...args: string[]) => sh('ip', ['-n', ns, ...args]);
  const veth = (name: string) => {
    ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `p-${name}`);
    ip('link', 'set', name, 'up');
    ip('link', 'set', `p-${name}`, 'up');
  };

  // Kernels before 6.2 refuse to rename a link that is up (EBUSY): take it down around it.
  const rename = (from: string, to: string) => {
    sh('ip', ['-n', ns, 'link', 'set', from, 'name', to], { allowFail: true });
    if (ipLinks().includes(from)) {
      ip('link', 'set', from, 'down');
      ip('link', 'set', from, 'name', to);
      ip('link', 'set', to, 'up');
    }
  };
  const ipLinks = () => (JSON.parse(ip('-j', 'link', 'show')) as { ifname: string }[]).map((l) => l.ifname);

  async function driver(opts: Record<string, unknown> = {}): Promise<RouteDriver> {
    const d = new RouteDriver(lab, ns);
    await d.start();
    await d.call('start', opts);
    for (const [owner, routes] of Object.entries(desired)) await d.call('setDesired', { owner, routes });
    return d;
  }

  beforeAll(() => {
    ns = lab.ns('routes');
    // An uplink with the gateways on-link, and two pod veths.
    ip('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1');
    ip('addr', 'add', '10.9.0.1/24', 'dev', 'up0');
    ip('addr', 'add', 'fd09::1/64', 'dev', 'up0', 'nodad');
    ip('link', 'set', 'up0', 'up');
    ip('link', 'set', 'up1', 'up');
    veth('twl1');
    veth('twl2');
    // Foreign routes: one in the way of ours, two nobody else cares about.
    ip('route', 'add', '10.5.0.0/26', 'via', '10.9.0.9', 'proto', 'static');
    ip('route', 'add', '10.8.0.0/24', 'via', '10.9.0.9', 'proto', 'bird');
    ip('-6', 'route', 'add', 'fd00:8::/64', 'via', 'fd09::9', 'proto', 'static');
  });

  afterAll(async () => {
    await lab.cleanup();
  });

  const foreign = () => ({
    v4: ipRoutes(ns, 4).filter((r) => r.protocol !== '84' && r.protocol !== 'kernel'),
    v6: ipRoutes(ns, 6).filter((r) => r.protocol !== '84' && r.protocol !== 'kernel'),
  });
  let foreignBefore: ReturnType<typeof foreign>;

  it('installs pod, blackhole, ECMP and IPv6 routes with protocol 84; foreign routes stay', async () => {
    foreignBefore = foreign();
    const d = await driver();
    const s = await d.call<Stats>('apply');
    expect(s).toMatchObject({ readBack: true, added: 8, replaced: 0, deleted: 0, waiting: 0 });
    expect(s.conflicts).toEqual([{ dst: '10.5.0.0/26', protocol: 4, metric: 0, blocking: true }]);
    await d.stop();

    const v4 = ipRoutes(ns, 4, 'proto', '84');
    const v6 = ipRoutes(ns, 6, 'proto', '84');
    expect(v4.find((r) => r.dst === '10.1.0.1')).toMatchObject({ dev: 'twl1', scope: 'link' });
    expect(v4.find((r) => r.dst === '10.1.0.0/26')).toMatchObject({ type: 'blackhole' });
    expect(v4.find((r) => r.dst === '10.3.0.0/26')?.nexthops?.map((n) => n.gateway)).toEqual([
      '10.9.0.2',
      '10.9.0.3',
    ]);
    expect(v4.find((r) => r.dst === '10.4.0.0/26')).toMatchObject({ gateway: '10.9.0.2', dev: 'up0' });
    expect(v4.find((r) => r.dst === '10.5.0.0/26')).toBeUndefined();
    expect(v6.find((r) => r.dst === 'fd00:1::1')).toMatchObject({ dev: 'twl1', metric: 1024 });
    expect(v6.find((r) => r.dst === 'fd00:1::/122')).toMatchObject({ type: 'blackhole' });
    expect(v6.find((r) => r.dst === 'fd00:3::/122')?.nexthops?.map((n) => n.gateway)).toEqual([
      'fd09::2',
      'fd09::3',
    ]);
    expect(foreign()).toEqual(foreignBefore);
  });

  it('a restart adopts the routes: the kernel announces no RTM_DELROUTE and no RTM_NEWROUTE of ours', async () => {
    const before = JSON.stringify([ipRoutes(ns, 4), ipRoutes(ns, 6)]);
    const mon = new RouteMonitor(lab, ns);
    await mon.start();
    const d = await driver({ graceMs: 10_000 });
    const s = await d.call<Stats>('apply');
    expect(s).toMatchObject({ readBack: true, added: 0, replaced: 0, deleted: 0 });
    // A second read-back with nothing changed is quiet too.
    await d.call('markForReadBack');
    expect(await d.call<Stats>('apply')).toMatchObject({ readBack: true, added: 0, replaced: 0, deleted: 0 });
    await d.stop();
    // Give the monitor time to print anything the kernel announced.
    sh('ip', ['-n', ns, 'route', 'add', 'blackhole', '192.0.2.253/32']);
    await waitFor('monitor catches up', () => mon.all.some((l) => l.includes('192.0.2.253')));
    sh('ip', ['-n', ns, 'route', 'del', 'blackhole', '192.0.2.253/32']);
    expect(mon.ours()).toEqual([]);
    expect(mon.lines.filter((l) => l.startsWith('Deleted'))).toEqual([]);
    expect(JSON.stringify([ipRoutes(ns, 4), ipRoutes(ns, 6)])).toBe(before);
    expect(foreign()).toEqual(foreignBefore);

    // The monitor does see our writes: one block added, then withdrawn.
    const d2 = await driver();
    const more = [...desired.blocks, { dst: '10.1.0.64/26', kind: 'blackhole' }];
    await d2.call('setDesired', { owner: 'blocks', routes: more });
    expect(await d2.call<Stats>('apply')).toMatchObject({ added: 1, deleted: 0 });
    await d2.call('setDesired', { owner: 'blocks', routes: desired.blocks });
    expect(await d2.call<Stats>('apply')).toMatchObject({ added: 0, deleted: 1 });
    await d2.stop();
    await waitFor('monitor saw our add and delete', () => {
      const lines = mon.ours().filter((l) => l.includes('10.1.0.64/26'));
      return lines.length === 2 && lines[1]!.startsWith('Deleted');
    });
  });

  it('a veth deleted and re-created gets its routes back (link notifications)', async () => {
    const d = await driver({ timers: true });
    await d.call('apply');
    ip('link', 'del', 'twl2');
    await waitFor('route waits for twl2', async () => {
      const st = await d.call<{ waiting: { dst: string; dev: string }[] }>('status');
      return st.waiting.some((w) => w.dev === 'twl2');
    });
    veth('twl2');
    const back = await waitFor('10.1.0.2 back on the new twl2', () =>
      ipRoutes(ns, 4, 'proto', '84').find((r) => r.dst === '10.1.0.2' && r.dev === 'twl2'),
    );
    expect(back).toMatchObject({ scope: 'link' });
    // Down and up again: the kernel flushes the routes on down; up brings them back.
    ip('link', 'set', 'twl1', 'down');
    ip('link', 'set', 'twl1', 'up');
    await waitFor('twl1 routes back after down/up', () => {
      const v4 = ipRoutes(ns, 4, 'proto', '84').some((r) => r.dst === '10.1.0.1' && r.dev === 'twl1');
      const v6 = ipRoutes(ns, 6, 'proto', '84').some((r) => r.dst === 'fd00:1::1' && r.dev === 'twl1');
      return v4 && v6;
    });
    expect(d.errors).toEqual([]);
    await d.stop();
  });

  it('a rename: the route leaves the renamed link and waits for the name, then follows it', async () => {
    const d = await driver({ timers: true });
    await d.call('apply');
    rename('twl2', 'old2');
    await waitFor('route gone from the renamed link', () =>
      ipRoutes(ns, 4, 'proto', '84').every((r) => r.dst !== '10.1.0.2'),
    );
    rename('old2', 'twl2');
    await waitFor('route back on twl2', () =>
      ipRoutes(ns, 4, 'proto', '84').some((r) => r.dst === '10.1.0.2' && r.dev === 'twl2'),
    );
    expect(d.errors).toEqual([]);
    await d.stop();
  });

  it('a brand-new veth: a route of ours nobody wants stays for the grace period, then goes', async () => {
    const d = await driver({ timers: true, graceMs: 1500 });
    await d.call('apply');
    // The CNI plugin programs the pod's route before the agent has heard of the pod.
    veth('twl5');
    ip('route', 'add', '10.1.0.55/32', 'dev', 'twl5', 'proto', '84');
    const t0 = Date.now();
    await d.call('markForReadBack');
    expect(await d.call<Stats & { deferred: number }>('apply')).toMatchObject({ deleted: 0, deferred: 1 });
    expect(ipRoutes(ns, 4, 'proto', '84').some((r) => r.dst === '10.1.0.55')).toBe(true);
    await waitFor('route removed after the grace period', () =>
      ipRoutes(ns, 4, 'proto', '84').every((r) => r.dst !== '10.1.0.55'),
    );
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(d.errors).toEqual([]);
    await d.stop();
    ip('link', 'del', 'twl5');
  });

  it('a route deleted from outside is restored by the next read-back', async () => {
    const d = await driver({ timers: true, readBackMs: 500 });
    await d.call('apply');
    ip('route', 'del', '10.3.0.0/26');
    ip('-6', 'route', 'del', 'fd00:1::/122');
    await waitFor('routes restored by read-back', () => {
      const v4 = ipRoutes(ns, 4, 'proto', '84').find((r) => r.dst === '10.3.0.0/26');
      const v6 = ipRoutes(ns, 6, 'proto', '84').find((r) => r.dst === 'fd00:1::/122');
      return v4?.nexthops?.length === 2 && v6?.type === 'blackhole';
    });
    expect(d.errors).toEqual([]);
    await d.stop();
    expect(foreign()).toEqual(foreignBefore);
  });

  it('a changed next-hop set is replaced in place: ECMP to one path and back, IPv4 and IPv6', async () => {
    const d = await driver();
    await d.call('apply');
    const bgp = (v4: string[], v6: string[]) => [
      { dst: '10.3.0.0/26', kind: 'via', via: v4 },
      { dst: '10.4.0.0/26', kind: 'via', via: ['10.9.0.2'] },
      { dst: 'fd00:3::/122', kind: 'via', via: v6 },
      { dst: '10.5.0.0/26', kind: 'via', via: ['10.9.0.2'] },
    ];
    const gateways = () => {
      const v4 = ipRoutes(ns, 4, 'proto', '84').find((r) => r.dst === '10.3.0.0/26');
      const v6 = ipRoutes(ns, 6, 'proto', '84').filter((r) => r.dst === 'fd00:3::/122');
      const gw = (r: (typeof v6)[number]) => r.nexthops?.map((n) => n.gateway) ?? [r.gateway];
      return { v4: v4 ? gw(v4) : [], v6: v6.flatMap(gw).sort() };
    };
    await d.call('setDesired', { owner: 'bgp', routes: bgp(['10.9.0.3'], ['fd09::3']) });
    expect(await d.call<Stats>('apply')).toMatchObject({ replaced: 2, added: 0, deleted: 0 });
    expect(gateways()).toEqual({ v4: ['10.9.0.3'], v6: ['fd09::3'] });
    await d.call('setDesired', {
      owner: 'bgp',
      routes: bgp(['10.9.0.4', '10.9.0.2'], ['fd09::2', 'fd09::4']),
    });
    expect(await d.call<Stats>('apply')).toMatchObject({ replaced: 2, added: 0, deleted: 0 });
    expect(gateways()).toEqual({ v4: ['10.9.0.2', '10.9.0.4'], v6: ['fd09::2', 'fd09::4'] });
    // And what the kernel now has is what a read-back finds right.
    await d.call('markForReadBack');
    expect(await d.call<Stats>('apply')).toMatchObject({ replaced: 0, added: 0, deleted: 0 });
    await d.call('setDesired', { owner: 'bgp', routes: desired.bgp });
    expect(await d.call<Stats>('apply')).toMatchObject({ replaced: 2 });
    await d.stop();
  });

  it('withdrawing an owner removes only our routes', async () => {
    const d = await driver();
    await d.call('setDesired', { owner: 'bgp', routes: [] });
    const s = await d.call<Stats>('apply');
    expect(s.deleted).toBe(3);
    await d.stop();
    const v4 = ipRoutes(ns, 4);
    expect(v4.find((r) => r.dst === '10.3.0.0/26')).toBeUndefined();
    expect(v4.find((r) => r.dst === '10.5.0.0/26')).toMatchObject({ protocol: 'static' });
    expect(foreign()).toEqual(foreignBefore);
  });

  it('a batch across several datagrams reports each failure at its own position', async () => {
    const d = new RouteDriver(lab, ns);
    await d.start();
    const op = (i: number, over: Record<string, unknown> = {}) => ({
      op: 'add',
      route: {
        dst: `10.200.${i >> 8}.${i & 255}/32`,
        family: 4,
        table: 254,
        protocol: 84,
        metric: 0,
        type: 6,
        scope: 0,
        nexthops: [],
        ...over,
      },
    });
    // 700 adds (three datagrams of 256): every 100th repeats the one before it (EEXIST), one
    // names an interface that does not exist (ENODEV), the last one fails too.
    const ops = Array.from({ length: 700 }, (_, i) => (i % 100 === 99 ? op(i - 1) : op(i)));
    ops[300] = op(300, { type: 1, scope: 253, nexthops: [{ oif: 99999 }] });
    ops.push(op(5));
    const { results, ours } = await d.call<{ results: (string | null)[]; ours: number }>('kernelWrite', {
      ops,
    });
    const failures = results.flatMap((r, i) => (r ? [[i, r]] : []));
    expect(failures).toEqual([
      [99, 'EEXIST'],
      [199, 'EEXIST'],
      [299, 'EEXIST'],
      [300, 'ENODEV'],
      [399, 'EEXIST'],
      [499, 'EEXIST'],
      [599, 'EEXIST'],
      [699, 'EEXIST'],
      [700, 'EEXIST'],
    ]);
    // Our dump counts as many routes of ours as `ip` shows; 700 - 8 of them are new.
    expect(ours).toBe(ipRoutes(ns, 4, 'proto', '84').length + ipRoutes(ns, 6, 'proto', '84').length);
    expect(ipRoutes(ns, 4, 'proto', '84').filter((r) => r.dst.startsWith('10.200.')).length).toBe(692);
    ip('route', 'flush', '10.200.0.0/16');
    await d.stop();
  });

  it('pod veth: a permanent neighbour entry and the host-side sysctls, inside the namespace only', async () => {
    const d = new RouteDriver(lab, ns);
    await d.start();
    const mac = 'ee:ee:ee:00:00:01';
    const n = await d.call('neighbours', {
      entries: [
        { dev: 'twl1', address: '10.1.0.1', lladdr: mac },
        { dev: 'twl1', address: 'fd00:1::1', lladdr: mac },
      ],
    });
    expect(n).toEqual({ written: 2, removed: 0, waiting: 0 });
    const neigh = JSON.parse(sh('ip', ['-n', ns, '-j', 'neigh', 'show', 'dev', 'twl1'])) as {
      dst: string;
      lladdr: string;
      state: string[];
    }[];
    expect(neigh.filter((e) => e.state.includes('PERMANENT')).map((e) => [e.dst, e.lladdr])).toEqual([
      ['10.1.0.1', mac],
      ['fd00:1::1', mac],
    ]);
    // Asked again with one of them: the other, ours, goes; an operator's entry stays.
    ip('neigh', 'add', '10.1.0.99', 'lladdr', 'aa:aa:aa:aa:aa:aa', 'dev', 'twl1', 'nud', 'permanent');
    const again = await d.call('neighbours', {
      entries: [{ dev: 'twl1', address: '10.1.0.1', lladdr: mac }],
    });
    expect(again).toEqual({ written: 0, removed: 1, waiting: 0 });
    const left = JSON.parse(
      sh('ip', ['-n', ns, '-j', 'neigh', 'show', 'dev', 'twl1', 'nud', 'permanent']),
    ) as {
      dst: string;
    }[];
    expect(left.map((e) => e.dst).sort()).toEqual(['10.1.0.1', '10.1.0.99']);
    const rpBefore = lab.exec(ns, 'cat', ['/proc/sys/net/ipv4/conf/twl1/rp_filter']).trim();
    const hostForward = sh('cat', ['/proc/sys/net/ipv4/ip_forward']).trim();
    await d.call('sysctls', { dev: 'twl1', ipv6: true });
    const read = (p: string) => lab.exec(ns, 'cat', [`/proc/sys/${p}`]).trim();
    expect(read('net/ipv4/conf/twl1/proxy_arp')).toBe('1');
    expect(read('net/ipv4/neigh/twl1/proxy_delay')).toBe('0');
    expect(read('net/ipv4/conf/twl1/forwarding')).toBe('1');
    expect(read('net/ipv6/conf/twl1/accept_ra')).toBe('0');
    expect(read('net/ipv6/conf/twl1/forwarding')).toBe('1');
    expect(read('net/ipv4/ip_forward')).toBe('1');
    expect(read('net/ipv4/conf/twl1/rp_filter')).toBe(rpBefore);
    expect(sh('cat', ['/proc/sys/net/ipv4/ip_forward']).trim()).toBe(hostForward);
    await d.stop();
  });
});
