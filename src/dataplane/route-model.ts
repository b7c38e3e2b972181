/**
 * The route reconciler's pure core: what routes are, who wants them, what the kernel has, and
 * the smallest set of kernel operations that turns one into the other. No I/O, no timers: the
 * shell (routes.ts) passes the time in, feeds it kernel read-backs and link events, and executes
 * the operations it returns (STYLE.md §4-5; Calico Felix's `RouteTable` and `deltatracker` are
 * the model).
 *
 * Vocabulary
 * - A *route spec* is what an owner asks for: `dev` (a pod /32 or /128 on its host-side veth,
 *   scope link), `via` (a remote block through one or more gateways; several gateways make one
 *   ECMP route, RTA_MULTIPATH), or `blackhole` (a local block, so unassigned addresses do not
 *   leak to the default route). Keys are `net/addr` prefix keys: IPv4 as a number, IPv6 as
 *   canonical text.
 * - An *owner* (`pods`, `blocks`, `bgp`, `borrowed`, or any name) replaces its whole set with
 *   `setDesired(owner, specs)` (level-triggered; an empty list withdraws all of its routes).
 *   When two owners want the same prefix, the higher priority wins, then the lower owner name
 *   (so the choice never depends on arrival order). Defaults, highest first: `pods` 400 (a
 *   local workload is always reached on its veth), `borrowed` 300 (an address borrowed from
 *   another node's block, served here), `blocks` 200 (our own blackholes), `bgp` 100 (what the
 *   speaker learned); any other owner 0. Until each owner named in `expectOwners` has called
 *   setDesired once, no route of ours is deleted: a restarted agent whose speaker has not yet
 *   re-learned its routes withdraws nothing (adds and replaces go ahead).
 * - A *kernel route* is what a dump shows: table, protocol, metric, type, scope, next hops.
 *   Ours are those in our table with our protocol number (`RTPROT_TWILL`). Everything else is
 *   *foreign*: it is never replaced or deleted, and a foreign route for a prefix we want is
 *   reported as a conflict. One with our metric (the kernel's identity of a route is table,
 *   prefix, TOS and metric) blocks ours; one at another metric is reported and ours is
 *   installed beside it.
 *
 * The protocol number. 84 (ASCII `T`). The kernel's include/uapi/linux/rtnetlink.h assigns
 * 0-4, 8-18, 42 (babel), 99 (openr), 186-192 (bgp, isis, ospf, rip, eigrp); FRR's
 * /etc/iproute2/rt_protos.d/frr.conf adds 190-197; BIRD uses 12; Calico uses 80 for its own
 * routes. 84 is none of these, so a node migrating from Calico (80) or running BIRD (12) next
 * to us keeps its routes apart from ours. It is configurable, and `rt_protos` can name it
 * (`84 twill` in /etc/iproute2/rt_protos.d/twill.conf).
 *
 * Delta tracking. The model believes the kernel holds the last read-back plus the operations
 * confirmed since. Every change (a new desired set, a link event, a read-back) marks prefixes
 * dirty; `plan(now)` looks only at dirty prefixes. `setDesired` costs the size of that owner's
 * set (it compares the old set with the new one); planning and writing cost the number of
 * prefixes that changed, however many routes there are. A read-back marks everything dirty and
 * is the repair path for drift (a route deleted from outside comes back at the next one).
 *
 * Interfaces (kernel behaviour it relies on)
 * - A `dev` route waits until its interface exists and is administratively up: the kernel
 *   refuses a scope-link route on a down device (ENETDOWN) or a missing one (ENODEV). Waiting
 *   routes are indexed by interface name and go out when the link appears or comes up.
 * - When a link goes down or is deleted the kernel flushes its routes (IPv4 and IPv6) without
 *   sending RTM_DELROUTE for them, so `linkUpdate` (down) and `linkGone` drop the believed
 *   routes through it.
 * - A rename keeps routes on the ifindex; a route wanted on the old name then waits, and ours
 *   on the renamed link no longer match and are removed.
 * - Grace period: a route of ours that nobody wants, on an interface first seen less than
 *   `graceMs` (default 10 s) ago, is kept until the grace ends (the CNI plugin may program a new
 *   veth's route before the agent has heard of the pod). Interfaces seen at the first read-back
 *   get the grace too: a restart removes nothing for the first `graceMs`.
 *
 * Departures: only one routing table (default main); routes carry no source address, TOS,
 * metrics or encapsulation; a gateway must be of the route's own family (no RTA_VIA).
 */
