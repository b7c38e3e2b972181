/**
 * Block arithmetic: CIDRs as (family, base, length) with a bigint base, the blocks of a pool in
 * address order, the address at an ordinal of a block, and the Kubernetes object names Calico
 * gives blocks and affinities.
 *
 * - A CIDR's text is parsed strictly by net/addr (no leading zeros, host bits must be zero) and
 *   kept with a bigint base, so IPv4 and IPv6 share one code path. IPAM arithmetic is not a hot
 *   path: a pod start does a handful of these operations, never one per packet or per route.
 * - The blocks of a pool are numbered 0, 1, 2 ... in address order. `nthBlock` computes one
 *   without listing the others, so an IPv6 /64 pool of /122 blocks (2^58 of them) costs nothing
 *   until a block is claimed.
 * - Names: a block is named from its CIDR with `.`, `:` and `/` written as `-`
 *   (`10.244.1.0/26` -> `10-244-1-0-26`, `fd00::40/122` -> `fd00--40-122`), as Calico's
 *   Kubernetes datastore does, so `kubectl get ipamblocks` reads the same. IPv6 text that starts
 *   with `::` is written from `0::` so the name starts with a digit (Kubernetes requires it;
 *   Calico's rule would give `--...`, which the API server rejects). An affinity is named
 *   `<node>-<block name>`.
 *
 * Does not: read or write the datastore (allocator.ts), validate objects (model.ts).
 */
import {
  formatIpv4,
  formatIpv6,
  parseIpv6,
  parsePrefix4,
  parsePrefix6,
  prefix4Addr,
  prefix4Len,
} from '../net/addr.js';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** The first address as an integer (host bits zero). */
  base: bigint;
  /** Prefix length: 0..32 for IPv4, 0..128 for IPv6. */
  len: number;
}

export function familyBits(family: Family): number {
  return family === 4 ? 32 : 128;
}

/** Parse `a.b.c.d/len` or IPv6 `addr/len`; throws net/addr's AddrError naming the text. */
export function parseCidr(text: string): Cidr {
  if (text.includes(':')) {
    const canonical = parsePrefix6(text);
    const slash = canonical.indexOf('/');
    return {
      family: 6,
      base: bytesToBigint(parseIpv6(canonical.slice(0, slash))),
      len: Number(canonical.slice(slash + 1)),
    };
  }
  const key = parsePrefix4(text);
  return { family: 4, base: BigInt(prefix4Addr(key)), len: prefix4Len(key) };
}

/** Parse a bare address of either family (strict, as net/addr). */
export function parseAddress(text: string): { family: Family; value: bigint } {
  const c = parseCidr(text.includes(':') ? `${text}/128` : `${text}/32`);
  return { family: c.family, value: c.base };
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) return formatIpv4(Number(value));
  const bytes = new Uint8Array(16);
  let v = value;
  for (let i = 15; i >= 0; i--) {
    bytes[i] = Number(v & 255n);
    v >>= 8n;
  }
  return formatIpv6(bytes);
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.base)}/${c.len}`;
}

/** The canonical text of a CIDR (IPv6 compressed as RFC 5952); throws AddrError when malformed. */
export function canonicalCidr(text: string): string {
  return formatCidr(parseCidr(text));
}

function bytesToBigint(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

/** Number of addresses in a CIDR of this length. */
export function sizeOf(family: Family, len: number): bigint {
  return 1n << BigInt(familyBits(family) - len);
}

/** The number of addresses in a block, as a number (block sizes keep it at most 4096). */
export function blockAddressCount(block: Cidr): number {
  return Number(sizeOf(block.family, block.len));
}

export function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.len < outer.len) return false;
  const shift = BigInt(familyBits(outer.family) - outer.len);
  return inner.base >> shift === outer.base >> shift;
}

export function containsAddress(c: Cidr, family: Family, value: bigint): boolean {
  return contains(c, { family, base: value, len: familyBits(family) });
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return contains(a, b) || contains(b, a);
}

/** How many blocks of `blockSize` a pool holds. */
export function blockCount(pool: Cidr, blockSize: number): bigint {
  return 1n << BigInt(blockSize - pool.len);
}

/** Block number `k` (0-based, address order) of a pool. */
export function nthBlock(pool: Cidr, blockSize: number, k: bigint): Cidr {
  return { family: pool.family, base: pool.base + k * sizeOf(pool.family, blockSize), len: blockSize };
}

/** The address at an ordinal of a block. */
export function addressAt(block: Cidr, ordinal: number): string {
  return formatAddress(block.family, block.base + BigInt(ordinal));
}

/** The ordinal of an address in a block, or undefined when the block does not hold it. */
export function ordinalOf(block: Cidr, family: Family, value: bigint): number | undefined {
  if (!containsAddress(block, family, value)) return undefined;
  return Number(value - block.base);
}

/** Compare CIDRs: IPv4 before IPv6, then by address, then shorter prefix first. */
export function compareCidr(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.base !== b.base) return a.base < b.base ? -1 : 1;
  return a.len - b.len;
}

/** The host route for one address: a /32 or a /128. */
export function hostCidr(family: Family, value: bigint): string {
  return `${formatAddress(family, value)}/${familyBits(family)}`;
}

/** The object name of the block with this CIDR (`10-244-1-0-26`). */
export function blockName(block: Cidr): string {
  let text = formatCidr(block);
  if (text.startsWith('::')) text = `0${text}`;
  return text.replace(/[.:/]/g, '-');
}

/** The object name of a node's affinity to a block (`node-1-10-244-1-0-26`). */
export function affinityName(node: string, block: Cidr): string {
  return `${node}-${blockName(block)}`;
}
