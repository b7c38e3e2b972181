/**
 * Best-path selection (src/bgp/decision.ts), STYLE.md §10 and §13.
 *
 * Unit tests: the chain of steps, in order, so a missing or moved step fails loudly; one
 * hand-written pair per step where that step decides, with the defaults for missing attributes
 * written out; the next-hop rule through a Rib with a fake resolver.
 *
 * Property tests: every step is antisymmetric and a total preorder (MED only within one
 * neighbouring AS unless alwaysCompareMed); the best path does not depend on arrival order, MED
 * across neighbour ASes included; the winner is never eliminated by a surviving rival and is never
 * beaten on LOCAL_PREF; with every step a total order (alwaysCompareMed) the winner beats every
 * other candidate on the first step where they differ.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Candidate,
  DEFAULT_DECISION,
  type DecisionOptions,
  neighborAs,
  STEPS,
  type StepName,
  selectBest,
  stepLabel,
} from '../../src/bgp/decision.js';
import { type NextHopResolver, type PeerRef, Rib } from '../../src/bgp/rib/rib.js';
import type { AsPathSegment, PathAttributes } from '../../src/bgp/wire/attributes.js';
import { AsPathSegmentType } from '../../src/bgp/wire/constants.js';
import { parsePrefix } from '../../src/net/addr.js';

const runs = Number(process.env.FC_RUNS ?? 300);
const ALWAYS_MED: DecisionOptions = { alwaysCompareMed: true };

const seq = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsSequence, asns });
const set = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsSet, asns });
const confedSeq = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsConfedSequence, asns });
const confedSet = (...asns: number[]): AsPathSegment => ({ type: AsPathSegmentType.AsConfedSet, asns });

/**
 * The loser of each example is better than the winner on every tie-breaker after the step under
 * test (lower router id, lower address, lower path id), so only that step can give the winner
 * the race.
 */
const winnerBase: Candidate = {
  local: false,
  ebgp: true,
  asPath: [seq(65001)],
  origin: 0,
  peerRouterId: 0x0a0000fe,
  peerAddress: '10.0.0.254',
  pathId: 9,
};
const loserBase: Candidate = { ...winnerBase, peerRouterId: 0x0a000001, peerAddress: '10.0.0.1', pathId: 0 };

function expectDecides(
  step: StepName,
  win: Partial<Candidate>,
  lose: Partial<Candidate>,
  opts: DecisionOptions = DEFAULT_DECISION,
): void {
  const w: Candidate = { ...winnerBase, ...win };
  const l: Candidate = { ...loserBase, ...lose };
  for (const order of [
    [w, l],
    [l, w],
  ]) {
    const sel = selectBest(order, opts);
    expect(sel.best).toBe(w);
    expect(sel.reason).toBe(step);
  }
  const s = STEPS.find((x) => x.name === step)!;
  expect(s.compare(w, l, opts)).toBeLessThan(0);
  expect(s.compare(l, w, opts)).toBeGreaterThan(0);
  // Every earlier step ties: this step, not an earlier one, decided.
  for (const earlier of STEPS.slice(0, STEPS.indexOf(s))) expect(earlier.compare(w, l, opts)).toBe(0);
}