import {
  AddrError,
  formatIpv4,
  formatIpv6,
  formatPrefix,
  type PrefixKey,
  parseIpv4,
  parseIpv6,
  parsePrefix,
  prefix4Key,
} from '../net/addr.js';

/** Our route protocol number (see the header for why 84). */
export const RTPROT_TWILL = 84;
export const RT_TABLE_MAIN = 254;

/** rtm_type values we use or recognise (include/uapi/linux/rtnetlink.h). */
export const enum RtnType {
  Unicast = 1,
  Local = 2,
  Blackhole = 6,
  Unreachable = 7,
  Prohibit = 8,
}

/** rtm_scope values. */
export const enum RtScope {
  Universe = 0,
  Link = 253,
  Host = 254,
}

export type Family = 4 | 6;

/** What an owner asks for. `dst` is prefix text; gateways are address text. */
export type RouteSpec =
  | { dst: string; kind: 'dev'; dev: string }
  | { dst: string; kind: 'via'; via: readonly string[]; dev?: string }
  | { dst: string; kind: 'blackhole' };

/** A normalised route spec: canonical key, sorted canonical gateways. */
export interface Route {
  readonly key: PrefixKey;
  readonly family: Family;
  readonly kind: 'dev' | 'via' | 'blackhole';
  /** The interface (`dev` routes; optional for `via`). */
  readonly dev: string | undefined;
  /** Gateways, canonical text, sorted, no duplicates; empty unless `via`. */
  readonly via: readonly string[];
}

export interface NextHop {
  /** Canonical address text, or undefined for a directly connected next hop. */
  gateway: string | undefined;
  /** Output interface index; 0 = none / let the kernel resolve it. */
  oif: number;
}

/** A route as the kernel reports it or as we write it. */
export interface KernelRoute {
  key: PrefixKey;
  family: Family;
  table: number;
  protocol: number;
  metric: number;
  type: number;
  scope: number;
  /**
   * Empty for blackhole and friends; one entry for a single path; several for ECMP. Shared
   * between routes with the same next hops: never mutate it.
   */
  nexthops: NextHop[];
}

export interface LinkState {
  index: number;
  name: string;
  /** IFF_UP (administratively up). */
  up: boolean;
}

export type RouteOpKind = 'add' | 'replace' | 'del';

export interface RouteOp {
  op: RouteOpKind;
  route: KernelRoute;
}

export interface Conflict {
  /** The prefix, as text. */
  dst: string;
  /** The foreign route's protocol and metric. */
  protocol: number;
  metric: number;
  /** True when the foreign route has our metric, so ours cannot be installed. */
  blocking: boolean;
}

export interface Plan {
  ops: RouteOp[];
  /** Prefixes whose route waits for its interface (name) to exist and be up. */
  waiting: { dst: string; dev: string }[];
  /** Foreign routes for prefixes we want (among the prefixes this plan looked at). */
  conflicts: Conflict[];
  /** Routes of ours kept for an interface's grace period or until expected owners report. */
  deferred: number;
  /** When `plan()` should run again for a grace period to end; undefined if none pending. */
  wakeAtMs: number | undefined;
}

export interface RouteModelOptions {
  protocol?: number;
  table?: number;
  /** Grace for routes of ours on a new interface (ms). Default 10 000. */
  graceMs?: number;
  /** Metric of our IPv4 routes. Default 0. */
  metric4?: number;
  /** Metric of our IPv6 routes. Default 1024 (what the kernel gives an IPv6 route with 0). */
  metric6?: number;
  /** Owner priorities; merged over DEFAULT_PRIORITIES. */
  priorities?: Record<string, number>;
  /**
   * Owners that must have called setDesired at least once before any route of ours is
   * deleted (e.g. `['pods', 'blocks', 'bgp']`: after a restart the speaker has learned nothing
   * yet, and its empty set must not withdraw the routes the kernel kept). Adds and replaces
   * are not held back. Default: none.
   */
  expectOwners?: readonly string[];
}

export const DEFAULT_PRIORITIES: Readonly<Record<string, number>> = {
  pods: 400,
  borrowed: 300,
  blocks: 200,
  bgp: 100,
};

export class RouteSpecError extends Error {
  override name = 'RouteSpecError';
}

function canonicalAddr(text: string, family: Family, dst: string): string {
  try {
    if (family === 4) return formatIpv4(parseIpv4(text));
    return formatIpv6(parseIpv6(text));
  } catch (err) {
    if (err instanceof AddrError)
      throw new RouteSpecError(
        `route ${dst}: gateway ${JSON.stringify(text)} is not an IPv${family} address`,
      );
    throw err;
  }
}

