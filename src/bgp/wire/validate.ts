/**
 * The checks on a decoded UPDATE that depend on who sent it (STYLE.md §8: structure is checked
 * while parsing, the peer-dependent part here). Each turns into an RFC 7606 action on the UPDATE,
 * never a session reset:
 *   from an external peer:
 *     LOCAL_PREF                                  discarded (RFC 7606 §7.5)
 *     ORIGINATOR_ID, CLUSTER_LIST                 discarded (RFC 7606 §7.9, §7.10)
 *     AS_CONFED_SEQUENCE / AS_CONFED_SET          treat-as-withdraw (RFC 7606 §7.2, RFC 5065)
 *     first AS of AS_PATH not the peer's AS       treat-as-withdraw, 3/11 (RFC 4271 §6.3; as BIRD)
 *   from anyone:
 *     NEXT_HOP that is the receiving speaker's own address on the session
 *                                                 treat-as-withdraw, 3/8 (RFC 4271 §6.3, RFC 7606
 *                                                 §7.3: logged, no NOTIFICATION)
 */
import { parseIpv4 } from '../../net/addr.js';
import { AsPathSegmentType, AttrType, ErrorCode, UpdateSubcode } from './constants.js';
import { hasConfedSegment } from './attributes.js';
import { BgpError, ErrorAction } from './error.js';
import type { DecodedUpdate } from './update.js';

export interface UpdateSource {
  ebgp: boolean;
  peerAs: number;
  /** Our address on this session, if known. */
  localAddress?: string;
  /** Skip the first-AS check (route servers do not prepend their AS, RFC 7947 §2.2.2). */
  allowPeerAsMissing?: boolean;
}

function note(u: DecodedUpdate, err: BgpError): void {
  u.errors.push(err);
  if (err.action > u.action) u.action = err.action;
}

/** Route reflection's attributes (RFC 4456 §8), which an external peer must not send. */
const REFLECTION_ATTRS = [
  ['originatorId', AttrType.OriginatorId, 'ORIGINATOR_ID'],
  ['clusterList', AttrType.ClusterList, 'CLUSTER_LIST'],
] as const;

export function validateUpdate(u: DecodedUpdate, src: UpdateSource): void {
  const a = u.attrs;
  if (src.ebgp) {
    if (a.localPref !== undefined) {
      delete a.localPref;
      note(
        u,
        new BgpError(
          ErrorCode.UpdateMessage,
          UpdateSubcode.MalformedAttributeList,
          undefined,
          'LOCAL_PREF from an external peer',
          ErrorAction.AttributeDiscard,
          AttrType.LocalPref,
        ),
      );
    }
    // Indexed, not destructured: an iterator per UPDATE otherwise.
    for (let i = 0; i < REFLECTION_ATTRS.length; i++) {
      const [key, type, name] = REFLECTION_ATTRS[i]!;
      if (a[key] !== undefined) {
        delete a[key];
        note(
          u,
          new BgpError(
            ErrorCode.UpdateMessage,
            UpdateSubcode.MalformedAttributeList,
            undefined,
            `${name} from an external peer`,
            ErrorAction.AttributeDiscard,
            type,
          ),
        );
      }
    }
    const path = a.asPath;
    if (path && (u.nlri.length || u.mpReach)) {
      if (hasConfedSegment(path)) {
        note(
          u,
          new BgpError(
            ErrorCode.UpdateMessage,
            UpdateSubcode.MalformedAsPath,
            undefined,
            'confederation segment from an external peer',
            ErrorAction.TreatAsWithdraw,
            AttrType.AsPath,
          ),
        );
      } else if (!src.allowPeerAsMissing) {
        const first = path[0];
        if (!first || first.type !== AsPathSegmentType.AsSequence || first.asns[0] !== src.peerAs) {
          note(
            u,
            new BgpError(
              ErrorCode.UpdateMessage,
              UpdateSubcode.MalformedAsPath,
              undefined,
              `AS_PATH does not start with the peer's AS ${src.peerAs}`,
              ErrorAction.TreatAsWithdraw,
              AttrType.AsPath,
            ),
          );
        }
      }
    }
  }
  if (
    a.nextHop !== undefined &&
    src.localAddress !== undefined &&
    a.nextHop === src.localAddress &&
    u.nlri.length
  ) {
    const data = Buffer.alloc(7);
    data[0] = 0x40;
    data[1] = AttrType.NextHop;
    data[2] = 4;
    data.writeUInt32BE(parseIpv4(a.nextHop), 3);
    note(
      u,
      new BgpError(
        ErrorCode.UpdateMessage,
        UpdateSubcode.InvalidNextHopAttribute,
        data,
        `NEXT_HOP ${a.nextHop} is our own address`,
        ErrorAction.TreatAsWithdraw,
        AttrType.NextHop,
      ),
    );
  }
}
