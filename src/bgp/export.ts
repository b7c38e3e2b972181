/**
 * What one peer is sent (the Update-Send process of RFC 4271 §9.2, with RFC 4456 reflection): the
 * export rules of policy.ts applied to the RIB's best paths, with the answers kept, and the next
 * hops an announcement goes out with (NEXT_HOP self, §5.1.3; IPv6 next hops, RFC 4760 §3 and
 * RFC 2545 §3). Pure; the speaker holds one `PeerExport` per established session and one
 * `SessionNextHops` per session.
 *
 * `exportOf(ra, from, prefix)` answers "what should this peer hold for a prefix whose best path
 * has attribute set `ra` from `from`": an interned set in the export table (with a reference the
 * caller owns) or null. A full table is a million prefixes sharing a handful of sets, so answers
 * are cached per RIB attribute-set id (ids are dense: a plain array) with the set and source each
 * answer is for, and the last answer is remembered outright: consecutive prefixes mostly share
 * both. Only the prefix filter is per prefix. The cache holds a reference to each answer, given
 * back by `clear()`; a new policy (this peer's or, through route reflection, another's: whether
 * we reflect at all) means a new PeerExport.
 *
 * Export sets are keyed by their wire encoding (4-octet AS numbers, which lose nothing) plus next
 * hops: sets that look the same on the wire are one set to the Adj-RIB-Outs, and the key is
 * several times cheaper to make than the canonical one (rib/attrs.ts).
 *
 * Both are classes, not closures, on purpose: the RIB and packBatch call them for every prefix,
 * and the warm-up must run these very classes ("Warming the UPDATE path", warmup.ts).
 */
import type { PrefixKey } from '../net/addr.js';
import { exportAllowed, exportAttrs, filterAccepts, type LocalInfo, type PeerPolicy } from './policy.js';
import type { NextHopsFor } from './rib/adj-out.js';
import type { AttrTable, RouteAttrs } from './rib/attrs.js';
import type { Exports, PeerRef } from './rib/rib.js';
import { encodeAttributes, type PathAttributes } from './wire/attributes.js';
import { makeContext } from './wire/context.js';
import { Writer } from './wire/writer.js';

/** The next hop of an exported set that is our own address on the session. */
export const SELF = 'self';
/** The next hops of every set sent with NEXT_HOP self: one array for all of them. */
const SELF_HOPS: readonly string[] = Object.freeze([SELF]);

const keyWriter = new Writer(4096);
const AS4 = makeContext({ as4: true });

/** The export table's key for a set: its wire encoding and its next hops. */
export function exportKey(attrs: PathAttributes, hops: readonly string[]): string | undefined {
  const w = keyWriter.reset();
  try {
    w.u8(0x78); // 'x'
    encodeAttributes(w, attrs, AS4);
  } catch {
    return undefined; // The canonical key, then; sending it will say what is wrong.
  }
  // Written into the same bytes, so that the key is one flat string, not a concatenation.
  for (let i = 0; i < hops.length; i++) {
    w.u8(i === 0 ? 0x7c : 0x2c); // '|', ','
    const h = hops[i]!;
    for (let c = 0; c < h.length; c++) w.u8(h.charCodeAt(c) & 0xff);
  }
  if (hops.length === 0) w.u8(0x7c);
  return w.buf.toString('latin1', 0, w.pos);
}

export class PeerExport implements Exports {
  /**
   * Per RIB set id: the set and source the answer is for, and the answer. Ids start at 1; the
   * entry at 0 makes each array one of objects from the start (an empty one would change kind at
   * the first push, which V8 would deoptimise the caller for).
   */
  private ras: (RouteAttrs | undefined)[] = [undefined];
  private froms: (PeerRef | undefined)[] = [undefined];
  private outs: (RouteAttrs | null)[] = [null];
  private memoRa: RouteAttrs | undefined;
  private memoFrom: PeerRef | undefined;
  private memoOut: RouteAttrs | null = null;

  constructor(
    private readonly table: AttrTable,
    private readonly me: LocalInfo,
    readonly to: PeerRef,
    readonly policy: PeerPolicy,
    /** Whether we reflect routes (some peer is a route-reflector client). */
    private readonly reflector: boolean,
  ) {}

  exportOf(bestRa: RouteAttrs, from: PeerRef, prefix: PrefixKey): RouteAttrs | null {
    const rules = this.policy.exportRules;
    if (rules.length && !filterAccepts(rules, prefix)) return null;
    if (bestRa === this.memoRa && from === this.memoFrom)
      return this.memoOut ? this.table.retain(this.memoOut) : null;
    const id = bestRa.id;
    let ra: RouteAttrs | null;
    if (this.ras[id] === bestRa && this.froms[id] === from) ra = this.outs[id]!;
    else {
      if (!exportAllowed(from, this.to, this.policy, this.reflector)) ra = null;
      else {
        const e = exportAttrs(bestRa.attrs, bestRa.nextHops, from, this.to, this.policy, this.me);
        const hops = e.nextHops ?? SELF_HOPS;
        ra = this.table.intern(e.attrs, hops, exportKey(e.attrs, hops));
      }
      // The id's earlier answer was for a set since freed, or for another source.
      const old = this.outs[id];
      if (old) this.table.release(old);
      while (this.ras.length < id) {
        this.ras.push(undefined);
        this.froms.push(undefined);
        this.outs.push(null);
      }
      this.ras[id] = bestRa;
      this.froms[id] = from;
      this.outs[id] = ra;
    }
    this.memoRa = bestRa;
    this.memoFrom = from;
    this.memoOut = ra;
    return ra ? this.table.retain(ra) : null;
  }

  /** Give back the cached answers' references; the cache starts empty again. */
  clear(): void {
    for (const ra of this.outs) if (ra) this.table.release(ra);
    this.ras = [undefined];
    this.froms = [undefined];
    this.outs = [null];
    this.memoRa = undefined;
    this.memoFrom = undefined;
    this.memoOut = null;
  }
}

/**
 * The next hops of a session's announcements: a set's own next hop, or for SELF our address on
 * the session (`v4Self`), and for IPv6 our IPv6 addresses on its interface (`v6Self`), also in
 * place of an IPv4 next hop, which an IPv6 route cannot carry.
 */
export class SessionNextHops implements NextHopsFor {
  constructor(
    readonly v4Self: string,
    readonly v6Self: readonly string[],
  ) {}

  v4(ra: RouteAttrs): string {
    const nh = ra.nextHops[0]!;
    return nh === SELF ? this.v4Self : nh;
  }

  v6(ra: RouteAttrs): string[] {
    const nh = ra.nextHops[0]!;
    return nh === SELF || nh.indexOf(':') < 0 ? [...this.v6Self] : [...ra.nextHops];
  }
}
