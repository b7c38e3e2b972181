/**
 * NOTIFICATION (RFC 4271 §4.5), with the Cease subcodes of RFC 4486 and the shutdown
 * communication of RFC 8203 as extended to 255 octets by RFC 9003: for Cease 2 (Administrative
 * Shutdown) and 4 (Administrative Reset) the data may be a length octet and that many octets of
 * UTF-8. A message that is not valid UTF-8 or overruns the data is ignored, not an error (RFC
 * 9003 §2: a NOTIFICATION is never answered by another).
 *
 * KEEPALIVE (§4.4) is one constant 19-octet Buffer.
 */
import { CeaseSubcode, ErrorCode, HEADER_LEN, MsgType } from './constants.js';
import type { BgpError } from './error.js';
import { finishMessage, writeHeader } from './open.js';
import { Writer } from './writer.js';

export interface NotificationMessage {
  code: number;
  subcode: number;
  data: Buffer;
  /** RFC 8203/9003 shutdown communication, when present and valid. */
  shutdownMessage?: string;
}

export const KEEPALIVE: Buffer = (() => {
  const b = Buffer.alloc(HEADER_LEN, 0xff);
  b.writeUInt16BE(HEADER_LEN, 16);
  b[18] = MsgType.Keepalive;
  return b;
})();

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function decodeNotification(buf: Buffer, start: number, end: number): NotificationMessage {
  const p = start + HEADER_LEN;
  const code = buf[p]!;
  const subcode = buf[p + 1]!;
  const data = Buffer.from(buf.subarray(p + 2, end));
  const n: NotificationMessage = { code, subcode, data };
  if (
    code === ErrorCode.Cease &&
    (subcode === CeaseSubcode.AdministrativeShutdown || subcode === CeaseSubcode.AdministrativeReset) &&
    data.length > 0
  ) {
    const len = data[0]!;
    if (len > 0 && 1 + len <= data.length) {
      try {
        n.shutdownMessage = utf8.decode(data.subarray(1, 1 + len));
      } catch {
        // Not UTF-8: keep the raw data only.
      }
    }
  }
  return n;
}

export function encodeNotification(
  n: { code: number; subcode: number; data?: Uint8Array },
  w: Writer = new Writer(64),
): Buffer {
  const start = writeHeader(w, MsgType.Notification);
  w.u8(n.code);
  w.u8(n.subcode);
  if (n.data) w.bytes(n.data);
  finishMessage(w, start);
  return w.take(start);
}

/** The NOTIFICATION that answers a decode error. */
export function notificationFor(err: BgpError): Buffer {
  return encodeNotification(err);
}

/** Truncate UTF-8 text to at most `max` octets without splitting a character. */
function utf8Truncate(text: string, max: number): Buffer {
  const b = Buffer.from(text, 'utf8');
  if (b.length <= max) return b;
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}

/** A Cease NOTIFICATION; for subcodes 2 and 4 with an RFC 8203/9003 shutdown message. */
export function encodeCease(subcode: CeaseSubcode, message?: string): Buffer {
  let data: Buffer | undefined;
  if (
    message !== undefined &&
    (subcode === CeaseSubcode.AdministrativeShutdown || subcode === CeaseSubcode.AdministrativeReset)
  ) {
    const text = utf8Truncate(message, 255);
    data = Buffer.concat([Buffer.from([text.length]), text]);
  }
  return encodeNotification({ code: ErrorCode.Cease, subcode, data });
}

const CODE_NAMES: Record<number, string> = {
  1: 'Message Header Error',
  2: 'OPEN Message Error',
  3: 'UPDATE Message Error',
  4: 'Hold Timer Expired',
  5: 'Finite State Machine Error',
  6: 'Cease',
  7: 'ROUTE-REFRESH Message Error',
  8: 'Send Hold Timer Expired',
};

const SUBCODE_NAMES: Record<number, Record<number, string>> = {
  1: { 1: 'Connection Not Synchronized', 2: 'Bad Message Length', 3: 'Bad Message Type' },
  2: {
    1: 'Unsupported Version Number',
    2: 'Bad Peer AS',
    3: 'Bad BGP Identifier',
    4: 'Unsupported Optional Parameter',
    6: 'Unacceptable Hold Time',
    7: 'Unsupported Capability',
  },
  3: {
    1: 'Malformed Attribute List',
    2: 'Unrecognized Well-known Attribute',
    3: 'Missing Well-known Attribute',
    4: 'Attribute Flags Error',
    5: 'Attribute Length Error',
    6: 'Invalid ORIGIN Attribute',
    8: 'Invalid NEXT_HOP Attribute',
    9: 'Optional Attribute Error',
    10: 'Invalid Network Field',
    11: 'Malformed AS_PATH',
  },
  5: {
    1: 'Receive Unexpected Message in OpenSent',
    2: 'Receive Unexpected Message in OpenConfirm',
    3: 'Receive Unexpected Message in Established',
  },
  6: {
    1: 'Maximum Number of Prefixes Reached',
    2: 'Administrative Shutdown',
    3: 'Peer De-configured',
    4: 'Administrative Reset',
    5: 'Connection Rejected',
    6: 'Other Configuration Change',
    7: 'Connection Collision Resolution',
    8: 'Out of Resources',
    9: 'Hard Reset',
    10: 'BFD Down',
  },
  7: { 1: 'Invalid Message Length' },
};

/** "Cease/Administrative Shutdown (6/2)" — for logs and `twill status`. */
export function describeNotification(n: { code: number; subcode: number; shutdownMessage?: string }): string {
  const c = CODE_NAMES[n.code] ?? `code ${n.code}`;
  const s = SUBCODE_NAMES[n.code]?.[n.subcode];
  const base = s ? `${c}/${s} (${n.code}/${n.subcode})` : `${c} (${n.code}/${n.subcode})`;
  return n.shutdownMessage !== undefined ? `${base}: "${n.shutdownMessage}"` : base;
}
