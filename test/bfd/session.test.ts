/**
 * The BFD session (src/bfd/session.ts) against RFC 5880 with a made-up clock: the reception
 * state table of §6.8.6 row by row, the discards, detection time and its expiry, slow start and
 * the Poll/Final sequence of §6.8.3, jitter, passive and demand rules, administrative down; the
 * Control packet codec (§4.1); and a fast-check property: two sessions on a channel that loses
 * and reorders packets, so long as no gap between two packets a session receives reaches its
 * detection time, never go down once Up.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BfdState, type ControlPacket, decodeControl, Diag, encodeControl } from '../../src/bfd/packet.js';
import { BfdSession, type SessionOutput, SLOW_TX_US } from '../../src/bfd/session.js';

const LOCAL = 1;
const REMOTE = 99;

const pkt = (over: Partial<ControlPacket> = {}): ControlPacket => ({
  diag: 0,
  state: BfdState.Down,
  poll: false,
  final: false,
  cpi: false,
  auth: false,
  demand: false,
  multipoint: false,
  detectMult: 3,
  myDiscr: REMOTE,
  yourDiscr: LOCAL,
  desiredMinTx: 300_000,
  requiredMinRx: 300_000,
  requiredMinEchoRx: 0,
  ...over,
});

const session = (over: Partial<ConstructorParameters<typeof BfdSession>[0]> = {}) =>
  new BfdSession(
    {
      localDiscr: LOCAL,
      desiredMinTxUs: 300_000,
      requiredMinRxUs: 300_000,
      detectMult: 3,
      random: () => 0.5,
      ...over,
    },
    0,
  );

const sends = (out: SessionOutput[]) => out.flatMap((o) => (o.type === 'send' ? [o.packet] : []));
const states = (out: SessionOutput[]) => out.flatMap((o) => (o.type === 'state' ? [[o.to, o.diag]] : []));

/** A session brought to `state` by the remote's packets (or by administration). */
function inState(state: BfdState): BfdSession {
  const s = session();
  if (state === BfdState.Init) s.receive(pkt({ state: BfdState.Down, yourDiscr: 0 }), 1);
  if (state === BfdState.Up) s.receive(pkt({ state: BfdState.Init, yourDiscr: 0 }), 1);
  if (state === BfdState.AdminDown) s.setAdminDown(true, 1);
  expect(s.state).toBe(state);
  return s;
}

describe('BFD session: reception (RFC 5880 §6.8.6)', () => {
  const S = BfdState;
  // [local state, received state, new local state, diag of the change or null for no change]
  const table: [BfdState, BfdState, BfdState, Diag | null][] = [
    [S.Down, S.AdminDown, S.Down, null],
    [S.Down, S.Down, S.Init, Diag.None],
    [S.Down, S.Init, S.Up, Diag.None],
    [S.Down, S.Up, S.Down, null],
    [S.Init, S.AdminDown, S.Down, Diag.NeighborSignaledSessionDown],
    [S.Init, S.Down, S.Init, null],
    [S.Init, S.Init, S.Up, Diag.None],
    [S.Init, S.Up, S.Up, Diag.None],
    [S.Up, S.AdminDown, S.Down, Diag.NeighborSignaledSessionDown],
    [S.Up, S.Down, S.Down, Diag.NeighborSignaledSessionDown],
    [S.Up, S.Init, S.Up, null],
    [S.Up, S.Up, S.Up, null],
    [S.AdminDown, S.Down, S.AdminDown, null],
    [S.AdminDown, S.Init, S.AdminDown, null],
    [S.AdminDown, S.Up, S.AdminDown, null],
    [S.AdminDown, S.AdminDown, S.AdminDown, null],
  ];
  it.each(table)('local %i, received %i -> %i', (local, received, next, diag) => {
    const s = inState(local);
    const out = s.receive(pkt({ state: received }), 10);
    expect(s.state).toBe(next);
    expect(states(out)).toEqual(diag === null ? [] : [[next, diag]]);
    if (diag !== null) expect(s.localDiag).toBe(diag);
  });

  it('takes the remote discriminator, state and Required Min RX, and restarts detection', () => {
    const s = session();
    s.receive(pkt({ yourDiscr: 0, state: BfdState.Down, requiredMinRx: 500_000 }), 100);
    expect(s.remoteDiscr).toBe(REMOTE);
    expect(s.remoteState).toBe(BfdState.Down);
    expect(s.remoteMinRxUs).toBe(500_000);
    // Detect Mult 3 x max(our 300 ms, their 300 ms).
    expect(s.detectTimeMs).toBe(900);
  });

  it('discards a zero Your Discriminator outside Down and AdminDown, and a discriminator not ours', () => {
    const s = inState(BfdState.Up);
    expect(s.receive(pkt({ yourDiscr: 0, state: BfdState.Down }), 5)).toEqual([]);
    expect(s.state).toBe(BfdState.Up);
    expect(s.lastDiscard).toContain('Your Discriminator is zero');
    s.receive(pkt({ yourDiscr: 7, state: BfdState.Down }), 6);
    expect(s.state).toBe(BfdState.Up);
    expect(s.counters.discarded).toBe(2);
  });

  it('answers a Poll at once with a Final, never P and F together', () => {
    const s = inState(BfdState.Up);
    const out = sends(s.receive(pkt({ state: BfdState.Up, poll: true }), 20));
    expect(out).toHaveLength(1);
    expect(out[0]!.final).toBe(true);
    expect(out[0]!.poll).toBe(false);
  });
});

