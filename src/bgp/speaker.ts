/**
 * The BGP speaker, as a library: the composition root (STYLE.md §17) that wires a RIB, a
 * listener, one Peer per configured neighbor with its sessions, and what goes to each peer. It
 * decides little itself; each concern is a module of its own:
 *
 *   session.ts + fsm.ts       one connection: the RFC 4271 §8 FSM on a socket and a Clock
 *   peer.ts                   a neighbor's two sessions, collisions (RFC 4271 §6.8), its state
 *   listener.ts               the TCP listener; connections from unknown addresses are closed
 *   update-in.ts              UPDATE in: RFC 7606 checks, import policy, into the RIB
 *   peer-tx.ts                out: flush pacing, End-of-RIB, a peer's place in an update group
 *   update-group.ts           peers sent the same UPDATEs share an Adj-RIB-Out and one packing
 *   graceful-restart.ts       RFC 4724: the helper per peer, the restarting speaker's deferral
 *   gr-driver.ts              those two machines carried out: timers, stale marking, sweeps
 *   neighbor-config.ts        a neighbor's policy and its sessions' OPEN and timers
 *   origination.ts            the originated prefixes as local paths in the RIB
 *   reconfig.ts               neighbor list changes as a pure diff
 *   neighbors.ts              the neighbor set, those changes carried out
 *   best-routes.ts            the equal-cost next-hop set per prefix, for the kernel
 *   status.ts                 `twill status` and `twill routes` views
 *   host.ts                   the host's interfaces: connected next hops, NEXT_HOP self
 *   clock.ts                  time and timers, injected (a FakeClock in tests)
 *
 * API (what the agent and `twill speaker` use)
 * - `new Speaker(config, log, { clock, host, resolver, restarting, ... })`, `start()`, `stop()`.
 * - `setNeighbors(list)`: the neighbors, as a whole (level-triggered, STYLE.md §4): removed ones
 *   get Cease 6/3, changed session settings a new session (Cease 6/6), policy changes apply
 *   without a reset (RFC 2918 route refresh for new import rules).
 * - `setOriginated(prefixes)`: the prefixes we originate, as a whole; peers get the difference,
 *   written before it returns.
 * - `onRoutes(fn)`: best-route changes per prefix, each with every equal-cost next hop
 *   (`RouteChange`); the listener first gets every route there is, then changes.
 *   `onBestChange(fn)`: the RIB's deltas themselves (old and new best path).
 * - `status()`, `routes(filter)`: the views of status.ts.
 * - `port`: the listener's port (the kernel's pick for port 0).
 *
 * Capabilities offered: multiprotocol per the neighbor's families (RFC 4760), route refresh
 * (RFC 2918) and enhanced route refresh (RFC 7313), 4-octet AS (RFC 6793), extended message
 * (RFC 8654), graceful restart (RFC 4724) when enabled. Max-prefix per peer ends the session with
 * Cease 6/1 (RFC 4486). Shutdown sends Cease 6/2 with an RFC 8203 message, except to peers that
 * negotiated graceful restart: their connections close without a NOTIFICATION, so they keep our
 * routes while we restart.
 *
 * The RIB's dead slots (prefixes with no path left, rib.ts) are pruned once changes pause for
 * 100 ms: the speaker looks at the RIB's dead count after each change. Before listening, the
 * UPDATE path is run over a synthetic table (warmup.ts, "Warming the UPDATE path").
 */
import type { Socket } from 'node:net';
import { parseIpv4, parsePrefix } from '../net/addr.js';
import { BestRoutes, type RouteChange } from './best-routes.js';
import { BfdLink } from './bfd-link.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import type { NeighborConfig, SpeakerConfig } from './config.js';
import type { FsmState } from './fsm.js';
import { Deferral, type HelperDeps, helpPeer } from './gr-driver.js';
import {
  connectedResolver,
  type HostInterfaces,
  interfacesKey,
  normalizeAddress,
  osInterfaces,
} from './host.js';
import { Listener } from './listener.js';
import { collectGarbage, grewEnough, withoutYoungGrowth } from './release-memory.js';
import { fsmOptionsFor } from './neighbor-config.js';
import { Neighbors } from './neighbors.js';
import { Origination } from './origination.js';
import type { Peer } from './peer.js';
import { BATCH, FlushQueue, PROMPT_READ_BYTES, PeerTx, type TxShared } from './peer-tx.js';
import { TxGroups } from './update-group.js';
import type { LocalInfo } from './policy.js';
import { AttrTable } from './rib/attrs.js';
import { type Delta, type NextHopResolver, type PeerRef, Rib, SlotList } from './rib/rib.js';
import { Session, type SessionLog } from './session.js';
import { peerStatus, type RouteView, routeViews, type SpeakerStatus } from './status.js';
import { UpdateIn } from './update-in.js';
import { SMALL_WARM_UP, warmUp } from './warmup.js';
import { CeaseSubcode, type Family, familyName, RefreshSubtype } from './wire/constants.js';
import { encodeRouteRefresh } from './wire/route-refresh.js';
import type { DecodedUpdate } from './wire/update.js';
import { Writer } from './wire/writer.js';

