/**
 * What a node originates into BGP for its pods, as a pure function of the IPAM blocks (and,
 * optionally, the affinities): the blocks affine to the node, as one prefix each, plus a host
 * route (/32 or /128) for each address the node borrowed from a block affine to another node or
 * to none. Longest-prefix match then sends a borrowed address to its borrower while the rest of
 * the block goes to the block's node (Calico's rule; DESIGN.md "Calico facts").
 *
 * Which blocks count: a block whose `affinity` is `host:<node>`. With the affinities given, only
 * those whose affinity object for the node is `confirmed`; without them, the block's own field
 * decides. Both give the same routes for every block that can hold a pod: the allocator writes a
 * block with its affinity before confirming it and hands out addresses only from confirmed
 * blocks, and releases only empty blocks (allocator.ts).
 *
 * The result is sorted (IPv4 first, then by address and length) and free of duplicates, so an
 * unchanged IPAM state gives an equal list and `speaker.setOriginated` sends nothing.
 *
 * Does not: read the datastore, validate (an invalid block is left out).
 */
import { compareCidr, formatCidr, hostCidr, parseCidr } from './blocks.js';
import { affinityOf, type BlockAffinitySpec, type IPAMBlockSpec } from './model.js';

/** The blocks (CIDR text, normalised) whose affinity to `node` is confirmed. */
export function confirmedBlocks(node: string, affinities: readonly BlockAffinitySpec[]): Set<string> {
  return new Set(
    affinities
      .filter((a) => a.node === node && a.state === 'confirmed')
      .flatMap((a) => {
        try {
          return [formatCidr(parseCidr(a.cidr))];
        } catch {
          return [];
        }
      }),
  );
}

export function originated(
  node: string,
  blocks: readonly IPAMBlockSpec[],
  affinities?: readonly BlockAffinitySpec[],
): string[] {
  const mine = affinityOf(node);
  const confirmed = affinities && confirmedBlocks(node, affinities);
  const out = new Map<string, ReturnType<typeof parseCidr>>();
  for (const b of blocks) {
    let cidr: ReturnType<typeof parseCidr>;
    try {
      cidr = parseCidr(b.cidr);
    } catch {
      continue;
    }
    if (b.affinity === mine) {
      const text = formatCidr(cidr);
      if (confirmed === undefined || confirmed.has(text)) out.set(text, cidr);
      continue;
    }
    if (!Array.isArray(b.allocations) || !Array.isArray(b.attributes)) continue;
    b.allocations.forEach((a, ordinal) => {
      if (a === null || b.attributes[a]?.node !== node) return;
      const value = cidr.base + BigInt(ordinal);
      const text = hostCidr(cidr.family, value);
      out.set(text, { family: cidr.family, base: value, len: cidr.family === 4 ? 32 : 128 });
    });
  }
  return [...out.entries()].sort((x, y) => compareCidr(x[1], y[1])).map(([text]) => text);
}
