/**
 * What `twill ipam` shows and what `twill ipam check` finds, as a pure function of the IPAM
 * objects, the Nodes and the Pods (as `calicoctl ipam show` and `calicoctl ipam check` read
 * Calico's datastore).
 *
 * The report: each pool with its capacity and use; each block with its node and use, and the
 * nodes borrowing from it; each block affinity with its state (pending, confirmed,
 * pendingDeletion); each node's blocks, addresses and borrowed addresses; leaked
 * addresses (held for a pod that no longer exists: a CNI DEL that never came; the agent reclaims
 * them after its grace period, reclaim.ts).
 *
 * The problems `check` reports, each with a message naming the objects:
 * - address-without-handle: a block holds an address for a handle that has no IPAMHandle;
 * - handle-without-address: an IPAMHandle holds no address in any block;
 * - block-of-missing-node: a block is affine to a node that no longer exists;
 * - affinity-without-block: a confirmed BlockAffinity whose block does not exist;
 * - block-without-affinity: a block affine to a node that has no BlockAffinity for it;
 * - overlapping-blocks: two blocks share addresses;
 * - block-outside-pools: a block in no pool (its pool was deleted while it held addresses);
 * - invalid: an object that fails validation (model.ts), with the field named.
 * A pending affinity or a handle mid-assign can be a crash's leftover or an operation under way;
 * `check` reports what is inconsistent at the moment it read, like calicoctl.
 *
 * Pure: no I/O; the caller lists the objects (src/cli/ipam.ts).
 */
import type { StoredObject } from '../datastore/types.js';
import {
  addressAt,
  blockAddressCount,
  type Cidr,
  compareCidr,
  contains,
  formatCidr,
  overlaps,
  parseCidr,
} from './blocks.js';
import type { BlockAffinitySpec, IPAMBlockSpec, IPAMHandleSpec } from './model.js';
import { FieldError, validateAffinity, validateBlock, validateHandle, validatePools } from './model.js';

export interface IpamObjects {
  pools: StoredObject[];
  blocks: StoredObject[];
  affinities: StoredObject[];
  handles: StoredObject[];
  nodes: StoredObject[];
  /** Pods, for leaked addresses; undefined when the store has none to offer. */
  pods?: StoredObject[];
}

export type ProblemKind =
  | 'address-without-handle'
  | 'handle-without-address'
  | 'block-of-missing-node'
  | 'affinity-without-block'
  | 'block-without-affinity'
  | 'overlapping-blocks'
  | 'block-outside-pools'
  | 'invalid';

export interface Problem {
  kind: ProblemKind;
  message: string;
}

export interface PoolUse {
  name: string;
  cidr: string;
  blockSize: number;
  mode: string;
  disabled: boolean;
  /** Addresses in the pool. A number: a pool of more than 2^53 addresses shows as Infinity. */
  capacity: number;
  /** Addresses in its blocks. */
  inBlocks: number;
  used: number;
  blocks: number;
}

export interface BlockUse {
  cidr: string;
  /** The node it is affine to, or null. */
  node: string | null;
  size: number;
  used: number;
  /** Nodes other than the block's holding addresses in it. */
  borrowedBy: string[];
}

export interface NodeUse {
  node: string;
  blocks: number;
  /** Addresses held for this node's pods, in its blocks and borrowed. */
  used: number;
  /** Of those, addresses in other nodes' blocks. */
  borrowed: number;
}

export interface Leak {
  address: string;
  handle: string;
  namespace: string;
  pod: string;
  node: string;
}

export interface AffinityView {
  node: string;
  cidr: string;
  state: BlockAffinitySpec['state'];
}

export interface IpamReport {
  pools: PoolUse[];
  blocks: BlockUse[];
  /** Every block affinity, by node then CIDR: which node claims which block, and how far. */
  affinities: AffinityView[];
  nodes: NodeUse[];
  leaked: Leak[];
  problems: Problem[];
}