describe('BFD session: timers (§6.8.2-§6.8.4, §6.8.7)', () => {
  it('detection time expiry in Up: Down with diag 1, the remote discriminator forgotten', () => {
    const s = inState(BfdState.Up);
    s.receive(pkt({ state: BfdState.Up }), 1000);
    expect(s.nextDeadline()).toBeLessThanOrEqual(1900);
    expect(states(s.tick(1899))).toEqual([]);
    expect(s.state).toBe(BfdState.Up);
    const out = s.tick(1900);
    expect(states(out)).toEqual([[BfdState.Down, Diag.ControlDetectionTimeExpired]]);
    expect(s.remoteDiscr).toBe(0);
    // The change is sent at once, with diag 1 and Your Discriminator zero.
    const sent = sends(out.concat(s.tick(1900)));
    expect(sent[0]).toMatchObject({ state: BfdState.Down, diag: 1, yourDiscr: 0 });
  });

  it('detection uses max(our Required Min RX, their Desired Min TX) times their multiplier', () => {
    const s = inState(BfdState.Up);
    s.receive(pkt({ state: BfdState.Up, desiredMinTx: 1_000_000, detectMult: 5 }), 0);
    expect(s.detectTimeMs).toBe(5000);
  });

  it('slow start: Desired Min TX is 1 s until Up, then the configured value with a Poll Sequence', () => {
    const s = session({ desiredMinTxUs: 50_000, requiredMinRxUs: 50_000 });
    const first = sends(s.tick(s.nextDeadline()!));
    expect(first[0]).toMatchObject({ state: BfdState.Down, desiredMinTx: SLOW_TX_US, poll: false });
    const up = s.receive(pkt({ state: BfdState.Init }), 2000);
    expect(s.state).toBe(BfdState.Up);
    const sent = sends(up.concat(s.tick(2000)));
    expect(sent[0]).toMatchObject({ state: BfdState.Up, desiredMinTx: 50_000, poll: true });
    // A faster rate of our own is used at once: max(50 ms, their 300 ms).
    expect(s.txIntervalMs).toBe(300);
    s.receive(pkt({ state: BfdState.Up, final: true }), 2010);
    expect(s.pollActive).toBe(false);
    expect(sends(s.tick(s.nextDeadline()!))[0]!.poll).toBe(false);
  });

  it('a slower Desired Min TX while Up takes effect only when the Poll is answered', () => {
    const s = inState(BfdState.Up);
    s.receive(pkt({ state: BfdState.Up, requiredMinRx: 100_000 }), 1);
    expect(s.txIntervalMs).toBe(300);
    s.reconfigure({ desiredMinTxUs: 1_000_000, requiredMinRxUs: 300_000, detectMult: 3 }, 2);
    expect(s.pollActive).toBe(true);
    expect(s.txIntervalMs).toBe(300);
    const p = sends(s.tick(s.nextDeadline()!))[0]!;
    expect(p).toMatchObject({ poll: true, desiredMinTx: 1_000_000 });
    s.receive(pkt({ state: BfdState.Up, final: true, requiredMinRx: 100_000 }), 400);
    expect(s.txIntervalMs).toBe(1000);
  });

  it('a smaller Required Min RX while Up shortens detection only when the Poll is answered', () => {
    const s = inState(BfdState.Up);
    s.receive(pkt({ state: BfdState.Up, desiredMinTx: 50_000 }), 1);
    expect(s.detectTimeMs).toBe(900);
    s.reconfigure({ desiredMinTxUs: 300_000, requiredMinRxUs: 50_000, detectMult: 3 }, 2);
    s.receive(pkt({ state: BfdState.Up, desiredMinTx: 50_000 }), 3);
    expect(s.detectTimeMs).toBe(900);
    s.receive(pkt({ state: BfdState.Up, desiredMinTx: 50_000, final: true }), 4);
    expect(s.detectTimeMs).toBe(150);
  });

  it('jitter: 75-100 % of the interval, at most 90 % with Detect Mult 1', () => {
    for (const [mult, r, lo, hi] of [
      [3, 0, 0.75, 0.75],
      [3, 0.9999, 0.99, 1],
      [1, 0.9999, 0.89, 0.9],
    ] as const) {
      const s = session({ detectMult: mult, random: () => r });
      const at = s.nextDeadline()!;
      expect(at / 1000).toBeGreaterThanOrEqual(lo);
      expect(at / 1000).toBeLessThanOrEqual(hi);
    }
  });

  it('sends nothing while the remote asks for Required Min RX 0, nor passively before it speaks', () => {
    const s = inState(BfdState.Up);
    s.receive(pkt({ state: BfdState.Up, requiredMinRx: 0 }), 10);
    expect(s.txIntervalMs).toBeUndefined();
    expect(sends(s.tick(5000))).toEqual([]);
    const p = session({ passive: true });
    expect(p.nextDeadline()).toBeUndefined();
    p.receive(pkt({ yourDiscr: 0 }), 10);
    expect(p.nextDeadline()).toBeDefined();
  });

  it('stops periodic sending when the remote is in demand mode and both are Up', () => {
    const s = inState(BfdState.Up);
    s.receive(pkt({ state: BfdState.Up, demand: true }), 10);
    expect(s.txIntervalMs).toBeUndefined();
    // A Poll is still answered.
    expect(sends(s.receive(pkt({ state: BfdState.Up, demand: true, poll: true }), 11))[0]!.final).toBe(true);
  });

  it('administratively down: AdminDown with diag 7 is sent and kept; enabled again it is Down', () => {
    const s = inState(BfdState.Up);
    const out = s.setAdminDown(true, 50);
    expect(states(out)).toEqual([[BfdState.AdminDown, Diag.AdministrativelyDown]]);
    expect(sends(s.tick(50))[0]).toMatchObject({ state: BfdState.AdminDown, diag: 7 });
    s.receive(pkt({ state: BfdState.Init }), 60);
    expect(s.state).toBe(BfdState.AdminDown);
    expect(states(s.setAdminDown(false, 70))).toEqual([[BfdState.Down, Diag.None]]);
  });

  it('refuses a configuration outside the RFC’s ranges', () => {
    expect(() => session({ detectMult: 0 })).toThrow('detect multiplier');
    expect(() => session({ localDiscr: 0 })).toThrow('discriminator');
    expect(() => session({ requiredMinRxUs: 0 })).toThrow('required min rx');
  });
});

