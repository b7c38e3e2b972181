/**
 * What two speakers agreed in their OPENs, as the codec needs it: 4-octet AS numbers in AS_PATH
 * and AGGREGATOR (RFC 6793: both sides sent the capability), path identifiers per family and
 * direction (RFC 7911: we receive them where we said Receive and the peer said Send, and the other
 * way round), and the largest message (RFC 8654: both sides sent extended message).
 *
 * The session builds one context when it gets the peer's OPEN and passes it to every decode and
 * encode; the default context is what holds before any negotiation.
 */
import {
  AddPathMode,
  type Family,
  IPV4_UNICAST,
  MAX_EXTENDED_MESSAGE_LEN,
  MAX_MESSAGE_LEN,
} from './constants.js';
import type { OpenMessage } from './open.js';

export interface CodecContext {
  as4: boolean;
  /** Families whose NLRI we receive with path identifiers. */
  addPathRx: ReadonlySet<Family>;
  /** Families whose NLRI we send with path identifiers. */
  addPathTx: ReadonlySet<Family>;
  maxLength: number;
  /** Families both sides announced (multiprotocol, or IPv4 unicast when neither announced any). */
  families: ReadonlySet<Family>;
}

export const DEFAULT_CONTEXT: CodecContext = Object.freeze({
  as4: false,
  addPathRx: new Set<Family>(),
  addPathTx: new Set<Family>(),
  maxLength: MAX_MESSAGE_LEN,
  families: new Set<Family>([IPV4_UNICAST]),
});

export function makeContext(partial: Partial<CodecContext> = {}): CodecContext {
  return { ...DEFAULT_CONTEXT, ...partial };
}

/** The codec context of a session, from our OPEN and the peer's (RFC 5492 §3: both must agree). */
export function negotiate(local: OpenMessage, remote: OpenMessage): CodecContext {
  const l = local.caps;
  const r = remote.caps;
  const lf = l.multiprotocol.length ? l.multiprotocol : [IPV4_UNICAST];
  const rf = r.multiprotocol.length ? r.multiprotocol : [IPV4_UNICAST];
  const families = new Set(lf.filter((f) => rf.includes(f)));
  const rx = new Set<Family>();
  const tx = new Set<Family>();
  for (const mine of l.addPath) {
    const theirs = r.addPath.find((a) => a.family === mine.family);
    if (!theirs || !families.has(mine.family)) continue;
    if (mine.mode & AddPathMode.Receive && theirs.mode & AddPathMode.Send) rx.add(mine.family);
    if (mine.mode & AddPathMode.Send && theirs.mode & AddPathMode.Receive) tx.add(mine.family);
  }
  return {
    as4: l.fourOctetAs !== undefined && r.fourOctetAs !== undefined,
    addPathRx: rx,
    addPathTx: tx,
    maxLength: l.extendedMessage && r.extendedMessage ? MAX_EXTENDED_MESSAGE_LEN : MAX_MESSAGE_LEN,
    families,
  };
}
