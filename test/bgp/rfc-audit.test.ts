/**
 * An audit of error handling against the RFCs, one case per test:
 *
 * - RFC 6608: every NOTIFICATION for an FSM error carries what §4 asks for: the subcode of the
 *   state an unexpected message arrived in (5/1 OpenSent, 5/2 OpenConfirm, 5/3 Established) and
 *   the message's type as one octet of data; an unexpected event that is no message (a timer)
 *   is 5/0, Unspecified Error, with no data.
 * - RFC 7606 §7, the rules that depend on the peer (the codec's own rules, one per attribute, are
 *   test/bgp/wire/errors.test.ts): LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST received from an
 *   external peer are discarded (§7.5, §7.9, §7.10) and kept from an internal one; confederation
 *   segments from an external peer, an AS_PATH not starting with the peer's AS (RFC 4271 §6.3) and
 *   a NEXT_HOP that is our own address (§7.3) are treat-as-withdraw, which withdraws what the peer
 *   had sent for those prefixes (§2) and resets nothing. Run through the UPDATE-in pipeline
 *   (update-in.ts), as the sessions run it.
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
import { peerPolicy } from '../../src/bgp/policy.js';
import { type PeerRef, Rib, SlotList } from '../../src/bgp/rib/rib.js';
import { UpdateIn } from '../../src/bgp/update-in.js';
import type { PathAttributes } from '../../src/bgp/wire/attributes.js';
import {
  AsPathSegmentType,
  AttrType,
  BgpError,
  type DecodedUpdate,
  decodeAll,
  ErrorAction,
  IPV4_UNICAST,
  MsgType,
  makeContext,
  makeOpen,
  packUpdates,
  UpdateSubcode,
  Writer,
} from '../../src/bgp/wire/index.js';
import { parsePrefix4 } from '../../src/net/addr.js';

// ---- RFC 6608 ----------------------------------------------------------------------------------

const LOCAL_ID = 0x0a000001;
const ours = makeOpen(64512, 90, LOCAL_ID, { multiprotocol: [IPV4_UNICAST], routeRefresh: true });
const theirs = makeOpen(64513, 30, 0x0a000002, { multiprotocol: [IPV4_UNICAST], routeRefresh: true });
const upd = { withdrawn: [], attrs: {}, nlri: [], errors: [], action: 0, attrBytes: Buffer.alloc(0) };

const REACH: Partial<Record<FsmState, FsmEvent[]>> = {
  [FsmState.OpenSent]: [{ type: 'ManualStart' }, { type: 'TcpCrAcked' }],
  [FsmState.OpenConfirm]: [
    { type: 'ManualStart' },
    { type: 'TcpCrAcked' },
    { type: 'BgpOpen', open: theirs },
  ],
  [FsmState.Established]: [
    { type: 'ManualStart' },
    { type: 'TcpCrAcked' },
    { type: 'BgpOpen', open: theirs },
    { type: 'KeepAliveMsg' },
  ],
};

function inState(state: FsmState): Fsm {
  let f = createFsm({
    localAs: 64512,
    localId: LOCAL_ID,
    peerAs: 64513,
    open: ours,
    passive: false,
    ...DEFAULT_TIMERS,
  });
  for (const e of REACH[state]!) f = step(f, e, 0).state;
  expect(f.state).toBe(state);
  return f;
}

function notificationOf(actions: FsmAction[]): { code: number; subcode: number; data: string } | undefined {
  for (const a of actions)
    if (a.kind === 'send' && a.notification)
      return {
        code: a.notification.code,
        subcode: a.notification.subcode,
        data: a.notification.data.toString('hex'),
      };
  return undefined;
}

const MESSAGES: [string, FsmEvent, MsgType][] = [
  ['OPEN', { type: 'BgpOpen', open: theirs }, MsgType.Open],
  ['UPDATE', { type: 'UpdateMsg', update: upd }, MsgType.Update],
  [
    'UPDATE that failed to decode',
    { type: 'UpdateMsgErr', error: new BgpError(3, 1, undefined, 'malformed') },
    MsgType.Update,
  ],
  ['KEEPALIVE', { type: 'KeepAliveMsg' }, MsgType.Keepalive],
  [
    'ROUTE-REFRESH',
    { type: 'RouteRefreshMsg', refresh: { afi: 1, safi: 1, subtype: 0 } },
    MsgType.RouteRefresh,
  ],
];
const SUBCODE: Partial<Record<FsmState, number>> = {
  [FsmState.OpenSent]: 1,
  [FsmState.OpenConfirm]: 2,
  [FsmState.Established]: 3,
};

describe('RFC 6608: FSM error NOTIFICATIONs', () => {
  for (const state of [FsmState.OpenSent, FsmState.OpenConfirm, FsmState.Established]) {
    for (const [name, event, type] of MESSAGES) {
      const { actions } = step(inState(state), event, 0);
      const n = notificationOf(actions);
      // Messages expected in this state are not errors.
      if (n?.code !== 5) continue;
      it(`${name} in ${state} -> 5/${SUBCODE[state]} with the message type ${type} as data (§4)`, () => {
        expect(n).toEqual({ code: 5, subcode: SUBCODE[state], data: type.toString(16).padStart(2, '0') });
      });
    }
    for (const timer of [
      'ConnectRetryTimerExpires',
      'IdleHoldTimerExpires',
      'KeepaliveTimerExpires',
    ] as const) {
      const { actions } = step(inState(state), { type: timer }, 0);
      const n = notificationOf(actions);
      if (n === undefined) continue; // a timer expected here (the keepalive timer once open)
      it(`${timer} in ${state} -> 5/0 Unspecified Error, no data: it is no message`, () => {
        expect(n).toEqual({ code: 5, subcode: 0, data: '' });
      });
    }
  }

  it('covers each unexpected message in each state where RFC 4271 §8.2.2 makes it an error', () => {
    const errors: string[] = [];
    for (const state of [FsmState.OpenSent, FsmState.OpenConfirm, FsmState.Established])
      for (const [name, event] of MESSAGES)
        if (notificationOf(step(inState(state), event, 0).actions)?.code === 5)
          errors.push(`${name} ${state}`);
    expect(errors).toEqual([
      'UPDATE OpenSent',
      'UPDATE that failed to decode OpenSent',
      'KEEPALIVE OpenSent',
      'ROUTE-REFRESH OpenSent',
      'OPEN OpenConfirm',
      'UPDATE OpenConfirm',
      'UPDATE that failed to decode OpenConfirm',
      'ROUTE-REFRESH OpenConfirm',
      'OPEN Established',
    ]);
  });
});

// ---- RFC 7606 §7: rules that depend on the peer ------------------------------------------------

const CTX = makeContext({ as4: true });
const US = '192.0.2.1';
const PREFIX = '10.20.0.0/24';
const KEY = parsePrefix4(PREFIX);

const peerRef = (ebgp: boolean): PeerRef => ({
  id: '192.0.2.2',
  asn: ebgp ? 64513 : 64512,
  routerId: 0xc0000202,
  ebgp,
  local: false,
  rrClient: false,
});

/** An UPDATE for PREFIX with `attrs`, encoded and decoded as a session would receive it. */
function received(attrs: PathAttributes): DecodedUpdate {
  const w = new Writer(4096);
  packUpdates(w, { family: IPV4_UNICAST, prefixes: [KEY], attrs }, CTX);
  const [m] = decodeAll(Buffer.from(w.take()), CTX);
  return m as DecodedUpdate;
}

