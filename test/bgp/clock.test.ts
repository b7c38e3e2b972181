/**
 * The fake clock keeps Node's timer semantics (order, refresh, intervals, setImmediate-like
 * `soon`), and a session runs on it: its hold timer expires when the test moves time on, with no
 * socket (a stream stands in for the accepted connection) and no sleep.
 */
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/bgp/clock.js';
import { DEFAULT_TIMERS, FsmState } from '../../src/bgp/fsm.js';
import { Session } from '../../src/bgp/session.js';
import {
  type DecodedUpdate,
  encodeOpen,
  encodeUpdate,
  Framer,
  IPV4_UNICAST,
  KEEPALIVE,
  MsgType,
  makeContext,
  makeOpen,
} from '../../src/bgp/wire/index.js';
import { formatPrefix, parsePrefix } from '../../src/net/addr.js';

describe('FakeClock', () => {
  it('runs timers in order of due time, then of arming, only when advanced', () => {
    const c = new FakeClock();
    const seen: string[] = [];
    c.after(20, () => seen.push('b'));
    c.after(10, () => seen.push('a'));
    c.after(20, () => seen.push('c'));
    c.advance(9);
    expect(seen).toEqual([]);
    c.advance(11);
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(c.now()).toBe(20);
  });

  it('runs timers armed by callbacks when they fall due within the same advance', () => {
    const c = new FakeClock();
    const at: number[] = [];
    c.after(10, () => c.after(10, () => at.push(c.now())));
    c.advance(100);
    expect(at).toEqual([20]);
  });

  it('cancel, refresh and intervals behave as Node timers do', () => {
    const c = new FakeClock();
    let n = 0;
    const t = c.after(100, () => n++);
    c.advance(60);
    t.refresh();
    c.advance(60);
    expect(n).toBe(0);
    c.advance(40);
    expect(n).toBe(1);
    c.after(5, () => n++).cancel();
    const every = c.every(10, () => n++);
    c.advance(35);
    expect(n).toBe(4);
    every.cancel();
    c.advance(100);
    expect(n).toBe(4);
    expect(c.armed).toBe(0);
  });

  it('soon runs at the next advance, before timers', () => {
    const c = new FakeClock();
    const seen: string[] = [];
    c.after(0, () => seen.push('timer'));
    c.soon(() => seen.push('soon'));
    expect(seen).toEqual([]);
    c.advance(0);
    expect(seen).toEqual(['soon', 'timer']);
  });

  it('sleep resolves when time has moved on', async () => {
    const c = new FakeClock();
    let done = false;
    const slept = c.sleep(50).then(() => {
      done = true;
    });
    c.advance(49);
    await Promise.resolve();
    expect(done).toBe(false);
    c.advance(1);
    await slept;
    expect(done).toBe(true);
  });

  it('date() follows now()', () => {
    const c = new FakeClock(Date.UTC(2026, 0, 1));
    c.advance(1500);
    expect(c.date().toISOString()).toBe('2026-01-01T00:00:01.500Z');
  });
});

/** An accepted connection as far as a Session can tell: what it writes is kept. */
class Pipe extends Duplex {
  written: Buffer[] = [];
  localAddress = '192.0.2.1';
  remoteAddress = '192.0.2.2';
  setNoDelay(): this {
    return this;
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.written.push(chunk);
    cb();
  }
}