const NO_VIA: readonly string[] = [];

/**
 * An IPv4 prefix key from `a.b.c.d/len` in one pass (the common case, 50k times at start-up);
 * anything else, or anything odd, goes to net/addr's `parsePrefix`, which handles IPv6 and
 * throws the right error.
 */
export function parseDst(text: string): PrefixKey {
  let addr = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return parsePrefix(text);
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return parsePrefix(text);
    } else if (c === 46 /* . */ && digits > 0 && dots < 3) {
      addr = addr * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else break;
  }
  if (dots !== 3 || digits === 0 || i >= text.length - 1 || text.charCodeAt(i) !== 47 /* / */)
    return parsePrefix(text);
  addr = addr * 256 + octet;
  let len = 0;
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c < 48 || c > 57 || (j > i + 1 && len === 0) || j > i + 2) return parsePrefix(text);
    len = len * 10 + (c - 48);
  }
  if (len > 32 || (len < 32 && addr % 2 ** (32 - len) !== 0)) return parsePrefix(text);
  return prefix4Key(addr, len);
}

/**
 * Validate and normalise one spec. Throws RouteSpecError naming the route and field. `intern`
 * shares gateway lists between routes (a cluster has few next-hop sets and many prefixes).
 */
export function normaliseRoute(spec: RouteSpec, intern?: Map<string, readonly string[]>): Route {
  let key: PrefixKey;
  try {
    key = parseDst(spec.dst);
  } catch (err) {
    throw new RouteSpecError(`route dst ${JSON.stringify(spec.dst)}: ${(err as Error).message}`);
  }
  const family: Family = typeof key === 'number' ? 4 : 6;
  switch (spec.kind) {
    case 'dev':
      if (!spec.dev) throw new RouteSpecError(`route ${spec.dst}: kind dev needs an interface name`);
      return { key, family, kind: 'dev', dev: spec.dev, via: NO_VIA };
    case 'blackhole':
      return { key, family, kind: 'blackhole', dev: undefined, via: NO_VIA };
    case 'via': {
      if (!spec.via || spec.via.length === 0)
        throw new RouteSpecError(`route ${spec.dst}: kind via needs at least one gateway`);
      let via: readonly string[] | undefined;
      if (spec.via.length === 1) {
        // Gateways repeat (one per node): the text as given finds its canonical list without
        // parsing it again, once its family is seen to match.
        const raw = spec.via[0]!;
        via = intern?.get(raw);
        if (via === undefined || via[0]!.includes(':') !== (family === 6)) {
          const g = canonicalAddr(raw, family, spec.dst);
          via = intern?.get(g) ?? [g];
          if (intern !== undefined && intern.size < 65_536) {
            intern.set(g, via);
            intern.set(raw, via);
          }
        }
      } else {
        const list = [...new Set(spec.via.map((g) => canonicalAddr(g, family, spec.dst)))].sort();
        const id = list.join(' ');
        via = intern?.get(id) ?? list;
        if (intern !== undefined && intern.size < 65_536) intern.set(id, via);
      }
      return { key, family, kind: 'via', dev: spec.dev || undefined, via };
    }
    default:
      throw new RouteSpecError(
        `route ${(spec as RouteSpec).dst}: kind must be dev, via or blackhole, not ${JSON.stringify((spec as { kind: unknown }).kind)}`,
      );
  }
}

export function sameRoute(a: Route, b: Route): boolean {
  if (a === b) return true;
  if (a.key !== b.key || a.kind !== b.kind || a.dev !== b.dev) return false;
  if (a.via === b.via) return true;
  if (a.via.length !== b.via.length) return false;
  for (let i = 0; i < a.via.length; i++) if (a.via[i] !== b.via[i]) return false;
  return true;
}

/** Whether two kernel routes are the same route (next hops in order). */
export function sameKernelRoute(a: KernelRoute, b: KernelRoute): boolean {
  if (a === b) return true;
  if (
    a.key !== b.key ||
    a.table !== b.table ||
    a.protocol !== b.protocol ||
    a.metric !== b.metric ||
    a.type !== b.type ||
    a.scope !== b.scope ||
    a.nexthops.length !== b.nexthops.length
  )
    return false;
  for (let i = 0; i < a.nexthops.length; i++)
    if (a.nexthops[i]!.gateway !== b.nexthops[i]!.gateway || a.nexthops[i]!.oif !== b.nexthops[i]!.oif)
      return false;
  return true;
}