describe('decision steps', () => {
  it('are listed in order: a missing or moved step fails here', () => {
    expect(STEPS.map((s) => s.name)).toEqual([
      'localPref',
      'local',
      'asPathLength',
      'origin',
      'med',
      'ebgp',
      'igpCost',
      'clusterList',
      'routerId',
      'peerAddress',
      'pathId',
    ]);
    expect(STEPS.map((s) => s.rfc)).toEqual([
      '9.1.2.2 (a) via 9.1.1',
      'implementation (BIRD, Cisco)',
      '9.1.2.2 (a)',
      '9.1.2.2 (b)',
      '9.1.2.2 (c)',
      '9.1.2.2 (d)',
      '9.1.2.2 (e)',
      'RFC 4456 §9',
      '9.1.2.2 (f), RFC 4456 §9',
      '9.1.2.2 (g)',
      'implementation (ADD-PATH)',
    ]);
  });

  it('labels what `twill routes` shows', () => {
    expect(stepLabel('localPref')).toBe('won on LOCAL_PREF');
    expect(stepLabel('med')).toBe('won on MED');
    expect(stepLabel('only')).toBe('only path');
    expect(stepLabel('none')).toBe('no path');
    for (const s of STEPS) expect(stepLabel(s.name)).toBe(`won on ${s.label}`);
  });

  it('no paths: no best; one path: it, reason only', () => {
    expect(selectBest([])).toEqual({ best: undefined, reason: 'none' });
    expect(selectBest([winnerBase])).toEqual({ best: winnerBase, reason: 'only' });
  });

  it('localPref: highest LOCAL_PREF wins; a missing LOCAL_PREF counts as 100', () => {
    expectDecides('localPref', { localPref: 200 }, { localPref: 100 });
    expectDecides('localPref', { localPref: 101 }, {});
    expectDecides('localPref', {}, { localPref: 99 });
    const s = STEPS[0]!;
    expect(s.compare({ ...winnerBase }, { ...loserBase, localPref: 100 }, DEFAULT_DECISION)).toBe(0);
  });

  it('local: a locally originated path beats a learned one', () => {
    expectDecides('local', { local: true }, { local: false });
  });

  it('asPathLength: shortest AS_PATH; AS_SET counts 1, confederation segments 0', () => {
    expectDecides('asPathLength', { asPath: [seq(1, 2)] }, { asPath: [seq(1, 2, 3)] });
    expectDecides('asPathLength', { asPath: [] }, { asPath: [seq(1)] });
    expectDecides('asPathLength', { asPath: undefined }, { asPath: [seq(1)] });
    // 1 + 1 (the set, however long) = 2 against 3.
    expectDecides('asPathLength', { asPath: [seq(1), set(2, 3, 4, 5, 6)] }, { asPath: [seq(1, 2, 3)] });
    // Confederation segments count nothing: 1 against 2.
    expectDecides(
      'asPathLength',
      { asPath: [confedSeq(64512, 64513, 64514), confedSet(64515, 64516), seq(1)] },
      { asPath: [seq(1, 2)] },
    );
  });

  it('origin: IGP < EGP < INCOMPLETE; a missing ORIGIN counts as INCOMPLETE', () => {
    expectDecides('origin', { origin: 0 }, { origin: 1 });
    expectDecides('origin', { origin: 1 }, { origin: 2 });
    expectDecides('origin', { origin: 1 }, { origin: undefined });
  });

  it('med: lowest MED within one neighbouring AS; a missing MED counts as 0', () => {
    expectDecides('med', { med: 5 }, { med: 10 });
    expectDecides('med', {}, { med: 1 });
    expectDecides('med', { med: 0 }, { med: 1 });
    // The neighbouring AS is the first AS of the first AS_SEQUENCE, confederation segments skipped.
    expectDecides('med', { asPath: [confedSeq(64512), seq(7)], med: 1 }, { asPath: [seq(7)], med: 2 });
  });

  it('med: paths from different neighbouring ASes are not compared on MED unless alwaysCompareMed', () => {
    // Without alwaysCompareMed the lower MED from AS 65002 does not count; eBGP decides.
    const w = { asPath: [seq(65001)], med: 100, ebgp: true };
    const l = { asPath: [seq(65002)], med: 0, ebgp: false };
    expectDecides('ebgp', w, l);
    // With it, MED decides the other way.
    expectDecides('med', l, w, ALWAYS_MED);
    const med = STEPS.find((s) => s.name === 'med')!;
    expect(med.compare({ ...winnerBase, ...w }, { ...loserBase, ...l }, DEFAULT_DECISION)).toBe(0);
  });

  it('med: the RFC 4271 §9.1.2.2 (c) example picks the same path in every arrival order', () => {
    // A and B from AS 1, C from AS 2. Pairwise comparison in arrival order gives different
    // winners (A<C on router id, C<B on router id, B<A on MED); elimination always gives C.
    const a: Candidate = {
      ...winnerBase,
      asPath: [seq(1)],
      med: 10,
      peerRouterId: 1,
      peerAddress: '10.0.0.1',
    };
    const b: Candidate = {
      ...winnerBase,
      asPath: [seq(1)],
      med: 5,
      peerRouterId: 3,
      peerAddress: '10.0.0.3',
    };
    const c: Candidate = {
      ...winnerBase,
      asPath: [seq(2)],
      med: 50,
      peerRouterId: 2,
      peerAddress: '10.0.0.2',
    };
    for (const order of permutations([a, b, c])) {
      const sel = selectBest(order);
      expect(sel.best).toBe(c);
      expect(sel.reason).toBe('routerId');
    }
  });

  it('ebgp: a path from an external peer beats one from an internal peer', () => {
    expectDecides('ebgp', { ebgp: true }, { ebgp: false });
  });

  it('igpCost: lowest IGP cost to the next hop; no cost counts as 0', () => {
    expectDecides('igpCost', { igpCost: 1 }, { igpCost: 10 });
    expectDecides('igpCost', {}, { igpCost: 1 });
  });

  it('clusterList: shortest CLUSTER_LIST; none counts as 0', () => {
    expectDecides('clusterList', { clusterList: ['1.1.1.1'] }, { clusterList: ['1.1.1.1', '2.2.2.2'] });
    expectDecides('clusterList', {}, { clusterList: ['1.1.1.1'] });
  });

  it('routerId: lowest router id, the ORIGINATOR_ID standing in for it when present', () => {
    // winnerBase has the higher router id and address; the lower id makes it win here.
    expectDecides('routerId', { peerRouterId: 0x01010101 }, { peerRouterId: 0x02020202 });
    // Router ids compare unsigned.
    expectDecides('routerId', { peerRouterId: 0x7fffffff }, { peerRouterId: 0x80000000 });
    // ORIGINATOR_ID 1.1.1.1 beats router id 2.2.2.2, though the winner's own peer id is higher.
    expectDecides(
      'routerId',
      { peerRouterId: 0xfefefefe, originatorId: '1.1.1.1' },
      { peerRouterId: 0x02020202 },
    );
    expectDecides(
      'routerId',
      { peerRouterId: 0x01010101 },
      { peerRouterId: 0x01010100, originatorId: '9.9.9.9' },
    );
    expectDecides(
      'routerId',
      { originatorId: '10.0.0.9' },
      { originatorId: '200.0.0.1', peerRouterId: 0x01010101 },
    );
  });

  it('peerAddress: lowest peer address, compared as bytes, IPv4 before IPv6', () => {
    const same = { peerRouterId: 0x01010101 };
    expectDecides('peerAddress', { ...same, peerAddress: '10.0.0.2' }, { ...same, peerAddress: '10.0.0.10' });
    expectDecides('peerAddress', { ...same, peerAddress: '9.0.0.1' }, { ...same, peerAddress: '10.0.0.1' });
    expectDecides(
      'peerAddress',
      { ...same, peerAddress: '255.0.0.1' },
      { ...same, peerAddress: '2001:db8::1' },
    );
    expectDecides(
      'peerAddress',
      { ...same, peerAddress: '2001:db8::2' },
      { ...same, peerAddress: '2001:db8::10' },
    );
    expectDecides('peerAddress', { ...same, peerAddress: 'fe80::1' }, { ...same, peerAddress: 'fe80::1:0' });
  });

  it('pathId: lowest ADD-PATH identifier between two paths of one peer', () => {
    const same = { peerRouterId: 0x01010101, peerAddress: '10.0.0.1' };
    expectDecides('pathId', { ...same, pathId: 1 }, { ...same, pathId: 2 });
  });
});

