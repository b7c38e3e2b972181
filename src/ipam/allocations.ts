/**
 * Edits of one IPAMBlock's allocation arrays (model.ts documents the layout), pure: each takes a
 * spec and returns a new one, so the allocator can write it back with compare-and-swap and, on
 * Conflict, start again from a fresh read.
 *
 * - `allocate` hands out the first ordinal of `unallocated`, bumps the block's `sequenceNumber`
 *   and records it for the ordinal.
 * - `release` frees the ordinals a predicate picks (by handle, by address and sequence number),
 *   appends them to `unallocated` (reused last), and drops attributes no allocation refers to
 *   any more, renumbering the rest (as Calico does, so a block's attributes never grow past its
 *   live allocations).
 *
 * Does not: decide which block to use (allocator.ts) or touch the datastore.
 */
import { blockAddressCount, type Cidr, formatCidr } from './blocks.js';
import type { AllocationAttributes, IPAMBlockSpec } from './model.js';

export function newBlockSpec(cidr: Cidr, affinity: string | null): IPAMBlockSpec {
  const n = blockAddressCount(cidr);
  return {
    cidr: formatCidr(cidr),
    affinity,
    allocations: new Array<number | null>(n).fill(null),
    unallocated: Array.from({ length: n }, (_, i) => i),
    attributes: [],
    sequenceNumber: 0,
    sequenceNumberForAllocation: {},
  };
}

export function freeCount(spec: IPAMBlockSpec): number {
  return spec.unallocated.length;
}

export function isEmpty(spec: IPAMBlockSpec): boolean {
  return spec.unallocated.length === spec.allocations.length;
}

/** The attributes of the allocation at an ordinal, or undefined when it is free. */
export function attributesAt(spec: IPAMBlockSpec, ordinal: number): AllocationAttributes | undefined {
  const a = spec.allocations[ordinal];
  return a === null || a === undefined ? undefined : spec.attributes[a];
}

/** The ordinals a handle holds in this block, ascending. */
export function ordinalsOf(spec: IPAMBlockSpec, handle: string): number[] {
  const out: number[] = [];
  spec.allocations.forEach((a, o) => {
    if (a !== null && spec.attributes[a]?.handle === handle) out.push(o);
  });
  return out;
}

export function sequenceAt(spec: IPAMBlockSpec, ordinal: number): number | undefined {
  return spec.sequenceNumberForAllocation[String(ordinal)];
}

/** Take the next free ordinal for `attrs`; undefined when the block is full. */
export function allocate(
  spec: IPAMBlockSpec,
  attrs: AllocationAttributes,
): { spec: IPAMBlockSpec; ordinal: number; sequenceNumber: number } | undefined {
  if (spec.unallocated.length === 0) return undefined;
  const ordinal = spec.unallocated[0]!;
  const sequenceNumber = spec.sequenceNumber + 1;
  const allocations = spec.allocations.slice();
  allocations[ordinal] = spec.attributes.length;
  return {
    spec: {
      ...spec,
      allocations,
      unallocated: spec.unallocated.slice(1),
      attributes: [...spec.attributes, { ...attrs }],
      sequenceNumber,
      sequenceNumberForAllocation: { ...spec.sequenceNumberForAllocation, [String(ordinal)]: sequenceNumber },
    },
    ordinal,
    sequenceNumber,
  };
}

/**
 * Free every allocated ordinal for which `pick` is true. Returns the same spec object (and no
 * ordinals) when nothing matched, so a caller can skip the write.
 */
export function release(
  spec: IPAMBlockSpec,
  pick: (ordinal: number, attrs: AllocationAttributes, sequenceNumber: number | undefined) => boolean,
): { spec: IPAMBlockSpec; released: number[] } {
  const released: number[] = [];
  spec.allocations.forEach((a, o) => {
    if (a === null) return;
    const attrs = spec.attributes[a];
    if (attrs !== undefined && pick(o, attrs, sequenceAt(spec, o))) released.push(o);
  });
  if (released.length === 0) return { spec, released };
  const allocations = spec.allocations.slice();
  const seqs = { ...spec.sequenceNumberForAllocation };
  for (const o of released) {
    allocations[o] = null;
    delete seqs[String(o)];
  }
  // Keep only attributes still referred to, renumbered in their old order.
  const used = new Set<number>();
  for (const a of allocations) if (a !== null) used.add(a);
  const renumber = new Map<number, number>();
  const attributes: AllocationAttributes[] = [];
  spec.attributes.forEach((attrs, i) => {
    if (used.has(i)) {
      renumber.set(i, attributes.length);
      attributes.push(attrs);
    }
  });
  for (let o = 0; o < allocations.length; o++) {
    const a = allocations[o];
    if (a !== null && a !== undefined) allocations[o] = renumber.get(a)!;
  }
  return {
    spec: {
      ...spec,
      allocations,
      unallocated: [...spec.unallocated, ...released],
      attributes,
      sequenceNumberForAllocation: seqs,
    },
    released,
  };
}
