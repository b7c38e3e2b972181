/**
 * The IPAM objects as they are stored (kinds IPPool, IPAMBlock, BlockAffinity, IPAMHandle,
 * IPAMConfig under crd.twill.dev/v1, cluster-scoped), and their validation.
 *
 * The model is Calico's (libcalico-go's ipam), so an operator who knows `calicoctl ipam show`
 * reads ours the same way:
 *
 * - An **IPPool** is a range pods get addresses from. In `blocks` mode (the default) it is cut
 *   into blocks of `blockSize` (26 for IPv4, 122 for IPv6); a node claims whole blocks and
 *   originates each one as one route. In `podCIDR` mode the node's `spec.podCIDRs` entry inside
 *   the pool is its one block (kubenet and flannel host-gw split the cluster CIDR this way; the
 *   controller-manager does the cutting).
 * - An **IPAMBlock** holds the allocations of one block. It carries the node it is affine to.
 * - A **BlockAffinity** says "node N claims block C" and walks `pending` (claim under way) ->
 *   `confirmed` (the block exists with this affinity; the node allocates from it and originates
 *   it) -> `pendingDeletion` (release under way; no new allocation) -> deleted.
 * - An **IPAMHandle** names what holds addresses (a pod's sandbox, `k8s-pod-network.<id>` in
 *   Calico's CNI) and lists the blocks where it may hold them, so releasing by handle reads
 *   only those blocks.
 * - **IPAMConfig** `default` holds the cluster-wide switches.
 *
 * The block is compact, as Calico's: four arrays indexed by ordinal (the address's offset in the
 * block) instead of an object per address. A /26 with 64 pods is one array of 64 small numbers,
 * one of attributes (one entry per live allocation) and a map of sequence numbers, about 4 KB of
 * JSON; an object per address with its own handle and pod text would be 3-4 times that, and every
 * allocation rewrites the whole block (compare-and-swap is per object).
 *
 * Validation returns `FieldError`s whose text names the object and the field
 * (`IPPool pool-a: spec.blockSize: 33 is out of range (20..32 for IPv4)`); the allocator skips an
 * invalid object and reports it, and never rewrites it, so nothing already allocated is lost.
 *
 * Departures from Calico, and why:
 * - `nodeSelector` understands the common subset of Calico's selector language (see
 *   selector.ts): `all()`, `k == 'v'`, `k != 'v'`, `has(k)`, `!has(k)`, `k in {...}`,
 *   `k not in {...}`, joined by `&&`. Anything else is an error naming the field, never a
 *   silent "matches nothing".
 * - IPAMHandle lists block CIDRs (`blocks`) instead of Calico's per-block reference counts. The
 *   block is the truth about who holds what; a count kept in a second object must be exact across
 *   crashes and retries, a set need only be a superset (adding a CIDR twice is harmless).
 * - Overlapping pools: with no admission webhook to refuse the second one, the pool created first
 *   (then the lower name) stays in use and the later one is reported invalid.
 * - Block names for IPv6 CIDRs starting with `::` start with `0` (blocks.ts).
 */
import type { StoredObject } from '../datastore/types.js';
import {
  blockAddressCount,
  blockName,
  type Cidr,
  contains,
  type Family,
  formatCidr,
  overlaps,
  parseCidr,
} from './blocks.js';
import { type CompiledNodeSelector, compileNodeSelector, SelectorError } from './selector.js';

// ---------------------------------------------------------------------------------------------
// Stored objects

export type PoolMode = 'blocks' | 'podCIDR';

export interface IPPoolSpec {
  /** The pool's range, e.g. `10.244.0.0/16` or `fd00:10:244::/56`. Host bits must be zero. */
  cidr: string;
  /**
   * Prefix length of the blocks nodes claim: IPv4 20..32 (default 26, 64 addresses), IPv6
   * 116..128 (default 122), and not shorter than the pool's own prefix length.
   * Ignored in `podCIDR` mode, where a block is the node's podCIDR.
   */
  blockSize?: number;
  /** Which nodes may claim blocks here, in Calico's selector syntax; absent or `all()`: every node. */
  nodeSelector?: string;
  /** A disabled pool hands out nothing new; what it already handed out stays until released. */
  disabled?: boolean;
  /** `blocks` (default): claim blocks of `blockSize`. `podCIDR`: use `Node.spec.podCIDRs`. */
  mode?: PoolMode;
}