describe('candidates in a Rib', () => {
  const peer = (id: string, routerId: number, ebgp: boolean): PeerRef => ({
    id,
    asn: ebgp ? 65001 : 65000,
    routerId,
    ebgp,
    local: false,
    rrClient: false,
  });
  const P = parsePrefix('192.0.2.0/24');
  const attrs = (x: Partial<PathAttributes>): PathAttributes => ({ origin: 0, asPath: [seq(65001)], ...x });
  // 203.0.113.1 cannot be reached; 198.51.100.x cost x.
  const resolver: NextHopResolver = {
    resolve: (nh) => (nh.startsWith('198.51.100.') ? Number(nh.slice(11)) : undefined),
  };

  it('a path whose next hop does not resolve is not a candidate (RFC 4271 §9.1.2.1)', () => {
    const rib = new Rib(DEFAULT_DECISION, resolver);
    const a = peer('10.0.0.1', 1, false);
    const b = peer('10.0.0.2', 2, false);
    // The only path is unreachable: no best, no delta, but it stays in the Adj-RIB-In.
    expect(
      rib.announce(P, a, 0, rib.attrs.intern(attrs({ localPref: 500 }), ['203.0.113.1'])),
    ).toBeUndefined();
    expect(rib.entry(P)?.best).toBeUndefined();
    expect(rib.countFrom(a.id)).toBe(1);
    // A worse path that resolves is best.
    const d = rib.announce(P, b, 0, rib.attrs.intern(attrs({ localPref: 50 }), ['198.51.100.3']));
    expect(d?.newBest?.peer).toBe(b);
    expect(rib.entry(P)?.reason).toBe('only');
  });

  it('a next hop that is the peer’s own address is reachable', () => {
    const rib = new Rib(DEFAULT_DECISION, resolver);
    const a = peer('10.0.0.1', 1, true);
    const d = rib.announce(P, a, 0, rib.attrs.intern(attrs({}), ['10.0.0.1']));
    expect(d?.newBest?.peer).toBe(a);
  });

  it('igpCost comes from the resolver', () => {
    const rib = new Rib(DEFAULT_DECISION, resolver);
    const a = peer('10.0.0.1', 1, false);
    const b = peer('10.0.0.2', 2, false);
    rib.announce(P, a, 0, rib.attrs.intern(attrs({}), ['198.51.100.20']));
    rib.announce(P, b, 0, rib.attrs.intern(attrs({}), ['198.51.100.5']));
    expect(rib.entry(P)?.best?.peer).toBe(b);
    expect(rib.entry(P)?.reason).toBe('igpCost');
  });

  it('alwaysCompareMed reaches the Rib', () => {
    const a = peer('10.0.0.1', 1, true);
    const b = peer('10.0.0.2', 2, true);
    for (const [opts, winner, reason] of [
      [DEFAULT_DECISION, a, 'routerId'],
      [ALWAYS_MED, b, 'med'],
    ] as const) {
      const rib = new Rib(opts);
      rib.announce(P, a, 0, rib.attrs.intern(attrs({ asPath: [seq(1)], med: 10 }), ['10.0.0.1']));
      rib.announce(P, b, 0, rib.attrs.intern(attrs({ asPath: [seq(2)], med: 5 }), ['10.0.0.2']));
      expect(rib.entry(P)?.best?.peer).toBe(winner);
      expect(rib.entry(P)?.reason).toBe(reason);
    }
  });
});

