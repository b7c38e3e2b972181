/**
 * Interned attribute sets: identical path attributes (and next hops) are stored once and shared
 * by every path that carries them, as BIRD's rta cache and GoBGP's attribute pool do. A full
 * table from one peer typically has a few thousand distinct sets for a million prefixes.
 *
 * The key is a canonical serialisation of the attributes after import processing (so two UPDATEs
 * whose bytes differ only in attribute order or flags share a set), or one the caller gives: the
 * speaker uses an UPDATE's attribute bytes when they decode to the set unchanged, which is
 * cheaper to make, and export sets their encoding (export.ts exportKey). Such keys start with
 * 'w' and 'x', canonical ones with '[', so they never meet; the same attributes by both routes
 * are two sets, which costs sharing, never correctness. Sets are reference counted: a path
 * holding one calls `release` when it goes, and the last release frees it. No I/O.
 *
 * A set made from its key alone (`internKey`) has no decoded attributes until someone reads
 * `attrs`, and then decodes them from the key once: an export key (export.ts exportKeyFromRaw),
 * whose bytes the Adj-RIB-Outs send as they are, or a raw key (update-in.ts), which best-path
 * selection reads only when another path for the same prefix is there to compare with. A table
 * of many sets so keeps no decoded copy of most of them: for 100k prefixes over 20k sets, five
 * objects fewer per set for the collector to copy. While an UPDATE is taken in, its decoded
 * attributes are offered (`offerDecoded`), so its own set never decodes them a second time.
 *
 * The table is a hash table of its own (`AttrTable`): open addressing on the sets' ids, keyed by
 * a hash the callers that write keys from bytes make as they write them.
 *
 * Each live set has a small integer `id`, and `byId(id)` finds it again, so tables can keep ids
 * in typed arrays instead of references in JS arrays (an Adj-RIB-Out of a million prefixes). A
 * freed set's id goes to the next new set, which keeps ids dense. A key that may outlive the set
 * (a cache) uses `uid`, which is never reused.
 *
 * A set whose last reference goes is not freed at once: it waits, findable, until `sweep()`
 * (the speaker sweeps when changes pause, with the RIB's prune). A withdrawal of 100k prefixes
 * over 20k sets so does no table deletions while it is being passed on, and a set that comes back
 * before the sweep (a flap, a path moving between peers) is the same set, its id and the export
 * answers cached for it still good.
 */
import { parseIpv4 } from '../../net/addr.js';
import { decodeAttributeBytes, type PathAttributes } from '../wire/attributes.js';
import { makeContext } from '../wire/context.js';

export interface RouteAttrs {
  /** Small, dense, reused once the set is freed. */
  readonly id: number;
  /** Never reused. */
  readonly uid: number;
  readonly key: string;
  readonly attrs: Readonly<PathAttributes>;
  /** Next hops: for IPv4 the NEXT_HOP, for IPv6 the MP_REACH_NLRI global (and link-local). */
  readonly nextHops: readonly string[];
  refs: number;
  /**
   * The set as last encoded for sending, with the NEXT_HOP and AS size it was encoded for: sent
   * again with the same (the next UPDATE of the set, the next peer on the same link), it is not
   * encoded again. Kept by the sending side (rib/adj-out.ts packBatch), only for sets whose bytes
   * cannot be copied from their key (writeWireFromExportKey).
   */
  wire: { hop: string; as4: boolean; bytes: Buffer } | undefined;
}

function keyOf(attrs: PathAttributes, nextHops: readonly string[]): string {
  return JSON.stringify([attrs, nextHops], (_k, v: unknown) => {
    if (typeof v === 'bigint') return `n${v.toString(16)}`;
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') return v;
    return v;
  });
}

const AS4 = makeContext({ as4: true });
const AS2 = makeContext({ as4: false });

/** Where an export key's encoding ends: before the '|' and the next hops (export.ts exportKey). */
function exportKeyEnd(key: string, hops: readonly string[]): number {
  let tail = Math.max(1, hops.length); // the '|' and the commas
  for (const h of hops) tail += h.length;
  return key.length - tail;
}

/**
 * The attributes of an export key (export.ts: 'x', the encoding on a 4-octet-AS session without
 * NEXT_HOP, '|' and the next hops), decoded: for a set made from its key alone
 * (`AttrTable.internKey`), the first time someone asks.
 */
export function attrsOfExportKey(key: string, hops: readonly string[]): PathAttributes {
  return decodeAttributeBytes(Buffer.from(key.slice(1, exportKeyEnd(key, hops)), 'latin1'), AS4).attrs;
}

/** The attributes of a raw key (update-in.ts: 'w', the AS size, an UPDATE's attribute bytes). */
export function attrsOfRawKey(key: string): PathAttributes {
  return decodeAttributeBytes(Buffer.from(key.slice(2), 'latin1'), key.charCodeAt(1) === 0x34 ? AS4 : AS2)
    .attrs;
}