export type { RouteChange } from './best-routes.js';
export { connectedResolver } from './host.js';
export type { RouteView } from './status.js';

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
  /** Next-hop resolution for learned paths; default: directly connected subnets (host.ts). */
  resolver?: NextHopResolver;
  /**
   * Run the UPDATE path over a synthetic table before listening (warmup.ts); default true, the
   * full warm-up. 'small': the warm-up for a node agent's tables (warmup.ts SMALL_WARM_UP).
   */
  warmUp?: boolean | 'small';
  /** Time and timers for the speaker and its sessions; default the event loop's (clock.ts). */
  clock?: Clock;
  /** The host's interfaces (next hops); default the operating system's (host.ts). */
  host?: HostInterfaces;
}

type SpeakerPeer = Peer<Session>;

export class Speaker {
  readonly rib: Rib;
  private readonly changed = new SlotList();
  private readonly exportTable = new AttrTable();
  private readonly peers: Neighbors<Session>;
  private readonly listener: Listener;
  private readonly updateIn: UpdateIn;
  private readonly tx: TxShared;
  private readonly origination: Origination;
  private readonly localId: number;
  private readonly local: PeerRef;
  private readonly me: LocalInfo;
  private stopped = false;
  /** Selection deferral (gr-driver.ts). */
  private readonly deferral: Deferral;
  private readonly helper: HelperDeps;
  private revalidateTimer: TimerHandle | undefined;
  /** Frees the RIB's dead slots once changes pause (rib.ts, prune). */
  private pruneTimer: TimerHandle | undefined;
  private releaseTimer: TimerHandle | undefined;
  /** The RIB's slot count at the last collection (release-memory.ts). */
  private collectedAt = 0;
  /** Best-path changes handed on so far (afterQuiet). */
  private changeCount = 0;
  private readonly clock: Clock;
  private readonly resolver: NextHopResolver & { read?: (snapshot?: HostInterfaces) => void };
  private readonly bestListeners: ((deltas: readonly Delta[]) => void)[] = [];
  /** BFD sessions of neighbors configured with `bfd`, made when the first one is established. */
  private bfdLink: BfdLink | undefined;
  private readonly routeListeners: ((changes: readonly RouteChange[]) => void)[] = [];
  private bestRoutes: BestRoutes | undefined;

  constructor(
    private readonly config: SpeakerConfig,
    private readonly log: Logger,
    private readonly options: SpeakerOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    const host = options.host ?? osInterfaces;
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
    this.resolver = options.resolver ?? connectedResolver(host, this.clock);
    this.rib = new Rib(config.decision, this.resolver);
    this.updateIn = new UpdateIn(this.rib, this.me);
    this.origination = new Origination(this.rib, this.local);
    this.tx = {
      rib: this.rib,
      exportTable: this.exportTable,
      me: this.me,
      clock: this.clock,
      host,
      flushes: new FlushQueue(this.clock),
      writer: new Writer(64 * 1024),
      afterBatch: () => this.schedulePrune(),
      batch: BATCH,
      groups: new TxGroups((id) => this.rib.countFrom(id) > 0),
    };
    this.listener = new Listener(log, (sock) => this.incoming(sock));
    this.deferral = new Deferral(
      !!options.restarting && config.gracefulRestart.enabled,
      this.clock,
      log,
      () => {
        for (const p of this.peers.values()) this.fill(p, true);
      },
    );
    this.helper = { rib: this.rib, clock: this.clock, log, fanOut: (d) => this.fanOut(d) };
    this.peers = new Neighbors<Session>({
      config,
      clock: this.clock,
      rib: this.rib,
      fanOut: (d) => this.fanOut(d),
      fill: (p) => this.fill(p),
      start: (p) => this.startPeer(p),
      importChanged: (p) => this.importChanged(p),
    });
    this.fanOut(this.origination.set(config.originate.map((p) => parsePrefix(p))));
  }

