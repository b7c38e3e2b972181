/**
 * The graceful-restart machines (graceful-restart.ts) against RFC 4724, input by input, as
 * fsm.test.ts tests the session FSM: the helper that keeps a restarting peer's routes (§4.2) and
 * the restarting speaker's selection deferral (§4.1). Time is a number, and where a timer matters
 * a driver runs the outputs on a FakeClock: no sockets, no sleeps.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock, type TimerHandle } from '../../src/bgp/clock.js';
import {
  type DeferralInput,
  type DeferralOutput,
  type DeferralState,
  deferralStep,
  HELPER_NONE,
  type HelperInput,
  type HelperOutput,
  type HelperState,
  helperStep,
  initialDeferral,
} from '../../src/bgp/graceful-restart.js';
import { type Family, IPV4_UNICAST, IPV6_UNICAST } from '../../src/bgp/wire/constants.js';
import type { GracefulRestartCap } from '../../src/bgp/wire/open.js';

const V4 = IPV4_UNICAST;
const V6 = IPV6_UNICAST;
const BOTH = new Set<Family>([V4, V6]);

function cap(time: number, families: [Family, boolean][]): GracefulRestartCap {
  return {
    restarting: false,
    notification: false,
    time,
    families: families.map(([family, forwarding]) => ({ family, forwarding })),
  };
}

const down = (
  c: GracefulRestartCap | undefined,
  o: Partial<HelperInput & { kind: 'down' }> = {},
): HelperInput => ({
  kind: 'down',
  enabled: true,
  cap: c,
  notification: false,
  final: false,
  ...o,
});

/** Run inputs through the helper; the outputs of the last one. */
function helper(inputs: HelperInput[], now = 0): { state: HelperState; outputs: HelperOutput[] } {
  let state: HelperState = HELPER_NONE;
  let outputs: HelperOutput[] = [];
  for (const i of inputs) ({ state, outputs } = helperStep(state, i, now));
  return { state, outputs };
}

