/**
 * The FSM against RFC 4271 §8.2.2, row by row: every state x event, the next state, what is sent,
 * whether a connection is dialled, and what happens to the ConnectRetryCounter. The table is
 * written out by hand from the RFC text (with the departures the FSM's header names), so the FSM
 * cannot agree with itself by construction. Time is a number passed in: no clock, no sleeps.
 */
import { describe, expect, it } from 'vitest';
import {
  createFsm,
  DEFAULT_TIMERS,
  type Fsm,
  type FsmAction,
  type FsmEvent,
  FsmState,
  step,
} from '../../src/bgp/fsm.js';
import { BgpError, IPV4_UNICAST, makeOpen } from '../../src/bgp/wire/index.js';

const LOCAL_ID = 0x0a000001;
const PEER_ID = 0x0a000002;
const ours = makeOpen(64512, 90, LOCAL_ID, { multiprotocol: [IPV4_UNICAST], routeRefresh: true });
const theirs = makeOpen(64513, 30, PEER_ID, { multiprotocol: [IPV4_UNICAST] });

function fsm(passive = false): Fsm {
  return createFsm({
    localAs: 64512,
    localId: LOCAL_ID,
    peerAs: 64513,
    open: ours,
    passive,
    ...DEFAULT_TIMERS,
  });
}

function run(f: Fsm, events: FsmEvent[], now = 0): { f: Fsm; actions: FsmAction[] } {
  let actions: FsmAction[] = [];
  for (const e of events) {
    const r = step(f, e, now);
    f = r.state;
    actions = r.actions;
  }
  return { f, actions };
}

const headerErr = new BgpError(1, 1, undefined, 'bad marker');
const openErr = new BgpError(2, 2, undefined, 'bad peer AS');
const updateErr = new BgpError(3, 1, undefined, 'malformed attribute list');
const notif = { code: 6, subcode: 2, data: Buffer.alloc(0) };
const verNotif = { code: 2, subcode: 1, data: Buffer.from([0, 4]) };
const upd = { withdrawn: [], attrs: {}, nlri: [], errors: [], action: 0, attrBytes: Buffer.alloc(0) };

const EVENTS: Record<string, FsmEvent> = {
  ManualStart: { type: 'ManualStart' },
  ManualStartPassive: { type: 'ManualStartPassive' },
  AutomaticStart: { type: 'AutomaticStart' },
  AutomaticStartPassive: { type: 'AutomaticStartPassive' },
  ManualStop: { type: 'ManualStop' },
  AutomaticStop: { type: 'AutomaticStop' },
  ConnectRetryTimerExpires: { type: 'ConnectRetryTimerExpires' },
  HoldTimerExpires: { type: 'HoldTimerExpires' },
  KeepaliveTimerExpires: { type: 'KeepaliveTimerExpires' },
  IdleHoldTimerExpires: { type: 'IdleHoldTimerExpires' },
  SendHoldTimerExpires: { type: 'SendHoldTimerExpires' },
  TcpCrAcked: { type: 'TcpCrAcked' },
  TcpConnectionConfirmed: { type: 'TcpConnectionConfirmed' },
  TcpConnectionFails: { type: 'TcpConnectionFails' },
  BgpOpen: { type: 'BgpOpen', open: theirs },
  BgpHeaderErr: { type: 'BgpHeaderErr', error: headerErr },
  BgpOpenMsgErr: { type: 'BgpOpenMsgErr', error: openErr },
  OpenCollisionDump: { type: 'OpenCollisionDump' },
  NotifMsgVerErr: { type: 'NotifMsgVerErr', notification: verNotif },
  NotifMsg: { type: 'NotifMsg', notification: notif },
  KeepAliveMsg: { type: 'KeepAliveMsg' },
  UpdateMsg: { type: 'UpdateMsg', update: upd },
  UpdateMsgErr: { type: 'UpdateMsgErr', error: updateErr },
  RouteRefreshMsg: { type: 'RouteRefreshMsg', refresh: { afi: 1, safi: 1, subtype: 0 } },
};

/** How to put a fresh FSM in each state. */
const REACH: Record<FsmState, FsmEvent[]> = {
  [FsmState.Idle]: [],
  [FsmState.Connect]: [EVENTS.ManualStart!],
  [FsmState.Active]: [EVENTS.ManualStartPassive!],
  [FsmState.OpenSent]: [EVENTS.ManualStart!, EVENTS.TcpCrAcked!],
  [FsmState.OpenConfirm]: [EVENTS.ManualStart!, EVENTS.TcpCrAcked!, EVENTS.BgpOpen!],
  [FsmState.Established]: [EVENTS.ManualStart!, EVENTS.TcpCrAcked!, EVENTS.BgpOpen!, EVENTS.KeepAliveMsg!],
};

