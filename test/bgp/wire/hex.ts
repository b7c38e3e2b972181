/**
 * Fixture helpers: hex written one commented field per line (`# ...` to end of line is a
 * comment), and message framing added around a body so fixtures show only what they test.
 */
import { ErrorAction } from '../../../src/bgp/wire/index.js';

export function h(strings: TemplateStringsArray, ...values: unknown[]): Buffer {
  const text = strings.reduce((acc, s, i) => acc + s + (i < values.length ? String(values[i]) : ''), '');
  const clean = text.replace(/#[^\n]*/g, '').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad fixture hex: ${clean}`);
  return Buffer.from(clean, 'hex');
}

/** Marker, length and type in front of a body. */
export function frame(type: number, body: Buffer, lengthOverride?: number): Buffer {
  const head = Buffer.alloc(19, 0xff);
  head.writeUInt16BE(lengthOverride ?? 19 + body.length, 16);
  head[18] = type;
  return Buffer.concat([head, body]);
}

/** An UPDATE from its three sections, with correct length fields. */
export function update(withdrawn: Buffer, attrs: Buffer, nlri: Buffer): Buffer {
  const wl = Buffer.alloc(2);
  wl.writeUInt16BE(withdrawn.length);
  const al = Buffer.alloc(2);
  al.writeUInt16BE(attrs.length);
  return frame(2, Buffer.concat([wl, withdrawn, al, attrs, nlri]));
}

export const ACTION = {
  discard: ErrorAction.AttributeDiscard,
  withdraw: ErrorAction.TreatAsWithdraw,
  reset: ErrorAction.SessionReset,
} as const;

/** Common well-formed attributes for error fixtures. */
export const ORIGIN_IGP = h`40 01 01 00`;
export const AS_PATH_EMPTY = h`40 02 00`;
export const NEXT_HOP = h`40 03 04 c0000201`;
export const NLRI_10_1 = h`18 0a0100`;
