/**
 * Path attributes (RFC 4271 §4.3, §5): one descriptor per type code — name, the Optional and
 * Transitive flags it must carry, a decoder, and the RFC 7606 action for a malformed instance —
 * instead of a class per attribute (STYLE.md §9; BIRD's bgp_attr_table is the model).
 *
 * Attributes decoded: ORIGIN, AS_PATH (sets, sequences, confederation segments; 2- or 4-octet),
 * NEXT_HOP, MULTI_EXIT_DISC, LOCAL_PREF, ATOMIC_AGGREGATE, AGGREGATOR, COMMUNITIES (RFC 1997),
 * ORIGINATOR_ID and CLUSTER_LIST (RFC 4456), EXTENDED_COMMUNITIES (RFC 4360), AS4_PATH and
 * AS4_AGGREGATOR (RFC 6793), LARGE_COMMUNITY (RFC 8092). MP_REACH_NLRI and MP_UNREACH_NLRI are
 * located here and decoded by update.ts. Unknown optional attributes are kept as bytes with their
 * flags; an unknown well-known attribute is 3/2, session reset.
 *
 * The typed model always holds 4-octet AS numbers. On a session without the 4-octet capability
 * the decoder merges AS4_PATH/AS4_AGGREGATOR into AS_PATH/AGGREGATOR (RFC 6793 §4.2.3) and the
 * encoder splits them again, writing AS_TRANS where a number does not fit (§4.2.2). On a 4-octet
 * session a received AS4_PATH or AS4_AGGREGATOR is discarded (§4.1).
 *
 * Error handling per attribute (RFC 7606 §7, RFC 6793 §6, RFC 8092 §5); data is the whole
 * attribute (flags, type, length, value) as RFC 4271 §6.3 asks:
 *   ORIGIN length or value           3/5, 3/6   treat-as-withdraw
 *   AS_PATH malformed                3/11       treat-as-withdraw
 *   NEXT_HOP length / martian        3/5, 3/8   treat-as-withdraw
 *   MED, LOCAL_PREF, ORIGINATOR_ID   3/5        treat-as-withdraw
 *   COMMUNITIES, CLUSTER_LIST,
 *   EXTENDED_COMMUNITIES, LARGE_COMMUNITY
 *     length 0 or not a multiple     3/5        treat-as-withdraw
 *   ATOMIC_AGGREGATE, AGGREGATOR,
 *   AS4_PATH, AS4_AGGREGATOR         3/5, 3/9   attribute discard
 *   MP_REACH / MP_UNREACH            3/9, 3/10  session reset
 *   wrong Optional/Transitive flags, or Partial on a non-transitive: 3/4 with the attribute's own
 *   action (RFC 7606 §3(c)).
 * Checks that depend on the peer (LOCAL_PREF or ORIGINATOR_ID from an eBGP peer, first AS of an
 * eBGP path, confederation segments from outside, our own address as NEXT_HOP) are in
 * validate.ts, not here.
 */
import { formatIpv4, parseIpv4 } from '../../net/addr.js';
import {
  AS_TRANS,
  AsPathSegmentType,
  AttrFlag,
  AttrType,
  ErrorCode,
  Origin,
  UpdateSubcode,
} from './constants.js';
import type { CodecContext } from './context.js';
import { BgpError, ErrorAction } from './error.js';
import type { Writer } from './writer.js';

export interface AsPathSegment {
  type: AsPathSegmentType;
  asns: number[];
}

export interface Aggregator {
  asn: number;
  address: string;
}

/** A large community (RFC 8092): global administrator, local data 1, local data 2. */
export type LargeCommunity = [number, number, number];

export interface UnknownAttribute {
  flags: number;
  type: number;
  value: Buffer;
}

export interface PathAttributes {
  origin?: Origin;
  asPath?: AsPathSegment[];
  /** IPv4 NEXT_HOP (the classic attribute). IPv6 next hops travel in MP_REACH_NLRI. */
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: Aggregator;
  /** RFC 1997 communities as uint32 (65000:100 = 65000 * 65536 + 100). */
  communities?: number[];
  originatorId?: string;
  clusterList?: string[];
  /** RFC 4360 extended communities, each 8 octets as a bigint. */
  extCommunities?: bigint[];
  largeCommunities?: LargeCommunity[];
  /** Optional attributes this codec does not interpret, in type order. */
  unknown?: UnknownAttribute[];
}

