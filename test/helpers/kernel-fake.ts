/**
 * An in-memory `Kernel` (kernel.ts) for unit tests, with the rtnetlink behaviour the
 * reconciler relies on and faults to inject (STYLE.md §14; Calico's `mocknetlink`).
 *
 * Behaviour modelled on Linux:
 * - A route's identity is (table, prefix, metric). `add` fails EEXIST on an existing identity;
 *   `replace` overwrites or creates; `del` needs table, prefix, metric and (if non-zero) the
 *   protocol to match, else ESRCH.
 * - A scope-link or interface route needs its interface: missing -> ENODEV, down -> ENETDOWN.
 * - Setting a link down or deleting it flushes every route through it, with no route event
 *   (as IPv4 and IPv6 do); link changes are notified to `link` subscribers.
 * - Route events go to `route` subscribers for every change made through this fake.
 *
 * Faults: `failNext(op, code, count)` makes the next matching route operations fail with an
 * errno name; `interruptDumps(n)` makes the next n route dumps reject with EINTR (a dump the
 * kernel marked NLM_F_DUMP_INTR); `breakHandle(n)` makes the next n `writeRoutes` calls reject
 * as a broken socket would. `ops` records every route operation that reached the table, so a
 * test can assert that a restart deleted nothing.
 *
 * One fake is one namespace: several handles (`handle()`) share its tables, as sockets share
 * a namespace, so a "fresh handle" or a restarted reconciler sees the same state.
 */
import type { EventGroup, Kernel, KernelEvent, NeighbourEntry } from '../../src/dataplane/kernel.js';
import { KernelError } from '../../src/dataplane/kernel.js';
import type {
  Family,
  KernelRoute,
  LinkState,
  RouteOp,
  RouteOpKind,
} from '../../src/dataplane/route-model.js';

const ident = (r: { table: number; key: unknown; metric: number }) =>
  `${r.table}|${String(r.key)}|${r.metric}`;

export class FakeKernel {
  readonly links = new Map<number, LinkState>();
  /** Link aliases set through setLink, by name. */
  readonly aliases = new Map<string, string>();
  readonly routes = new Map<string, KernelRoute>();
  readonly neighbours = new Map<string, NeighbourEntry>();
  /** Every route operation applied to the table, in order. */
  readonly ops: { op: RouteOpKind; key: KernelRoute['key']; ok: boolean; code?: string }[] = [];
  private nextIndex = 10;
  private readonly faults: { op: RouteOpKind | 'any'; code: string; count: number }[] = [];
  private dumpFaults = 0;
  private handleFaults = 0;
  private readonly subs = new Set<{ groups: Set<EventGroup>; fn: (ev: KernelEvent) => void }>();
  /** Route dumps served (read-backs) and writeRoutes batches received. */
  dumps = 0;
  batches = 0;
  handlesOpened = 0;

  // ---- the test's hands ------------------------------------------------------------------

  addLink(name: string, up = true): number {
    const index = this.nextIndex++;
    const link = { index, name, up };
    this.links.set(index, link);
    this.emit('link', { kind: 'link', link: { ...link } });
    return index;
  }

  setLinkUp(name: string, up: boolean): void {
    const l = this.byName(name);
    l.up = up;
    if (!up) this.flush(l.index);
    this.emit('link', { kind: 'link', link: { ...l } });
  }

  renameLink(from: string, to: string): void {
    const l = this.byName(from);
    l.name = to;
    this.emit('link', { kind: 'link', link: { ...l } });
  }

  delLink(name: string): void {
    const l = this.byName(name);
    this.links.delete(l.index);
    this.flush(l.index);
    for (const [k, n] of this.neighbours) if (n.ifindex === l.index) this.neighbours.delete(k);
    this.emit('link', { kind: 'linkGone', index: l.index, name: l.name });
  }

  linkIndex(name: string): number | undefined {
    for (const l of this.links.values()) if (l.name === name) return l.index;
    return undefined;
  }

  /** Put a route straight into the table (a foreign route, or one of ours from "before"). */
  inject(r: KernelRoute): void {
    this.routes.set(ident(r), r);
  }

  /** Remove a route from outside (as `ip route del` would). */
  remove(table: number, key: KernelRoute['key'], metric: number): boolean {
    return this.routes.delete(ident({ table, key, metric }));
  }

  route(key: KernelRoute['key'], metric: number, table = 254): KernelRoute | undefined {
    return this.routes.get(ident({ table, key, metric }));
  }

  failNext(op: RouteOpKind | 'any', code: string, count = 1): void {
    this.faults.push({ op, code, count });
  }

  interruptDumps(n = 1): void {
    this.dumpFaults += n;
  }

  breakHandle(n = 1): void {
    this.handleFaults += n;
  }

  /** Send an overrun to every subscriber (lost notifications). */
  overrun(): void {
    for (const s of this.subs) s.fn({ kind: 'overrun' });
  }

  /** A new handle on this namespace. */
  handle(): Kernel {
    this.handlesOpened++;
    return new FakeHandle(this);
  }

  // ---- kernel behaviour ------------------------------------------------------------------

  private byName(name: string): LinkState {
    for (const l of this.links.values()) if (l.name === name) return l;
    throw new Error(`no link ${name}`);
  }

  private flush(index: number): void {
    for (const [k, r] of this.routes) if (r.nexthops.some((n) => n.oif === index)) this.routes.delete(k);
  }

