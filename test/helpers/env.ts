/**
 * What a test needs from the machine, and what to do when it is missing.
 *
 * Tests that need root, network namespaces or a real peer (BIRD, FRR, GoBGP, tshark...) call
 * `requireSystem(...)` at the top of their describe block. On a developer laptop without them the
 * block is skipped with a message saying why. With CI=true nothing may be skipped: a missing
 * requirement fails the test instead, so CI cannot go green by silently running less.
 */
import { execFileSync } from 'node:child_process';
import { describe } from 'vitest';

export const inCi = process.env.CI === 'true' || process.env.CI === '1';

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export function haveTool(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the system cannot run this block, or undefined if it can. */
export function missing(opts: { root?: boolean; tools?: string[] }): string | undefined {
  const why: string[] = [];
  if (opts.root && !isRoot()) why.push('needs root (network namespaces)');
  for (const t of opts.tools ?? []) if (!haveTool(t)) why.push(`needs ${t} on PATH`);
  return why.length ? why.join('; ') : undefined;
}

/**
 * `describe` that runs when the system has what it needs, skips with a reason on a laptop, and
 * fails under CI=true when something is missing.
 */
export function describeSystem(
  name: string,
  opts: { root?: boolean; tools?: string[] },
  body: () => void,
): void {
  const why = missing(opts);
  if (why === undefined) {
    describe(name, body);
  } else if (inCi) {
    describe(name, () => {
      throw new Error(`CI=true but this machine cannot run "${name}": ${why}`);
    });
  } else {
    process.stderr.write(`skipping "${name}": ${why}\n`);
    describe.skip(`${name} (skipped: ${why})`, body);
  }
}
