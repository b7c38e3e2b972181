/**
 * A peer that stops reading (RFC 9687): it keeps sending KEEPALIVEs, so its hold timer never
 * fires, but reads nothing while Twill has a large table (300k prefixes) to send. Twill must not
 * buffer without bound — it writes only while the socket takes data — and when the send hold
 * timer runs out (2 s here) it drops the session with NOTIFICATION 8/0. The speaker and the
 * stubborn peer run in one process (test/bgp/stop-reading.mjs) inside a namespace whose TCP
 * buffers are small, so the socket fills long before the table is sent.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab } from '../helpers/netns.js';

describeSystem('a peer that stops reading', { root: true, tools: ['ip', 'sysctl'] }, () => {
  const lab = new Lab();
  afterAll(() => lab.cleanup());

  it('is sent only what its socket takes, and is dropped with 8/0 when the send hold timer runs out', () => {
    const ns = lab.ns('sr');
    lab.exec(ns, 'sysctl', ['-qw', 'net.ipv4.tcp_wmem=4096 16384 65536']);
    lab.exec(ns, 'sysctl', ['-qw', 'net.ipv4.tcp_rmem=4096 16384 65536']);
    const out = execFileSync(
      'ip',
      ['netns', 'exec', ns, process.execPath, join(import.meta.dirname, 'stop-reading.mjs')],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      state: string;
      lastError: { direction: string; code: number; subcode: number } | null;
      rssGrowthMiB: number;
      sentBeforeDrop: number;
    };
    expect(r.state).not.toBe('Established');
    expect(r.lastError).toMatchObject({ direction: 'sent', code: 8, subcode: 0 });
    // Most of the table was never written: the socket was full.
    expect(r.sentBeforeDrop).toBeLessThan(300_000);
    expect(r.rssGrowthMiB).toBeLessThan(100);
  }, 90_000);
});