/** One live allocation's owner. Shared by `allocations` entries by index. */
export interface AllocationAttributes {
  /** The handle that holds the address (release by handle frees it). */
  handle: string;
  /** The node whose assign took the address; differs from the block's node when borrowed. */
  node: string;
  /** The pod's namespace and name, when the address is a pod's (leaked-address reclamation). */
  namespace?: string;
  pod?: string;
}

export interface IPAMBlockSpec {
  /** The block's range; the object's name is derived from it (`10-244-1-0-26`). */
  cidr: string;
  /** `host:<node>` for the node the block is affine to (as Calico writes it); null when none. */
  affinity: string | null;
  /**
   * One entry per address (ordinal = offset in the block): the index of its entry in
   * `attributes`, or null when the address is free.
   */
  allocations: (number | null)[];
  /**
   * The free ordinals in the order they will be handed out. Released ordinals go to the end, so
   * an address just released is the last to be handed out again (a late packet for the old pod
   * does not reach a new one).
   */
  unallocated: number[];
  /** Owners of the live allocations, referenced from `allocations`. */
  attributes: AllocationAttributes[];
  /** Incremented by every allocation in this block; never decreases. */
  sequenceNumber: number;
  /**
   * The block's `sequenceNumber` when each live allocation was made (key: ordinal as text). A
   * release that names a sequence number frees the address only if it still matches, so a stale
   * release cannot free an address that was handed out again.
   */
  sequenceNumberForAllocation: Record<string, number>;
}

export type AffinityState = 'pending' | 'confirmed' | 'pendingDeletion';

export interface BlockAffinitySpec {
  /** The node that claims the block. */
  node: string;
  /** The block's CIDR. */
  cidr: string;
  /** pending -> confirmed -> pendingDeletion -> (deleted); see the module comment. */
  state: AffinityState;
}

export interface IPAMHandleSpec {
  /** The handle's id (also the object's name). */
  handleID: string;
  /** CIDRs of the blocks where this handle may hold addresses (a superset; see the module comment). */
  blocks: string[];
}

export interface IPAMConfigSpec {
  /** Never borrow an address from another node's block (default false: borrow when full). */
  strictAffinity?: boolean;
  /** The most blocks one node may claim per family; 0 or absent: no limit. */
  maxBlocksPerHost?: number;
}

export type IPPool = StoredObject<IPPoolSpec> & { kind: 'IPPool' };
export type IPAMBlock = StoredObject<IPAMBlockSpec> & { kind: 'IPAMBlock' };
export type BlockAffinity = StoredObject<BlockAffinitySpec> & { kind: 'BlockAffinity' };
export type IPAMHandle = StoredObject<IPAMHandleSpec> & { kind: 'IPAMHandle' };
export type IPAMConfig = StoredObject<IPAMConfigSpec> & { kind: 'IPAMConfig' };

/** The name of the one IPAMConfig object. */
export const IPAM_CONFIG_NAME = 'default';

export const DEFAULT_BLOCK_SIZE: Readonly<Record<Family, number>> = { 4: 26, 6: 122 };
/** Block sizes Calico accepts: at most 4096 addresses and at least one. */
export const BLOCK_SIZE_RANGE: Readonly<Record<Family, readonly [number, number]>> = {
  4: [20, 32],
  6: [116, 128],
};

/** Why a CIDR cannot be a block (its length is out of BLOCK_SIZE_RANGE), or undefined. */
export function blockSizeProblem(c: Cidr): string | undefined {
  const [lo, hi] = BLOCK_SIZE_RANGE[c.family];
  if (c.len >= lo && c.len <= hi) return undefined;
  return `/${c.len} cannot be a block (IPv${c.family} blocks are /${lo}../${hi}, at most ${2 ** (hi - lo)} addresses)`;
}

