/**
 * The apply discipline every dataplane reconciler shares (STYLE.md §5, after Calico's
 * `RouteTable.Apply` and iptables `Table.Apply`): applies run one at a time, in call order, and a
 * failed apply is retried once after the caller's recovery step (a read-back, a fresh handle);
 * a second failure is reported, so the caller reschedules.
 */

/** Runs applies one after another; a failed one does not stop the ones queued behind it. */
export class ApplyQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(apply: () => Promise<T>): Promise<T> {
    const run = this.tail.then(apply);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/**
 * `apply()`, and if it throws, `recover(err)` then `apply()` once more. If that throws too,
 * `recover` runs again (so the next apply starts from a read-back) and `fail(err)` is thrown.
 */
export async function applyWithOneRetry<T>(
  apply: () => Promise<T>,
  recover: (err: unknown) => void,
  fail: (err: Error) => Error,
): Promise<T> {
  try {
    return await apply();
  } catch (err) {
    recover(err);
    try {
      return await apply();
    } catch (err2) {
      recover(err2);
      throw fail(err2 as Error);
    }
  }
}
