/**
 * Numbers of the BGP-4 wire format, named as the RFCs name them (IANA "BGP Parameters",
 * "Capability Codes", "BGP Error (Notification) Codes", "Address Family Numbers").
 *
 * `const enum`s compile to plain numbers at every use. Nothing here has behaviour.
 */

export const HEADER_LEN = 19;
export const MARKER_LEN = 16;
/** RFC 4271 §4.1: the largest message without the extended message capability. */
export const MAX_MESSAGE_LEN = 4096;
/** RFC 8654: the largest message once extended messages are negotiated both ways. */
export const MAX_EXTENDED_MESSAGE_LEN = 65535;
export const BGP_VERSION = 4;
/** RFC 6793 §9: the 2-octet AS that stands in for a 4-octet one. */
export const AS_TRANS = 23456;

export const enum MsgType {
  Open = 1,
  Update = 2,
  Notification = 3,
  Keepalive = 4,
  RouteRefresh = 5,
}

/** RFC 4271 §4.2-4.5, RFC 2918 §3: the smallest legal length of each message type. */
export const MIN_LENGTH: Readonly<Record<number, number>> = {
  [MsgType.Open]: 29,
  [MsgType.Update]: 23,
  [MsgType.Notification]: 21,
  [MsgType.Keepalive]: 19,
  [MsgType.RouteRefresh]: 23,
};

export const enum ErrorCode {
  MessageHeader = 1,
  OpenMessage = 2,
  UpdateMessage = 3,
  HoldTimerExpired = 4,
  Fsm = 5,
  Cease = 6,
  /** RFC 7313 §5 */
  RouteRefreshMessage = 7,
}

export const enum HeaderSubcode {
  ConnectionNotSynchronized = 1,
  BadMessageLength = 2,
  BadMessageType = 3,
}

export const enum OpenSubcode {
  Unspecific = 0,
  UnsupportedVersionNumber = 1,
  BadPeerAs = 2,
  BadBgpIdentifier = 3,
  UnsupportedOptionalParameter = 4,
  UnacceptableHoldTime = 6,
  /** RFC 5492 §5 */
  UnsupportedCapability = 7,
}

export const enum UpdateSubcode {
  MalformedAttributeList = 1,
  UnrecognizedWellKnownAttribute = 2,
  MissingWellKnownAttribute = 3,
  AttributeFlagsError = 4,
  AttributeLengthError = 5,
  InvalidOriginAttribute = 6,
  InvalidNextHopAttribute = 8,
  OptionalAttributeError = 9,
  InvalidNetworkField = 10,
  MalformedAsPath = 11,
}

/** RFC 6608 */
export const enum FsmSubcode {
  Unspecified = 0,
  UnexpectedInOpenSent = 1,
  UnexpectedInOpenConfirm = 2,
  UnexpectedInEstablished = 3,
}

/** RFC 4486, RFC 8538 (HardReset), RFC 9384 (BfdDown) */
export const enum CeaseSubcode {
  MaxPrefixes = 1,
  AdministrativeShutdown = 2,
  PeerDeconfigured = 3,
  AdministrativeReset = 4,
  ConnectionRejected = 5,
  OtherConfigurationChange = 6,
  ConnectionCollisionResolution = 7,
  OutOfResources = 8,
  HardReset = 9,
  BfdDown = 10,
}

export const enum RouteRefreshSubcode {
  InvalidMessageLength = 1,
}

export const enum AttrType {
  Origin = 1,
  AsPath = 2,
  NextHop = 3,
  MultiExitDisc = 4,
  LocalPref = 5,
  AtomicAggregate = 6,
  Aggregator = 7,
  Communities = 8,
  OriginatorId = 9,
  ClusterList = 10,
  MpReachNlri = 14,
  MpUnreachNlri = 15,
  ExtendedCommunities = 16,
  As4Path = 17,
  As4Aggregator = 18,
  LargeCommunity = 32,
}

export const enum AttrFlag {
  Optional = 0x80,
  Transitive = 0x40,
  Partial = 0x20,
  ExtendedLength = 0x10,
}

export const enum Origin {
  Igp = 0,
  Egp = 1,
  Incomplete = 2,
}

export const enum AsPathSegmentType {
  AsSet = 1,
  AsSequence = 2,
  /** RFC 5065 */
  AsConfedSequence = 3,
  AsConfedSet = 4,
}

export const enum Safi {
  Unicast = 1,
}

export const enum CapCode {
  Multiprotocol = 1,
  RouteRefresh = 2,
  ExtendedNextHop = 5,
  ExtendedMessage = 6,
  GracefulRestart = 64,
  FourOctetAs = 65,
  AddPath = 69,
  EnhancedRouteRefresh = 70,
  LongLivedGracefulRestart = 71,
  Fqdn = 73,
  /** Pre-standard route refresh (Cisco): same meaning as 2. */
  RouteRefreshOld = 128,
}

export const enum OptParamType {
  Capabilities = 2,
  /** RFC 9072: marks the extended optional parameters length form. */
  ExtendedLength = 255,
}

/** RFC 7313 §3: the Message Subtype of a ROUTE-REFRESH. */
export const enum RefreshSubtype {
  Normal = 0,
  BeginningOfRouteRefresh = 1,
  EndOfRouteRefresh = 2,
}

/** RFC 7911 §4: what ADD-PATH a speaker can do for a family. */
export const enum AddPathMode {
  Receive = 1,
  Send = 2,
  Both = 3,
}

/** An address family as one number: afi << 8 | safi (ipv4-unicast = 0x101, ipv6-unicast = 0x201). */
export type Family = number;
export const IPV4_UNICAST: Family = 0x101;
export const IPV6_UNICAST: Family = 0x201;

export function family(afi: number, safi: number): Family {
  return (afi << 8) | safi;
}

export function familyName(f: Family): string {
  const afi = f >> 8;
  const safi = f & 255;
  const a = afi === 1 ? 'ipv4' : afi === 2 ? 'ipv6' : `afi${afi}`;
  const s = safi === 1 ? 'unicast' : safi === 2 ? 'multicast' : `safi${safi}`;
  return `${a}-${s}`;
}

export function parseFamilyName(name: string): Family | undefined {
  if (name === 'ipv4-unicast') return IPV4_UNICAST;
  if (name === 'ipv6-unicast') return IPV6_UNICAST;
  return undefined;
}