/** The state of decoding one UPDATE's attributes. */
export interface AttrParseState {
  buf: Buffer;
  ctx: CodecContext;
  attrs: PathAttributes;
  errors: BgpError[];
  action: ErrorAction;
  /** [value start, value end, attribute start] of MP_REACH / MP_UNREACH, for update.ts. */
  mpReach?: [number, number, number | undefined];
  mpUnreach?: [number, number, number | undefined];
  as4Path?: AsPathSegment[];
  as4Aggregator?: Aggregator;
  /** Set when attribute framing broke (RFC 7606 §4): mandatory-attribute checks are moot. */
  framingError: boolean;
  /** Offset of the header of the attribute being decoded (its flags octet). */
  attrStart?: number;
}

/**
 * A fresh parse state, every field there from the start: one shape for every UPDATE, and no
 * property storage grown as the decoders set the optional ones.
 */
export function parseState(buf: Buffer, ctx: CodecContext): AttrParseState {
  return {
    buf,
    ctx,
    attrs: {},
    errors: [],
    action: ErrorAction.None,
    mpReach: undefined,
    mpUnreach: undefined,
    as4Path: undefined,
    as4Aggregator: undefined,
    framingError: false,
    attrStart: undefined,
  };
}

type Decode = (s: AttrParseState, p: number, len: number, fault: Fault) => void;
type Fault = (subcode: number, why: string) => never;

interface AttrDesc {
  name: string;
  /** The Optional and Transitive bits this type must carry. */
  flags: number;
  /** RFC 7606 action for a malformed instance. */
  malformed: ErrorAction;
  decode: Decode;
}

const WELL_KNOWN = AttrFlag.Transitive;
const OPT_TRANS = AttrFlag.Optional | AttrFlag.Transitive;
const OPT_NON_TRANS = AttrFlag.Optional;
const TAW = ErrorAction.TreatAsWithdraw;
const DISCARD = ErrorAction.AttributeDiscard;
const RESET = ErrorAction.SessionReset;

function exactLength(n: number, len: number, fault: Fault): void {
  if (len !== n) fault(UpdateSubcode.AttributeLengthError, `length ${len}, expected ${n}`);
}

function multipleOf(n: number, len: number, fault: Fault): void {
  if (len === 0 || len % n !== 0)
    fault(UpdateSubcode.AttributeLengthError, `length ${len} is not a non-zero multiple of ${n}`);
}

/** RFC 7606 §7.2: segments must be well formed; the AS size is 2 or 4 octets. */
export function decodeAsPath(
  buf: Buffer,
  p: number,
  end: number,
  asSize: number,
  fault: Fault,
): AsPathSegment[] {
  // Most paths are one segment: an array of exactly one, not one grown by a push.
  let first: AsPathSegment | undefined;
  let more: AsPathSegment[] | undefined;
  while (p < end) {
    if (end - p < 2)
      fault(UpdateSubcode.MalformedAsPath, 'a single octet left where a segment header belongs');
    const type = buf[p]!;
    const count = buf[p + 1]!;
    if (type < AsPathSegmentType.AsSet || type > AsPathSegmentType.AsConfedSet)
      fault(UpdateSubcode.MalformedAsPath, `unknown segment type ${type}`);
    if (count === 0) fault(UpdateSubcode.MalformedAsPath, 'segment of length 0');
    p += 2;
    if (p + count * asSize > end) fault(UpdateSubcode.MalformedAsPath, 'segment overruns the attribute');
    const asns = new Array<number>(count);
    for (let i = 0; i < count; i++, p += asSize)
      asns[i] = asSize === 4 ? buf.readUInt32BE(p) : buf.readUInt16BE(p);
    const segment = { type, asns };
    if (first === undefined) first = segment;
    else if (more === undefined) more = [first, segment];
    else more.push(segment);
  }
  return more ?? (first ? [first] : []);
}

