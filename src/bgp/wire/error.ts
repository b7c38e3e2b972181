/**
 * The one error type of the codec.
 *
 * A malformed message becomes a `BgpError(code, subcode, data)`: exactly what the NOTIFICATION
 * that answers it carries (RFC 4271 §6), plus the RFC 7606 *action* that says how hard to react.
 * Actions form an ordered scale — attribute discard < treat-as-withdraw < AFI/SAFI disable <
 * session reset — and when one UPDATE has several errors the strongest wins (RFC 7606 §3(h)).
 * Only a session reset is thrown out of a decoder; the milder ones are collected on the decoded
 * UPDATE so the session can log them and carry on.
 *
 * Nothing but `BgpError` may escape a decoder, whatever the bytes (the fuzz tests hold us to it).
 */

export const enum ErrorAction {
  None = 0,
  /** RFC 7606 §2: drop the attribute, keep the route. */
  AttributeDiscard = 1,
  /** RFC 7606 §2: the UPDATE withdraws every prefix it carries. */
  TreatAsWithdraw = 2,
  /** RFC 4760 §7 / RFC 7606 §5.3: stop the address family (we reset instead; see session). */
  AfiSafiDisable = 3,
  /** Send the NOTIFICATION and close. */
  SessionReset = 4,
}

export const ACTION_NAMES = [
  'none',
  'attribute-discard',
  'treat-as-withdraw',
  'afi-safi-disable',
  'session-reset',
] as const;

const EMPTY = Buffer.alloc(0);

export class BgpError extends Error {
  override name = 'BgpError';
  readonly code: number;
  readonly subcode: number;
  /** The NOTIFICATION's data field, per the RFC that defines the error. A copy, safe to keep. */
  readonly data: Buffer;
  readonly action: ErrorAction;
  /** The path attribute type the error is about, when it is about one. */
  readonly attrType: number | undefined;

  constructor(
    code: number,
    subcode: number,
    data: Uint8Array | undefined,
    message: string,
    action: ErrorAction = ErrorAction.SessionReset,
    attrType?: number,
  ) {
    super(`${message} (NOTIFICATION ${code}/${subcode}, ${ACTION_NAMES[action]})`);
    this.code = code;
    this.subcode = subcode;
    this.data = data && data.length > 0 ? Buffer.from(data) : EMPTY;
    this.action = action;
    this.attrType = attrType;
  }

  /** The same error with a different action (RFC 7606 re-grades RFC 4271's errors). */
  withAction(action: ErrorAction): BgpError {
    return new BgpError(
      this.code,
      this.subcode,
      this.data,
      this.message.replace(/ \(NOTIFICATION.*$/, ''),
      action,
      this.attrType,
    );
  }
}
