/**
 * The speaker: the listener, one Peer per configured neighbor, connection collisions, what we
 * originate, and what each neighbor sent us. With session.ts, the only I/O in bgp/.
 *
 * - Listener (IPv4 and IPv6, configurable address and port). A connection from an address that
 *   is not a configured neighbor is destroyed at once and logged: no OPEN, no FSM.
 * - Peer: at most two sessions at a time, `out` (we dial; absent for a passive neighbor or the
 *   higher address under the Calico mesh rule) and `in` (accepted). When a session reaches
 *   OpenConfirm, the other one is checked (RFC 4271 §6.8): against an Established one the new
 *   session is dumped; against one in OpenSent/OpenConfirm the lower BGP Identifier's outgoing
 *   connection loses (the connection opened by the higher identifier survives); a dial still
 *   in progress is stopped. The loser gets OpenCollisionDump and sends Cease 6/7. An outgoing
 *   session that lost is paused until the winner goes down, so it does not redial into a
 *   collision every backoff.
 * - Capabilities we offer: multiprotocol per the neighbor's families, route refresh and enhanced
 *   route refresh (RFC 7313), 4-octet AS, extended message (RFC 8654). The negotiated codec
 *   context comes from both OPENs (wire/context.ts).
 * - Originate: `setOriginated(prefixes)` replaces the whole set (level-triggered, STYLE.md §4);
 *   each Established peer is sent only the difference. Changes coalesce per peer in a map of
 *   prefix -> announce/withdraw and go out at the next turn of the event loop, packed many NLRI
 *   per UPDATE (wire/update.ts packUpdates), and only while the socket takes them: a slow peer
 *   holds at most one pending entry per prefix, never a growing queue. End-of-RIB for each family
 *   follows the initial table. Attributes: ORIGIN IGP, AS_PATH empty (iBGP) or our AS (eBGP),
 *   NEXT_HOP our address on the session; for the other family, an address of that family on the
 *   same interface (IPv6: global, then link-local), else the router id (IPv4-mapped for IPv6);
 *   LOCAL_PREF 100 to iBGP peers.
 * - Received routes: kept per peer (Adj-RIB-In) after the RFC 7606 actions (treat-as-withdraw
 *   turns announcements into withdrawals), the peer-dependent checks of wire/validate.ts, and AS
 *   loop rejection (a path holding our own AS is not kept).
 *   Best-path selection and re-advertisement between peers arrive with the RIB; in this mode
 *   nothing learned is passed on, and the kernel is never written.
 * - Route refresh: a ROUTE-REFRESH is answered by re-sending our Adj-RIB-Out for that family,
 *   wrapped in BoRR/EoRR when enhanced route refresh was negotiated (RFC 7313 §4).
 * - Removal or shutdown: Cease 6/3 (peer de-configured) or 6/2 (administrative shutdown) with an
 *   RFC 8203 message.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { formatIpv4, type PrefixKey, parseIpv4, parsePrefix } from '../net/addr.js';
import type { NeighborConfig, SpeakerConfig } from './config.js';
import { dialsNeighbor } from './config.js';
import { DEFAULT_TIMERS, type FsmOptions, FsmState } from './fsm.js';
import { normalizeAddress, Session, type SessionLog } from './session.js';
import type { NotificationRecord, PeerStateName, PeerStatus, SpeakerStatus } from './status.js';
import type { PathAttributes } from './wire/attributes.js';
import {
  AsPathSegmentType,
  CeaseSubcode,
  type Family,
  familyName,
  IPV4_UNICAST,
  IPV6_UNICAST,
  Origin,
  RefreshSubtype,
} from './wire/constants.js';
import { ErrorAction } from './wire/error.js';
import { makeOpen } from './wire/open.js';
import { encodeRouteRefresh } from './wire/route-refresh.js';
import { type DecodedUpdate, encodeEndOfRib, packUpdates } from './wire/update.js';
import { validateUpdate } from './wire/validate.js';
import { Writer } from './wire/writer.js';

export interface Logger extends SessionLog {
  error(obj: object, msg: string): void;
}

/** A route a neighbor sent us, as kept in its Adj-RIB-In. */
export interface ReceivedRoute {
  prefix: PrefixKey;
  attrs: PathAttributes;
  /** IPv4 NEXT_HOP or the MP_REACH_NLRI next hops. */
  nextHops: string[];
}

export interface SpeakerTimers {
  /** ms; tests shorten these. */
  idleHoldMinMs?: number;
  idleHoldMaxMs?: number;
  sendHoldMs?: number;
}