/** Whether a path has an AS_CONFED_SEQUENCE or AS_CONFED_SET (RFC 5065); a loop, no closure. */
export function hasConfedSegment(path: readonly AsPathSegment[]): boolean {
  for (let i = 0; i < path.length; i++) {
    const t = path[i]!.type;
    if (t === AsPathSegmentType.AsConfedSequence || t === AsPathSegmentType.AsConfedSet) return true;
  }
  return false;
}

function readAggregator(s: AttrParseState, p: number, asSize: number): Aggregator {
  const asn = asSize === 4 ? s.buf.readUInt32BE(p) : s.buf.readUInt16BE(p);
  return { asn, address: formatIpv4(s.buf.readUInt32BE(p + asSize)) };
}

/** RFC 1122 §3.2.1.3 / RFC 7606 §7.3: a next hop nobody can forward to. */
export function isMartianIpv4(a: number): boolean {
  const first = a >>> 24;
  return a === 0 || first === 0 || first === 127 || first >= 224;
}

const table: (AttrDesc | undefined)[] = [];
const def = (type: AttrType, d: AttrDesc) => {
  table[type] = d;
};

def(AttrType.Origin, {
  name: 'ORIGIN',
  flags: WELL_KNOWN,
  malformed: TAW,
  decode(s, p, len, fault) {
    exactLength(1, len, fault);
    const v = s.buf[p]!;
    if (v > Origin.Incomplete) fault(UpdateSubcode.InvalidOriginAttribute, `undefined ORIGIN ${v}`);
    s.attrs.origin = v;
  },
});

def(AttrType.AsPath, {
  name: 'AS_PATH',
  flags: WELL_KNOWN,
  malformed: TAW,
  decode(s, p, len, fault) {
    s.attrs.asPath = decodeAsPath(s.buf, p, p + len, s.ctx.as4 ? 4 : 2, fault);
  },
});

def(AttrType.NextHop, {
  name: 'NEXT_HOP',
  flags: WELL_KNOWN,
  malformed: TAW,
  decode(s, p, len, fault) {
    exactLength(4, len, fault);
    const a = s.buf.readUInt32BE(p);
    if (isMartianIpv4(a))
      fault(UpdateSubcode.InvalidNextHopAttribute, `NEXT_HOP ${formatIpv4(a)} is not a usable address`);
    // A peer's UPDATEs mostly carry one NEXT_HOP: one string for all of them, not one each.
    if (a !== lastNextHop) {
      lastNextHop = a;
      lastNextHopText = formatIpv4(a);
    }
    s.attrs.nextHop = lastNextHopText;
  },
});

/** 0 is never a usable NEXT_HOP (isMartianIpv4), so the first one always makes its text. */
let lastNextHop = 0;
let lastNextHopText = '';

def(AttrType.MultiExitDisc, {
  name: 'MULTI_EXIT_DISC',
  flags: OPT_NON_TRANS,
  malformed: TAW,
  decode(s, p, len, fault) {
    exactLength(4, len, fault);
    s.attrs.med = s.buf.readUInt32BE(p);
  },
});

def(AttrType.LocalPref, {
  name: 'LOCAL_PREF',
  flags: WELL_KNOWN,
  malformed: TAW,
  decode(s, p, len, fault) {
    exactLength(4, len, fault);
    s.attrs.localPref = s.buf.readUInt32BE(p);
  },
});

def(AttrType.AtomicAggregate, {
  name: 'ATOMIC_AGGREGATE',
  flags: WELL_KNOWN,
  malformed: DISCARD,
  decode(s, _p, len, fault) {
    exactLength(0, len, fault);
    s.attrs.atomicAggregate = true;
  },
});

def(AttrType.Aggregator, {
  name: 'AGGREGATOR',
  flags: OPT_TRANS,
  malformed: DISCARD,
  decode(s, p, len, fault) {
    const asSize = s.ctx.as4 ? 4 : 2;
    exactLength(asSize + 4, len, fault);
    s.attrs.aggregator = readAggregator(s, p, asSize);
  },
});

