/**
 * ROUTE-REFRESH (RFC 2918 §3) with the Message Subtype of enhanced route refresh (RFC 7313 §3):
 * 0 normal request, 1 Beginning of Route Refresh, 2 End of Route Refresh.
 *
 * A ROUTE-REFRESH shorter than 23 octets cannot be read and is 1/2 (the framer's job); a longer
 * one is RFC 7313 §5's 7/1 Invalid Message Length with the whole message as data. A subtype
 * other than 0-2 decodes as is; RFC 7313 §5 says to ignore it, which is the session's call.
 */
import { ErrorCode, HEADER_LEN, MsgType, type RefreshSubtype, RouteRefreshSubcode } from './constants.js';
import { BgpError } from './error.js';
import { finishMessage, writeHeader } from './open.js';
import { Writer } from './writer.js';

export interface RouteRefreshMessage {
  afi: number;
  safi: number;
  subtype: RefreshSubtype;
}

export function decodeRouteRefresh(buf: Buffer, start: number, end: number): RouteRefreshMessage {
  if (end - start !== HEADER_LEN + 4) {
    throw new BgpError(
      ErrorCode.RouteRefreshMessage,
      RouteRefreshSubcode.InvalidMessageLength,
      buf.subarray(start, end),
      `ROUTE-REFRESH of ${end - start} octets, expected 23`,
    );
  }
  const p = start + HEADER_LEN;
  return { afi: buf.readUInt16BE(p), subtype: buf[p + 2]!, safi: buf[p + 3]! };
}

export function encodeRouteRefresh(r: RouteRefreshMessage, w: Writer = new Writer(32)): Buffer {
  const start = writeHeader(w, MsgType.RouteRefresh);
  w.u16(r.afi);
  w.u8(r.subtype);
  w.u8(r.safi);
  finishMessage(w, start);
  return w.take(start);
}
