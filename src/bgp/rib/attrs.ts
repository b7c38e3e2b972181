/**
 * Interned attribute sets: identical path attributes (and next hops) are stored once and shared
 * by every path that carries them, as BIRD's rta cache and GoBGP's attribute pool do. A full
 * table from one peer typically has a few thousand distinct sets for a million prefixes.
 *
 * The key is a canonical serialisation of the attributes after import processing (so two UPDATEs
 * whose bytes differ only in attribute order or flags share a set). Sets are reference counted:
 * a path holding one calls `release` when it goes, and the last release frees it. No I/O.
 */
import type { PathAttributes } from '../wire/attributes.js';

export interface RouteAttrs {
  readonly id: number;
  readonly key: string;
  readonly attrs: Readonly<PathAttributes>;
  /** Next hops: for IPv4 the NEXT_HOP, for IPv6 the MP_REACH_NLRI global (and link-local). */
  readonly nextHops: readonly string[];
  refs: number;
}

function keyOf(attrs: PathAttributes, nextHops: readonly string[]): string {
  return JSON.stringify([attrs, nextHops], (_k, v: unknown) => {
    if (typeof v === 'bigint') return `n${v.toString(16)}`;
    if (v && typeof v === 'object' && (v as { type?: string }).type === 'Buffer') return v;
    return v;
  });
}

export class AttrTable {
  private readonly byKey = new Map<string, RouteAttrs>();
  private nextId = 1;

  get size(): number {
    return this.byKey.size;
  }

  /** The shared set for these attributes, with one more reference. */
  intern(attrs: PathAttributes, nextHops: readonly string[]): RouteAttrs {
    const key = keyOf(attrs, nextHops);
    let a = this.byKey.get(key);
    if (!a) {
      a = {
        id: this.nextId++,
        key,
        attrs: Object.freeze(attrs),
        nextHops: Object.freeze([...nextHops]),
        refs: 0,
      };
      this.byKey.set(key, a);
    }
    a.refs++;
    return a;
  }

  /** Another reference to a set already interned. */
  retain(a: RouteAttrs): RouteAttrs {
    a.refs++;
    return a;
  }

  release(a: RouteAttrs): void {
    if (--a.refs <= 0) this.byKey.delete(a.key);
  }
}
