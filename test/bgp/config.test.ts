/**
 * The speaker config reader: defaults, every field's error naming its path and expected form,
 * all errors reported at once, unknown keys with suggestions, and a property that any config
 * written from valid values reads back to the same values.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import {
  type ApiAddress,
  ConfigError,
  dialsNeighbor,
  formatApiAddress,
  type NeighborConfig,
  parseApiAddress,
  parseSpeakerConfig,
  type SpeakerConfig,
} from '../../src/bgp/config.js';
import { suggestKey } from '../../src/config/fields.js';
import { formatIpv4, formatIpv6 } from '../../src/net/addr.js';
import { familyName, IPV4_UNICAST, IPV6_UNICAST } from '../../src/bgp/wire/constants.js';

const SRC = 'speaker.yml';

/** The lines of the ConfigError that parsing `text` throws. */
function errors(text: string): string[] {
  try {
    parseSpeakerConfig(text, SRC);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message.split('\n');
  }
  throw new Error('expected a ConfigError');
}

const minimal = 'routerId: 10.10.0.1\n';

describe('defaults', () => {
  it('a router id alone is a complete config', () => {
    expect(parseSpeakerConfig(minimal, SRC)).toEqual({
      routerId: '10.10.0.1',
      asn: 64512,
      listen: { address: '::', port: 179 },
      neighbors: [],
      originate: [],
      api: { listen: { kind: 'unix', path: '/run/twill/twill.sock' } },
      mesh: { lowerAddressDials: false },
      clusterId: '10.10.0.1',
      gracefulRestart: { enabled: true, restartTime: 120, deferralTime: 60 },
      decision: { alwaysCompareMed: false },
    } satisfies SpeakerConfig);
  });

  it('a neighbor gets port 179, active, hold 90, retry 5, both families', () => {
    const c = parseSpeakerConfig(`${minimal}neighbors:\n  - {address: 10.10.0.2, asn: 64513}\n`, SRC);
    expect(c.neighbors).toEqual([
      {
        address: '10.10.0.2',
        asn: 64513,
        port: 179,
        passive: false,
        holdTime: 90,
        connectRetry: 5,
        families: [IPV4_UNICAST, IPV6_UNICAST],
        localAddress: null,
        description: null,
        routeReflectorClient: false,
        nextHopSelf: false,
        allowasIn: 0,
        maxPrefix: null,
        import: [],
        export: [],
      },
    ] satisfies NeighborConfig[]);
  });

  it('bfd: true takes 300 ms x 3; a mapping sets the timers; a bad one is named', () => {
    const n = (bfd: string) =>
      parseSpeakerConfig(`${minimal}neighbors:\n  - {address: 10.10.0.2, asn: 64513, bfd: ${bfd}}\n`, SRC)
        .neighbors[0]!;
    expect(n('true').bfd).toEqual({ minTxMs: 300, minRxMs: 300, multiplier: 3 });
    expect(n('false').bfd).toBeNull();
    expect(n('{minTx: 100, minRx: 50, multiplier: 5}').bfd).toEqual({
      minTxMs: 100,
      minRxMs: 50,
      multiplier: 5,
    });
    expect(
      errors(
        `${minimal}neighbors:\n  - {address: 10.10.0.2, asn: 64513, bfd: {multiplier: 0, every: 1}}\n`,
      ).join('\n'),
    ).toMatch(/bfd\.multiplier.*0 is not an integer 1\.\.255[\s\S]*every|every[\s\S]*bfd\.multiplier/);
  });

  it('listen: false does not listen; partial listen keeps the other default', () => {
    expect(parseSpeakerConfig(`${minimal}listen: false\n`, SRC).listen).toBeNull();
    expect(parseSpeakerConfig(`${minimal}listen: {port: 1179}\n`, SRC).listen).toEqual({
      address: '::',
      port: 1179,
    });
    expect(parseSpeakerConfig(`${minimal}listen: {address: 0.0.0.0}\n`, SRC).listen).toEqual({
      address: '0.0.0.0',
      port: 179,
    });
  });

  it('normalises addresses and prefixes to canonical text', () => {
    const c = parseSpeakerConfig(
      `${minimal}neighbors:\n  - {address: '2001:DB8:0:0::1', asn: 1, localAddress: '2001:db8::0:2'}\n` +
        `originate: ['2001:DB8::/32', 10.20.0.0/24]\n`,
      SRC,
    );
    expect(c.neighbors[0]?.address).toBe('2001:db8::1');
    expect(c.neighbors[0]?.localAddress).toBe('2001:db8::2');
    expect(c.originate).toEqual(['2001:db8::/32', '10.20.0.0/24']);
  });

  it('an empty file only lacks the router id', () => {
    expect(errors('')).toEqual([
      `${SRC}: routerId: required (a non-zero IPv4 address, usually the node address)`,
    ]);
  });
});

