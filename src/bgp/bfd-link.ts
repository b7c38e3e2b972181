/**
 * BGP over BFD, as BIRD's `bfd on` couples them (RFC 5882 §10.2, "BFD for BGP"): a neighbor
 * with `bfd` configured gets a BFD session (src/bfd, RFC 5880/5881) to its address from the
 * local address of its first Established session, kept while the neighbor is configured with
 * BFD. When that BFD session goes from Up to Down (detection time expired, or the remote said
 * Down or AdminDown) and the BGP session is Established, the session is closed with Cease
 * subcode 10, "BFD Down" (RFC 9384); it comes back by the FSM's usual rules. Routes the peer
 * left behind as a graceful restart's stale routes go at once too (RFC 5882 §4.3.2): its TCP
 * session may be gone already (a killed process), but a path BFD finds dead is no restart to
 * wait for. A remote that says AdminDown (RFC 5882 §3.2: switched off, as a peer restarting
 * gracefully does) is no failure, and nothing happens. BFD never brings a
 * session up, and a BFD session that never came Up does not hold BGP down (a peer without BFD
 * still peers, as with BIRD).
 *
 * One BFD endpoint per local address, shared by the neighbors reached from it.
 */
import { BfdState, STATE_NAMES } from '../bfd/packet.js';
import { BfdEndpoint, type PeerStatus as BfdPeerStatus } from '../bfd/udp.js';
import type { BfdNeighborConfig } from './config.js';

export interface BfdLinkLog {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export class BfdLink {
  private readonly endpoints = new Map<string, Promise<BfdEndpoint>>();
  private readonly wanted = new Map<string, { local: string; key: string }>();
  private stopped = false;
  /** State changes seen, for a monotonic counter (sessions come and go). */
  transitions = 0;

  constructor(
    private readonly onDown: (peer: string, diag: number) => void,
    private readonly log: BfdLinkLog,
  ) {}

  /** A BFD session to `peer` from `local` with these timers (idempotent). */
  async want(peer: string, local: string, c: BfdNeighborConfig): Promise<void> {
    const key = `${local}/${c.minTxMs}/${c.minRxMs}/${c.multiplier}`;
    if (this.stopped || this.wanted.get(peer)?.key === key) return;
    await this.drop(peer);
    this.wanted.set(peer, { local, key });
    try {
      const ep = await this.endpoint(local);
      if (this.wanted.get(peer)?.key !== key) return;
      await ep.addPeer(peer, {
        desiredMinTxUs: c.minTxMs * 1000,
        requiredMinRxUs: c.minRxMs * 1000,
        detectMult: c.multiplier,
      });
    } catch (err) {
      this.wanted.delete(peer);
      this.log.warn({ peer, local, err: (err as Error).message }, 'cannot start BFD for this neighbor');
    }
  }

  async drop(peer: string): Promise<void> {
    const w = this.wanted.get(peer);
    if (!w) return;
    this.wanted.delete(peer);
    const ep = await this.endpoints.get(w.local)?.catch(() => undefined);
    await ep?.removePeer(peer);
  }

  /** Drop the BFD sessions of peers not in `keep`. */
  async retain(keep: ReadonlySet<string>): Promise<void> {
    for (const peer of [...this.wanted.keys()]) if (!keep.has(peer)) await this.drop(peer);
  }

  state(peer: string): BfdPeerStatus | undefined {
    for (const p of this.endpoints.values()) {
      // Settled endpoints only; a pending one has no sessions yet.
      const ep = settled.get(p);
      const s = ep?.status().find((x) => x.peer === peer);
      if (s) return s;
    }
    return undefined;
  }

  /** Sessions by state and the state changes so far (metrics). */
  stats(): { byState: Record<string, number>; transitions: number } {
    const byState: Record<string, number> = {};
    for (const s of this.all()) byState[s.state] = (byState[s.state] ?? 0) + 1;
    return { byState, transitions: this.transitions };
  }

  /** Every BFD session: for metrics. */
  all(): BfdPeerStatus[] {
    const out: BfdPeerStatus[] = [];
    for (const p of this.endpoints.values()) out.push(...(settled.get(p)?.status() ?? []));
    return out;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const p of this.endpoints.values()) await (await p.catch(() => undefined))?.stop();
    this.endpoints.clear();
    this.wanted.clear();
  }

  private endpoint(local: string): Promise<BfdEndpoint> {
    let p = this.endpoints.get(local);
    if (!p) {
      const ep = new BfdEndpoint(local);
      ep.onStateChange((c) => {
        this.transitions++;
        this.log.info(
          { peer: c.peer, from: STATE_NAMES[c.from], to: STATE_NAMES[c.to], diag: c.diag },
          'BFD session state',
        );
        // RFC 5882 §3.2: a remote that says AdminDown was switched off (a graceful restart, a
        // deconfigured session), which is no failure of the path.
        if (
          c.from === BfdState.Up &&
          c.to !== BfdState.Up &&
          c.remoteState !== BfdState.AdminDown &&
          this.wanted.has(c.peer)
        )
          this.onDown(c.peer, c.diag);
      });
      p = ep.start().then(() => {
        if (ep.ttlEnforced !== true)
          this.log.warn(
            { local, why: ep.ttlEnforced },
            'BFD runs without the received-TTL check (RFC 5881 §5)',
          );
        return ep;
      });
      p.then(
        (e) => settled.set(p!, e),
        () => this.endpoints.delete(local),
      );
      this.endpoints.set(local, p);
    }
    return p;
  }
}

const settled = new WeakMap<Promise<BfdEndpoint>, BfdEndpoint>();
