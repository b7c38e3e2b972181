/**
 * The speaker's neighbors as a set, changed level-triggered (`apply(list)`): the differences
 * reconfig.ts finds are carried out here.
 * - A removed neighbor gets Cease 6/3 (RFC 4486 "Peer De-configured") and its routes leave the
 *   RIB; one whose session settings changed gets Cease 6/6 ("Other Configuration Change") and a
 *   new session.
 * - A policy change keeps the session: export answers are recomputed for every peer (whether we
 *   reflect at all depends on every neighbor, RFC 4456), and new import rules go to the speaker
 *   (`importChanged`), which asks the peer for a route refresh (RFC 2918).
 * - Route reflection starts or stops with the first or last route-reflector client; every peer's
 *   exports are then recomputed.
 */
import type { Clock } from './clock.js';
import { dialsNeighbor, type NeighborConfig, type SpeakerConfig } from './config.js';
import { policyOf } from './neighbor-config.js';
import { Peer, type PeerSession } from './peer.js';
import { diffNeighbors } from './reconfig.js';
import type { Delta, Rib } from './rib/rib.js';
import { CeaseSubcode } from './wire/constants.js';

export interface NeighborDeps<S extends PeerSession> {
  config: SpeakerConfig;
  clock: Clock;
  rib: Rib;
  fanOut(deltas: readonly Delta[]): void;
  /** What an established peer should hold, again. */
  fill(p: Peer<S>): void;
  start(p: Peer<S>): void;
  /** The neighbor's import rules changed and its session stays. */
  importChanged(p: Peer<S>): void;
}

export class Neighbors<S extends PeerSession> {
  readonly map = new Map<string, Peer<S>>();

  constructor(private readonly d: NeighborDeps<S>) {
    for (const n of d.config.neighbors) this.map.set(n.address, this.make(n));
  }

  values(): IterableIterator<Peer<S>> {
    return this.map.values();
  }

  get(address: string): Peer<S> | undefined {
    return this.map.get(address);
  }

  isReflector(): boolean {
    for (const p of this.map.values()) if (p.cfg.routeReflectorClient) return true;
    return false;
  }

  apply(list: readonly NeighborConfig[]): void {
    const current = [...this.map.values()].map((p) => p.cfg);
    for (const c of diffNeighbors(current, list)) {
      if (c.kind === 'remove')
        this.remove(
          c.address,
          c.why === 'removed' ? CeaseSubcode.PeerDeconfigured : CeaseSubcode.OtherConfigurationChange,
          c.why === 'removed' ? 'neighbor removed from the configuration' : 'neighbor configuration changed',
        );
      else if (c.kind === 'add') this.add(c.neighbor);
      else this.updatePolicy(c.neighbor, c.importChanged);
    }
  }

  private make(n: NeighborConfig): Peer<S> {
    return new Peer<S>(n, dialsNeighbor(this.d.config, n), policyOf(n), this.d.clock);
  }

  private remove(address: string, subcode: CeaseSubcode, message: string): void {
    const p = this.map.get(address);
    if (!p) return;
    p.removed = true;
    p.stop(subcode, message);
    p.restartTimer?.cancel();
    const reflected = this.isReflector();
    this.map.delete(address);
    this.reflectionChanged(reflected);
    this.d.fanOut(this.d.rib.peerDown(address));
  }

  private add(n: NeighborConfig): void {
    const p = this.make(n);
    const reflected = this.isReflector();
    this.map.set(n.address, p);
    this.reflectionChanged(reflected);
    this.d.start(p);
  }

  private reflectionChanged(before: boolean): void {
    if (this.isReflector() === before) return;
    this.resetExports();
    for (const p of this.map.values()) this.d.fill(p);
  }

  /** Export answers depend on every peer's policy (whether we reflect at all): all again. */
  private resetExports(): void {
    const reflector = this.isReflector();
    for (const p of this.map.values()) p.tx?.setPolicy(p.policy, reflector);
  }

  private updatePolicy(n: NeighborConfig, importChanged: boolean): void {
    const p = this.map.get(n.address);
    if (!p) return;
    p.cfg = n;
    p.policy = policyOf(n);
    this.resetExports();
    for (const other of this.map.values()) if (other !== p) this.d.fill(other);
    if (importChanged && p.established) this.d.importChanged(p);
    this.d.fill(p);
  }
}