/** A passive session on `clock` around `pipe`, taken to Established by the peer's OPEN and KEEPALIVE (hold time 9 s). */
async function establish(
  clock: FakeClock,
  pipe: Pipe,
  updates: DecodedUpdate[] = [],
): Promise<{ s: Session; downs: string[] }> {
  const downs: string[] = [];
  const s = new Session({
    fsm: {
      ...DEFAULT_TIMERS,
      localAs: 64512,
      localId: 0xc0000201,
      peerAs: 64513,
      open: makeOpen(64512, 9, 0xc0000201, { multiprotocol: [IPV4_UNICAST] }),
      passive: true,
    },
    remote: { address: '192.0.2.2', port: 179 },
    direction: 'in',
    socket: pipe as never,
    log: { debug() {}, info() {}, warn() {} },
    clock,
    callbacks: { down: (_s, info) => downs.push(info.reason), update: (_s, u) => updates.push(u) },
  });
  s.start();
  pipe.push(encodeOpen(makeOpen(64513, 9, 0xc0000202, { multiprotocol: [IPV4_UNICAST] })));
  pipe.push(KEEPALIVE);
  await new Promise((r) => setImmediate(r)); // the stream delivers what was pushed
  return { s, downs };
}

describe('a session on a fake clock', () => {
  it('hold timer expiry sends NOTIFICATION 4/0 and the session goes down, without waiting', async () => {
    const clock = new FakeClock();
    const pipe = new Pipe();
    const { s, downs } = await establish(clock, pipe);
    expect(s.state).toBe(FsmState.Established);
    clock.advance(8_999);
    expect(s.state).toBe(FsmState.Established);
    clock.advance(1);
    expect(s.state).toBe(FsmState.Idle);
    expect(downs).toHaveLength(1);
    const framer = new Framer();
    framer.push(Buffer.concat(pipe.written));
    const types: number[] = [];
    let last: Buffer | undefined;
    for (let f = framer.next(); f; f = framer.next()) {
      types.push(f.type);
      last = f.buf.subarray(f.start, f.end);
    }
    expect(types).toContain(MsgType.Open);
    expect(types.at(-1)).toBe(MsgType.Notification);
    expect([...last!.subarray(19, 21)]).toEqual([4, 0]);
    s.dispose();
  });

  it('every message received moves the hold deadline: it expires a hold time after the last one', async () => {
    const clock = new FakeClock();
    const pipe = new Pipe();
    const { s, downs } = await establish(clock, pipe);
    const delivered = () => new Promise((r) => setImmediate(r));
    expect(s.state).toBe(FsmState.Established);
    // KEEPALIVEs at 5 s and 12 s (the second after the first deadline, 9 s, would have passed).
    clock.advance(5_000);
    pipe.push(KEEPALIVE);
    await delivered();
    clock.advance(7_000);
    pipe.push(KEEPALIVE);
    await delivered();
    clock.advance(8_999);
    expect(s.state).toBe(FsmState.Established);
    expect(downs).toEqual([]);
    clock.advance(1);
    expect(s.state).toBe(FsmState.Idle);
    expect(downs).toHaveLength(1);
    s.dispose();
  });

  it('an UPDATE in Established is passed on and moves the hold deadline, as any message does', async () => {
    const clock = new FakeClock();
    const pipe = new Pipe();
    const updates: DecodedUpdate[] = [];
    const { s, downs } = await establish(clock, pipe, updates);
    const delivered = () => new Promise((r) => setImmediate(r));
    const ctx = makeContext({ as4: true });
    const update = (p: string) =>
      encodeUpdate(
        {
          withdrawn: [],
          attrs: { origin: 0, asPath: [{ type: 2, asns: [64513] }], nextHop: '192.0.2.2' },
          nlri: [parsePrefix(p) as number],
        },
        ctx,
      );
    clock.advance(5_000);
    pipe.push(update('198.51.100.0/24'));
    await delivered();
    clock.advance(7_000);
    pipe.push(Buffer.concat([update('203.0.113.0/24'), update('192.0.2.0/24')]));
    await delivered();
    expect(updates.map((u) => u.nlri.map(formatPrefix))).toEqual([
      ['198.51.100.0/24'],
      ['203.0.113.0/24'],
      ['192.0.2.0/24'],
    ]);
    clock.advance(8_999);
    expect(s.state).toBe(FsmState.Established);
    expect(downs).toEqual([]);
    clock.advance(1);
    expect(s.state).toBe(FsmState.Idle);
    s.dispose();
  });
});
