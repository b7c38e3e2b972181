/**
 * Giving memory back after the tables grew. The RIB, the prefix index and the Adj-RIB-Outs keep
 * their columns in typed arrays that double as they fill (rib/); each doubling leaves the old
 * arrays as garbage outside the JavaScript heap, which V8 collects only when its heap asks for a
 * collection, and a speaker that has just taken a table in sits idle with a small heap. So once a
 * table has grown by a quarter (and by at least 64k prefixes) and changes have paused, the speaker
 * asks V8 for a full collection: the JavaScript heap is a few MiB (the tables are not in it), so
 * it takes a few milliseconds, once per growth.
 *
 * Whether the freed arrays then leave the process's resident memory is the C library's business:
 * glibc serves large allocations with mmap and unmaps them at free, but raises that threshold as
 * large blocks are freed, after which some stay in its heap. `DAEMON_ENV` fixes the threshold at
 * 128 KiB; the image sets it (deploy/Dockerfile), and so do `twill lab` for its agents and
 * bench/bgp for Twill (bench/bgp/HISTORY.md has what each part gives).
 *
 * The start-up warm-up (warmup.ts) runs with the young generation held at its size
 * (`withoutYoungGrowth`): left to itself, V8 doubled it to 32 MiB there, and gives it back only
 * in a collection that finds the allocation rate of the last seconds low, so a standalone
 * speaker held 100 MiB 1 s after start instead of 82. V8's `--semi-space-growth-factor` is read
 * at each growth; it is 1 during the warm-up and V8's default, 2, after. So for a node agent's
 * block-path warm-up (agent/warmup.ts, `withoutYoungGrowthAsync`): without it, agents of a lab
 * mesh held 83 MiB (39 of it anonymous) instead of 71-77 (27-33).
 *
 * The collector is reached through V8's `--expose-gc`, set at run time: Node offers no other way
 * to ask for a collection. Where that fails, `collectGarbage` is a no-op.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

function findCollector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/** The environment the image gives `twill agent` and `twill speaker` (deploy/Dockerfile ENV). */
export const DAEMON_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

let collector: (() => void) | undefined | null = null;

/** Run `fn` with V8's young generation kept at the size it has (see above). */
export function withoutYoungGrowth<T>(fn: () => T): T {
  setFlagsFromString('--semi-space-growth-factor=1');
  try {
    return fn();
  } finally {
    setFlagsFromString('--semi-space-growth-factor=2');
  }
}

/** `withoutYoungGrowth` for work that waits on the way (its waits included). */
export async function withoutYoungGrowthAsync<T>(fn: () => Promise<T>): Promise<T> {
  setFlagsFromString('--semi-space-growth-factor=1');
  try {
    return await fn();
  } finally {
    setFlagsFromString('--semi-space-growth-factor=2');
  }
}

/** A full collection of V8's heaps, when V8 allows one to be asked for. */
export function collectGarbage(): void {
  if (collector === null) collector = findCollector();
  collector?.();
}

/** Prefixes the table must have grown by, since the last collection, before another. */
export function grewEnough(slots: number, lastCollectedAt: number): boolean {
  return slots >= lastCollectedAt + Math.max(65_536, lastCollectedAt / 4);
}