describe('graceful restart helper (RFC 4724 §4.2)', () => {
  it('a session that ends without a NOTIFICATION keeps the listed families stale and arms the restart time', () => {
    const r = helper([down(cap(120, [[V4, true]]))], 5000);
    expect(r.outputs).toEqual([
      { kind: 'markStale', families: [V4, V6] },
      { kind: 'sweep', families: [V6], why: 'not preserved' },
      { kind: 'armRestartTimer', ms: 120_000 },
    ]);
    expect(r.state).toEqual({ kind: 'stale', families: new Set([V4]), deadline: 125_000 });
  });

  it('keeps a family the capability lists even without the F bit (the bit matters on return)', () => {
    const r = helper([
      down(
        cap(60, [
          [V4, false],
          [V6, false],
        ]),
      ),
    ]);
    expect(r.outputs).toEqual([
      { kind: 'markStale', families: [V4, V6] },
      { kind: 'armRestartTimer', ms: 60_000 },
    ]);
  });

  for (const [what, input] of [
    ['a NOTIFICATION sent or received', down(cap(120, [[V4, true]]), { notification: true })],
    ['a peer without the capability', down(undefined)],
    ['graceful restart disabled here', down(cap(120, [[V4, true]]), { enabled: false })],
    ['a peer removed or a speaker stopping', down(cap(120, [[V4, true]]), { final: true })],
  ] as const) {
    it(`${what}: the routes go at once`, () => {
      expect(helper([input])).toEqual({ state: HELPER_NONE, outputs: [{ kind: 'removeAll' }] });
    });
  }

  it('back with the F bit for a family: it stays stale until its End-of-RIB', () => {
    const c = cap(120, [
      [V4, true],
      [V6, true],
    ]);
    const r = helper([down(c), { kind: 'established', cap: c, negotiated: BOTH }]);
    expect(r.outputs).toEqual([]);
    ({ state: r.state, outputs: r.outputs } = helperStep(r.state, { kind: 'endOfRib', family: V4 }, 0));
    expect(r.outputs).toEqual([{ kind: 'sweep', families: [V4], why: 'End-of-RIB' }]);
    ({ state: r.state, outputs: r.outputs } = helperStep(r.state, { kind: 'endOfRib', family: V6 }, 0));
    expect(r.outputs).toEqual([
      { kind: 'sweep', families: [V6], why: 'End-of-RIB' },
      { kind: 'cancelRestartTimer' },
    ]);
    expect(r.state).toBe(HELPER_NONE);
  });

  it('back without the F bit, or without negotiating the family: swept at once', () => {
    const before = cap(120, [
      [V4, true],
      [V6, true],
    ]);
    const noF = cap(120, [
      [V4, false],
      [V6, true],
    ]);
    expect(helper([down(before), { kind: 'established', cap: noF, negotiated: BOTH }]).outputs).toEqual([
      { kind: 'sweep', families: [V4], why: 'not preserved' },
    ]);
    expect(
      helper([down(before), { kind: 'established', cap: before, negotiated: new Set([V4]) }]).outputs,
    ).toEqual([{ kind: 'sweep', families: [V6], why: 'not preserved' }]);
    expect(helper([down(before), { kind: 'established', cap: undefined, negotiated: BOTH }])).toEqual({
      state: HELPER_NONE,
      outputs: [{ kind: 'sweep', families: [V4, V6], why: 'not preserved' }, { kind: 'cancelRestartTimer' }],
    });
  });

  it('End-of-RIB with nothing stale, or for a family not kept, does nothing', () => {
    expect(helper([{ kind: 'endOfRib', family: V4 }]).outputs).toEqual([]);
    expect(helper([down(cap(9, [[V4, true]])), { kind: 'endOfRib', family: V6 }]).outputs).toEqual([]);
  });

  it('down again while stale: the restart time starts over; down for good: the timer goes too', () => {
    const c = cap(30, [[V4, true]]);
    expect(helper([down(c), down(c)], 1000).outputs.at(-1)).toEqual({ kind: 'armRestartTimer', ms: 30_000 });
    expect(helper([down(c), down(c, { notification: true })]).outputs).toEqual([
      { kind: 'cancelRestartTimer' },
      { kind: 'removeAll' },
    ]);
  });

  /** The helper driven as the speaker drives it: the restart timer on a fake clock. */
  function drive(clock: FakeClock) {
    let state: HelperState = HELPER_NONE;
    let timer: TimerHandle | undefined;
    const log: string[] = [];
    const feed = (i: HelperInput): void => {
      const r = helperStep(state, i, clock.now());
      state = r.state;
      for (const o of r.outputs) {
        if (o.kind === 'armRestartTimer') {
          timer?.cancel();
          timer = clock.after(o.ms, () => feed({ kind: 'restartTimeExpired' }));
        } else if (o.kind === 'cancelRestartTimer') timer?.cancel();
        log.push(`${clock.now()} ${o.kind}${'families' in o ? ` ${o.families.length}` : ''}`);
      }
    };
    return { feed, log, state: () => state };
  }

  it('the restart time passes with the peer still away: every stale route goes, then', () => {
    const clock = new FakeClock();
    const h = drive(clock);
    h.feed(down(cap(120, [[V4, true]])));
    clock.advance(119_999);
    expect(h.state().kind).toBe('stale');
    clock.advance(1);
    expect(h.log.at(-1)).toBe('120000 sweep 2');
    expect(h.state()).toBe(HELPER_NONE);
  });

  it('the restart time also bounds a peer that comes back and never sends End-of-RIB', () => {
    const clock = new FakeClock();
    const h = drive(clock);
    const c = cap(60, [[V4, true]]);
    h.feed(down(c));
    clock.advance(10_000);
    h.feed({ kind: 'established', cap: c, negotiated: new Set([V4]) });
    clock.advance(49_999);
    expect(h.state().kind).toBe('stale');
    clock.advance(1);
    expect(h.state()).toBe(HELPER_NONE);
    expect(h.log.at(-1)).toBe('60000 sweep 2');
  });

  it('End-of-RIB in time cancels the restart timer: nothing more happens', () => {
    const clock = new FakeClock();
    const h = drive(clock);
    const c = cap(60, [[V4, true]]);
    h.feed(down(c));
    h.feed({ kind: 'established', cap: c, negotiated: new Set([V4]) });
    clock.advance(5000);
    h.feed({ kind: 'endOfRib', family: V4 });
    const n = h.log.length;
    clock.advance(600_000);
    expect(h.log.length).toBe(n);
    expect(clock.armed).toBe(0);
  });
});