/** Whether what the kernel has is what `want` asks for (`index` maps interface names). */
export function kernelMatches(
  want: Route,
  have: KernelRoute,
  index: (name: string) => number | undefined,
): boolean {
  switch (want.kind) {
    case 'blackhole':
      // IPv6 reports a blackhole on `lo`; the interface is not part of the identity.
      return have.type === RtnType.Blackhole;
    case 'dev': {
      if (have.type !== RtnType.Unicast || have.nexthops.length !== 1) return false;
      const nh = have.nexthops[0]!;
      // IPv6 routes always report scope universe; only IPv4 keeps scope link.
      if (want.family === 4 && have.scope !== RtScope.Link) return false;
      return nh.gateway === undefined && nh.oif !== 0 && nh.oif === index(want.dev!);
    }
    case 'via': {
      if (have.type !== RtnType.Unicast || have.nexthops.length !== want.via.length) return false;
      const oif = want.dev === undefined ? undefined : index(want.dev);
      if (want.via.length === 1) {
        const nh = have.nexthops[0]!;
        return nh.gateway === want.via[0] && (oif === undefined || nh.oif === oif);
      }
      const got = have.nexthops.map((n) => n.gateway ?? '').sort();
      for (let i = 0; i < got.length; i++) if (got[i] !== want.via[i]) return false;
      return oif === undefined || have.nexthops.every((n) => n.oif === oif);
    }
  }
}

interface LinkInfo {
  index: number;
  name: string;
  up: boolean;
  firstSeenMs: number;
}

export class RouteModel {
  readonly protocol: number;
  readonly table: number;
  readonly graceMs: number;
  private readonly metric4: number;
  private readonly metric6: number;
  private readonly priorities: Record<string, number>;

  /** owner -> key -> route. */
  private readonly owners = new Map<string, Map<PrefixKey, Route>>();
  /** Owners, highest priority first (then by name). */
  private ownerOrder: string[] = [];
  /** The winning route per key. */
  private readonly desired = new Map<PrefixKey, Route>();

  /** Ours at our metric, believed present in the kernel. */
  private readonly ours = new Map<PrefixKey, KernelRoute>();
  /** Everything else in our table: foreign routes and ours at another metric. Small. */
  private readonly others = new Map<PrefixKey, KernelRoute[]>();
  /** oif -> keys of `ours` whose next hops use that interface. */
  private readonly byOif = new Map<number, Set<PrefixKey>>();

  private readonly links = new Map<number, LinkInfo>();
  private readonly linkByName = new Map<string, number>();
  /** Interface name -> keys whose desired route names it. */
  private readonly wantedOn = new Map<string, Set<PrefixKey>>();

  private readonly dirty = new Set<PrefixKey>();
  /** Interned gateway lists, and next-hop lists per (gateway list, oif) and per oif. */
  private readonly viaIntern = new Map<string, readonly string[]>();
  private readonly viaHops = new Map<readonly string[], Map<number, NextHop[]>>();
  private readonly devHops = new Map<number, NextHop[]>();
  /** Keys held back by a grace period, with the time it ends. */
  private readonly graceUntil = new Map<PrefixKey, number>();
  private everLoaded = false;
  /** Expected owners that have not called setDesired yet; no route of ours goes meanwhile. */
  private readonly unsynced = new Set<string>();
  /** Set when the model's picture of the kernel is unreliable; the shell reads back. */
  needReadBack = true;

  constructor(opts: RouteModelOptions = {}) {
    this.protocol = opts.protocol ?? RTPROT_TWILL;
    this.table = opts.table ?? RT_TABLE_MAIN;
    this.graceMs = opts.graceMs ?? 10_000;
    this.metric4 = opts.metric4 ?? 0;
    this.metric6 = opts.metric6 ?? 1024;
    this.priorities = { ...DEFAULT_PRIORITIES, ...(opts.priorities ?? {}) };
    for (const o of opts.expectOwners ?? []) this.unsynced.add(o);
  }

  // ---- desired state ---------------------------------------------------------------------

