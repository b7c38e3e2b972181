/**
 * Graceful restart (RFC 4724) as two sans-IO machines (STYLE.md §3): each `step(state, input,
 * nowMs)` returns the next state and outputs; the speaker turns outputs into RIB calls and timers
 * on its Clock. Neither machine reads a clock, arms a timer or touches the RIB.
 *
 * Helper (`helperStep`, one per peer: we keep a restarting peer's routes, §4.2)
 * - `down`: the session ended. Without a NOTIFICATION either way (RFC 4724 §4.2; RFC 8538's N bit
 *   is not offered), with graceful restart enabled here and the peer's capability in its last
 *   OPEN, the families that capability listed are kept, stale (`markStale`), the others removed
 *   (`sweep`), and the peer's Restart Time armed. Otherwise the peer's routes go (`removeAll`).
 * - `established`: the peer is back. A family stays stale only if its new OPEN lists it with the
 *   F bit (forwarding state preserved) and the family was negotiated; the rest are swept now.
 * - `endOfRib`: the family's table is complete: its stale routes are swept.
 * - `restartTimeExpired`: the peer did not bring everything back in time: every stale route goes.
 *   The timer keeps running across the new session until the last stale family is swept, so a
 *   peer that never sends End-of-RIB cannot keep stale routes for ever.
 *
 * Restarting speaker (`deferralStep`, one per speaker: selection deferral, §4.1)
 * - Started with `restarting`, the speaker advertises nothing until every established peer that
 *   negotiated graceful restart has sent End-of-RIB for each of its families, or the deferral time
 *   passes. A peer without graceful restart sends no End-of-RIB and is not waited for; peers not
 *   up yet get our table when they come. Deferral ends once; `advertise` says so.
 *
 * Departures: the Restart Time is the peer's as announced (no local cap); RFC 9494 long-lived
 * graceful restart is decoded by the codec but not acted on.
 */
import { type Family, IPV4_UNICAST, IPV6_UNICAST } from './wire/constants.js';
import type { GracefulRestartCap } from './wire/open.js';

/** The families graceful restart keeps routes for. */
const FAMILIES: readonly Family[] = [IPV4_UNICAST, IPV6_UNICAST];

// ---- helper ----------------------------------------------------------------------------------

export type HelperState =
  | { readonly kind: 'none' }
  /** Routes kept for the peer, stale, in `families`, until `deadline` (ms, the caller's clock). */
  | { readonly kind: 'stale'; readonly families: ReadonlySet<Family>; readonly deadline: number };

export const HELPER_NONE: HelperState = { kind: 'none' };

export type HelperInput =
  | {
      kind: 'down';
      /** Graceful restart enabled here. */
      enabled: boolean;
      /** The capability in the peer's last OPEN, if any. */
      cap: GracefulRestartCap | undefined;
      /** A NOTIFICATION was sent or received as the session ended. */
      notification: boolean;
      /** The peer was removed, or the speaker is stopping: nothing to come back to. */
      final: boolean;
    }
  | { kind: 'established'; cap: GracefulRestartCap | undefined; negotiated: ReadonlySet<Family> }
  | { kind: 'endOfRib'; family: Family }
  | { kind: 'restartTimeExpired' };

export type HelperOutput =
  | { kind: 'markStale'; families: Family[] }
  | { kind: 'sweep'; families: Family[]; why: 'not preserved' | 'End-of-RIB' | 'restart time passed' }
  | { kind: 'removeAll' }
  | { kind: 'armRestartTimer'; ms: number }
  | { kind: 'cancelRestartTimer' };

export function helperStep(
  state: HelperState,
  input: HelperInput,
  now: number,
): { state: HelperState; outputs: HelperOutput[] } {
  switch (input.kind) {
    case 'down': {
      const cap = input.cap;
      if (!input.enabled || !cap || input.notification || input.final) {
        const outputs: HelperOutput[] = [{ kind: 'removeAll' }];
        if (state.kind === 'stale') outputs.unshift({ kind: 'cancelRestartTimer' });
        return { state: HELPER_NONE, outputs };
      }
      const listed = new Set(cap.families.map((f) => f.family));
      const kept = FAMILIES.filter((f) => listed.has(f));
      const swept = FAMILIES.filter((f) => !listed.has(f));
      const outputs: HelperOutput[] = [{ kind: 'markStale', families: [...FAMILIES] }];
      if (swept.length) outputs.push({ kind: 'sweep', families: swept, why: 'not preserved' });
      const ms = cap.time * 1000;
      outputs.push({ kind: 'armRestartTimer', ms });
      return { state: { kind: 'stale', families: new Set(kept), deadline: now + ms }, outputs };
    }
    case 'established': {
      if (state.kind !== 'stale') return { state, outputs: [] };
      const preserved = (f: Family) =>
        input.negotiated.has(f) && !!input.cap?.families.find((x) => x.family === f)?.forwarding;
      const swept = [...state.families].filter((f) => !preserved(f));
      if (swept.length === 0) return { state, outputs: [] };
      return leave(state, swept, 'not preserved');
    }
    case 'endOfRib':
      if (state.kind !== 'stale' || !state.families.has(input.family)) return { state, outputs: [] };
      return leave(state, [input.family], 'End-of-RIB');
    case 'restartTimeExpired':
      if (state.kind !== 'stale') return { state, outputs: [] };
      return {
        state: HELPER_NONE,
        outputs: [{ kind: 'sweep', families: [...FAMILIES], why: 'restart time passed' }],
      };
  }
}