export function affinityOf(node: string): string {
  return `host:${node}`;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** One problem in one field of one object. */
export class FieldError {
  constructor(
    /** `Kind name`, e.g. `IPPool pool-a`. */
    readonly object: string,
    /** Dotted path, e.g. `spec.blockSize`. */
    readonly field: string,
    readonly message: string,
  ) {}

  toString(): string {
    return `${this.object}: ${this.field}: ${this.message}`;
  }
}

export type IpamErrorCode =
  /** An object or argument is malformed; `errors` names each field. */
  | 'Invalid'
  /** No pool, block or address is left for this node and family. */
  | 'Exhausted'
  /** Compare-and-swap kept failing after the retry budget. */
  | 'Conflict';

export class IpamError extends Error {
  override readonly name = 'IpamError';
  constructor(
    readonly code: IpamErrorCode,
    message: string,
    readonly errors: readonly FieldError[] = [],
  ) {
    super(errors.length === 0 ? message : `${message}: ${errors.map(String).join('; ')}`);
  }
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A Kubernetes object name (DNS subdomain: lowercase letters, digits, `-`, `.`; at most 253). */
export function isObjectName(name: unknown): name is string {
  return typeof name === 'string' && name.length <= 253 && SUBDOMAIN.test(name);
}

function describe(kind: string, o: { metadata?: { name?: unknown } } | undefined): string {
  const name = o?.metadata?.name;
  return `${kind} ${typeof name === 'string' && name !== '' ? name : '(no name)'}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

// ---------------------------------------------------------------------------------------------
// Pools

/** A pool that passed validation, in the form the allocator uses. */
export interface ParsedPool {
  name: string;
  cidr: Cidr;
  /** The block size (the pool's default when the spec leaves it out). */
  blockSize: number;
  selector: CompiledNodeSelector;
  disabled: boolean;
  mode: PoolMode;
  /** creationTimestamp text ('' when absent), for the overlap tie-break. */
  created: string;
}

/** Validate one pool on its own. Returns the parsed pool or the errors, never both. */
export function validatePool(pool: StoredObject): { pool?: ParsedPool; errors: FieldError[] } {
  const what = describe('IPPool', pool);
  const errors: FieldError[] = [];
  const err = (field: string, message: string) => errors.push(new FieldError(what, field, message));
  if (!isObjectName(pool.metadata?.name)) err('metadata.name', 'is not a Kubernetes object name');
  const spec = pool.spec;
  if (!isRecord(spec)) {
    err('spec', 'is required (an object with cidr)');
    return { errors };
  }
  let cidr: Cidr | undefined;
  if (typeof spec.cidr !== 'string') err('spec.cidr', 'is required (e.g. 10.244.0.0/16)');
  else {
    try {
      cidr = parseCidr(spec.cidr);
    } catch (e) {
      err('spec.cidr', `${(e as Error).message} (expected a CIDR such as 10.244.0.0/16)`);
    }
  }
  const mode = spec.mode ?? 'blocks';
  if (mode !== 'blocks' && mode !== 'podCIDR')
    err('spec.mode', `${JSON.stringify(spec.mode)} is not blocks or podCIDR`);
  let blockSize = 0;
  if (cidr !== undefined) {
    const [lo, hi] = BLOCK_SIZE_RANGE[cidr.family];
    blockSize = spec.blockSize === undefined ? DEFAULT_BLOCK_SIZE[cidr.family] : (spec.blockSize as number);
    if (!isInt(blockSize)) err('spec.blockSize', `${JSON.stringify(spec.blockSize)} is not an integer`);
    else if (mode === 'blocks') {
      if (blockSize < lo || blockSize > hi)
        err('spec.blockSize', `${blockSize} is out of range (${lo}..${hi} for IPv${cidr.family})`);
      else if (blockSize < cidr.len)
        err(
          'spec.blockSize',
          `${blockSize} is shorter than the pool's /${cidr.len}: a block must fit in the pool`,
        );
    }
  } else if (spec.blockSize !== undefined && !isInt(spec.blockSize)) {
    err('spec.blockSize', `${JSON.stringify(spec.blockSize)} is not an integer`);
  }
  let selector: CompiledNodeSelector | undefined;
  if (spec.nodeSelector !== undefined && typeof spec.nodeSelector !== 'string')
    err('spec.nodeSelector', 'is not a string (a selector such as all() or rack == "a")');
  else {
    try {
      selector = compileNodeSelector(spec.nodeSelector as string | undefined);
    } catch (e) {
      if (!(e instanceof SelectorError)) throw e;
      err('spec.nodeSelector', e.message);
    }
  }
  if (spec.disabled !== undefined && typeof spec.disabled !== 'boolean')
    err('spec.disabled', 'is not true or false');
  if (errors.length > 0 || cidr === undefined || selector === undefined) return { errors };
  return {
    pool: {
      name: pool.metadata.name,
      cidr,
      blockSize,
      selector,
      disabled: spec.disabled === true,
      mode: mode as PoolMode,
      created: typeof pool.metadata.creationTimestamp === 'string' ? pool.metadata.creationTimestamp : '',
    },
    errors,
  };
}

