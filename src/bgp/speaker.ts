/**
 * The speaker: the listener, one Peer per configured neighbor, connection collisions, the RIB,
 * and what goes to each peer. With session.ts, the only I/O in bgp/.
 *
 * Sessions
 * - Listener (IPv4 and IPv6, configurable address and port). A connection from an address that
 *   is not a configured neighbor is destroyed at once and logged: no OPEN, no FSM.
 * - Peer: at most two sessions at a time, `out` (we dial; absent for a passive neighbor or the
 *   higher address under the Calico mesh rule) and `in` (accepted). When a session reaches
 *   OpenConfirm, the other one is checked (RFC 4271 §6.8): against an Established one the new
 *   session is dumped; against one in OpenSent/OpenConfirm the connection opened by the higher
 *   BGP Identifier survives; a dial still in progress is stopped. The loser gets
 *   OpenCollisionDump and sends Cease 6/7. An outgoing session that lost is paused until the
 *   winner goes down, so it does not redial into a collision every backoff.
 * - Capabilities we offer: multiprotocol per the neighbor's families, route refresh and enhanced
 *   route refresh (RFC 7313), 4-octet AS, extended message (RFC 8654), graceful restart
 *   (RFC 4724) when enabled.
 *
 * Routes
 * - Received: RFC 7606 actions (treat-as-withdraw turns announcements into withdrawals), the
 *   peer-dependent checks of wire/validate.ts, then import policy (policy.ts: AS loops,
 *   reflection loops, prefix filters), then the RIB (rib/rib.ts), which returns best-path deltas:
 *   on the UPDATE path in their compact form, the slots whose best path changed (no object per
 *   prefix), and as `Delta` objects for session changes and for `onBestChange` listeners.
 *   Max-prefix per peer ends the session with Cease 6/1.
 * - The RIB's dead slots (prefixes with no path left) are pruned 100 ms after changes pause: the
 *   speaker looks at the RIB's dead count after each UPDATE, flush, set of deltas or session end.
 * - At start, before listening, the UPDATE path is run over a synthetic table (warmup.ts).
 * - Originated: `setOriginated(prefixes)` replaces the whole set (level-triggered, STYLE.md §4);
 *   originated paths enter the same RIB as local paths.
 * - Sent: every delta goes through export policy (policy.ts: split horizon, iBGP rules, route
 *   reflection, next-hop handling, filters; export.ts caches the answers per peer) into
 *   each peer's Adj-RIB-Out (rib/adj-out.ts, on the RIB's slots), where changes coalesce per
 *   prefix. A flush at the next turn of the event loop (or at once when 4096 changes wait and the
 *   last flush was 2 ms ago, so a table arriving in bulk is passed on while it arrives) packs them
 *   many NLRI per attribute set (wire/update.ts packUpdates), withdrawals batched too, and only while the
 *   socket takes them: a slow peer holds at most one pending entry per prefix. End-of-RIB for each
 *   family follows the initial table. NEXT_HOP self is our address on the session; for the other
 *   family, an address of that family on the same interface (IPv6: global, then link-local), else
 *   the router id (IPv4-mapped for IPv6).
 * - Route refresh: a ROUTE-REFRESH is answered from the Adj-RIB-Out, wrapped in BoRR/EoRR when
 *   enhanced route refresh was negotiated (RFC 7313 §4). A change to a neighbor's import rules asks
 *   the neighbor for a refresh instead of resetting the session.
 *
 * Graceful restart (RFC 4724)
 * - Helper: when a session with a GR-capable peer ends without a NOTIFICATION, its paths stay,
 *   flagged stale, for the restart time it announced; they are swept for each family when the
 *   peer's End-of-RIB arrives (or at once if its new OPEN lacks the F bit for it), and all of them
 *   when the time runs out.
 * - Restarting speaker (`restarting: true`, from `twill speaker --graceful-restart`): the OPEN
 *   carries the R bit and the F bit per family; nothing is advertised until every GR-capable
 *   peer has sent End-of-RIB, or the deferral time has passed (§4.1 selection deferral).
 * - Shutdown with GR: sessions to GR-capable peers are closed without a NOTIFICATION, so the peers
 *   keep our routes while we restart; other peers get Cease 6/2 with an RFC 8203 message.
 * - Long-lived GR (RFC 9494) is decoded but not acted on.
 *
 * Removal: Cease 6/3 (peer de-configured) with an RFC 8203 message.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import {
  formatIpv4,
  formatPrefix,
  type PrefixKey,
  parseIpv4,
  parseIpv6,
  parsePrefix,
  parsePrefix4,
  parsePrefix6,
} from '../net/addr.js';
import type { NeighborConfig, PrefixRuleConfig, SpeakerConfig } from './config.js';
import { dialsNeighbor } from './config.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { stepLabel } from './decision.js';
import {
  type DeferralInput,
  type DeferralState,
  deferralStep,
  HELPER_NONE,
  type HelperInput,
  type HelperState,
  helperStep,
  initialDeferral,
} from './graceful-restart.js';
import { PeerExport, SessionNextHops } from './export.js';
import { DEFAULT_TIMERS, type FsmOptions, FsmState, type NotificationSummary } from './fsm.js';
import {
  filterAccepts,
  importCheck,
  peerPolicy,
  type LocalInfo,
  type PeerPolicy,
  type PrefixRule,
  ruleMatches,
} from './policy.js';
import { AdjRibOut, packBatch } from './rib/adj-out.js';
import { AttrTable, type RouteAttrs } from './rib/attrs.js';
import {
  type Delta,
  familyOfPrefix,
  type NextHopResolver,
  type Path,
  type PeerRef,
  Rib,
  SlotList,
} from './rib/rib.js';
import { diffNeighbors } from './reconfig.js';
import { normalizeAddress } from './host.js';
import { Session, type SessionLog } from './session.js';
import type { NotificationRecord, PeerStateName, PeerStatus, SpeakerStatus } from './status.js';
import { formatAsPath, formatCommunity, formatLargeCommunity } from './wire/attributes.js';
import {
  CeaseSubcode,
  type Family,
  familyName,
  IPV4_UNICAST,
  IPV6_UNICAST,
  Origin,
  RefreshSubtype,
} from './wire/constants.js';
import { ErrorAction } from './wire/error.js';
import type { OpenMessage } from './wire/open.js';
import { makeOpen } from './wire/open.js';
import { encodeRouteRefresh } from './wire/route-refresh.js';
import { type DecodedUpdate, encodeEndOfRib } from './wire/update.js';
import { validateUpdate } from './wire/validate.js';
import { warmUp } from './warmup.js';
import { Writer } from './wire/writer.js';

export interface Logger extends SessionLog {
  error(obj: object, msg: string): void;
}

export interface SpeakerOptions {
  /** ms; tests shorten these. */
  idleHoldMinMs?: number;
  idleHoldMaxMs?: number;
  sendHoldMs?: number;
  /** Started as a restarting speaker (RFC 4724 R bit, selection deferral). */
  restarting?: boolean;
  /** Next-hop resolution for learned paths; default: directly connected subnets. */
  resolver?: NextHopResolver;
  /** Run the UPDATE path over a synthetic table before listening (warmup.ts); default true. */
  warmUp?: boolean;
  /** Time and timers for the speaker and its sessions; default the event loop's (clock.ts). */
  clock?: Clock;
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

