/**
 * The wait between attempts after a compare-and-swap Conflict (the allocator's `backoff`, as
 * client-go's RetryOnConflict): exponential from `minMs` to `maxMs`, each wait a random 50-100%
 * of its step, so writers that collided do not collide again in step.
 */
export function jitteredBackoff(minMs = 5, maxMs = 200): (attempt: number) => Promise<void> {
  return (attempt) => {
    const step = Math.min(maxMs, minMs * 2 ** attempt);
    return new Promise((resolve) => setTimeout(resolve, step * (0.5 + Math.random() * 0.5)));
  };
}