/** The raw key of the UPDATE being taken in, and what its attributes decoded to (`offerDecoded`). */
let offeredKey: string | undefined;
let offeredAttrs: PathAttributes | undefined;

/**
 * While an UPDATE is taken in (update-in.ts), the attributes it was decoded to: a set of its raw
 * key whose attributes are read meanwhile (best-path selection against another peer's path)
 * takes them rather than decoding the bytes again. Offer undefined after, so as not to keep them.
 */
export function offerDecoded(key: string | undefined, attrs: PathAttributes | undefined): void {
  offeredKey = key;
  offeredAttrs = attrs;
}

/** FNV-1a's offset basis and prime (32 bits). */
const FNV_BASIS = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

/**
 * The last mixing of a key's hash (MurmurHash3's finaliser), so that its low bits are all good;
 * 30 bits of it, so that it is a small integer to V8 (a set keeps it in a field: a larger number
 * there would be a heap number per set, and would throw away the code that reads sets).
 */
function mixHash(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) & 0x3fffffff;
}

/**
 * The table's hash of a key: FNV-1a over its character codes, mixed. For a key made from bytes
 * (latin1: a byte a character), the same number as `keyHash` gives for the bytes as written.
 */
export function hashKey(key: string): number {
  let h = FNV_BASIS;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), FNV_PRIME);
  return mixHash(h);
}

/** For callers that hash as they write a key: FNV-1a's start, one step, and the end. */
export const keyHash = {
  start: FNV_BASIS,
  step: (h: number, code: number): number => Math.imul(h ^ code, FNV_PRIME),
  end: mixHash,
};

/** A set as the table keeps it: `attrs` given, or decoded from its key (export or raw) when first read. */
class AttrSet implements RouteAttrs {
  refs = 1;
  wire: RouteAttrs['wire'] = undefined;

  constructor(
    readonly id: number,
    readonly uid: number,
    readonly key: string,
    /** `hashKey(key)`: where the table looks for it. */
    readonly hash: number,
    private decoded: PathAttributes | undefined,
    readonly nextHops: readonly string[],
  ) {}

  get attrs(): Readonly<PathAttributes> {
    let a = this.decoded;
    if (a === undefined) {
      if (this.key === offeredKey) a = offeredAttrs!;
      else if (this.key.charCodeAt(0) === 0x77) a = attrsOfRawKey(this.key);
      else a = attrsOfExportKey(this.key, this.nextHops);
      this.decoded = a;
    }
    return a;
  }
}

export class AttrTable {
  /**
   * The sets by key: open addressing on [hash, id] pairs, linear probing, at most half full,
   * deletion by backward shift (no tombstones); id 0 marks an empty bucket. A key is looked for by
   * its hash, and compared as a string only where the hashes match. Cheaper than a Map for the
   * case that matters, a table of many sets where nearly every UPDATE brings a new one: a key
   * made from bytes is hashed as it is written (update-in.ts), the string is never hashed by V8,
   * and growing copies an array of numbers, not a table of objects.
   */
  private buckets = new Int32Array(2 * 256);
  private mask = 255;
  /** Sets in the table, referenced or not. */
  private count = 0;
  private readonly sets: (AttrSet | undefined)[] = [undefined];
  private readonly freeIds: number[] = [];
  private nextUid = 1;
  /** Sets that lost their last reference since the last sweep (some may be back in use). */
  private dead: AttrSet[] = [];
  /** Sets in the table with no reference. */
  private nDead = 0;

  /** Sets in use. */
  get size(): number {
    return this.count - this.nDead;
  }

  /** Sets with no reference, waiting for `sweep`. */
  get deadCount(): number {
    return this.nDead;
  }

  /** The shared set for these attributes, with one more reference. */
  intern(attrs: PathAttributes, nextHops: readonly string[], key = keyOf(attrs, nextHops)): RouteAttrs {
    return this.internWith(key, hashKey(key), attrs, nextHops);
  }

  /**
   * The shared set for a key made from bytes (export.ts's export key, update-in.ts's raw key),
   * with one more reference; a new set decodes its attributes from the key only if someone reads
   * them (the Adj-RIB-Outs of 4-octet-AS sessions send the key's bytes and never do). `hash` is
   * `hashKey(key)`, when the caller made it while writing the key.
   */
  internKey(key: string, nextHops: readonly string[], hash = hashKey(key)): RouteAttrs {
    return this.internWith(key, hash, undefined, nextHops);
  }

  private internWith(
    key: string,
    hash: number,
    attrs: PathAttributes | undefined,
    nextHops: readonly string[],
  ): RouteAttrs {
    const t = this.buckets;
    const mask = this.mask;
    let i = hash & mask;
    for (let id = t[2 * i + 1]!; id !== 0; id = t[2 * i + 1]!) {
      if (t[2 * i] === hash) {
        const a = this.sets[id]!;
        if (a.key === key) {
          // A set with no reference, in use again before the sweep.
          if (a.refs++ === 0) this.nDead--;
          return a;
        }
      }
      i = (i + 1) & mask;
    }
    const id = this.freeIds.length ? this.freeIds.pop()! : this.sets.length;
    // Not frozen, not copied: the caller hands both over (types keep them read-only), and
    // freezing costs more than the rest of interning a set (100k prefixes over 20k sets).
    const a = new AttrSet(id, this.nextUid++, key, hash, attrs, nextHops);
    this.sets[id] = a;
    t[2 * i] = hash;
    t[2 * i + 1] = id;
    if (++this.count * 2 > mask + 1) this.grow();
    return a;
  }

