/**
 * The route reconciler: the shell around route-model.ts that talks to the kernel (STYLE.md §5;
 * Calico Felix's `RouteTable.Apply`).
 *
 * - `setDesired(owner, specs)` records intent in memory; nothing is written until `apply()`.
 *   The caller makes the first `apply()` once the datastore is in sync; until then the
 *   reconciler writes nothing on its own either.
 * - `apply()` reads everything back first when the model asks for it (the first apply, after a
 *   failure, after `markForReadBack()`, after lost notifications), then sends the planned
 *   operations as one batch (`Kernel.writeRoutes`). The first read-back *adopts* what the
 *   kernel has: a route of ours that is already right is left alone, so an agent restart
 *   deletes and re-adds nothing. Calls are serialised.
 * - Failure: a failed batch or dump is retried once on a fresh kernel handle after a fresh
 *   read-back; a second failure rejects with `RouteApplyError` so the caller reschedules. A
 *   route whose interface vanished under it (ENODEV, ENETDOWN) is not a failure: it waits. Nor
 *   is an add that finds a route already there (EEXIST: put there since the last read-back):
 *   the next apply reads back, then adopts it or reports the conflict.
 *   A dump the kernel marks interrupted (EINTR) is read again, up to three times.
 * - After `start()`: link notifications (new, up, down, rename, delete) update the model and
 *   schedule an apply; a read-back every `readBackMs` (default 90 s, as Felix) repairs drift
 *   such as a route deleted from outside; the end of an interface's grace period schedules an
 *   apply; lost notifications (ENOBUFS) force a read-back. Applies it schedules itself report
 *   failures to `onError` and are retried after `retryMs`.
 * - Foreign routes are never written; conflicts are logged once when they appear and returned
 *   in every `ApplyStats`. One race remains, as in Felix: a foreign route that takes the place
 *   of one of ours between a read-back and our `replace` of that route is overwritten (a delete
 *   cannot hit it: deletes name our protocol); the next read-back reports the conflict.
 * - `noteWritten(routes)`: routes of ours that another path of this process has just written (the
 *   agent's CNI host wiring) are believed in the kernel at once (route-model.ts `adopt`), so the
 *   owner that wants them next adds nothing.
 * - `applySoon()` coalesces: every change recorded before the next turn of the event loop goes
 *   out in one apply.
 * - Call `start()` before the first `apply()` so no link event falls between its read-back and
 *   the subscription (started later, it reads back once more).
 *
 * Not here: route notifications (a route deleted from outside is repaired by the next read-back,
 * not at once: listening to our own 50k writes echoed back would cost more than it saves);
 * neighbour entries and sysctls (neigh.ts, sysctl.ts).
 */
import { type Clock as BgpClock, systemClock, type TimerHandle } from '../bgp/clock.js';
import { formatPrefix } from '../net/addr.js';
import { ApplyQueue, applyWithOneRetry } from './apply.js';
import type { Kernel, KernelEvent, KernelFactory } from './kernel.js';
import { KernelError } from './kernel.js';
import {
  type Conflict,
  type KernelRoute,
  type LinkState,
  RouteModel,
  type RouteModelOptions,
  type RouteOp,
  type RouteSpec,
} from './route-model.js';

/**
 * The time the reconciler reads and the timers it arms: the speaker's clock (bgp/clock.ts; Node's
 * timers, unref'd, so a pending read-back never keeps the process alive), or in tests its
 * FakeClock, advanced by hand. Only these four members are used.
 */
export type Clock = Pick<BgpClock, 'now' | 'after' | 'every' | 'soon'>;
export type { TimerHandle };

export interface Logger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info?(obj: Record<string, unknown>, msg: string): void;
  debug?(obj: Record<string, unknown>, msg: string): void;
}

export interface RouteReconcilerOptions extends RouteModelOptions {
  /** Opens a kernel handle; called again for the retry after a failure. */
  kernel: KernelFactory;
  clock?: Clock;
  /** Full read-back period once started. Default 90 000 ms. */
  readBackMs?: number;
  /** Delay before retrying an apply the reconciler scheduled itself. Default 1 000 ms. */
  retryMs?: number;
  log?: Logger;
  /** Failures of applies the reconciler scheduled itself (after start()). */
  onError?: (err: Error) => void;
  /** Told after every successful apply, with its duration in seconds (the agent's metrics). */
  onApplied?: (stats: ApplyStats, seconds: number) => void;
}

export interface ApplyStats {
  readBack: boolean;
  added: number;
  replaced: number;
  deleted: number;
  /** Routes waiting for their interface. */
  waiting: number;
  /** Routes of ours kept for an interface's grace period or until expected owners report. */
  deferred: number;
  /** Foreign routes for prefixes we want (among those looked at). */
  conflicts: Conflict[];
  /** Operations that failed and were left for the next apply (interface gone meanwhile). */
  failed: { dst: string; op: RouteOp['op']; code: string }[];
}

