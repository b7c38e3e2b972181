/**
 * The peer layer (peer.ts) without sockets: connection collisions by RFC 4271 §6.8, as a table
 * and on a Peer holding stand-in sessions, and the paused dial that starts again on a fake clock
 * once the winning connection is gone.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/bgp/clock.js';
import { parseSpeakerConfig } from '../../src/bgp/config.js';
import type { FsmEvent } from '../../src/bgp/fsm.js';
import { FsmState } from '../../src/bgp/fsm.js';
import { collisionVerdict, Peer, type PeerSession } from '../../src/bgp/peer.js';
import { peerPolicy } from '../../src/bgp/policy.js';
import type { OpenMessage } from '../../src/bgp/wire/open.js';

const LOW = 0x0a000001;
const HIGH = 0x0a000002;

describe('collision verdict (RFC 4271 §6.8)', () => {
  const cases: [string, number, 'out' | 'in', number, FsmState, string][] = [
    // [what, our id, this session's direction, the peer's id, the other session's state, verdict]
    ['other Idle: nothing to resolve', HIGH, 'in', LOW, FsmState.Idle, 'none'],
    ['our dial still connecting: stopped quietly', HIGH, 'in', LOW, FsmState.Connect, 'stopDial'],
    ['our dial in Active: stopped quietly', LOW, 'in', HIGH, FsmState.Active, 'stopDial'],
    ['other Established: the new one is dumped', HIGH, 'in', LOW, FsmState.Established, 'this'],
    ['other Established, even when ours would win', HIGH, 'out', LOW, FsmState.Established, 'this'],
    ['we are higher, this is ours: the other (theirs) goes', HIGH, 'out', LOW, FsmState.OpenConfirm, 'other'],
    ['we are higher, this is theirs: this goes', HIGH, 'in', LOW, FsmState.OpenSent, 'this'],
    ['we are lower, this is ours: this goes', LOW, 'out', HIGH, FsmState.OpenConfirm, 'this'],
    ['we are lower, this is theirs: the other (ours) goes', LOW, 'in', HIGH, FsmState.OpenSent, 'other'],
    ['identifiers compare unsigned', 0xc0000001, 'out', 0x0a000001, FsmState.OpenConfirm, 'other'],
  ];
  for (const [what, local, dir, remote, otherState, want] of cases) {
    it(what, () => {
      const v = collisionVerdict(
        local,
        { direction: dir, remoteId: remote },
        { direction: dir === 'out' ? 'in' : 'out', state: otherState },
      );
      expect(v.kind === 'dump' ? v.loser : v.kind).toBe(want);
    });
  }

  it('an incoming session beside another incoming one in Connect is left alone', () => {
    expect(
      collisionVerdict(
        HIGH,
        { direction: 'in', remoteId: LOW },
        { direction: 'in', state: FsmState.Connect },
      ),
    ).toEqual({ kind: 'none' });
  });
});

/** A session stand-in: its state is set by the test; what the peer does to it is recorded. */
class FakeSession implements PeerSession {
  state = FsmState.Idle;
  fsm: { peerOpen?: OpenMessage } = {};
  events: string[] = [];
  constructor(readonly direction: 'out' | 'in') {}
  start(): void {
    this.events.push('start');
    this.state = this.direction === 'out' ? FsmState.Connect : FsmState.OpenSent;
  }
  feed(e: FsmEvent): void {
    this.events.push(e.type);
    if (e.type === 'OpenCollisionDump') this.state = FsmState.Idle;
  }
  stop(): void {
    this.events.push('stop');
    this.state = FsmState.Idle;
  }
  dispose(): void {
    this.events.push('dispose');
  }
  openFrom(bgpId: number): this {
    this.fsm = { peerOpen: { bgpId } as OpenMessage };
    this.state = FsmState.OpenConfirm;
    return this;
  }
}

function peer(clock: FakeClock, yaml = '{address: 10.0.0.2, asn: 64512, connectRetry: 4}') {
  const [n] = parseSpeakerConfig(`routerId: 10.0.0.1\nneighbors:\n  - ${yaml}\n`, 'test').neighbors;
  return new Peer<FakeSession>(n!, true, peerPolicy(), clock);
}

