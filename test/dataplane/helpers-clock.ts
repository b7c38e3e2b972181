/**
 * A clock for the route reconciler's unit tests: time moves only when the test calls
 * `advance(ms)`, which runs `soon` callbacks and every timer that falls due, in order of due time.
 */
import type { Clock, TimerHandle } from '../../src/dataplane/routes.js';

interface Timer {
  at: number;
  seq: number;
  period: number;
  fn: () => void;
  live: boolean;
}

export class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private timers: Timer[] = [];
  private soonQueue: (() => void)[] = [];

  now(): number {
    return this.t;
  }

  after(ms: number, fn: () => void): TimerHandle {
    return this.arm(ms, fn, 0);
  }

  every(ms: number, fn: () => void): TimerHandle {
    return this.arm(ms, fn, Math.max(1, ms));
  }

  soon(fn: () => void): void {
    this.soonQueue.push(fn);
  }

  advance(ms = 0): void {
    const end = this.t + ms;
    for (;;) {
      while (this.soonQueue.length > 0) {
        const batch = this.soonQueue;
        this.soonQueue = [];
        for (const fn of batch) fn();
      }
      let next: Timer | undefined;
      for (const p of this.timers)
        if (p.live && p.at <= end && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq)))
          next = p;
      if (!next) break;
      this.t = next.at;
      if (next.period) {
        next.at += next.period;
        next.seq = this.seq++;
      } else next.live = false;
      next.fn();
    }
    this.t = end;
    this.timers = this.timers.filter((p) => p.live);
  }

  private arm(ms: number, fn: () => void, period: number): TimerHandle {
    const p: Timer = { at: this.t + ms, seq: this.seq++, period, fn, live: true };
    this.timers.push(p);
    return {
      cancel: () => {
        p.live = false;
      },
    };
  }
}