def(AttrType.Communities, {
  name: 'COMMUNITIES',
  flags: OPT_TRANS,
  malformed: TAW,
  decode(s, p, len, fault) {
    multipleOf(4, len, fault);
    const out = new Array<number>(len / 4);
    for (let i = 0; i < out.length; i++) out[i] = s.buf.readUInt32BE(p + i * 4);
    s.attrs.communities = out;
  },
});

def(AttrType.OriginatorId, {
  name: 'ORIGINATOR_ID',
  flags: OPT_NON_TRANS,
  malformed: TAW,
  decode(s, p, len, fault) {
    exactLength(4, len, fault);
    s.attrs.originatorId = formatIpv4(s.buf.readUInt32BE(p));
  },
});

def(AttrType.ClusterList, {
  name: 'CLUSTER_LIST',
  flags: OPT_NON_TRANS,
  malformed: TAW,
  decode(s, p, len, fault) {
    multipleOf(4, len, fault);
    const out: string[] = [];
    for (let i = 0; i < len; i += 4) out.push(formatIpv4(s.buf.readUInt32BE(p + i)));
    s.attrs.clusterList = out;
  },
});

def(AttrType.MpReachNlri, {
  name: 'MP_REACH_NLRI',
  flags: OPT_NON_TRANS,
  malformed: RESET,
  decode(s, p, len, fault) {
    if (len < 5) fault(UpdateSubcode.OptionalAttributeError, `MP_REACH_NLRI of ${len} octets`);
    s.mpReach = [p, p + len, s.attrStart];
  },
});

def(AttrType.MpUnreachNlri, {
  name: 'MP_UNREACH_NLRI',
  flags: OPT_NON_TRANS,
  malformed: RESET,
  decode(s, p, len, fault) {
    if (len < 3) fault(UpdateSubcode.OptionalAttributeError, `MP_UNREACH_NLRI of ${len} octets`);
    s.mpUnreach = [p, p + len, s.attrStart];
  },
});

def(AttrType.ExtendedCommunities, {
  name: 'EXTENDED_COMMUNITIES',
  flags: OPT_TRANS,
  malformed: TAW,
  decode(s, p, len, fault) {
    multipleOf(8, len, fault);
    const out: bigint[] = [];
    for (let i = 0; i < len; i += 8) out.push(s.buf.readBigUInt64BE(p + i));
    s.attrs.extCommunities = out;
  },
});

def(AttrType.As4Path, {
  name: 'AS4_PATH',
  flags: OPT_TRANS,
  malformed: DISCARD,
  decode(s, p, len, fault) {
    const segs = decodeAsPath(s.buf, p, p + len, 4, (_sub, why) =>
      fault(UpdateSubcode.OptionalAttributeError, why),
    );
    if (hasConfedSegment(segs))
      fault(UpdateSubcode.OptionalAttributeError, 'AS4_PATH carries confederation segments');
    if (!s.ctx.as4) s.as4Path = segs;
  },
});

def(AttrType.As4Aggregator, {
  name: 'AS4_AGGREGATOR',
  flags: OPT_TRANS,
  malformed: DISCARD,
  decode(s, p, len, fault) {
    exactLength(8, len, fault);
    if (!s.ctx.as4) s.as4Aggregator = readAggregator(s, p, 4);
  },
});

def(AttrType.LargeCommunity, {
  name: 'LARGE_COMMUNITY',
  flags: OPT_TRANS,
  malformed: TAW,
  decode(s, p, len, fault) {
    multipleOf(12, len, fault);
    const out: LargeCommunity[] = [];
    for (let i = 0; i < len; i += 12) {
      out.push([s.buf.readUInt32BE(p + i), s.buf.readUInt32BE(p + i + 4), s.buf.readUInt32BE(p + i + 8)]);
    }
    s.attrs.largeCommunities = out;
  },
});

export function attrName(type: number): string {
  return table[type]?.name ?? `attribute ${type}`;
}

/** Record a non-fatal error; the strongest action wins (RFC 7606 §3(h)). */
export function noteError(s: AttrParseState, err: BgpError): void {
  if (err.action === ErrorAction.SessionReset) throw err;
  s.errors.push(err);
  if (err.action > s.action) s.action = err.action;
}

/**
 * The attribute being decoded, for `fault`: module state rather than a closure made per UPDATE
 * (decoding never runs inside another decoding: no I/O, no callbacks).
 */
