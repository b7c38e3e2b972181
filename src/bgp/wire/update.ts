/**
 * UPDATE (RFC 4271 §4.3) with multiprotocol reachability (RFC 4760), ADD-PATH (RFC 7911),
 * End-of-RIB (RFC 4724 §2) and the revised error handling of RFC 7606.
 *
 * Decoding first locates the three sections as offsets (withdrawn routes, path attributes, NLRI)
 * and only then decodes (BIRD's bgp_rx_update does the same). Checks, in order:
 *   withdrawn length + attribute length + 23 > message length    3/1, session reset (§6.3)
 *   NLRI syntax (length over 32/128, overrun), any NLRI field     3/10, session reset (7606 §5.3)
 *   attributes: see attributes.ts; framing errors are treat-as-withdraw (7606 §4)
 *   well-known mandatory attribute missing where NLRI is present 3/3 (data: the type code),
 *     treat-as-withdraw (7606 §3(d)); NEXT_HOP is needed only for NLRI in the NLRI field
 *   treat-as-withdraw with no NLRI anywhere to withdraw           session reset (7606 §5.2: the
 *     error may hide an MP_REACH_NLRI we failed to find — BIRD does the same)
 *   MP_REACH next hop length not 4/16/32                          3/9, session reset (7606 §7.11)
 * An UPDATE with treat-as-withdraw decodes completely; `action` says so and the session turns
 * its announcements into withdrawals. `attrBytes` is a view of the raw attribute section: equal
 * bytes mean equal attributes, which is how the RIB interns attribute sets without decoding twice.
 *
 * Encoding: `encodeUpdate` writes one message exactly as given; `packUpdates` writes as many
 * messages as needed for a set of prefixes sharing one attribute set, each filled to the
 * negotiated maximum size (RFC 8654), announcements in the NLRI field for IPv4 and in
 * MP_REACH_NLRI for IPv6. MP attributes are written first (RFC 7606 §5.1).
 */
import { AddrError, formatIpv4, formatIpv6, type PrefixKey, parseIpv4, parseIpv6 } from '../../net/addr.js';
import {
  AttrFlag,
  AttrType,
  ErrorCode,
  type Family,
  family,
  HEADER_LEN,
  IPV4_UNICAST,
  IPV6_UNICAST,
  MsgType,
  UpdateSubcode,
} from './constants.js';
import type { CodecContext } from './context.js';
import {
  type AttrParseState,
  decodeAttributeBytes,
  encodeAttributes,
  noteError,
  type PathAttributes,
  writeAttr,
} from './attributes.js';
import { BgpError, ErrorAction } from './error.js';
import { decodeNlri4, decodeNlri6, nlri4Size, nlri6Size, writeNlri4, writeNlri6 } from './nlri.js';
import { finishMessage, writeHeader } from './open.js';
import { Writer } from './writer.js';

export interface MpReach {
  afi: number;
  safi: number;
  /** Next hops as text: one (IPv4, or IPv6 global) or two (IPv6 global, link-local). */
  nextHops: string[];
  prefixes: PrefixKey[];
  pathIds?: number[];
  /** For a family this codec does not parse: the bytes after the next hop and reserved octet. */
  raw?: Buffer;
}

export interface MpUnreach {
  afi: number;
  safi: number;
  prefixes: PrefixKey[];
  pathIds?: number[];
  raw?: Buffer;
}