  private emit(group: EventGroup, ev: KernelEvent): void {
    for (const s of this.subs) if (s.groups.has(group)) s.fn(ev);
  }

  /** @internal */
  subscribe(groups: readonly EventGroup[], fn: (ev: KernelEvent) => void): () => void {
    const s = { groups: new Set(groups), fn };
    this.subs.add(s);
    return () => this.subs.delete(s);
  }

  /** @internal */
  dumpRoutes(family?: Family): KernelRoute[] {
    this.dumps++;
    if (this.dumpFaults > 0) {
      this.dumpFaults--;
      throw new KernelError('EINTR', 'netlink dump was interrupted (NLM_F_DUMP_INTR)');
    }
    return [...this.routes.values()]
      .filter((r) => family === undefined || r.family === family)
      .map((r) => ({ ...r, nexthops: r.nexthops.map((n) => ({ ...n })) }));
  }

  /** @internal */
  takeHandleFault(): boolean {
    if (this.handleFaults === 0) return false;
    this.handleFaults--;
    return true;
  }

  /** @internal */
  applyOp(op: RouteOp): string | undefined {
    const code = this.check(op);
    this.ops.push(
      code === undefined
        ? { op: op.op, key: op.route.key, ok: true }
        : { op: op.op, key: op.route.key, ok: false, code },
    );
    if (code !== undefined) return code;
    const r = op.route;
    if (op.op === 'del') {
      this.routes.delete(ident(r));
      this.emit('route', { kind: 'route', op: 'del', route: r });
    } else {
      const stored = { ...r, nexthops: r.nexthops.map((n) => ({ ...n })) };
      // The kernel resolves the output interface of a gateway route; any link will do here.
      for (const n of stored.nexthops) if (n.oif === 0 && n.gateway !== undefined) n.oif = this.anyLink();
      this.routes.set(ident(r), stored);
      this.emit('route', { kind: 'route', op: 'new', route: stored });
    }
    return undefined;
  }

  private anyLink(): number {
    for (const l of this.links.values()) if (l.up) return l.index;
    return 0;
  }

  private check(op: RouteOp): string | undefined {
    const f = this.faults.find((x) => x.op === 'any' || x.op === op.op);
    if (f !== undefined) {
      if (--f.count <= 0) this.faults.splice(this.faults.indexOf(f), 1);
      return f.code;
    }
    const r = op.route;
    const cur = this.routes.get(ident(r));
    if (op.op === 'del') {
      if (cur === undefined || (r.protocol !== 0 && cur.protocol !== r.protocol)) return 'ESRCH';
      return undefined;
    }
    for (const n of r.nexthops) {
      if (n.oif === 0) continue;
      const l = this.links.get(n.oif);
      if (l === undefined) return 'ENODEV';
      if (!l.up) return 'ENETDOWN';
    }
    if (op.op === 'add' && cur !== undefined) return 'EEXIST';
    return undefined;
  }
}

class FakeHandle implements Kernel {
  private closed = false;
  private readonly unsubs = new Set<() => void>();

  constructor(private readonly k: FakeKernel) {}

  private open(): void {
    if (this.closed) throw new KernelError('EBADF', 'fake handle closed');
  }

  async listLinks(): Promise<LinkState[]> {
    this.open();
    return [...this.k.links.values()].map((l) => ({ ...l }));
  }

  async listRoutes(family?: Family): Promise<KernelRoute[]> {
    this.open();
    return this.k.dumpRoutes(family);
  }

  async listNeighbours(family?: Family): Promise<NeighbourEntry[]> {
    this.open();
    return [...this.k.neighbours.values()].filter((n) => family === undefined || n.family === family);
  }

  async writeRoutes(ops: readonly RouteOp[]): Promise<(string | undefined)[]> {
    this.open();
    this.k.batches++;
    if (this.k.takeHandleFault()) throw new KernelError('ENOBUFS', 'fake: acknowledgements lost');
    return ops.map((op) => this.k.applyOp(op));
  }

  async setNeighbour(n: NeighbourEntry): Promise<void> {
    this.open();
    if (!this.k.links.has(n.ifindex)) throw new KernelError('ENODEV', 'fake: no such link');
    this.k.neighbours.set(`${n.ifindex}|${n.address}`, { ...n });
  }

  async setLink(name: string, opts: { up?: boolean; alias?: string }): Promise<void> {
    this.open();
    if (this.k.linkIndex(name) === undefined) throw new KernelError('ENODEV', 'fake: no such link');
    if (opts.alias !== undefined) this.k.aliases.set(name, opts.alias);
    if (opts.up !== undefined) this.k.setLinkUp(name, opts.up);
  }

  async delNeighbour(n: Pick<NeighbourEntry, 'family' | 'ifindex' | 'address'>): Promise<void> {
    this.open();
    if (!this.k.neighbours.delete(`${n.ifindex}|${n.address}`))
      throw new KernelError('ENOENT', 'fake: no entry');
  }

  subscribe(groups: readonly EventGroup[], fn: (ev: KernelEvent) => void): () => void {
    this.open();
    const un = this.k.subscribe(groups, fn);
    this.unsubs.add(un);
    return () => {
      un();
      this.unsubs.delete(un);
    };
  }

  close(): void {
    this.closed = true;
    for (const un of this.unsubs) un();
    this.unsubs.clear();
  }
}