  private grow(): void {
    const old = this.buckets;
    const mask = this.mask * 2 + 1;
    const t = new Int32Array(2 * (mask + 1));
    for (let j = 0; j < old.length; j += 2) {
      if (old[j + 1] === 0) continue;
      let i = old[j]! & mask;
      while (t[2 * i + 1] !== 0) i = (i + 1) & mask;
      t[2 * i] = old[j]!;
      t[2 * i + 1] = old[j + 1]!;
    }
    this.buckets = t;
    this.mask = mask;
  }

  /** Take set `a` out of the buckets, moving later ones of its run back (no tombstones). */
  private remove(a: AttrSet): void {
    const t = this.buckets;
    const mask = this.mask;
    let i = a.hash & mask;
    while (t[2 * i + 1] !== a.id) i = (i + 1) & mask;
    // Backward shift: a later entry whose home is not within (i, j] moves into the hole.
    for (let j = (i + 1) & mask; t[2 * j + 1] !== 0; j = (j + 1) & mask) {
      const home = t[2 * j]! & mask;
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        t[2 * i] = t[2 * j]!;
        t[2 * i + 1] = t[2 * j + 1]!;
        i = j;
      }
    }
    t[2 * i] = 0;
    t[2 * i + 1] = 0;
    this.count--;
  }

  /** Another reference to a set already interned. */
  retain(a: RouteAttrs): RouteAttrs {
    if (a.refs++ === 0) this.nDead--;
    return a;
  }

  release(a: RouteAttrs): void {
    // Exactly at zero: a stray extra release must not free the id twice.
    if (--a.refs !== 0) return;
    this.nDead++;
    this.dead.push(a as AttrSet);
  }

  /** Free the sets that still have no reference. */
  sweep(): void {
    const dead = this.dead;
    if (dead.length === 0) return;
    this.dead = [];
    for (const a of dead) {
      // Dead twice (back in use between) is listed twice: the first look frees it.
      if (a.refs > 0 || this.sets[a.id] !== a) continue;
      this.remove(a);
      this.sets[a.id] = undefined;
      this.freeIds.push(a.id);
      this.nDead--;
    }
  }

  /** The live set with this id (ids start at 1). */
  byId(id: number): RouteAttrs {
    return this.sets[id]!;
  }
}

/** The last next hop parsed by writeWireFromExportKey: a session's own address, the same each time. */
let lastHop = '';
let lastHopValue = 0;

/**
 * A set's attributes as sent on a 4-octet-AS session with NEXT_HOP `hop`, made from its export
 * key (export.ts `exportKey`: 'x', the encoding without NEXT_HOP, '|' and the next hops) by
 * putting the NEXT_HOP attribute in its place, after ORIGIN and AS_PATH: a copy instead of a
 * second encoding (RFC 4271 §4.3, §5: attributes in ascending type order). Written at the start
 * of `out`; returns the length, or -1 for a key of another kind or one that `out` cannot hold.
 * Byte by byte: a set is tens of bytes, and a slice or a view per set costs more than the copy.
 */
export function writeWireFromExportKey(
  key: string,
  hops: readonly string[],
  hop: string,
  out: Buffer,
): number {
  if (key.charCodeAt(0) !== 120 /* 'x' */) return -1;
  const end = exportKeyEnd(key, hops); // one past the encoding, which starts at 1
  // The first attribute of type NEXT_HOP (3) or above: attributes are in ascending type order.
  let p = 1;
  while (p < end && key.charCodeAt(p + 1) < 3) {
    const ext = key.charCodeAt(p) & 0x10;
    const len = ext ? (key.charCodeAt(p + 2) << 8) | key.charCodeAt(p + 3) : key.charCodeAt(p + 2);
    p += (ext ? 4 : 3) + len;
  }
  const n = end - 1 + 7;
  if (p > end || n > out.length) return -1;
  let o = 0;
  for (let i = 1; i < p; i++) out[o++] = key.charCodeAt(i);
  out[o++] = 0x40; // well-known transitive
  out[o++] = 3;
  out[o++] = 4;
  if (hop !== lastHop) {
    lastHopValue = parseIpv4(hop);
    lastHop = hop;
  }
  out[o++] = lastHopValue >>> 24;
  out[o++] = (lastHopValue >>> 16) & 0xff;
  out[o++] = (lastHopValue >>> 8) & 0xff;
  out[o++] = lastHopValue & 0xff;
  for (let i = p; i < end; i++) out[o++] = key.charCodeAt(i);
  return o;
}
