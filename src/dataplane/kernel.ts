/**
 * The kernel as the route reconciler and the veth set-up see it: list links, routes and
 * neighbours; write routes in batches; set and delete neighbour entries; subscribe to link and
 * route notifications. Two implementations: `NetlinkKernel` (netlink-kernel.ts, rtnetlink over
 * the `netlink` package) and, for unit tests only, `FakeKernel` (test/helpers/kernel-fake.ts, in
 * memory, with fault injection; not shipped) (STYLE.md §14: shims tested twice).
 *
 * Contract
 * - `listRoutes` returns every route of the family (or both) in every table; the caller
 *   filters. A dump the kernel marks inconsistent (NLM_F_DUMP_INTR: the table changed while it
 *   was read) rejects with `KernelError('EINTR')`; the caller reads again.
 * - `writeRoutes(ops)` sends all operations, in order, and resolves with one entry per
 *   operation: `undefined` for success or the errno name (`EEXIST`, `ENODEV`, `ESRCH`...). It
 *   rejects (`KernelError`) only when the handle itself failed (socket error, lost
 *   acknowledgements): then nothing is known about which operations happened.
 * - An `add` must not overwrite (NLM_F_EXCL); a `replace` replaces the route with the same
 *   table, prefix and metric or creates it; a `del` names table, prefix, metric and protocol, so
 *   it can only remove a route with our protocol number.
 * - Events arrive in kernel order. `overrun` means notifications were lost (ENOBUFS): the
 *   subscriber must read everything back.
 */
import type { Family, KernelRoute, LinkState, RouteOp } from './route-model.js';

export interface NeighbourEntry {
  family: Family;
  ifindex: number;
  /** Canonical address text. */
  address: string;
  /** MAC as `aa:bb:cc:dd:ee:ff`; undefined when the entry has none (incomplete, noarp). */
  lladdr: string | undefined;
  /** NUD_* state bits (NUD_PERMANENT = 0x80). */
  state: number;
  /** NDA_PROTOCOL, when the kernel reports one. */
  protocol: number | undefined;
}

export const NUD_PERMANENT = 0x80;

export type KernelEvent =
  | { kind: 'link'; link: LinkState }
  | { kind: 'linkGone'; index: number; name: string }
  | { kind: 'route'; op: 'new' | 'del'; route: KernelRoute }
  | { kind: 'overrun' };

export type EventGroup = 'link' | 'route';

export class KernelError extends Error {
  override name = 'KernelError';
  constructor(
    /** errno name, e.g. EINTR, ENOBUFS, EEXIST. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Kernel {
  listLinks(): Promise<LinkState[]>;
  listRoutes(family?: Family): Promise<KernelRoute[]>;
  listNeighbours(family?: Family): Promise<NeighbourEntry[]>;
  writeRoutes(ops: readonly RouteOp[]): Promise<(string | undefined)[]>;
  /** Create or replace a neighbour entry (NLM_F_CREATE | NLM_F_REPLACE). */
  setNeighbour(n: NeighbourEntry): Promise<void>;
  /** Change the existing link `name`: administratively up or down, its alias. */
  setLink(name: string, opts: { up?: boolean; alias?: string }): Promise<void>;
  delNeighbour(n: Pick<NeighbourEntry, 'family' | 'ifindex' | 'address'>): Promise<void>;
  /** Subscribe to notifications; returns the unsubscribe function. */
  subscribe(groups: readonly EventGroup[], fn: (ev: KernelEvent) => void): () => void;
  close(): void;
}

/** Opens a fresh handle (the reconciler retries a failed apply once on a new one). */
export type KernelFactory = () => Kernel;