const ORIGINS = ['IGP', 'EGP', 'INCOMPLETE'];

class Peer {
  out: Session | undefined;
  in: Session | undefined;
  /** The out session lost a collision and waits for the winner to go down. */
  outPaused = false;
  /** Set while Established. */
  ref: PeerRef | undefined;
  adjOut: AdjRibOut | undefined;
  /** What the peer is sent (export.ts); set while Established. */
  exports: PeerExport | undefined;
  /** Our next hops on this session's interface (nextHopsOn), read once per session. */
  nextHops: SessionNextHops | undefined;
  peerOpen: OpenMessage | undefined;
  eorOwed = new Set<Family>();
  eorrOwed = new Set<Family>();
  /** Families whose End-of-RIB arrived in this session. */
  eorSeen = new Set<Family>();
  flushScheduled = false;
  /** When the last flush began (Clock.now()). */
  flushedAt = 0;
  stateName: PeerStateName = 'Idle';
  lastError: PeerStatus['lastError'] = null;
  removed = false;
  /** Graceful-restart helper (graceful-restart.ts) and its restart timer. */
  gr: HelperState = HELPER_NONE;
  staleTimer: TimerHandle | undefined;

  constructor(
    public cfg: NeighborConfig,
    public dials: boolean,
    public policy: PeerPolicy,
    public since: Date,
  ) {}

  get established(): Session | undefined {
    if (this.out?.state === FsmState.Established) return this.out;
    if (this.in?.state === FsmState.Established) return this.in;
    return undefined;
  }

  sessions(): Session[] {
    return [this.out, this.in].filter((s): s is Session => s !== undefined);
  }
}

function rules(list: readonly PrefixRuleConfig[]): PrefixRule[] {
  return list.map((r) => ({
    prefix: r.prefix.includes(':') ? parsePrefix6(r.prefix) : parsePrefix4(r.prefix),
    ge: r.ge,
    le: r.le,
    action: r.action,
  }));
}

function policyOf(n: NeighborConfig): PeerPolicy {
  return peerPolicy({
    rrClient: n.routeReflectorClient,
    nextHopSelf: n.nextHopSelf,
    allowasIn: n.allowasIn,
    importRules: rules(n.import),
    exportRules: rules(n.export),
  });
}

/**
 * A peer's pending changes go out at once, not at the next turn of the loop, when there are this
 * many and the last flush began this long ago: Node reads many socket chunks in one turn, and a
 * table arriving in bulk would otherwise be passed on only once all of it has been read.
 */
const EAGER_FLUSH_PENDING = 4096;
const EAGER_FLUSH_MS = 2;

export class Speaker {
  readonly rib: Rib;
  private readonly changed = new SlotList();
  private readonly exportTable = new AttrTable();
  private readonly peers = new Map<string, Peer>();
  private readonly servers: Server[] = [];
  private originated = new Set<PrefixKey>();
  private readonly localId: number;
  private readonly local: PeerRef;
  private readonly me: LocalInfo;
  private readonly writer = new Writer(64 * 1024);
  private boundPort: number | null = null;
  private stopped = false;
  /** Selection deferral (graceful-restart.ts); `deferring` mirrors it for the UPDATE path. */
  private deferral: DeferralState;
  private deferring: boolean;
  private deferralTimer: TimerHandle | undefined;
  private revalidateTimer: TimerHandle | undefined;
  /** Frees the RIB's dead slots once UPDATEs pause (rib.ts, prune). */
  private pruneTimer: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly resolver: NextHopResolver & { read?: () => void };
  private readonly bestListeners: ((deltas: readonly Delta[]) => void)[] = [];

  constructor(
    private readonly config: SpeakerConfig,
    private readonly log: Logger,
    private readonly options: SpeakerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.localId = parseIpv4(config.routerId);
    this.local = {
      id: '',
      asn: config.asn,
      routerId: this.localId,
      ebgp: false,
      local: true,
      rrClient: false,
    };
    this.me = { asn: config.asn, routerId: config.routerId, clusterId: config.clusterId || config.routerId };
    this.resolver = options.resolver ?? connectedResolver();
    this.rib = new Rib(config.decision, this.resolver);
    this.deferral = initialDeferral(!!options.restarting && config.gracefulRestart.enabled);
    this.deferring = this.deferral.deferring;
    for (const n of config.neighbors)
      this.peers.set(n.address, new Peer(n, dialsNeighbor(config, n), policyOf(n), this.clock.date()));
    this.applyDeltas(this.originate(config.originate.map((p) => parsePrefix(p))));
  }

