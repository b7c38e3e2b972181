/**
 * Bad input affects only itself: an invalid CIDR, an unknown protocol, a bad port or selector
 * drops its rule (fail-closed: the policy still isolates its pods) with one clear log line
 * naming the policy and the field; every other rule and policy is still enforced. A named port
 * that no pod has matches nothing and is logged.
 */
import { describe, expect, it } from 'vitest';
import { parseIpv4 } from '../../src/net/addr.js';
import { compile, modelAllows } from '../../src/policy/compile.js';
import type { ClusterState, NetworkPolicy } from '../../src/policy/types.js';

const pod = (ns: string, name: string, ip: string, labels: Record<string, string>, node = 'n1') => ({
  namespace: ns,
  name,
  labels,
  ips: [ip],
  node,
  interface: `twl${name}`,
  ports: [{ name: 'http', port: 80, protocol: 'TCP' as const }],
});
const np = (ns: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({
  metadata: { name, namespace: ns },
  spec,
});

function world(policies: NetworkPolicy[]): ClusterState {
  return {
    node: 'n1',
    namespaces: [
      { name: 'a', labels: { team: 'a' } },
      { name: 'b', labels: { team: 'b' } },
    ],
    pods: [
      pod('a', 'web', '10.0.0.1', { app: 'web' }),
      pod('a', 'db', '10.0.0.2', { app: 'db' }),
      pod('b', 'cli', '10.0.0.3', { app: 'cli' }),
    ],
    policies,
  };
}

function logged() {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  return { lines, log: { warn: (obj: Record<string, unknown>, msg: string) => lines.push({ obj, msg }) } };
}

const allows = (s: ClusterState, src: string, dst: string, port = 80, protocol: 'TCP' | 'UDP' = 'TCP') =>
  modelAllows(compile(s), { src: parseIpv4(src), dst: parseIpv4(dst), protocol, port });

describe('bad input affects only itself', () => {
  const good = np('a', 'db-from-web', {
    podSelector: { matchLabels: { app: 'db' } },
    ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
  });

  it('an invalid CIDR drops its rule, logs it, and leaves the other rules and policies enforced', () => {
    const bad = np('a', 'bad-cidr', {
      podSelector: { matchLabels: { app: 'web' } },
      ingress: [
        { from: [{ ipBlock: { cidr: '10.0.0.300/24' } }] },
        { from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] },
      ],
    });
    const s = world([bad, good]);
    const { lines, log } = logged();
    compile(s, log);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toBe(
      'NetworkPolicy a/bad-cidr: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "10.0.0.300/24"; rule spec.ingress[0] is ignored (allows nothing), the rest of the policy is enforced',
    );
    expect(lines[0]!.obj).toMatchObject({ policy: 'a/bad-cidr', rule: 'spec.ingress[0]' });
    expect(allows(s, '10.0.0.3', '10.0.0.1')).toBe(true); // rule 1 of the bad policy still works
    expect(allows(s, '10.0.0.2', '10.0.0.1')).toBe(false); // still isolated: fail-closed
    expect(allows(s, '10.0.0.1', '10.0.0.2')).toBe(true); // the good policy
    expect(allows(s, '10.0.0.3', '10.0.0.2')).toBe(false);
  });

  it('an unknown protocol drops its rule only', () => {
    const bad = np('a', 'icmp', {
      podSelector: {},
      ingress: [{ ports: [{ protocol: 'ICMP' as 'TCP' }] }, { ports: [{ protocol: 'UDP', port: 53 }] }],
    });
    const s = world([bad]);
    const { lines, log } = logged();
    compile(s, log);
    expect(lines.map((l) => l.msg)).toEqual([
      'NetworkPolicy a/icmp: spec.ingress[0].ports[0].protocol: unknown protocol "ICMP" (TCP, UDP or SCTP); rule spec.ingress[0] is ignored (allows nothing), the rest of the policy is enforced',
    ]);
    expect(allows(s, '10.0.0.3', '10.0.0.1', 53, 'UDP')).toBe(true);
    expect(allows(s, '10.0.0.3', '10.0.0.1', 80)).toBe(false);
  });

  it('a named port that matches nothing is logged and allows nothing; its siblings still do', () => {
    const p = np('a', 'named', {
      podSelector: {},
      ingress: [{ ports: [{ port: 'nosuch' }, { port: 'http' }] }],
    });
    const s = world([p, good]);
    const { lines, log } = logged();
    compile(s, log);
    expect(lines.map((l) => l.msg)).toEqual([
      'NetworkPolicy a/named: named port "nosuch"/TCP in spec.ingress[0] matches no pod; that port allows nothing',
    ]);
    expect(allows(s, '10.0.0.3', '10.0.0.1', 80)).toBe(true);
    expect(allows(s, '10.0.0.3', '10.0.0.1', 81)).toBe(false);
  });

  it.each([
    [
      'an except outside the cidr',
      { from: [{ ipBlock: { cidr: '10.0.0.0/24', except: ['10.1.0.0/24'] } }] },
      /except\[0\]: "10.1.0.0\/24" is not strictly inside cidr/,
    ],
    [
      'an ipBlock mixed with a selector',
      { from: [{ ipBlock: { cidr: '10.0.0.0/24' }, podSelector: {} }] },
      /from\[0\]: ipBlock cannot be combined/,
    ],
    ['an empty peer', { from: [{}] }, /from\[0\]: a peer needs podSelector, namespaceSelector or ipBlock/],
    ['a port out of range', { ports: [{ port: 70000 }] }, /ports\[0\]\.port: 70000 is not a port number/],
    [
      'endPort below port',
      { ports: [{ port: 90, endPort: 80 }] },
      /ports\[0\]\.endPort: 80 must be a port number >= port \(90\)/,
    ],
    [
      'endPort with a named port',
      { ports: [{ port: 'http', endPort: 90 }] },
      /endPort: not allowed with a named port/,
    ],
    [
      'a bad selector operator',
      {
        from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'Is' as 'In', values: ['x'] }] } }],
      },
      /operator: "Is" is not In, NotIn/,
    ],
    [
      'In without values',
      { from: [{ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' as const }] } }] },
      /In needs at least one value/,
    ],
  ])('%s drops its rule with a log line naming the field', (_what, rule, re) => {
    const s = world([
      np('a', 'p', {
        podSelector: {},
        ingress: [rule as never, { from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }],
      }),
      good,
    ]);
    const { lines, log } = logged();
    compile(s, log);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toMatch(re);
    expect(lines[0]!.msg).toContain('NetworkPolicy a/p: spec.ingress[0]');
    expect(allows(s, '10.0.0.3', '10.0.0.1')).toBe(true);
    expect(allows(s, '10.0.0.2', '10.0.0.1')).toBe(false); // the dropped rule allows nothing (fail-closed)
    expect(allows(s, '10.0.0.1', '10.0.0.2')).toBe(true); // the other policy still applies
  });

  it('a policy whose own podSelector is invalid is skipped whole, with a log line', () => {
    const s = world([
      np('a', 'badsel', {
        podSelector: { matchExpressions: [{ key: 'x', operator: 'Exists', values: ['y'] }] },
      }),
      good,
    ]);
    const { lines, log } = logged();
    const m = compile(s, log);
    expect(lines.map((l) => l.msg)).toEqual([
      'NetworkPolicy a/badsel: spec.podSelector.matchExpressions[0].values: Exists takes no values; the policy is ignored',
    ]);
    expect(m.policies.has('a/badsel')).toBe(false);
    expect(m.policies.has('a/db-from-web')).toBe(true);
  });
});