describe('BFD Control packets (§4.1)', () => {
  it('encode and decode agree, and the bits land where the RFC puts them', () => {
    const p = pkt({ state: BfdState.Up, diag: 3, poll: true, detectMult: 5 });
    const b = encodeControl(p);
    expect(b.length).toBe(24);
    expect(b[0]).toBe((1 << 5) | 3);
    expect(b[1]).toBe((3 << 6) | 0x20);
    expect(b[3]).toBe(24);
    expect(decodeControl(b)).toEqual(p);
  });

  it('discards what §6.8.6 discards, saying why', () => {
    const good = encodeControl(pkt());
    const with_ = (i: number, v: number) => {
      const c = Buffer.from(good);
      c[i] = v;
      return c;
    };
    expect(decodeControl(good.subarray(0, 20))).toEqual({
      error: '20 bytes, shorter than a Control packet (24)',
    });
    expect(decodeControl(with_(0, 2 << 5))).toEqual({ error: 'version 2, not 1' });
    expect(decodeControl(with_(3, 23))).toEqual({ error: 'Length 23 is below 24' });
    expect(decodeControl(with_(3, 30))).toEqual({ error: 'Length 30 is beyond the 24 bytes received' });
    expect(decodeControl(with_(2, 0))).toEqual({ error: 'Detect Mult is zero' });
    expect(decodeControl(with_(1, 0x01))).toEqual({ error: 'Multipoint bit set' });
    expect(decodeControl(with_(1, 0x04))).toEqual({ error: 'authentication present (not supported)' });
    expect(decodeControl(encodeControl(pkt({ myDiscr: 0 })))).toEqual({ error: 'My Discriminator is zero' });
  });
});

