/**
 * The framer: TCP chunks in, whole BGP messages out (RFC 4271 §4.1 header, §6.1 header errors).
 *
 * `push(chunk)` appends; `next()` returns the next whole message as a view `(buf, start, end)` of
 * the framer's own buffer, or undefined when more bytes are needed. A view is valid until the
 * next `push` — decoders copy what they keep. The frame object is reused: read it, don't keep it.
 *
 * Header checks, in the order RFC 4271 §6.1 gives them:
 *   marker not all ones                          -> 1/1 Connection Not Synchronized, no data
 *   length < 19 or > the maximum                 -> 1/2 Bad Message Length, data = the length field
 *   type not 1..5                                -> 1/3 Bad Message Type, data = the type octet
 *   length below the type's minimum (KEEPALIVE
 *   other than 19)                               -> 1/2 Bad Message Length, data = the length field
 * The maximum is 4096 until extended messages are negotiated (RFC 8654), then 65535: call
 * `setMaxLength`. After an error the stream is out of sync and the framer keeps throwing it.
 */
import { HEADER_LEN, MAX_MESSAGE_LEN, MIN_LENGTH, MARKER_LEN, MsgType } from './constants.js';
import { BgpError } from './error.js';
import { ErrorCode, HeaderSubcode } from './constants.js';

export interface Frame {
  type: MsgType;
  buf: Buffer;
  /** Offset of the marker. */
  start: number;
  /** Offset just past the message. */
  end: number;
}

const EMPTY = Buffer.alloc(0);

export class Framer {
  private buf: Buffer = EMPTY;
  private off = 0;
  private maxLength = MAX_MESSAGE_LEN;
  private failed: BgpError | undefined;
  private readonly frame: Frame = { type: MsgType.Keepalive, buf: EMPTY, start: 0, end: 0 };

  setMaxLength(n: number): void {
    this.maxLength = n;
  }

  /** Bytes held that do not yet make a whole message. */
  get pending(): number {
    return this.buf.length - this.off;
  }

  push(chunk: Buffer): void {
    const rest = this.buf.length - this.off;
    if (rest === 0) {
      this.buf = chunk;
    } else {
      const joined = Buffer.allocUnsafe(rest + chunk.length);
      this.buf.copy(joined, 0, this.off);
      chunk.copy(joined, rest);
      this.buf = joined;
    }
    this.off = 0;
  }

  next(): Frame | undefined {
    if (this.failed) throw this.failed;
    const buf = this.buf;
    const off = this.off;
    if (buf.length - off < HEADER_LEN) return undefined;
    for (let i = 0; i < MARKER_LEN; i++) {
      if (buf[off + i] !== 0xff) {
        return this.fail(
          new BgpError(
            ErrorCode.MessageHeader,
            HeaderSubcode.ConnectionNotSynchronized,
            undefined,
            'marker is not all ones',
          ),
        );
      }
    }
    const length = buf.readUInt16BE(off + 16);
    if (length < HEADER_LEN || length > this.maxLength) {
      return this.fail(
        new BgpError(
          ErrorCode.MessageHeader,
          HeaderSubcode.BadMessageLength,
          buf.subarray(off + 16, off + 18),
          `message length ${length} is outside 19..${this.maxLength}`,
        ),
      );
    }
    const type = buf[off + 18]!;
    const min = MIN_LENGTH[type];
    if (min === undefined) {
      return this.fail(
        new BgpError(
          ErrorCode.MessageHeader,
          HeaderSubcode.BadMessageType,
          buf.subarray(off + 18, off + 19),
          `unknown message type ${type}`,
        ),
      );
    }
    if (length < min || (type === MsgType.Keepalive && length !== HEADER_LEN)) {
      return this.fail(
        new BgpError(
          ErrorCode.MessageHeader,
          HeaderSubcode.BadMessageLength,
          buf.subarray(off + 16, off + 18),
          `length ${length} is wrong for message type ${type}`,
        ),
      );
    }
    if (buf.length - off < length) return undefined;
    this.off = off + length;
    if (this.off === buf.length) {
      this.buf = EMPTY;
      this.off = 0;
    }
    const f = this.frame;
    f.type = type;
    f.buf = buf;
    f.start = off;
    f.end = off + length;
    return f;
  }

  private fail(err: BgpError): never {
    this.failed = err;
    throw err;
  }
}
