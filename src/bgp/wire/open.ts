/**
 * OPEN (RFC 4271 §4.2) and its capabilities (RFC 5492), with the checks of RFC 4271 §6.2.
 *
 * Capabilities understood: multiprotocol (RFC 4760), route refresh (RFC 2918, and the old
 * Cisco code 128), enhanced route refresh (RFC 7313), 4-octet AS (RFC 6793), graceful restart
 * (RFC 4724 with the N bit of RFC 8538), long-lived graceful restart (RFC 9494), extended message
 * (RFC 8654), ADD-PATH (RFC 7911), FQDN/hostname (draft-walton-bgp-hostname-capability).
 * Anything else is kept as `{code, value}` bytes and sent back out unchanged if re-encoded.
 * Optional parameters in the extended-length form of RFC 9072 are read, and written when the
 * capabilities outgrow 255 bytes.
 *
 * Two steps, as STYLE.md §8 asks: `decodeOpen` checks structure and what is wrong whoever the peer
 * is (version 2/1 with our version as data, hold time 1-2 s 2/6, zero identifier 2/3, AS 0 2/2
 * (RFC 7607), unknown optional parameter 2/4, malformed capabilities 2/0, length 1/2);
 * `checkOpen` checks what depends on the configuration (expected peer AS 2/2, identifier equal to
 * ours 2/3, hold time below our minimum 2/6, capabilities we require 2/7 with them as data).
 * The encoder writes every capability in one optional parameter, in a fixed order.
 */
import { formatIpv4 } from '../../net/addr.js';
import {
  type AddPathMode,
  AS_TRANS,
  BGP_VERSION,
  CapCode,
  ErrorCode,
  type Family,
  family,
  HEADER_LEN,
  HeaderSubcode,
  MsgType,
  OpenSubcode,
  OptParamType,
} from './constants.js';
import { BgpError } from './error.js';
import { Writer } from './writer.js';

export interface GracefulRestartCap {
  /** R bit: the sender has restarted (RFC 4724 §3). */
  restarting: boolean;
  /** N bit: graceful restart also after a NOTIFICATION (RFC 8538). */
  notification: boolean;
  /** Restart Time, seconds (12 bits). */
  time: number;
  /** Per family: F bit, forwarding state preserved. */
  families: { family: Family; forwarding: boolean }[];
}

export interface LlgrCap {
  families: { family: Family; forwarding: boolean; staleTime: number }[];
}

export interface Capabilities {
  multiprotocol: Family[];
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  /** The 4-octet AS the peer announces, if it can (RFC 6793). */
  fourOctetAs?: number;
  gracefulRestart?: GracefulRestartCap;
  llgr?: LlgrCap;
  extendedMessage: boolean;
  addPath: { family: Family; mode: AddPathMode }[];
  fqdn?: { hostname: string; domain: string };
  /** Capabilities this codec does not interpret, in the order received. */
  unknown: { code: number; value: Buffer }[];
}

export interface OpenMessage {
  version: number;
  /** The My Autonomous System field: AS_TRANS when the real AS does not fit in 16 bits. */
  myAs: number;
  holdTime: number;
  /** BGP Identifier as a uint32. */
  bgpId: number;
  caps: Capabilities;
}

export function emptyCapabilities(): Capabilities {
  return {
    multiprotocol: [],
    routeRefresh: false,
    enhancedRouteRefresh: false,
    extendedMessage: false,
    addPath: [],
    unknown: [],
  };
}

/** The peer's real AS: the 4-octet AS capability when present, else the My AS field. */
export function openAs(open: OpenMessage): number {
  return open.caps.fourOctetAs ?? open.myAs;
}

/** An OPEN for a speaker of `asn`, filling My AS with AS_TRANS when needed and the 4-octet cap. */
export function makeOpen(
  asn: number,
  holdTime: number,
  bgpId: number,
  caps: Partial<Capabilities> = {},
): OpenMessage {
  return {
    version: BGP_VERSION,
    myAs: asn > 0xffff ? AS_TRANS : asn,
    holdTime,
    bgpId,
    caps: { ...emptyCapabilities(), fourOctetAs: asn, ...caps },
  };
}

const openError = (subcode: number, msg: string, data?: Uint8Array) =>
  new BgpError(ErrorCode.OpenMessage, subcode, data, msg);
const VERSION_DATA = Buffer.from([0, BGP_VERSION]);