describe('selection deferral of a restarting speaker (RFC 4724 §4.1)', () => {
  function deferral(restarting: boolean, clock: FakeClock) {
    let state: DeferralState = initialDeferral(restarting);
    let timer: TimerHandle | undefined;
    const said: DeferralOutput[] = [];
    const feed = (i: DeferralInput): void => {
      const r = deferralStep(state, i, clock.now());
      state = r.state;
      for (const o of r.outputs) {
        said.push(o);
        if (o.kind === 'armDeferralTimer')
          timer = clock.after(o.ms, () => feed({ kind: 'deferralTimeExpired' }));
        else if (o.kind === 'cancelDeferralTimer') timer?.cancel();
      }
    };
    return { feed, said, state: () => state };
  }
  const advertised = (said: DeferralOutput[]) => said.filter((o) => o.kind === 'advertise');

  it('not restarting: nothing is deferred, whatever happens', () => {
    const clock = new FakeClock();
    const d = deferral(false, clock);
    d.feed({ kind: 'start', deferralMs: 60_000 });
    d.feed({ kind: 'established', peer: 'a', gracefulRestart: true, families: BOTH });
    expect(d.said).toEqual([]);
    expect(d.state().deferring).toBe(false);
  });

  it('advertises once every graceful-restart peer has sent End-of-RIB for each family', () => {
    const clock = new FakeClock();
    const d = deferral(true, clock);
    d.feed({ kind: 'start', deferralMs: 60_000 });
    d.feed({ kind: 'established', peer: 'a', gracefulRestart: true, families: BOTH });
    d.feed({ kind: 'established', peer: 'b', gracefulRestart: true, families: new Set([V4]) });
    d.feed({ kind: 'endOfRib', peer: 'a', family: V4 });
    d.feed({ kind: 'endOfRib', peer: 'b', family: V4 });
    expect(advertised(d.said)).toEqual([]);
    clock.advance(1000);
    d.feed({ kind: 'endOfRib', peer: 'a', family: V6 });
    expect(advertised(d.said)).toEqual([{ kind: 'advertise', why: 'End-of-RIB from every peer' }]);
    expect(d.state().deferring).toBe(false);
    clock.advance(120_000);
    expect(advertised(d.said)).toHaveLength(1);
    expect(clock.armed).toBe(0);
  });

  it('a peer without graceful restart is not waited for: advertising starts when it is up', () => {
    const clock = new FakeClock();
    const d = deferral(true, clock);
    d.feed({ kind: 'start', deferralMs: 60_000 });
    d.feed({ kind: 'established', peer: 'gobgp', gracefulRestart: false, families: BOTH });
    expect(advertised(d.said)).toEqual([{ kind: 'advertise', why: 'End-of-RIB from every peer' }]);
  });

  it('the deferral time passes first: advertise anyway', () => {
    const clock = new FakeClock();
    const d = deferral(true, clock);
    d.feed({ kind: 'start', deferralMs: 60_000 });
    d.feed({ kind: 'established', peer: 'a', gracefulRestart: true, families: BOTH });
    d.feed({ kind: 'endOfRib', peer: 'a', family: V4 });
    clock.advance(59_999);
    expect(advertised(d.said)).toEqual([]);
    clock.advance(1);
    expect(advertised(d.said)).toEqual([{ kind: 'advertise', why: 'deferral time passed' }]);
    d.feed({ kind: 'endOfRib', peer: 'a', family: V6 });
    expect(advertised(d.said)).toHaveLength(1);
  });

  it('no peer up: End-of-RIB from nobody does not end it; a peer that goes down is not waited for', () => {
    const clock = new FakeClock();
    const d = deferral(true, clock);
    d.feed({ kind: 'start', deferralMs: 60_000 });
    d.feed({ kind: 'established', peer: 'a', gracefulRestart: true, families: new Set([V4]) });
    d.feed({ kind: 'established', peer: 'b', gracefulRestart: true, families: new Set([V4]) });
    d.feed({ kind: 'down', peer: 'b' });
    expect(advertised(d.said)).toEqual([]);
    d.feed({ kind: 'endOfRib', peer: 'a', family: V4 });
    expect(advertised(d.said)).toEqual([{ kind: 'advertise', why: 'End-of-RIB from every peer' }]);
  });

  it('a peer that comes back owes its End-of-RIBs again', () => {
    const clock = new FakeClock();
    const d = deferral(true, clock);
    d.feed({ kind: 'start', deferralMs: 60_000 });
    d.feed({ kind: 'established', peer: 'a', gracefulRestart: true, families: BOTH });
    d.feed({ kind: 'endOfRib', peer: 'a', family: V4 });
    d.feed({ kind: 'down', peer: 'a' });
    d.feed({ kind: 'established', peer: 'a', gracefulRestart: true, families: BOTH });
    d.feed({ kind: 'endOfRib', peer: 'a', family: V6 });
    expect(advertised(d.said)).toEqual([]);
    d.feed({ kind: 'endOfRib', peer: 'a', family: V4 });
    expect(advertised(d.said)).toHaveLength(1);
  });
});
