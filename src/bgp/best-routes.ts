/**
 * Best routes for the kernel: per prefix, every equal-cost next hop of its best paths
 * (decision.ts `equalCost`: the multipath set), as a stream of changes. The agent's route
 * reconciler consumes it (DESIGN.md "How data flows": remote blocks via the best BGP next hop).
 * Pure: RIB deltas in, `RouteChange`s out.
 *
 * - A change is emitted only when what the kernel would install changes: the sorted next-hop
 *   set, or whether the route is our own. The RIB reports every change to a prefix's candidates
 *   while this is in use (rib.ts `reportEveryChange`), and changes that do not move the set are
 *   dropped here, with the last set sent kept per prefix.
 * - A next hop is a path's first one (for IPv6, the global address before a link-local one);
 *   paths whose next hop does not resolve are not candidates (RFC 4271 §9.1.2.1).
 * - A prefix whose best path is our own (originated) is `local`, with no next hop: the kernel
 *   route for it is the dataplane's own business (a blackhole per block), not a BGP route.
 */
import { formatPrefix, type PrefixKey } from '../net/addr.js';
import { DEFAULT_DECISION, type DecisionOptions, equalCost } from './decision.js';
import type { Delta, Rib } from './rib/rib.js';

export interface RouteChange {
  /** Canonical prefix text. */
  prefix: string;
  /** Every equal-cost next hop, sorted; empty with `local` false: no route any more. */
  nextHops: string[];
  /** Our own prefix (originated here). */
  local: boolean;
}

export class BestRoutes {
  /** Per prefix: the last change sent, as a key. */
  private readonly sent = new Map<PrefixKey, string>();

  constructor(
    private readonly rib: Rib,
    private readonly decision: DecisionOptions = DEFAULT_DECISION,
  ) {}

  /** The changes that `deltas` make to the installed routes. */
  changes(deltas: readonly Delta[]): RouteChange[] {
    const out: RouteChange[] = [];
    for (const d of deltas) {
      const c = this.routeOf(d.prefix);
      const key = c.local ? 'local' : c.nextHops.join(',');
      const before = this.sent.get(d.prefix);
      if (before === key || (before === undefined && key === '')) continue;
      if (key === '') this.sent.delete(d.prefix);
      else this.sent.set(d.prefix, key);
      out.push(c);
    }
    return out;
  }

  /** Take the whole table as sent, so the next changes are differences from it. */
  prime(): void {
    const all: Delta[] = [];
    for (const [prefix] of this.rib.entries()) all.push({ prefix, oldBest: undefined, newBest: undefined });
    this.changes(all);
  }

  /** Every route there is now (our own prefixes, and those with a next hop). */
  current(): RouteChange[] {
    const now: RouteChange[] = [];
    for (const [prefix] of this.rib.entries()) {
      const c = this.routeOf(prefix);
      if (c.local || c.nextHops.length) now.push(c);
    }
    return now;
  }

  /** The route of one prefix as it stands. */
  routeOf(prefix: PrefixKey): RouteChange {
    const text = formatPrefix(prefix);
    const e = this.rib.entry(prefix);
    const best = e?.best;
    if (!e || !best) return { prefix: text, nextHops: [], local: false };
    if (best.local) return { prefix: text, nextHops: [], local: true };
    const hops = new Set<string>();
    for (const p of e.paths)
      if (p.reachable && !p.local && (p === best || equalCost(p, best, this.decision))) {
        const nh = p.ra.nextHops[0];
        if (nh !== undefined) hops.add(nh);
      }
    return { prefix: text, nextHops: [...hops].sort(), local: false };
  }
}
