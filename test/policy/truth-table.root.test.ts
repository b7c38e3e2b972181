/**
 * NetworkPolicy truth tables on the real kernel. One node namespace, three Kubernetes namespaces
 * of three pods each (pod namespaces on veths, the 169.254.1.1 scheme), every pod and the node
 * serving TCP and UDP echo on 80 and 81. Each scenario sets the cluster state (policies, labels),
 * feeds its differences into the incremental compiler and applies the result over the previous
 * scenario's rules (the agent's path), probes every pair
 * with real connections (TCP connect + echo, UDP echo; a drop is a 400 ms timeout, retried once)
 * and compares the observed matrix with the one the reference evaluator (reference.ts, written
 * from the API documentation and sharing no code with the compiler) expects. Conntrack is
 * flushed between scenarios so every probe is a new connection. All iptables and
 * ipset work happens inside the test's own namespaces.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Renderer } from '../../src/dataplane/iptables/render.js';
import { execInNetns, PolicyTable } from '../../src/dataplane/iptables/table.js';
import { PolicyCompiler } from '../../src/policy/compile.js';
import type { ClusterState, NetworkPolicy, PodInfo } from '../../src/policy/types.js';
import { describeSystem } from '../helpers/env.js';
import { Lab } from '../helpers/netns.js';
import { type Agent, addPod, buildNode, type LabPod, removeAgentFile, startAgent } from './helpers.js';
import { refAllows } from './reference.js';

const NODE_IP = '10.9.0.1';
const NAMESPACES: { name: string; labels: Record<string, string> }[] = [
  { name: 'ns-a', labels: { team: 'a', env: 'prod' } },
  { name: 'ns-b', labels: { team: 'b', env: 'dev' } },
  { name: 'ns-c', labels: { team: 'c' } },
];
const POD_TEMPLATES: { name: string; labels: Record<string, string>; ports: PodInfo['ports'] }[] = [
  {
    name: 'p1',
    labels: { app: 'web', tier: 'fe' },
    ports: [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'alt', port: 81, protocol: 'TCP' },
    ],
  },
  {
    name: 'p2',
    labels: { app: 'db', tier: 'be' },
    ports: [
      { name: 'http', port: 81, protocol: 'TCP' },
      { name: 'dns', port: 81, protocol: 'UDP' },
    ],
  },
  { name: 'p3', labels: { app: 'web' }, ports: [{ name: 'dns', port: 80, protocol: 'UDP' }] },
];

function np(namespace: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy {
  return { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name, namespace }, spec };
}

const denyIngress = (ns: string) => np(ns, 'deny-ingress', { podSelector: {}, policyTypes: ['Ingress'] });

type Step = {
  name: string;
  change: (s: ClusterState) => ClusterState;
  check?: (stats: Awaited<ReturnType<PolicyTable['apply']>>) => void;
};

const withPolicies =
  (...policies: NetworkPolicy[]) =>
  (s: ClusterState): ClusterState => ({ ...s, policies });
const relabelPod =
  (ns: string, pod: string, labels: Record<string, string>) =>
  (s: ClusterState): ClusterState => ({
    ...s,
    pods: s.pods.map((p) => (p.namespace === ns && p.name === pod ? { ...p, labels } : p)),
  });
const relabelNs =
  (ns: string, labels: Record<string, string>) =>
  (s: ClusterState): ClusterState => ({
    ...s,
    namespaces: s.namespaces.map((n) => (n.name === ns ? { ...n, labels } : n)),
  });

const unionA = np('ns-a', 'from-b', {
  podSelector: { matchLabels: { app: 'web' } },
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }],
});
const unionB = np('ns-a', 'from-c-udp', {
  podSelector: { matchLabels: { app: 'web' } },
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'c' } } }], ports: [{ protocol: 'UDP' }] }],
});
const webFromDb = np('ns-a', 'web-from-db', {
  podSelector: { matchLabels: { app: 'web' } },
  ingress: [{ from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'db' } } }] }],
});

const STEPS: Step[] = [
  { name: 'no policy: nothing is isolated, everything connects', change: withPolicies() },
  {
    name: 'default deny ingress (policyTypes [Ingress]) in ns-a; the node still reaches its pods',
    change: withPolicies(denyIngress('ns-a')),
  },
  {
    name: 'policyTypes omitted, no rules: defaults to Ingress isolation only',
    change: withPolicies(np('ns-b', 'isolate', { podSelector: {} })),
  },
  {
    name: 'empty podSelector peer: same namespace only',
    change: withPolicies(
      np('ns-a', 'same-ns', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }),
    ),
  },
  {
    name: 'podSelector peer by matchLabels (same namespace)',
    change: withPolicies(
      np('ns-a', 'db-from-web', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
      }),
    ),
  },
  {
    name: 'namespaceSelector only: every pod of matching namespaces',
    change: withPolicies(
      np('ns-a', 'from-team-b', {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }],
      }),
    ),
  },
  {
    name: 'namespaceSelector AND podSelector in one peer',
    change: withPolicies(
      np('ns-a', 'from-b-web', {
        podSelector: {},
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchLabels: { team: 'b' } },
                podSelector: { matchLabels: { app: 'web' } },
              },
            ],
          },
        ],
      }),
    ),
  },
  {
    name: 'two peers are OR',
    change: withPolicies(
      np('ns-a', 'b-or-db', {
        podSelector: {},
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { team: 'b' } } },
              { podSelector: { matchLabels: { app: 'db' } } },
            ],
          },
        ],
      }),
    ),
  },
  {
    name: 'ports only: TCP 80 from anywhere',
    change: withPolicies(np('ns-c', 'tcp80', { podSelector: {}, ingress: [{ ports: [{ port: 80 }] }] })),
  },
  {
    name: 'UDP 81 only',
    change: withPolicies(
      np('ns-c', 'udp81', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 81 }] }] }),
    ),
  },
  {
    name: 'endPort range 80-81 TCP',
    change: withPolicies(
      np('ns-c', 'range', {
        podSelector: {},
        ingress: [{ ports: [{ protocol: 'TCP', port: 80, endPort: 81 }] }],
      }),
    ),
  },
  {
    name: 'protocol without port: all UDP',
    change: withPolicies(
      np('ns-c', 'all-udp', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] }),
    ),
  },
  {
    name: 'named port "http" resolves per destination pod (80 on web, 81 on db)',
    change: withPolicies(np('ns-b', 'http', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] })),
  },
  {
    name: 'named UDP port "dns" (81 on db, 80 on p3)',
    change: withPolicies(
      np('ns-b', 'dns', { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 'dns' }] }] }),
    ),
  },
  {
    name: 'matchExpressions In',
    change: withPolicies(
      np('ns-a', 'in', {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['db'] }] },
        ingress: [
          {
            from: [
              {
                namespaceSelector: {
                  matchExpressions: [{ key: 'team', operator: 'In', values: ['b', 'c'] }],
                },
              },
            ],
          },
        ],
      }),
    ),
  },
  {
    name: 'matchExpressions NotIn matches pods without the key',
    change: withPolicies(
      np('ns-a', 'notin', {
        podSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['fe'] }] },
      }),
    ),
  },
  {
    name: 'matchExpressions Exists',
    change: withPolicies(
      np('ns-a', 'exists', {
        podSelector: {},
        ingress: [
          {
            from: [
              {
                namespaceSelector: {},
                podSelector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
              },
            ],
          },
        ],
      }),
    ),
  },
  {
    name: 'matchExpressions DoesNotExist (namespace without env)',
    change: withPolicies(
      np('ns-a', 'dne', {
        podSelector: {},
        ingress: [
          { from: [{ namespaceSelector: { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] } }] },
        ],
      }),
    ),
  },
  {
    name: 'ipBlock with except',
    change: withPolicies(
      np('ns-b', 'block', {
        podSelector: {},
        ingress: [
          { from: [{ ipBlock: { cidr: '10.65.0.0/24', except: ['10.65.0.0/30', '10.65.0.8/32'] } }] },
        ],
      }),
    ),
  },
  {
    name: 'ipBlock 0.0.0.0/0 with except (hash:net cannot hold /0)',
    change: withPolicies(
      np('ns-b', 'world', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.65.0.4/30'] } }] }],
      }),
    ),
  },
  {
    name: 'egress default deny in ns-b, pod -> node included',
    change: withPolicies(np('ns-b', 'deny-egress', { podSelector: {}, policyTypes: ['Egress'] })),
  },
  {
    name: 'egress to ns-a on TCP 80',
    change: withPolicies(
      np('ns-b', 'to-a', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: { matchLabels: { team: 'a' } } }], ports: [{ port: 80 }] }],
      }),
    ),
  },
  {
    name: 'egress named port resolves on the destination pod',
    change: withPolicies(
      np('ns-b', 'to-http', {
        podSelector: { matchLabels: { app: 'web' } },
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }],
      }),
    ),
  },
  {
    name: 'egress rules without policyTypes: both directions isolated',
    change: withPolicies(np('ns-c', 'both', { podSelector: {}, egress: [{ to: [{ podSelector: {} }] }] })),
  },
  {
    name: 'egress: [] without policyTypes: ingress only',
    change: withPolicies(
      np('ns-c', 'empty-egress', {
        podSelector: {},
        egress: [],
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'a' } } }] }],
      }),
    ),
  },
  {
    name: 'egress to the node only via ipBlock',
    change: withPolicies(
      np('ns-c', 'to-node', {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ ipBlock: { cidr: `${NODE_IP}/32` } }] }],
      }),
    ),
  },
  {
    name: 'union of two policies on the same pods',
    change: withPolicies(unionA, unionB, denyIngress('ns-a')),
  },
  {
    name: 'label change: a/p3 becomes db (only sets and endpoint chains change)',
    change: relabelPod('ns-a', 'p3', { app: 'db' }),
    check: (stats) =>
      expect(stats.chainsWritten.filter((c) => c.startsWith('twl-pi-') || c.startsWith('twl-po-'))).toEqual(
        [],
      ),
  },
  {
    name: 'label change: b/p1 becomes db, selected as a peer',
    change: (s) => withPolicies(webFromDb, denyIngress('ns-a'))(relabelPod('ns-b', 'p1', { app: 'db' })(s)),
  },
  {
    name: 'label change on a pod used only as a peer rewrites only a set',
    change: relabelPod('ns-c', 'p1', { app: 'db' }),
    check: (stats) => {
      expect(stats.chainsWritten).toEqual([]);
      expect(stats.setsWritten.length).toBe(1);
    },
  },
  {
    name: 'namespace label change: ns-b loses team=b',
    change: (s) => withPolicies(unionA, unionB, denyIngress('ns-a'))(relabelNs('ns-b', { team: 'x' })(s)),
  },
  { name: 'namespace label restored', change: relabelNs('ns-b', { team: 'b', env: 'dev' }) },
  {
    name: 'policy delete: the UDP union member goes',
    change: (s) => ({ ...s, policies: s.policies.filter((p) => p.metadata.name !== 'from-c-udp') }),
    check: (stats) => expect(stats.chainsRemoved.length).toBeGreaterThan(0),
  },
  {
    name: 'policy change: ports added to from-b',
    change: (s) => ({
      ...s,
      policies: s.policies.map((p) =>
        p.metadata.name === 'from-b'
          ? np('ns-a', 'from-b', {
              ...p.spec,
              ingress: [
                { from: p.spec.ingress![0]!.from!, ports: [{ port: 81 }, { protocol: 'UDP', port: 80 }] },
              ],
            })
          : p,
      ),
    }),
  },
  {
    name: 'bad input: an invalid CIDR and an unknown protocol drop only their rules',
    change: withPolicies(
      np('ns-a', 'bad', {
        podSelector: {},
        ingress: [
          { from: [{ ipBlock: { cidr: '10.65.0.0/33' } }] },
          { ports: [{ protocol: 'ICMP' as 'TCP' }] },
          { from: [{ namespaceSelector: { matchLabels: { team: 'c' } } }] },
        ],
      }),
      np('ns-b', 'good', { podSelector: {}, ingress: [{ from: [{ podSelector: {} }] }] }),
    ),
  },
  { name: 'all policies deleted: back to open', change: withPolicies() },
];

describeSystem(
  'NetworkPolicy truth tables on the real kernel',
  { root: true, tools: ['ip', 'iptables-nft-restore', 'iptables-nft-save', 'ipset', 'conntrack'] },
  () => {
    const lab = new Lab();
    let node = '';
    let pods: LabPod[] = [];
    const agents = new Map<string, Agent>();
    let table: PolicyTable;
    let state: ClusterState;
    const warnings: string[] = [];

    beforeAll(async () => {
      node = buildNode(lab, NODE_IP);
      let n = 1;
      for (const ns of NAMESPACES)
        for (const t of POD_TEMPLATES) pods.push(addPod(lab, node, ns.name, t.name, `10.65.0.${n++}`));
      agents.set(NODE_IP, startAgent(lab, node));
      for (const p of pods) agents.set(p.ip, startAgent(lab, p.netns));
      await Promise.all([...agents.values()].map((a) => a.ready));
      state = {
        node: 'node-1',
        namespaces: NAMESPACES,
        pods: pods.map((p, i) => {
          const t = POD_TEMPLATES[i % 3]!;
          return {
            namespace: p.namespace,
            name: p.name,
            labels: t.labels,
            ips: [p.ip],
            node: 'node-1',
            interface: p.veth,
            ports: t.ports,
          };
        }),
        policies: [],
      };
      table = new PolicyTable({ exec: execInNetns(node), backend: 'nft' });
      compiler.setState(state);
    });

    afterAll(async () => {
      await lab.cleanup();
      removeAgentFile();
      pods = [];
    });

    const label = (ip: string) =>
      ip === NODE_IP
        ? 'node'
        : (() => {
            const p = pods.find((x) => x.ip === ip)!;
            return `${p.namespace}/${p.name}`;
          })();

    async function observe(): Promise<{ observed: string[]; expected: string[] }> {
      const targets = [NODE_IP, ...pods.map((p) => p.ip)];
      const probes: { src: string; dst: string; proto: 'tcp' | 'udp'; port: number }[] = [];
      for (const src of targets)
        for (const dst of targets)
          if (src !== dst)
            for (const proto of ['tcp', 'udp'] as const)
              for (const port of [80, 81]) probes.push({ src, dst, proto, port });
      const run = (p: (typeof probes)[number]) => agents.get(p.src)!.probe(p.proto, p.dst, p.port, 400);
      let results = await Promise.all(probes.map(run));
      // A drop is a timeout; retry negatives once so a slow first packet is not a false "drop".
      const retry = await Promise.all(probes.map((p, i) => (results[i] ? Promise.resolve(true) : run(p))));
      results = retry;
      const observed: string[] = [];
      const expected: string[] = [];
      probes.forEach((p, i) => {
        const line = `${label(p.src)} -> ${label(p.dst)} ${p.proto}/${p.port}`;
        if (results[i]) observed.push(line);
        if (refAllows(state, p.src, p.dst, p.proto.toUpperCase(), p.port, p.src === NODE_IP))
          expected.push(line);
      });
      return { observed, expected };
    }

    // The agent's path: each scenario's differences go into the incremental compiler as single
    // object changes, a long-lived renderer renders, the table applies the difference.
    const compiler = new PolicyCompiler('node-1', { warn: (_o, msg) => warnings.push(msg) });
    const renderer = new Renderer();
    function feed(prev: ClusterState, next: ClusterState): void {
      const diff = <T>(a: T[], b: T[], key: (x: T) => string, set: (x: T) => void, del: (x: T) => void) => {
        const before = new Map(a.map((x) => [key(x), x]));
        const after = new Map(b.map((x) => [key(x), x]));
        for (const [k, x] of before) if (!after.has(k)) del(x);
        for (const [k, x] of after) if (before.get(k) !== x) set(x);
      };
      diff(
        prev.namespaces,
        next.namespaces,
        (n) => n.name,
        (n) => compiler.setNamespace(n),
        (n) => compiler.deleteNamespace(n.name),
      );
      diff(
        prev.pods,
        next.pods,
        (p) => `${p.namespace}/${p.name}`,
        (p) => compiler.setPod(p),
        (p) => compiler.deletePod(p.namespace, p.name),
      );
      diff(
        prev.policies,
        next.policies,
        (p) => `${p.metadata.namespace}/${p.metadata.name}`,
        (p) => compiler.setPolicy(p),
        (p) => compiler.deletePolicy(p.metadata.namespace!, p.metadata.name),
      );
    }

    for (const step of STEPS) {
      it(step.name, async () => {
        const prev = state;
        state = step.change(state);
        feed(prev, state);
        table.setDesired(renderer.render(compiler.model()));
        const stats = await table.apply();
        step.check?.(stats);
        // New connections only: an old UDP flow whose 5-tuple a probe happens to reuse would
        // otherwise ride its conntrack entry from an earlier scenario.
        lab.exec(node, 'conntrack', ['-F'], { allowFail: true });
        const { observed, expected } = await observe();
        const extra = observed.filter((l) => !expected.includes(l));
        const missing = expected.filter((l) => !observed.includes(l));
        expect({ extra, missing }).toEqual({ extra: [], missing: [] });
        expect(observed.length).toBe(expected.length);
      });
    }

    it('the bad-input scenario logged each bad rule by policy and field', () => {
      expect(
        warnings.some(
          (w) =>
            w.includes('ns-a/bad') &&
            w.includes('spec.ingress[0].from[0].ipBlock.cidr') &&
            w.includes('10.65.0.0/33'),
        ),
      ).toBe(true);
      expect(
        warnings.some(
          (w) =>
            w.includes('ns-a/bad') && w.includes('spec.ingress[1].ports[0].protocol') && w.includes('ICMP'),
        ),
      ).toBe(true);
    });
  },
);