let curBuf: Buffer = Buffer.alloc(0);
let curDesc: AttrDesc | undefined;
let curType = 0;
let curStart = 0;
let curEnd = 0;

/** The malformed-attribute error for the attribute being decoded (RFC 7606: its own action). */
const fault: Fault = (subcode, why) => {
  throw new BgpError(
    ErrorCode.UpdateMessage,
    subcode,
    curBuf.subarray(curStart, curEnd),
    `${curDesc!.name}: ${why}`,
    curDesc!.malformed,
    curType,
  );
};

/**
 * Decode the path attributes in [p, end). Throws a BgpError for a session reset; milder errors
 * land in `s.errors`/`s.action`.
 */
export function decodeAttributes(s: AttrParseState, p: number, end: number): void {
  const buf = s.buf;
  // Types seen so far: a bit each in two numbers for types 0-63 (every type this codec knows),
  // an array only for an UPDATE that carries a higher one. No array per UPDATE.
  let seen0 = 0;
  let seen1 = 0;
  let seenHigh: Uint8Array | undefined;
  while (p < end) {
    // RFC 7606 §4: too few octets for a header, or a length past the end, is a framing error.
    const flags = buf[p]!;
    const hdr = flags & AttrFlag.ExtendedLength ? 4 : 3;
    if (end - p < hdr) {
      s.framingError = true;
      noteError(
        s,
        new BgpError(
          ErrorCode.UpdateMessage,
          UpdateSubcode.MalformedAttributeList,
          undefined,
          'attribute header runs past the attributes',
          TAW,
        ),
      );
      return;
    }
    const type = buf[p + 1]!;
    const len = hdr === 4 ? buf.readUInt16BE(p + 2) : buf[p + 2]!;
    const v = p + hdr;
    if (v + len > end) {
      s.framingError = true;
      noteError(
        s,
        new BgpError(
          ErrorCode.UpdateMessage,
          UpdateSubcode.MalformedAttributeList,
          undefined,
          `${attrName(type)} length ${len} runs past the attributes`,
          TAW,
          type,
        ),
      );
      return;
    }
    const attrStart = p;
    s.attrStart = attrStart;
    p = v + len;
    // RFC 7606 §3(g): a repeated MP_REACH/MP_UNREACH resets; any other repeat is dropped.
    let dup: boolean;
    const bit = 1 << type; // JavaScript shifts by the count modulo 32: type & 31.
    if (type < 32) {
      dup = (seen0 & bit) !== 0;
      seen0 |= bit;
    } else if (type < 64) {
      dup = (seen1 & bit) !== 0;
      seen1 |= bit;
    } else {
      seenHigh ??= new Uint8Array(32);
      const b = 1 << (type & 7);
      dup = (seenHigh[type >> 3]! & b) !== 0;
      seenHigh[type >> 3]! |= b;
    }
    if (dup) {
      if (type === AttrType.MpReachNlri || type === AttrType.MpUnreachNlri) {
        throw new BgpError(
          ErrorCode.UpdateMessage,
          UpdateSubcode.MalformedAttributeList,
          undefined,
          `${attrName(type)} appears twice`,
          RESET,
          type,
        );
      }
      noteError(
        s,
        new BgpError(
          ErrorCode.UpdateMessage,
          UpdateSubcode.MalformedAttributeList,
          undefined,
          `${attrName(type)} appears twice; later copy discarded`,
          DISCARD,
          type,
        ),
      );
      continue;
    }
    const desc = table[type];
    if (!desc) {
      if (!(flags & AttrFlag.Optional)) {
        throw new BgpError(
          ErrorCode.UpdateMessage,
          UpdateSubcode.UnrecognizedWellKnownAttribute,
          buf.subarray(attrStart, v + len),
          `unrecognized well-known attribute ${type}`,
          RESET,
          type,
        );
      }
      if (!s.attrs.unknown) s.attrs.unknown = [];
      s.attrs.unknown.push({
        flags: flags & 0xf0 & ~AttrFlag.ExtendedLength,
        type,
        value: Buffer.from(buf.subarray(v, v + len)),
      });
      continue;
    }
    curBuf = buf;
    curDesc = desc;
    curType = type;
    curStart = attrStart;
    curEnd = v + len;
    try {
      const ot = flags & (AttrFlag.Optional | AttrFlag.Transitive);
      if (ot !== desc.flags || (flags & AttrFlag.Partial && desc.flags !== OPT_TRANS)) {
        fault(UpdateSubcode.AttributeFlagsError, `flags 0x${flags.toString(16)} conflict with the type`);
      }
      desc.decode(s, v, len, fault);
    } catch (err) {
      if (!(err instanceof BgpError)) throw err;
      noteError(s, err);
    }
  }
}