/**
 * "Next [sends] [counter]": sends is open | keepalive | C/S (a NOTIFICATION) | connect | - ;
 * counter is + (incremented), 0 (zeroed) or = (unchanged).
 */
type Row = string;
const I = 'Idle';
const TABLE: Record<FsmState, Record<string, Row>> = {
  [FsmState.Idle]: {
    ManualStart: 'Connect connect 0',
    ManualStartPassive: 'Active - 0',
    AutomaticStart: 'Connect connect 0',
    AutomaticStartPassive: 'Active - 0',
    ManualStop: `${I} - =`,
    AutomaticStop: `${I} - =`,
    ConnectRetryTimerExpires: `${I} - =`,
    HoldTimerExpires: `${I} - =`,
    KeepaliveTimerExpires: `${I} - =`,
    IdleHoldTimerExpires: 'Connect connect 0',
    SendHoldTimerExpires: `${I} - =`,
    TcpCrAcked: `${I} - =`,
    TcpConnectionConfirmed: `${I} - =`,
    TcpConnectionFails: `${I} - =`,
    BgpOpen: `${I} - =`,
    BgpHeaderErr: `${I} - =`,
    BgpOpenMsgErr: `${I} - =`,
    OpenCollisionDump: `${I} - =`,
    NotifMsgVerErr: `${I} - =`,
    NotifMsg: `${I} - =`,
    KeepAliveMsg: `${I} - =`,
    UpdateMsg: `${I} - =`,
    UpdateMsgErr: `${I} - =`,
    RouteRefreshMsg: `${I} - =`,
  },
  [FsmState.Connect]: {
    ManualStart: 'Connect - =',
    ManualStartPassive: 'Connect - =',
    AutomaticStart: 'Connect - =',
    AutomaticStartPassive: 'Connect - =',
    ManualStop: `${I} - 0`,
    AutomaticStop: `${I} - +`,
    ConnectRetryTimerExpires: 'Connect connect =',
    HoldTimerExpires: `${I} - +`,
    KeepaliveTimerExpires: `${I} - +`,
    IdleHoldTimerExpires: `${I} - +`,
    SendHoldTimerExpires: `${I} - +`,
    TcpCrAcked: 'OpenSent open =',
    TcpConnectionConfirmed: 'OpenSent open =',
    TcpConnectionFails: `${I} - =`,
    BgpOpen: `${I} - +`,
    BgpHeaderErr: `${I} - +`,
    BgpOpenMsgErr: `${I} - +`,
    OpenCollisionDump: `${I} - +`,
    NotifMsgVerErr: `${I} - +`,
    NotifMsg: `${I} - +`,
    KeepAliveMsg: `${I} - +`,
    UpdateMsg: `${I} - +`,
    UpdateMsgErr: `${I} - +`,
    RouteRefreshMsg: `${I} - +`,
  },
  [FsmState.Active]: {
    ManualStart: 'Active - =',
    ManualStartPassive: 'Active - =',
    AutomaticStart: 'Active - =',
    AutomaticStartPassive: 'Active - =',
    ManualStop: `${I} - 0`,
    AutomaticStop: `${I} - +`,
    // This FSM was started passive: it never dials, the timer only re-arms.
    ConnectRetryTimerExpires: 'Active - =',
    HoldTimerExpires: `${I} - +`,
    KeepaliveTimerExpires: `${I} - +`,
    IdleHoldTimerExpires: `${I} - +`,
    SendHoldTimerExpires: `${I} - +`,
    TcpCrAcked: 'OpenSent open =',
    TcpConnectionConfirmed: 'OpenSent open =',
    TcpConnectionFails: `${I} - +`,
    BgpOpen: `${I} - +`,
    BgpHeaderErr: `${I} - +`,
    BgpOpenMsgErr: `${I} - +`,
    OpenCollisionDump: `${I} - +`,
    NotifMsgVerErr: `${I} - +`,
    NotifMsg: `${I} - +`,
    KeepAliveMsg: `${I} - +`,
    UpdateMsg: `${I} - +`,
    UpdateMsgErr: `${I} - +`,
    RouteRefreshMsg: `${I} - +`,
  },
  // A timer that should not run here is an FSM error too, but not a message received: RFC 6608's
  // 5/1-5/3 are for unexpected messages, so it is 5/0 (Unspecified Error).
  [FsmState.OpenSent]: {
    ManualStart: 'OpenSent - =',
    ManualStartPassive: 'OpenSent - =',
    AutomaticStart: 'OpenSent - =',
    AutomaticStartPassive: 'OpenSent - =',
    ManualStop: `${I} 6/2 0`,
    AutomaticStop: `${I} 6/6 +`,
    ConnectRetryTimerExpires: `${I} 5/0 +`,
    HoldTimerExpires: `${I} 4/0 +`,
    KeepaliveTimerExpires: `${I} 5/0 +`,
    IdleHoldTimerExpires: `${I} 5/0 +`,
    SendHoldTimerExpires: `${I} 8/0 +`,
    TcpCrAcked: 'OpenSent - =',
    TcpConnectionConfirmed: 'OpenSent - =',
    TcpConnectionFails: 'Active - =',
    BgpOpen: 'OpenConfirm keepalive =',
    BgpHeaderErr: `${I} 1/1 +`,
    BgpOpenMsgErr: `${I} 2/2 +`,
    OpenCollisionDump: `${I} 6/7 +`,
    NotifMsgVerErr: `${I} - =`,
    NotifMsg: `${I} - +`,
    KeepAliveMsg: `${I} 5/1 +`,
    UpdateMsg: `${I} 5/1 +`,
    UpdateMsgErr: `${I} 5/1 +`,
    RouteRefreshMsg: `${I} 5/1 +`,
  },
  [FsmState.OpenConfirm]: {
    ManualStart: 'OpenConfirm - =',
    ManualStartPassive: 'OpenConfirm - =',
    AutomaticStart: 'OpenConfirm - =',
    AutomaticStartPassive: 'OpenConfirm - =',
    ManualStop: `${I} 6/2 0`,
    AutomaticStop: `${I} 6/6 +`,
    ConnectRetryTimerExpires: `${I} 5/0 +`,
    HoldTimerExpires: `${I} 4/0 +`,
    KeepaliveTimerExpires: 'OpenConfirm keepalive =',
    IdleHoldTimerExpires: `${I} 5/0 +`,
    SendHoldTimerExpires: `${I} 8/0 +`,
    TcpCrAcked: 'OpenConfirm - =',
    TcpConnectionConfirmed: 'OpenConfirm - =',
    TcpConnectionFails: `${I} - +`,
    BgpOpen: `${I} 5/2 +`,
    BgpHeaderErr: `${I} 1/1 +`,
    BgpOpenMsgErr: `${I} 2/2 +`,
    OpenCollisionDump: `${I} 6/7 +`,
    NotifMsgVerErr: `${I} - =`,
    NotifMsg: `${I} - +`,
    KeepAliveMsg: 'Established - =',
    UpdateMsg: `${I} 5/2 +`,
    UpdateMsgErr: `${I} 5/2 +`,
    RouteRefreshMsg: `${I} 5/2 +`,
  },
  [FsmState.Established]: {
    ManualStart: 'Established - =',
    ManualStartPassive: 'Established - =',
    AutomaticStart: 'Established - =',
    AutomaticStartPassive: 'Established - =',
    ManualStop: `${I} 6/2 0`,
    AutomaticStop: `${I} 6/6 +`,
    ConnectRetryTimerExpires: `${I} 5/0 +`,
    HoldTimerExpires: `${I} 4/0 +`,
    KeepaliveTimerExpires: 'Established keepalive =',
    IdleHoldTimerExpires: `${I} 5/0 +`,
    SendHoldTimerExpires: `${I} 8/0 +`,
    TcpCrAcked: 'Established - =',
    TcpConnectionConfirmed: 'Established - =',
    TcpConnectionFails: `${I} - +`,
    BgpOpen: `${I} 5/3 +`,
    BgpHeaderErr: `${I} 1/1 +`,
    BgpOpenMsgErr: `${I} 2/2 +`,
    OpenCollisionDump: `${I} 6/7 +`,
    NotifMsgVerErr: `${I} - +`,
    NotifMsg: `${I} - +`,
    KeepAliveMsg: 'Established - =',
    UpdateMsg: 'Established - =',
    UpdateMsgErr: `${I} 3/1 +`,
    RouteRefreshMsg: 'Established - =',
  },
};