export function decodeOpen(buf: Buffer, start: number, end: number): OpenMessage {
  let p = start + HEADER_LEN;
  if (end - p < 10) {
    throw new BgpError(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      buf.subarray(start + 16, start + 18),
      'OPEN too short',
    );
  }
  const version = buf[p]!;
  if (version !== BGP_VERSION) {
    throw openError(OpenSubcode.UnsupportedVersionNumber, `unsupported BGP version ${version}`, VERSION_DATA);
  }
  const myAs = buf.readUInt16BE(p + 1);
  const holdTime = buf.readUInt16BE(p + 3);
  const bgpId = buf.readUInt32BE(p + 5);
  let optLen = buf[p + 9]!;
  p += 10;
  let extended = false;
  // RFC 9072 §2: Opt Param Len 255 followed by type 255 means a 2-octet length follows.
  if (optLen === 255 && end - p >= 3 && buf[p] === OptParamType.ExtendedLength) {
    extended = true;
    optLen = buf.readUInt16BE(p + 1);
    p += 3;
  }
  if (p + optLen !== end) {
    throw new BgpError(
      ErrorCode.MessageHeader,
      HeaderSubcode.BadMessageLength,
      buf.subarray(start + 16, start + 18),
      `OPEN optional parameters length ${optLen} does not match the message length`,
    );
  }
  if (myAs === 0) throw openError(OpenSubcode.BadPeerAs, 'peer AS is 0 (RFC 7607)');
  if (holdTime === 1 || holdTime === 2)
    throw openError(OpenSubcode.UnacceptableHoldTime, `hold time ${holdTime} s is not 0 or at least 3`);
  if (bgpId === 0) throw openError(OpenSubcode.BadBgpIdentifier, 'BGP identifier is 0');

  const caps = emptyCapabilities();
  const hdr = extended ? 3 : 2;
  while (p < end) {
    if (end - p < hdr) throw openError(OpenSubcode.Unspecific, 'truncated optional parameter');
    const type = buf[p]!;
    const len = extended ? buf.readUInt16BE(p + 1) : buf[p + 1]!;
    p += hdr;
    if (p + len > end)
      throw openError(OpenSubcode.Unspecific, `optional parameter ${type} overruns the OPEN`);
    if (type !== OptParamType.Capabilities) {
      throw openError(
        OpenSubcode.UnsupportedOptionalParameter,
        `unsupported optional parameter type ${type}`,
      );
    }
    decodeCapabilities(buf, p, p + len, caps);
    p += len;
  }
  return { version, myAs, holdTime, bgpId, caps };
}

function capError(code: number, len: number): BgpError {
  return openError(OpenSubcode.Unspecific, `capability ${code} has a bad length ${len}`);
}

function decodeCapabilities(buf: Buffer, p: number, end: number, caps: Capabilities): void {
  while (p < end) {
    if (end - p < 2) throw openError(OpenSubcode.Unspecific, 'truncated capability');
    const code = buf[p]!;
    const len = buf[p + 1]!;
    p += 2;
    if (p + len > end) throw openError(OpenSubcode.Unspecific, `capability ${code} overruns its parameter`);
    const e = p + len;
    switch (code) {
      case CapCode.Multiprotocol: {
        if (len !== 4) throw capError(code, len);
        const f = family(buf.readUInt16BE(p), buf[p + 3]!);
        if (!caps.multiprotocol.includes(f)) caps.multiprotocol.push(f);
        break;
      }
      case CapCode.RouteRefresh:
      case CapCode.RouteRefreshOld:
        caps.routeRefresh = true;
        break;
      case CapCode.EnhancedRouteRefresh:
        caps.enhancedRouteRefresh = true;
        break;
      case CapCode.ExtendedMessage:
        caps.extendedMessage = true;
        break;
      case CapCode.FourOctetAs:
        if (len !== 4) throw capError(code, len);
        caps.fourOctetAs = buf.readUInt32BE(p);
        break;
      case CapCode.GracefulRestart: {
        if (len < 2 || (len - 2) % 4 !== 0) throw capError(code, len);
        const w = buf.readUInt16BE(p);
        const families: GracefulRestartCap['families'] = [];
        for (let q = p + 2; q < e; q += 4) {
          families.push({
            family: family(buf.readUInt16BE(q), buf[q + 2]!),
            forwarding: (buf[q + 3]! & 0x80) !== 0,
          });
        }
        caps.gracefulRestart = {
          restarting: (w & 0x8000) !== 0,
          notification: (w & 0x4000) !== 0,
          time: w & 0x0fff,
          families,
        };
        break;
      }
      case CapCode.LongLivedGracefulRestart: {
        if (len % 7 !== 0) throw capError(code, len);
        const families: LlgrCap['families'] = [];
        for (let q = p; q < e; q += 7) {
          families.push({
            family: family(buf.readUInt16BE(q), buf[q + 2]!),
            forwarding: (buf[q + 3]! & 0x80) !== 0,
            staleTime: buf.readUIntBE(q + 4, 3),
          });
        }
        caps.llgr = { families };
        break;
      }
      case CapCode.AddPath: {
        if (len % 4 !== 0) throw capError(code, len);
        for (let q = p; q < e; q += 4) {
          const mode = buf[q + 3]!;
          if (mode < 1 || mode > 3)
            throw openError(OpenSubcode.Unspecific, `ADD-PATH send/receive value ${mode} is not 1..3`);
          caps.addPath.push({ family: family(buf.readUInt16BE(q), buf[q + 2]!), mode });
        }
        break;
      }
      case CapCode.Fqdn: {
        if (len < 2) throw capError(code, len);
        const hl = buf[p]!;
        if (1 + hl + 1 > len) throw capError(code, len);
        const dl = buf[p + 1 + hl]!;
        if (2 + hl + dl !== len) throw capError(code, len);
        caps.fqdn = {
          hostname: buf.toString('utf8', p + 1, p + 1 + hl),
          domain: buf.toString('utf8', p + 2 + hl, e),
        };
        break;
      }
      default:
        caps.unknown.push({ code, value: Buffer.from(buf.subarray(p, e)) });
    }
    p = e;
  }
}