export class RouteApplyError extends Error {
  override name = 'RouteApplyError';
}

export class RouteReconciler {
  readonly model: RouteModel;
  private readonly factory: KernelFactory;
  private kernel: Kernel | undefined;
  private readonly clock: Clock;
  private readonly log: Logger | undefined;
  private readonly readBackMs: number;
  private readonly retryMs: number;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly onApplied: ((stats: ApplyStats, seconds: number) => void) | undefined;
  private readonly applies = new ApplyQueue();
  private started = false;
  private unsubscribe: (() => void) | undefined;
  private readBackTimer: TimerHandle | undefined;
  private wakeTimer: TimerHandle | undefined;
  private wakeAt: number | undefined;
  private scheduled = false;
  private reported = new Set<string>();

  constructor(opts: RouteReconcilerOptions) {
    this.model = new RouteModel(opts);
    this.factory = opts.kernel;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
    this.readBackMs = opts.readBackMs ?? 90_000;
    this.retryMs = opts.retryMs ?? 1_000;
    this.onError = opts.onError;
    this.onApplied = opts.onApplied;
  }

  /** Replace everything `owner` wants (memory only). An empty list withdraws the owner's routes. */
  setDesired(owner: string, specs: Iterable<RouteSpec>): void {
    this.model.setDesired(owner, specs);
  }

  /** Change part of what `owner` wants (memory only); see RouteModel.updateDesired. */
  updateDesired(owner: string, changes: Iterable<readonly [dst: string, spec: RouteSpec | null]>): void {
    this.model.updateDesired(owner, changes);
  }

  /**
   * Routes of ours that another path of this process has just written (the CNI host wiring):
   * believed in the kernel from now on (route-model.ts `adopt`), so that the next apply does not
   * add them again, fail with EEXIST, and read everything back.
   */
  noteWritten(routes: Iterable<KernelRoute>): void {
    for (const r of routes) this.model.adopt(r);
  }

  /** Make the next apply() read the kernel back first (memory only). */
  markForReadBack(): void {
    this.model.markForReadBack();
  }

  private handle(): Kernel {
    if (this.kernel === undefined) {
      this.kernel = this.factory();
      if (this.started) this.subscribe();
    }
    return this.kernel;
  }

  private reopen(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    this.kernel?.close();
    this.kernel = undefined;
  }

  /** Program the difference between desired and the kernel. Serialised (apply.ts). */
  apply(): Promise<ApplyStats> {
    return this.applies.run(async () => {
      const t0 = performance.now();
      const stats = await this.applyWithRetry();
      this.onApplied?.(stats, (performance.now() - t0) / 1000);
      return stats;
    });
  }

  private applyWithRetry(): Promise<ApplyStats> {
    return applyWithOneRetry(
      () => this.applyOnce(),
      (err) => {
        this.log?.warn({ err: String(err) }, 'route apply failed; read-back and a fresh netlink handle next');
        this.reopen();
        this.model.markForReadBack();
      },
      (err) => new RouteApplyError(`route apply failed twice: ${err.message}`),
    );
  }