function pipeline() {
  const rib = new Rib();
  const p = new UpdateIn(rib, { asn: 64512, routerId: '10.0.0.1', clusterId: '10.0.0.1' });
  const changed = new SlotList();
  const receive = (from: PeerRef, attrs: PathAttributes) => {
    const u = received(attrs);
    p.receive(u, from, peerPolicy(), US, true, changed);
    changed.length = 0;
    return u;
  };
  const path = () => rib.entry(KEY)?.best;
  return { rib, receive, path };
}

const seq = (...asns: number[]) => [{ type: AsPathSegmentType.AsSequence, asns }];
const EBGP: PathAttributes = { origin: 0, asPath: seq(64513), nextHop: '192.0.2.2' };
const IBGP: PathAttributes = { origin: 0, asPath: [], nextHop: '192.0.2.2', localPref: 100 };

describe('RFC 7606 §7: attribute rules that depend on the peer', () => {
  const discarded: [string, number, string, Partial<PathAttributes>, keyof PathAttributes][] = [
    ['§7.5', AttrType.LocalPref, 'LOCAL_PREF', { localPref: 500 }, 'localPref'],
    ['§7.9', AttrType.OriginatorId, 'ORIGINATOR_ID', { originatorId: '10.9.9.9' }, 'originatorId'],
    ['§7.10', AttrType.ClusterList, 'CLUSTER_LIST', { clusterList: ['10.9.9.9'] }, 'clusterList'],
  ];
  for (const [section, type, name, extra, key] of discarded) {
    it(`${name} from an external peer is discarded, the route kept (${section})`, () => {
      const { receive, path } = pipeline();
      const u = receive(peerRef(true), { ...EBGP, ...extra });
      expect(u.action).toBe(ErrorAction.AttributeDiscard);
      expect(u.errors.map((e) => [e.code, e.subcode, e.attrType])).toEqual([
        [3, UpdateSubcode.MalformedAttributeList, type],
      ]);
      expect(path()?.ra.attrs[key]).toBeUndefined();
      expect(path()?.peer.id).toBe('192.0.2.2');
    });

    it(`${name} from an internal peer is kept (${section})`, () => {
      const { receive, path } = pipeline();
      const u = receive(peerRef(false), { ...IBGP, ...extra });
      expect(u.errors).toEqual([]);
      expect(path()?.ra.attrs[key]).toEqual(extra[key]);
    });
  }

  const withdrawing: [string, PeerRef, PathAttributes, number][] = [
    [
      'AS_CONFED_SEQUENCE from an external peer (§7.2, RFC 5065 §5.3)',
      peerRef(true),
      { ...EBGP, asPath: [{ type: AsPathSegmentType.AsConfedSequence, asns: [65000] }, ...seq(64513)] },
      UpdateSubcode.MalformedAsPath,
    ],
    [
      'an AS_PATH whose first AS is not the external peer’s (RFC 4271 §6.3, §7.2)',
      peerRef(true),
      { ...EBGP, asPath: seq(64999) },
      UpdateSubcode.MalformedAsPath,
    ],
    [
      'a NEXT_HOP that is our own address on the session (§7.3)',
      peerRef(false),
      { ...IBGP, nextHop: US },
      UpdateSubcode.InvalidNextHopAttribute,
    ],
  ];
  for (const [what, from, attrs, subcode] of withdrawing) {
    it(`${what}: treat-as-withdraw, the peer's earlier route withdrawn, no reset`, () => {
      const { receive, path } = pipeline();
      receive(from, from.ebgp ? EBGP : IBGP);
      expect(path()).toBeDefined();
      const u = receive(from, attrs);
      expect(u.action).toBe(ErrorAction.TreatAsWithdraw);
      expect(u.errors.at(-1)).toMatchObject({ code: 3, subcode });
      expect(path()).toBeUndefined();
    });
  }

  it('the same confederation segments from an internal peer are fine', () => {
    const { receive, path } = pipeline();
    const u = receive(peerRef(false), {
      ...IBGP,
      asPath: [{ type: AsPathSegmentType.AsConfedSequence, asns: [65000] }],
    });
    expect(u.errors).toEqual([]);
    expect(path()).toBeDefined();
  });

  it('LOCAL_PREF missing from an internal peer: kept, counted as 100 by the decision process', () => {
    const { receive, path } = pipeline();
    const { localPref: _, ...noPref } = IBGP;
    const u = receive(peerRef(false), noPref);
    expect(u.errors).toEqual([]);
    expect(path()?.localPref).toBeUndefined();
  });
});
