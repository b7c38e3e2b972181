/**
 * The agent's block-path warm-up (src/agent/warmup.ts) runs the agent's own reconciler and
 * NetlinkKernel against a stand-in for the kernel: every route message it makes must reach the
 * stand-in (three per route change: the origin's blackhole added, the received route added or
 * removed, the blackhole removed), and none this host's kernel.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { warmUpBlockPath } from '../../src/agent/warmup.js';
import { systemClock } from '../../src/bgp/clock.js';
import { MESH_WARM_UP } from '../../src/bgp/warmup-mesh.js';

function hostRoutesIn(prefix: string): string {
  try {
    return execFileSync('ip', ['-4', 'route', 'show', 'root', prefix], { encoding: 'utf8' });
  } catch {
    return ''; // no `ip` here: nothing to look at
  }
}

describe('warmUpBlockPath', () => {
  it("answers every route message from the stand-in, and leaves this host's routes alone", async () => {
    const before = hostRoutesIn('10.9.0.0/16');
    const messages = await warmUpBlockPath({
      clock: systemClock,
      poolCidr: '10.9.0.0/16',
      poolCidrs: ['10.9.0.0/16', 'fd00:9::/48'],
    });
    expect(messages).toBe(3 * 2 * MESH_WARM_UP.blocks * MESH_WARM_UP.rounds);
    expect(hostRoutesIn('10.9.0.0/16')).toBe(before);
  });

  it('does nothing for an IPv6 pool (the block path is IPv4 only)', async () => {
    expect(
      await warmUpBlockPath({ clock: systemClock, poolCidr: 'fd00:9::/48', poolCidrs: ['fd00:9::/48'] }),
    ).toBe(0);
  });
});
