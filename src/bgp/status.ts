/**
 * What `twill status` and `twill routes` report, as data, and the views that make it from the
 * speaker's state: `peerStatus` (one neighbor, like a row of `calicoctl node status`) and
 * `routeViews` (the Loc-RIB with every candidate path and the RFC 4271 §9.1.2.2 step the best
 * won on, like `birdc show route all`). The local API serves both as JSON and the CLI prints
 * them. Scripts read the JSON form, so field names here are a stable interface: add fields,
 * never rename or repurpose them.
 *
 * Pure: the views read a Peer and the RIB and change nothing.
 */
import { formatIpv4, formatPrefix, parsePrefix } from '../net/addr.js';
import { stepLabel } from './decision.js';
import { type PrefixRule, ruleMatches } from './policy.js';
import type { Path, Rib } from './rib/rib.js';
import { formatAsPath, formatCommunity, formatLargeCommunity } from './wire/attributes.js';
import { familyName } from './wire/constants.js';
import type { CodecContext } from './wire/context.js';
import type { OpenMessage } from './wire/open.js';

export type PeerStateName = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface NotificationRecord {
  /** Whether Twill sent this NOTIFICATION or received it from the peer. */
  direction: 'sent' | 'received';
  code: number;
  subcode: number;
  /** e.g. "Cease/Administrative Shutdown (6/2): \"maintenance\"". */
  text: string;
  /** ISO 8601 time. */
  at: string;
}

export interface PeerStatus {
  address: string;
  port: number;
  asn: number;
  /** "ibgp" when the peer's AS is ours, else "ebgp". */
  type: 'ibgp' | 'ebgp';
  state: PeerStateName;
  /** ISO 8601 time the peer entered its current state. */
  since: string;
  /** The last NOTIFICATION sent or received, or the last connection error, if any. */
  lastError: NotificationRecord | { direction: 'local'; text: string; at: string } | null;
  /** Negotiated hold time and keepalive interval, seconds; null when not Established. */
  holdTime: number | null;
  keepalive: number | null;
  /** Peer's BGP identifier, when known. */
  routerId: string | null;
  /** Negotiated capabilities, by name: "ipv4-unicast", "route-refresh", "4-octet-as", ... */
  capabilities: string[];
  prefixesReceived: number;
  /**
   * Of those, paths kept stale for a restarting peer (RFC 4724 graceful restart), until its
   * End-of-RIB or its restart time runs out.
   */
  prefixesStale: number;
  prefixesAdvertised: number;
  /**
   * Established: the update group the peer is in (update-group.ts), and how many peers it has:
   * peers of one group share one Adj-RIB-Out and are sent the same bytes.
   */
  updateGroup?: { id: number; peers: number };
  /**
   * Established: the families whose End-of-RIB (RFC 4724 §2) the peer has sent in this session,
   * so its first table is complete, and those we have sent it, so ours is. A peer that did not
   * negotiate graceful restart may never send one.
   */
  endOfRib?: { received: string[]; sent: string[] };
  /** Whether Twill dials this peer or only waits for it. */
  passive: boolean;
  /** The BFD session's state (AdminDown, Down, Init, Up), for a neighbor with BFD configured. */
  bfd?: string;
}

export interface SpeakerStatus {
  routerId: string;
  asn: number;
  listen: { address: string; port: number } | null;
  peers: PeerStatus[];
}

/** One Loc-RIB entry as `twill routes` shows it. */
export interface RouteView {
  prefix: string;
  /** "won on LOCAL_PREF", "only path", ... */
  reason: string;
  paths: {
    from: string;
    best: boolean;
    stale: boolean;
    reachable: boolean;
    nextHops: string[];
    asPath: string;
    origin: string;
    localPref?: number;
    med?: number;
    communities?: string[];
    largeCommunities?: string[];
    originatorId?: string;
    clusterList?: string[];
  }[];
}

/** A session as the status view reads it (session.ts Session). */
export interface StatusSession {
  readonly fsm: {
    readonly peerOpen?: OpenMessage;
    readonly ctx?: CodecContext;
    readonly holdTime?: number;
    readonly keepaliveTime?: number;
    readonly opts: { readonly open: OpenMessage };
  };
}