  /** The port the listener is bound to (the configured one, or the kernel's pick for port 0). */
  get port(): number | null {
    return this.listener.port;
  }

  /** Best-path changes as the RIB makes them (old and new best path per prefix). */
  onBestChange(fn: (deltas: readonly Delta[]) => void): void {
    this.bestListeners.push(fn);
  }

  /**
   * Best routes per prefix with every equal-cost next hop (best-routes.ts), for the kernel: first
   * every route there is, then each change.
   */
  onRoutes(fn: (changes: readonly RouteChange[]) => void): void {
    if (!this.bestRoutes) {
      this.bestRoutes = new BestRoutes(this.rib, this.config.decision);
      this.rib.reportEveryChange = true;
      this.bestRoutes.prime();
    }
    const now = this.bestRoutes.current();
    this.routeListeners.push(fn);
    if (now.length) fn(now);
  }

  async start(): Promise<void> {
    if (this.options.warmUp !== false) {
      const t0 = this.clock.now();
      // Its garbage goes now, not in a full collection while the first table loads; the young
      // generation is not grown for it (release-memory.ts).
      const w = this.options.warmUp;
      withoutYoungGrowth(() =>
        w === 'small' ? warmUp(undefined, SMALL_WARM_UP.rounds, SMALL_WARM_UP.manySets) : warmUp(),
      );
      collectGarbage();
      this.log.debug({ ms: Math.round(this.clock.now() - t0) }, 'UPDATE path warmed up');
    }
    const l = this.config.listen;
    if (l) await this.listener.listen(l.address, l.port);
    if (this.deferral.deferring) {
      this.deferral.step({ kind: 'start', deferralMs: this.config.gracefulRestart.deferralTime * 1000 });
      this.log.info(
        { seconds: this.config.gracefulRestart.deferralTime },
        'restarting: deferring advertisements until End-of-RIB from peers',
      );
    }
    for (const p of this.peers.values()) this.startPeer(p);
    this.revalidateTimer = this.clock.every(5000, () => this.recheckInterfaces());
  }

  /**
   * Every 5 s: next hops that did not resolve may resolve now (and the other way round), and our
   * own NEXT_HOP self may have moved with an address. One read of the interfaces serves both; the
   * update groups read their members' next hops again only when the interfaces changed.
   */
  private recheckInterfaces(): void {
    const ifs = this.tx.host.interfaces();
    const once: HostInterfaces = { interfaces: () => ifs };
    this.resolver.read?.(once);
    const key = interfacesKey(ifs);
    if (key !== this.interfacesKey) {
      this.interfacesKey = key;
      this.tx.groups.forgetNextHops(once);
    }
    this.fanOut(this.rib.revalidate());
  }
  /** The interfaces at the last 5 s check (host.ts interfacesKey); '' before the first. */
  private interfacesKey = '';

  /**
   * Stop every session and the listener. With graceful restart, GR-capable peers see the
   * connection close without a NOTIFICATION and keep our routes; the rest get Cease 6/2.
   */
  async stop(message = 'Twill is shutting down'): Promise<void> {
    this.stopped = true;
    this.listener.close();
    for (const p of this.peers.values()) {
      const s = p.established;
      if (s && this.config.gracefulRestart.enabled && p.peerOpen?.caps.gracefulRestart) {
        this.log.info(
          { peer: p.address },
          'closing without NOTIFICATION: the peer keeps our routes (graceful restart)',
        );
        s.dispose();
      }
      p.stop(CeaseSubcode.AdministrativeShutdown, message);
      p.restartTimer?.cancel();
    }
    // BFD says AdminDown to its peers (no failure, RFC 5882 §3.2) while the NOTIFICATIONs go out.
    const bfdStopped = this.bfdLink?.stop();
    this.deferral.cancel();
    this.revalidateTimer?.cancel();
    this.pruneTimer?.cancel();
    this.releaseTimer?.cancel();
    // Let the NOTIFICATIONs reach the wire.
    await this.clock.sleep(50);
    for (const p of this.peers.values()) for (const s of p.sessions()) s.dispose();
    await bfdStopped;
  }

