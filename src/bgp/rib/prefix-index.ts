/**
 * A prefix -> small integer index, the one lookup every table in rib/ does per prefix.
 *
 * IPv4 keys (addr * 64 + len, up to 2^38) live in an open-addressing hash table on one typed
 * array: linear probing, load factor at most 1/2, deletion by backward shift (no tombstones), so
 * a lookup is a hash and a probe or two with no allocation (a JS Map with such keys makes each
 * key a heap number and each entry an object). IPv6 keys (canonical text) use a Map: IPv6 tables
 * are small next to IPv4 ones in a pod network.
 *
 * On a million prefixes the cost is memory latency, not arithmetic, so the layout is for the
 * cache: a bucket is two int32s, the address and (length + 1) << 26 | slot, so a probe reads one
 * cache line; and the hash keeps runs of neighbouring prefixes together. It takes the prefix's
 * significant bits (addr >>> (32 - len)), mixes all but the low three with the length, and keeps
 * those three as the low bits of the bucket: eight consecutive prefixes of one length land in
 * eight consecutive buckets. Peers send tables in address order, so a full table's lookups walk
 * memory mostly in order. Eight, not more: wider runs made probe sequences long enough to lose
 * on shuffled input. Slots are below 2^26.
 *
 * Slots are dense integers from 0, reused after `delete` (lowest-freed-first is not promised):
 * callers keep per-prefix data in plain arrays indexed by slot. No I/O.
 *
 * Key boxing (referred to by this name elsewhere in bgp/): an IPv4 key past 2^31 is a double,
 * and V8 allocates a heap number for each double passed to or returned from a function it does
 * not inline. A loop over a table's prefixes that passes keys whole so allocates once per prefix.
 * Per-prefix loops therefore split a key once into two small integers, its address as an int32
 * and its length (net/addr.ts prefix4Addr, prefix4Len), and call `get4`/`add4` with those; and
 * read keys from `keys4` (the slot -> key array itself) rather than through a call.
 */
import { type PrefixKey, prefix4Addr, prefix4Len } from '../../net/addr.js';

const RUN_BITS = 3;
const RUN = 1 << RUN_BITS;
const SLOT_BITS = 26;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
/** The most slots an index hands out. */
export const MAX_SLOTS = SLOT_MASK + 1;