describe('every bad field names its path and the expected form', () => {
  const cases: [string, string, string][] = [
    ['routerId', 'routerId: 10.1\n', 'routerId: 10.1 is not a non-zero IPv4 address (e.g. 10.10.0.1)'],
    [
      'routerId zero',
      'routerId: 0.0.0.0\n',
      'routerId: "0.0.0.0" is not a non-zero IPv4 address (e.g. 10.10.0.1)',
    ],
    ['routerId IPv6', "routerId: '::1'\n", 'routerId: "::1" is not a non-zero IPv4 address (e.g. 10.10.0.1)'],
    ['asn 0', `${minimal}asn: 0\n`, 'asn: 0 is not an AS number 1..4294967295'],
    ['asn too big', `${minimal}asn: 4294967296\n`, 'asn: 4294967296 is not an AS number 1..4294967295'],
    ['asn string', `${minimal}asn: '64512'\n`, 'asn: "64512" is not an AS number 1..4294967295'],
    [
      'asn AS_TRANS',
      `${minimal}asn: 23456\n`,
      'asn: 23456 is AS_TRANS (RFC 6793), not an AS number to configure',
    ],
    ['listen', `${minimal}listen: yes\n`, 'listen: "yes" is not a mapping {address, port} or false'],
    [
      'listen.address',
      `${minimal}listen: {address: any}\n`,
      'listen.address: "any" is not an IPv4 or IPv6 address',
    ],
    ['listen.port', `${minimal}listen: {port: 65536}\n`, 'listen.port: 65536 is not an integer 0..65535'],
    ['neighbors', `${minimal}neighbors: {a: 1}\n`, 'neighbors: a mapping is not a list of neighbors'],
    [
      'neighbor',
      `${minimal}neighbors: [10.0.0.1]\n`,
      'neighbors[0]: "10.0.0.1" is not a mapping {address, asn, ...}',
    ],
    [
      'neighbor address',
      `${minimal}neighbors: [{address: 10.0.0.256, asn: 1}]\n`,
      'neighbors[0].address: "10.0.0.256" is not an IPv4 or IPv6 address',
    ],
    [
      'neighbor address missing',
      `${minimal}neighbors: [{asn: 1}]\n`,
      'neighbors[0].address: required (the neighbor IPv4 or IPv6 address)',
    ],
    [
      'neighbor asn missing',
      `${minimal}neighbors: [{address: 10.0.0.2}]\n`,
      'neighbors[0].asn: required (the neighbor AS number, 1..4294967295)',
    ],
    [
      'neighbor asn',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: -1}]\n`,
      'neighbors[0].asn: -1 is not an AS number 1..4294967295',
    ],
    [
      'neighbor port',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, port: 0}]\n`,
      'neighbors[0].port: 0 is not an integer 1..65535',
    ],
    [
      'neighbor passive',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, passive: 'no'}]\n`,
      'neighbors[0].passive: "no" is not true or false',
    ],
    [
      'neighbor holdTime',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, holdTime: 2}]\n`,
      'neighbors[0].holdTime: 2 is not 0 or 3..65535',
    ],
    [
      'neighbor holdTime fraction',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, holdTime: 9.5}]\n`,
      'neighbors[0].holdTime: 9.5 is not 0 or 3..65535',
    ],
    [
      'neighbor connectRetry',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, connectRetry: 0}]\n`,
      'neighbors[0].connectRetry: 0 is not a number of seconds 1..3600',
    ],
    [
      'neighbor families not a list',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, families: ipv4-unicast}]\n`,
      'neighbors[0].families: "ipv4-unicast" is not a non-empty list of ipv4-unicast, ipv6-unicast',
    ],
    [
      'neighbor families empty',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, families: []}]\n`,
      'neighbors[0].families: a list is not a non-empty list of ipv4-unicast, ipv6-unicast',
    ],
    [
      'neighbor family',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, families: [ipv4-multicast]}]\n`,
      'neighbors[0].families[0]: "ipv4-multicast" is not ipv4-unicast or ipv6-unicast',
    ],
    [
      'neighbor family twice',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, families: [ipv6-unicast, ipv6-unicast]}]\n`,
      'neighbors[0].families[1]: ipv6-unicast is listed twice',
    ],
    [
      'neighbor localAddress',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, localAddress: eth0}]\n`,
      'neighbors[0].localAddress: "eth0" is not an IPv4 or IPv6 address',
    ],
    [
      'neighbor localAddress family',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, localAddress: 'fd00::1'}]\n`,
      'neighbors[0].localAddress: fd00::1 is IPv6 but the neighbor address 10.0.0.2 is IPv4',
    ],
    [
      'neighbor description',
      `${minimal}neighbors: [{address: 10.0.0.2, asn: 1, description: [a]}]\n`,
      'neighbors[0].description: a list is not a string',
    ],
    [
      'neighbor address unique',
      `${minimal}neighbors: [{address: 'fd00::1', asn: 1}, {address: 'FD00:0::1', asn: 2}]\n`,
      'neighbors[1].address: fd00::1 is also neighbors[0].address',
    ],
    ['originate', `${minimal}originate: 10.0.0.0/8\n`, 'originate: "10.0.0.0/8" is not a list of prefixes'],
    [
      'originate prefix',
      `${minimal}originate: [10.0.0.0]\n`,
      'originate[0]: "10.0.0.0" is not an IPv4 or IPv6 prefix (ADDRESS/LENGTH)',
    ],
    [
      'originate host bits',
      `${minimal}originate: ['2001:db8::1/32']\n`,
      'originate[0]: "2001:db8::1/32" has host bits set (did you mean 2001:db8::/32?)',
    ],
    [
      'originate length',
      `${minimal}originate: [10.0.0.0/33]\n`,
      'originate[0]: "10.0.0.0/33" is not an IPv4 or IPv6 prefix (ADDRESS/LENGTH)',
    ],
    [
      'originate twice',
      `${minimal}originate: [10.0.0.0/8, 10.0.0.0/8]\n`,
      'originate[1]: 10.0.0.0/8 is also originate[0]',
    ],
    ['api', `${minimal}api: /run/x.sock\n`, 'api: "/run/x.sock" is not a mapping {listen}'],
    [
      'api.listen relative',
      `${minimal}api: {listen: twill.sock}\n`,
      'api.listen: "twill.sock" is not an absolute unix socket path, HOST:PORT or [IPv6]:PORT',
    ],
    [
      'api.listen port',
      `${minimal}api: {listen: 'localhost:0'}\n`,
      'api.listen: "localhost:0" has port 0, not 1..65535',
    ],
    [
      'api.listen bare IPv6',
      `${minimal}api: {listen: '::1:50051'}\n`,
      'api.listen: "::1:50051" is not an absolute unix socket path, HOST:PORT or [IPv6]:PORT',
    ],
    [
      'api.listen too long',
      `${minimal}api: {listen: /${'s'.repeat(107)}}\n`,
      `api.listen: "/${'s'.repeat(107)}" is longer than 107 bytes, the limit for a unix socket path`,
    ],
    ['mesh', `${minimal}mesh: true\n`, 'mesh: true is not a mapping {lowerAddressDials}'],
    [
      'mesh.lowerAddressDials',
      `${minimal}mesh: {lowerAddressDials: 1}\n`,
      'mesh.lowerAddressDials: 1 is not true or false',
    ],
    [
      'a key with no value',
      `${minimal}neighbors:\n  - address: 10.0.0.2\n    asn: 1\n    holdTime:\n`,
      'neighbors[0].holdTime: has no value (remove the line to use the default)',
    ],
    [
      'listen with no value',
      `${minimal}listen:\n`,
      'listen: has no value (a mapping {address, port}, or false)',
    ],
  ];
  it.each(cases)('%s', (_name, text, message) => {
    expect(errors(text)).toEqual([`${SRC}: ${message}`]);
  });

  it('the document must be a mapping', () => {
    expect(errors('- routerId: 10.0.0.1\n')).toContain(
      `${SRC}: the document is a list, not a mapping of fields`,
    );
  });

  it('YAML syntax errors and duplicate keys give line and column', () => {
    expect(errors(`${minimal}routerId: 10.0.0.2\n`)).toEqual([`${SRC}:2:1: Map keys must be unique`]);
    expect(errors('routerId: [10.0.0.1\n')[0]).toMatch(/^speaker\.yml:\d+:\d+: /);
  });
});

