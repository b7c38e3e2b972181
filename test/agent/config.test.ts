import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../src/agent/config.js';
import { chooseAddress } from '../../src/agent/autodetect.js';
import { readiness } from '../../src/agent/health.js';
import { ConfigError } from '../../src/config/fields.js';
import { BIN } from '../helpers/twill.js';

const parse = (argv: string[], env: Record<string, string> = {}) => parseAgentConfig(argv, env, 'host-1');

function problems(argv: string[], env: Record<string, string> = {}): string[] {
  try {
    parse(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('agent configuration', () => {
  it('defaults: the host name, a file datastore, autodetection first-found, localhost health', () => {
    const c = parse([]);
    expect(c.nodename).toBe('host-1');
    expect(c.datastore).toBe('file:/var/lib/twill/store');
    expect(c.ip).toEqual({ kind: 'autodetect', method: { kind: 'first-found' } });
    expect(c.asn).toBeUndefined();
    expect(c.healthListen).toEqual({ host: '127.0.0.1', port: 9099 });
    expect(c.apiSocket).toBe('/run/twill/twill.sock');
    expect(c.cniSocket).toBe('/run/twill/cni.sock');
    expect(c.routeRefreshMs).toBe(90_000);
  });

  it('Calico-named variables, and a flag wins over its variable', () => {
    const c = parse(['--as', '65001', '--ip=10.0.0.9'], {
      NODENAME: 'Node-A',
      AS: '64999',
      IP: '10.0.0.1',
      DATASTORE: 'kubernetes',
      IP_AUTODETECTION_METHOD: 'kubernetes-internal-ip',
      TWILL_POOL_CIDR: '10.244.0.0/16',
      TWILL_POOL_BLOCK_SIZE: '24',
      TWILL_HEALTH_LISTEN: 'off',
    });
    expect(c.nodename).toBe('node-a');
    expect(c.asn).toBe(65001);
    expect(c.ip).toEqual({ kind: 'fixed', address: '10.0.0.9' });
    expect(c.datastore).toBe('kubernetes');
    expect(c.pool).toEqual({ cidr: '10.244.0.0/16', blockSize: 24 });
    expect(c.healthListen).toBeUndefined();
  });

  it('autodetection methods parse', () => {
    expect(parse([], { IP_AUTODETECTION_METHOD: 'interface=eth.*' }).ip).toMatchObject({
      kind: 'autodetect',
      method: { kind: 'interface' },
    });
    expect(parse([], { IP_AUTODETECTION_METHOD: 'can-reach=10.1.2.3' }).ip).toEqual({
      kind: 'autodetect',
      method: { kind: 'can-reach', address: '10.1.2.3' },
    });
  });

  it.each([
    [['--as', '0'], {}, /--as: "0" is not an AS number/],
    [[], { AS: '23456' }, /AS: 23456 is AS_TRANS/],
    [[], { AS: 'x' }, /AS: "x" is not an AS number/],
    [[], { IP: '300.1.1.1' }, /IP: "300.1.1.1" is not an IPv4 address or autodetect/],
    [[], { IP: 'fd00::1' }, /IP: "fd00::1" is not an IPv4 address/],
    [[], { IP_AUTODETECTION_METHOD: 'nearest' }, /IP_AUTODETECTION_METHOD: "nearest" is not first-found/],
    [
      [],
      { IP_AUTODETECTION_METHOD: 'interface=(' },
      /IP_AUTODETECTION_METHOD: interface=\(: not a regular expression/,
    ],
    [[], { IP_AUTODETECTION_METHOD: 'can-reach=nowhere' }, /can-reach needs an IP address/],
    [
      [],
      { IP_AUTODETECTION_METHOD: 'kubernetes-internal-ip' },
      /kubernetes-internal-ip needs DATASTORE=kubernetes/,
    ],
    [[], { DATASTORE: 'etcd' }, /DATASTORE: "etcd" is not file:DIR or kubernetes/],
    [[], { DATASTORE: 'file:relative' }, /DATASTORE: "file:relative" is not file:DIR or kubernetes/],
    [[], { NODENAME: 'bad_name' }, /NODENAME: "bad_name" is not a Kubernetes node name/],
    [[], { TWILL_BGP_PORT: '70000' }, /TWILL_BGP_PORT: "70000" is not a port 1..65535/],
    [[], { TWILL_POOL_CIDR: '10.244.0.1/16' }, /TWILL_POOL_CIDR: "10.244.0.1\/16" has host bits set/],
    [[], { TWILL_POOL_CIDR: '10.244.0.0/27' }, /is smaller than one block/],
    [[], { TWILL_POOL_CIDR: 'fd00::/48' }, /is not an IPv4 CIDR/],
    [[], { TWILL_POOL_BLOCK_SIZE: '19' }, /TWILL_POOL_BLOCK_SIZE: "19" is not a prefix length 20..32/],
    [[], { TWILL_LOG_LEVEL: 'loud' }, /TWILL_LOG_LEVEL: "loud" is not trace, debug/],
    [[], { TWILL_HEALTH_LISTEN: '9099' }, /TWILL_HEALTH_LISTEN: "9099" is not HOST:PORT or off/],
    [
      [],
      { TWILL_API_SOCKET: 'api.sock' },
      /TWILL_API_SOCKET: "api.sock" is not an absolute unix socket path/,
    ],
    [[], { TWILL_CNI_SOCKET: `/${'x'.repeat(120)}` }, /longer than 107 bytes/],
    [[], { TWILL_ROUTE_REFRESH: '0' }, /TWILL_ROUTE_REFRESH: "0" is not seconds 1..86400/],
    [['--frobnicate'], {}, /unknown option "--frobnicate"/],
    [['--as'], {}, /--as: needs a value/],
  ] as [string[], Record<string, string>, RegExp][])(
    '%j %j gives one error naming the field',
    (argv, env, re) => {
      const p = problems(argv, env);
      expect(p).toHaveLength(1);
      expect(p[0]).toMatch(re);
    },
  );

  it('several wrong fields give one line each', () => {
    expect(problems([], { AS: '0', IP: 'x', TWILL_LOG_LEVEL: 'loud' })).toHaveLength(3);
  });

  it('twill agent with a bad field exits 2 and says what is wrong, before touching anything', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [BIN, 'agent'], {
        env: { ...process.env, AS: '0', TWILL_POOL_CIDR: 'ten', NODENAME: 'n1' },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (err) {
      const e = err as { status: number; stderr: string };
      status = e.status;
      stderr = e.stderr;
    }
    expect(status).toBe(2);
    expect(stderr).toMatch(/^twill agent: invalid configuration:\ntwill agent: AS: "0" is not an AS number/);
    expect(stderr).toMatch(/TWILL_POOL_CIDR: "ten" is not an IPv4 CIDR/);
  });
});

describe('IP autodetection', () => {
  const ifaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4' as const, internal: true }],
    docker0: [{ address: '172.17.0.1', family: 'IPv4' as const, internal: false }],
    eth0: [
      { address: 'fe80::1', family: 'IPv6' as const, internal: false },
      { address: '169.254.3.3', family: 'IPv4' as const, internal: false },
    ],
    eth1: [{ address: '10.0.0.5', family: 'IPv4' as const, internal: false }],
    twl0123456789a: [{ address: '10.9.9.9', family: 'IPv4' as const, internal: false }],
    ens3: [{ address: '192.168.1.5', family: 'IPv4' as const, internal: false }],
  };

  it('first-found skips loopback, container interfaces and link-local addresses', () => {
    expect(chooseAddress({ kind: 'first-found' }, ifaces)).toEqual({
      address: '192.168.1.5',
      interface: 'ens3',
    });
  });

  it('interface=REGEX matches the whole name', () => {
    expect(chooseAddress({ kind: 'interface', pattern: /^(?:eth.*)$/ }, ifaces)).toEqual({
      address: '10.0.0.5',
      interface: 'eth1',
    });
    const none = chooseAddress({ kind: 'interface', pattern: /^(?:wlan.*)$/ }, ifaces);
    expect(none).toMatchObject({
      error: expect.stringMatching(/no interface matching wlan\.\* has a global IPv4/),
    });
  });
});

describe('readiness, as calico-node decides it', () => {
  const base = { inSync: true, dataplaneApplied: true, uptimeMs: 1000 };
  const up = { address: '10.0.0.2', state: 'Established' };
  const down = { address: '10.0.0.3', state: 'Active' };

  it('needs the datastore in sync and the dataplane applied', () => {
    expect(readiness({ ...base, inSync: false, peers: [] }).reasons).toEqual([
      'the datastore is not in sync yet',
    ]);
    expect(readiness({ ...base, dataplaneApplied: false, peers: [] }).ready).toBe(false);
    expect(readiness({ ...base, peers: [] }).ready).toBe(true);
  });

  it('in the first 30 s every peer must be established, after that one', () => {
    expect(readiness({ ...base, peers: [up, down] })).toEqual({
      ready: false,
      reasons: ['BGP not established with 10.0.0.3'],
    });
    expect(readiness({ ...base, uptimeMs: 31_000, peers: [up, down] }).ready).toBe(true);
    expect(readiness({ ...base, uptimeMs: 31_000, peers: [down] }).reasons).toEqual([
      'BGP established with no peer',
    ]);
  });
});
