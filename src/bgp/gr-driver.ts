/**
 * Graceful restart (RFC 4724) carried out: the sans-IO machines of graceful-restart.ts decide,
 * these drivers do what they say with the speaker's clock, RIB and log.
 *
 * - `Deferral`: the restarting speaker's selection deferral (§4.1): nothing is advertised until
 *   every GR peer has sent End-of-RIB or the deferral time runs out; then `advertise` is called
 *   once (the speaker fills every peer).
 * - `helpPeer`: one step of a peer's helper machine (§4.2): stale marking when its session ends
 *   without a NOTIFICATION, the restart timer, and the sweep of stale paths at its End-of-RIB or
 *   when the restart time passes. Route changes go to `fanOut`.
 */
import type { Clock, TimerHandle } from './clock.js';
import {
  type DeferralInput,
  type DeferralState,
  deferralStep,
  type HelperInput,
  type HelperState,
  helperStep,
  initialDeferral,
} from './graceful-restart.js';
import type { Delta, Rib } from './rib/rib.js';
import type { SessionLog } from './session.js';
import { familyName } from './wire/constants.js';

export class Deferral {
  private state: DeferralState;
  private timer: TimerHandle | undefined;
  /** Mirrors the machine, read on the UPDATE path. */
  deferring: boolean;

  constructor(
    restarting: boolean,
    private readonly clock: Clock,
    private readonly log: SessionLog,
    private readonly advertise: () => void,
  ) {
    this.state = initialDeferral(restarting);
    this.deferring = this.state.deferring;
  }

  step(input: DeferralInput): void {
    const r = deferralStep(this.state, input, this.clock.now());
    this.state = r.state;
    for (const o of r.outputs) {
      if (o.kind === 'armDeferralTimer')
        this.timer = this.clock.after(o.ms, () => this.step({ kind: 'deferralTimeExpired' }));
      else if (o.kind === 'cancelDeferralTimer') this.timer?.cancel();
      else {
        this.deferring = false;
        this.log.info({ why: o.why }, 'restart: advertising');
        this.advertise();
      }
    }
  }

  cancel(): void {
    this.timer?.cancel();
  }
}

/** What the helper role keeps per peer (Peer has these fields). */
export interface HelpedPeer {
  readonly address: string;
  gr: HelperState;
  restartTimer: TimerHandle | undefined;
}

export interface HelperDeps {
  rib: Rib;
  clock: Clock;
  log: SessionLog;
  fanOut(deltas: readonly Delta[]): void;
}

/** One step of a peer's graceful-restart helper machine, its outputs carried out. */
export function helpPeer(p: HelpedPeer, input: HelperInput, d: HelperDeps): void {
  const r = helperStep(p.gr, input, d.clock.now());
  p.gr = r.state;
  const id = p.address;
  for (const o of r.outputs) {
    switch (o.kind) {
      case 'markStale':
        for (const f of o.families) d.rib.markStale(id, f);
        break;
      case 'sweep': {
        const deltas: Delta[] = [];
        for (const f of o.families) deltas.push(...d.rib.sweepStale(id, f));
        if (o.why === 'End-of-RIB')
          d.log.info(
            { peer: id, family: familyName(o.families[0]!), removed: deltas.length },
            'End-of-RIB: stale routes swept',
          );
        else if (o.why === 'restart time passed')
          d.log.info({ peer: id }, 'graceful restart: restart time passed, removing stale routes');
        d.fanOut(deltas);
        break;
      }
      case 'removeAll':
        d.fanOut(d.rib.peerDown(id));
        break;
      case 'armRestartTimer':
        p.restartTimer?.cancel();
        p.restartTimer = d.clock.after(o.ms, () => {
          p.restartTimer = undefined;
          helpPeer(p, { kind: 'restartTimeExpired' }, d);
        });
        d.log.info(
          { peer: id, stale: d.rib.staleFrom(id), seconds: o.ms / 1000 },
          'graceful restart: keeping the peer’s routes as stale',
        );
        break;
      case 'cancelRestartTimer':
        p.restartTimer?.cancel();
        p.restartTimer = undefined;
        break;
    }
  }
}