  /**
   * Replace everything `owner` wants. An empty iterable withdraws all of the owner's routes.
   * Throws RouteSpecError (and changes nothing) if a spec is invalid or an owner lists a prefix
   * twice with different routes.
   */
  setDesired(owner: string, specs: Iterable<RouteSpec>): void {
    if (this.unsynced.delete(owner) && this.unsynced.size === 0) {
      // Deletions held back until now can go.
      for (const key of this.ours.keys()) this.dirty.add(key);
      for (const key of this.others.keys()) this.dirty.add(key);
    }
    const next = new Map<PrefixKey, Route>();
    for (const spec of specs) {
      const r = normaliseRoute(spec, this.viaIntern);
      const prev = next.get(r.key);
      if (prev !== undefined && !sameRoute(prev, r))
        throw new RouteSpecError(`owner ${owner} lists ${formatPrefix(r.key)} twice with different routes`);
      next.set(r.key, r);
    }
    const old = this.owners.get(owner);
    if (next.size === 0) this.owners.delete(owner);
    else this.owners.set(owner, next);
    if (old === undefined || next.size === 0) this.sortOwners();
    if (old !== undefined) {
      for (const [key, r] of old) {
        const n = next.get(key);
        if (n === undefined || !sameRoute(n, r)) this.recompute(key);
      }
    }
    for (const [key, r] of next) {
      const o = old?.get(key);
      if (o === undefined) this.recompute(key);
      else if (o !== r && !sameRoute(o, r)) this.recompute(key);
    }
  }

  /**
   * Change part of what `owner` wants: a spec adds or replaces the route of its prefix, null
   * removes the owner's route for `dst`. The cost is that of the changes, not of the owner's
   * whole set (a BGP owner with a full table and a trickle of best-route changes). Unlike
   * setDesired it does not count as the owner's report for `expectOwners`. Throws
   * RouteSpecError, after applying the changes before the bad one, if a spec is invalid.
   */
  updateDesired(owner: string, changes: Iterable<readonly [dst: string, spec: RouteSpec | null]>): void {
    let routes = this.owners.get(owner);
    const created = routes === undefined;
    if (routes === undefined) routes = new Map();
    this.owners.set(owner, routes);
    if (created) this.sortOwners();
    try {
      for (const [dst, spec] of changes) {
        if (spec === null) {
          const key = parseDst(dst);
          if (routes.delete(key)) this.recompute(key);
          continue;
        }
        const r = normaliseRoute(spec, this.viaIntern);
        const o = routes.get(r.key);
        if (o !== undefined && sameRoute(o, r)) continue;
        routes.set(r.key, r);
        this.recompute(r.key);
      }
    } finally {
      if (routes.size === 0) {
        this.owners.delete(owner);
        this.sortOwners();
      }
    }
  }

  /** The route that wins for a prefix (text), if any. */
  desiredRoute(dst: string): Route | undefined {
    return this.desired.get(parsePrefix(dst));
  }

  desiredCount(): number {
    return this.desired.size;
  }

  private priority(owner: string): number {
    return this.priorities[owner] ?? 0;
  }

  private sortOwners(): void {
    this.ownerOrder = [...this.owners.keys()].sort((a, b) => {
      const d = this.priority(b) - this.priority(a);
      return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
    });
  }

  private recompute(key: PrefixKey): void {
    let win: Route | undefined;
    for (const owner of this.ownerOrder) {
      win = this.owners.get(owner)!.get(key);
      if (win !== undefined) break;
    }
    const cur = this.desired.get(key);
    if (win === undefined) {
      if (cur === undefined) return;
      this.desired.delete(key);
    } else {
      if (cur !== undefined && sameRoute(cur, win)) return;
      this.desired.set(key, win);
    }
    if (cur?.dev !== undefined) this.wantedOn.get(cur.dev)?.delete(key);
    if (win?.dev !== undefined) {
      const s = this.wantedOn.get(win.dev);
      if (s === undefined) this.wantedOn.set(win.dev, new Set([key]));
      else s.add(key);
    }
    this.dirty.add(key);
  }

  // ---- links ----------------------------------------------------------------------------

  private index = (name: string): number | undefined => this.linkByName.get(name);

  /** A link appeared, changed (up/down, rename) or was confirmed by a dump. */
  linkUpdate(link: LinkState, nowMs: number): void {
    const prev = this.links.get(link.index);
    if (prev === undefined) {
      const stale = this.linkByName.get(link.name);
      if (stale !== undefined && stale !== link.index) this.dropLink(stale);
      this.links.set(link.index, { ...link, firstSeenMs: nowMs });
      this.linkByName.set(link.name, link.index);
      this.wake(link.name);
      return;
    }
    if (prev.name !== link.name) {
      if (this.linkByName.get(prev.name) === prev.index) this.linkByName.delete(prev.name);
      const stale = this.linkByName.get(link.name);
      if (stale !== undefined && stale !== link.index) this.dropLink(stale);
      this.linkByName.set(link.name, link.index);
      // Routes wanted on either name, and ours on this ifindex, need a fresh look.
      this.markOif(link.index);
      this.wake(prev.name);
      prev.name = link.name;
      this.wake(link.name);
    }
    if (prev.up && !link.up) {
      // The kernel flushed this link's routes (no RTM_DELROUTE for them).
      this.forgetOif(link.index);
      this.wake(link.name);
    } else if (!prev.up && link.up) {
      this.wake(link.name);
    }
    prev.up = link.up;
  }