export class PrefixIndex {
  /** Buckets: [addr, (len + 1) << 26 | slot] pairs; 0 in the second word is an empty bucket. */
  private table: Int32Array;
  private mask: number;
  private n4 = 0;
  private readonly v6 = new Map<string, number>();
  /**
   * slot -> prefix: IPv4 keys (>= 0) in a Float64Array, IPv6 text in a plain array (NaN here). A
   * JS array of numbers would box every key once a slot is freed. Free slots form a list through
   * the same array, as negative numbers: -(next free slot + 2), so freeing a million prefixes
   * allocates nothing.
   */
  private keyAt4 = new Float64Array(1024).fill(Number.NaN);
  private readonly keyAt6: (string | undefined)[] = [];
  private nSlots = 0;
  private freeHead = -1;

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.table = new Int32Array(cap * 2);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.n4 + this.v6.size;
  }

  /** One past the highest slot ever handed out: arrays indexed by slot need this length. */
  get slotCount(): number {
    return this.nSlots;
  }

  /**
   * The IPv4 key of each slot: the key (>= 0), NaN for an IPv6 one, negative for a free slot.
   * Valid until the next `add`. For loops over many slots, which read it without a call per slot
   * (see Key boxing above).
   */
  get keys4(): Float64Array {
    return this.keyAt4;
  }

  /**
   * Whether adding a new prefix would grow the index (its buckets), or hand out a slot at or past
   * `slots` (the length of the caller's arrays indexed by slot).
   */
  wouldGrow(slots: number): boolean {
    return (this.n4 + 1) * 2 > this.mask + 1 || (this.freeHead < 0 && this.nSlots >= slots);
  }

  /** The prefix at a slot, or undefined for a free one. */
  prefixAt(s: number): PrefixKey | undefined {
    const k = this.keyAt4[s]!;
    if (k >= 0) return k;
    return k < 0 ? undefined : this.keyAt6[s];
  }

  /** The bucket a prefix would sit in with no collisions. */
  private home(addr: number, len: number): number {
    const v = len === 0 ? 0 : addr >>> (32 - len);
    let h = Math.imul((v >>> RUN_BITS) ^ Math.imul(len + 1, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return ((h << RUN_BITS) | (v & (RUN - 1))) & this.mask;
  }

  /** The bucket holding the prefix, or the empty one where it would go. */
  private probe(addr: number, len: number): number {
    const tag = (len + 1) << SLOT_BITS;
    const t = this.table;
    const mask = this.mask;
    let i = this.home(addr, len);
    for (;;) {
      const x = t[2 * i + 1]!;
      if (x === 0 || (t[2 * i] === addr && (x & ~SLOT_MASK) === tag)) return i;
      i = (i + 1) & mask;
    }
  }

  /** The bucket holding IPv4 key `k`, or -1. */
  private find(k: number): number {
    const i = this.probe(prefix4Addr(k) | 0, prefix4Len(k));
    return this.table[2 * i + 1] === 0 ? -1 : i;
  }

  /** The prefix's slot, or -1. */
  get(k: PrefixKey): number {
    if (typeof k === 'string') return this.v6.get(k) ?? -1;
    return this.get4(prefix4Addr(k) | 0, prefix4Len(k));
  }

  /** `get` for an IPv4 prefix as its address (as int32) and length (see Key boxing above). */
  get4(addr: number, len: number): number {
    const i = this.probe(addr, len);
    const x = this.table[2 * i + 1]!;
    return x === 0 ? -1 : x & SLOT_MASK;
  }

  /** The prefix's slot, given one if it has none. */
  add(k: PrefixKey): number {
    if (typeof k === 'string') {
      let s = this.v6.get(k);
      if (s === undefined) {
        s = this.take(k);
        this.v6.set(k, s);
      }
      return s;
    }
    return this.add4(prefix4Addr(k) | 0, prefix4Len(k));
  }

  /** `add` for an IPv4 prefix as its address (as int32) and length (see get4). */
  add4(addr: number, len: number): number {
    if ((this.n4 + 1) * 2 > this.mask + 1) this.grow();
    const i = this.probe(addr, len);
    const t = this.table;
    const x = t[2 * i + 1]!;
    if (x !== 0) return x & SLOT_MASK;
    const s = this.take4((addr >>> 0) * 64 + len);
    t[2 * i] = addr;
    t[2 * i + 1] = ((len + 1) << SLOT_BITS) | s;
    this.n4++;
    return s;
  }

  /** Forget the prefix; its slot may be handed out again. Returns the slot it had, or -1. */
  delete(k: PrefixKey): number {
    if (typeof k === 'string') {
      const s = this.v6.get(k);
      if (s === undefined) return -1;
      this.v6.delete(k);
      this.release(s);
      return s;
    }
    const i = this.find(k);
    if (i < 0) return -1;
    const t = this.table;
    const mask = this.mask;
    const s = t[2 * i + 1]! & SLOT_MASK;
    // Backward-shift deletion: pull later members of the probe run into the hole.
    let hole = i;
    let j = (i + 1) & mask;
    for (;;) {
      const x = t[2 * j + 1]!;
      if (x === 0) break;
      const home = this.home(t[2 * j]!, (x >>> SLOT_BITS) - 1);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        t[2 * hole] = t[2 * j]!;
        t[2 * hole + 1] = x;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    t[2 * hole + 1] = 0;
    this.n4--;
    this.release(s);
    return s;
  }

  /** A free slot for an IPv6 key. */
  private take(k: string): number {
    const s = this.freeSlot();
    this.keyAt4[s] = Number.NaN;
    this.keyAt6[s] = k;
    return s;
  }

  /** A free slot for an IPv4 key. */
  private take4(k: number): number {
    const s = this.freeSlot();
    this.keyAt4[s] = k;
    return s;
  }

  private freeSlot(): number {
    if (this.freeHead >= 0) {
      const s = this.freeHead;
      this.freeHead = -this.keyAt4[s]! - 2;
      return s;
    }
    if (this.nSlots === MAX_SLOTS) throw new RangeError(`prefix index full (${MAX_SLOTS} prefixes)`);
    const s = this.nSlots++;
    if (s >= this.keyAt4.length) {
      const next = new Float64Array(this.keyAt4.length * 2).fill(Number.NaN);
      next.set(this.keyAt4);
      this.keyAt4 = next;
    }
    return s;
  }

  private release(s: number): void {
    if (this.keyAt6[s] !== undefined) this.keyAt6[s] = undefined;
    this.keyAt4[s] = -(this.freeHead + 2);
    this.freeHead = s;
  }

  private grow(): void {
    const old = this.table;
    const cap = (this.mask + 1) * 2;
    const t = new Int32Array(cap * 2);
    this.table = t;
    this.mask = cap - 1;
    for (let i = 0; i < old.length; i += 2) {
      const x = old[i + 1]!;
      if (x === 0) continue;
      let j = this.home(old[i]!, (x >>> SLOT_BITS) - 1);
      while (t[2 * j + 1] !== 0) j = (j + 1) & this.mask;
      t[2 * j] = old[i]!;
      t[2 * j + 1] = x;
    }
  }
}
