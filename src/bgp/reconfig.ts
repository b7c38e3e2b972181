/**
 * Reconfiguration as data: the difference between two neighbor lists, as the changes a running
 * speaker makes to go from one to the other (`Speaker.setNeighbors`, level-triggered: the list
 * is the whole desired set, STYLE.md §4). Pure.
 *
 * A neighbor is named by its address. Between two lists it is:
 * - gone: `remove`, Cease 6/3 "Peer De-configured" (RFC 4486 §3);
 * - new: `add`;
 * - changed in a setting the session was opened with (AS, port, passive, hold time, families,
 *   local address, connect retry): `remove` with Cease 6/6 "Other Configuration Change" then
 *   `add`, since those are negotiated or fixed at OPEN;
 * - changed only in policy (import and export rules, next-hop-self, route-reflector client,
 *   allowas-in, max-prefix, description): `policy`, applied without a reset. New import rules ask
 *   the peer for a route refresh (RFC 2918), new export rules recompute what it is sent.
 *
 * The changes come removals first, then additions, then policy changes, each in list order, so
 * that a neighbor moved to another session setting is gone before it is added again.
 */
import type { NeighborConfig } from './config.js';

export type NeighborChange =
  | { kind: 'remove'; address: string; why: 'removed' | 'session settings changed' }
  | { kind: 'add'; neighbor: NeighborConfig }
  | { kind: 'policy'; neighbor: NeighborConfig; importChanged: boolean };

/** The settings a session is opened with: a change to any of them needs a new session. */
export function sessionKey(n: NeighborConfig): string {
  const {
    import: _i,
    export: _e,
    nextHopSelf: _n,
    routeReflectorClient: _r,
    allowasIn: _a,
    maxPrefix: _m,
    description: _d,
    ...rest
  } = n;
  return JSON.stringify(rest);
}

/** What turns a speaker configured with `before` into one configured with `after`. */
export function diffNeighbors(
  before: readonly NeighborConfig[],
  after: readonly NeighborConfig[],
): NeighborChange[] {
  const was = new Map(before.map((n) => [n.address, n]));
  const now = new Map(after.map((n) => [n.address, n]));
  const removes: NeighborChange[] = [];
  const adds: NeighborChange[] = [];
  const policies: NeighborChange[] = [];
  for (const [address, old] of was) {
    const n = now.get(address);
    if (!n) removes.push({ kind: 'remove', address, why: 'removed' });
    else if (sessionKey(n) !== sessionKey(old))
      removes.push({ kind: 'remove', address, why: 'session settings changed' });
  }
  for (const [address, n] of now) {
    const old = was.get(address);
    if (!old || sessionKey(n) !== sessionKey(old)) adds.push({ kind: 'add', neighbor: n });
    else if (JSON.stringify(n) !== JSON.stringify(old))
      policies.push({
        kind: 'policy',
        neighbor: n,
        importChanged: JSON.stringify(n.import) !== JSON.stringify(old.import),
      });
  }
  return [...removes, ...adds, ...policies];
}
