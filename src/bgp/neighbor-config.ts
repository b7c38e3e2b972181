/**
 * What a configured neighbor becomes inside the speaker, as pure functions of the configuration:
 * its policy (policy.ts, from the prefix rules of the YAML) and the options of each of its
 * sessions (fsm.ts): the OPEN we send, with the capabilities the speaker offers — multiprotocol
 * per the neighbor's families (RFC 4760), route refresh (RFC 2918) and enhanced route refresh
 * (RFC 7313), extended message (RFC 8654), graceful restart (RFC 4724) when enabled, with the
 * R bit and forwarding-state bits set when the speaker restarts — and the FSM's timers.
 */
import { parsePrefix4, parsePrefix6 } from '../net/addr.js';
import type { NeighborConfig, PrefixRuleConfig, SpeakerConfig } from './config.js';
import { DEFAULT_TIMERS, type FsmOptions } from './fsm.js';
import { type PeerPolicy, type PrefixRule, peerPolicy } from './policy.js';
import { makeOpen } from './wire/open.js';

function rules(list: readonly PrefixRuleConfig[]): PrefixRule[] {
  return list.map((r) => ({
    prefix: r.prefix.includes(':') ? parsePrefix6(r.prefix) : parsePrefix4(r.prefix),
    ge: r.ge,
    le: r.le,
    action: r.action,
  }));
}

/** The neighbor's import and export policy. */
export function policyOf(
  n: Pick<NeighborConfig, 'routeReflectorClient' | 'nextHopSelf' | 'allowasIn' | 'import' | 'export'>,
): PeerPolicy {
  return peerPolicy({
    rrClient: n.routeReflectorClient,
    nextHopSelf: n.nextHopSelf,
    allowasIn: n.allowasIn,
    importRules: rules(n.import),
    exportRules: rules(n.export),
  });
}

export interface SessionTimers {
  /** ms; tests shorten these. */
  idleHoldMinMs?: number;
  idleHoldMaxMs?: number;
}

/** The FSM options of one session with neighbor `n`; `passive` for an accepted connection. */
export function fsmOptionsFor(
  config: SpeakerConfig,
  n: NeighborConfig,
  localId: number,
  opts: { passive: boolean; restarting: boolean } & SessionTimers,
): FsmOptions {
  const gr = config.gracefulRestart;
  const restarting = opts.restarting && gr.enabled;
  return {
    localAs: config.asn,
    localId,
    peerAs: n.asn,
    open: makeOpen(config.asn, n.holdTime, localId, {
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
    passive: opts.passive,
    idleHoldMinMs: opts.idleHoldMinMs ?? DEFAULT_TIMERS.idleHoldMinMs,
    idleHoldMaxMs: opts.idleHoldMaxMs ?? DEFAULT_TIMERS.idleHoldMaxMs,
    stableAfterMs: DEFAULT_TIMERS.stableAfterMs,
    openHoldMs: DEFAULT_TIMERS.openHoldMs,
  };
}
