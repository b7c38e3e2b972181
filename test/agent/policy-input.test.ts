/**
 * The agent's policy input (src/agent/policy-input.ts): fed one cluster state after another, it
 * renders exactly what a fresh compile and render of each state would (also when any one field of
 * one pod changes), and it hands the compiler only what changed. A regression in the diffing
 * shows as rules that differ from a fresh compile (a deletion missed, a field not compared) or as
 * a compiler fed the whole cluster again.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PolicyInput } from '../../src/agent/policy-input.js';
import { render, renderFull } from '../../src/dataplane/iptables/render.js';
import { compile, PolicyCompiler } from '../../src/policy/compile.js';
import type { ClusterState } from '../../src/policy/types.js';
import { stateArb } from '../policy/arbitraries.js';

const fresh = (s: ClusterState) => renderFull(render(compile(s)));

describe('the agent’s policy input', () => {
  afterEach(() => vi.restoreAllMocks());

  it('after each state of a random sequence renders what a fresh compile of that state renders', () => {
    fc.assert(
      fc.property(fc.array(stateArb, { minLength: 1, maxLength: 6 }), (states) => {
        const input = new PolicyInput('n1');
        for (const s of states) expect(renderFull(input.update(s))).toEqual(fresh(s));
      }),
      { numRuns: 300 },
    );
  });

  it('a change to any one field of a pod (addresses, node, interface, ports, labels) is seen', () => {
    const change = fc.constantFrom('ips', 'node', 'interface', 'ports', 'labels');
    fc.assert(
      fc.property(stateArb, fc.nat(), change, (state, i, field) => {
        const input = new PolicyInput('n1');
        input.update(state);
        const target = state.pods[i % state.pods.length]!;
        const changed = { ...target };
        if (field === 'ips') changed.ips = ['10.0.9.9'];
        if (field === 'node') changed.node = target.node === 'n1' ? 'n2' : 'n1';
        if (field === 'interface') changed.interface = `${target.interface}x`;
        if (field === 'ports') changed.ports = (target.ports ?? []).map((p) => ({ ...p, port: p.port + 1 }));
        if (field === 'labels') changed.labels = { ...target.labels, app: 'changed' };
        const next = { ...state, pods: state.pods.map((p) => (p === target ? changed : p)) };
        expect(renderFull(input.update(next))).toEqual(fresh(next));
      }),
      { numRuns: 500 },
    );
  });

  it('a pod whose labels changed is the only thing the compiler is given', () => {
    fc.assert(
      fc.property(stateArb, fc.nat(), (state, i) => {
        const input = new PolicyInput('n1');
        input.update(state);
        const target = state.pods[i % state.pods.length]!;
        const next = {
          ...state,
          pods: state.pods.map((p) => (p === target ? { ...p, labels: { ...p.labels, changed: 'yes' } } : p)),
        };
        const want = fresh(next); // a compile of its own, before the spies count
        const setPod = vi.spyOn(PolicyCompiler.prototype, 'setPod');
        const setPolicy = vi.spyOn(PolicyCompiler.prototype, 'setPolicy');
        const setNamespace = vi.spyOn(PolicyCompiler.prototype, 'setNamespace');
        expect(renderFull(input.update(next))).toEqual(want);
        expect(setPod.mock.calls.map((c) => c[0].name)).toEqual([target.name]);
        expect(setPolicy).not.toHaveBeenCalled();
        expect(setNamespace).not.toHaveBeenCalled();
        // The same state again: nothing at all.
        input.update(next);
        expect(setPod).toHaveBeenCalledTimes(1);
        vi.restoreAllMocks();
      }),
      { numRuns: 100 },
    );
  });
});
