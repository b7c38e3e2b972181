import { describe, expect, it } from 'vitest';
import {
  affinityChangeMoves,
  applyRouteChanges,
  bgpGlobal,
  bgpPeerSpec,
  blockChangeMoves,
  blockRoutes,
  changeMoves,
  clusterState,
  desiredNeighbors,
  exportRules,
  localAddresses,
  NODE_ANNOTATIONS,
  type NodeInfo,
  nodeInfo,
  podRoutes,
} from '../../src/agent/desired.js';
import { filterAccepts } from '../../src/bgp/policy.js';
import { hostVethName, hostVethNameForContainer } from '../../src/cni/names.js';
import type { RouteSpec } from '../../src/dataplane/route-model.js';
import type { StoredObject } from '../../src/datastore/types.js';
import type { IPAMBlockSpec } from '../../src/ipam/model.js';
import { parsePrefix4 } from '../../src/net/addr.js';

const node = (name: string, address?: string, extra: Partial<NodeInfo> = {}): NodeInfo => ({
  name,
  labels: {},
  address,
  asn: undefined,
  port: undefined,
  internalIP: undefined,
  ...extra,
});

const peerObj = (name: string, spec: Record<string, unknown>): StoredObject => ({
  apiVersion: 'crd.twill.dev/v1',
  kind: 'BGPPeer',
  metadata: { name },
  spec,
});

const peer = (name: string, spec: Record<string, unknown>) => {
  const p = bgpPeerSpec(peerObj(name, spec));
  if (typeof p === 'string') throw new Error(p);
  return p;
};

describe('node discovery', () => {
  it('reads the address, AS and port annotations and the InternalIP', () => {
    const n = nodeInfo({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: 'a',
        labels: { rack: '1' },
        annotations: {
          [NODE_ANNOTATIONS.address]: '10.0.0.1',
          [NODE_ANNOTATIONS.asn]: '65001',
          [NODE_ANNOTATIONS.port]: '1179',
        },
      },
      status: {
        addresses: [
          { type: 'Hostname', address: 'a' },
          { type: 'InternalIP', address: '192.168.0.1' },
        ],
      },
    });
    expect(n).toEqual({
      name: 'a',
      labels: { rack: '1' },
      address: '10.0.0.1',
      asn: 65001,
      port: 1179,
      internalIP: '192.168.0.1',
    });
  });

  it('a node without (or with a bad) address annotation has no address', () => {
    const n = nodeInfo({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'b', annotations: { [NODE_ANNOTATIONS.address]: 'x' } },
    });
    expect(n.address).toBeUndefined();
  });
});

