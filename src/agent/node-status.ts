/**
 * The TwillNodeStatus object's body, and when it is written: the part of the agent that decides,
 * with no I/O (the agent reads the speaker and the reconciler, and writes what this returns).
 *
 * What is in it: every session (peer, type, state, since, timers, prefix counts, last error),
 * how many sessions are Established, and the routes (blocks originated, routes installed).
 *
 * When it is written. Every write of it wakes whoever watches the store: with the file store
 * every agent on it, on Kubernetes the API server and its watchers. A block claimed anywhere in a
 * mesh moves the prefix counts of every node, so a status written whenever anything in it moves
 * is N writes for each block event in an N-node mesh. The parts an operator acts on and the parts
 * that only count are told apart:
 * - a change of state (a session added, gone or in another state, its timers or last error, the
 *   number Established, the blocks originated) is written at the next chance: the agent asks
 *   `STATUS_SETTLE_MS` after a change, and at most every `STATUS_MIN_INTERVAL_MS`;
 * - a change of counts alone (prefixes received or advertised, routes installed) waits until
 *   `STATUS_COUNTS_INTERVAL_MS` after the last write, as kubelet refreshes a Node's status on a
 *   period and Calico's CalicoNodeStatus on its `updatePeriodSeconds`.
 * `twill status` asks the agent itself and is always current.
 */
import type { SpeakerStatus } from '../bgp/status.js';

/** At most this often, a status is written at all. */
export const STATUS_MIN_INTERVAL_MS = 5_000;
/** How long after a change its status is written (the agent's statusSoon). */
export const STATUS_SETTLE_MS = 1_000;
/** A status whose counts alone changed waits this long after the last write. */
export const STATUS_COUNTS_INTERVAL_MS = 60_000;

export interface NodeStatusSession {
  peer: string;
  asNumber: number;
  type: string;
  state: string;
  since: string;
  holdTime?: number;
  keepalive?: number;
  prefixesReceived: number;
  prefixesAdvertised: number;
  info?: string;
}

export interface NodeStatusBody {
  established: number;
  sessions: NodeStatusSession[];
  routes: { originated: number; installed: number };
}

/** The body from the speaker's status, each peer's kind of session, and the route counts. */
export function nodeStatusBody(
  st: SpeakerStatus,
  kindOf: (address: string) => string | undefined,
  routes: { originated: number; installed: number },
): NodeStatusBody {
  return {
    established: st.peers.filter((p) => p.state === 'Established').length,
    sessions: st.peers.map((p) => ({
      peer: p.address,
      asNumber: p.asn,
      type: kindOf(p.address) ?? 'global',
      state: p.state,
      since: p.since,
      ...(p.holdTime !== null ? { holdTime: p.holdTime } : {}),
      ...(p.keepalive !== null ? { keepalive: p.keepalive } : {}),
      prefixesReceived: p.prefixesReceived,
      prefixesAdvertised: p.prefixesAdvertised,
      ...(p.lastError ? { info: p.lastError.text } : {}),
    })),
    routes,
  };
}

/** The last status written: its text, its text without counts, and when. */
export interface WrittenStatus {
  text: string;
  state: string;
  at: number;
}

export const NOTHING_WRITTEN: WrittenStatus = { text: '', state: '', at: -Infinity };

/** The body as written (`text`) and without its counts (`state`): what decides whether to write. */
export function statusTexts(body: NodeStatusBody): { text: string; state: string } {
  const state = {
    ...body,
    sessions: body.sessions.map(({ prefixesReceived: _r, prefixesAdvertised: _a, ...s }) => s),
    routes: { originated: body.routes.originated },
  };
  return { text: JSON.stringify(body), state: JSON.stringify(state) };
}

/** Whether a status with these texts is to be written `now`, after `last`. */
export function statusDue(last: WrittenStatus, next: { text: string; state: string }, now: number): boolean {
  const since = now - last.at;
  if (since < STATUS_MIN_INTERVAL_MS || next.text === last.text) return false;
  return next.state !== last.state || since >= STATUS_COUNTS_INTERVAL_MS;
}