  /**
   * Replace the originated set; peers get the difference, written now rather than at the loop's
   * next turn (as after a small read: the caller's change is the whole batch). A node agent
   * relies on it: a withdrawn block is on the wire before its blackhole goes.
   */
  setOriginated(prefixes: readonly string[]): void {
    this.fanOut(this.origination.set(prefixes.map((p) => parsePrefix(p))));
    this.tx.flushes.run();
  }

  /**
   * The neighbors to peer with, as a whole (level-triggered): neighbors not in the list are
   * removed with Cease 6/3, new ones start, and changes take effect as reconfig.ts lays out
   * (a new session for changed session settings, Cease 6/6; policy without a reset).
   */
  setNeighbors(list: readonly NeighborConfig[]): void {
    this.peers.apply(list);
    void this.bfdLink?.retain(new Set(list.filter((n) => n.bfd).map((n) => n.address)));
  }

  status(): SpeakerStatus {
    const l = this.config.listen;
    return {
      routerId: this.config.routerId,
      asn: this.config.asn,
      listen: l ? { address: l.address, port: this.listener.port ?? l.port } : null,
      peers: [...this.peers.values()].map((p) => {
        const bfd = p.cfg.bfd ? this.bfdLink?.state(p.address) : undefined;
        return {
          ...peerStatus(p, this.rib, this.config.asn),
          ...(p.cfg.bfd ? { bfd: bfd?.state ?? 'Down' } : {}),
        };
      }),
    };
  }

  /** BFD sessions by state and state changes so far; undefined while no neighbor uses BFD. */
  bfdStats(): { byState: Record<string, number>; transitions: number } | undefined {
    return this.bfdLink?.stats();
  }

  /** The Loc-RIB with every candidate path and why the best won (`twill routes`). */
  routes(filter?: string): RouteView[] {
    return routeViews(this.rib, filter);
  }

  // ---- routes: origination, fan-out, prune ----

  /** Whether changes must come as Deltas (someone outside BGP listens) rather than slots. */
  private get wantDeltas(): boolean {
    return this.bestListeners.length > 0 || this.routeListeners.length > 0;
  }

  /**
   * Best-path changes, in either form, to every established peer (unless selection is deferred)
   * and to the listeners outside BGP. A SlotList is emptied for the next UPDATE.
   */
  private fanOut(changes: SlotList | readonly Delta[]): void {
    this.changeCount++;
    this.tx.groups.fanOut(changes, !this.deferral.deferring);
    if (changes instanceof SlotList) changes.length = 0;
    else if (changes.length > 0) {
      for (const fn of this.bestListeners) fn(changes);
      if (this.bestRoutes && this.routeListeners.length > 0) {
        const routes = this.bestRoutes.changes(changes);
        if (routes.length) for (const fn of this.routeListeners) fn(routes);
      }
    }
    this.schedulePrune();
    if (grewEnough(this.rib.slotCount, this.collectedAt)) this.scheduleRelease();
  }

  /** The tables grew: once changes pause (afterQuiet, 200 ms), their old arrays are collected. */
  private scheduleRelease(): void {
    if (this.stopped || this.releaseTimer) return;
    this.releaseTimer = this.afterQuiet(200, () => {
      this.releaseTimer = undefined;
      this.collectedAt = this.rib.slotCount;
      collectGarbage();
    });
  }

  /**
   * After a change: if the RIB has dead slots, or either attribute table has sets with no
   * reference, prune and sweep them once changes pause (afterQuiet, 100 ms). Looking costs a
   * field read per change; the RIB calling back as each slot dies would put a call in the
   * per-prefix path (see "Warming the UPDATE path" in warmup.ts).
   */
  private schedulePrune(): void {
    if (this.stopped || this.pruneTimer) return;
    if (this.rib.deadCount === 0 && this.rib.attrs.deadCount === 0 && this.exportTable.deadCount === 0)
      return;
    this.pruneTimer = this.afterQuiet(100, () => {
      this.pruneTimer = undefined;
      this.rib.prune();
      this.exportTable.sweep();
    });
  }