/** Sweep `families`; when none is left stale, the restart timer has nothing more to guard. */
function leave(
  state: Extract<HelperState, { kind: 'stale' }>,
  families: Family[],
  why: 'not preserved' | 'End-of-RIB',
): { state: HelperState; outputs: HelperOutput[] } {
  const left = new Set(state.families);
  for (const f of families) left.delete(f);
  const outputs: HelperOutput[] = [{ kind: 'sweep', families, why }];
  if (left.size > 0) return { state: { ...state, families: left }, outputs };
  outputs.push({ kind: 'cancelRestartTimer' });
  return { state: HELPER_NONE, outputs };
}

// ---- restarting speaker: selection deferral ----------------------------------------------------

export interface DeferralState {
  readonly deferring: boolean;
  /** Established peers that negotiated graceful restart: families owed, End-of-RIBs seen. */
  readonly waiting: ReadonlyMap<
    string,
    { readonly families: ReadonlySet<Family>; readonly seen: ReadonlySet<Family> }
  >;
  /** Established peers, graceful restart or not. */
  readonly up: ReadonlySet<string>;
}

export type DeferralInput =
  | { kind: 'start'; deferralMs: number }
  | { kind: 'established'; peer: string; gracefulRestart: boolean; families: ReadonlySet<Family> }
  | { kind: 'endOfRib'; peer: string; family: Family }
  | { kind: 'down'; peer: string }
  | { kind: 'deferralTimeExpired' };

export type DeferralOutput =
  | { kind: 'armDeferralTimer'; ms: number }
  | { kind: 'cancelDeferralTimer' }
  | { kind: 'advertise'; why: 'End-of-RIB from every peer' | 'deferral time passed' };

export function initialDeferral(restarting: boolean): DeferralState {
  return { deferring: restarting, waiting: new Map(), up: new Set() };
}

export function deferralStep(
  state: DeferralState,
  input: DeferralInput,
  _now: number,
): { state: DeferralState; outputs: DeferralOutput[] } {
  if (!state.deferring) return { state, outputs: [] };
  switch (input.kind) {
    case 'start':
      return { state, outputs: [{ kind: 'armDeferralTimer', ms: input.deferralMs }] };
    case 'deferralTimeExpired':
      return end('deferral time passed');
    case 'established': {
      const waiting = new Map(state.waiting);
      if (input.gracefulRestart) waiting.set(input.peer, { families: input.families, seen: new Set() });
      else waiting.delete(input.peer);
      const next = { ...state, waiting, up: new Set(state.up).add(input.peer) };
      // A peer with graceful restart is waited for; one without sends nothing to wait for.
      return input.gracefulRestart ? { state: next, outputs: [] } : check(next);
    }
    case 'endOfRib': {
      const w = state.waiting.get(input.peer);
      if (!w) return check(state);
      const waiting = new Map(state.waiting);
      waiting.set(input.peer, { families: w.families, seen: new Set(w.seen).add(input.family) });
      return check({ ...state, waiting });
    }
    case 'down': {
      const waiting = new Map(state.waiting);
      waiting.delete(input.peer);
      const up = new Set(state.up);
      up.delete(input.peer);
      return { state: { ...state, waiting, up }, outputs: [] };
    }
  }
}

function check(state: DeferralState): { state: DeferralState; outputs: DeferralOutput[] } {
  for (const w of state.waiting.values())
    for (const f of w.families) if (!w.seen.has(f)) return { state, outputs: [] };
  if (state.up.size === 0) return { state, outputs: [] };
  return end('End-of-RIB from every peer');
}

function end(why: 'End-of-RIB from every peer' | 'deferral time passed'): {
  state: DeferralState;
  outputs: DeferralOutput[];
} {
  return {
    state: { deferring: false, waiting: new Map(), up: new Set() },
    outputs: [{ kind: 'cancelDeferralTimer' }, { kind: 'advertise', why }],
  };
}