function sends(actions: FsmAction[]): string {
  const parts: string[] = [];
  for (const a of actions) {
    if (a.kind === 'connect') parts.push('connect');
    if (a.kind === 'send')
      parts.push(a.what === 'notification' ? `${a.notification!.code}/${a.notification!.subcode}` : a.what);
  }
  return parts.length ? parts.join(',') : '-';
}

describe('RFC 4271 §8.2.2: every state x event', () => {
  for (const state of Object.keys(TABLE) as FsmState[]) {
    describe(state, () => {
      it('the table covers every event', () => {
        expect(Object.keys(TABLE[state]).sort()).toEqual(Object.keys(EVENTS).sort());
      });
      for (const [name, row] of Object.entries(TABLE[state])) {
        it(`${name} -> ${row}`, () => {
          const passive = state === FsmState.Active;
          const before = run(fsm(passive), REACH[state]).f;
          // Give the counter a value so "zeroed" and "unchanged" differ.
          const primed = { ...before, connectRetryCounter: 5 };
          expect(primed.state).toBe(state);
          const { state: after, actions } = step(primed, EVENTS[name]!, 1000);
          const [next, sent, counter] = row.split(' ');
          expect(after.state).toBe(next);
          expect(sends(actions)).toBe(sent);
          const expected = counter === '+' ? 6 : counter === '0' ? 0 : 5;
          if (!(state === FsmState.Idle && next !== 'Idle')) expect(after.connectRetryCounter).toBe(expected);
          // Falling to Idle always closes the connection and cancels every timer.
          if (next === 'Idle' && state !== FsmState.Idle) {
            expect(actions).toContainEqual({ kind: 'close' });
            for (const t of ['connectRetry', 'hold', 'keepalive'])
              expect(actions).toContainEqual({ kind: 'cancel', timer: t });
          }
        });
      }
    });
  }
});