  /** The port the listener is bound to (the configured one, or the kernel's pick for port 0). */
  get port(): number | null {
    return this.boundPort;
  }

  /** Best-path changes, for consumers outside BGP (the kernel route reconciler). */
  onBestChange(fn: (deltas: readonly Delta[]) => void): void {
    this.bestListeners.push(fn);
  }

  async start(): Promise<void> {
    if (this.options.warmUp !== false) {
      const t0 = this.clock.now();
      warmUp();
      this.log.debug({ ms: Math.round(this.clock.now() - t0) }, 'UPDATE path warmed up');
    }
    const l = this.config.listen;
    if (l) {
      let server = createServer({ pauseOnConnect: true }, (sock) => this.incoming(sock));
      const listen = (srv: Server, host: string) =>
        new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen({ host, port: l.port, ipv6Only: false }, () => {
            srv.off('error', reject);
            resolve();
          });
        });
      try {
        await listen(server, l.address);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // '::' on a host without IPv6: every IPv4 address is the next best thing.
        if (l.address !== '::' || (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL')) throw err;
        this.log.warn({ code }, 'no IPv6 on this host: listening on 0.0.0.0 (IPv4 only)');
        server = createServer({ pauseOnConnect: true }, (sock) => this.incoming(sock));
        await listen(server, '0.0.0.0');
      }
      server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
      const addr = server.address();
      this.boundPort = typeof addr === 'object' && addr ? addr.port : l.port;
      this.servers.push(server);
      this.log.info({ address: l.address, port: this.boundPort }, 'listening for BGP connections');
    }
    if (this.deferring) {
      this.defer({ kind: 'start', deferralMs: this.config.gracefulRestart.deferralTime * 1000 });
      this.log.info(
        { seconds: this.config.gracefulRestart.deferralTime },
        'restarting: deferring advertisements until End-of-RIB from peers',
      );
    }
    for (const p of this.peers.values()) this.startPeer(p);
    // Next hops that did not resolve may resolve later (and the other way round).
    this.revalidateTimer = this.clock.every(5000, () => {
      this.resolver.read?.();
      for (const p of this.peers.values()) p.nextHops = undefined;
      this.applyDeltas(this.rib.revalidate());
    });
  }

  /**
   * Stop every session and the listener. With graceful restart, GR-capable peers see the
   * connection close without a NOTIFICATION and keep our routes; the rest get Cease 6/2.
   */
  async stop(message = 'Twill is shutting down'): Promise<void> {
    this.stopped = true;
    for (const s of this.servers) s.close();
    for (const p of this.peers.values()) {
      const s = p.established;
      if (s && this.config.gracefulRestart.enabled && p.peerOpen?.caps.gracefulRestart) {
        this.log.info(
          { peer: p.cfg.address },
          'closing without NOTIFICATION: the peer keeps our routes (graceful restart)',
        );
        s.dispose();
      }
      this.stopPeer(p, CeaseSubcode.AdministrativeShutdown, message);
      p.staleTimer?.cancel();
    }
    this.deferralTimer?.cancel();
    this.revalidateTimer?.cancel();
    this.pruneTimer?.cancel();
    // Let the NOTIFICATIONs reach the wire.
    await this.clock.sleep(50);
    for (const p of this.peers.values()) for (const s of p.sessions()) s.dispose();
  }

  /** Replace the originated set; peers get the difference. */
  setOriginated(prefixes: string[]): void {
    this.applyDeltas(this.originate(prefixes.map((p) => parsePrefix(p))));
  }

  private originate(next: PrefixKey[]): Delta[] {
    const want = new Set(next);
    const deltas: Delta[] = [];
    for (const k of this.originated) {
      if (want.has(k)) continue;
      const d = this.rib.withdraw(k, this.local.id);
      if (d) deltas.push(d);
    }
    for (const k of want) {
      if (this.originated.has(k)) continue;
      const ra = this.rib.attrs.intern({ origin: Origin.Igp, asPath: [] }, []);
      const d = this.rib.announce(k, this.local, 0, ra);
      if (d) deltas.push(d);
    }
    this.originated = want;
    return deltas;
  }

  /**
   * The neighbors to peer with, as a whole (level-triggered): neighbors not in the list are
   * removed with Cease 6/3, new ones start, and changes take effect as reconfig.ts lays out
   * (a new session for changed session settings, Cease 6/6; policy without a reset).
   */
  setNeighbors(list: readonly NeighborConfig[]): void {
    const current = [...this.peers.values()].map((p) => p.cfg);
    for (const c of diffNeighbors(current, list)) {
      if (c.kind === 'remove') {
        if (c.why === 'removed')
          this.removeNeighbor(
            c.address,
            CeaseSubcode.PeerDeconfigured,
            'neighbor removed from the configuration',
          );
        else
          this.removeNeighbor(
            c.address,
            CeaseSubcode.OtherConfigurationChange,
            'neighbor configuration changed',
          );
      } else if (c.kind === 'add') this.addNeighbor(c.neighbor);
      else this.updateNeighborPolicy(c.neighbor, c.importChanged);
    }
  }

  /** Remove a neighbor: a Cease NOTIFICATION (RFC 4486) and forget it. */
  private removeNeighbor(address: string, subcode: CeaseSubcode, message: string): void {
    const p = this.peers.get(address);
    if (!p) return;
    p.removed = true;
    this.stopPeer(p, subcode, message);
    p.staleTimer?.cancel();
    const reflected = this.isReflector();
    this.peers.delete(address);
    this.reflectionChanged(reflected);
    this.applyDeltas(this.rib.peerDown(address));
  }