  private async readBack(k: Kernel): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const [links, routes] = await Promise.all([k.listLinks(), k.listRoutes()]);
        this.model.loadKernel(routes, links, this.clock.now());
        return;
      } catch (err) {
        if (err instanceof KernelError && err.code === 'EINTR' && attempt < 3) continue;
        throw err;
      }
    }
  }

  private async applyOnce(): Promise<ApplyStats> {
    const k = this.handle();
    const stats: ApplyStats = {
      readBack: false,
      added: 0,
      replaced: 0,
      deleted: 0,
      waiting: 0,
      deferred: 0,
      conflicts: [],
      failed: [],
    };
    if (this.model.needReadBack) {
      await this.readBack(k);
      stats.readBack = true;
    }
    const plan = this.model.plan(this.clock.now());
    stats.waiting = plan.waiting.length;
    stats.deferred = plan.deferred;
    stats.conflicts = plan.conflicts;
    this.reportConflicts(plan.conflicts);
    if (plan.ops.length > 0) {
      let results: (string | undefined)[];
      try {
        results = await k.writeRoutes(plan.ops);
      } catch (err) {
        // Nothing is known about which operations happened.
        for (const op of plan.ops) this.model.failed(op, 'EIO');
        throw err;
      }
      const errors: string[] = [];
      let inTheWay = false;
      for (let i = 0; i < plan.ops.length; i++) {
        const op = plan.ops[i]!;
        const code = results[i];
        if (code === undefined) {
          this.model.confirm(op);
          if (op.op === 'add') stats.added++;
          else if (op.op === 'replace') stats.replaced++;
          else stats.deleted++;
          continue;
        }
        const verdict = this.model.failed(op, code);
        if (verdict === 'ok') {
          if (op.op === 'del') stats.deleted++;
          continue;
        }
        const dst = formatPrefix(op.route.key);
        stats.failed.push({ dst, op: op.op, code });
        // A route was put there since the last read-back (the plugin's own host script, another
        // daemon): not a failure of ours. The next apply reads back, adopts it if it is ours,
        // and reports it if it is not (reportConflicts, once).
        if (op.op === 'add' && code === 'EEXIST') inTheWay = true;
        else if (verdict === 'readback') errors.push(`${op.op} ${dst}: ${code}`);
      }
      if (inTheWay) this.schedule();
      if (errors.length > 0) {
        const more = errors.length > 5 ? ` and ${errors.length - 5} more` : '';
        throw new RouteApplyError(`route operations failed: ${errors.slice(0, 5).join(', ')}${more}`);
      }
    }
    this.armWake(plan.wakeAtMs);
    return stats;
  }

  private reportConflicts(conflicts: Conflict[]): void {
    for (const c of conflicts) {
      const id = `${c.dst}|${c.protocol}|${c.metric}`;
      if (this.reported.has(id)) continue;
      this.reported.add(id);
      this.log?.warn(
        { dst: c.dst, protocol: c.protocol, metric: c.metric, blocking: c.blocking },
        c.blocking
          ? `a route for ${c.dst} with protocol ${c.protocol} is in the way; ours is not installed`
          : `a route for ${c.dst} with protocol ${c.protocol} (metric ${c.metric}) sits beside ours`,
      );
    }
    if (this.reported.size > 10_000) this.reported = new Set();
  }

  private armWake(at: number | undefined): void {
    if (at === undefined || !this.started) return;
    if (this.wakeAt !== undefined && this.wakeAt <= at) return;
    this.wakeTimer?.cancel();
    this.wakeAt = at;
    this.wakeTimer = this.clock.after(Math.max(0, at - this.clock.now()), () => {
      this.wakeAt = undefined;
      this.wakeTimer = undefined;
      this.schedule();
    });
  }

  // ---- running on its own ------------------------------------------------------------------

  /**
   * Listen to link notifications and read back every `readBackMs`. Best called before the first
   * apply(), so that no link event falls between its read-back and the subscription; called
   * after it, one more read-back closes that gap. Nothing is written before the first apply().
   */
  start(): void {
    if (this.started) return;
    this.started = true;
    if (this.kernel === undefined) this.handle();
    else this.subscribe();
    if (this.model.loaded) {
      this.model.markForReadBack();
      this.schedule();
    }
    this.readBackTimer = this.clock.every(this.readBackMs, () => {
      this.model.markForReadBack();
      this.schedule();
    });
  }

  stop(): void {
    this.started = false;
    this.readBackTimer?.cancel();
    this.wakeTimer?.cancel();
    this.readBackTimer = undefined;
    this.wakeTimer = undefined;
    this.wakeAt = undefined;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Stop and close the kernel handle. Routes stay in the kernel. */
  close(): void {
    this.stop();
    this.kernel?.close();
    this.kernel = undefined;
  }

  private subscribe(): void {
    this.unsubscribe = this.kernel!.subscribe(['link'], (ev) => this.onEvent(ev));
  }

  private onEvent(ev: KernelEvent): void {
    const now = this.clock.now();
    switch (ev.kind) {
      case 'link':
        this.model.linkUpdate(ev.link, now);
        break;
      case 'linkGone':
        this.model.linkGone(ev.index);
        break;
      case 'overrun':
        this.log?.warn({}, 'netlink notifications were lost; reading routes back');
        this.model.markForReadBack();
        break;
      case 'route':
        return;
    }
    this.schedule();
  }

  /**
   * Ask for an apply at the next turn of the event loop: the changes recorded until then go out
   * in one batch (a burst of best-route changes becomes one netlink batch). Only once started
   * and after the first apply(); failures go to `onError` and are retried after `retryMs`.
   */
  applySoon(): void {
    this.schedule();
  }

  private schedule(): void {
    if (!this.started || this.scheduled || !this.model.loaded) return;
    this.scheduled = true;
    this.clock.soon(() => {
      this.scheduled = false;
      if (!this.started) return;
      this.apply().then(
        (s) => {
          if (s.added + s.replaced + s.deleted > 0 || s.readBack)
            this.log?.debug?.({ ...s, conflicts: s.conflicts.length }, 'routes reconciled');
        },
        (err: Error) => {
          this.log?.warn({ err: String(err) }, 'route apply failed; will retry');
          this.onError?.(err);
          if (this.started) this.clock.after(this.retryMs, () => this.schedule());
        },
      );
    });
  }

  /** What is wanted, installed, waiting and in conflict (for `twill routes` and tests). */
  status(): {
    desired: number;
    installed: number;
    waiting: { dst: string; dev: string }[];
    conflicts: Conflict[];
  } {
    return {
      desired: this.model.desiredCount(),
      installed: this.model.believedCount(),
      waiting: this.model.waiting(),
      conflicts: this.model.conflicts(),
    };
  }
}

export type { Conflict, KernelRoute, LinkState, RouteSpec };