describe('unknown keys', () => {
  it('are errors, with the nearest known key suggested', () => {
    expect(
      errors(
        `${minimal}neighbors:\n  - {address: 10.0.0.2, asn: 1, holdtime: 30, local_address: 10.0.0.1}\n` +
          'routerID: 10.0.0.1\nlisten: {prot: 1}\nmesh: {lowerAdressDials: true}\napi: {listn: /x}\n',
      ),
    ).toEqual([
      `${SRC}: routerID: unknown field (did you mean routerId?)`,
      `${SRC}: listen.prot: unknown field (did you mean port?)`,
      `${SRC}: neighbors[0].holdtime: unknown field (did you mean holdTime?)`,
      `${SRC}: neighbors[0].local_address: unknown field (did you mean localAddress?)`,
      `${SRC}: api.listn: unknown field (did you mean listen?)`,
      `${SRC}: mesh.lowerAdressDials: unknown field (did you mean lowerAddressDials?)`,
    ]);
  });

  it('list the known keys when nothing is close', () => {
    expect(errors(`${minimal}kernel: true\n`)).toEqual([
      `${SRC}: kernel: unknown field (expected one of: routerId, asn, listen, neighbors, originate, api, mesh, clusterId, gracefulRestart, decision)`,
    ]);
  });

  it('suggestKey: case, separators and small edits; nothing for far-off words', () => {
    const known = ['holdTime', 'connectRetry', 'address', 'asn'];
    expect(suggestKey('hold-time', known)).toBe('holdTime');
    expect(suggestKey('HOLDTIME', known)).toBe('holdTime');
    expect(suggestKey('conectRetry', known)).toBe('connectRetry');
    expect(suggestKey('adderss', known)).toBe('address');
    expect(suggestKey('as', known)).toBeUndefined();
    expect(suggestKey('timers', known)).toBeUndefined();
  });
});