  private addNeighbor(n: NeighborConfig): void {
    const p = new Peer(n, dialsNeighbor(this.config, n), policyOf(n), this.clock.date());
    const reflected = this.isReflector();
    this.peers.set(n.address, p);
    this.reflectionChanged(reflected);
    this.startPeer(p);
  }

  /** Export answers depend on whether we reflect at all: work them out again if that changed. */
  private reflectionChanged(before: boolean): void {
    if (this.isReflector() === before) return;
    this.resetExportCaches();
    for (const p of this.peers.values()) this.fillAdjOut(p);
  }

  /**
   * Change a neighbor's policy without resetting its session: new import rules ask the peer for
   * a route refresh (RFC 2918); new export rules recompute what it should hold from us.
   */
  private updateNeighborPolicy(n: NeighborConfig, importChanged: boolean): void {
    const p = this.peers.get(n.address);
    if (!p) return;
    p.cfg = n;
    p.policy = policyOf(n);
    // Export answers depend on every peer's policy (route reflection): work them out again.
    this.resetExportCaches();
    for (const other of this.peers.values()) if (other !== p) this.fillAdjOut(other);
    const s = p.established;
    if (!s) return;
    if (importChanged) {
      if (s.fsm.peerOpen?.caps.routeRefresh) {
        for (const f of s.fsm.ctx!.families)
          s.send(encodeRouteRefresh({ afi: f >> 8, safi: f & 255, subtype: RefreshSubtype.Normal }));
        this.log.info({ peer: n.address }, 'import rules changed: asked the peer for a route refresh');
      } else {
        s.feed({
          type: 'AutomaticStop',
          subcode: CeaseSubcode.OtherConfigurationChange,
          message: 'import policy changed',
        });
      }
    }
    this.fillAdjOut(p);
  }

  status(): SpeakerStatus {
    const l = this.config.listen;
    return {
      routerId: this.config.routerId,
      asn: this.config.asn,
      listen: l ? { address: l.address, port: this.boundPort ?? l.port } : null,
      peers: [...this.peers.values()].map((p) => this.peerStatus(p)),
    };
  }