describe('BGP neighbors', () => {
  const me = node('a', '10.0.0.1', { labels: { rack: 'r1' } });
  const nodes = [me, node('b', '10.0.0.2'), node('c', '10.0.0.3', { port: 1179 }), node('d')];
  const global = bgpGlobal(undefined);

  it('the mesh: every other node with an address, iBGP, the cluster AS; exports only inside pools', () => {
    const { neighbors, kinds } = desiredNeighbors({
      me,
      asn: 64512,
      global,
      nodes,
      peers: [],
      poolCidrs: ['10.244.0.0/16'],
    });
    expect(neighbors.map((n) => [n.address, n.asn, n.port])).toEqual([
      ['10.0.0.2', 64512, 179],
      ['10.0.0.3', 64512, 1179],
    ]);
    expect([...kinds.values()]).toEqual(['node-to-node mesh', 'node-to-node mesh']);
    const rules = neighbors[0]!.export.map((r) => ({
      ...r,
      prefix: r.prefix.includes(':') ? r.prefix : parsePrefix4(r.prefix),
    }));
    expect(filterAccepts(rules, parsePrefix4('10.244.1.0/26'))).toBe(true);
    expect(filterAccepts(rules, parsePrefix4('10.244.1.7/32'))).toBe(true);
    expect(filterAccepts(rules, parsePrefix4('0.0.0.0/0'))).toBe(false);
    expect(filterAccepts(rules, parsePrefix4('192.0.2.0/24'))).toBe(false);
  });

  it('BGPConfiguration turns the mesh off; BGPPeers global, for this node, and by selector', () => {
    const off = bgpGlobal({
      apiVersion: 'crd.twill.dev/v1',
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { nodeToNodeMeshEnabled: false, asNumber: 65000 },
    });
    expect(off).toMatchObject({ meshEnabled: false, asn: 65000, listenPort: 179 });
    const peers = [
      peer('rr', { peerIP: '10.0.0.100', asNumber: 65000 }),
      peer('tor', { peerIP: '10.0.0.254', asNumber: 65100, node: 'a', holdTime: 9 }),
      peer('other-rack', { peerIP: '10.0.1.254', asNumber: 65200, nodeSelector: "rack == 'r2'" }),
      peer('this-rack', { peerIP: '10.0.2.254', asNumber: 65300, nodeSelector: "rack == 'r1'" }),
      peer('self', { peerIP: '10.0.0.1', asNumber: 65000 }),
    ];
    const { neighbors, kinds } = desiredNeighbors({
      me,
      asn: 65000,
      global: off,
      nodes,
      peers,
      poolCidrs: [],
    });
    expect(neighbors.map((n) => n.address)).toEqual(['10.0.0.100', '10.0.0.254', '10.0.2.254']);
    expect(neighbors.find((n) => n.address === '10.0.0.254')!.holdTime).toBe(9);
    expect(Object.fromEntries(kinds)).toEqual({
      '10.0.0.100': 'global',
      '10.0.0.254': 'node specific',
      '10.0.2.254': 'node specific',
    });
  });

  it('a BGPPeer at a mesh node’s address replaces the mesh session (a node acting as route reflector)', () => {
    const peers = [peer('rr-b', { peerIP: '10.0.0.2', asNumber: 64512, routeReflectorClient: true })];
    const { neighbors, kinds } = desiredNeighbors({ me, asn: 64512, global, nodes, peers, poolCidrs: [] });
    expect(neighbors).toHaveLength(2);
    const b = neighbors.find((n) => n.address === '10.0.0.2')!;
    expect(b.routeReflectorClient).toBe(true);
    expect(kinds.get('10.0.0.2')).toBe('global');
  });

  it('BFD: BGPConfiguration for the mesh, a BGPPeer for itself; enabled false or absent is none', () => {
    const me = node('a', '10.0.0.1');
    const nodes = [me, node('b', '10.0.0.2')];
    const global = bgpGlobal({
      apiVersion: 'crd.twill.dev/v1',
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { bfd: { enabled: true, minTxMs: 100 } },
    });
    expect(global.bfd).toEqual({ minTxMs: 100, minRxMs: 300, multiplier: 3 });
    const peers = [
      peer('tor', { peerIP: '10.0.0.254', asNumber: 65000, bfd: { multiplier: 5 } }),
      peer('off', { peerIP: '10.0.0.253', asNumber: 65000, bfd: { enabled: false } }),
      peer('none', { peerIP: '10.0.0.252', asNumber: 65000 }),
    ];
    const { neighbors } = desiredNeighbors({ me, asn: 64512, global, nodes, peers, poolCidrs: [] });
    const bfd = Object.fromEntries(neighbors.map((n) => [n.address, n.bfd ?? null]));
    expect(bfd).toEqual({
      '10.0.0.2': { minTxMs: 100, minRxMs: 300, multiplier: 3 },
      '10.0.0.252': null,
      '10.0.0.253': null,
      '10.0.0.254': { minTxMs: 300, minRxMs: 300, multiplier: 5 },
    });
    expect(bgpGlobal(undefined).bfd).toBeNull();
  });

  it('an unusable BGPPeer says which field is wrong', () => {
    expect(bgpPeerSpec(peerObj('x', { peerIP: 'nope', asNumber: 1 }))).toMatch(/BGPPeer x: spec.peerIP/);
    expect(bgpPeerSpec(peerObj('x', { peerIP: '10.0.0.9', asNumber: 23456 }))).toMatch(/spec.asNumber/);
    expect(bgpPeerSpec(peerObj('x', { peerIP: '10.0.0.9', asNumber: 1, holdTime: 2 }))).toMatch(
      /spec.holdTime/,
    );
    expect(bgpPeerSpec(peerObj('x', { peerIP: '10.0.0.9', asNumber: 1, nodeSelector: 'a ||' }))).toMatch(
      /spec.nodeSelector/,
    );
    expect(
      bgpPeerSpec(peerObj('x', { peerIP: '10.0.0.9', asNumber: 1, node: 'a', nodeSelector: 'all()' })),
    ).toMatch(/exclude each other/);
  });

  it('export rules end with a reject of both families', () => {
    expect(exportRules(['bad']).map((r) => r.action)).toEqual(['reject', 'reject']);
  });
});