describe('several errors', () => {
  it('are collected and reported together, one per line, in one ConfigError', () => {
    let caught: unknown;
    try {
      parseSpeakerConfig(
        'routerId: x\nasn: 0\nneighbors:\n  - {address: 10.0.0.2, asn: 1, holdTime: 1}\n' +
          '  - {address: 10.0.0.3, asn: 1, port: 70000, passive: 1}\noriginate: [10.0.0.1/8]\n',
        'config.yaml',
      );
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const e = caught as ConfigError;
    expect(e.source).toBe('config.yaml');
    expect(e.issues.map((i) => i.path)).toEqual([
      'routerId',
      'asn',
      'neighbors[0].holdTime',
      'neighbors[1].port',
      'neighbors[1].passive',
      'originate[0]',
    ]);
    expect(e.message).toBe(
      [
        'config.yaml: routerId: "x" is not a non-zero IPv4 address (e.g. 10.10.0.1)',
        'config.yaml: asn: 0 is not an AS number 1..4294967295',
        'config.yaml: neighbors[0].holdTime: 1 is not 0 or 3..65535',
        'config.yaml: neighbors[1].port: 70000 is not an integer 1..65535',
        'config.yaml: neighbors[1].passive: 1 is not true or false',
        'config.yaml: originate[0]: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)',
      ].join('\n'),
    );
  });
});

describe('api addresses', () => {
  it.each<[string, ApiAddress]>([
    ['/run/twill/twill.sock', { kind: 'unix', path: '/run/twill/twill.sock' }],
    ['127.0.0.1:50051', { kind: 'tcp', host: '127.0.0.1', port: 50051 }],
    ['localhost:8080', { kind: 'tcp', host: 'localhost', port: 8080 }],
    ['[::1]:50051', { kind: 'tcp', host: '::1', port: 50051 }],
    ['[FD00:0::1]:1', { kind: 'tcp', host: 'fd00::1', port: 1 }],
  ])('%s', (text, want) => {
    expect(parseApiAddress(text)).toEqual(want);
    expect(parseApiAddress(formatApiAddress(want))).toEqual(want);
  });

  it('names the source in the error', () => {
    expect(() => parseApiAddress('1.2.3.4', '--api')).toThrow(
      '--api: "1.2.3.4" is not an absolute unix socket path, HOST:PORT or [IPv6]:PORT',
    );
    expect(() => parseApiAddress('[10.0.0.1]:80', '--api')).toThrow(/not an absolute unix socket path/);
    expect(() => parseApiAddress('300.1.1.1:80', '--api')).toThrow(/not an absolute unix socket path/);
    expect(() => parseApiAddress('h:080', '--api')).toThrow('--api: "h:080" has port 080, not 1..65535');
  });
});

describe('dialsNeighbor', () => {
  const config = (mesh: boolean, neighbors: string) =>
    parseSpeakerConfig(
      `routerId: 10.0.0.5\nasn: 64512\nmesh: {lowerAddressDials: ${mesh}}\nneighbors:\n${neighbors}`,
      SRC,
    );

  it('without the mesh rule every non-passive neighbor is dialled', () => {
    const c = config(
      false,
      '  - {address: 10.0.0.1, asn: 64512}\n  - {address: 10.0.0.9, asn: 64512, passive: true}\n',
    );
    expect(c.neighbors.map((n) => dialsNeighbor(c, n))).toEqual([true, false]);
  });

  it('with it, only the lower address dials an iBGP neighbor; eBGP neighbors are dialled', () => {
    const c = config(
      true,
      '  - {address: 10.0.0.1, asn: 64512}\n' +
        '  - {address: 10.0.0.9, asn: 64512}\n' +
        '  - {address: 10.0.0.2, asn: 64513, port: 1179}\n' +
        '  - {address: 10.0.0.3, asn: 64512, localAddress: 10.0.0.2}\n' +
        "  - {address: 'fd00::1', asn: 64512}\n" +
        "  - {address: 'fd00::1:1', asn: 64512, localAddress: 'fd00::1:2'}\n",
    );
    expect(c.neighbors.map((n) => dialsNeighbor(c, n))).toEqual([false, true, true, true, true, false]);
  });
});

// ---------------------------------------------------------------------------------------------
// Round trip: write a config from valid values, read it back.

/** The YAML document for a config, written in full (no field left to its default). */
function toDocument(c: SpeakerConfig): Record<string, unknown> {
  const api = (a: ApiAddress) => formatApiAddress(a);
  return {
    routerId: c.routerId,
    asn: c.asn,
    listen: c.listen ?? false,
    neighbors: c.neighbors.map((n) => ({
      address: n.address,
      asn: n.asn,
      port: n.port,
      passive: n.passive,
      holdTime: n.holdTime,
      connectRetry: n.connectRetry,
      families: n.families.map(familyName),
      ...(n.localAddress !== null ? { localAddress: n.localAddress } : {}),
      ...(n.description !== null ? { description: n.description } : {}),
      nextHopSelf: n.nextHopSelf,
      allowasIn: n.allowasIn,
      ...(n.maxPrefix !== null ? { maxPrefix: n.maxPrefix } : {}),
      import: n.import,
      export: n.export,
    })),
    originate: c.originate,
    api: { listen: api(c.api.listen) },
    mesh: c.mesh,
    clusterId: c.clusterId,
    gracefulRestart: c.gracefulRestart,
    decision: c.decision,
  };
}

const v4 = fc.nat(0xffffffff).map(formatIpv4);
const v6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIpv6(b));
const asn = fc.integer({ min: 1, max: 4294967295 }).filter((a) => a !== 23456);

