/**
 * NLRI: the (length, prefix) lists of RFC 4271 §4.3 and RFC 4760 §5, with the path identifier
 * of RFC 7911 §3 in front of each when ADD-PATH is in force.
 *
 * IPv4 prefixes decode straight from the Buffer into numeric keys (addr * 64 + len) pushed onto
 * a caller's array: no object per prefix. IPv6 prefixes decode to canonical text. Bits past the
 * prefix length are ignored, as §4.3 says ("the value of the trailing bits is irrelevant").
 * A length over 32/128 or a prefix that runs past the field is RFC 7606 §5.3 "syntactically
 * incorrect": 3/10 Invalid Network Field, session reset.
 */
import { formatIpv6, prefix4Addr, prefix4Len, prefix6Parts } from '../../net/addr.js';
import { ErrorCode, UpdateSubcode } from './constants.js';
import { BgpError } from './error.js';
import type { Writer } from './writer.js';

function nlriError(msg: string): BgpError {
  return new BgpError(ErrorCode.UpdateMessage, UpdateSubcode.InvalidNetworkField, undefined, msg);
}

/** Decode IPv4 NLRI in [p, end) onto `keys` (and `ids` when path identifiers are present). */
export function decodeNlri4(
  buf: Buffer,
  p: number,
  end: number,
  keys: number[],
  ids: number[] | undefined,
): void {
  while (p < end) {
    if (ids) {
      if (end - p < 4) throw nlriError('truncated path identifier');
      ids.push(buf.readUInt32BE(p));
      p += 4;
      if (p >= end) throw nlriError('path identifier without a prefix');
    }
    const len = buf[p++]!;
    if (len > 32) throw nlriError(`IPv4 prefix length ${len} is over 32`);
    const n = (len + 7) >> 3;
    if (p + n > end) throw nlriError('IPv4 prefix runs past the end of its field');
    let addr: number;
    switch (n) {
      case 0:
        addr = 0;
        break;
      case 1:
        addr = buf[p]! * 0x1000000;
        break;
      case 2:
        addr = ((buf[p]! << 8) | buf[p + 1]!) * 0x10000;
        break;
      case 3:
        addr = ((buf[p]! << 16) | (buf[p + 1]! << 8) | buf[p + 2]!) * 256;
        break;
      default:
        addr = buf.readUInt32BE(p);
    }
    p += n;
    if (len & 7) addr = (addr & (0xffffffff << (32 - len))) >>> 0;
    keys.push(addr * 64 + len);
  }
}

const scratch = new Uint8Array(16);

export function decodeNlri6(
  buf: Buffer,
  p: number,
  end: number,
  keys: string[],
  ids: number[] | undefined,
): void {
  while (p < end) {
    if (ids) {
      if (end - p < 4) throw nlriError('truncated path identifier');
      ids.push(buf.readUInt32BE(p));
      p += 4;
      if (p >= end) throw nlriError('path identifier without a prefix');
    }
    const len = buf[p++]!;
    if (len > 128) throw nlriError(`IPv6 prefix length ${len} is over 128`);
    const n = (len + 7) >> 3;
    if (p + n > end) throw nlriError('IPv6 prefix runs past the end of its field');
    scratch.fill(0);
    for (let i = 0; i < n; i++) scratch[i] = buf[p + i]!;
    if (len & 7) scratch[n - 1]! &= 0xff << (8 - (len & 7));
    p += n;
    keys.push(`${formatIpv6(scratch)}/${len}`);
  }
}

/** Bytes one IPv4 prefix takes on the wire. */
export function nlri4Size(key: number, addPath: boolean): number {
  return 1 + ((prefix4Len(key) + 7) >> 3) + (addPath ? 4 : 0);
}

export function writeNlri4(w: Writer, key: number, pathId: number | undefined): void {
  const addr = prefix4Addr(key);
  const len = prefix4Len(key);
  const n = (len + 7) >> 3;
  w.ensure(n + 5);
  const b = w.buf;
  let p = w.pos;
  if (pathId !== undefined) {
    b.writeUInt32BE(pathId >>> 0, p);
    p += 4;
  }
  b[p++] = len;
  if (n > 0) b[p++] = addr >>> 24;
  if (n > 1) b[p++] = (addr >>> 16) & 255;
  if (n > 2) b[p++] = (addr >>> 8) & 255;
  if (n > 3) b[p++] = addr & 255;
  w.pos = p;
}

const scratch6 = new Uint8Array(16);

export function nlri6Size(key: string, addPath: boolean): number {
  const slash = key.lastIndexOf('/');
  const len = Number(key.slice(slash + 1));
  return 1 + ((len + 7) >> 3) + (addPath ? 4 : 0);
}

export function writeNlri6(w: Writer, key: string, pathId: number | undefined): void {
  const len = prefix6Parts(key, scratch6);
  const n = (len + 7) >> 3;
  if (pathId !== undefined) w.u32(pathId);
  w.u8(len);
  w.bytes(scratch6.subarray(0, n));
}