  /** A link was deleted: the kernel removed every route through it. */
  linkGone(index: number): void {
    const l = this.links.get(index);
    if (l === undefined) return;
    this.dropLink(index);
    this.wake(l.name);
  }

  private dropLink(index: number): void {
    const l = this.links.get(index);
    if (l === undefined) return;
    this.links.delete(index);
    if (this.linkByName.get(l.name) === index) this.linkByName.delete(l.name);
    this.forgetOif(index);
  }

  /** Drop believed routes through `oif` (the kernel flushed them) and mark their keys dirty. */
  private forgetOif(oif: number): void {
    const keys = this.byOif.get(oif);
    if (keys === undefined) return;
    this.byOif.delete(oif);
    for (const key of keys) {
      const r = this.ours.get(key);
      if (r !== undefined) this.unindex(r, oif);
      this.ours.delete(key);
      this.dirty.add(key);
    }
    // Ours at other metrics and foreign routes through it went too.
    for (const [key, list] of this.others) {
      const keep = list.filter((r) => !r.nexthops.some((n) => n.oif === oif));
      if (keep.length !== list.length) {
        if (keep.length === 0) this.others.delete(key);
        else this.others.set(key, keep);
        this.dirty.add(key);
      }
    }
  }

  private markOif(oif: number): void {
    for (const key of this.byOif.get(oif) ?? []) this.dirty.add(key);
  }

  /** Routes that name interface `name` need a fresh look (it appeared, went or changed). */
  private wake(name: string): void {
    for (const key of this.wantedOn.get(name) ?? []) this.dirty.add(key);
  }

  /** Name of an interface index, if known. */
  linkName(index: number): string | undefined {
    return this.links.get(index)?.name;
  }

  // ---- kernel state ----------------------------------------------------------------------

  /** Whether a dumped route is one of ours. */
  isOurs(r: KernelRoute): boolean {
    return r.protocol === this.protocol && r.table === this.table;
  }

  private ourMetric(family: Family): number {
    return family === 4 ? this.metric4 : this.metric6;
  }

  /**
   * A full read-back: links and every route in the kernel (any table; only ours is kept).
   * Replaces the believed state and marks every known prefix dirty.
   */
  loadKernel(routes: Iterable<KernelRoute>, links: Iterable<LinkState>, nowMs: number): void {
    const seen = new Set<number>();
    for (const l of links) {
      seen.add(l.index);
      this.linkUpdate(l, nowMs);
    }
    for (const index of [...this.links.keys()]) if (!seen.has(index)) this.linkGone(index);

    for (const key of this.ours.keys()) this.dirty.add(key);
    for (const key of this.others.keys()) this.dirty.add(key);
    this.ours.clear();
    this.others.clear();
    this.byOif.clear();
    for (const r of routes) {
      if (r.table !== this.table) continue;
      if (
        r.type !== RtnType.Unicast &&
        r.type !== RtnType.Blackhole &&
        r.type !== RtnType.Unreachable &&
        r.type !== RtnType.Prohibit
      )
        continue;
      this.dirty.add(r.key);
      if (r.protocol === this.protocol && r.metric === this.ourMetric(r.family) && !this.ours.has(r.key)) {
        this.ours.set(r.key, r);
        this.index_(r);
      } else {
        const list = this.others.get(r.key);
        if (list === undefined) this.others.set(r.key, [r]);
        else list.push(r);
      }
    }
    for (const key of this.desired.keys()) this.dirty.add(key);
    this.everLoaded = true;
    this.needReadBack = false;
  }

  private index_(r: KernelRoute): void {
    for (const nh of r.nexthops) {
      if (nh.oif === 0) continue;
      const s = this.byOif.get(nh.oif);
      if (s === undefined) this.byOif.set(nh.oif, new Set([r.key]));
      else s.add(r.key);
    }
  }

  private unindex(r: KernelRoute, except?: number): void {
    for (const nh of r.nexthops) if (nh.oif !== 0 && nh.oif !== except) this.byOif.get(nh.oif)?.delete(r.key);
  }