const neighbor: fc.Arbitrary<NeighborConfig> = fc.oneof(fc.constant(4), fc.constant(6)).chain((version) =>
  fc.record({
    address: version === 4 ? v4 : v6,
    asn,
    port: fc.integer({ min: 1, max: 65535 }),
    passive: fc.boolean(),
    holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 65535 })),
    connectRetry: fc.integer({ min: 1, max: 3600 }),
    families: fc
      .subarray([IPV4_UNICAST, IPV6_UNICAST], { minLength: 1 })
      .chain((f) => fc.shuffledSubarray(f, { minLength: f.length })),
    localAddress: fc.option(version === 4 ? v4 : v6, { nil: null }),
    description: fc.option(fc.string(), { nil: null }),
    routeReflectorClient: fc.constant(false),
    nextHopSelf: fc.boolean(),
    allowasIn: fc.integer({ min: 0, max: 10 }),
    maxPrefix: fc.option(fc.integer({ min: 1, max: 1_000_000 }), { nil: null }),
    import: fc.array(
      fc
        .record({
          prefix: fc.constantFrom('10.0.0.0/8', '192.168.0.0/16', 'fd00::/8'),
          action: fc.constantFrom('accept' as const, 'reject' as const),
        })
        .map((r) => {
          const len = Number(r.prefix.split('/')[1]);
          return { prefix: r.prefix, ge: len, le: len + 8, action: r.action };
        }),
      { maxLength: 3 },
    ),
    export: fc.constant([]),
  }),
);