describe('BFD sessions on a lossy, reordering channel (property)', () => {
  /** mulberry32: a small seeded PRNG for the channel. */
  const prng = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };

  it('loss and reordering with every gap below the detection time never bring an Up session down', () => {
    fc.assert(
      fc.property(
        fc.integer(),
        fc.double({ min: 0, max: 0.5, noNaN: true }),
        fc.integer({ min: 0, max: 400 }),
        fc.constantFrom(50_000, 100_000, 300_000),
        (seed, loss, maxDelay, interval) => {
          const rnd = prng(seed);
          const mk = (d: number) =>
            new BfdSession(
              {
                localDiscr: d,
                desiredMinTxUs: interval,
                requiredMinRxUs: interval,
                detectMult: 3,
                random: rnd,
              },
              0,
            );
          const a = mk(1);
          const b = mk(2);
          const peer = new Map([
            [a, b],
            [b, a],
          ]);
          // In flight: [deliver at, to, packet].
          let flight: [number, BfdSession, ControlPacket][] = [];
          let lossy = false;
          const lastRx = new Map<BfdSession, number>();
          let maxGapRatio = 0;
          let downAfterUp = false;
          const emit = (from: BfdSession, out: SessionOutput[], now: number) => {
            for (const o of out) {
              if (o.type === 'state' && lossy && o.to !== BfdState.Up) downAfterUp = true;
              if (o.type !== 'send') continue;
              if (lossy && rnd() < loss) continue;
              flight.push([now + (lossy ? rnd() * maxDelay : 1), peer.get(from)!, o.packet]);
            }
          };
          let now = 0;
          const end = 60_000;
          while (now < end) {
            const next = Math.min(
              a.nextDeadline() ?? Number.POSITIVE_INFINITY,
              b.nextDeadline() ?? Number.POSITIVE_INFINITY,
              ...flight.map((f) => f[0]),
            );
            now = next;
            const due = flight.filter((f) => f[0] <= now);
            flight = flight.filter((f) => f[0] > now);
            for (const [, to, p] of due) {
              if (lossy) {
                const gap = now - (lastRx.get(to) ?? now);
                maxGapRatio = Math.max(maxGapRatio, gap / to.detectTimeMs);
              }
              lastRx.set(to, now);
              emit(to, to.receive(p, now), now);
            }
            for (const s of [a, b])
              if ((s.nextDeadline() ?? Number.POSITIVE_INFINITY) <= now) emit(s, s.tick(now), now);
            // Both Up, the bring-up's packets delivered and the Polls answered: the channel turns bad.
            if (
              !lossy &&
              a.state === BfdState.Up &&
              b.state === BfdState.Up &&
              !a.pollActive &&
              !b.pollActive &&
              flight.length === 0
            ) {
              lossy = true;
              lastRx.set(a, now);
              lastRx.set(b, now);
            }
          }
          // Only runs whose gaps all stayed below the detection time say anything.
          fc.pre(lossy && maxGapRatio < 1);
          return !downAfterUp && a.state === BfdState.Up && b.state === BfdState.Up;
        },
      ),
      { numRuns: 200 },
    );
  });
});
