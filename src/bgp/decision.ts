/**
 * Best-path selection, RFC 4271 §9.1.2.2, as a chain of named steps (STYLE.md §10). Pure.
 *
 * Selection is by elimination over the whole candidate set, as the RFC words it, not by
 * comparing paths two at a time: each step keeps the candidates no other candidate beats on that
 * step, and the chain stops when one is left. Because the MED step compares only paths from the
 * same neighbouring AS, pairwise comparison would make the winner depend on arrival order;
 * elimination does not (this is what BIRD's `deterministic med` and Cisco's
 * `bgp deterministic-med` buy, and here it is simply how selection works).
 *
 * The steps, in order (a missing step fails test/bgp/decision.test.ts):
 *   localPref      (a) highest LOCAL_PREF; a path without one counts as 100
 *   local          locally originated over learned (BIRD and Cisco put it here too)
 *   asPathLength   (a) shortest AS_PATH: AS_SET counts 1, confederation segments 0 (RFC 5065)
 *   origin         (b) lowest ORIGIN: IGP < EGP < INCOMPLETE
 *   med            (c) lowest MULTI_EXIT_DISC among paths from the same neighbouring AS (the
 *                      first AS of the path; a missing MED counts as 0); with alwaysCompareMed,
 *                      among all paths
 *   ebgp           (d) a path from an external peer over one from an internal peer
 *   igpCost        (e) lowest IGP cost to the NEXT_HOP (from a NextHopResolver)
 *   clusterList    RFC 4456 §9: shortest CLUSTER_LIST
 *   routerId       (f) lowest BGP Identifier of the advertising speaker, or the ORIGINATOR_ID when
 *                      the path carries one (RFC 4456 §9)
 *   peerAddress    (g) lowest peer address
 *   pathId         not in the RFC: lowest ADD-PATH identifier, so two paths from one peer still
 *                      have a strict order
 *
 * Equal-cost paths (`equalCost`, for a multipath next-hop set): a path that ties with the best on
 * every step up to and including igpCost, from the same neighbouring AS, is as good a way to the
 * prefix; the steps after it only break the tie (the multipath rule of Cisco's maximum-paths and
 * BIRD's merge paths).
 *
 * Every winner carries the step it won on: `twill routes` shows "won on LOCAL_PREF", and the
 * property tests check each step is antisymmetric and that no candidate beats the winner.
 * Paths whose next hop does not resolve are not candidates (§9.1.2.1).
 */
import { parseIpv4, parseIpv6 } from '../net/addr.js';
import type { AsPathSegment } from './wire/attributes.js';
import { AsPathSegmentType } from './wire/constants.js';

/** What selection needs to know about one path. */
export interface Candidate {
  localPref?: number;
  /** Originated by this speaker. */
  local: boolean;
  asPath?: readonly AsPathSegment[];
  origin?: number;
  med?: number;
  /** Learned from an external peer. */
  ebgp: boolean;
  /** IGP cost to the next hop; undefined when the resolver has no cost (counts as 0). */
  igpCost?: number;
  clusterList?: readonly string[];
  originatorId?: string;
  /** BGP Identifier of the peer that sent it (uint32); ours for a local path. */
  peerRouterId: number;
  /** The peer's address, compared as bytes (IPv4 before IPv6). */
  peerAddress: string;
  pathId: number;
}

export interface DecisionOptions {
  alwaysCompareMed: boolean;
}

export const DEFAULT_DECISION: DecisionOptions = { alwaysCompareMed: false };

export interface Step {
  name: StepName;
  /** The text `twill routes` shows: "won on LOCAL_PREF". */
  label: string;
  /** The RFC 4271 §9.1.2.2 letter or other source. */
  rfc: string;
  /**
   * Negative when a is preferred, positive when b is, 0 when the step does not tell them apart
   * (or, for MED, does not apply to this pair).
   */
  compare(a: Candidate, b: Candidate, opts: DecisionOptions): number;
}

export type StepName =
  | 'localPref'
  | 'local'
  | 'asPathLength'
  | 'origin'
  | 'med'
  | 'ebgp'
  | 'igpCost'
  | 'clusterList'
  | 'routerId'
  | 'peerAddress'
  | 'pathId';

/** RFC 4271 §9.1.2.2(a): AS_SET counts 1, confederation segments 0 (RFC 5065 §5.3). */
export function asPathLength(path: readonly AsPathSegment[] | undefined): number {
  let n = 0;
  for (const s of path ?? []) {
    if (s.type === AsPathSegmentType.AsSequence) n += s.asns.length;
    else if (s.type === AsPathSegmentType.AsSet) n += 1;
  }
  return n;
}

/**
 * The neighbouring AS for the MED rule: the first AS of a leading AS_SEQUENCE (confederation
 * segments skipped); 0 when there is none or an AS_SET comes first (local or iBGP-originated
 * routes, our own aggregates), so such paths compare MED among themselves.
 */
export function neighborAs(path: readonly AsPathSegment[] | undefined): number {
  for (const s of path ?? []) {
    if (s.type === AsPathSegmentType.AsSequence) return s.asns[0] ?? 0;
    if (s.type === AsPathSegmentType.AsSet) return 0;
  }
  return 0;
}