  /**
   * Run `fn` once `ms` have passed without a change (`changeCount`). A timer armed once and
   * armed again when it finds that changes came, rather than moved at every change: moving a
   * timer is a call into libuv, and a table of many attribute sets is tens of thousands of
   * changes a second. It fires between `ms` and twice `ms` after the last change.
   */
  private afterQuiet(ms: number, fn: () => void): TimerHandle {
    let seen = this.changeCount;
    const t = this.clock.after(ms, () => {
      if (this.changeCount !== seen && !this.stopped) {
        seen = this.changeCount;
        t.refresh();
        return;
      }
      fn();
    });
    return t;
  }

  /** What an established peer should hold, from the whole Loc-RIB (unless deferred). */
  private fill(p: SpeakerPeer, initial = false): void {
    if (p.tx && !this.deferral.deferring) p.tx.fill(initial);
  }

  /** New import rules, the session kept: ask for a route refresh (RFC 2918), else reset it. */
  private importChanged(p: SpeakerPeer): void {
    const s = p.established!;
    if (s.fsm.peerOpen?.caps.routeRefresh) {
      for (const f of s.fsm.ctx!.families)
        s.send(encodeRouteRefresh({ afi: f >> 8, safi: f & 255, subtype: RefreshSubtype.Normal }));
      this.log.info({ peer: p.address }, 'import rules changed: asked the peer for a route refresh');
    } else
      s.feed({
        type: 'AutomaticStop',
        subcode: CeaseSubcode.OtherConfigurationChange,
        message: 'import policy changed',
      });
  }

  // ---- sessions ----

  private newSession(p: SpeakerPeer, direction: 'out' | 'in', socket?: Socket): Session {
    const n = p.cfg;
    return new Session({
      fsm: fsmOptionsFor(this.config, n, this.localId, {
        passive: direction === 'in',
        restarting: !!this.options.restarting,
        idleHoldMinMs: this.options.idleHoldMinMs,
        idleHoldMaxMs: this.options.idleHoldMaxMs,
      }),
      remote: { address: n.address, port: n.port },
      localAddress: n.localAddress ?? undefined,
      direction,
      socket,
      log: this.log,
      sendHoldMs: this.options.sendHoldMs,
      clock: this.clock,
      callbacks: {
        state: (s, _from, to) => this.onState(p, s, to),
        openConfirm: (s) => {
          const loser = p.openConfirm(s, this.localId);
          if (loser)
            this.log.info(
              { peer: p.address, dumped: loser.direction },
              'connection collision resolved (RFC 4271 §6.8)',
            );
        },
        established: (s) => this.onEstablished(p, s),
        down: (s, info) => this.onDown(p, s, info),
        update: (s, u) => this.onUpdate(p, s, u),
        refresh: (s, r) => this.onRefresh(p, s, r),
        notificationSent: (_s, n) => p.notificationSent(n),
        drain: () => p.tx?.drained(),
        readDone: (_s, bytes) => {
          if (bytes <= PROMPT_READ_BYTES) this.tx.flushes.run();
        },
      },
    });
  }

  private startPeer(p: SpeakerPeer): void {
    p.start(() => this.newSession(p, 'out'));
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
    p.accept(() => this.newSession(p, 'in', sock));
  }

  private onState(p: SpeakerPeer, s: Session, to: FsmState): void {
    if (p.sessionStateChanged())
      this.log.info({ peer: p.address, state: p.stateName, session: s.direction, to }, 'peer state');
  }

  private onEstablished(p: SpeakerPeer, s: Session): void {
    const ctx = s.fsm.ctx!;
    const open = s.fsm.peerOpen!;
    p.establishedOn(s);
    if (p.cfg.bfd && s.localAddress) {
      this.bfdLink ??= new BfdLink((peer) => this.onBfdDown(peer), this.log);
      void this.bfdLink.want(p.address, normalizeAddress(s.localAddress), p.cfg.bfd);
    }
    this.log.info(
      { peer: p.address, holdTime: s.fsm.holdTime, families: [...ctx.families].map(familyName) },
      'session established',
    );
    p.peerOpen = open;
    p.ref = {
      id: p.address,
      asn: p.cfg.asn,
      routerId: open.bgpId >>> 0,
      ebgp: p.cfg.asn !== this.config.asn,
      local: false,
      rrClient: p.cfg.routeReflectorClient,
    };
    p.eorSeen.clear();
    // Graceful restart helper: the peer came back. Families it no longer preserves lose their
    // stale paths now; the rest wait for its End-of-RIB.
    helpPeer(
      p,
      { kind: 'established', cap: open.caps.gracefulRestart, negotiated: ctx.families },
      this.helper,
    );
    p.tx?.close();
    p.tx = new PeerTx(this.tx, s, ctx, p.ref, p.policy, this.peers.isReflector());
    this.fill(p, true);
    this.deferral.step({
      kind: 'established',
      peer: p.address,
      gracefulRestart: !!open.caps.gracefulRestart,
      families: ctx.families,
    });
  }