/** Capability TLVs in a fixed order; also used for the data of NOTIFICATION 2/7. */
export function encodeCapabilities(w: Writer, caps: Capabilities): void {
  const tlv = (code: number, body: () => void) => {
    w.u8(code);
    const at = w.skip(1);
    const s = w.pos;
    body();
    w.patch8(at, w.pos - s);
  };
  for (const f of caps.multiprotocol) {
    tlv(CapCode.Multiprotocol, () => {
      w.u16(f >> 8);
      w.u8(0);
      w.u8(f & 255);
    });
  }
  if (caps.routeRefresh) tlv(CapCode.RouteRefresh, () => {});
  if (caps.enhancedRouteRefresh) tlv(CapCode.EnhancedRouteRefresh, () => {});
  if (caps.extendedMessage) tlv(CapCode.ExtendedMessage, () => {});
  if (caps.fourOctetAs !== undefined) tlv(CapCode.FourOctetAs, () => w.u32(caps.fourOctetAs!));
  const gr = caps.gracefulRestart;
  if (gr) {
    tlv(CapCode.GracefulRestart, () => {
      w.u16((gr.restarting ? 0x8000 : 0) | (gr.notification ? 0x4000 : 0) | (gr.time & 0x0fff));
      for (const f of gr.families) {
        w.u16(f.family >> 8);
        w.u8(f.family & 255);
        w.u8(f.forwarding ? 0x80 : 0);
      }
    });
  }
  if (caps.addPath.length) {
    tlv(CapCode.AddPath, () => {
      for (const a of caps.addPath) {
        w.u16(a.family >> 8);
        w.u8(a.family & 255);
        w.u8(a.mode);
      }
    });
  }
  const llgr = caps.llgr;
  if (llgr) {
    tlv(CapCode.LongLivedGracefulRestart, () => {
      for (const f of llgr.families) {
        w.u16(f.family >> 8);
        w.u8(f.family & 255);
        w.u8(f.forwarding ? 0x80 : 0);
        w.u8(f.staleTime >>> 16);
        w.u16(f.staleTime & 0xffff);
      }
    });
  }
  if (caps.fqdn) {
    const h = Buffer.from(caps.fqdn.hostname, 'utf8').subarray(0, 64);
    const d = Buffer.from(caps.fqdn.domain, 'utf8').subarray(0, 64);
    tlv(CapCode.Fqdn, () => {
      w.u8(h.length);
      w.bytes(h);
      w.u8(d.length);
      w.bytes(d);
    });
  }
  for (const u of caps.unknown) tlv(u.code, () => w.bytes(u.value));
}

export function writeHeader(w: Writer, type: MsgType): number {
  const start = w.pos;
  w.ensure(HEADER_LEN);
  w.buf.fill(0xff, w.pos, w.pos + 16);
  w.pos += 16;
  w.u16(0);
  w.u8(type);
  return start;
}