/**
 * The path attributes in buf[start, end) decoded as an UPDATE's are (on a 2-octet session, with
 * AS4_PATH merged): the UPDATE decoder's, and for attributes kept as bytes (rib/attrs.ts). Throws
 * as decodeAttributes.
 */
export function decodeAttributeBytes(
  buf: Buffer,
  ctx: CodecContext,
  start = 0,
  end = buf.length,
): AttrParseState {
  const s = parseState(buf, ctx);
  decodeAttributes(s, start, end);
  if (!ctx.as4) mergeAs4(s);
  return s;
}

/** RFC 6793 §4.2.3: rebuild the 4-octet path from AS_PATH and AS4_PATH on a 2-octet session. */
export function mergeAs4(s: AttrParseState): void {
  const a = s.attrs;
  if (s.as4Aggregator) {
    if (a.aggregator && a.aggregator.asn !== AS_TRANS) {
      // The AGGREGATOR is from a 2-octet speaker after the 4-octet one: both AS4 attributes are stale.
      s.as4Aggregator = undefined;
      s.as4Path = undefined;
    } else if (a.aggregator) {
      a.aggregator = s.as4Aggregator;
    }
  }
  if (!s.as4Path || !a.asPath) return;
  const n = pathLength(a.asPath);
  const n4 = pathLength(s.as4Path);
  if (n < n4) return;
  // Keep the leading (n - n4) AS numbers of AS_PATH, and every confederation segment, then AS4_PATH.
  let keep = n - n4;
  const merged: AsPathSegment[] = [];
  for (const seg of a.asPath) {
    if (seg.type === AsPathSegmentType.AsConfedSequence || seg.type === AsPathSegmentType.AsConfedSet) {
      merged.push(seg);
      continue;
    }
    if (keep === 0) break;
    if (seg.type === AsPathSegmentType.AsSet) {
      merged.push(seg);
      keep--;
    } else {
      const take = Math.min(keep, seg.asns.length);
      merged.push({ type: seg.type, asns: seg.asns.slice(0, take) });
      keep -= take;
    }
  }
  // Segments are appended as they are: two adjacent AS_SEQUENCEs mean the same as one.
  for (const seg of s.as4Path) merged.push({ type: seg.type, asns: seg.asns.slice() });
  a.asPath = merged;
}

/** RFC 4271 §9.1.2.2(a): AS_SET counts 1, confederation segments 0 (RFC 5065 §5.3). */
export function pathLength(path: readonly AsPathSegment[]): number {
  let n = 0;
  for (const seg of path) {
    if (seg.type === AsPathSegmentType.AsSequence) n += seg.asns.length;
    else if (seg.type === AsPathSegmentType.AsSet) n += 1;
  }
  return n;
}

/**
 * Unknown attributes as they go to another peer (RFC 4271 §5): an unknown optional transitive
 * attribute passes on with the Partial bit set; an unknown optional non-transitive one is dropped.
 */
export function forwardUnknown(
  unknown: readonly UnknownAttribute[] | undefined,
): UnknownAttribute[] | undefined {
  if (!unknown) return undefined;
  const out = unknown
    .filter((u) => (u.flags & AttrFlag.Transitive) !== 0)
    .map((u) => ({ flags: u.flags | AttrFlag.Partial, type: u.type, value: u.value }));
  return out.length ? out : undefined;
}

// ---- encoding ----

function writeAttr(w: Writer, flags: number, type: number, body: () => void): void {
  const start = attrBegin(w, flags, type);
  body();
  attrEnd(w, start);
}

