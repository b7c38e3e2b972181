/**
 * The compiled rule model agrees with the plain reference evaluator (test/policy/reference.ts)
 * on random namespaces, pods, labels and policies: for every pair of addresses (pods on this
 * node and another, the node itself, an outside address), protocol and port, `modelAllows`
 * and `refAllows` give the same answer.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compile, modelAllows, PolicyCompiler } from '../../src/policy/compile.js';
import { parseIpv4 } from '../../src/net/addr.js';
import { NS, stateArb } from './arbitraries.js';
import { refAllows } from './reference.js';

const HOST = '10.9.0.1';
const OUTSIDE = '192.168.3.4';

describe('compile agrees with the reference evaluator', () => {
  it('on random namespaces, pods, labels and policies, for every pair, protocol and port', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        const model = compile(state);
        const addrs = [...state.pods.map((p) => p.ips[0]!), HOST, OUTSIDE];
        for (const src of addrs) {
          for (const dst of addrs) {
            if (src === dst) continue;
            for (const protocol of ['TCP', 'UDP', 'SCTP'] as const) {
              for (const port of [53, 80, 81, 8080]) {
                for (const fromHost of src === HOST ? [true, false] : [false]) {
                  const want = refAllows(state, src, dst, protocol, port, fromHost);
                  const got = modelAllows(model, {
                    src: parseIpv4(src),
                    dst: parseIpv4(dst),
                    protocol,
                    port,
                    fromHost,
                  });
                  if (got !== want) {
                    throw new Error(
                      `${src} -> ${dst} ${protocol}/${port}${fromHost ? ' (host)' : ''}: model ${got}, reference ${want}`,
                    );
                  }
                }
              }
            }
          }
        }
      }),
      { numRuns: 400 },
    );
  });

  it('is independent of the order of pods and policies', () => {
    fc.assert(
      fc.property(stateArb, (state) => {
        const a = compile(state);
        const b = compile({
          ...state,
          pods: [...state.pods].reverse(),
          policies: [...state.policies].reverse(),
        });
        expect(b.endpoints).toEqual(a.endpoints);
        expect([...b.policies.entries()].sort()).toEqual([...a.policies.entries()].sort());
      }),
      { numRuns: 100 },
    );
  });
});

/** A model in plain data, order-independent, for comparing two compilers. */
function normal(m: ReturnType<typeof compile>) {
  const used = new Set<string>();
  const usedNamed = new Set<string>();
  for (const p of m.policies.values()) {
    for (const r of [...(p.ingress ?? []), ...(p.egress ?? [])]) {
      for (const k of r.peers ?? []) used.add(k);
      for (const pm of r.ports ?? []) if (pm.named) usedNamed.add(`${pm.protocol}/${pm.named}`);
    }
  }
  return {
    endpoints: m.endpoints,
    policies: [...m.policies.entries()].sort(),
    peerSets: [...used].sort().map((k) => m.peerSets.get(k)),
    named: [...usedNamed].sort().map((k) => m.namedPortSets.get(k)),
  };
}

describe('PolicyCompiler, fed changes one at a time, agrees with a fresh compile', () => {
  it('after every step of a random sequence of pod, namespace and policy changes and deletes', () => {
    const stepArb = fc.tuple(
      stateArb,
      fc.array(
        fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('pod', 'ns', 'policy', 'delpod', 'delpolicy', 'delns')),
        { maxLength: 12 },
      ),
    );
    fc.assert(
      fc.property(stepArb, stateArb, ([start, steps], donor) => {
        const c = new PolicyCompiler('n1');
        c.setState(start);
        let state = start;
        expect(normal(c.model())).toEqual(normal(compile(state)));
        for (const [i, j, kind] of steps) {
          if (kind === 'pod' && state.pods.length > 0) {
            // Take the labels and ports of a donor pod: a label change, a port change, or both.
            const target = state.pods[i % state.pods.length]!;
            const d = donor.pods[j % donor.pods.length]!;
            const next = { ...target, labels: d.labels, ports: d.ports };
            state = { ...state, pods: state.pods.map((p) => (p === target ? next : p)) };
            c.setPod(next);
          } else if (kind === 'delpod' && state.pods.length > 0) {
            const target = state.pods[i % state.pods.length]!;
            state = { ...state, pods: state.pods.filter((p) => p !== target) };
            c.deletePod(target.namespace, target.name);
          } else if (kind === 'ns') {
            // A label change, or the namespace object (re)appearing after a delete.
            const next = {
              name: NS[i % NS.length]!,
              labels: donor.namespaces[j % donor.namespaces.length]!.labels ?? {},
            };
            state = { ...state, namespaces: [...state.namespaces.filter((n) => n.name !== next.name), next] };
            c.setNamespace(next);
          } else if (kind === 'delns') {
            const target = state.namespaces[i % state.namespaces.length];
            if (target) {
              state = { ...state, namespaces: state.namespaces.filter((n) => n !== target) };
              c.deleteNamespace(target.name);
            }
          } else if (kind === 'policy' && donor.policies.length > 0) {
            // A donor policy under an existing or new name: a policy change or an add.
            const d = donor.policies[j % donor.policies.length]!;
            const name = `p${i % 6}`;
            const next = { ...d, metadata: { ...d.metadata, name } };
            const id = (p: (typeof state.policies)[number]) => `${p.metadata.namespace}/${p.metadata.name}`;
            state = { ...state, policies: [...state.policies.filter((p) => id(p) !== id(next)), next] };
            c.setPolicy(next);
          } else if (kind === 'delpolicy' && state.policies.length > 0) {
            const target = state.policies[i % state.policies.length]!;
            state = { ...state, policies: state.policies.filter((p) => p !== target) };
            c.deletePolicy(target.metadata.namespace!, target.metadata.name);
          }
          expect(normal(c.model())).toEqual(normal(compile(state)));
        }
      }),
      { numRuns: 300 },
    );
  });
});