export interface Update {
  /** IPv4 unicast prefixes in the Withdrawn Routes field, as keys. */
  withdrawn: number[];
  withdrawnIds?: number[];
  attrs: PathAttributes;
  /** IPv4 unicast prefixes in the NLRI field, as keys. */
  nlri: number[];
  nlriIds?: number[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
}

export interface DecodedUpdate extends Update {
  /** Errors that did not reset the session (RFC 7606), mildest to strongest in arrival order. */
  errors: BgpError[];
  /** The strongest action among `errors` (None when there are none). */
  action: ErrorAction;
  /** End-of-RIB marker (RFC 4724 §2) for this family, if the UPDATE is one. */
  endOfRib?: Family;
  /** View of the raw path attribute section (valid as long as the message buffer). */
  attrBytes: Buffer;
}

const updateError = (subcode: number, msg: string, data?: Uint8Array, action = ErrorAction.SessionReset) =>
  new BgpError(ErrorCode.UpdateMessage, subcode, data, msg, action);

function decodeNextHops(buf: Buffer, p: number, len: number, data: Buffer): string[] {
  if (len === 4) return [formatIpv4(buf.readUInt32BE(p))];
  if (len === 16) return [formatIpv6(buf, p)];
  if (len === 32) return [formatIpv6(buf, p), formatIpv6(buf, p + 16)];
  throw updateError(
    UpdateSubcode.OptionalAttributeError,
    `MP_REACH_NLRI next hop length ${len} is not 4, 16 or 32`,
    data,
  );
}

function decodeMpNlri(
  buf: Buffer,
  fam: Family,
  p: number,
  end: number,
  ctx: CodecContext,
): { prefixes: PrefixKey[]; pathIds?: number[]; raw?: Buffer } {
  const ids = ctx.addPathRx.has(fam) ? ([] as number[]) : undefined;
  if (fam === IPV4_UNICAST) {
    const keys: number[] = [];
    decodeNlri4(buf, p, end, keys, ids);
    return ids ? { prefixes: keys, pathIds: ids } : { prefixes: keys };
  }
  if (fam === IPV6_UNICAST) {
    const keys: string[] = [];
    decodeNlri6(buf, p, end, keys, ids);
    return ids ? { prefixes: keys, pathIds: ids } : { prefixes: keys };
  }
  return { prefixes: [], raw: Buffer.from(buf.subarray(p, end)) };
}

export function decodeUpdate(buf: Buffer, start: number, end: number, ctx: CodecContext): DecodedUpdate {
  const p0 = start + HEADER_LEN;
  if (end - p0 < 4) throw updateError(UpdateSubcode.MalformedAttributeList, 'UPDATE too short');
  const wlen = buf.readUInt16BE(p0);
  const ws = p0 + 2;
  const we = ws + wlen;
  if (we + 2 > end)
    throw updateError(
      UpdateSubcode.MalformedAttributeList,
      `withdrawn routes length ${wlen} runs past the message`,
    );
  const alen = buf.readUInt16BE(we);
  const as = we + 2;
  const ae = as + alen;
  if (ae > end)
    throw updateError(
      UpdateSubcode.MalformedAttributeList,
      `total path attribute length ${alen} runs past the message`,
    );

  const withdrawnIds = ctx.addPathRx.has(IPV4_UNICAST) ? ([] as number[]) : undefined;
  const withdrawn: number[] = [];
  decodeNlri4(buf, ws, we, withdrawn, withdrawnIds);
  const nlriIds = withdrawnIds ? ([] as number[]) : undefined;
  const nlri: number[] = [];
  decodeNlri4(buf, ae, end, nlri, nlriIds);

  const s = decodeAttributeBytes(buf, ctx, as, ae);

  // Every field from the start, also those that are undefined: one shape for every UPDATE, so
  // that the code reading them is compiled for one (an End-of-RIB with a shape of its own
  // deoptimised the session's UPDATE path after each table).
  const u: DecodedUpdate & { type: MsgType.Update } = {
    withdrawn,
    withdrawnIds,
    attrs: s.attrs,
    nlri,
    nlriIds,
    mpReach: undefined,
    mpUnreach: undefined,
    errors: s.errors,
    action: s.action,
    endOfRib: undefined,
    attrBytes: buf.subarray(as, ae),
    // What decodeMessage would add: the message's type, here from the start.
    type: MsgType.Update,
  };

  if (s.mpUnreach) {
    const [p, e] = s.mpUnreach;
    const fam = family(buf.readUInt16BE(p), buf[p + 2]!);
    const r = decodeMpNlri(buf, fam, p + 3, e, ctx);
    u.mpUnreach = { afi: fam >> 8, safi: fam & 255, ...r };
  }
  if (s.mpReach) {
    const [p, e, a] = s.mpReach;
    const fam = family(buf.readUInt16BE(p), buf[p + 2]!);
    const nhLen = buf[p + 3]!;
    const data = buf.subarray(a, e);
    if (p + 4 + nhLen + 1 > e)
      throw updateError(
        UpdateSubcode.OptionalAttributeError,
        'MP_REACH_NLRI next hop runs past the attribute',
        data,
      );
    const known = fam === IPV4_UNICAST || fam === IPV6_UNICAST;
    const nextHops = known
      ? decodeNextHops(buf, p + 4, nhLen, data)
      : [buf.subarray(p + 4, p + 4 + nhLen).toString('hex')];
    const r = decodeMpNlri(buf, fam, p + 4 + nhLen + 1, e, ctx);
    u.mpReach = { afi: fam >> 8, safi: fam & 255, nextHops, ...r };
  }

  const hasReach =
    nlri.length > 0 ||
    (u.mpReach !== undefined && (u.mpReach.prefixes.length > 0 || u.mpReach.raw !== undefined));
  if (hasReach && !s.framingError) {
    const a = s.attrs;
    if (a.origin === undefined) missing(s, AttrType.Origin, 'ORIGIN');
    if (a.asPath === undefined) missing(s, AttrType.AsPath, 'AS_PATH');
    if (nlri.length > 0 && a.nextHop === undefined) missing(s, AttrType.NextHop, 'NEXT_HOP');
    u.action = s.action;
  }
  if (u.action === ErrorAction.TreatAsWithdraw && !nlri.length && !u.mpReach) {
    const worst = u.errors.find((x) => x.action === ErrorAction.TreatAsWithdraw)!;
    throw worst.withAction(ErrorAction.SessionReset);
  }

  // End-of-RIB: an empty UPDATE for IPv4 unicast, or one holding only an empty MP_UNREACH_NLRI.
  if (wlen === 0 && end === ae) {
    if (alen === 0) u.endOfRib = IPV4_UNICAST;
    else if (
      u.mpUnreach &&
      !u.mpReach &&
      u.mpUnreach.prefixes.length === 0 &&
      !u.mpUnreach.raw?.length &&
      isOnlyMpUnreach(s.attrs)
    ) {
      u.endOfRib = family(u.mpUnreach.afi, u.mpUnreach.safi);
    }
  }
  return u;
}

/** RFC 7606 §3(d): a well-known mandatory attribute missing, unless it was there and malformed. */
function missing(s: AttrParseState, type: AttrType, name: string): void {
  if (s.errors.some((x) => x.attrType === type)) return;
  noteError(
    s,
    updateError(
      UpdateSubcode.MissingWellKnownAttribute,
      `missing well-known attribute ${name}`,
      Buffer.from([type]),
      ErrorAction.TreatAsWithdraw,
    ),
  );
}

function isOnlyMpUnreach(a: PathAttributes): boolean {
  for (const k in a) if ((a as Record<string, unknown>)[k] !== undefined) return false;
  return true;
}

// ---- encoding ----

function writeMpReach(w: Writer, r: MpReach, ctx: CodecContext, from = 0, to = r.prefixes.length): void {
  writeAttr(w, AttrFlag.Optional, AttrType.MpReachNlri, () => {
    w.u16(r.afi);
    w.u8(r.safi);
    const fam = family(r.afi, r.safi);
    const nhAt = w.skip(1);
    const nh = w.pos;
    if (fam === IPV4_UNICAST || fam === IPV6_UNICAST) {
      for (const hop of r.nextHops) {
        if (hop.includes(':')) w.bytes(parseIpv6(hop));
        else w.u32(parseIpv4(hop));
      }
    } else {
      w.bytes(Buffer.from(r.nextHops[0] ?? '', 'hex'));
    }
    w.patch8(nhAt, w.pos - nh);
    w.u8(0);
    writeMpPrefixes(w, fam, r.prefixes, r.pathIds, r.raw, ctx, from, to);
  });
}

function writeMpPrefixes(
  w: Writer,
  fam: Family,
  prefixes: PrefixKey[],
  ids: number[] | undefined,
  raw: Buffer | undefined,
  ctx: CodecContext,
  from: number,
  to: number,
): void {
  if (raw) {
    w.bytes(raw);
    return;
  }
  const addPath = ctx.addPathTx.has(fam);
  for (let i = from; i < to; i++) {
    const id = addPath ? (ids?.[i] ?? 0) : undefined;
    const k = prefixes[i]!;
    if (typeof k === 'number') writeNlri4(w, k, id);
    else writeNlri6(w, k, id);
  }
}

function writeNlriList(
  w: Writer,
  keys: number[],
  ids: number[] | undefined,
  addPath: boolean,
  from = 0,
  to = keys.length,
): void {
  for (let i = from; i < to; i++) writeNlri4(w, keys[i]!, addPath ? (ids?.[i] ?? 0) : undefined);
}

/** Encode one UPDATE exactly as given. Throws if it does not fit the negotiated size. */
export function encodeUpdate(u: Update, ctx: CodecContext, w: Writer = new Writer()): Buffer {
  const start = writeHeader(w, MsgType.Update);
  const addPath4 = ctx.addPathTx.has(IPV4_UNICAST);
  const wAt = w.skip(2);
  writeNlriList(w, u.withdrawn, u.withdrawnIds, addPath4);
  w.patch16(wAt, w.pos - wAt - 2);
  const aAt = w.skip(2);
  if (u.mpReach) writeMpReach(w, u.mpReach, ctx);
  if (u.mpUnreach) {
    const m = u.mpUnreach;
    writeAttr(w, AttrFlag.Optional, AttrType.MpUnreachNlri, () => {
      w.u16(m.afi);
      w.u8(m.safi);
      writeMpPrefixes(w, family(m.afi, m.safi), m.prefixes, m.pathIds, m.raw, ctx, 0, m.prefixes.length);
    });
  }
  encodeAttributes(w, u.attrs, ctx);
  w.patch16(aAt, w.pos - aAt - 2);
  writeNlriList(w, u.nlri, u.nlriIds, addPath4);
  if (w.pos - start > ctx.maxLength)
    throw new RangeError(`UPDATE of ${w.pos - start} octets exceeds the ${ctx.maxLength} negotiated`);
  finishMessage(w, start);
  return w.take(start);
}

/** The End-of-RIB marker for a family (RFC 4724 §2). */
export function encodeEndOfRib(fam: Family, ctx: CodecContext): Buffer {
  if (fam === IPV4_UNICAST) return encodeUpdate({ withdrawn: [], attrs: {}, nlri: [] }, ctx);
  return encodeUpdate(
    { withdrawn: [], attrs: {}, nlri: [], mpUnreach: { afi: fam >> 8, safi: fam & 255, prefixes: [] } },
    ctx,
  );
}

export interface PackRequest {
  family: Family;
  /** Prefixes to announce with `attrs`, or to withdraw when `withdraw` is set. */
  prefixes: ArrayLike<PrefixKey>;
  pathIds?: number[];
  withdraw?: boolean;
  attrs?: PathAttributes;
  /** `attrs` already encoded (encodeAttributeBytes), in their place: for a set sent again. */
  attrBytes?: Uint8Array;
  /** How much of `attrBytes` is the set, when not all of it (a scratch buffer). */
  attrLength?: number;
  /** IPv6 next hops (global, and link-local if any); IPv4 uses attrs.nextHop. */
  nextHops?: string[];
}

const NO_BYTES = new Uint8Array(0);

/** Where packUpdates encodes an attribute set: packing is not re-entrant, so one will do. */
const attrScratch = new Writer(4096);

/** An attribute set as packUpdates writes it into each UPDATE (IPv4: with its NEXT_HOP). */
export function encodeAttributeBytes(attrs: PathAttributes, ctx: CodecContext): Buffer {
  const aw = attrScratch.reset();
  encodeAttributes(aw, attrs, ctx);
  return aw.take();
}

/**
 * Write as many UPDATEs as `req` needs into `w`, each filled to the negotiated size; returns the
 * number of messages. The attribute set is encoded once and copied into each message.
 */
export function packUpdates(w: Writer, req: PackRequest, ctx: CodecContext): number {
  const { prefixes } = req;
  if (prefixes.length === 0) return 0;
  const fam = req.family;
  if (fam !== IPV4_UNICAST && fam !== IPV6_UNICAST) throw new AddrError(`cannot pack family ${fam}`);
  const addPath = ctx.addPathTx.has(fam);
  const max = ctx.maxLength;
  // The attribute set, encoded once (or before, by the caller).
  let attrs: Uint8Array = NO_BYTES;
  let attrLen = 0;
  if (!req.withdraw) {
    if (req.attrBytes) {
      attrs = req.attrBytes;
      attrLen = req.attrLength ?? attrs.length;
    } else {
      const aw = attrScratch.reset();
      encodeAttributes(aw, req.attrs ?? {}, ctx);
      attrs = aw.buf;
      attrLen = aw.pos;
    }
  }
  let count = 0;
  let i = 0;
  while (i < prefixes.length) {
    const start = writeHeader(w, MsgType.Update);
    if (fam === IPV4_UNICAST) {
      const addPath4 = addPath;
      if (req.withdraw) {
        const wAt = w.skip(2);
        const limit = start + max - 2;
        while (i < prefixes.length && w.pos + nlri4Size(prefixes[i] as number, addPath4) <= limit) {
          writeNlri4(w, prefixes[i] as number, addPath4 ? (req.pathIds?.[i] ?? 0) : undefined);
          i++;
        }
        w.patch16(wAt, w.pos - wAt - 2);
        w.u16(0);
      } else {
        w.u16(0);
        w.u16(attrLen);
        w.bytesOf(attrs, attrLen);
        const limit = start + max;
        if (w.pos + nlri4Size(prefixes[i] as number, addPath4) > limit)
          throw new RangeError('attributes leave no room for NLRI');
        while (i < prefixes.length && w.pos + nlri4Size(prefixes[i] as number, addPath4) <= limit) {
          writeNlri4(w, prefixes[i] as number, addPath4 ? (req.pathIds?.[i] ?? 0) : undefined);
          i++;
        }
      }
    } else {
      w.u16(0);
      const aAt = w.skip(2);
      // MP attribute with the extended length flag always, so its length field is fixed at 2 octets.
      w.u8(AttrFlag.Optional | AttrFlag.ExtendedLength);
      w.u8(req.withdraw ? AttrType.MpUnreachNlri : AttrType.MpReachNlri);
      const lenAt = w.skip(2);
      w.u16(fam >> 8);
      w.u8(fam & 255);
      if (!req.withdraw) {
        const hops = req.nextHops ?? [];
        w.u8(hops.length * 16);
        for (const h of hops) w.bytes(parseIpv6(h));
        w.u8(0);
      }
      // Room for the other attributes after the MP attribute.
      const limit = start + max - attrLen;
      if (w.pos + nlri6Size(prefixes[i] as string, addPath) > limit)
        throw new RangeError('attributes leave no room for NLRI');
      while (i < prefixes.length && w.pos + nlri6Size(prefixes[i] as string, addPath) <= limit) {
        writeNlri6(w, prefixes[i] as string, addPath ? (req.pathIds?.[i] ?? 0) : undefined);
        i++;
      }
      w.patch16(lenAt, w.pos - lenAt - 2);
      w.bytesOf(attrs, attrLen);
      w.patch16(aAt, w.pos - aAt - 2);
    }
    finishMessage(w, start);
    count++;
  }
  return count;
}