describe('timers and negotiation', () => {
  it('hold time is the lower of both; keepalive a third of it; both timers armed in OpenConfirm', () => {
    const { f, actions } = run(fsm(), REACH[FsmState.OpenConfirm]);
    expect(f.holdTime).toBe(30);
    expect(f.keepaliveTime).toBe(10);
    expect(actions).toContainEqual({ kind: 'arm', timer: 'hold', ms: 30_000 });
    const ka = actions.find((a) => a.kind === 'arm' && a.timer === 'keepalive') as { ms: number };
    expect(ka.ms).toBeGreaterThanOrEqual(7_500);
    expect(ka.ms).toBeLessThanOrEqual(10_000);
  });

  it('hold time 0 from the peer: no hold timer, no keepalive timer', () => {
    const zero = { ...theirs, holdTime: 0 };
    const { f, actions } = run(fsm(), [
      EVENTS.ManualStart!,
      EVENTS.TcpCrAcked!,
      { type: 'BgpOpen', open: zero },
      EVENTS.KeepAliveMsg!,
    ]);
    expect(f.state).toBe(FsmState.Established);
    expect(f.holdTime).toBe(0);
    expect(actions.filter((a) => a.kind === 'arm')).toEqual([]);
  });

  it('OpenSent arms the hold timer at the large value (4 minutes)', () => {
    const { actions } = run(fsm(), [EVENTS.ManualStart!, EVENTS.TcpCrAcked!]);
    expect(actions).toContainEqual({ kind: 'arm', timer: 'hold', ms: 240_000 });
  });

  it('an OPEN from the wrong AS gets 2/2 and Idle', () => {
    const wrong = makeOpen(65000, 90, PEER_ID);
    const { f, actions } = run(fsm(), [
      EVENTS.ManualStart!,
      EVENTS.TcpCrAcked!,
      { type: 'BgpOpen', open: wrong },
    ]);
    expect(f.state).toBe(FsmState.Idle);
    expect(sends(actions)).toBe('2/2');
  });

  it('an OPEN with our own identifier gets 2/3', () => {
    const same = makeOpen(64513, 90, LOCAL_ID);
    const { actions } = run(fsm(), [
      EVENTS.ManualStart!,
      EVENTS.TcpCrAcked!,
      { type: 'BgpOpen', open: same },
    ]);
    expect(sends(actions)).toBe('2/3');
  });

  it('hold timer expiry sends NOTIFICATION 4/0, reports the session down, and returns to Idle', () => {
    const { f, actions } = run(fsm(), [...REACH[FsmState.Established], EVENTS.HoldTimerExpires!]);
    expect(f.state).toBe(FsmState.Idle);
    expect(sends(actions)).toBe('4/0');
    expect(actions).toContainEqual(expect.objectContaining({ kind: 'down', wasEstablished: true }));
  });

  it('UPDATE and ROUTE-REFRESH in Established are delivered and restart the hold timer', () => {
    const est = run(fsm(), REACH[FsmState.Established]).f;
    const { actions } = step(est, EVENTS.UpdateMsg!, 0);
    expect(actions).toEqual([
      { kind: 'arm', timer: 'hold', ms: 30_000 },
      { kind: 'update', update: upd },
    ]);
  });

  it('a passive FSM never dials', () => {
    let f = fsm(true);
    const all: FsmAction[] = [];
    for (const e of [
      EVENTS.ManualStart!,
      EVENTS.ConnectRetryTimerExpires!,
      EVENTS.ConnectRetryTimerExpires!,
    ]) {
      const r = step(f, e, 0);
      f = r.state;
      all.push(...r.actions);
    }
    expect(f.state).toBe(FsmState.Active);
    expect(all.some((a) => a.kind === 'connect')).toBe(false);
  });
});

