/**
 * `twill agent` gives a function its feedback vector at the first call and keeps bytecode through
 * full collections (src/cli/agent-v8.ts); other commands leave V8 as it is. Checked on the built
 * CLI (bin/twill.js -> dist/, built by npm test's pretest) in a child Node with V8's test
 * intrinsics (`--allow-natives-syntax`): `%DebugPrint` says whether a function has a feedback
 * vector, `%ActiveTierIsIgnition` whether it still has bytecode. V8 throws bytecode away after five
 * full collections without a call; the child does so after one (`--bytecode-old-age=1`) and
 * brings collections on by allocating, so that hours of an agent's idling take a second or two.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/twill.js';

interface Seen {
  /** A function first called after the command started: a feedback vector after one call? */
  freshHasFeedback: boolean;
  /** A function called once before the command started: still compiled after the collections? */
  oldStillCompiled: boolean;
  collections: number;
}

function seenAfter(...args: string[]): Seen {
  const cli = join(ROOT, 'dist/src/cli.js');
  const script = `
    const old = new Function('a', 'return a * 3');
    old(2);
    const { main } = await import(${JSON.stringify(cli)});
    await main(${JSON.stringify(args)});
    const fresh = new Function('o', 'return o.x');
    fresh({ x: 1 });
    process.stdout.write('\\nFRESH\\n');
    %DebugPrint(fresh);
    process.stdout.write('\\nEND\\n');
    const { PerformanceObserver, constants } = await import('node:perf_hooks');
    let collections = 0;
    const watch = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) collections++;
    });
    watch.observe({ entryTypes: ['gc'] });
    let keep = [];
    for (let round = 0; round < 2000 && collections < 8; round++) {
      for (let i = 0; i < 200000; i++) keep.push({ i });
      if (keep.length > 2e6) keep = [];
      await new Promise((r) => setTimeout(r, 1));
    }
    watch.disconnect();
    const seen = { oldStillCompiled: %ActiveTierIsIgnition(old), collections };
    process.stderr.write('SEEN ' + JSON.stringify(seen) + '\\n');
    process.exit(0);
  `;
  const r = spawnSync(
    process.execPath,
    ['--allow-natives-syntax', '--bytecode-old-age=1', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const line = r.stderr.split('\n').find((l) => l.startsWith('SEEN '));
  const printed = /\nFRESH\n([\s\S]*?)\nEND\n/.exec(r.stdout)?.[1];
  const vector = printed?.split('\n').find((l) => l.includes('- feedback vector:'));
  if (line === undefined || vector === undefined) {
    throw new Error(`the child said: ${r.stderr}\n${r.stdout}`);
  }
  return {
    ...(JSON.parse(line.slice('SEEN '.length)) as Omit<Seen, 'freshHasFeedback'>),
    freshHasFeedback: !vector.includes('No feedback vector'),
  };
}

describe('twill agent: feedback from the first call, bytecode kept', () => {
  it('agent: a feedback vector after one call, and bytecode kept through full collections', () => {
    const seen = seenAfter('agent', '--help');
    expect(seen.collections).toBeGreaterThanOrEqual(3);
    expect(seen).toMatchObject({ freshHasFeedback: true, oldStillCompiled: true });
  });

  it('version leaves V8 as it is (a positive control: no vector yet, the bytecode flushed)', () => {
    const seen = seenAfter('version');
    expect(seen.collections).toBeGreaterThanOrEqual(3);
    expect(seen).toMatchObject({ freshHasFeedback: false, oldStillCompiled: false });
  });
});