const prefix4 = fc
  .tuple(fc.nat(0xffffffff), fc.integer({ min: 0, max: 32 }))
  .map(([a, len]) => `${formatIpv4(len === 0 ? 0 : (a & (0xffffffff << (32 - len))) >>> 0)}/${len}`);
const prefix6 = fc
  .tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 }))
  .map(([b, len]) => {
    for (let bit = len; bit < 128; bit++) b[bit >> 3]! &= ~(0x80 >> (bit & 7));
    return `${formatIpv6(b)}/${len}`;
  });

const apiAddr: fc.Arbitrary<ApiAddress> = fc.oneof(
  fc.stringMatching(/^\/[a-z0-9/._-]{1,60}$/).map((path) => ({ kind: 'unix' as const, path })),
  fc.record({
    kind: fc.constant('tcp' as const),
    host: fc.oneof(v4, v6, fc.constant('localhost')),
    port: fc.integer({ min: 1, max: 65535 }),
  }),
);

const speakerConfig: fc.Arbitrary<SpeakerConfig> = fc.record({
  routerId: fc.integer({ min: 1, max: 0xffffffff }).map(formatIpv4),
  asn,
  listen: fc.option(fc.record({ address: fc.oneof(v4, v6), port: fc.integer({ min: 0, max: 65535 }) }), {
    nil: null,
  }),
  neighbors: fc.uniqueArray(neighbor, { selector: (n) => n.address, maxLength: 5 }),
  originate: fc.uniqueArray(fc.oneof(prefix4, prefix6), { maxLength: 8 }),
  api: fc.record({ listen: apiAddr }),
  mesh: fc.record({ lowerAddressDials: fc.boolean() }),
  clusterId: fc.integer({ min: 1, max: 0xffffffff }).map(formatIpv4),
  gracefulRestart: fc.record({
    enabled: fc.boolean(),
    restartTime: fc.integer({ min: 1, max: 4095 }),
    deferralTime: fc.integer({ min: 1, max: 3600 }),
  }),
  decision: fc.record({ alwaysCompareMed: fc.boolean() }),
});

describe('round trip', () => {
  it('a config written from valid values reads back to the same values', () => {
    fc.assert(
      fc.property(speakerConfig, (c) => {
        expect(parseSpeakerConfig(stringify(toDocument(c)), SRC)).toEqual(c);
      }),
      { numRuns: 300 },
    );
  });

  it('reading never throws anything but ConfigError', () => {
    fc.assert(
      fc.property(
        speakerConfig.map((c) => stringify(toDocument(c))),
        fc.nat(),
        fc.string({ maxLength: 4 }),
        (text, at, junk) => {
          const i = at % (text.length + 1);
          try {
            parseSpeakerConfig(text.slice(0, i) + junk + text.slice(i), SRC);
          } catch (err) {
            expect(err).toBeInstanceOf(ConfigError);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('regressions', () => {
  it('an alias to no anchor is a ConfigError, not a ReferenceError', () => {
    // Found by the junk-insertion property: `*` before a key made toJS() throw ReferenceError.
    expect(errors('routerId: *x\n')[0]).toMatch(/^speaker\.yml: .*alias/i);
  });
});