describe('routes', () => {
  const block = (
    cidr: string,
    affinity: string | null,
    allocs: [number, string, string?, string?][],
  ): IPAMBlockSpec => {
    const allocations: (number | null)[] = new Array(64).fill(null);
    const attributes = allocs.map(([, handle, namespace, pod], i) => {
      allocations[allocs[i]![0]] = i;
      return { handle, node: 'a', ...(namespace ? { namespace } : {}), ...(pod ? { pod } : {}) };
    });
    return {
      cidr,
      affinity,
      allocations,
      unallocated: [],
      attributes,
      sequenceNumber: 0,
      sequenceNumberForAllocation: {},
    };
  };
  const blocks = [
    block('10.244.0.0/26', 'host:a', [[1, 'k8s-pod-network.c1', 'default', 'web']]),
    block('10.244.0.64/26', 'host:b', [[5, 'k8s-pod-network.c2']]),
    block('10.244.0.128/26', 'host:b', []),
  ];

  it('pods: a /32 on the pod’s veth for every address this node allocated, borrowed ones too', () => {
    const local = localAddresses('a', blocks);
    expect(local.map((l) => l.address)).toEqual(['10.244.0.1', '10.244.0.69']);
    expect(podRoutes(local)).toEqual([
      { dst: '10.244.0.1/32', kind: 'dev', dev: hostVethName('default', 'web') },
      { dst: '10.244.0.69/32', kind: 'dev', dev: hostVethNameForContainer('c2') },
    ]);
    expect(localAddresses('b', blocks)).toEqual([]);
  });

  it('blocks: a blackhole per block affine to this node', () => {
    expect(blockRoutes('a', blocks)).toEqual([{ dst: '10.244.0.0/26', kind: 'blackhole' }]);
    expect(blockRoutes('b', blocks).map((r) => r.dst)).toEqual(['10.244.0.64/26', '10.244.0.128/26']);
    // With the affinities: only confirmed ones, as origination has it (a claim under way, none).
    const aff = (cidr: string, state: 'confirmed' | 'pending' | 'pendingDeletion') => ({
      node: 'b',
      cidr,
      state,
    });
    expect(
      blockRoutes('b', blocks, [aff('10.244.0.64/26', 'confirmed'), aff('10.244.0.128/26', 'pending')]).map(
        (r) => r.dst,
      ),
    ).toEqual(['10.244.0.64/26']);
    expect(blockRoutes('b', blocks, [aff('10.244.0.64/26', 'pendingDeletion')])).toEqual([]);
  });

  it('a block change moves this node’s own part only when the block is its own or holds its address', () => {
    const empty = block('10.244.1.0/26', 'host:c', []);
    // Another node claims a new block: nothing to recompute here (routing or policy).
    expect(blockChangeMoves('a', undefined, empty)).toEqual({ local: false, policy: false });
    expect(blockChangeMoves('a', empty, undefined)).toEqual({ local: false, policy: false });
    // Its own block, new, changed or gone.
    expect(blockChangeMoves('c', undefined, empty)).toEqual({ local: true, policy: false });
    expect(blockChangeMoves('c', empty, undefined)).toEqual({ local: true, policy: false });
    // A pod on another node gets an address: the policy input moves, not this node's routing.
    const withPod = block('10.244.1.0/26', 'host:c', [[3, 'k8s-pod-network.c9', 'default', 'db']]);
    const onC = { ...withPod, attributes: withPod.attributes.map((a) => ({ ...a, node: 'c' })) };
    expect(blockChangeMoves('b', empty, onC)).toEqual({ local: false, policy: true });
    // This node borrows an address in another node's block (attributes say node a): its /32.
    expect(blockChangeMoves('a', empty, withPod)).toEqual({ local: true, policy: true });
    expect(blockChangeMoves('a', withPod, empty)).toEqual({ local: true, policy: true });
    // Only a node's own affinities move its origination.
    const aff = { node: 'c', cidr: '10.244.1.0/26', state: 'confirmed' } as const;
    expect(affinityChangeMoves('c', undefined, aff)).toBe(true);
    expect(affinityChangeMoves('a', undefined, aff)).toBe(false);
    expect(affinityChangeMoves('a', aff, undefined)).toBe(false);
  });

  it('each kind moves only its part: neighbors, this node’s own part, or the policy input', () => {
    const obj = (
      kind: string,
      name: string,
      spec: unknown,
      extra: Partial<StoredObject> = {},
    ): StoredObject =>
      ({ apiVersion: 'crd.twill.dev/v1', kind, metadata: { name }, spec, ...extra }) as StoredObject;
    const none = { neighbors: false, local: false, policy: false };
    const neighbors = { ...none, neighbors: true };
    // Another node's block and affinity, claimed and released: nothing at all on node a.
    const remote = obj('IPAMBlock', '10-244-1-0-26', block('10.244.1.0/26', 'host:c', []));
    const remoteAff = obj('BlockAffinity', 'c-10-244-1-0-26', {
      node: 'c',
      cidr: '10.244.1.0/26',
      state: 'confirmed',
    });
    expect(changeMoves('a', 'IPAMBlock', undefined, remote)).toEqual(none);
    expect(changeMoves('a', 'IPAMBlock', remote, undefined)).toEqual(none);
    expect(changeMoves('a', 'BlockAffinity', undefined, remoteAff)).toEqual(none);
    // The same on node c: its own part only, never the neighbors.
    expect(changeMoves('c', 'IPAMBlock', undefined, remote)).toEqual({ ...none, local: true });
    expect(changeMoves('c', 'BlockAffinity', remoteAff, undefined)).toEqual({ ...none, local: true });
    // BGP configuration, peers and pools (the export rules): the neighbors only.
    for (const kind of ['BGPConfiguration', 'BGPPeer', 'IPPool'])
      expect(changeMoves('a', kind as StoredObject['kind'], undefined, obj(kind, 'x', {}))).toEqual(
        neighbors,
      );
    // Pods, namespaces and policies: the policy input only.
    for (const kind of ['Pod', 'Namespace', 'NetworkPolicy'])
      expect(changeMoves('a', kind as StoredObject['kind'], undefined, obj(kind, 'x', {}))).toEqual({
        ...none,
        policy: true,
      });
    // A Node: what desiredNeighbors reads (annotations, labels), not its status.
    const n = obj(
      'Node',
      'b',
      {},
      { metadata: { name: 'b', annotations: { [NODE_ANNOTATIONS.address]: '10.0.0.2' } } },
    );
    const heartbeat = { ...n, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.2' }] } };
    const moved = {
      ...n,
      metadata: { ...n.metadata, annotations: { [NODE_ANNOTATIONS.address]: '10.0.0.9' } },
    };
    const relabelled = { ...n, metadata: { ...n.metadata, labels: { rack: 'r1' } } };
    expect(changeMoves('a', 'Node', undefined, n)).toEqual(neighbors);
    expect(changeMoves('a', 'Node', n, heartbeat)).toEqual(none);
    expect(changeMoves('a', 'Node', n, moved)).toEqual(neighbors);
    expect(changeMoves('a', 'Node', n, relabelled)).toEqual(neighbors);
    expect(changeMoves('a', 'Node', n, undefined)).toEqual(neighbors);
    // Kinds the agent does not route or police by.
    expect(changeMoves('a', 'IPAMHandle', undefined, obj('IPAMHandle', 'h', {}))).toEqual(none);
  });

  it('bgp: best-route changes become via routes with every next hop; local and empty ones go', () => {
    const m = new Map<string, RouteSpec>();
    applyRouteChanges(m, [
      { prefix: '10.244.1.0/26', nextHops: ['10.0.0.2'], local: false },
      { prefix: '10.244.2.0/26', nextHops: ['10.0.0.3', '10.0.0.4'], local: false },
      { prefix: '10.244.0.0/26', nextHops: [], local: true },
    ]);
    expect([...m.values()]).toEqual([
      { dst: '10.244.1.0/26', kind: 'via', via: ['10.0.0.2'] },
      { dst: '10.244.2.0/26', kind: 'via', via: ['10.0.0.3', '10.0.0.4'] },
    ]);
    applyRouteChanges(m, [{ prefix: '10.244.1.0/26', nextHops: [], local: false }]);
    expect([...m.keys()]).toEqual(['10.244.2.0/26']);
  });
});

describe('policy input', () => {
  const pod = (
    ns: string,
    name: string,
    nodeName: string,
    extra: Record<string, unknown> = {},
  ): StoredObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { namespace: ns, name, labels: { app: name } },
    spec: { nodeName, containers: [{ ports: [{ name: 'http', containerPort: 8080 }] }], ...extra },
    status: {},
  });

  it('a pod gets its IPAM addresses before the runtime writes its status, a local one its veth', () => {
    const s = clusterState({
      node: 'a',
      namespaces: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { env: 'x' } } },
      ],
      pods: [
        pod('default', 'web', 'a'),
        { ...pod('default', 'db', 'b'), status: { podIPs: [{ ip: '10.244.0.70' }] } },
        pod('default', 'host', 'a', { hostNetwork: true }),
        pod('default', 'pending', 'b'),
      ],
      policies: [
        {
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { namespace: 'default', name: 'deny' },
          spec: { podSelector: {} },
        },
      ],
      addresses: [
        {
          node: 'a',
          address: '10.244.0.1',
          family: 4,
          handle: 'h',
          namespace: 'default',
          pod: 'web',
          dev: 'x',
        },
        {
          node: 'b',
          address: '10.244.0.71',
          family: 4,
          handle: 'h2',
          namespace: 'default',
          pod: 'db',
          dev: 'y',
        },
        // A stale allocation by another node for a pod of the same name is not the pod's.
        {
          node: 'c',
          address: '10.244.9.9',
          family: 4,
          handle: 'h3',
          namespace: 'default',
          pod: 'web',
          dev: 'z',
        },
      ],
    });
    expect(s.pods).toEqual([
      {
        namespace: 'default',
        name: 'web',
        labels: { app: 'web' },
        ips: ['10.244.0.1'],
        node: 'a',
        interface: hostVethName('default', 'web'),
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
      {
        namespace: 'default',
        name: 'db',
        labels: { app: 'db' },
        ips: ['10.244.0.70', '10.244.0.71'],
        node: 'b',
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
      },
    ]);
    expect(s.namespaces).toEqual([{ name: 'default', labels: { env: 'x' } }]);
    expect(s.policies).toHaveLength(1);
  });

  it('an unchanged pod object keeps its PodInfo; new IPAM addresses or a new object make a new one', () => {
    const web = pod('default', 'web', 'a');
    const addr = (address: string) => ({
      node: 'a',
      address,
      family: 4 as const,
      handle: 'h',
      namespace: 'default',
      pod: 'web',
      dev: 'x',
    });
    const state = (o: StoredObject, addresses: ReturnType<typeof addr>[]) =>
      clusterState({ node: 'a', namespaces: [], pods: [o], policies: [], addresses }).pods;
    const [first] = state(web, [addr('10.244.0.1')]);
    expect(state(web, [addr('10.244.0.1')])[0]).toBe(first);
    const [moved] = state(web, [addr('10.244.0.2')]);
    expect(moved).not.toBe(first);
    expect(moved!.ips).toEqual(['10.244.0.2']);
    // The store replaced the object (a label change): parsed again.
    const relabelled = { ...web, metadata: { ...web.metadata, labels: { app: 'other' } } };
    expect(state(relabelled, [addr('10.244.0.2')])[0]!.labels).toEqual({ app: 'other' });
    // No address left: the pod is not in the policy's view.
    expect(state(web, [])).toEqual([]);
  });
});
