/**
 * Fast from the first call, and kept: the V8 settings of `twill agent`, set when the command
 * starts, before any of the agent's own functions has run.
 *
 * Why: V8 runs a function in its bytecode interpreter, and gives it a feedback vector (the record
 * of the object shapes and callees it met, which its inline caches and every compiler tier work
 * from) only once it has been called eight times; until then each property load and call takes
 * the generic path. The speaker's UPDATE path is made hot at start by its warm-up
 * (src/bgp/warmup.ts), and a block's path is run once over scratch parts (src/agent/warmup.ts),
 * but an agent's work on a pod block (its store watch, the desired state, the reconciler's
 * netlink messages) runs once per block and stays cold: a receiving agent spends about a third
 * of a millisecond of CPU from an UPDATE's read to its route's netlink write. And
 * V8 throws away the bytecode of a function that has not run for five full collections (an idle
 * agent has them as its heap grows, and V8's memory reducer one or two after each burst of work),
 * so a block hours after the last one would be compiled from source again.
 *
 * The flags:
 *  - `--no-lazy-feedback-allocation`: the feedback vector from the first call. A few words per
 *    call site, for the functions the process runs.
 *  - `--no-flush-bytecode`: bytecode is kept once made: the code of what the process ran.
 * What it gave, 20-node lab mesh on 2 cores, 20 blocks a run, three runs each taking turns
 * (medians): a new block from the origin's kernel to the last other node's kernel 9.8, 10.6 and
 * 9.5 ms without, 8.7, 8.6 and 7.3 with; from the store write to it, 13.6, 14.8 and 14.2 against
 * 12.1, 13.1 and 11.9. A receiving agent's CPU from an UPDATE's read to its route's netlink
 * write (10-node mesh, 540 UPDATEs a run, two runs each, timed inside the agents): median 356 and
 * 344 µs without, 310 and 312 with; p90 503 and 461, 393 and 371. Resident memory per agent within
 * the runs' spread: 71-76 MiB either way on the file store, 98-102 in a 3-node Kubernetes-mode
 * lab (the Kubernetes client loaded). bench/agent (20 peers, 10k and 50k routes, two runs each):
 * idle RSS 70-75 MiB, RSS after 50k routes 173-180, CPU per 1,000 route changes 0.008-0.021 s,
 * the same either way.
 * Also tried: `--always-sparkplug` (baseline machine code at a function's first compile), alone
 * or with these, gave no more and compiles every function the process runs, the Kubernetes
 * client's included. `twill speaker` is left as it is: bench/bgp showed no difference with all
 * three (100k load 0.028-0.032 s against 0.030-0.033, latency median 0.29-0.45 ms against
 * 0.37-0.38): its UPDATE path is hot from its warm-up.
 *
 * Set at run time (`v8.setFlagsFromString`), which V8 reads when a function is first called or
 * collected, so it holds for everything after it. On the command line (`node --no-lazy-...`) it
 * would reach the `twill` command only through its `#!` line, for every command alike.
 */
import { setFlagsFromString } from 'node:v8';

export const AGENT_V8_FLAGS = ['--no-lazy-feedback-allocation', '--no-flush-bytecode'] as const;

/** Set the flags above for the rest of the process's life. */
export function setAgentV8Flags(): void {
  for (const flag of AGENT_V8_FLAGS) setFlagsFromString(flag);
}