/** A neighbor as the status view reads it (peer.ts Peer). */
export interface StatusPeer {
  readonly cfg: { readonly address: string; readonly port: number; readonly asn: number };
  readonly dials: boolean;
  readonly stateName: PeerStateName;
  readonly since: Date;
  readonly lastError: PeerStatus['lastError'];
  readonly established: StatusSession | undefined;
  /** Families whose End-of-RIB arrived in this session. */
  readonly eorSeen: ReadonlySet<number>;
  readonly tx:
    | {
        readonly sentCount: number;
        readonly group: { readonly id: number; readonly members: readonly unknown[] };
        readonly eorSent: ReadonlySet<number>;
      }
    | undefined;
}

/** One neighbor's status; `localAsn` tells iBGP from eBGP. */
export function peerStatus(p: StatusPeer, rib: Rib, localAsn: number): PeerStatus {
  const s = p.established;
  const ctx = s?.fsm.ctx;
  const peerOpen = s?.fsm.peerOpen;
  const caps: string[] = [];
  if (ctx && peerOpen && s) {
    for (const f of ctx.families) caps.push(familyName(f));
    const ours = s.fsm.opts.open.caps;
    if (ours.routeRefresh && peerOpen.caps.routeRefresh) caps.push('route-refresh');
    if (ours.enhancedRouteRefresh && peerOpen.caps.enhancedRouteRefresh) caps.push('enhanced-route-refresh');
    if (ctx.as4) caps.push('4-octet-as');
    if (ctx.maxLength > 4096) caps.push('extended-message');
    if (ctx.addPathRx.size || ctx.addPathTx.size) caps.push('add-path');
    if (ours.gracefulRestart && peerOpen.caps.gracefulRestart) caps.push('graceful-restart');
  }
  return {
    address: p.cfg.address,
    port: p.cfg.port,
    asn: p.cfg.asn,
    type: p.cfg.asn === localAsn ? 'ibgp' : 'ebgp',
    state: p.stateName,
    since: p.since.toISOString(),
    lastError: p.lastError,
    holdTime: s?.fsm.holdTime ?? null,
    keepalive: s?.fsm.keepaliveTime ?? null,
    routerId: peerOpen ? formatIpv4(peerOpen.bgpId) : null,
    capabilities: caps,
    prefixesReceived: rib.countFrom(p.cfg.address),
    prefixesStale: rib.staleFrom(p.cfg.address),
    prefixesAdvertised: p.tx?.sentCount ?? 0,
    ...(p.tx ? { updateGroup: { id: p.tx.group.id, peers: p.tx.group.members.length } } : {}),
    ...(s && p.tx
      ? { endOfRib: { received: [...p.eorSeen].map(familyName), sent: [...p.tx.eorSent].map(familyName) } }
      : {}),
    passive: !p.dials,
  };
}

const ORIGINS = ['IGP', 'EGP', 'INCOMPLETE'];

function pathView(p: Path, best: boolean): RouteView['paths'][number] {
  const a = p.ra.attrs;
  const v: RouteView['paths'][number] = {
    from: p.peer.local ? 'local' : p.peer.id,
    best,
    stale: p.stale,
    reachable: p.reachable,
    nextHops: [...p.ra.nextHops],
    asPath: formatAsPath(a.asPath),
    origin: ORIGINS[a.origin ?? 2] ?? '?',
  };
  if (a.localPref !== undefined) v.localPref = a.localPref;
  if (a.med !== undefined) v.med = a.med;
  if (a.communities) v.communities = a.communities.map(formatCommunity);
  if (a.largeCommunities) v.largeCommunities = a.largeCommunities.map(formatLargeCommunity);
  if (a.originatorId) v.originatorId = a.originatorId;
  if (a.clusterList) v.clusterList = [...a.clusterList];
  return v;
}

/** A prefix filter for `twill routes --prefix P`: P itself and everything inside it. */
function coveredBy(text: string): (prefix: string) => boolean {
  const key = parsePrefix(text, true);
  const len = Number(formatPrefix(key).split('/')[1]);
  const rule: PrefixRule = { prefix: key, ge: len, le: 128, action: 'accept' };
  return (prefix) => ruleMatches(rule, parsePrefix(prefix));
}

/** The Loc-RIB, sorted by prefix text; with `filter`, that prefix and those inside it. */
export function routeViews(rib: Rib, filter?: string): RouteView[] {
  const within = filter ? coveredBy(filter) : () => true;
  const out: RouteView[] = [];
  for (const [k, e] of rib.entries()) {
    const text = formatPrefix(k);
    if (!within(text)) continue;
    out.push({
      prefix: text,
      reason: stepLabel(e.reason),
      paths: e.paths.map((p) => pathView(p, p === e.best)),
    });
  }
  return out.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
}