  private onDown(p: SpeakerPeer, s: Session, info: Parameters<SpeakerPeer['sessionDown']>[1]): void {
    this.log.info(
      { peer: p.address, session: s.direction, reason: info.reason },
      info.wasEstablished ? 'session down' : 'connection closed',
    );
    if (info.wasEstablished) {
      p.tx?.close();
      p.tx = undefined;
      this.schedulePrune();
      p.ref = undefined;
      // RFC 4724 §4.2: a session that ends without a NOTIFICATION keeps a GR peer's routes, stale.
      helpPeer(
        p,
        {
          kind: 'down',
          enabled: this.config.gracefulRestart.enabled,
          cap: p.peerOpen?.caps.gracefulRestart,
          notification: !!info.received || !!info.sent,
          final: p.removed || this.stopped,
        },
        this.helper,
      );
      this.deferral.step({ kind: 'down', peer: p.address });
    }
    p.sessionDown(s, info, this.stopped);
  }

  private onUpdate(p: SpeakerPeer, s: Session, u: DecodedUpdate): void {
    const from = p.ref;
    if (!from) return;
    // The RIB's changes in their compact form (a slot per changed prefix, rib.ts), unless
    // someone outside BGP listens for deltas.
    const changed: SlotList | Delta[] = this.wantDeltas ? [] : this.changed;
    // Split horizon: a peer sending routes leaves a group shared with others (update-group.ts).
    if (u.nlri.length > 0 || u.mpReach) p.tx?.announcing();
    const rejected = this.updateIn.receive(u, from, p.policy, s.localAddress, s.fsm.ctx!.as4, changed);
    for (const e of u.errors)
      this.log.warn({ peer: from.id, action: e.action, code: e.code, subcode: e.subcode }, e.message);
    if (rejected !== undefined)
      this.log.debug({ peer: from.id, reason: rejected }, 'path rejected on import');
    this.fanOut(changed);
    const max = p.cfg.maxPrefix;
    if (max !== null && this.rib.countFrom(from.id) > max) {
      this.log.warn({ peer: from.id, max }, 'maximum number of prefixes reached');
      s.feed({
        type: 'AutomaticStop',
        subcode: CeaseSubcode.MaxPrefixes,
        message: `more than ${max} prefixes`,
      });
    }
    if (u.endOfRib !== undefined) {
      p.eorSeen.add(u.endOfRib);
      helpPeer(p, { kind: 'endOfRib', family: u.endOfRib }, this.helper);
      this.deferral.step({ kind: 'endOfRib', peer: p.address, family: u.endOfRib });
    }
  }

  /** RFC 5882 §10.2: the BFD session went Down, so does the BGP session (Cease 6/10, RFC 9384). */
  private onBfdDown(peer: string): void {
    const p = this.peers.get(peer);
    if (!p) return;
    const s = p.established;
    if (s) {
      this.log.warn({ peer }, 'BFD session down: closing the BGP session');
      s.feed({ type: 'AutomaticStop', subcode: CeaseSubcode.BfdDown, message: 'BFD session down' });
    }
    // Stale routes kept for a restart (the session closed first): the path is dead, they go.
    if (p.restartTimer) {
      this.log.warn({ peer, stale: this.rib.staleFrom(peer) }, 'BFD session down: dropping stale routes');
      p.restartTimer.cancel();
      p.restartTimer = undefined;
      helpPeer(p, { kind: 'restartTimeExpired' }, this.helper);
    }
  }

  private onRefresh(p: SpeakerPeer, s: Session, r: { afi: number; safi: number; subtype: number }): void {
    if (r.subtype !== RefreshSubtype.Normal) return; // BoRR/EoRR from the peer need nothing here.
    const fam = ((r.afi << 8) | r.safi) as Family;
    if (!s.fsm.ctx?.families.has(fam) || !p.tx) return;
    p.tx.refresh(fam, !!s.fsm.peerOpen?.caps.enhancedRouteRefresh);
  }
}
