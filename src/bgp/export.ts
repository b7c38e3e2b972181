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
 * To an external peer, a set that arrived as bytes (update-in.ts's raw key) goes on as bytes:
 * `exportKeyFromRaw` makes the export key by copying the attributes, leaving out NEXT_HOP, MED
 * and LOCAL_PREF and prepending our AS, with no decoding, no exportAttrs and no encoding, and the
 * set it names decodes its attributes only if someone reads them (rib/attrs.ts `internKey`). A
 * table of many sets (100k prefixes over 20k) so costs a set about 1.5 µs less and leaves four
 * fewer objects per set for the collector. Bytes another encoder wrote differently (flags,
 * order, lengths) or that hold other attributes go the long way, which gives the same answer.
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

/**
 * The flags (Optional, Transitive) each attribute type has on the wire as encodeAttributes
 * writes it, for the types an external peer's export keeps or drops (ORIGIN, AS_PATH, NEXT_HOP,
 * MED, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES, EXTENDED and LARGE COMMUNITIES);
 * 0 for every other type.
 */
const RAW_FLAGS = new Uint8Array(256);
RAW_FLAGS.set([0x40, 0x40, 0x40, 0x80, 0x40, 0x40, 0xc0, 0xc0], 1);
RAW_FLAGS[16] = 0xc0;
RAW_FLAGS[32] = 0xc0;

/** Writes an AS_PATH attribute: `asn`, then the segments in raw[v, v+len). False if there are confederation segments. */
function writePrepended(w: Writer, raw: string, v: number, len: number, asn: number): boolean {
  // The segments: AS_SET or AS_SEQUENCE, none empty (the decoder has checked their framing).
  for (let q = v; q < v + len; q += 2 + 4 * raw.charCodeAt(q + 1)) {
    const t = raw.charCodeAt(q);
    if ((t !== 1 && t !== 2) || raw.charCodeAt(q + 1) === 0) return false;
  }
  // RFC 4271 §5.1.2: into the leading AS_SEQUENCE if it has room, or a new one before it.
  const into = len > 0 && raw.charCodeAt(v) === 2 && raw.charCodeAt(v + 1) < 255;
  const n = len + (into ? 4 : 6);
  if (n > 255) {
    w.u8(0x50);
    w.u8(2);
    w.u16(n);
  } else {
    w.u8(0x40);
    w.u8(2);
    w.u8(n);
  }
  w.u8(2);
  w.u8(into ? raw.charCodeAt(v + 1) + 1 : 1);
  w.u32(asn);
  for (let i = into ? v + 2 : v; i < v + len; i++) w.u8(raw.charCodeAt(i));
  return true;
}

/**
 * The export key of a set for an external peer, made from the bytes it arrived in (update-in.ts's
 * raw key: 'w4' and the attributes from a 4-octet-AS session, decoded without error): the same
 * key exportKey gives for exportAttrs' answer, without decoding or encoding. NEXT_HOP, MED and
 * LOCAL_PREF are left out, our AS is prepended (RFC 4271 §5.1.2, §5.1.3, §5.1.4, §5.1.5), and
 * the rest is copied. Undefined unless the bytes are as encodeAttributes writes them (ascending
 * types, its flags, Extended Length only past 255 octets) and hold only those types with no
 * confederation segment: the caller then goes the long way.
 */
export function exportKeyFromRaw(raw: string, asn: number): string | undefined {
  if (raw.charCodeAt(0) !== 0x77 || raw.charCodeAt(1) !== 0x34) return undefined; // 'w4'
  const w = keyWriter.reset();
  w.u8(0x78); // 'x'
  const end = raw.length;
  let last = 0;
  let path = false;
  for (let p = 2; p < end; ) {
    const flags = raw.charCodeAt(p);
    const type = raw.charCodeAt(p + 1);
    const ext = (flags & 0x10) !== 0;
    const len = ext ? (raw.charCodeAt(p + 2) << 8) | raw.charCodeAt(p + 3) : raw.charCodeAt(p + 2);
    const v = p + (ext ? 4 : 3);
    if (type <= last || RAW_FLAGS[type] !== (flags & ~0x10) || ext !== len > 255 || v + len > end)
      return undefined;
    last = type;
    if (type > 2 && !path) {
      // No AS_PATH: the path is ours alone.
      writePrepended(w, raw, v, 0, asn);
      path = true;
    }
    if (type === 2) {
      if (!writePrepended(w, raw, v, len, asn)) return undefined;
      path = true;
    } else if (type < 3 || type > 5) for (let i = p; i < v + len; i++) w.u8(raw.charCodeAt(i));
    p = v + len;
  }
  if (!path) writePrepended(w, raw, 0, 0, asn);
  w.u8(0x7c); // '|'
  for (let c = 0; c < SELF.length; c++) w.u8(SELF.charCodeAt(c));
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
        // To an external peer, a set that arrived as bytes goes on as bytes (exportKeyFromRaw).
        const key = this.to.ebgp && !from.local ? exportKeyFromRaw(bestRa.key, this.me.asn) : undefined;
        if (key !== undefined) ra = this.table.internKey(key, SELF_HOPS);
        else {
          const e = exportAttrs(bestRa.attrs, bestRa.nextHops, from, this.to, this.policy, this.me);
          const hops = e.nextHops ?? SELF_HOPS;
          ra = this.table.intern(e.attrs, hops, exportKey(e.attrs, hops));
        }
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
