/**
 * A prefix -> small integer index, the one lookup every table in rib/ does per prefix.
 *
 * IPv4 keys (addr * 64 + len, up to 2^38) live in an open-addressing hash table on typed arrays:
 * linear probing, load factor at most 1/2, deletion by backward shift (no tombstones), so a
 * lookup is a hash and a probe or two with no allocation. A JS Map with such keys costs several
 * times more per operation on a million-entry table (each key a heap number, each entry an
 * object) — that was the RIB's hot spot. IPv6 keys (canonical text) use a Map: IPv6 tables are
 * small next to IPv4 ones in a pod network.
 *
 * Slots are dense integers from 0, reused after `delete` (lowest-freed-first is not promised):
 * callers keep per-prefix data in plain arrays indexed by slot. No I/O.
 */
import type { PrefixKey } from '../../net/addr.js';

const EMPTY = -1;

export class PrefixIndex {
  private keys: Float64Array;
  private slotsAt: Int32Array;
  private mask: number;
  private n4 = 0;
  private readonly v6 = new Map<string, number>();
  /**
   * slot -> prefix: IPv4 keys in a Float64Array (NaN when the slot is not IPv4), IPv6 text in a
   * plain array. A JS array of numbers would box every key once a slot is freed.
   */
  private keyAt4 = new Float64Array(1024).fill(Number.NaN);
  private readonly keyAt6: (string | undefined)[] = [];
  private nSlots = 0;
  private free = new Int32Array(64);
  private nFree = 0;

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.slotsAt = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.n4 + this.v6.size;
  }

  /** One past the highest slot ever handed out: arrays indexed by slot need this length. */
  get slotCount(): number {
    return this.nSlots;
  }

  /** The prefix at a slot, or undefined for a free one. */
  prefixAt(s: number): PrefixKey | undefined {
    const k = this.keyAt4[s]!;
    return Number.isNaN(k) ? this.keyAt6[s] : k;
  }

  private hash(k: number): number {
    const lo = (k % 4294967296) | 0;
    const hi = (k / 4294967296) | 0;
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    return (h ^ (h >>> 16)) & this.mask;
  }

  /** The prefix's slot, or -1. */
  get(k: PrefixKey): number {
    if (typeof k === 'string') return this.v6.get(k) ?? -1;
    const keys = this.keys;
    let i = this.hash(k);
    for (;;) {
      const x = keys[i]!;
      if (x === k) return this.slotsAt[i]!;
      if (x === EMPTY) return -1;
      i = (i + 1) & this.mask;
    }
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
    if ((this.n4 + 1) * 2 > this.keys.length) this.grow();
    const keys = this.keys;
    let i = this.hash(k);
    for (;;) {
      const x = keys[i]!;
      if (x === k) return this.slotsAt[i]!;
      if (x === EMPTY) break;
      i = (i + 1) & this.mask;
    }
    const s = this.take(k);
    keys[i] = k;
    this.slotsAt[i] = s;
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
    const keys = this.keys;
    const mask = this.mask;
    let i = this.hash(k);
    for (;;) {
      const x = keys[i]!;
      if (x === EMPTY) return -1;
      if (x === k) break;
      i = (i + 1) & mask;
    }
    const s = this.slotsAt[i]!;
    // Backward-shift deletion: pull later members of the probe run into the hole.
    let hole = i;
    let j = (i + 1) & mask;
    while (keys[j] !== EMPTY) {
      const home = this.hash(keys[j]!);
      // Move j into the hole unless its home lies cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        keys[hole] = keys[j]!;
        this.slotsAt[hole] = this.slotsAt[j]!;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    keys[hole] = EMPTY;
    this.n4--;
    this.release(s);
    return s;
  }

  private take(k: PrefixKey): number {
    let s: number;
    if (this.nFree) s = this.free[--this.nFree]!;
    else {
      s = this.nSlots++;
      if (s >= this.keyAt4.length) {
        const next = new Float64Array(this.keyAt4.length * 2).fill(Number.NaN);
        next.set(this.keyAt4);
        this.keyAt4 = next;
      }
    }
    if (typeof k === 'number') this.keyAt4[s] = k;
    else this.keyAt6[s] = k;
    return s;
  }

  private release(s: number): void {
    this.keyAt4[s] = Number.NaN;
    if (this.keyAt6[s] !== undefined) this.keyAt6[s] = undefined;
    if (this.nFree === this.free.length) {
      const next = new Int32Array(this.free.length * 2);
      next.set(this.free);
      this.free = next;
    }
    this.free[this.nFree++] = s;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldSlots = this.slotsAt;
    const cap = oldKeys.length * 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.slotsAt = new Int32Array(cap);
    this.mask = cap - 1;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k === EMPTY) continue;
      let j = this.hash(k);
      while (this.keys[j] !== EMPTY) j = (j + 1) & this.mask;
      this.keys[j] = k;
      this.slotsAt[j] = oldSlots[i]!;
    }
  }
}