/** Compare addresses as bytes: every IPv4 address sorts before every IPv6 one. */
export function compareAddresses(a: string, b: string): number {
  const a6 = a.includes(':');
  const b6 = b.includes(':');
  if (a6 !== b6) return a6 ? 1 : -1;
  // A locally originated path has no peer address ('').
  if (!a6) return (a === '' ? 0 : parseIpv4(a)) - (b === '' ? 0 : parseIpv4(b));
  return Buffer.compare(parseIpv6(a), parseIpv6(b));
}

const sign = (x: number) => (x < 0 ? -1 : x > 0 ? 1 : 0);

export const STEPS: readonly Step[] = [
  {
    name: 'localPref',
    label: 'LOCAL_PREF',
    rfc: '9.1.2.2 (a) via 9.1.1',
    compare: (a, b) => sign((b.localPref ?? 100) - (a.localPref ?? 100)),
  },
  {
    name: 'local',
    label: 'locally originated',
    rfc: 'implementation (BIRD, Cisco)',
    compare: (a, b) => (a.local === b.local ? 0 : a.local ? -1 : 1),
  },
  {
    name: 'asPathLength',
    label: 'AS_PATH length',
    rfc: '9.1.2.2 (a)',
    compare: (a, b) => sign(asPathLength(a.asPath) - asPathLength(b.asPath)),
  },
  {
    name: 'origin',
    label: 'ORIGIN',
    rfc: '9.1.2.2 (b)',
    compare: (a, b) => sign((a.origin ?? 2) - (b.origin ?? 2)),
  },
  {
    name: 'med',
    label: 'MED',
    rfc: '9.1.2.2 (c)',
    compare: (a, b, o) => {
      if (!o.alwaysCompareMed && neighborAs(a.asPath) !== neighborAs(b.asPath)) return 0;
      return sign((a.med ?? 0) - (b.med ?? 0));
    },
  },
  {
    name: 'ebgp',
    label: 'eBGP over iBGP',
    rfc: '9.1.2.2 (d)',
    compare: (a, b) => (a.ebgp === b.ebgp ? 0 : a.ebgp ? -1 : 1),
  },
  {
    name: 'igpCost',
    label: 'IGP cost to the next hop',
    rfc: '9.1.2.2 (e)',
    compare: (a, b) => sign((a.igpCost ?? 0) - (b.igpCost ?? 0)),
  },
  {
    name: 'clusterList',
    label: 'CLUSTER_LIST length',
    rfc: 'RFC 4456 §9',
    compare: (a, b) => sign((a.clusterList?.length ?? 0) - (b.clusterList?.length ?? 0)),
  },
  {
    name: 'routerId',
    label: 'router id',
    rfc: '9.1.2.2 (f), RFC 4456 §9',
    compare: (a, b) => {
      const ia = a.originatorId !== undefined ? parseIpv4(a.originatorId) : a.peerRouterId >>> 0;
      const ib = b.originatorId !== undefined ? parseIpv4(b.originatorId) : b.peerRouterId >>> 0;
      return sign(ia - ib);
    },
  },
  {
    name: 'peerAddress',
    label: 'peer address',
    rfc: '9.1.2.2 (g)',
    compare: (a, b) => sign(compareAddresses(a.peerAddress, b.peerAddress)),
  },
  {
    name: 'pathId',
    label: 'path identifier',
    rfc: 'implementation (ADD-PATH)',
    compare: (a, b) => sign(a.pathId - b.pathId),
  },
];

export interface Selection<T extends Candidate> {
  best: T | undefined;
  /** The step that left `best` alone; 'only' when it had no rival. */
  reason: StepName | 'only' | 'none';
}

/**
 * Pick the best of `paths` by elimination. Candidates that tie on every step (the same path
 * twice) leave the first of them.
 */
export function selectBest<T extends Candidate>(
  paths: readonly T[],
  opts: DecisionOptions = DEFAULT_DECISION,
): Selection<T> {
  if (paths.length === 0) return { best: undefined, reason: 'none' };
  if (paths.length === 1) return { best: paths[0], reason: 'only' };
  let left: T[] = paths.slice();
  for (const step of STEPS) {
    // Keep every candidate that no other candidate beats on this step.
    const kept = left.filter((a) => !left.some((b) => b !== a && step.compare(b, a, opts) < 0));
    if (kept.length === 1) return { best: kept[0], reason: step.name };
    if (kept.length > 0) left = kept;
  }
  return { best: left[0], reason: 'pathId' };
}

const MULTIPATH_STEPS = STEPS.slice(0, STEPS.findIndex((s) => s.name === 'igpCost') + 1);

/** Whether `a` and `b` are equal-cost ways to one prefix (see the header). */
export function equalCost(a: Candidate, b: Candidate, opts: DecisionOptions = DEFAULT_DECISION): boolean {
  if (neighborAs(a.asPath) !== neighborAs(b.asPath)) return false;
  for (const step of MULTIPATH_STEPS) if (step.compare(a, b, opts) !== 0) return false;
  return true;
}

export function stepLabel(reason: Selection<Candidate>['reason']): string {
  if (reason === 'only') return 'only path';
  if (reason === 'none') return 'no path';
  return `won on ${STEPS.find((s) => s.name === reason)!.label}`;
}