  /** The Loc-RIB with every candidate path and why the best won (`twill routes`). */
  routes(filter?: string): RouteView[] {
    const within = filter ? coveredBy(filter) : () => true;
    const out: RouteView[] = [];
    for (const [k, e] of this.rib.entries()) {
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

  // ---- peers and sessions ----

  private fsmOptions(p: Peer, passive: boolean): FsmOptions {
    const n = p.cfg;
    const gr = this.config.gracefulRestart;
    const restarting = !!this.options.restarting && gr.enabled;
    return {
      localAs: this.config.asn,
      localId: this.localId,
      peerAs: n.asn,
      open: makeOpen(this.config.asn, n.holdTime, this.localId, {
        multiprotocol: n.families,
        routeRefresh: true,
        enhancedRouteRefresh: true,
        extendedMessage: true,
        ...(gr.enabled
          ? {
              gracefulRestart: {
                restarting,
                notification: false,
                time: gr.restartTime,
                families: n.families.map((family) => ({ family, forwarding: restarting })),
              },
            }
          : {}),
      }),
      minHoldTime: DEFAULT_TIMERS.minHoldTime,
      connectRetryMs: n.connectRetry * 1000,
      passive,
      idleHoldMinMs: this.options.idleHoldMinMs ?? DEFAULT_TIMERS.idleHoldMinMs,
      idleHoldMaxMs: this.options.idleHoldMaxMs ?? DEFAULT_TIMERS.idleHoldMaxMs,
      stableAfterMs: DEFAULT_TIMERS.stableAfterMs,
      openHoldMs: DEFAULT_TIMERS.openHoldMs,
    };
  }

  private newSession(p: Peer, direction: 'out' | 'in', socket?: Socket): Session {
    const n = p.cfg;
    return new Session({
      fsm: this.fsmOptions(p, direction === 'in'),
      remote: { address: n.address, port: n.port },
      localAddress: n.localAddress ?? undefined,
      direction,
      socket,
      log: this.log,
      sendHoldMs: this.options.sendHoldMs,
      clock: this.clock,
      callbacks: {
        state: (s, from, to) => this.onState(p, s, from, to),
        openConfirm: (s) => this.resolveCollision(p, s),
        established: (s) => this.onEstablished(p, s),
        down: (s, info) => this.onDown(p, s, info),
        update: (s, u) => this.onUpdate(p, s, u),
        refresh: (s, r) => this.onRefresh(p, s, r),
        notificationSent: (_s, n) => {
          p.lastError = {
            direction: 'sent',
            code: n.code,
            subcode: n.subcode,
            text: n.text,
            at: this.clock.date().toISOString(),
          };
        },
        drain: () => this.scheduleFlush(p),
      },
    });
  }

  private startPeer(p: Peer): void {
    if (!p.dials) {
      p.stateName = 'Active';
      p.since = this.clock.date();
      return;
    }
    p.out = this.newSession(p, 'out');
    p.out.start();
  }

  private stopPeer(p: Peer, subcode: CeaseSubcode, message: string): void {
    for (const s of p.sessions()) s.stop(subcode, message);
  }

  private incoming(sock: Socket): void {
    const remote = normalizeAddress(sock.remoteAddress ?? '');
    const p = this.peers.get(remote);
    if (!p || this.stopped) {
      // Not a configured neighbor: close before anything is read or written.
      sock.destroy();
      this.log.warn(
        { remote, port: sock.remotePort },
        'refused BGP connection from an address that is not a configured neighbor',
      );
      return;
    }
    sock.resume();
    if (p.in && p.in.state !== FsmState.Established) p.in.dispose();
    const s = this.newSession(p, 'in', sock);
    // Beside an established incoming session the new one runs until its collision dump.
    if (p.in?.state !== FsmState.Established) p.in = s;
    s.start();
  }

  private resolveCollision(p: Peer, s: Session): void {
    const other = s === p.out ? p.in : s === p.in ? p.out : p.established;
    if (!other || other === s) return;
    const os = other.state;
    if (os === FsmState.Idle) return;
    if (os === FsmState.Connect || os === FsmState.Active) {
      // A dial still in progress: stop it quietly, this connection goes on.
      if (other === p.out) {
        other.stop();
        p.outPaused = true;
      }
      return;
    }
    let loser: Session;
    if (os === FsmState.Established) {
      loser = s;
    } else {
      // §6.8: the connection opened by the speaker with the higher BGP Identifier survives.
      const remoteId = s.fsm.peerOpen!.bgpId >>> 0;
      const keepOurs = this.localId >>> 0 > remoteId;
      const ours = s.direction === 'out' ? s : other;
      const theirs = s.direction === 'out' ? other : s;
      loser = keepOurs ? theirs : ours;
    }
    this.log.info(
      { peer: p.cfg.address, dumped: loser.direction },
      'connection collision resolved (RFC 4271 §6.8)',
    );
    loser.feed({ type: 'OpenCollisionDump' });
    if (loser === p.out) {
      loser.stop();
      p.outPaused = true;
    }
  }

  private onState(p: Peer, s: Session, _from: FsmState, to: FsmState): void {
    const rank = [
      FsmState.Idle,
      FsmState.Connect,
      FsmState.Active,
      FsmState.OpenSent,
      FsmState.OpenConfirm,
      FsmState.Established,
    ];
    const best = p
      .sessions()
      .reduce<FsmState>((b, x) => (rank.indexOf(x.state) > rank.indexOf(b) ? x.state : b), FsmState.Idle);
    const name = (p.dials || best !== FsmState.Idle ? best : 'Active') as PeerStateName;
    if (name !== p.stateName) {
      p.stateName = name;
      p.since = this.clock.date();
      this.log.info({ peer: p.cfg.address, state: name, session: s.direction, to }, 'peer state');
    }
  }

  private onEstablished(p: Peer, s: Session): void {
    const ctx = s.fsm.ctx!;
    const open = s.fsm.peerOpen!;
    // One session per peer: an outgoing one still trying stops (with Cease 6/7 if it got as far
    // as an OPEN) and waits until this one goes down.
    if (s === p.in && p.out && p.out.state !== FsmState.Established) {
      if (p.out.state === FsmState.OpenSent || p.out.state === FsmState.OpenConfirm)
        p.out.feed({ type: 'OpenCollisionDump' });
      p.out.stop();
      p.outPaused = true;
    }
    this.log.info(
      { peer: p.cfg.address, holdTime: s.fsm.holdTime, families: [...ctx.families].map(familyName) },
      'session established',
    );
    p.peerOpen = open;
    p.ref = {
      id: p.cfg.address,
      asn: p.cfg.asn,
      routerId: open.bgpId >>> 0,
      ebgp: p.cfg.asn !== this.config.asn,
      local: false,
      rrClient: p.cfg.routeReflectorClient,
    };
    p.eorSeen.clear();
    // Graceful restart helper: the peer came back. Families it no longer preserves lose their
    // stale paths now; the rest wait for its End-of-RIB.
    this.help(p, { kind: 'established', cap: open.caps.gracefulRestart, negotiated: ctx.families });
    p.adjOut = new AdjRibOut(this.exportTable, this.rib);
    p.nextHops = undefined;
    this.newExports(p);
    this.fillAdjOut(p, true);
    this.defer({
      kind: 'established',
      peer: p.cfg.address,
      gracefulRestart: !!open.caps.gracefulRestart,
      families: ctx.families,
    });
  }

  /** Everything the Loc-RIB holds, as this peer should have it, then End-of-RIB. */
  private fillAdjOut(p: Peer, initial = false): void {
    const s = p.established;
    const exports = p.exports;
    if (!s || !p.adjOut || !exports || this.deferring) return;
    const ctx = s.fsm.ctx!;
    const rib = this.rib;
    const v4 = ctx.families.has(IPV4_UNICAST);
    const v6 = ctx.families.has(IPV6_UNICAST);
    for (let slot = 0, n = rib.slotCount; slot < n; slot++) {
      const row = rib.bestRowAt(slot);
      if (row < 0) continue;
      const k = rib.prefixAt(slot)!;
      if (!(typeof k === 'number' ? v4 : v6)) continue;
      p.adjOut.setSlot(slot, exports.exportOf(rib.raAt(row), rib.peerAt(row), k));
    }
    if (initial)
      p.eorOwed = new Set([...ctx.families].filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST));
    this.scheduleFlush(p);
  }

  /** One step of the selection-deferral machine, its outputs carried out. */
  private defer(input: DeferralInput): void {
    const r = deferralStep(this.deferral, input, this.clock.now());
    this.deferral = r.state;
    for (const o of r.outputs) {
      if (o.kind === 'armDeferralTimer')
        this.deferralTimer = this.clock.after(o.ms, () => this.defer({ kind: 'deferralTimeExpired' }));
      else if (o.kind === 'cancelDeferralTimer') this.deferralTimer?.cancel();
      else {
        this.deferring = false;
        this.log.info({ why: o.why }, 'restart: advertising');
        for (const p of this.peers.values()) this.fillAdjOut(p, true);
      }
    }
  }

  /** One step of a peer's graceful-restart helper machine, its outputs carried out. */
  private help(p: Peer, input: HelperInput): void {
    const r = helperStep(p.gr, input, this.clock.now());
    p.gr = r.state;
    const id = p.cfg.address;
    for (const o of r.outputs) {
      switch (o.kind) {
        case 'markStale':
          for (const f of o.families) this.rib.markStale(id, f);
          break;
        case 'sweep': {
          const deltas: Delta[] = [];
          for (const f of o.families) deltas.push(...this.rib.sweepStale(id, f));
          if (o.why === 'End-of-RIB')
            this.log.info(
              { peer: id, family: familyName(o.families[0]!), removed: deltas.length },
              'End-of-RIB: stale routes swept',
            );
          else if (o.why === 'restart time passed')
            this.log.info({ peer: id }, 'graceful restart: restart time passed, removing stale routes');
          this.applyDeltas(deltas);
          break;
        }
        case 'removeAll':
          this.applyDeltas(this.rib.peerDown(id));
          break;
        case 'armRestartTimer':
          p.staleTimer?.cancel();
          p.staleTimer = this.clock.after(o.ms, () => {
            p.staleTimer = undefined;
            this.help(p, { kind: 'restartTimeExpired' });
          });
          this.log.info(
            { peer: id, stale: this.rib.staleFrom(id), seconds: o.ms / 1000 },
            'graceful restart: keeping the peer’s routes as stale',
          );
          break;
        case 'cancelRestartTimer':
          p.staleTimer?.cancel();
          p.staleTimer = undefined;
          break;
      }
    }
  }

  private onDown(
    p: Peer,
    s: Session,
    info: {
      wasEstablished: boolean;
      reason: string;
      received?: NotificationSummary;
      sent?: NotificationSummary;
    },
  ): void {
    if (info.received) {
      p.lastError = {
        direction: 'received',
        code: info.received.code,
        subcode: info.received.subcode,
        text: info.received.text,
        at: this.clock.date().toISOString(),
      } satisfies NotificationRecord;
    } else if (
      !info.sent &&
      info.reason !== 'stopped' &&
      (!p.lastError || p.lastError.direction === 'local' || info.wasEstablished)
    ) {
      p.lastError = { direction: 'local', text: info.reason, at: this.clock.date().toISOString() };
    }
    this.log.info(
      { peer: p.cfg.address, session: s.direction, reason: info.reason },
      info.wasEstablished ? 'session down' : 'connection closed',
    );
    if (info.wasEstablished) {
      p.adjOut?.clear();
      p.adjOut = undefined;
      this.schedulePrune();
      p.exports?.clear();
      p.exports = undefined;
      p.ref = undefined;
      // RFC 4724 §4.2: a session that ends without a NOTIFICATION keeps a GR peer's routes, stale.
      this.help(p, {
        kind: 'down',
        enabled: this.config.gracefulRestart.enabled,
        cap: p.peerOpen?.caps.gracefulRestart,
        notification: !!info.received || !!info.sent,
        final: p.removed || this.stopped,
      });
      this.defer({ kind: 'down', peer: p.cfg.address });
    }
    if (s !== p.out) {
      // Incoming sessions do not restart: the peer dials again.
      s.dispose();
    }
    if (s === p.in) {
      p.in = undefined;
      if (p.outPaused && p.out && !p.removed && !this.stopped) {
        p.outPaused = false;
        const out = p.out;
        this.clock.after(p.cfg.connectRetry * 250, () => out.feed({ type: 'ManualStart' }));
      }
    }
    if (!p.dials && !p.in) {
      p.stateName = 'Active';
      p.since = this.clock.date();
    }
  }

  private onUpdate(p: Peer, s: Session, u: DecodedUpdate): void {
    const from = p.ref;
    if (!from) return;
    validateUpdate(u, { ebgp: from.ebgp, peerAs: p.cfg.asn, localAddress: s.localAddress });
    for (const e of u.errors)
      this.log.warn({ peer: p.cfg.address, action: e.action, code: e.code, subcode: e.subcode }, e.message);
    // The RIB's changes in their compact form (a slot per changed prefix, rib.ts), unless
    // someone outside BGP listens for deltas with the old best path in them.
    const rib = this.rib;
    const changed: SlotList | Delta[] = this.bestListeners.length > 0 ? [] : this.changed;
    const id = from.id;
    const unreach = (keys: readonly PrefixKey[], ids: readonly number[] | undefined) =>
      rib.withdrawKeys(keys, ids, id, changed);
    unreach(u.withdrawn, u.withdrawnIds);
    if (u.mpUnreach) unreach(u.mpUnreach.prefixes, u.mpUnreach.pathIds);

    const verdict = importCheck(u.attrs, from, p.policy, this.me);
    const withdraw = u.action === ErrorAction.TreatAsWithdraw || !verdict.accept;
    if (!verdict.accept && (u.nlri.length || u.mpReach?.prefixes.length)) {
      this.log.debug({ peer: id, reason: verdict.reason }, 'path rejected on import');
    }
    const rules = p.policy.importRules;
    // An UPDATE's attribute bytes name its attribute set when nothing changed them on the way in
    // and they carry no NLRI (MP_REACH does): cheaper than a key made from the decoded set.
    const rawKey =
      u.errors.length === 0 && !u.mpReach && !u.mpUnreach
        ? `w${s.fsm.ctx!.as4 ? 4 : 2}${u.attrBytes.toString('latin1')}`
        : undefined;
    const accept = rules.length ? (k: PrefixKey) => filterAccepts(rules, k) : undefined;
    const announce = (keys: readonly PrefixKey[], ids: readonly number[] | undefined, hops: string[]) => {
      if (withdraw) return unreach(keys, ids);
      const ra = rib.attrs.intern(u.attrs, hops, rawKey);
      rib.announceKeys(keys, ids, from, ra, changed, accept);
      rib.attrs.release(ra);
    };
    if (u.nlri.length) announce(u.nlri, u.nlriIds, u.attrs.nextHop ? [u.attrs.nextHop] : []);
    const r = u.mpReach;
    if (r && (r.afi === 1 || r.afi === 2) && r.safi === 1 && r.prefixes.length)
      announce(r.prefixes, r.pathIds, r.nextHops);
    if (changed instanceof SlotList) this.applySlots(changed);
    else this.applyDeltas(changed);
    this.schedulePrune();

    if (p.cfg.maxPrefix !== null && this.rib.countFrom(id) > p.cfg.maxPrefix) {
      this.log.warn({ peer: id, max: p.cfg.maxPrefix }, 'maximum number of prefixes reached');
      s.feed({
        type: 'AutomaticStop',
        subcode: CeaseSubcode.MaxPrefixes,
        message: `more than ${p.cfg.maxPrefix} prefixes`,
      });
    }
    if (u.endOfRib !== undefined) this.onEndOfRib(p, u.endOfRib);
  }

  private onEndOfRib(p: Peer, f: Family): void {
    p.eorSeen.add(f);
    this.help(p, { kind: 'endOfRib', family: f });
    this.defer({ kind: 'endOfRib', peer: p.cfg.address, family: f });
  }

  private onRefresh(p: Peer, s: Session, r: { afi: number; safi: number; subtype: number }): void {
    if (r.subtype !== RefreshSubtype.Normal) return; // BoRR/EoRR from the peer need nothing here.
    const fam = (r.afi << 8) | r.safi;
    if (!s.fsm.ctx?.families.has(fam) || !p.adjOut) return;
    if (s.fsm.peerOpen?.caps.enhancedRouteRefresh) {
      s.send(
        encodeRouteRefresh({ afi: r.afi, safi: r.safi, subtype: RefreshSubtype.BeginningOfRouteRefresh }),
      );
      p.eorrOwed.add(fam);
    }
    p.adjOut.resend(fam);
    this.scheduleFlush(p);
  }

  // ---- export ----

  /** What `p` should hold for a prefix whose best path is `best` (null: nothing). */
  private exportFor(p: Peer, best: Path | undefined): RouteAttrs | null {
    return best && p.exports ? p.exports.exportOf(best.ra, best.peer, best.prefix) : null;
  }

  /** A fresh export cache for an established peer, under its current policy. */
  private newExports(p: Peer): void {
    p.exports?.clear();
    p.exports = p.ref
      ? new PeerExport(this.exportTable, this.me, p.ref, p.policy, this.isReflector())
      : undefined;
  }

  private resetExportCaches(): void {
    for (const p of this.peers.values()) this.newExports(p);
  }

  private isReflector(): boolean {
    for (const p of this.peers.values()) if (p.cfg.routeReflectorClient) return true;
    return false;
  }

  private applyDeltas(deltas: readonly Delta[]): void {
    if (deltas.length === 0) return;
    if (!this.deferring) {
      for (const p of this.peers.values()) {
        const s = p.established;
        if (!s || !p.adjOut) continue;
        const fams = s.fsm.ctx!.families;
        for (const d of deltas)
          if (fams.has(familyOfPrefix(d.prefix))) p.adjOut.set(d.prefix, this.exportFor(p, d.newBest));
        this.scheduleFlush(p);
      }
    }
    for (const fn of this.bestListeners) fn(deltas);
    this.schedulePrune();
  }

  /**
   * After a change (an UPDATE, deltas, a flush, a session down): if the RIB has dead slots, prune
   * them once 100 ms pass with no further change. Looking costs a field read per change; the RIB
   * calling back as each slot dies would put a call in the per-prefix path that a warm-up cannot
   * make V8 compile for (warmup.ts).
   */
  private schedulePrune(): void {
    if (this.rib.deadCount === 0 || this.stopped) return;
    if (this.pruneTimer) {
      this.pruneTimer.refresh();
      return;
    }
    this.pruneTimer = this.clock.after(100, () => {
      this.pruneTimer = undefined;
      this.rib.prune();
    });
  }

  /** applyDeltas for changes in their compact form: the slots whose best path changed. */
  private applySlots(changed: SlotList): void {
    if (changed.length === 0) return;
    if (!this.deferring) {
      for (const p of this.peers.values()) {
        const s = p.established;
        const out = p.adjOut;
        if (!s || !out || !p.exports) continue;
        const fams = s.fsm.ctx!.families;
        this.rib.feed(out, changed, fams.has(IPV4_UNICAST), fams.has(IPV6_UNICAST), p.exports);
        if (out.pendingCount >= EAGER_FLUSH_PENDING && this.clock.now() - p.flushedAt >= EAGER_FLUSH_MS)
          this.flush(p);
        else this.scheduleFlush(p);
      }
    }
    changed.length = 0;
  }

  // ---- sending ----

  private scheduleFlush(p: Peer): void {
    if (p.flushScheduled) return;
    p.flushScheduled = true;
    this.clock.soon(() => {
      p.flushScheduled = false;
      this.flush(p);
    });
  }

  /** Send pending changes while the socket takes them; the rest waits for 'drain'. */
  private flush(p: Peer): void {
    const s = p.established;
    if (!s?.writable || !p.adjOut) return;
    p.flushedAt = this.clock.now();
    const ctx = s.fsm.ctx!;
    // Reading the interfaces is a system call: once per session, refreshed with the next hops.
    if (!p.nextHops) {
      const routerId = this.config.routerId;
      const hops = nextHopsOn(s.localAddress ?? routerId);
      p.nextHops = new SessionNextHops(hops.v4 ?? routerId, v6Hops(hops, routerId));
    }
    const nextHops = p.nextHops;
    // Slots whose withdrawal went out may be dead now.
    while (p.adjOut.pendingCount > 0) {
      const w = this.writer.reset();
      packBatch(w, p.adjOut.take(16_384), ctx, nextHops);
      const more = w.pos === 0 || s.send(w.take());
      this.schedulePrune();
      if (!more) return;
    }
    for (const f of p.eorOwed) if (!s.send(encodeEndOfRib(f, ctx))) return;
    p.eorOwed.clear();
    for (const f of p.eorrOwed)
      s.send(encodeRouteRefresh({ afi: f >> 8, safi: f & 255, subtype: RefreshSubtype.EndOfRouteRefresh }));
    p.eorrOwed.clear();
  }

  private peerStatus(p: Peer): PeerStatus {
    const s = p.established;
    const ctx = s?.fsm.ctx;
    const peerOpen = s?.fsm.peerOpen;
    const caps: string[] = [];
    if (ctx && peerOpen && s) {
      for (const f of ctx.families) caps.push(familyName(f));
      const ours = s.fsm.opts.open.caps;
      if (ours.routeRefresh && peerOpen.caps.routeRefresh) caps.push('route-refresh');
      if (ours.enhancedRouteRefresh && peerOpen.caps.enhancedRouteRefresh)
        caps.push('enhanced-route-refresh');
      if (ctx.as4) caps.push('4-octet-as');
      if (ctx.maxLength > 4096) caps.push('extended-message');
      if (ctx.addPathRx.size || ctx.addPathTx.size) caps.push('add-path');
      if (ours.gracefulRestart && peerOpen.caps.gracefulRestart) caps.push('graceful-restart');
    }
    return {
      address: p.cfg.address,
      port: p.cfg.port,
      asn: p.cfg.asn,
      type: p.cfg.asn === this.config.asn ? 'ibgp' : 'ebgp',
      state: p.stateName,
      since: p.since.toISOString(),
      lastError: p.lastError,
      holdTime: s?.fsm.holdTime ?? null,
      keepalive: s?.fsm.keepaliveTime ?? null,
      routerId: peerOpen ? formatIpv4(peerOpen.bgpId) : null,
      capabilities: caps,
      prefixesReceived: this.rib.countFrom(p.cfg.address),
      prefixesStale: this.rib.staleFrom(p.cfg.address),
      prefixesAdvertised: p.adjOut?.sentCount ?? 0,
      passive: !p.dials,
    };
  }
}

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

/**
 * The standalone speaker's next-hop resolver: a next hop is reachable when it is on a directly
 * connected subnet (cost 0). The interface list is read again at most once a second, and at most
 * every 200 ms while a next hop does not resolve (a link's RUNNING flag can lag its first
 * packets); `version` changes when the list does, so the RIB knows to look again.
 */
export function connectedResolver(): NextHopResolver & { version: number } {
  let nets: { v6: boolean; addr: bigint; mask: bigint }[] = [];
  let readAt = 0;
  let key = '';
  const toBig = (a: string): { v6: boolean; n: bigint } | undefined => {
    const x = normalizeAddress(a);
    try {
      if (!x.includes(':')) return { v6: false, n: BigInt(parseIpv4(x)) };
      return { v6: true, n: BigInt(`0x${Buffer.from(parseIpv6(x.split('%')[0]!)).toString('hex')}`) };
    } catch {
      return undefined;
    }
  };
  const r = {
    version: 0,
    read() {
      readAt = Date.now();
      const next: typeof nets = [];
      for (const addrs of Object.values(networkInterfaces())) {
        for (const a of addrs ?? []) {
          const b = toBig(a.address);
          if (!b || a.internal) continue;
          const bits = b.v6 ? 128 : 32;
          const len = Number(a.cidr?.split('/')[1] ?? bits);
          const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
          next.push({ v6: b.v6, addr: b.n & mask, mask });
        }
      }
      const k = next.map((n) => `${n.addr}/${n.mask}`).join(',');
      if (k !== key) {
        key = k;
        r.version++;
      }
      nets = next;
    },
    resolve(nh: string): number | undefined {
      if (nh.startsWith('fe80')) return 0;
      const t = toBig(nh.startsWith('::ffff:') && nh.includes('.') ? nh.slice(7) : nh);
      if (!t) return undefined;
      const find = () => nets.some((n) => n.v6 === t.v6 && (t.n & n.mask) === n.addr);
      const age = Date.now() - readAt;
      if (age > 1000) r.read();
      if (find()) return 0;
      if (age > 200) {
        r.read();
        if (find()) return 0;
      }
      return undefined;
    },
  };
  return r;
}

function v6Hops(hops: { v4?: string; v6: string[] }, routerId: string): string[] {
  return hops.v6.length ? hops.v6 : [`::ffff:${hops.v4 ?? routerId}`];
}

/**
 * Our next hops on the interface that carries a session: the session's own address for its
 * family, and for the other family an address of that family on the same interface (IPv6: the
 * global one, then the link-local one, as BIRD sends them).
 */
function nextHopsOn(local: string): { v4?: string; v6: string[] } {
  const v6Local = local.includes(':');
  for (const addrs of Object.values(networkInterfaces())) {
    if (!addrs?.some((a) => normalizeAddress(a.address) === local)) continue;
    const v4 = v6Local ? addrs.find((a) => a.family === 'IPv4')?.address : local;
    const global =
      v6Local && !local.startsWith('fe80')
        ? local
        : addrs.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'))?.address;
    const ll = addrs.find((a) => a.family === 'IPv6' && a.address.startsWith('fe80'))?.address;
    const v6 = global ? (ll ? [global, ll] : [global]) : [];
    return { v4, v6 };
  }
  return v6Local ? { v6: [local] } : { v4: local, v6: [] };
}
