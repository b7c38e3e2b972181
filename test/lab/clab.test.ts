/**
 * The containerlab topology reader: the subset Twill's labs use, containerlab's inheritance
 * rules, both link forms, and errors that name the field.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/bgp/config.js';
import { bindHostPath, type ClabTopology, parseBind, readClab } from '../../src/lab/clab.js';

const SRC = 'lab.clab.yml';

function errors(text: string): string[] {
  try {
    readClab(text, SRC);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message.split('\n');
  }
  throw new Error('expected a ConfigError');
}

const twoNodes = `
name: lab
topology:
  nodes:
    a: {kind: linux, image: alpine}
    b: {kind: linux, image: alpine}
`;

describe('readClab', () => {
  it('reads nodes in file order and a brief-form link', () => {
    const t = readClab(
      `name: twill-bird
prefix: ""
mgmt: {network: clab}
topology:
  nodes:
    twill1:
      kind: linux
      image: ghcr.io/twill-net/twill:latest
      binds: [twill-bird/twill.yml:/etc/twill/speaker.yml:ro]
      cmd: twill speaker --config /etc/twill/speaker.yml
      exec: [ip addr add 10.10.0.1/24 dev eth1]
      env: {A: 1, B: true}
      labels: {role: speaker}
      mgmt-ipv4: 172.20.20.2
      ports: ["179:179"]
    bird1:
      kind: linux
      image: twill-lab/bird2
  links:
    - endpoints: ["twill1:eth1", "bird1:eth1"]
      mtu: 9000
`,
      SRC,
    );
    expect(t).toEqual({
      name: 'twill-bird',
      nodes: [
        {
          name: 'twill1',
          kind: 'linux',
          image: 'ghcr.io/twill-net/twill:latest',
          cmd: 'twill speaker --config /etc/twill/speaker.yml',
          entrypoint: null,
          binds: [{ host: 'twill-bird/twill.yml', container: '/etc/twill/speaker.yml', options: 'ro' }],
          exec: ['ip addr add 10.10.0.1/24 dev eth1'],
          env: { A: '1', B: 'true' },
          labels: { role: 'speaker' },
          mgmtIpv4: '172.20.20.2',
          mgmtIpv6: null,
        },
        {
          name: 'bird1',
          kind: 'linux',
          image: 'twill-lab/bird2',
          cmd: null,
          entrypoint: null,
          binds: [],
          exec: [],
          env: {},
          labels: {},
          mgmtIpv4: null,
          mgmtIpv6: null,
        },
      ],
      links: [
        {
          endpoints: [
            { node: 'twill1', interface: 'eth1' },
            { node: 'bird1', interface: 'eth1' },
          ],
          mtu: 9000,
        },
      ],
    } satisfies ClabTopology);
  });

  it('reads the extended link form', () => {
    const t = readClab(
      `${twoNodes}  links:
    - type: veth
      endpoints:
        - {node: a, interface: eth1, mac: "02:00:00:00:00:01"}
        - {node: b, interface: eth2}
`,
      SRC,
    );
    expect(t.links).toEqual([
      {
        endpoints: [
          { node: 'a', interface: 'eth1' },
          { node: 'b', interface: 'eth2' },
        ],
        mtu: null,
      },
    ]);
  });

  it('inherits from defaults and kinds as containerlab does', () => {
    const t = readClab(
      `name: lab
topology:
  defaults:
    kind: linux
    exec: [sysctl -w net.ipv4.ip_forward=1]
    env: {LEVEL: defaults, D: d}
    binds: [common:/etc/common, d-only:/etc/d]
  kinds:
    linux:
      image: debian:bookworm-slim
      exec: [echo kind]
      env: {LEVEL: kind}
      binds: [kind-common:/etc/common]
  nodes:
    plain: {}
    own:
      image: alpine
      exec: [echo node]
      env: {LEVEL: node}
      binds: [node-common:/etc/common:rw]
`,
      SRC,
    );
    const [plain, own] = t.nodes;
    expect(plain).toMatchObject({
      kind: 'linux',
      image: 'debian:bookworm-slim',
      exec: ['sysctl -w net.ipv4.ip_forward=1', 'echo kind'],
      env: { LEVEL: 'kind', D: 'd' },
      binds: [
        { host: 'kind-common', container: '/etc/common', options: null },
        { host: 'd-only', container: '/etc/d', options: null },
      ],
    });
    expect(own).toMatchObject({
      image: 'alpine',
      exec: ['sysctl -w net.ipv4.ip_forward=1', 'echo kind', 'echo node'],
      env: { LEVEL: 'node', D: 'd' },
      binds: [
        { host: 'node-common', container: '/etc/common', options: 'rw' },
        { host: 'd-only', container: '/etc/d', options: null },
      ],
    });
  });

  it('allows a topology without links', () => {
    expect(readClab(twoNodes, SRC).links).toEqual([]);
  });
});

describe('errors name the field', () => {
  const cases: [string, string, string[]][] = [
    ['not a mapping', '- a\n', ['the document is a list, not a containerlab topology (name, topology)']],
    ['no name', 'topology: {nodes: {a: {kind: linux}}}\n', ['name: required (the lab name)']],
    [
      'bad name',
      'name: "my lab"\ntopology: {nodes: {a: {kind: linux}}}\n',
      ['name: "my lab" is not a lab name (letters, digits, _ . -)'],
    ],
    ['no topology', 'name: x\n', ['topology: required']],
    ['no nodes', 'name: x\ntopology: {links: []}\n', ['topology.nodes: required']],
    [
      'unknown top-level key',
      'name: x\ntopolgy: {}\ntopology: {nodes: {a: {kind: linux}}}\n',
      ['topolgy: unknown field (did you mean topology?)'],
    ],
    [
      'unknown node key',
      'name: x\ntopology: {nodes: {a: {kind: linux, bind: [a:/b]}}}\n',
      ['topology.nodes.a.bind: unknown field (did you mean binds?)'],
    ],
    [
      'unsupported node key',
      'name: x\ntopology: {nodes: {a: {kind: linux, network-mode: host}}}\n',
      [
        'topology.nodes.a.network-mode: unknown field (expected one of: kind, image, cmd, entrypoint, binds, exec, env, labels, mgmt-ipv4, mgmt-ipv6)',
      ],
    ],
    [
      'no kind',
      'name: x\ntopology: {nodes: {a: {image: alpine}}}\n',
      ['topology.nodes.a.kind: required (here, in its kind or in topology.defaults)'],
    ],
    [
      'bad node name',
      'name: x\ntopology: {nodes: {"a b": {kind: linux}}}\n',
      ['topology.nodes.a b: "a b" is not a node name (letters, digits, _ . -)'],
    ],
    [
      'kind not a string',
      'name: x\ntopology: {nodes: {a: {kind: 1}}}\n',
      [
        'topology.nodes.a.kind: 1 is not a non-empty string',
        'topology.nodes.a.kind: required (here, in its kind or in topology.defaults)',
      ],
    ],
    [
      'binds not a list',
      'name: x\ntopology: {nodes: {a: {kind: linux, binds: a:/b}}}\n',
      ['topology.nodes.a.binds: "a:/b" is not a list of strings'],
    ],
    [
      'bind form',
      'name: x\ntopology: {nodes: {a: {kind: linux, binds: [/only, "a:b", "a:/b:"]}}}\n',
      [
        'topology.nodes.a.binds[0]: "/only" is not HOST_PATH:CONTAINER_PATH[:OPTIONS]',
        'topology.nodes.a.binds[1]: "a:b": the container path b is not absolute',
        'topology.nodes.a.binds[2]: "a:/b:" ends with an empty option',
      ],
    ],
    [
      'exec item',
      'name: x\ntopology: {nodes: {a: {kind: linux, exec: [1]}}}\n',
      ['topology.nodes.a.exec[0]: 1 is not a non-empty string'],
    ],
    [
      'env value',
      'name: x\ntopology: {nodes: {a: {kind: linux, env: {A: [1]}}}}\n',
      ['topology.nodes.a.env.A: a list is not a string, number or boolean'],
    ],
    [
      'defaults key',
      'name: x\ntopology: {defaults: {knid: linux}, nodes: {a: {kind: linux}}}\n',
      ['topology.defaults.knid: unknown field (did you mean kind?)'],
    ],
    [
      'kinds not a mapping',
      'name: x\ntopology: {kinds: [linux], nodes: {a: {kind: linux}}}\n',
      ['topology.kinds: a list is not a mapping of kinds'],
    ],
    [
      'links not a list',
      `${twoNodes}  links: {a: b}\n`,
      ['topology.links: a mapping is not a list of links'],
    ],
    [
      'one endpoint',
      `${twoNodes}  links: [{endpoints: ["a:eth1"]}]\n`,
      ['topology.links[0].endpoints: a list is not a list of two endpoints'],
    ],
    [
      'endpoint form',
      `${twoNodes}  links: [{endpoints: ["a", "b:eth1:x"]}]\n`,
      [
        'topology.links[0].endpoints[0]: "a" is not NODE:INTERFACE',
        'topology.links[0].endpoints[1]: "b:eth1:x" is not NODE:INTERFACE',
      ],
    ],
    [
      'unknown node',
      `${twoNodes}  links: [{endpoints: ["a:eth1", "c:eth1"]}]\n`,
      ['topology.links[0].endpoints[1]: node "c" is not in topology.nodes'],
    ],
    [
      'special endpoint',
      `${twoNodes}  links: [{endpoints: ["a:eth1", "host:veth-a"]}]\n`,
      ['topology.links[0].endpoints[1]: node "host" is not in topology.nodes'],
    ],
    [
      'interface name',
      `${twoNodes}  links: [{endpoints: ["a:this-is-too-long0", "b:e/1"]}]\n`,
      [
        'topology.links[0].endpoints[0]: interface "this-is-too-long0" is not a Linux interface name (1..15 of A-Z a-z 0-9 _ . -)',
        'topology.links[0].endpoints[1]: interface "e/1" is not a Linux interface name (1..15 of A-Z a-z 0-9 _ . -)',
      ],
    ],
    [
      'interface used twice',
      `${twoNodes}  links: [{endpoints: ["a:eth1", "b:eth1"]}, {endpoints: ["a:eth1", "b:eth2"]}]\n`,
      ['topology.links[1].endpoints[0]: a:eth1 is also topology.links[0].endpoints[0]'],
    ],
    [
      'mtu',
      `${twoNodes}  links: [{endpoints: ["a:eth1", "b:eth1"], mtu: 10}]\n`,
      ['topology.links[0].mtu: 10 is not an MTU 68..65535'],
    ],
    [
      'link key',
      `${twoNodes}  links: [{endpoint: ["a:eth1", "b:eth1"]}]\n`,
      [
        'topology.links[0].endpoint: unknown field (did you mean endpoints?)',
        'topology.links[0].endpoints: required (a list of two endpoints)',
      ],
    ],
    [
      'link type',
      `${twoNodes}  links: [{type: host, endpoints: [{node: a, interface: eth1}]}]\n`,
      ['topology.links[0].type: "host" is not supported (only veth links between nodes)'],
    ],
    [
      'extended endpoint key',
      `${twoNodes}  links: [{type: veth, endpoints: [{node: a, iface: eth1}, {node: b, interface: eth1}]}]\n`,
      [
        'topology.links[0].endpoints[0].iface: unknown field (did you mean interface?)',
        'topology.links[0].endpoints[0]: interface is missing (NODE:INTERFACE or {node, interface})',
      ],
    ],
  ];
  it.each(cases)('%s', (_name, text, want) => {
    expect(errors(text)).toEqual(want.map((w) => `${SRC}: ${w}`));
  });

  it('YAML syntax errors give a line', () => {
    expect(errors('name: x\nname: y\n')).toEqual([`${SRC}:2:1: Map keys must be unique`]);
  });
});

describe('binds', () => {
  it('parseBind splits host, container and options', () => {
    expect(parseBind('a/b:/c')).toEqual({ host: 'a/b', container: '/c', options: null });
    expect(parseBind('/a:/c:ro')).toEqual({ host: '/a', container: '/c', options: 'ro' });
  });

  it('bindHostPath resolves relative host paths against the topology file', () => {
    const b = { host: 'twill-bird/bird.conf', container: '/etc/bird/bird.conf', options: null };
    expect(bindHostPath('/src/containerlab/twill-bird.clab.yml', b)).toBe(
      '/src/containerlab/twill-bird/bird.conf',
    );
    expect(bindHostPath('/src/x.clab.yml', { ...b, host: '/etc/hosts' })).toBe('/etc/hosts');
  });
});