/**
 * Validate all pools together: each on its own, then overlaps. Of two overlapping pools the one
 * created first stays (then, as timestamps have one-second resolution, the one holding more of
 * the existing `blocks`, then the lower name); the other gets an error naming both, and
 * `overlapping` is true. Valid pools come back sorted: IPv4 first, then by address.
 */
export function validatePools(
  pools: readonly StoredObject[],
  blocks: readonly Cidr[] = [],
): { pools: ParsedPool[]; errors: FieldError[]; overlapping: boolean } {
  const errors: FieldError[] = [];
  const parsed: ParsedPool[] = [];
  for (const p of pools) {
    const r = validatePool(p);
    errors.push(...r.errors);
    if (r.pool) parsed.push(r.pool);
  }
  const inUse = new Map(parsed.map((p) => [p, blocks.filter((b) => contains(p.cidr, b)).length]));
  const byName = (a: ParsedPool, b: ParsedPool) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  parsed.sort((a, b) => {
    if (a.created !== b.created) return a.created < b.created ? -1 : 1;
    return inUse.get(b)! - inUse.get(a)! || byName(a, b);
  });
  const kept: ParsedPool[] = [];
  for (const p of parsed) {
    const other = kept.find((k) => overlaps(k.cidr, p.cidr));
    if (other) {
      errors.push(
        new FieldError(
          `IPPool ${p.name}`,
          'spec.cidr',
          `${formatCidr(p.cidr)} overlaps IPPool ${other.name} (${formatCidr(other.cidr)}); pools must not overlap`,
        ),
      );
    } else kept.push(p);
  }
  kept.sort((a, b) => a.cidr.family - b.cidr.family || (a.cidr.base < b.cidr.base ? -1 : 1));
  return { pools: kept, errors, overlapping: kept.length < parsed.length };
}

// ---------------------------------------------------------------------------------------------
// Blocks, affinities, handles, config

/** A block that passed validation, with its parsed CIDR. */
export interface ParsedBlock {
  object: IPAMBlock;
  cidr: Cidr;
}

/**
 * Check a stored block's shape and internal consistency (every ordinal is either allocated or
 * listed once in `unallocated`; every allocation points at an attribute with a handle).
 */