  /**
   * A route that another path of this process wrote (the CNI host wiring, cni/host-wiring.ts):
   * taken as in the kernel, as a read-back would find it, and its prefix made dirty so that the
   * next plan holds it to what is desired (kept, replaced, or retired as a read-back's would be).
   * Routes not ours (protocol, table, metric) are left to the next read-back.
   */
  adopt(r: KernelRoute): void {
    if (!this.isOurs(r) || r.metric !== this.ourMetric(r.family) || !this.everLoaded) return;
    this.confirm({ op: 'replace', route: r });
    this.dirty.add(r.key);
  }

  /** The route of ours believed in the kernel for a prefix (tests, status). */
  believed(key: PrefixKey): KernelRoute | undefined {
    return this.ours.get(key);
  }

  believedCount(): number {
    return this.ours.size;
  }

  /** Whether a read-back has happened (nothing is written before). */
  get loaded(): boolean {
    return this.everLoaded;
  }

  // ---- planning --------------------------------------------------------------------------

  /** The kernel form of a wanted route, or undefined while its interface is missing or down. */
  toKernel(want: Route): KernelRoute | undefined {
    let oif = 0;
    if (want.dev !== undefined) {
      const index = this.linkByName.get(want.dev);
      if (index === undefined || !this.links.get(index)!.up) return undefined;
      oif = index;
    }
    // One literal per kind, same field order: every KernelRoute has one shape.
    const metric = want.family === 4 ? this.metric4 : this.metric6;
    switch (want.kind) {
      case 'blackhole':
        return {
          key: want.key,
          family: want.family,
          table: this.table,
          protocol: this.protocol,
          metric,
          type: RtnType.Blackhole,
          scope: RtScope.Universe,
          nexthops: [],
        };
      case 'dev': {
        let nexthops = this.devHops.get(oif);
        if (nexthops === undefined) {
          nexthops = [{ gateway: undefined, oif }];
          if (this.devHops.size > 65_536) this.devHops.clear();
          this.devHops.set(oif, nexthops);
        }
        return {
          key: want.key,
          family: want.family,
          table: this.table,
          protocol: this.protocol,
          metric,
          type: RtnType.Unicast,
          scope: RtScope.Link,
          nexthops,
        };
      }
      case 'via': {
        let byOif = this.viaHops.get(want.via);
        if (byOif === undefined) {
          if (this.viaHops.size > 65_536) this.viaHops.clear();
          byOif = new Map();
          this.viaHops.set(want.via, byOif);
        }
        let nexthops = byOif.get(oif);
        if (nexthops === undefined) {
          nexthops = want.via.map((gateway) => ({ gateway, oif }));
          byOif.set(oif, nexthops);
        }
        return {
          key: want.key,
          family: want.family,
          table: this.table,
          protocol: this.protocol,
          metric,
          type: RtnType.Unicast,
          scope: RtScope.Universe,
          nexthops,
        };
      }
    }
  }

  /** Is a route of ours on an interface still in its grace period? Returns when it ends. */
  private graceEnd(r: KernelRoute, nowMs: number): number | undefined {
    let end: number | undefined;
    for (const nh of r.nexthops) {
      const l = nh.oif === 0 ? undefined : this.links.get(nh.oif);
      if (l === undefined) continue;
      const e = l.firstSeenMs + this.graceMs;
      if (e > nowMs && (end === undefined || e > end)) end = e;
    }
    return end;
  }

  /** Whether anything is dirty (apply has work, short of a read-back). */
  get pending(): boolean {
    return this.dirty.size > 0;
  }

