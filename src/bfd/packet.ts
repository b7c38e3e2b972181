/**
 * BFD Control packets (RFC 5880 §4.1, the mandatory section; no authentication section): bytes
 * in, a checked `ControlPacket` out, and back. Pure: no I/O.
 *
 *   0: Vers(3) Diag(5)   1: Sta(2) P F C A D M   2: Detect Mult   3: Length
 *   4: My Discriminator  8: Your Discriminator  12: Desired Min TX Interval (µs)
 *  16: Required Min RX Interval (µs)            20: Required Min Echo RX Interval (µs)
 *
 * `decodeControl` applies the checks of §6.8.6 that need no session (version 1, length at least
 * 24 and not beyond the datagram, Detect Mult not zero, Multipoint clear, My Discriminator not
 * zero) and says which failed; the checks that need the session are session.ts's. A packet
 * with the A bit is refused: authentication is not supported (README).
 */

export enum BfdState {
  AdminDown = 0,
  Down = 1,
  Init = 2,
  Up = 3,
}

export const STATE_NAMES = ['AdminDown', 'Down', 'Init', 'Up'] as const;
export type StateName = (typeof STATE_NAMES)[number];

/** Diagnostic codes (RFC 5880 §4.1). */
export enum Diag {
  None = 0,
  ControlDetectionTimeExpired = 1,
  EchoFunctionFailed = 2,
  NeighborSignaledSessionDown = 3,
  ForwardingPlaneReset = 4,
  PathDown = 5,
  ConcatenatedPathDown = 6,
  AdministrativelyDown = 7,
  ReverseConcatenatedPathDown = 8,
}

export const DIAG_NAMES = [
  'none',
  'control detection time expired',
  'echo function failed',
  'neighbor signaled session down',
  'forwarding plane reset',
  'path down',
  'concatenated path down',
  'administratively down',
  'reverse concatenated path down',
] as const;

export interface ControlPacket {
  diag: number;
  state: BfdState;
  poll: boolean;
  final: boolean;
  /** Control Plane Independent. */
  cpi: boolean;
  auth: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDiscr: number;
  yourDiscr: number;
  /** Microseconds. */
  desiredMinTx: number;
  requiredMinRx: number;
  requiredMinEchoRx: number;
}

export const CONTROL_LENGTH = 24;
export const BFD_VERSION = 1;

export function encodeControl(p: ControlPacket): Buffer {
  const b = Buffer.alloc(CONTROL_LENGTH);
  b[0] = (BFD_VERSION << 5) | (p.diag & 0x1f);
  b[1] =
    ((p.state & 3) << 6) |
    (p.poll ? 0x20 : 0) |
    (p.final ? 0x10 : 0) |
    (p.cpi ? 0x08 : 0) |
    (p.auth ? 0x04 : 0) |
    (p.demand ? 0x02 : 0) |
    (p.multipoint ? 0x01 : 0);
  b[2] = p.detectMult;
  b[3] = CONTROL_LENGTH;
  b.writeUInt32BE(p.myDiscr >>> 0, 4);
  b.writeUInt32BE(p.yourDiscr >>> 0, 8);
  b.writeUInt32BE(p.desiredMinTx >>> 0, 12);
  b.writeUInt32BE(p.requiredMinRx >>> 0, 16);
  b.writeUInt32BE(p.requiredMinEchoRx >>> 0, 20);
  return b;
}

/** The packet, or why it is discarded (RFC 5880 §6.8.6, the session-free checks). */
export function decodeControl(b: Uint8Array): ControlPacket | { error: string } {
  if (b.length < CONTROL_LENGTH) return { error: `${b.length} bytes, shorter than a Control packet (24)` };
  const version = b[0]! >> 5;
  if (version !== BFD_VERSION) return { error: `version ${version}, not 1` };
  const length = b[3]!;
  if (length < CONTROL_LENGTH) return { error: `Length ${length} is below 24` };
  if (length > b.length) return { error: `Length ${length} is beyond the ${b.length} bytes received` };
  const flags = b[1]!;
  const auth = (flags & 0x04) !== 0;
  if (auth) return { error: 'authentication present (not supported)' };
  const detectMult = b[2]!;
  if (detectMult === 0) return { error: 'Detect Mult is zero' };
  if ((flags & 0x01) !== 0) return { error: 'Multipoint bit set' };
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const myDiscr = v.getUint32(4);
  if (myDiscr === 0) return { error: 'My Discriminator is zero' };
  return {
    diag: b[0]! & 0x1f,
    state: (flags >> 6) as BfdState,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    cpi: (flags & 0x08) !== 0,
    auth,
    demand: (flags & 0x02) !== 0,
    multipoint: false,
    detectMult,
    myDiscr,
    yourDiscr: v.getUint32(8),
    desiredMinTx: v.getUint32(12),
    requiredMinRx: v.getUint32(16),
    requiredMinEchoRx: v.getUint32(20),
  };
}
