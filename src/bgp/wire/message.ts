/**
 * One typed message from one frame, and back: the dispatch between the framer and the per-type
 * codecs. `decodeMessage` throws only `BgpError`; for an UPDATE the milder RFC 7606 errors ride
 * on the result (see update.ts).
 */
import { MsgType } from './constants.js';
import type { CodecContext } from './context.js';
import { type Frame, Framer as FramerImpl } from './framer.js';
import {
  decodeNotification,
  encodeNotification,
  KEEPALIVE,
  type NotificationMessage,
} from './notification.js';
import { decodeOpen, encodeOpen, type OpenMessage } from './open.js';
import { decodeRouteRefresh, encodeRouteRefresh, type RouteRefreshMessage } from './route-refresh.js';
import { type DecodedUpdate, decodeUpdate, encodeUpdate, type Update } from './update.js';

export type Message =
  | ({ type: MsgType.Open } & OpenMessage)
  | ({ type: MsgType.Update } & DecodedUpdate)
  | ({ type: MsgType.Notification } & NotificationMessage)
  | { type: MsgType.Keepalive }
  | ({ type: MsgType.RouteRefresh } & RouteRefreshMessage);

export type OutMessage =
  | ({ type: MsgType.Open } & OpenMessage)
  | ({ type: MsgType.Update } & Update)
  | ({ type: MsgType.Notification } & { code: number; subcode: number; data?: Uint8Array })
  | { type: MsgType.Keepalive }
  | ({ type: MsgType.RouteRefresh } & RouteRefreshMessage);

export function decodeMessage(f: Frame, ctx: CodecContext): Message {
  switch (f.type) {
    case MsgType.Open:
      return { type: MsgType.Open, ...decodeOpen(f.buf, f.start, f.end) };
    case MsgType.Update: {
      // The decoded object itself, typed: UPDATEs come by the thousand, a copy each is waste.
      const u = decodeUpdate(f.buf, f.start, f.end, ctx) as DecodedUpdate & { type: MsgType.Update };
      u.type = MsgType.Update;
      return u;
    }
    case MsgType.Notification:
      return { type: MsgType.Notification, ...decodeNotification(f.buf, f.start, f.end) };
    case MsgType.Keepalive:
      return { type: MsgType.Keepalive };
    case MsgType.RouteRefresh:
      return { type: MsgType.RouteRefresh, ...decodeRouteRefresh(f.buf, f.start, f.end) };
  }
}

export function encodeMessage(m: OutMessage, ctx: CodecContext): Buffer {
  switch (m.type) {
    case MsgType.Open:
      return encodeOpen(m);
    case MsgType.Update:
      return encodeUpdate(m, ctx);
    case MsgType.Notification:
      return encodeNotification(m);
    case MsgType.Keepalive:
      return KEEPALIVE;
    case MsgType.RouteRefresh:
      return encodeRouteRefresh(m);
  }
}

/** Decode every message in one buffer (tests, captures). */
export function decodeAll(buf: Buffer, ctx: CodecContext): Message[] {
  const out: Message[] = [];
  const framer = new FramerImpl();
  framer.push(buf);
  for (let f = framer.next(); f; f = framer.next()) out.push(decodeMessage(f, ctx));
  if (framer.pending) throw new RangeError(`${framer.pending} octets left over after the last whole message`);
  return out;
}