export function finishMessage(w: Writer, start: number): void {
  w.patch16(start + 16, w.pos - start);
}

export function encodeOpen(open: OpenMessage, w: Writer = new Writer(256)): Buffer {
  const start = writeHeader(w, MsgType.Open);
  w.u8(open.version);
  w.u16(open.myAs);
  w.u16(open.holdTime);
  w.u32(open.bgpId);
  const optLenAt = w.skip(1);
  const capsStart = w.pos;
  // One Capabilities optional parameter holding every capability (RFC 5492 §4 allows either).
  w.u8(OptParamType.Capabilities);
  const capLenAt = w.skip(1);
  const body = w.pos;
  encodeCapabilities(w, open.caps);
  const capLen = w.pos - body;
  if (capLen === 0) {
    w.pos = capsStart;
  } else if (capLen <= 253) {
    w.patch8(capLenAt, capLen);
  } else {
    // RFC 9072: rewrite as the extended form: 255, 255, u16 total, then type + u16 length.
    const caps = Buffer.from(w.buf.subarray(body, w.pos));
    w.pos = capsStart;
    w.u8(OptParamType.ExtendedLength);
    w.u16(caps.length + 3);
    w.u8(OptParamType.Capabilities);
    w.u16(caps.length);
    w.bytes(caps);
    w.patch8(optLenAt, 255);
    finishMessage(w, start);
    return w.take(start);
  }
  w.patch8(optLenAt, w.pos - capsStart);
  finishMessage(w, start);
  return w.take(start);
}

export interface OpenExpectations {
  /** The AS configured for this peer; undefined accepts any. */
  peerAs?: number;
  /** Our own BGP identifier. */
  localId: number;
  /** The smallest hold time we accept, other than 0 (default 3). */
  minHoldTime?: number;
  /** Capabilities without which we refuse the session, as they would appear in our OPEN. */
  required?: { code: number; value: Buffer }[];
}

/** The configuration-dependent checks of RFC 4271 §6.2 and RFC 5492 §5, after decodeOpen. */
export function checkOpen(open: OpenMessage, expect: OpenExpectations): void {
  const asn = openAs(open);
  if (expect.peerAs !== undefined && asn !== expect.peerAs) {
    throw openError(OpenSubcode.BadPeerAs, `peer says AS ${asn}, configured AS is ${expect.peerAs}`);
  }
  if (open.bgpId === expect.localId) {
    throw openError(
      OpenSubcode.BadBgpIdentifier,
      `peer uses our own BGP identifier ${formatIpv4(open.bgpId)}`,
    );
  }
  const min = expect.minHoldTime ?? 3;
  if (open.holdTime !== 0 && open.holdTime < min) {
    throw openError(
      OpenSubcode.UnacceptableHoldTime,
      `hold time ${open.holdTime} s is below our minimum ${min} s`,
    );
  }
  const missing = (expect.required ?? []).filter((r) => !hasCapability(open.caps, r.code, r.value));
  if (missing.length) {
    const w = new Writer(64);
    for (const m of missing) {
      w.u8(m.code);
      w.u8(m.value.length);
      w.bytes(m.value);
    }
    throw openError(
      OpenSubcode.UnsupportedCapability,
      `peer lacks required capabilities ${missing.map((m) => m.code).join(', ')}`,
      w.view(),
    );
  }
}

function hasCapability(caps: Capabilities, code: number, value: Buffer): boolean {
  switch (code) {
    case CapCode.Multiprotocol:
      return value.length === 4 && caps.multiprotocol.includes(family(value.readUInt16BE(0), value[3]!));
    case CapCode.RouteRefresh:
      return caps.routeRefresh;
    case CapCode.EnhancedRouteRefresh:
      return caps.enhancedRouteRefresh;
    case CapCode.FourOctetAs:
      return caps.fourOctetAs !== undefined;
    case CapCode.GracefulRestart:
      return caps.gracefulRestart !== undefined;
    case CapCode.LongLivedGracefulRestart:
      return caps.llgr !== undefined;
    case CapCode.ExtendedMessage:
      return caps.extendedMessage;
    case CapCode.AddPath:
      return caps.addPath.length > 0;
    case CapCode.Fqdn:
      return caps.fqdn !== undefined;
    default:
      return caps.unknown.some((u) => u.code === code);
  }
}