/** An attribute's header, its length to be filled in by `attrEnd`; returns where it starts. */
function attrBegin(w: Writer, flags: number, type: number): number {
  const start = w.pos;
  w.u8(flags & ~AttrFlag.ExtendedLength);
  w.u8(type);
  w.u8(0);
  return start;
}

/** The length of the attribute begun at `start`: one octet, or two with Extended Length. */
function attrEnd(w: Writer, start: number): void {
  const v = start + 3;
  const len = w.pos - v;
  if (len > 255) {
    w.ensure(1);
    w.buf.copyWithin(v + 1, v, w.pos);
    w.pos++;
    w.buf[start] = w.buf[start]! | AttrFlag.ExtendedLength;
    w.patch16(start + 2, len);
  } else {
    w.patch8(start + 2, len);
  }
}

function writeAsPath(w: Writer, path: readonly AsPathSegment[], asSize: number): void {
  for (const seg of path) {
    const asns = seg.asns;
    // Segments of at most 255 AS numbers (RFC 4271 §4.3); an empty one is not written.
    for (let i = 0; i < asns.length; i += 255) {
      const end = Math.min(asns.length, i + 255);
      w.u8(seg.type);
      w.u8(end - i);
      for (let k = i; k < end; k++) {
        const asn = asns[k]!;
        if (asSize === 4) w.u32(asn);
        else w.u16(asn > 0xffff ? AS_TRANS : asn);
      }
    }
  }
}

function needsAs4(path: readonly AsPathSegment[] | undefined): boolean {
  return !!path?.some((g) => g.asns.some((a) => a > 0xffff));
}

/** RFC 6793 §4.2.2: AS4_PATH carries no confederation segments. */
function as4PathOf(path: readonly AsPathSegment[]): AsPathSegment[] {
  return path.filter((g) => g.type === AsPathSegmentType.AsSequence || g.type === AsPathSegmentType.AsSet);
}

/**
 * Write every attribute but MP_REACH/MP_UNREACH, in ascending type order (RFC 4271 §5), with
 * AS4_PATH/AS4_AGGREGATOR added on a 2-octet session where needed.
 */
export function encodeAttributes(w: Writer, a: PathAttributes, ctx: CodecContext): void {
  // No closures: the speaker encodes every exported set (export.ts exportKey, packBatch).
  const unknown = a.unknown;
  let u = 0;
  const asSize = ctx.as4 ? 4 : 2;
  let at: number;
  if (a.origin !== undefined) {
    at = attrBegin(w, WELL_KNOWN, AttrType.Origin);
    w.u8(a.origin);
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.AsPath);
  if (a.asPath !== undefined) {
    at = attrBegin(w, WELL_KNOWN, AttrType.AsPath);
    writeAsPath(w, a.asPath, asSize);
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.NextHop);
  if (a.nextHop !== undefined) u32Attr(w, WELL_KNOWN, AttrType.NextHop, parseIpv4(a.nextHop));
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.MultiExitDisc);
  if (a.med !== undefined) u32Attr(w, OPT_NON_TRANS, AttrType.MultiExitDisc, a.med);
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.LocalPref);
  if (a.localPref !== undefined) u32Attr(w, WELL_KNOWN, AttrType.LocalPref, a.localPref);
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.AtomicAggregate);
  if (a.atomicAggregate) attrEnd(w, attrBegin(w, WELL_KNOWN, AttrType.AtomicAggregate));
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.Aggregator);
  const agg = a.aggregator;
  if (agg) {
    at = attrBegin(w, OPT_TRANS, AttrType.Aggregator);
    if (asSize === 4) w.u32(agg.asn);
    else w.u16(agg.asn > 0xffff ? AS_TRANS : agg.asn);
    w.u32(parseIpv4(agg.address));
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.Communities);
  const comms = a.communities;
  if (comms?.length) {
    at = attrBegin(w, OPT_TRANS, AttrType.Communities);
    for (let i = 0; i < comms.length; i++) w.u32(comms[i]!);
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.OriginatorId);
  if (a.originatorId !== undefined)
    u32Attr(w, OPT_NON_TRANS, AttrType.OriginatorId, parseIpv4(a.originatorId));
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.ClusterList);
  if (a.clusterList?.length) {
    at = attrBegin(w, OPT_NON_TRANS, AttrType.ClusterList);
    for (const c of a.clusterList) w.u32(parseIpv4(c));
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.ExtendedCommunities);
  if (a.extCommunities?.length) {
    at = attrBegin(w, OPT_TRANS, AttrType.ExtendedCommunities);
    for (const c of a.extCommunities) {
      w.ensure(8);
      w.buf.writeBigUInt64BE(c, w.pos);
      w.pos += 8;
    }
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.As4Path);
  if (!ctx.as4 && a.asPath && needsAs4(a.asPath)) {
    const p4 = as4PathOf(a.asPath);
    if (p4.length) {
      at = attrBegin(w, OPT_TRANS, AttrType.As4Path);
      writeAsPath(w, p4, 4);
      attrEnd(w, at);
    }
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.As4Aggregator);
  if (!ctx.as4 && agg && agg.asn > 0xffff) {
    at = attrBegin(w, OPT_TRANS, AttrType.As4Aggregator);
    w.u32(agg.asn);
    w.u32(parseIpv4(agg.address));
    attrEnd(w, at);
  }
  if (unknown) u = unknownUpTo(w, unknown, u, AttrType.LargeCommunity);
  if (a.largeCommunities?.length) {
    at = attrBegin(w, OPT_TRANS, AttrType.LargeCommunity);
    for (const [g, l1, l2] of a.largeCommunities) {
      w.u32(g);
      w.u32(l1);
      w.u32(l2);
    }
    attrEnd(w, at);
  }
  if (unknown) unknownUpTo(w, unknown, u, 256);
}