describe('a peer with two sessions', () => {
  it('both reach OpenConfirm; the higher BGP Identifier keeps the connection it opened', () => {
    const clock = new FakeClock();
    const p = peer(clock);
    const out = new FakeSession('out');
    p.start(() => out);
    out.openFrom(LOW);
    const inc = p.accept(() => new FakeSession('in'));
    inc.openFrom(LOW);
    // We (10.0.0.1 = LOW) are not higher than the peer (LOW): ours is dumped, theirs goes on.
    expect(p.openConfirm(inc, LOW)).toBe(out);
    expect(out.events).toEqual(['start', 'OpenCollisionDump', 'stop']);
    expect(p.outPaused).toBe(true);
    expect(inc.events).toEqual(['start']);
  });

  it('ours wins when our identifier is higher: the accepted session is dumped', () => {
    const clock = new FakeClock();
    const p = peer(clock);
    const out = new FakeSession('out');
    p.start(() => out);
    out.openFrom(LOW);
    const inc = p.accept(() => new FakeSession('in'));
    expect(p.openConfirm(out, HIGH)).toBe(inc);
    expect(inc.events).toEqual(['start', 'OpenCollisionDump']);
    expect(p.outPaused).toBe(false);
  });

  it('a paused dial starts again a quarter of the connect-retry time after the winner goes down', () => {
    const clock = new FakeClock();
    const p = peer(clock);
    const out = new FakeSession('out');
    p.start(() => out);
    const inc = p.accept(() => new FakeSession('in')).openFrom(HIGH);
    p.openConfirm(inc, LOW); // our dial is still connecting: stopped quietly
    expect(out.events).toEqual(['start', 'stop']);
    expect(p.outPaused).toBe(true);
    p.sessionDown(inc, { wasEstablished: true, reason: 'hold timer expired' }, false);
    expect(p.in).toBeUndefined();
    expect(inc.events).toContain('dispose');
    clock.advance(999);
    expect(out.events.at(-1)).toBe('stop');
    clock.advance(1);
    expect(out.events.at(-1)).toBe('ManualStart');
    expect(p.lastError).toMatchObject({ direction: 'local', text: 'hold timer expired' });
  });

  it('a paused dial stays paused while the speaker stops or the peer is removed', () => {
    const clock = new FakeClock();
    const p = peer(clock);
    const out = new FakeSession('out');
    p.start(() => out);
    const inc = p.accept(() => new FakeSession('in')).openFrom(HIGH);
    p.openConfirm(inc, LOW);
    p.sessionDown(inc, { wasEstablished: false, reason: 'stopped' }, true);
    clock.advance(60_000);
    expect(out.events).not.toContain('ManualStart');
  });

  it('an incoming session Established first stops a dial that got as far as an OPEN, with 6/7', () => {
    const clock = new FakeClock();
    const p = peer(clock);
    const out = new FakeSession('out');
    p.start(() => out);
    out.state = FsmState.OpenSent;
    const inc = p.accept(() => new FakeSession('in'));
    inc.state = FsmState.Established;
    p.establishedOn(inc);
    expect(out.events).toEqual(['start', 'OpenCollisionDump', 'stop']);
    expect(p.established).toBe(inc);
  });

  it('a passive peer shows Active while it waits, and Active again when its session ends', () => {
    const clock = new FakeClock();
    const [n] = parseSpeakerConfig(
      'routerId: 10.0.0.1\nneighbors:\n  - {address: 10.0.0.2, asn: 1}\n',
      't',
    ).neighbors;
    const p = new Peer<FakeSession>(n!, false, peerPolicy(), clock);
    p.start(() => {
      throw new Error('a passive peer does not dial');
    });
    expect(p.stateName).toBe('Active');
    clock.advance(5000);
    const inc = p.accept(() => new FakeSession('in'));
    inc.state = FsmState.Established;
    expect(p.sessionStateChanged()).toBe(true);
    expect(p.stateName).toBe('Established');
    expect(p.since.toISOString()).toBe(clock.date().toISOString());
    p.sessionDown(inc, { wasEstablished: true, reason: 'connection closed', received: undefined }, false);
    expect(p.stateName).toBe('Active');
  });

  it('the last NOTIFICATION is kept, either way, over later connection errors', () => {
    const clock = new FakeClock();
    const p = peer(clock);
    const out = new FakeSession('out');
    p.start(() => out);
    const n = { code: 6, subcode: 2, data: Buffer.alloc(0), text: 'Cease/Administrative Shutdown (6/2)' };
    p.sessionDown(out, { wasEstablished: true, reason: 'notification', received: n }, false);
    expect(p.lastError).toMatchObject({ direction: 'received', code: 6, subcode: 2 });
    p.sessionDown(out, { wasEstablished: false, reason: 'connection refused' }, false);
    expect(p.lastError).toMatchObject({ direction: 'received' });
    p.notificationSent({ ...n, code: 4, subcode: 0 });
    expect(p.lastError).toMatchObject({ direction: 'sent', code: 4 });
  });
});
