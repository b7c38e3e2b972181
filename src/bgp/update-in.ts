/**
 * The UPDATE-in pipeline: one decoded UPDATE from one peer, into the RIB (the Update-Receive
 * part of RFC 4271 §9.1, and RFC 4760 for MP_REACH_NLRI / MP_UNREACH_NLRI). Pure: no I/O, no
 * timers, no logging; the speaker's sessions and the start-up warm-up (warmup.ts) both run it,
 * so what the warm-up compiles is what a session's first table runs (see "Warming the UPDATE
 * path" in warmup.ts).
 *
 * In order:
 * 1. The checks that depend on the peer (wire/validate.ts: RFC 7606 §7 attribute rules for
 *    external peers, the first AS, our own address as NEXT_HOP). Each found is added to
 *    `u.errors` with its action; the caller logs them.
 * 2. Withdrawals, WITHDRAWN ROUTES and MP_UNREACH_NLRI (RFC 4760 §4).
 * 3. Import policy (policy.ts `importCheck`: AS loops, RFC 4456 §8 reflection loops). An UPDATE
 *    whose action is treat-as-withdraw (RFC 7606 §2), or that policy refuses, withdraws what it
 *    announces from this peer.
 * 4. Announcements, NLRI and MP_REACH_NLRI, with the peer's prefix filter applied per prefix,
 *    under one interned attribute set (rib/attrs.ts). An UPDATE whose attribute bytes were
 *    taken as they came (no errors, no MP attributes, which carry NLRI) names its set by those
 *    bytes: cheaper than a key made from the decoded set, and the set keeps no decoded copy
 *    until one is read (rib/attrs.ts).
 *
 * Changes come out as the RIB makes them: into a `SlotList` (the compact form, no object per
 * prefix) or a `Delta[]` when someone needs the old best path too.
 *
 * Not here: max-prefix (a session matter: the speaker looks at the peer's count after the
 * UPDATE), End-of-RIB (graceful-restart.ts), what is sent on (peer-tx.ts).
 */
import type { PrefixKey } from '../net/addr.js';
import { filterAccepts, importCheck, type LocalInfo, type PeerPolicy } from './policy.js';
import { keyHash, offerDecoded } from './rib/attrs.js';
import type { Delta, PeerRef, Rib, SlotList } from './rib/rib.js';
import { ErrorAction } from './wire/error.js';
import type { DecodedUpdate } from './wire/update.js';
import { validateUpdate } from './wire/validate.js';

export class UpdateIn {
  constructor(
    private readonly rib: Rib,
    private readonly me: LocalInfo,
  ) {}

  /**
   * Take `u` from `from` into the RIB; the best-path changes go to `changed`. `localAddress` is
   * ours on the session; `as4` whether the session's AS numbers are 4 octets (the raw key names
   * the encoding). Returns why policy refused the UPDATE's announcements, if it did.
   */
  receive(
    u: DecodedUpdate,
    from: PeerRef,
    policy: PeerPolicy,
    localAddress: string | undefined,
    as4: boolean,
    changed: SlotList | Delta[],
  ): string | undefined {
    validateUpdate(u, { ebgp: from.ebgp, peerAs: from.asn, localAddress });
    const rib = this.rib;
    rib.withdrawKeys(u.withdrawn, u.withdrawnIds, from.id, changed);
    if (u.mpUnreach) rib.withdrawKeys(u.mpUnreach.prefixes, u.mpUnreach.pathIds, from.id, changed);

    const verdict = importCheck(u.attrs, from, policy, this.me);
    const withdraw = u.action === ErrorAction.TreatAsWithdraw || !verdict.accept;
    const rules = policy.importRules;
    const rawKey =
      !withdraw && u.errors.length === 0 && !u.mpReach && !u.mpUnreach
        ? rawKeyOf(u.attrBytes, as4)
        : undefined;
    const accept = rules.length ? (k: PrefixKey) => filterAccepts(rules, k) : undefined;
    // Methods, not closures made per UPDATE: a table is thousands of UPDATEs.
    if (u.nlri.length) {
      if (withdraw) rib.withdrawKeys(u.nlri, u.nlriIds, from.id, changed);
      else this.announce(u, u.nlri, u.nlriIds, hopsOf(u.attrs.nextHop), from, rawKey, changed, accept);
    }
    const r = u.mpReach;
    if (r && (r.afi === 1 || r.afi === 2) && r.safi === 1 && r.prefixes.length) {
      if (withdraw) rib.withdrawKeys(r.prefixes, r.pathIds, from.id, changed);
      else this.announce(u, r.prefixes, r.pathIds, r.nextHops, from, rawKey, changed, accept);
    }
    if (!verdict.accept && (u.nlri.length || u.mpReach?.prefixes.length)) return verdict.reason;
    return undefined;
  }

  /** `keys` into the RIB under `u`'s attribute set. */
  private announce(
    u: DecodedUpdate,
    keys: readonly PrefixKey[],
    ids: readonly number[] | undefined,
    hops: string[],
    from: PeerRef,
    rawKey: string | undefined,
    changed: SlotList | Delta[],
    accept: ((k: PrefixKey) => boolean) | undefined,
  ): void {
    const rib = this.rib;
    if (rawKey === undefined) {
      const ra = rib.attrs.intern(u.attrs, hops);
      rib.announceKeys(keys, ids, from, ra, changed, accept);
      rib.attrs.release(ra);
      return;
    }
    // A set named by its bytes keeps no decoded attributes until someone reads them.
    const ra = rib.attrs.internKey(rawKey, hops, rawKeyHash);
    offerDecoded(rawKey, u.attrs);
    try {
      rib.announceKeys(keys, ids, from, ra, changed, accept);
    } finally {
      offerDecoded(undefined, undefined);
    }
    rib.attrs.release(ra);
  }
}

/** The last NEXT_HOP's next-hop list: a peer's UPDATEs mostly share one (a set keeps it). */
let lastHop: string | undefined;
let lastHops: string[] = [];

function hopsOf(nextHop: string | undefined): string[] {
  if (!nextHop) return [];
  if (nextHop !== lastHop) {
    lastHop = nextHop;
    lastHops = [nextHop];
  }
  return lastHops;
}

let keyScratch = Buffer.allocUnsafe(4096);
/** The table's hash of the last raw key made (rib/attrs.ts hashKey), made as it was written. */
let rawKeyHash = 0;

/**
 * An UPDATE's attribute bytes as a set's key: 'w', the AS size, the bytes. Made in one flat
 * string: a concatenation would be flattened again by the table's lookup, three strings kept
 * per set instead of one.
 */
function rawKeyOf(bytes: Buffer, as4: boolean): string {
  const n = bytes.length + 2;
  if (n > keyScratch.length) keyScratch = Buffer.allocUnsafe(n);
  const k = keyScratch;
  const size = as4 ? 0x34 : 0x32; // '4', '2'
  k[0] = 0x77; // 'w'
  k[1] = size;
  let h = keyHash.step(keyHash.step(keyHash.start, 0x77), size);
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    k[i + 2] = b;
    h = keyHash.step(h, b);
  }
  rawKeyHash = keyHash.end(h);
  return k.toString('latin1', 0, n);
}