export function validateBlock(block: StoredObject): { block?: ParsedBlock; errors: FieldError[] } {
  const what = describe('IPAMBlock', block);
  const errors: FieldError[] = [];
  const err = (field: string, message: string) => errors.push(new FieldError(what, field, message));
  const spec = block.spec;
  if (!isRecord(spec)) {
    err('spec', 'is required');
    return { errors };
  }
  let cidr: Cidr | undefined;
  try {
    cidr = parseCidr(String(spec.cidr));
    const why = blockSizeProblem(cidr);
    if (why) {
      err('spec.cidr', why);
      cidr = undefined;
    } else if (block.metadata?.name !== blockName(cidr)) {
      err('metadata.name', `is not ${blockName(cidr)}, the name of the block ${formatCidr(cidr)}`);
    }
  } catch (e) {
    err('spec.cidr', (e as Error).message);
  }
  if (spec.affinity !== null && spec.affinity !== undefined && typeof spec.affinity !== 'string')
    err('spec.affinity', 'is not host:<node> or null');
  if (!isInt(spec.sequenceNumber) || spec.sequenceNumber < 0)
    err('spec.sequenceNumber', 'is not a non-negative integer');
  if (!isRecord(spec.sequenceNumberForAllocation)) err('spec.sequenceNumberForAllocation', 'is not a map');
  const attrs = spec.attributes;
  if (!Array.isArray(attrs)) err('spec.attributes', 'is not a list');
  else
    attrs.forEach((a, i) => {
      if (!isRecord(a) || typeof a.handle !== 'string' || typeof a.node !== 'string')
        err(`spec.attributes[${i}]`, 'needs handle and node (strings)');
    });
  const allocs = spec.allocations;
  const free = spec.unallocated;
  if (!Array.isArray(allocs)) err('spec.allocations', 'is not a list');
  if (!Array.isArray(free)) err('spec.unallocated', 'is not a list');
  if (cidr !== undefined && Array.isArray(allocs) && Array.isArray(free) && Array.isArray(attrs)) {
    const n = blockAddressCount(cidr);
    if (allocs.length !== n) err('spec.allocations', `has ${allocs.length} entries; a /${cidr.len} has ${n}`);
    else {
      const seen = new Uint8Array(n);
      free.forEach((o, i) => {
        if (!isInt(o) || o < 0 || o >= n)
          err(`spec.unallocated[${i}]`, `${JSON.stringify(o)} is not an ordinal`);
        else if (seen[o]) err(`spec.unallocated[${i}]`, `ordinal ${o} is listed twice`);
        else if (allocs[o] !== null) err(`spec.unallocated[${i}]`, `ordinal ${o} is allocated`);
        else seen[o] = 1;
      });
      allocs.forEach((a, o) => {
        if (a === null) {
          if (!seen[o]) err(`spec.allocations[${o}]`, 'is free but not in unallocated');
        } else if (!isInt(a) || a < 0 || a >= attrs.length)
          err(`spec.allocations[${o}]`, `${JSON.stringify(a)} is not an index into attributes`);
      });
    }
  }
  if (errors.length > 0 || cidr === undefined) return { errors };
  return { block: { object: block as IPAMBlock, cidr }, errors };
}

export function validateAffinity(a: StoredObject): FieldError[] {
  const what = describe('BlockAffinity', a);
  const errors: FieldError[] = [];
  const spec = a.spec;
  if (!isRecord(spec)) return [new FieldError(what, 'spec', 'is required')];
  if (!isObjectName(spec.node)) errors.push(new FieldError(what, 'spec.node', 'is not a node name'));
  try {
    parseCidr(String(spec.cidr));
  } catch (e) {
    errors.push(new FieldError(what, 'spec.cidr', (e as Error).message));
  }
  if (spec.state !== 'pending' && spec.state !== 'confirmed' && spec.state !== 'pendingDeletion')
    errors.push(
      new FieldError(
        what,
        'spec.state',
        `${JSON.stringify(spec.state)} is not pending, confirmed or pendingDeletion`,
      ),
    );
  return errors;
}

/** The IPAM config with defaults filled in, or errors naming the field. */
export function validateConfig(c: StoredObject | undefined): {
  config: Required<IPAMConfigSpec>;
  errors: FieldError[];
} {
  const config = { strictAffinity: false, maxBlocksPerHost: 0 };
  if (c === undefined) return { config, errors: [] };
  const what = describe('IPAMConfig', c);
  const errors: FieldError[] = [];
  const spec = c.spec ?? {};
  if (!isRecord(spec)) return { config, errors: [new FieldError(what, 'spec', 'is not an object')] };
  if (spec.strictAffinity !== undefined) {
    if (typeof spec.strictAffinity !== 'boolean')
      errors.push(new FieldError(what, 'spec.strictAffinity', 'is not true or false'));
    else config.strictAffinity = spec.strictAffinity;
  }
  if (spec.maxBlocksPerHost !== undefined) {
    if (!isInt(spec.maxBlocksPerHost) || spec.maxBlocksPerHost < 0)
      errors.push(
        new FieldError(what, 'spec.maxBlocksPerHost', 'is not a non-negative integer (0: no limit)'),
      );
    else config.maxBlocksPerHost = spec.maxBlocksPerHost;
  }
  return { config, errors };
}

/** A handle id must be usable as the IPAMHandle's object name. */
export function validateHandle(handle: unknown): FieldError[] {
  if (isObjectName(handle)) return [];
  return [
    new FieldError(
      `IPAMHandle ${JSON.stringify(handle)}`,
      'spec.handleID',
      'is not a Kubernetes object name (lowercase letters, digits, "-", "."; at most 253)',
    ),
  ];
}