const familyOf = (k: PrefixKey): Family => (typeof k === 'number' ? IPV4_UNICAST : IPV6_UNICAST);

class Peer {
  out: Session | undefined;
  in: Session | undefined;
  /** The out session lost a collision and waits for the winner to go down. */
  outPaused = false;
  readonly adjIn = new Map<PrefixKey, ReceivedRoute>();
  /** What the peer holds from us (Adj-RIB-Out, prefixes only: one attribute set per family). */
  readonly adjOut = new Set<PrefixKey>();
  /** Changes not yet sent: true announce, false withdraw. */
  readonly pending = new Map<PrefixKey, boolean>();
  /** Families whose End-of-RIB is owed after the initial table; BoRR owed an EoRR. */
  eorOwed = new Set<Family>();
  eorrOwed = new Set<Family>();
  flushScheduled = false;
  stateName: PeerStateName = 'Idle';
  since = new Date();
  lastError: PeerStatus['lastError'] = null;
  removed = false;

  constructor(
    readonly cfg: NeighborConfig,
    readonly dials: boolean,
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

export class Speaker {
  private readonly peers = new Map<string, Peer>();
  private readonly servers: Server[] = [];
  private originated = new Set<PrefixKey>();
  private readonly localId: number;
  private readonly writer = new Writer(64 * 1024);
  private boundPort: number | null = null;
  private stopped = false;

  constructor(
    private readonly config: SpeakerConfig,
    private readonly log: Logger,
    private readonly timers: SpeakerTimers = {},
  ) {
    this.localId = parseIpv4(config.routerId);
    for (const p of config.originate) this.originated.add(parsePrefix(p));
    for (const n of config.neighbors) this.peers.set(n.address, new Peer(n, dialsNeighbor(config, n)));
  }

  /** The port the listener is bound to (the configured one, or the kernel's pick for port 0). */
  get port(): number | null {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const l = this.config.listen;
    if (l) {
      const server = createServer({ pauseOnConnect: true }, (sock) => this.incoming(sock));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: l.address, port: l.port, ipv6Only: false }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
      const addr = server.address();
      this.boundPort = typeof addr === 'object' && addr ? addr.port : l.port;
      this.servers.push(server);
      this.log.info({ address: l.address, port: this.boundPort }, 'listening for BGP connections');
    }
    for (const p of this.peers.values()) this.startPeer(p);
  }

  /** Cease 6/2 with `message` to every peer, close the listener. Leaves nothing running. */
  async stop(message = 'Twill is shutting down'): Promise<void> {
    this.stopped = true;
    for (const s of this.servers) s.close();
    for (const p of this.peers.values()) this.stopPeer(p, CeaseSubcode.AdministrativeShutdown, message);
    // Let the NOTIFICATIONs reach the wire.
    await new Promise((r) => setTimeout(r, 50));
    for (const p of this.peers.values()) for (const s of p.sessions()) s.dispose();
  }

  /** Replace the originated set; established peers get the difference. */
  setOriginated(prefixes: string[]): void {
    const next = new Set(prefixes.map((p) => parsePrefix(p)));
    for (const p of this.peers.values()) {
      if (!p.established) continue;
      for (const k of next) if (!p.adjOut.has(k) || p.pending.get(k) === false) this.queue(p, k, true);
      for (const k of p.adjOut) if (!next.has(k)) this.queue(p, k, false);
      for (const [k, ann] of p.pending) if (ann && !next.has(k)) p.pending.delete(k);
    }
    this.originated = next;
  }

  /** Remove a neighbor: Cease 6/3 (RFC 4486) and forget it. */
  removeNeighbor(address: string, message = 'neighbor removed from the configuration'): void {
    const p = this.peers.get(address);
    if (!p) return;
    p.removed = true;
    this.stopPeer(p, CeaseSubcode.PeerDeconfigured, message);
    this.peers.delete(address);
  }

  addNeighbor(n: NeighborConfig): void {
    if (this.peers.has(n.address)) throw new Error(`neighbor ${n.address} already configured`);
    const p = new Peer(n, dialsNeighbor(this.config, n));
    this.peers.set(n.address, p);
    this.startPeer(p);
  }

  /** Each neighbor's Adj-RIB-In. */
  received(): { peer: string; routes: ReceivedRoute[] }[] {
    return [...this.peers.values()].map((p) => ({ peer: p.cfg.address, routes: [...p.adjIn.values()] }));
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

  // ---- peers and sessions ----

  private fsmOptions(p: Peer, passive: boolean): FsmOptions {
    const n = p.cfg;
    return {
      localAs: this.config.asn,
      localId: this.localId,
      peerAs: n.asn,
      open: makeOpen(this.config.asn, n.holdTime, this.localId, {
        multiprotocol: n.families,
        routeRefresh: true,
        enhancedRouteRefresh: true,
        extendedMessage: true,
      }),
      minHoldTime: DEFAULT_TIMERS.minHoldTime,
      connectRetryMs: n.connectRetry * 1000,
      passive,
      idleHoldMinMs: this.timers.idleHoldMinMs ?? DEFAULT_TIMERS.idleHoldMinMs,
      idleHoldMaxMs: this.timers.idleHoldMaxMs ?? DEFAULT_TIMERS.idleHoldMaxMs,
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
      sendHoldMs: this.timers.sendHoldMs,
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
            at: new Date().toISOString(),
          };
        },
        drain: () => this.scheduleFlush(p),
      },
    });
  }

  private startPeer(p: Peer): void {
    if (!p.dials) {
      p.stateName = 'Active';
      p.since = new Date();
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
    if (p.in) {
      if (p.in.state === FsmState.Established) {
        // RFC 4271 §6.8: keep the established session; this one is dumped at OpenConfirm.
        this.log.info({ peer: remote }, 'second connection while established');
      } else {
        p.in.dispose();
      }
    }
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
    // The peer's state is its best session's.
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
      p.since = new Date();
      this.log.info({ peer: p.cfg.address, state: name, session: s.direction, to }, 'peer state');
    }
  }

  private onEstablished(p: Peer, s: Session): void {
    const ctx = s.fsm.ctx!;
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
    p.adjOut.clear();
    p.pending.clear();
    p.eorOwed = new Set([...ctx.families].filter((f) => f === IPV4_UNICAST || f === IPV6_UNICAST));
    for (const k of this.originated) if (ctx.families.has(familyOf(k))) p.pending.set(k, true);
    this.scheduleFlush(p);
  }

  private onDown(
    p: Peer,
    s: Session,
    info: {
      wasEstablished: boolean;
      reason: string;
      received?: { code: number; subcode: number; text: string };
    },
  ): void {
    if (info.received) {
      p.lastError = {
        direction: 'received',
        code: info.received.code,
        subcode: info.received.subcode,
        text: info.received.text,
        at: new Date().toISOString(),
      } satisfies NotificationRecord;
    } else if (!p.lastError || p.lastError.direction === 'local' || info.wasEstablished) {
      if (!/^sent /.test(info.reason) && info.reason !== 'stopped')
        p.lastError = { direction: 'local', text: info.reason, at: new Date().toISOString() };
    }
    this.log.info(
      { peer: p.cfg.address, session: s.direction, reason: info.reason },
      info.wasEstablished ? 'session down' : 'connection closed',
    );
    if (info.wasEstablished) {
      p.adjIn.clear();
      p.adjOut.clear();
      p.pending.clear();
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
        const t = setTimeout(() => out.feed({ type: 'ManualStart' }), p.cfg.connectRetry * 250);
        t.unref();
      }
    }
    if (!p.dials && !p.in) {
      p.stateName = 'Active';
      p.since = new Date();
    }
  }

  private onUpdate(p: Peer, s: Session, u: DecodedUpdate): void {
    validateUpdate(u, {
      ebgp: p.cfg.asn !== this.config.asn,
      peerAs: p.cfg.asn,
      localAddress: s.localAddress,
    });
    for (const e of u.errors)
      this.log.warn({ peer: p.cfg.address, action: e.action, code: e.code, subcode: e.subcode }, e.message);
    // RFC 4271 §9.1.2: a path that already holds our AS is a loop; it is not kept (and, like a
    // withdrawal, replaces what the peer sent before for those prefixes).
    const loop = u.attrs.asPath?.some((seg) => seg.asns.includes(this.config.asn)) ?? false;
    const withdraw = u.action === ErrorAction.TreatAsWithdraw || loop;
    for (const k of u.withdrawn) p.adjIn.delete(k);
    if (u.mpUnreach) for (const k of u.mpUnreach.prefixes) p.adjIn.delete(k);
    const nh = u.attrs.nextHop;
    for (const k of u.nlri) {
      if (withdraw) p.adjIn.delete(k);
      else p.adjIn.set(k, { prefix: k, attrs: u.attrs, nextHops: nh ? [nh] : [] });
    }
    const r = u.mpReach;
    if (r && (r.afi === 1 || r.afi === 2) && r.safi === 1) {
      for (const k of r.prefixes) {
        if (withdraw) p.adjIn.delete(k);
        else p.adjIn.set(k, { prefix: k, attrs: u.attrs, nextHops: r.nextHops });
      }
    }
  }

  private onRefresh(p: Peer, s: Session, r: { afi: number; safi: number; subtype: number }): void {
    if (r.subtype !== RefreshSubtype.Normal) return; // BoRR/EoRR from the peer: nothing to do here yet.
    const fam = (r.afi << 8) | r.safi;
    const ctx = s.fsm.ctx;
    if (!ctx?.families.has(fam)) return;
    if (s.fsm.peerOpen?.caps.enhancedRouteRefresh) {
      s.send(
        encodeRouteRefresh({ afi: r.afi, safi: r.safi, subtype: RefreshSubtype.BeginningOfRouteRefresh }),
      );
      p.eorrOwed.add(fam);
    }
    for (const k of p.adjOut) if (familyOf(k) === fam) p.pending.set(k, true);
    this.scheduleFlush(p);
  }

  // ---- sending ----

  private queue(p: Peer, k: PrefixKey, announce: boolean): void {
    p.pending.set(k, announce);
    this.scheduleFlush(p);
  }

  private scheduleFlush(p: Peer): void {
    if (p.flushScheduled) return;
    p.flushScheduled = true;
    setImmediate(() => {
      p.flushScheduled = false;
      this.flush(p);
    });
  }

  private attrsFor(p: Peer, s: Session, fam: Family): { attrs: PathAttributes; nextHops?: string[] } {
    const ebgp = p.cfg.asn !== this.config.asn;
    const local = s.localAddress ?? this.config.routerId;
    const attrs: PathAttributes = {
      origin: Origin.Igp,
      asPath: ebgp ? [{ type: AsPathSegmentType.AsSequence, asns: [this.config.asn] }] : [],
    };
    if (!ebgp) attrs.localPref = 100;
    const hops = nextHopsOn(local);
    if (fam === IPV4_UNICAST) {
      attrs.nextHop = hops.v4 ?? this.config.routerId;
      return { attrs };
    }
    return { attrs, nextHops: hops.v6.length ? hops.v6 : [`::ffff:${hops.v4 ?? this.config.routerId}`] };
  }

  /** Send pending changes while the socket takes them; the rest waits for 'drain'. */
  private flush(p: Peer): void {
    const s = p.established;
    if (!s || !s.writable) return;
    const ctx = s.fsm.ctx!;
    const BATCH = 8192;
    while (p.pending.size > 0) {
      const ann: Record<number, PrefixKey[]> = { [IPV4_UNICAST]: [], [IPV6_UNICAST]: [] };
      const wd: Record<number, PrefixKey[]> = { [IPV4_UNICAST]: [], [IPV6_UNICAST]: [] };
      let n = 0;
      for (const [k, a] of p.pending) {
        p.pending.delete(k);
        const f = familyOf(k);
        if (!ctx.families.has(f)) continue;
        if (a) {
          ann[f]!.push(k);
          p.adjOut.add(k);
        } else if (p.adjOut.delete(k)) {
          wd[f]!.push(k);
        }
        if (++n >= BATCH) break;
      }
      const w = this.writer.reset();
      for (const f of [IPV4_UNICAST, IPV6_UNICAST]) {
        if (wd[f]!.length) packUpdates(w, { family: f, prefixes: wd[f]!, withdraw: true }, ctx);
        if (ann[f]!.length) packUpdates(w, { family: f, prefixes: ann[f]!, ...this.attrsFor(p, s, f) }, ctx);
      }
      if (w.pos > 0 && !s.send(w.take())) return;
    }
    for (const f of p.eorOwed) if (!s.send(encodeEndOfRib(f, ctx))) return;
    p.eorOwed.clear();
    for (const f of p.eorrOwed) {
      s.send(encodeRouteRefresh({ afi: f >> 8, safi: f & 255, subtype: RefreshSubtype.EndOfRouteRefresh }));
    }
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
      if (peerOpen.caps.gracefulRestart) caps.push('graceful-restart(peer)');
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
      prefixesReceived: p.adjIn.size,
      prefixesAdvertised: p.adjOut.size,
      passive: !p.dials,
    };
  }
}

/**
 * Our next hops on the interface that carries a session: the session's own address for its
 * family, and for the other family an address of that family on the same interface (IPv6: the
 * global one, then the link-local one, as BIRD sends them). Without one, callers fall back to
 * the router id or its IPv4-mapped IPv6 form.
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
