/**
 * Time for the shells: the one interface through which the speaker and its sessions read the
 * time and arm timers, so that whatever depends on time (backoff, hold and keepalive timers,
 * graceful restart, selection deferral, the prune after changes pause, send pacing) runs under a
 * fake clock in a unit test exactly as it runs on the event loop (STYLE.md §3, §14).
 *
 * - `systemClock`: Node's timers, unref'd (a pending timer never keeps the process alive; `sleep`
 *   does, for a caller that awaits it), and `performance.now()` for the time, which no
 *   wall-clock step moves.
 * - `FakeClock`: time moves only when the test calls `advance(ms)`, which runs what falls due in
 *   order of due time (then of arming), including timers armed by the callbacks it runs. `soon`
 *   callbacks run at the next `advance`, even `advance(0)`, as setImmediate's run at the next turn.
 *
 * The pure machines (fsm.ts, graceful-restart.ts) take the time as an argument and arm nothing;
 * this is for the code that turns their outputs into timers.
 */

/** A timer armed on a Clock. */
export interface TimerHandle {
  /** Disarm; harmless when it already ran. */
  cancel(): void;
  /** Start the wait again from now, with the same delay (armed again if it already ran). */
  refresh(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic scale; only differences mean anything. */
  now(): number;
  /** Wall-clock time, for what people read (`twill status` "since", error times). */
  date(): Date;
  /** Run `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): TimerHandle;
  /** Run `fn` every `ms`, the first time `ms` from now. */
  every(ms: number, fn: () => void): TimerHandle;
  /** Run `fn` at the next turn of the event loop, after pending I/O (setImmediate). */
  soon(fn: () => void): void;
  /** Resolve `ms` from now. Unlike `after`, this keeps the process alive while it waits. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  date: () => new Date(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return {
      cancel: () => clearTimeout(t),
      refresh: () => void t.refresh(),
    };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return {
      cancel: () => clearInterval(t),
      refresh: () => void t.refresh(),
    };
  },
  soon(fn) {
    setImmediate(fn);
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

interface Pending {
  at: number;
  seq: number;
  ms: number;
  fn: () => void;
  /** 0: once; else the period. */
  period: number;
  live: boolean;
}

/** A clock for tests: nothing happens until `advance`. */
export class FakeClock implements Clock {
  private t = 0;
  private seq = 0;
  private pending: Pending[] = [];
  private soonQueue: (() => void)[] = [];

  constructor(private readonly epochMs = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t;
  }

  date(): Date {
    return new Date(this.epochMs + this.t);
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

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.after(ms, resolve));
  }

  /** Timers armed and not yet run or cancelled. */
  get armed(): number {
    return this.pending.filter((p) => p.live).length;
  }

  /** Milliseconds until the next timer falls due, or undefined when none is armed. */
  get nextIn(): number | undefined {
    const live = this.pending.filter((p) => p.live);
    return live.length ? Math.min(...live.map((p) => p.at)) - this.t : undefined;
  }

  /** Move time on by `ms`, running `soon` callbacks and every timer that falls due, in order. */
  advance(ms = 0): void {
    const end = this.t + ms;
    for (;;) {
      this.runSoon();
      const next = this.due(end);
      if (!next) break;
      this.t = next.at;
      if (next.period) {
        next.at += next.period;
        next.seq = this.seq++;
      } else next.live = false;
      next.fn();
    }
    this.t = end;
    this.pending = this.pending.filter((p) => p.live);
  }

  private runSoon(): void {
    while (this.soonQueue.length) {
      const batch = this.soonQueue;
      this.soonQueue = [];
      for (const fn of batch) fn();
    }
  }

  private due(end: number): Pending | undefined {
    let best: Pending | undefined;
    for (const p of this.pending)
      if (p.live && p.at <= end && (!best || p.at < best.at || (p.at === best.at && p.seq < best.seq)))
        best = p;
    return best;
  }

  private arm(ms: number, fn: () => void, period: number): TimerHandle {
    const p: Pending = { at: this.t + ms, seq: this.seq++, ms, fn, period, live: true };
    this.pending.push(p);
    return {
      cancel: () => {
        p.live = false;
      },
      refresh: () => {
        p.at = this.t + p.ms;
        p.seq = this.seq++;
        if (!p.live) {
          p.live = true;
          if (!this.pending.includes(p)) this.pending.push(p);
        }
      },
    };
  }
}
