/**
 * Leaked-address reclamation, planned as a pure function: an address whose pod no longer exists
 * (its CNI DEL never came: a node crashed, kubelet lost state) is released after it has been
 * seen leaked, continuously and as the same allocation, for a grace period.
 *
 * - Only allocations that name a pod (`namespace` and `pod` attributes) are considered; an
 *   address held for anything else (a tunnel address, a test) is never reclaimed here.
 * - An allocation whose pod is in `pods` is never reclaimed, however long it has been seen, and
 *   its observation is forgotten, so a pod that reappears restarts the clock.
 * - An observation is keyed by block, ordinal and the allocation's sequence number: an address
 *   released and handed out again is a new allocation with a fresh clock.
 * - The plan names each address with its handle and sequence number, and the allocator's apply
 *   step (`Allocator.reclaim`) releases it only if both still match, so an address handed out
 *   again between plan and apply is left alone.
 *
 * Calico's kube-controllers do the same (a leak is confirmed after a grace period, 15 minutes by
 * default); the grace period covers a pod list that lags the CNI ADD that just took an address.
 *
 * Does not: read pods or blocks (the caller passes them in), keep time (`now` is an argument).
 */
import { addressAt, parseCidr } from './blocks.js';
import type { IPAMBlockSpec } from './model.js';

/** The key of a pod in the `pods` set. */
export function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export interface LeakCandidate {
  /** The block's CIDR. */
  block: string;
  ordinal: number;
  address: string;
  handle: string;
  namespace: string;
  pod: string;
  sequenceNumber: number;
  /** When this allocation was first seen without its pod (the caller's clock, ms). */
  firstSeen: number;
}

export interface ReclaimPlan {
  /** Leaked for at least the grace period: release these. */
  reclaim: LeakCandidate[];
  /** Every allocation now seen leaked (pass it back in next time). */
  seen: Map<string, LeakCandidate>;
}

export function planReclaim(input: {
  blocks: readonly IPAMBlockSpec[];
  /** Existing pods, as `podKey(namespace, name)`. */
  pods: ReadonlySet<string>;
  now: number;
  gracePeriodMs: number;
  /** The previous plan's `seen` (empty the first time). */
  seen: ReadonlyMap<string, LeakCandidate>;
  /** Only allocations this node made (each agent reclaims its own); absent: every node's. */
  node?: string;
}): ReclaimPlan {
  const seen = new Map<string, LeakCandidate>();
  const reclaim: LeakCandidate[] = [];
  for (const b of input.blocks) {
    let cidr: ReturnType<typeof parseCidr>;
    try {
      cidr = parseCidr(b.cidr);
    } catch {
      continue;
    }
    b.allocations.forEach((a, ordinal) => {
      if (a === null) return;
      const attrs = b.attributes[a];
      if (attrs?.namespace === undefined || attrs.pod === undefined) return;
      if (input.node !== undefined && attrs.node !== input.node) return;
      if (input.pods.has(podKey(attrs.namespace, attrs.pod))) return;
      const sequenceNumber = b.sequenceNumberForAllocation[String(ordinal)] ?? -1;
      const key = `${b.cidr} ${ordinal} ${sequenceNumber}`;
      const firstSeen = input.seen.get(key)?.firstSeen ?? input.now;
      const c: LeakCandidate = {
        block: b.cidr,
        ordinal,
        address: addressAt(cidr, ordinal),
        handle: attrs.handle,
        namespace: attrs.namespace,
        pod: attrs.pod,
        sequenceNumber,
        firstSeen,
      };
      seen.set(key, c);
      if (input.now - firstSeen >= input.gracePeriodMs) reclaim.push(c);
    });
  }
  return { reclaim, seen };
}
