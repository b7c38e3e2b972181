/**
 * The plugin against the real kernel: a "node" namespace (the plugin runs in it, under
 * `ip netns exec`, so its host side is the node namespace) and one namespace per pod, the agent
 * endpoint in this process with the real Allocator on the in-memory datastore. Every result and
 * error the plugin prints is checked against the spec's formats (spec-format.ts).
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostVethName, podMac } from '../../src/cni/names.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh } from '../helpers/netns.js';
import { type Agent, k8sArgs, PLUGIN, type PluginRun, ping, plugin, startAgent } from './helpers.js';
import { errorProblems, resultProblems } from './spec-format.js';

function ok(r: PluginRun, version: string): Record<string, unknown> {
  if (r.code !== 0) throw new Error(`plugin failed (${r.code}): ${r.stdout} ${r.stderr}`);
  expect(resultProblems(r.json, version)).toEqual([]);
  return r.json as Record<string, unknown>;
}

function failed(r: PluginRun): { code: number; msg: string; details?: string } {
  expect(r.code).not.toBe(0);
  expect(errorProblems(r.json)).toEqual([]);
  return r.json as { code: number; msg: string; details?: string };
}

describeSystem('CNI plugin on the real kernel', { root: true, tools: ['ip', 'nsenter', 'python3'] }, () => {
  const lab = new Lab();
  let agent: Agent;
  let node: string;
  const conf = (extra: Record<string, unknown> = {}) => ({
    cniVersion: '1.1.0',
    name: 'k8s-pod-network',
    type: 'twill',
    mtu: 1400,
    agentSocket: agent.socket,
    ...extra,
  });

  beforeAll(async () => {
    if (!existsSync(PLUGIN))
      throw new Error('dist/ is not built: run `npm run build` (npm test does it in pretest)');
    agent = await startAgent();
    node = lab.ns('node');
    sh('ip', ['-n', node, 'addr', 'add', '192.168.77.1/32', 'dev', 'lo']);
    sh('ip', ['-n', node, 'addr', 'add', 'fd00:77:1::1/128', 'dev', 'lo']);
    // proxy_arp answers for 169.254.1.1 only when the node routes it out of another interface:
    // a node has a default route, so this one gets an uplink and one too.
    const outside = lab.ns('up');
    lab.link(node, '192.168.100.1/24', outside, '192.168.100.2/24');
    sh('ip', ['-n', node, 'route', 'add', 'default', 'via', '192.168.100.2']);
    lab.exec(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  });
  afterAll(async () => {
    await lab.cleanup();
    await agent?.stop();
  });

  const pods = ['web', 'db', 'cache'].map((name, i) => ({ name, id: `c0ffee${i}`, ns: '' }));
  const results = new Map<string, Record<string, unknown>>();
  const addressOf = (pod: string) =>
    ((results.get(pod)!.ips as { address: string }[])[0]!.address as string).split('/')[0]!;

  it('ADD for three pods creates veths, addresses and routes', async () => {
    for (const p of pods) {
      p.ns = lab.ns(p.name);
      const r = await plugin(node, {
        command: 'ADD',
        containerID: p.id,
        netns: `/run/netns/${p.ns}`,
        ifname: 'eth0',
        args: k8sArgs('default', p.name),
        conf: conf(),
      });
      const res = ok(r, '1.1.0');
      results.set(p.name, res);
      const host = hostVethName('default', p.name);
      expect(res.interfaces).toEqual([
        { name: host, mac: 'ee:ee:ee:ee:ee:ee', mtu: 1400 },
        { name: 'eth0', mac: podMac(p.id, 'eth0'), mtu: 1400, sandbox: `/run/netns/${p.ns}` },
      ]);
      expect(res.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
      const addr = addressOf(p.name);
      expect(addr).toMatch(/^10\.77\.0\.\d+$/);
      // Host side: veth up, no address, proxy_arp, the /32 route and the permanent neighbour.
      const link = JSON.parse(sh('ip', ['-n', node, '-j', '-d', 'addr', 'show', 'dev', host]))[0];
      expect(link.flags).toContain('UP');
      expect(link.mtu).toBe(1400);
      expect(link.addr_info.filter((a: { family: string }) => a.family === 'inet')).toEqual([]);
      expect(link.ifalias).toBe(`twill:${p.id}`);
      expect(lab.exec(node, 'cat', [`/proc/sys/net/ipv4/conf/${host}/proxy_arp`]).trim()).toBe('1');
      expect(sh('ip', ['-n', node, 'route', 'show', `${addr}/32`])).toMatch(
        new RegExp(`^${addr.replaceAll('.', '\\.')} dev ${host} proto 84 scope link`),
      );
      expect(sh('ip', ['-n', node, 'neigh', 'show', addr, 'dev', host])).toContain(
        `lladdr ${podMac(p.id, 'eth0')} PERMANENT proto 84`,
      );
      // Pod side.
      const eth0 = JSON.parse(sh('ip', ['-n', p.ns, '-j', 'addr', 'show', 'dev', 'eth0']))[0];
      expect(
        eth0.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`),
      ).toContain(`${addr}/32`);
      const routes = sh('ip', ['-n', p.ns, 'route', 'show']);
      expect(routes).toContain('default via 169.254.1.1 dev eth0');
      expect(routes).toContain('169.254.1.1 dev eth0 scope link');
    }
    expect(new Set(pods.map((p) => addressOf(p.name))).size).toBe(3);
  });

  it('the pods ping each other and the node', () => {
    for (const p of pods) {
      for (const q of pods) if (q !== p) ping(p.ns, addressOf(q.name));
      ping(p.ns, '192.168.77.1');
    }
  });

  it('ADD twice gives the same result and changes nothing', async () => {
    const p = pods[0]!;
    const before = sh('ip', ['-n', node, '-d', 'link', 'show', hostVethName('default', p.name)]);
    const r = await plugin(node, {
      command: 'ADD',
      containerID: p.id,
      netns: `/run/netns/${p.ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', p.name),
      conf: conf(),
    });
    expect(ok(r, '1.1.0')).toEqual(results.get(p.name));
    expect(sh('ip', ['-n', node, '-d', 'link', 'show', hostVethName('default', p.name)])).toBe(before);
    ping(p.ns, addressOf(pods[1]!.name));
  });

  it('CHECK passes, then reports a route deleted behind its back', async () => {
    const p = pods[1]!;
    const call = {
      command: 'CHECK',
      containerID: p.id,
      netns: `/run/netns/${p.ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', p.name),
      conf: conf({ prevResult: results.get(p.name) }),
    };
    const good = await plugin(node, call);
    expect([good.code, good.stdout]).toEqual([0, '']);

    sh('ip', ['-n', p.ns, 'route', 'del', 'default']);
    const e1 = failed(await plugin(node, call));
    expect(e1.code).toBe(102);
    expect(e1.details).toContain('pod: default route via 169.254.1.1 dev eth0 is missing');
    sh('ip', ['-n', p.ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);

    const addr = addressOf(p.name);
    sh('ip', ['-n', node, 'route', 'del', `${addr}/32`]);
    const e2 = failed(await plugin(node, call));
    expect(e2.code).toBe(102);
    expect(e2.details).toContain(`host: route ${addr}/32 dev ${hostVethName('default', p.name)} is missing`);
    sh('ip', [
      '-n',
      node,
      'route',
      'add',
      `${addr}/32`,
      'dev',
      hostVethName('default', p.name),
      'scope',
      'link',
      'proto',
      '84',
    ]);
    expect((await plugin(node, call)).code).toBe(0);
  });

  it('DEL removes everything, and DEL twice is fine', async () => {
    const p = pods[2]!;
    const addr = addressOf(p.name);
    const host = hostVethName('default', p.name);
    const call = {
      command: 'DEL',
      containerID: p.id,
      netns: `/run/netns/${p.ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', p.name),
      conf: conf({ prevResult: results.get(p.name) }),
    };
    const r = await plugin(node, call);
    expect([r.code, r.stdout, r.stderr]).toEqual([0, '', '']);
    expect(sh('ip', ['-n', node, 'link', 'show', host], { allowFail: true })).toBe('');
    expect(sh('ip', ['-n', node, 'route', 'show', `${addr}/32`])).toBe('');
    expect(sh('ip', ['-n', node, 'neigh', 'show', addr])).toBe('');
    expect(sh('ip', ['-n', p.ns, 'link', 'show', 'eth0'], { allowFail: true })).toBe('');
    expect(await agent.store.get({ kind: 'IPAMHandle', name: `k8s-pod-network.${p.id}` })).toBeUndefined();
    const again = await plugin(node, call);
    expect([again.code, again.stdout]).toEqual([0, '']);
  });

  it('DEL after the netns is gone releases the address', async () => {
    const p = pods[0]!;
    const host = hostVethName('default', p.name);
    sh('ip', ['netns', 'del', p.ns]);
    const r = await plugin(node, {
      command: 'DEL',
      containerID: p.id,
      netns: `/run/netns/${p.ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', p.name),
      conf: conf(),
    });
    expect([r.code, r.stdout]).toEqual([0, '']);
    expect(sh('ip', ['-n', node, 'link', 'show', host], { allowFail: true })).toBe('');
    expect(await agent.store.get({ kind: 'IPAMHandle', name: `k8s-pod-network.${p.id}` })).toBeUndefined();
  });

  it('agent down: ADD fails with code 11 and says so; STATUS says 50', async () => {
    const ns = lab.ns('late');
    const call = {
      command: 'ADD',
      containerID: 'late1',
      netns: `/run/netns/${ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', 'late'),
      conf: conf({ agentSocket: `${agent.dir}/nothing-here.sock` }),
    };
    const e = failed(await plugin(node, call));
    expect(e.code).toBe(11);
    expect(e.msg).toBe('the Twill agent is not running on this node');
    expect(e.details).toContain('nothing-here.sock');
    const s = failed(await plugin(node, { command: 'STATUS', conf: call.conf }));
    expect(s.code).toBe(50);

    agent.handler.setReady(false, 'datastore not in sync yet');
    try {
      const nr = failed(await plugin(node, { ...call, conf: conf() }));
      expect(nr).toMatchObject({ code: 11, msg: 'the Twill agent is not ready' });
      expect(nr.details).toContain('datastore not in sync yet');
      const st = failed(await plugin(node, { command: 'STATUS', conf: conf() }));
      expect(st.code).toBe(50);
    } finally {
      agent.handler.setReady(true);
    }
    const st = await plugin(node, { command: 'STATUS', conf: conf() });
    expect([st.code, st.stdout]).toEqual([0, '']);
    // Nothing was made in the pod or on the host.
    expect(sh('ip', ['-n', ns, 'link', 'show', 'eth0'], { allowFail: true })).toBe('');
  });

  it('dual stack: a /128 each, IPv6 default route via the host veth, ping6 between pods and to the node', async () => {
    const six = ['v6a', 'v6b'].map((name) => ({ name, ns: lab.ns(name), addr4: '', addr6: '' }));
    for (const p of six) {
      const r = await plugin(node, {
        command: 'ADD',
        containerID: `ds-${p.name}`,
        netns: `/run/netns/${p.ns}`,
        ifname: 'eth0',
        args: k8sArgs('dual', p.name),
        conf: conf({ ipv6: true, cniVersion: '0.4.0' }),
      });
      const res = ok(r, '0.4.0') as {
        ips: { version: string; address: string; gateway: string }[];
        routes: unknown;
      };
      expect(res.ips.map((i) => [i.version, i.gateway])).toEqual([
        ['4', '169.254.1.1'],
        ['6', 'fe80::ecee:eeff:feee:eeee'],
      ]);
      expect(res.routes).toEqual([
        { dst: '0.0.0.0/0', gw: '169.254.1.1' },
        { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' },
      ]);
      p.addr4 = res.ips[0]!.address.split('/')[0]!;
      p.addr6 = res.ips[1]!.address.split('/')[0]!;
      expect(res.ips[1]!.address).toMatch(/^fd00:77::[0-9a-f]*\/128$/);
      expect(sh('ip', ['-n', node, '-6', 'route', 'show', `${p.addr6}/128`])).toContain(
        `dev ${hostVethName('dual', p.name)} proto 84`,
      );
    }
    ping(six[0]!.ns, six[1]!.addr6);
    ping(six[1]!.ns, six[0]!.addr6);
    ping(six[0]!.ns, 'fd00:77:1::1');
    ping(six[0]!.ns, six[1]!.addr4);
  });

  it('a netns given as /proc/PID/ns/net (no name for ip netns): the pod side through nsenter', async () => {
    const ns = lab.ns('bypid');
    const holder = lab.spawn(ns, 'sleep', ['600']);
    await new Promise((r) => setTimeout(r, 200));
    const netns = `/proc/${holder.pid}/ns/net`;
    const call = {
      command: 'ADD',
      containerID: 'bypid1',
      netns,
      ifname: 'eth0',
      args: k8sArgs('default', 'bypid'),
      conf: conf(),
    };
    const res = ok(await plugin(node, call), '1.1.0') as { ips: { address: string }[] };
    const addr = res.ips[0]!.address.split('/')[0]!;
    expect(sh('ip', ['-n', ns, 'route', 'show'])).toContain('default via 169.254.1.1 dev eth0');
    ping(ns, '192.168.77.1');
    ping(ns, addressOf(pods[1]!.name));
    const del = await plugin(node, { ...call, command: 'DEL' });
    expect([del.code, del.stdout]).toEqual([0, '']);
    expect(sh('ip', ['-n', node, 'route', 'show', `${addr}/32`])).toBe('');
  });

  it('an eth0 already in the pod that is not ours: ADD fails and leaves that interface and the node as they were', async () => {
    const ns = lab.ns('taken');
    sh('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'bridge']);
    sh('ip', ['-n', ns, 'addr', 'add', '192.0.2.9/24', 'dev', 'eth0']);
    const before = sh('ip', ['-n', ns, '-o', 'addr', 'show', 'dev', 'eth0']);
    const call = {
      command: 'ADD',
      containerID: 'taken1',
      netns: `/run/netns/${ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', 'taken'),
      conf: conf(),
    };
    const err = failed(await plugin(node, call));
    expect(err.code).toBe(101);
    expect(err.details).toContain('File exists');
    // The pod's script never ran: no address, route or state change on someone else's eth0.
    expect(sh('ip', ['-n', ns, '-o', 'addr', 'show', 'dev', 'eth0'])).toBe(before);
    expect(sh('ip', ['-n', ns, 'route', 'show'])).not.toContain('169.254.1.1');
    expect(sh('ip', ['-n', node, 'link', 'show'])).not.toContain(hostVethName('default', 'taken'));
    // The runtime's DEL after a failed ADD gives the address back.
    const del = await plugin(node, { ...call, command: 'DEL' });
    expect([del.code, del.stdout]).toEqual([0, '']);
  });

  it('ten ADDs at once, as a runtime starting pods side by side: ten pods, ten addresses', async () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ name: `par${i}`, ns: lab.ns(`par${i}`) }));
    const runs = await Promise.all(
      many.map((p) =>
        plugin(node, {
          command: 'ADD',
          containerID: `par-${p.name}`,
          netns: `/run/netns/${p.ns}`,
          ifname: 'eth0',
          args: k8sArgs('parallel', p.name),
          conf: conf(),
        }),
      ),
    );
    const addrs = runs.map((r) => (ok(r, '1.1.0').ips as { address: string }[])[0]!.address);
    expect(new Set(addrs).size).toBe(10);
    ping(many[0]!.ns, addrs[9]!.split('/')[0]!);
    const dels = await Promise.all(
      many.map((p) =>
        plugin(node, {
          command: 'DEL',
          containerID: `par-${p.name}`,
          netns: `/run/netns/${p.ns}`,
          ifname: 'eth0',
          args: k8sArgs('parallel', p.name),
          conf: conf(),
        }),
      ),
    );
    expect(dels.map((r) => r.code)).toEqual(Array(10).fill(0));
  });

  it('a 0.3.1 configuration gets a 0.3.1 result (ips carry their version)', async () => {
    const ns = lab.ns('old');
    const call = {
      command: 'ADD',
      containerID: 'old1',
      netns: `/run/netns/${ns}`,
      ifname: 'eth0',
      args: k8sArgs('default', 'old'),
      conf: conf({ cniVersion: '0.3.1' }),
    };
    const res = ok(await plugin(node, call), '0.3.1') as { ips: { version: string }[]; interfaces: object[] };
    expect(res.ips[0]!.version).toBe('4');
    expect(res.interfaces[1]).not.toHaveProperty('mtu');
    const check = failed(await plugin(node, { ...call, command: 'CHECK' }));
    expect(check).toMatchObject({ cniVersion: '0.3.1', code: 1 });
    const del = await plugin(node, { ...call, command: 'DEL' });
    expect([del.code, del.stdout]).toEqual([0, '']);
  });

  it('GC releases the addresses of attachments that are no longer valid', async () => {
    const p = pods[1]!;
    const extra = lab.ns('gone');
    const r = await plugin(node, {
      command: 'ADD',
      containerID: 'gone1',
      netns: `/run/netns/${extra}`,
      ifname: 'eth0',
      args: k8sArgs('default', 'gone'),
      conf: conf(),
    });
    ok(r, '1.1.0');
    const gc = await plugin(node, {
      command: 'GC',
      conf: conf({ 'cni.dev/valid-attachments': [{ containerID: p.id, ifname: 'eth0' }] }),
    });
    expect([gc.code, gc.stdout]).toEqual([0, '']);
    expect(await agent.store.get({ kind: 'IPAMHandle', name: 'k8s-pod-network.gone1' })).toBeUndefined();
    expect(await agent.store.get({ kind: 'IPAMHandle', name: `k8s-pod-network.${p.id}` })).toBeDefined();
  });
});

describe('spec-format checkers', () => {
  it('catch a 1.0.0 result that carries the 0.4.0 ip version', () => {
    expect(
      resultProblems({ cniVersion: '1.0.0', ips: [{ version: '4', address: '10.0.0.1/32' }] }, '1.0.0'),
    ).toEqual(['ips[0]: unexpected key version']);
  });
});
