/**
 * fast-check arbitraries for NetworkPolicy property tests: three namespaces, up to seven pods
 * on this node or another, up to four policies using every selector, peer and port form.
 */
import fc from 'fast-check';
import type {
  ClusterState,
  LabelSelector,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PodInfo,
  Protocol,
} from '../../src/policy/types.js';

export const NS = ['a', 'b', 'c'];
const labelKeys = ['app', 'tier', 'team'];
const labelVals = ['x', 'y', 'z'];

export const labelsArb = fc.dictionary(fc.constantFrom(...labelKeys), fc.constantFrom(...labelVals), {
  maxKeys: 3,
});

export const selectorArb: fc.Arbitrary<LabelSelector> = fc.record(
  {
    matchLabels: fc.dictionary(fc.constantFrom(...labelKeys), fc.constantFrom(...labelVals), { maxKeys: 2 }),
    matchExpressions: fc.array(
      fc.oneof(
        fc.record({
          key: fc.constantFrom(...labelKeys),
          operator: fc.constantFrom('In' as const, 'NotIn' as const),
          values: fc.uniqueArray(fc.constantFrom(...labelVals), { minLength: 1, maxLength: 2 }),
        }),
        fc.record({
          key: fc.constantFrom(...labelKeys),
          operator: fc.constantFrom('Exists' as const, 'DoesNotExist' as const),
        }),
      ),
      { maxLength: 2 },
    ),
  },
  { requiredKeys: [] },
);

const cidrArb: fc.Arbitrary<{ cidr: string; except?: string[] }> = fc.oneof(
  fc.constant({ cidr: '10.0.0.0/24' }),
  fc.constant({ cidr: '10.0.0.0/24', except: ['10.0.0.0/30'] as string[] }),
  fc.constant({ cidr: '10.0.0.4/30' }),
  fc.constant({ cidr: '10.0.0.0/28', except: ['10.0.0.2/31', '10.0.0.8/29'] as string[] }),
  fc.constant({ cidr: '0.0.0.0/0', except: ['10.0.0.0/29'] as string[] }),
  fc.constant({ cidr: '192.168.0.0/16' }),
  fc.constant({ cidr: '10.0.0.3/32' }),
);

const peerArb: fc.Arbitrary<NetworkPolicyPeer> = fc.oneof(
  fc.record({ podSelector: selectorArb }),
  fc.record({ namespaceSelector: selectorArb }),
  fc.record({ podSelector: selectorArb, namespaceSelector: selectorArb }),
  fc.record({ ipBlock: cidrArb }),
);

const portArb: fc.Arbitrary<NetworkPolicyPort> = fc.oneof(
  fc.record({ protocol: fc.constantFrom<Protocol>('TCP', 'UDP', 'SCTP') }, { requiredKeys: [] }),
  fc.record(
    { protocol: fc.constantFrom<Protocol>('TCP', 'UDP'), port: fc.constantFrom(53, 80, 81, 8080) },
    { requiredKeys: ['port'] },
  ),
  fc.record(
    {
      protocol: fc.constantFrom<Protocol>('TCP', 'UDP'),
      port: fc.constant(80),
      endPort: fc.constantFrom(80, 81, 9000),
    },
    { requiredKeys: ['port', 'endPort'] },
  ),
  fc.record(
    { protocol: fc.constantFrom<Protocol>('TCP', 'UDP'), port: fc.constantFrom('http', 'dns', 'nope') },
    { requiredKeys: ['port'] },
  ),
);

const ruleParts = {
  peers: fc.option(fc.array(peerArb, { maxLength: 3 }), { nil: undefined }),
  ports: fc.option(fc.array(portArb, { maxLength: 3 }), { nil: undefined }),
};

export const policyArb = (i: number): fc.Arbitrary<NetworkPolicy> =>
  fc
    .record({
      ns: fc.constantFrom(...NS),
      podSelector: selectorArb,
      policyTypes: fc.option(
        fc.constantFrom<NetworkPolicy['spec']['policyTypes']>(
          [],
          ['Ingress'],
          ['Egress'],
          ['Ingress', 'Egress'],
        ),
        { nil: undefined },
      ),
      ingress: fc.option(fc.array(fc.record(ruleParts), { maxLength: 2 }), { nil: undefined }),
      egress: fc.option(fc.array(fc.record(ruleParts), { maxLength: 2 }), { nil: undefined }),
    })
    .map(({ ns, podSelector, policyTypes, ingress, egress }) => {
      const spec: NetworkPolicy['spec'] = { podSelector };
      if (policyTypes !== undefined) spec.policyTypes = policyTypes;
      if (ingress !== undefined) {
        spec.ingress = ingress.map((r) => ({
          ...(r.peers ? { from: r.peers } : {}),
          ...(r.ports ? { ports: r.ports } : {}),
        }));
      }
      if (egress !== undefined) {
        spec.egress = egress.map((r) => ({
          ...(r.peers ? { to: r.peers } : {}),
          ...(r.ports ? { ports: r.ports } : {}),
        }));
      }
      return {
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: `p${i}`, namespace: ns },
        spec,
      };
    });

const namedPorts = [
  { name: 'http', port: 80, protocol: 'TCP' as const },
  { name: 'http', port: 8080, protocol: 'TCP' as const },
  { name: 'dns', port: 53, protocol: 'UDP' as const },
  { name: 'dns', port: 81, protocol: 'TCP' as const },
];

export const stateArb: fc.Arbitrary<ClusterState> = fc
  .record({
    nsLabels: fc.tuple(labelsArb, labelsArb, labelsArb),
    pods: fc.array(
      fc.record({
        ns: fc.constantFrom(...NS, 'ghost'),
        labels: labelsArb,
        local: fc.boolean(),
        ports: fc.subarray([0, 1, 2, 3]),
      }),
      { minLength: 1, maxLength: 7 },
    ),
    npol: fc.integer({ min: 0, max: 4 }),
  })
  .chain(({ nsLabels, pods, npol }) =>
    fc.tuple(...Array.from({ length: npol }, (_, i) => policyArb(i))).map((policies) => ({
      node: 'n1',
      namespaces: NS.map((name, i) => ({ name, labels: nsLabels[i]! })),
      pods: pods.map(
        (p, i): PodInfo => ({
          namespace: p.ns,
          name: `pod${i}`,
          labels: p.labels,
          ips: [`10.0.0.${i + 1}`],
          node: p.local ? 'n1' : 'n2',
          interface: `twl${i}`,
          ports: p.ports
            .map((j) => namedPorts[j]!)
            .filter((cp, _, all) => all.filter((x) => x.name === cp.name).length === 1 || cp.port !== 8080),
        }),
      ),
      policies,
    })),
  );