// ---- properties ----

function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [xs.slice()];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...rest]);
  });
  return out;
}

/** Few distinct values, so that ties (and same-neighbour-AS pairs) are common. */
const asn = fc.constantFrom(1, 2, 3);
const segment = fc.record({
  type: fc.constantFrom(
    AsPathSegmentType.AsSequence,
    AsPathSegmentType.AsSequence,
    AsPathSegmentType.AsSet,
    AsPathSegmentType.AsConfedSequence,
    AsPathSegmentType.AsConfedSet,
  ),
  asns: fc.array(asn, { minLength: 1, maxLength: 3 }),
});
const ADDRESSES = [
  '10.0.0.1',
  '10.0.0.2',
  '10.0.0.10',
  '192.168.0.1',
  '2001:db8::1',
  '2001:db8::a',
  'fe80::1',
];
const candidate: fc.Arbitrary<Candidate> = fc.record(
  {
    localPref: fc.constantFrom(50, 100, 200),
    local: fc.boolean(),
    asPath: fc.array(segment, { maxLength: 3 }),
    origin: fc.constantFrom(0, 1, 2),
    med: fc.constantFrom(0, 5, 10),
    ebgp: fc.boolean(),
    igpCost: fc.constantFrom(0, 1, 10),
    clusterList: fc.array(fc.constantFrom('1.1.1.1', '2.2.2.2'), { maxLength: 2 }),
    originatorId: fc.constantFrom('0.0.0.2', '0.0.0.3', '255.255.255.255'),
    peerRouterId: fc.constantFrom(1, 2, 3, 0xffffffff),
    peerAddress: fc.constantFrom(...ADDRESSES),
    pathId: fc.constantFrom(0, 1, 2),
  },
  { requiredKeys: ['local', 'ebgp', 'peerRouterId', 'peerAddress', 'pathId'] },
);
/** Candidates as a RIB holds them: no two with the same peer and path id. */
const candidates = (max: number) =>
  fc.uniqueArray(candidate, {
    minLength: 1,
    maxLength: max,
    selector: (c) => `${c.peerAddress}#${c.pathId}`,
  });
const options = fc.constantFrom(DEFAULT_DECISION, ALWAYS_MED);