/** An attribute whose value is one 32-bit number (NEXT_HOP, MED, LOCAL_PREF, ORIGINATOR_ID). */
function u32Attr(w: Writer, flags: number, type: number, value: number): void {
  w.u8(flags & ~AttrFlag.ExtendedLength);
  w.u8(type);
  w.u8(4);
  w.u32(value);
}

/** Unknown attributes of a type below `type`, from index `u`, in order; returns the next index. */
function unknownUpTo(w: Writer, unknown: readonly UnknownAttribute[], u: number, type: number): number {
  while (u < unknown.length && unknown[u]!.type < type) {
    const x = unknown[u++]!;
    const at = attrBegin(w, x.flags, x.type);
    w.bytes(x.value);
    attrEnd(w, at);
  }
  return u;
}

export { writeAttr };

// ---- formatting for humans (status, routes, tests) ----

export function formatCommunity(c: number): string {
  return `${Math.floor(c / 65536)}:${c % 65536}`;
}

export function formatLargeCommunity(c: LargeCommunity): string {
  return `${c[0]}:${c[1]}:${c[2]}`;
}

/** RFC 4360 / RFC 5668: route target and route origin of the common types; else hex. */
export function formatExtCommunity(c: bigint): string {
  const type = Number(c >> 56n) & 0xff;
  const sub = Number(c >> 48n) & 0xff;
  const kind = sub === 2 ? 'rt' : sub === 3 ? 'ro' : undefined;
  if (kind && type === 0x00) return `${kind} ${Number((c >> 32n) & 0xffffn)}:${Number(c & 0xffffffffn)}`;
  if (kind && type === 0x01)
    return `${kind} ${formatIpv4(Number((c >> 16n) & 0xffffffffn))}:${Number(c & 0xffffn)}`;
  if (kind && type === 0x02) return `${kind} ${Number((c >> 16n) & 0xffffffffn)}:${Number(c & 0xffffn)}`;
  return `0x${c.toString(16).padStart(16, '0')}`;
}

export function formatAsPath(path: readonly AsPathSegment[] | undefined): string {
  if (!path) return '';
  return path
    .map((g) => {
      const s = g.asns.join(' ');
      switch (g.type) {
        case AsPathSegmentType.AsSet:
          return `{${s}}`;
        case AsPathSegmentType.AsConfedSequence:
          return `(${s})`;
        case AsPathSegmentType.AsConfedSet:
          return `[${s}]`;
        default:
          return s;
      }
    })
    .join(' ');
}
