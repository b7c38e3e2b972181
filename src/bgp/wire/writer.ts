/**
 * A growable byte writer for encoders: one Buffer that doubles when full, big-endian writers,
 * and length back-patching (reserve a length field, write the body, `patch16` the length in).
 * Encoders share one writer and `take()` a copy of each finished message, or `view()` it when
 * the caller consumes it at once.
 */
export class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size = 4096) {
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): this {
    this.pos = 0;
    return this;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v & 255;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.pos);
    this.pos += 2;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
  }

  bytes(b: Uint8Array): void {
    this.bytesOf(b, b.length);
  }

  /** The first `n` bytes of `b`; a short run byte by byte (a view to copy from costs more). */
  bytesOf(b: Uint8Array, n: number): void {
    this.ensure(n);
    const buf = this.buf;
    let o = this.pos;
    if (n <= 128) for (let i = 0; i < n; i++) buf[o++] = b[i]!;
    else buf.set(b.subarray(0, n), o);
    this.pos += n;
  }

  /** Reserve `n` bytes to fill in later; returns their offset. */
  skip(n: number): number {
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  patch8(at: number, v: number): void {
    this.buf[at] = v & 255;
  }

  patch16(at: number, v: number): void {
    this.buf.writeUInt16BE(v & 0xffff, at);
  }

  /** A copy of bytes [start, pos): safe to keep after the writer is reused. */
  take(start = 0): Buffer {
    return Buffer.from(this.buf.subarray(start, this.pos));
  }

  /** A view of bytes [start, pos): valid until the writer is written again. */
  view(start = 0): Buffer {
    return this.buf.subarray(start, this.pos);
  }
}