/** Is `step` a total preorder on these paths (MED only within one neighbouring AS)? */
function preorderApplies(step: StepName, xs: readonly Candidate[], o: DecisionOptions): boolean {
  if (step !== 'med' || o.alwaysCompareMed) return true;
  return xs.every((x) => neighborAs(x.asPath) === neighborAs(xs[0]!.asPath));
}

describe('decision properties', () => {
  it('every step is reflexive and antisymmetric', () => {
    fc.assert(
      fc.property(candidate, candidate, options, (a, b, o) => {
        for (const s of STEPS) {
          expect(s.compare(a, a, o)).toBe(0);
          const ab = s.compare(a, b, o);
          const ba = s.compare(b, a, o);
          expect([-1, 0, 1]).toContain(ab);
          expect(ab + ba, s.name).toBe(0);
        }
      }),
      { numRuns: runs * 2 },
    );
  });

  it('every step is transitive, ties included (MED only within one neighbouring AS)', () => {
    let medChecked = 0;
    fc.assert(
      fc.property(candidate, candidate, candidate, options, (a, b, c, o) => {
        for (const s of STEPS) {
          if (!preorderApplies(s.name, [a, b, c], o)) continue;
          if (s.name === 'med') medChecked++;
          const ab = s.compare(a, b, o);
          const bc = s.compare(b, c, o);
          const ac = s.compare(a, c, o);
          if (ab <= 0 && bc <= 0) expect(ac, s.name).toBeLessThanOrEqual(0);
          if ((ab < 0 && bc <= 0) || (ab <= 0 && bc < 0)) expect(ac, s.name).toBeLessThan(0);
          if (ab === 0 && bc === 0) expect(ac, s.name).toBe(0);
        }
      }),
      { numRuns: runs * 2 },
    );
    expect(medChecked).toBeGreaterThan(runs / 2);
  });

  it('without alwaysCompareMed, MED does not compare paths from different neighbouring ASes', () => {
    const med = STEPS.find((s) => s.name === 'med')!;
    fc.assert(
      fc.property(candidate, candidate, (a, b) => {
        fc.pre(neighborAs(a.asPath) !== neighborAs(b.asPath));
        expect(med.compare(a, b, DEFAULT_DECISION)).toBe(0);
      }),
      { numRuns: runs },
    );
  });

  it('the best path does not depend on arrival order, MED across neighbour ASes included', () => {
    fc.assert(
      fc.property(
        candidates(6).chain((cs) =>
          fc.tuple(fc.constant(cs), fc.shuffledSubarray(cs, { minLength: cs.length })),
        ),
        options,
        ([cs, shuffled], o) => {
          const a = selectBest(cs, o);
          const b = selectBest(shuffled, o);
          expect(b.best).toBe(a.best);
          expect(b.reason).toBe(a.reason);
        },
      ),
      { numRuns: runs },
    );
  });

  it('the winner is never eliminated: no surviving rival beats it on any step', () => {
    fc.assert(
      fc.property(candidates(6), options, (cs, o) => {
        const { best, reason } = selectBest(cs, o);
        expect(best).toBeDefined();
        // LOCAL_PREF is a plain total order: the winner ties or beats everyone on it.
        for (const c of cs) expect(STEPS[0]!.compare(best!, c, o)).toBeLessThanOrEqual(0);
        // Replay the elimination: at each step, nothing still standing beats the winner.
        let standing = cs.slice();
        let alone: StepName | undefined;
        for (const s of STEPS) {
          for (const r of standing) expect(s.compare(r, best!, o), s.name).toBeGreaterThanOrEqual(0);
          standing = standing.filter((x) => !standing.some((y) => s.compare(y, x, o) < 0));
          expect(standing).toContain(best);
          if (standing.length === 1 && alone === undefined) alone = s.name;
        }
        expect(standing).toEqual([best]);
        expect(reason).toBe(cs.length === 1 ? 'only' : alone);
      }),
      { numRuns: runs },
    );
  });

  it('when every step is a total preorder, the winner beats each rival on the first step where they differ', () => {
    fc.assert(
      fc.property(candidates(6), options, (cs, o) => {
        fc.pre(preorderApplies('med', cs, o));
        const { best } = selectBest(cs, o);
        for (const c of cs) {
          if (c === best) continue;
          const first = STEPS.find((s) => s.compare(best!, c, o) !== 0);
          expect(first, 'distinct paths differ somewhere').toBeDefined();
          expect(first!.compare(best!, c, o), first!.name).toBeLessThan(0);
        }
      }),
      { numRuns: runs },
    );
  });
});