  /**
   * The operations that bring the dirty prefixes to their desired state. The believed state is
   * not changed here: call `confirm()` or `failed()` with each operation's outcome.
   */
  plan(nowMs: number): Plan {
    const plan: Plan = { ops: [], waiting: [], conflicts: [], deferred: 0, wakeAtMs: undefined };
    // Grace periods that ended make their keys dirty again.
    for (const [key, end] of this.graceUntil) {
      if (end <= nowMs) {
        this.graceUntil.delete(key);
        this.dirty.add(key);
      }
    }
    if (!this.everLoaded) return plan;
    // A route of ours goes, unless owners are still expected or its interface is new.
    const retire = (key: PrefixKey, route: KernelRoute) => {
      if (this.unsynced.size > 0) {
        plan.deferred++;
        return;
      }
      const end = this.graceEnd(route, nowMs);
      if (end === undefined) plan.ops.push({ op: 'del', route });
      else {
        this.graceUntil.set(key, end);
        plan.deferred++;
      }
    };
    for (const key of this.dirty) {
      const want = this.desired.get(key);
      const have = this.ours.get(key);
      const others = this.others.get(key);
      let blocked = false;
      if (others !== undefined) {
        for (const o of others) {
          if (o.protocol === this.protocol) {
            // Ours at a metric we no longer use.
            retire(key, o);
          } else if (want !== undefined) {
            const block = o.metric === this.ourMetric(want.family);
            blocked ||= block;
            plan.conflicts.push({
              dst: formatPrefix(key),
              protocol: o.protocol,
              metric: o.metric,
              blocking: block,
            });
          }
        }
      }
      if (want === undefined) {
        if (have !== undefined) retire(key, have);
        continue;
      }
      if (have !== undefined && kernelMatches(want, have, this.index)) continue;
      const route = this.toKernel(want);
      if (route === undefined) {
        // Its interface is missing or down: a link event wakes it (wantedOn). A stale route of
        // ours for the prefix goes meanwhile.
        plan.waiting.push({ dst: formatPrefix(key), dev: want.dev! });
        if (have !== undefined) retire(key, have);
        continue;
      }
      if (blocked) {
        // A foreign route holds the kernel's slot for this prefix. Ours, if any, stays as is
        // (it cannot be there too: same table, prefix and metric).
        continue;
      }
      plan.ops.push({ op: have === undefined ? 'add' : 'replace', route });
    }
    this.dirty.clear();
    for (const end of this.graceUntil.values())
      if (plan.wakeAtMs === undefined || end < plan.wakeAtMs) plan.wakeAtMs = end;
    return plan;
  }

  /** An operation succeeded (or, for a delete, the route was already gone). */
  confirm(op: RouteOp): void {
    const r = op.route;
    if (op.op === 'del') {
      const cur = this.ours.get(r.key);
      if (cur !== undefined && cur.metric === r.metric) {
        this.unindex(cur);
        this.ours.delete(r.key);
      } else {
        const list = this.others.get(r.key);
        if (list !== undefined) {
          const keep = list.filter((o) => !(o.protocol === r.protocol && o.metric === r.metric));
          if (keep.length === 0) this.others.delete(r.key);
          else this.others.set(r.key, keep);
        }
      }
      return;
    }
    const cur = this.ours.get(r.key);
    if (cur !== undefined) this.unindex(cur);
    this.ours.set(r.key, r);
    this.index_(r);
  }

  /**
   * An operation failed. `code` is the errno name. A missing or down interface (ENODEV,
   * ENETDOWN) means a link event is on its way: the route waits and links are re-read. A
   * delete of something already gone (ESRCH, ENOENT) is a success. Anything else (EEXIST: a
   * foreign route appeared) leaves the kernel state unknown: the next apply reads back.
   */
  failed(op: RouteOp, code: string): 'ok' | 'wait' | 'readback' {
    if (op.op === 'del' && (code === 'ESRCH' || code === 'ENOENT')) {
      this.confirm(op);
      return 'ok';
    }
    // The route is there already, put by this process's other path while the add was on its
    // way (adopt): nothing to read back.
    if (op.op === 'add' && code === 'EEXIST') {
      const cur = this.ours.get(op.route.key);
      if (cur !== undefined && sameKernelRoute(cur, op.route)) return 'ok';
    }
    this.dirty.add(op.route.key);
    this.needReadBack = true;
    if (code === 'ENODEV' || code === 'ENETDOWN') return 'wait';
    return 'readback';
  }

  /** Forget the believed kernel state: the next apply reads everything back. */
  markForReadBack(): void {
    this.needReadBack = true;
  }

  /** Current conflicts for every desired prefix (status output). */
  conflicts(): Conflict[] {
    const out: Conflict[] = [];
    for (const [key, list] of this.others) {
      const want = this.desired.get(key);
      if (want === undefined) continue;
      for (const o of list)
        if (o.protocol !== this.protocol)
          out.push({
            dst: formatPrefix(key),
            protocol: o.protocol,
            metric: o.metric,
            blocking: o.metric === this.ourMetric(want.family),
          });
    }
    return out;
  }

  /** Desired routes waiting for an interface (status output). */
  waiting(): { dst: string; dev: string }[] {
    const out: { dst: string; dev: string }[] = [];
    for (const [dev, keys] of this.wantedOn) {
      const index = this.linkByName.get(dev);
      if (index !== undefined && this.links.get(index)!.up) continue;
      for (const key of keys) out.push({ dst: formatPrefix(key), dev });
    }
    return out;
  }
}