describe('automatic restart with damping (RFC 4271 §8.1.1)', () => {
  const idleHold = (actions: FsmAction[]) =>
    (actions.find((a) => a.kind === 'arm' && a.timer === 'idleHold') as { ms: number } | undefined)?.ms;

  it('a failed dial waits 1 s, then twice as long each time up to the ConnectRetry time, jittered', () => {
    // The peer refuses (its speaker is not listening yet): tried again after 1, 2, 4, then 5 s.
    let f = run(fsm(), [EVENTS.ManualStart!]).f;
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      const down = step(f, EVENTS.TcpConnectionFails!, i * 10_000);
      waits.push(idleHold(down.actions)!);
      const again = step(down.state, EVENTS.IdleHoldTimerExpires!, i * 10_000 + 1);
      expect(again.state.state).toBe(FsmState.Connect);
      f = again.state;
    }
    const base = [1000, 2000, 4000, DEFAULT_TIMERS.connectRetryMs, DEFAULT_TIMERS.connectRetryMs];
    for (let i = 0; i < 5; i++) {
      expect(waits[i]!).toBeGreaterThanOrEqual(0.75 * base[i]!);
      expect(waits[i]!).toBeLessThanOrEqual(base[i]!);
    }
    // A connection made starts it over: it is lost in OpenSent (to Active), dialled again at the
    // ConnectRetry expiry, and that dial's failure waits 1 s again.
    const again = run(f, [
      EVENTS.TcpCrAcked!,
      EVENTS.TcpConnectionFails!,
      EVENTS.ConnectRetryTimerExpires!,
      EVENTS.TcpConnectionFails!,
    ]);
    expect(idleHold(again.actions)!).toBeLessThanOrEqual(1000);
  });

  it('a flapping session backs off exponentially up to the maximum, so a peer cannot make a storm', () => {
    let f = fsm();
    const waits: number[] = [];
    for (let i = 0; i < 10; i++) {
      const up = run(
        f,
        i === 0
          ? REACH[FsmState.Established]
          : [EVENTS.IdleHoldTimerExpires!, EVENTS.TcpCrAcked!, EVENTS.BgpOpen!, EVENTS.KeepAliveMsg!],
        i * 1000,
      );
      expect(up.f.state).toBe(FsmState.Established);
      const down = step(up.f, EVENTS.NotifMsg!, i * 1000 + 10);
      waits.push(idleHold(down.actions)!);
      f = down.state;
    }
    for (let i = 1; i < 6; i++) expect(waits[i]!).toBeGreaterThan(waits[i - 1]! * 1.4);
    expect(Math.max(...waits)).toBeLessThanOrEqual(DEFAULT_TIMERS.idleHoldMaxMs);
    expect(waits[9]!).toBeGreaterThanOrEqual(0.75 * DEFAULT_TIMERS.idleHoldMaxMs);
  });

  it('the backoff resets after a session stayed up long enough', () => {
    const up = run(fsm(), REACH[FsmState.Established], 0).f;
    const flapped = { ...up, backoffMs: DEFAULT_TIMERS.idleHoldMaxMs };
    const down = step(flapped, EVENTS.NotifMsg!, DEFAULT_TIMERS.stableAfterMs + 1);
    expect(idleHold(down.actions)!).toBeLessThanOrEqual(DEFAULT_TIMERS.idleHoldMinMs);
  });

  it('a ManualStop leaves the peer down: no automatic restart', () => {
    const { f, actions } = run(fsm(), [...REACH[FsmState.Established], EVENTS.ManualStop!]);
    expect(idleHold(actions)).toBeUndefined();
    expect(step(f, EVENTS.IdleHoldTimerExpires!, 0).state.state).toBe(FsmState.Idle);
    expect(step(f, EVENTS.AutomaticStart!, 0).state.state).toBe(FsmState.Idle);
  });

  it('ManualStop with a shutdown message sends Cease 6/2 carrying it (RFC 8203)', () => {
    const { actions } = run(fsm(), [
      ...REACH[FsmState.Established],
      { type: 'ManualStop', message: 'maintenance' },
    ]);
    const sent = actions.find((a) => a.kind === 'send') as { notification: { text: string } };
    expect(sent.notification.text).toContain('maintenance');
  });
});