export function ipamReport(o: IpamObjects): IpamReport {
  const problems: Problem[] = [];
  const invalid = (errors: readonly { toString(): string }[]) => {
    for (const e of errors) problems.push({ kind: 'invalid', message: String(e) });
  };

  const { pools: parsedPools, errors: poolErrors } = validatePools(o.pools);
  invalid(poolErrors);
  const blocks: Array<{ cidr: Cidr; spec: IPAMBlockSpec; name: string }> = [];
  for (const b of o.blocks) {
    const v = validateBlock(b);
    invalid(v.errors);
    if (v.block) blocks.push({ cidr: v.block.cidr, spec: b.spec as IPAMBlockSpec, name: b.metadata.name });
  }
  blocks.sort((a, b) => compareCidr(a.cidr, b.cidr));
  const affinities: BlockAffinitySpec[] = [];
  for (const a of o.affinities) {
    const errs = validateAffinity(a);
    invalid(errs);
    if (errs.length === 0) affinities.push(a.spec as BlockAffinitySpec);
  }
  const handles = new Map<string, IPAMHandleSpec>();
  for (const h of o.handles) {
    const spec = h.spec as Partial<IPAMHandleSpec> | undefined;
    const errs = validateHandle(spec?.handleID);
    if (!Array.isArray(spec?.blocks))
      errs.push(
        new FieldError(`IPAMHandle ${h.metadata.name}`, 'spec.blocks', 'is not a list of block CIDRs'),
      );
    invalid(errs);
    if (errs.length === 0) handles.set(spec!.handleID!, spec as IPAMHandleSpec);
  }
  const nodeNames = new Set(o.nodes.map((n) => n.metadata.name));
  const pods = o.pods && new Set(o.pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`));

  const blockUse: BlockUse[] = [];
  const nodeUse = new Map<string, NodeUse>();
  const useOf = (node: string) => {
    let u = nodeUse.get(node);
    if (!u) {
      u = { node, blocks: 0, used: 0, borrowed: 0 };
      nodeUse.set(node, u);
    }
    return u;
  };
  const holding = new Set<string>();
  const leaked: Leak[] = [];
  for (const b of blocks) {
    const cidr = formatCidr(b.cidr);
    const owner = b.spec.affinity?.startsWith('host:') ? b.spec.affinity.slice(5) : null;
    if (owner !== null) {
      useOf(owner).blocks++;
      if (!nodeNames.has(owner))
        problems.push({
          kind: 'block-of-missing-node',
          message: `IPAMBlock ${b.name} (${cidr}) is affine to node ${owner}, which does not exist`,
        });
      if (!affinities.some((a) => a.node === owner && a.cidr === cidr))
        problems.push({
          kind: 'block-without-affinity',
          message: `IPAMBlock ${b.name} (${cidr}) is affine to ${owner}, which has no BlockAffinity for it`,
        });
    }
    if (!parsedPools.some((p) => contains(p.cidr, b.cidr)))
      problems.push({
        kind: 'block-outside-pools',
        message: `IPAMBlock ${b.name} (${cidr}) is in no IPPool`,
      });
    let used = 0;
    const borrowedBy = new Set<string>();
    b.spec.allocations.forEach((idx, ordinal) => {
      if (idx === null) return;
      const attr = b.spec.attributes[idx];
      if (!attr) return;
      used++;
      const address = addressAt(b.cidr, ordinal);
      holding.add(attr.handle);
      const u = useOf(attr.node);
      u.used++;
      if (attr.node !== owner) {
        u.borrowed++;
        borrowedBy.add(attr.node);
      }
      if (!handles.has(attr.handle))
        problems.push({
          kind: 'address-without-handle',
          message: `${address} in IPAMBlock ${b.name} is held by handle ${attr.handle}, which has no IPAMHandle`,
        });
      if (
        pods &&
        attr.namespace !== undefined &&
        attr.pod !== undefined &&
        !pods.has(`${attr.namespace}/${attr.pod}`)
      )
        leaked.push({
          address,
          handle: attr.handle,
          namespace: attr.namespace,
          pod: attr.pod,
          node: attr.node,
        });
    });
    blockUse.push({
      cidr,
      node: owner,
      size: blockAddressCount(b.cidr),
      used,
      borrowedBy: [...borrowedBy].sort(),
    });
  }
  for (let i = 0; i < blocks.length; i++)
    for (let j = i + 1; j < blocks.length; j++)
      if (overlaps(blocks[i]!.cidr, blocks[j]!.cidr))
        problems.push({
          kind: 'overlapping-blocks',
          message: `IPAMBlock ${blocks[i]!.name} and ${blocks[j]!.name} overlap`,
        });
  for (const [id] of handles)
    if (!holding.has(id))
      problems.push({
        kind: 'handle-without-address',
        message: `IPAMHandle ${id} holds no address in any block`,
      });
  for (const a of affinities)
    if (a.state === 'confirmed' && !blocks.some((b) => formatCidr(b.cidr) === a.cidr))
      problems.push({
        kind: 'affinity-without-block',
        message: `BlockAffinity of node ${a.node} for ${a.cidr} is confirmed, but the block does not exist`,
      });

  const pools: PoolUse[] = parsedPools.map((p) => {
    const inPool = blockUse.filter((b) => contains(p.cidr, parseCidr(b.cidr)));
    const bits = p.cidr.family === 4 ? 32 : 128;
    return {
      name: p.name,
      cidr: formatCidr(p.cidr),
      blockSize: p.blockSize,
      mode: p.mode,
      disabled: p.disabled,
      capacity: 2 ** (bits - p.cidr.len),
      inBlocks: inPool.reduce((s, b) => s + b.size, 0),
      used: inPool.reduce((s, b) => s + b.used, 0),
      blocks: inPool.length,
    };
  });
  return {
    pools,
    blocks: blockUse,
    affinities: affinities
      .map((a) => ({ node: a.node, cidr: a.cidr, state: a.state }))
      .sort((a, b) => a.node.localeCompare(b.node) || compareCidr(parseCidr(a.cidr), parseCidr(b.cidr))),
    nodes: [...nodeUse.values()].sort((a, b) => a.node.localeCompare(b.node)),
    leaked,
    problems,
  };
}
