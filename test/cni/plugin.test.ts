/**
 * The plugin's pure parts against the CNI spec: environment and CNI_ARGS parsing, configuration
 * checks with the spec's error codes, result and error objects in the format of each version
 * (0.3.1, 0.4.0, 1.0.0, 1.1.0; spec-format.ts), the names shared with the agent, the kernel
 * scripts, and what CHECK makes of the kernel's answers. No root, no processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { handleFor, hostVethName, hostVethNameForContainer, podMac } from '../../src/cni/names.js';
import { inNetns, invoke } from '../../src/cni/plugin.js';
import {
  CniCode,
  CniError,
  type CniResult,
  errorObject,
  formatResult,
  parseCniArgs,
  parseConfig,
  parseEnv,
  parseResult,
  SUPPORTED_VERSIONS,
} from '../../src/cni/spec.js';
import {
  addResult,
  expectedFrom,
  hostAddressBatch,
  hostBatch,
  hostIfnameFor,
  hostIfnameOf,
  hostLinkBatch,
  hostRouteProblems,
  hostSysctls,
  podBatch,
  podProblems,
  procRoute6Hex,
  procRouteHex,
  ROUTE_PROTOCOL,
  type Wiring,
} from '../../src/cni/wiring.js';
import { RTPROT_TWILL } from '../../src/dataplane/route-model.js';
import { vethSysctls } from '../../src/dataplane/sysctl.js';
import { errorProblems, resultProblems, versionProblems } from './spec-format.js';

const codeOf = (f: () => unknown): number => {
  try {
    f();
  } catch (e) {
    if (e instanceof CniError) return e.code;
    throw e;
  }
  throw new Error('did not throw');
};
const messageOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('did not throw');
};

const add = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'abc123',
  CNI_NETNS: '/var/run/netns/cni-1234',
  CNI_IFNAME: 'eth0',
  CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123',
  CNI_PATH: '/opt/cni/bin',
};

describe('environment (SPEC.md section 2, "Parameters")', () => {
  it('reads a kubelet-style ADD', () => {
    expect(parseEnv(add)).toEqual({
      command: 'ADD',
      containerID: 'abc123',
      netns: '/var/run/netns/cni-1234',
      ifname: 'eth0',
      args: {
        IgnoreUnknown: '1',
        K8S_POD_NAMESPACE: 'default',
        K8S_POD_NAME: 'web',
        K8S_POD_INFRA_CONTAINER_ID: 'abc123',
      },
      namespace: 'default',
      pod: 'web',
    });
  });

  it('names every missing or invalid variable, with code 4', () => {
    expect(codeOf(() => parseEnv({}))).toBe(CniCode.InvalidEnvironment);
    expect(messageOf(() => parseEnv({ CNI_COMMAND: 'ADD' }))).toBe(
      'CNI_CONTAINERID is not set; CNI_IFNAME is not set; CNI_NETNS is not set',
    );
    expect(messageOf(() => parseEnv({ ...add, CNI_CONTAINERID: '-x', CNI_IFNAME: 'a/b' }))).toMatch(
      /^CNI_CONTAINERID: "-x" is not .*; CNI_IFNAME: "a\/b" is not an interface name/,
    );
    expect(messageOf(() => parseEnv({ ...add, CNI_IFNAME: 'sixteen-chars-xx' }))).toContain('CNI_IFNAME');
    expect(messageOf(() => parseEnv({ ...add, CNI_NETNS: 'relative/path' }))).toContain('CNI_NETNS');
    expect(messageOf(() => parseEnv({ ...add, CNI_COMMAND: 'PING' }))).toContain('CNI_COMMAND');
  });

  it('DEL may come without CNI_NETNS; GC, STATUS and VERSION need no attachment', () => {
    const { CNI_NETNS: _n, ...del } = { ...add, CNI_COMMAND: 'DEL' };
    expect(parseEnv(del).netns).toBe('');
    for (const c of ['GC', 'STATUS', 'VERSION']) expect(parseEnv({ CNI_COMMAND: c }).command).toBe(c);
  });

  it('CNI_ARGS: unknown keys need IgnoreUnknown=1; a pair without = is an error', () => {
    expect(parseCniArgs('IgnoreUnknown=1;FOO=bar')).toEqual({ IgnoreUnknown: '1', FOO: 'bar' });
    expect(parseCniArgs('K8S_POD_NAME=a;K8S_POD_NAMESPACE=b')).toEqual({
      K8S_POD_NAME: 'a',
      K8S_POD_NAMESPACE: 'b',
    });
    expect(messageOf(() => parseCniArgs('FOO=bar'))).toBe(
      'CNI_ARGS: unknown key FOO (add IgnoreUnknown=1 to pass keys Twill does not use)',
    );
    expect(codeOf(() => parseCniArgs('FOO'))).toBe(CniCode.InvalidEnvironment);
    expect(codeOf(() => parseEnv({ ...add, CNI_ARGS: 'K8S_POD_NAME=web' }))).toBe(CniCode.InvalidEnvironment);
  });
});

describe('configuration (SPEC.md section 1)', () => {
  const base = { cniVersion: '1.0.0', name: 'k8s-pod-network', type: 'twill' };

  it('defaults: MTU 1500, IPv4 only, the default socket', () => {
    expect(parseConfig(base, 'ADD')).toEqual({
      cniVersion: '1.0.0',
      name: 'k8s-pod-network',
      type: 'twill',
      mtu: 1500,
      families: [4],
      agentSocket: '/run/twill/cni.sock',
      timeoutMs: 30_000,
      dns: {},
    });
    expect(parseConfig(base, 'ADD', { TWILL_CNI_SOCKET: '/tmp/x.sock' }).agentSocket).toBe('/tmp/x.sock');
    expect(
      parseConfig({ ...base, agentSocket: '/a.sock' }, 'ADD', { TWILL_CNI_SOCKET: '/b' }).agentSocket,
    ).toBe('/a.sock');
  });

  it('accepts every supported version and refuses others with code 1', () => {
    for (const v of ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'])
      expect(parseConfig({ ...base, cniVersion: v }, 'ADD').cniVersion).toBe(v);
    expect(codeOf(() => parseConfig({ ...base, cniVersion: '0.2.0' }, 'ADD'))).toBe(
      CniCode.IncompatibleVersion,
    );
    expect(codeOf(() => parseConfig({ ...base, cniVersion: '2.0.0' }, 'ADD'))).toBe(
      CniCode.IncompatibleVersion,
    );
  });

  it('invalid fields are code 7 and named', () => {
    const bad = (o: Record<string, unknown>) => {
      expect(codeOf(() => parseConfig({ ...base, ...o }, 'ADD'))).toBe(CniCode.InvalidConfig);
      return messageOf(() => parseConfig({ ...base, ...o }, 'ADD'));
    };
    expect(bad({ cniVersion: undefined })).toContain('cniVersion');
    expect(bad({ name: 'has space' })).toContain('name');
    expect(bad({ mtu: 10 })).toBe('mtu: 10 is not 68..65535');
    expect(bad({ ipv4: false })).toBe('ipv4, ipv6: at least one must be true');
    expect(bad({ ipv6: 'yes' })).toBe('ipv6: "yes" is not true or false');
    expect(bad({ agentSocket: 'relative' })).toContain('agentSocket');
    expect(bad({ prevResult: { ips: [{ address: '10.0.0.1' }] } })).toBe(
      'prevResult.ips[0].address: expected an address in CIDR notation',
    );
  });

  it('GC reads cni.dev/valid-attachments (and the misspelt cni.dev/attachments)', () => {
    const v = [{ containerID: 'a', ifname: 'eth0' }];
    const gc = { ...base, cniVersion: '1.1.0' };
    expect(parseConfig({ ...gc, 'cni.dev/valid-attachments': v }, 'GC').validAttachments).toEqual(v);
    expect(parseConfig({ ...gc, 'cni.dev/attachments': v }, 'GC').validAttachments).toEqual(v);
    expect(parseConfig(gc, 'GC').validAttachments).toBeUndefined();
    expect(codeOf(() => parseConfig({ ...gc, 'cni.dev/valid-attachments': [{ x: 1 }] }, 'GC'))).toBe(
      CniCode.InvalidConfig,
    );
  });
});

const wiring: Wiring = {
  hostIfname: 'twl68caf03a5f4',
  ifname: 'eth0',
  netns: '/var/run/netns/cni-1234',
  containerID: 'abc123',
  mtu: 1450,
  mac: '02:11:22:33:44:55',
  families: [4, 6],
  addresses: [
    { address: '10.244.1.7', family: 4 },
    { address: 'fd00:244::7', family: 6 },
  ],
};

describe('results in each version (SPEC.md section 5)', () => {
  const result = addResult(wiring, { dns: { nameservers: ['10.96.0.10'] } });

  it('ADD: host veth, container interface, a /32 and a /128 via the link-local gateways', () => {
    expect(result).toEqual({
      interfaces: [
        { name: 'twl68caf03a5f4', mac: 'ee:ee:ee:ee:ee:ee', mtu: 1450 },
        { name: 'eth0', mac: '02:11:22:33:44:55', mtu: 1450, sandbox: '/var/run/netns/cni-1234' },
      ],
      ips: [
        { address: '10.244.1.7/32', gateway: '169.254.1.1', interface: 1 },
        { address: 'fd00:244::7/128', gateway: 'fe80::ecee:eeff:feee:eeee', interface: 1 },
      ],
      routes: [
        { dst: '0.0.0.0/0', gw: '169.254.1.1' },
        { dst: '::/0', gw: 'fe80::ecee:eeff:feee:eeee' },
      ],
      dns: { nameservers: ['10.96.0.10'] },
    });
  });

  it.each(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const)('%s: the output conforms', (v) => {
    const out = formatResult(result, v);
    expect(resultProblems(out, v)).toEqual([]);
    const ips = out.ips as Record<string, unknown>[];
    if (v === '1.0.0' || v === '1.1.0') expect(ips[0]).not.toHaveProperty('version');
    else expect(ips.map((i) => i.version)).toEqual(['4', '6']);
    const ifs = out.interfaces as Record<string, unknown>[];
    if (v === '1.1.0') expect(ifs[1]!.mtu).toBe(1450);
    else expect(ifs[1]).not.toHaveProperty('mtu');
  });

  it('a prevResult of 0.4.0 is read, and ours is appended after it with shifted indices', () => {
    const prev = parseResult({
      cniVersion: '0.4.0',
      interfaces: [{ name: 'net1', sandbox: '/x' }],
      ips: [{ version: '4', address: '192.168.5.5/24', interface: 0 }],
      routes: [{ dst: '192.168.0.0/16' }],
      dns: { search: ['svc'] },
    });
    const merged = addResult(wiring, { dns: {}, prevResult: prev });
    expect(merged.interfaces.map((i) => i.name)).toEqual(['net1', 'twl68caf03a5f4', 'eth0']);
    expect(merged.ips.map((i) => i.interface)).toEqual([0, 2, 2]);
    expect(merged.dns).toEqual({ search: ['svc'] });
    expect(resultProblems(formatResult(merged, '1.0.0'), '1.0.0')).toEqual([]);
  });

  it('1.1.0 route fields are dropped for older versions', () => {
    const r: CniResult = {
      interfaces: [],
      ips: [],
      routes: [{ dst: '10.0.0.0/8', table: 100, scope: 0 }],
      dns: {},
    };
    expect(formatResult(r, '1.1.0').routes).toEqual([{ dst: '10.0.0.0/8', table: 100, scope: 0 }]);
    expect(formatResult(r, '1.0.0').routes).toEqual([{ dst: '10.0.0.0/8' }]);
  });

  it('error objects carry cniVersion, code, msg and details', () => {
    const e = errorObject(new CniError(11, 'the Twill agent is not ready', 'node a: starting'), '0.4.0');
    expect(e).toEqual({
      cniVersion: '0.4.0',
      code: 11,
      msg: 'the Twill agent is not ready',
      details: 'node a: starting',
    });
    expect(errorProblems(e)).toEqual([]);
    expect(errorObject(new CniError(7, 'x'))).toEqual({ cniVersion: '1.1.0', code: 7, msg: 'x' });
  });
});

describe('invoke without an agent', () => {
  const conf = (v: string) => JSON.stringify({ cniVersion: v, name: 'net', type: 'twill' });

  it.each([...SUPPORTED_VERSIONS])('VERSION answers in %s', async (v) => {
    const out = await invoke({ CNI_COMMAND: 'VERSION' }, JSON.stringify({ cniVersion: v }));
    expect(out.exitCode).toBe(0);
    const o = JSON.parse(out.stdout!);
    expect(versionProblems(o, v)).toEqual([]);
    expect(o.supportedVersions).toEqual(['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  });

  it('VERSION with empty stdin answers for the spec version', async () => {
    const out = await invoke({ CNI_COMMAND: 'VERSION' }, '');
    expect(JSON.parse(out.stdout!).cniVersion).toBe('1.1.0');
  });

  const error = async (env: Record<string, string>, stdin: string) => {
    const out = await invoke(env, stdin);
    expect(out.exitCode).toBe(1);
    const o = JSON.parse(out.stdout!);
    expect(errorProblems(o)).toEqual([]);
    return o as { cniVersion: string; code: number; msg: string };
  };

  it('stdin that is not JSON: code 6', async () => {
    expect((await error(add, '{nope')).code).toBe(CniCode.DecodeFailure);
  });

  it('CHECK below 0.4.0, GC and STATUS below 1.1.0: code 1 in the config version', async () => {
    const check = await error({ ...add, CNI_COMMAND: 'CHECK' }, conf('0.3.1'));
    expect(check).toMatchObject({
      cniVersion: '0.3.1',
      code: 1,
      msg: 'config version 0.3.1 does not allow CHECK',
    });
    expect((await error({ CNI_COMMAND: 'GC' }, conf('1.0.0'))).code).toBe(1);
    expect((await error({ CNI_COMMAND: 'STATUS' }, conf('1.0.0'))).code).toBe(1);
  });

  it('an unsupported version: code 1', async () => {
    expect(await error(add, conf('0.1.0'))).toMatchObject({ cniVersion: '1.1.0', code: 1 });
  });

  it('no agent: ADD is code 11, STATUS is code 50', async () => {
    const c = JSON.stringify({
      cniVersion: '1.1.0',
      name: 'net',
      type: 'twill',
      agentSocket: '/nonexistent/x.sock',
    });
    expect(await error(add, c)).toMatchObject({
      code: 11,
      msg: 'the Twill agent is not running on this node',
    });
    expect((await error({ CNI_COMMAND: 'STATUS' }, c)).code).toBe(50);
  });
});

describe('names shared with the agent', () => {
  it('host veth: twl + 11 hex of sha1("<namespace>.<pod>"), as Calico\'s cali + the same', () => {
    expect(hostVethName('default', 'web')).toBe('twl68caf03a5f4');
    expect(hostVethName('kube-system', 'coredns-5d78c9869d-abcde')).toBe('twl4d5f75c480c');
    expect(hostVethName('default', 'web').length).toBeLessThanOrEqual(15);
    expect(hostIfnameOf({ containerID: 'x', namespace: 'default', pod: 'web' })).toBe('twl68caf03a5f4');
    expect(hostIfnameOf({ containerID: 'x' })).toBe(hostVethNameForContainer('x'));
  });

  it('DEL and CHECK take the host veth from prevResult, else from CNI_ARGS', () => {
    const prev = parseResult(formatResult(addResult(wiring, { dns: {} }), '1.0.0'));
    const bare = parseEnv({ ...add, CNI_COMMAND: 'DEL', CNI_ARGS: '' });
    expect(hostIfnameFor(bare, prev)).toBe('twl68caf03a5f4');
    expect(hostIfnameFor(bare, undefined)).toBe(hostVethNameForContainer('abc123'));
    expect(hostIfnameFor(parseEnv({ ...add, CNI_COMMAND: 'DEL' }), undefined)).toBe('twl68caf03a5f4');
  });

  it('pod MAC: locally administered unicast, a function of container ID and ifname', () => {
    const m = podMac('abc123', 'eth0');
    expect(m).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    const first = Number.parseInt(m.slice(0, 2), 16);
    expect(first & 1).toBe(0);
    expect(first & 2).toBe(2);
    expect(podMac('abc123', 'eth0')).toBe(m);
    expect(podMac('abc123', 'net1')).not.toBe(m);
  });

  it('IPAM handle: <network>.<containerID>, hashed when the ID cannot be an object name', () => {
    expect(handleFor('k8s-pod-network', 'abc123')).toBe('k8s-pod-network.abc123');
    const h = handleFor('k8s-pod-network', 'Upper_Case');
    expect(h).toMatch(/^k8s-pod-network\.h-[0-9a-f]{40}$/);
    expect(handleFor('k8s-pod-network', 'Upper_Case')).toBe(h);
  });

  it("the route protocol and the veth sysctls are the dataplane's", () => {
    expect(ROUTE_PROTOCOL).toBe(RTPROT_TWILL);
    const dev = 'twl68caf03a5f4';
    expect(hostSysctls(dev, [4])).toEqual(vethSysctls(dev, { ipv4: true, ipv6: false }));
    expect(hostSysctls(dev, [4, 6])).toEqual(vethSysctls(dev, { ipv4: true, ipv6: true }));
    expect(hostSysctls(dev, [6])).toEqual(vethSysctls(dev, { ipv4: false, ipv6: true }));
  });
});

describe('kernel scripts', () => {
  it('host side: veth with the peer created in the netns, alias, route and neighbour with protocol 84', () => {
    expect(hostBatch(wiring, 'absent').split('\n')).toEqual([
      'link add twl68caf03a5f4 mtu 1450 address ee:ee:ee:ee:ee:ee type veth peer name eth0 mtu 1450 address 02:11:22:33:44:55 netns /var/run/netns/cni-1234',
      'link set twl68caf03a5f4 alias twill:abc123',
      'link set twl68caf03a5f4 addrgenmode none',
      'link set twl68caf03a5f4 up',
      'addr replace fe80::ecee:eeff:feee:eeee/64 dev twl68caf03a5f4 nodad',
      'route replace 10.244.1.7/32 dev twl68caf03a5f4 scope link proto 84',
      'neigh replace 10.244.1.7 lladdr 02:11:22:33:44:55 dev twl68caf03a5f4 nud permanent proto 84',
      'route replace fd00:244::7/128 dev twl68caf03a5f4 scope link proto 84',
      'neigh replace fd00:244::7 lladdr 02:11:22:33:44:55 dev twl68caf03a5f4 nud permanent proto 84',
      '',
    ]);
    expect(hostBatch(wiring, 'stale').split('\n')[0]).toBe('link del twl68caf03a5f4');
    // Split in two: the link part runs while the agent assigns.
    expect(hostLinkBatch(wiring, 'absent') + hostAddressBatch(wiring)).toBe(hostBatch(wiring, 'absent'));
    expect(hostAddressBatch(wiring)).toMatch(/^route replace 10\.244\.1\.7\/32/);
    expect(hostBatch(wiring, 'ours')).not.toContain('link add');
  });

  it('pod side: every write a replace, so a repeated ADD changes nothing', () => {
    expect(podBatch(wiring).split('\n')).toEqual([
      'link set eth0 up',
      'addr replace 10.244.1.7/32 dev eth0',
      'route replace 169.254.1.1 dev eth0 scope link',
      'route replace default via 169.254.1.1 dev eth0',
      'addr replace fd00:244::7/128 dev eth0 nodad',
      'route replace ::/0 via fe80::ecee:eeff:feee:eeee dev eth0',
      '',
    ]);
  });
});

describe('CHECK', () => {
  const inv = parseEnv({ ...add, CNI_COMMAND: 'CHECK' });
  const prev = parseResult(formatResult(addResult(wiring, { dns: {} }), '1.1.0'));
  const e = expectedFrom(prev, inv, 'twl68caf03a5f4');
  const addr = JSON.stringify([
    {
      ifname: 'eth0',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      mtu: 1450,
      address: '02:11:22:33:44:55',
      addr_info: [
        { family: 'inet', local: '10.244.1.7', prefixlen: 32 },
        { family: 'inet6', local: 'fd00:244:0::7', prefixlen: 128 },
      ],
    },
  ]);
  const r4 = JSON.stringify([
    { dst: 'default', gateway: '169.254.1.1', dev: 'eth0', flags: [] },
    { dst: '169.254.1.1', dev: 'eth0', scope: 'link', flags: [] },
  ]);
  const r6 = JSON.stringify([{ dst: 'default', gateway: 'fe80::ecee:eeff:feee:eeee', dev: 'eth0' }]);

  it('finds our interface and addresses in prevResult', () => {
    expect(e).toEqual({
      hostIfname: 'twl68caf03a5f4',
      ifname: 'eth0',
      mac: '02:11:22:33:44:55',
      mtu: 1450,
      addresses: wiring.addresses,
    });
    expect(codeOf(() => expectedFrom(prev, { ...inv, netns: '/other' }, 'x'))).toBe(CniCode.InvalidConfig);
  });

  it('a pod as ADD left it has no problems; each missing piece is named', () => {
    expect(podProblems(e, addr, r4, r6)).toEqual([]);
    expect(podProblems(e, addr, JSON.stringify([JSON.parse(r4)[1]]), '[]')).toEqual([
      'pod: default route via 169.254.1.1 dev eth0 is missing',
      'pod: IPv6 default route via fe80::ecee:eeff:feee:eeee dev eth0 is missing',
    ]);
    expect(podProblems(e, '[]', r4, r6)).toEqual(['pod: interface eth0 is missing']);
    const down = addr.replace('"UP",', '').replace('10.244.1.7', '10.244.1.8');
    expect(podProblems(e, down, r4, r6)).toEqual([
      'pod: eth0 is down',
      'pod: eth0 lacks address 10.244.1.7/32',
    ]);
  });

  it('host routes from /proc/net/route and /proc/net/ipv6_route', () => {
    const route4 = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\ntwl68caf03a5f4\t${procRouteHex('10.244.1.7')}\t00000000\t0005\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n`;
    const route6 = `${procRoute6Hex('fd00:244::7')} 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000400 00000001 00000000 00000001 twl68caf03a5f4\n`;
    expect(procRoute6Hex('fd00:244::7')).toBe('fd000244000000000000000000000007');
    expect(hostRouteProblems(e, route4, route6)).toEqual([]);
    expect(hostRouteProblems(e, '', '')).toEqual([
      'host: route 10.244.1.7/32 dev twl68caf03a5f4 is missing',
      'host: route fd00:244::7/128 dev twl68caf03a5f4 is missing',
    ]);
  });

  it("procRouteHex is the kernel's host-order hex", () => {
    // /proc/net/route prints the network-order word as a host integer: reversed on little-endian.
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    expect(procRouteHex('10.1.0.5')).toBe(le ? '0500010A' : '0A010005');
  });
});

describe('entering the pod’s network namespace', () => {
  it('a named namespace is entered by ip itself (-n), any other path through nsenter', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twill-netns-'));
    try {
      // A namespace name that does not exist under /var/run/netns is not taken for one.
      const [cmd, args] = inNetns('/run/netns/twill-no-such-netns', ['/usr/sbin/ip', '-batch', '-']);
      expect(cmd).toMatch(/nsenter$/);
      expect(args).toEqual(['--net=/run/netns/twill-no-such-netns', '/usr/sbin/ip', '-batch', '-']);
      const [cmd2, args2] = inNetns('/proc/4242/ns/net', ['sh', '-c', 'true']);
      expect(cmd2).toMatch(/nsenter$/);
      expect(args2).toEqual(['--net=/proc/4242/ns/net', 'sh', '-c', 'true']);
      expect(inNetns(join(dir, 'x'), ['sh'])[0]).toMatch(/nsenter$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
