/**
 * BFD and graceful restart between two Twill speakers (both with BFD, 100 ms x 3, and graceful
 * restart, restart time 60 s): a speaker stopped gracefully (SIGTERM) says AdminDown on its BFD
 * sessions, which RFC 5882 §3.2 says is no failure, so its peer keeps its routes as a
 * restart's stale routes; a speaker killed (SIGKILL) cannot, its peer's BFD times out and the
 * stale routes go within a second (RFC 5882 §4.3.2) instead of after the 60 s restart time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { Twill } from '../helpers/twill.js';

describeSystem('BFD with graceful restart between two Twill speakers', { root: true, tools: ['ip'] }, () => {
  const lab = new Lab();
  let dir: string;
  let a: Twill;
  let b: Twill;
  const A = '10.9.2.1';
  const B = '10.9.2.2';
  const PREFIX = '10.77.1.0/24';
  const gr = { gracefulRestart: { enabled: true, restartTime: 60, deferralTime: 5 } };
  const bfd = { minTx: 100, minRx: 100, multiplier: 3 };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twill-bfd-gr-'));
    const na = lab.ns('a');
    const nb = lab.ns('b');
    lab.link(na, `${A}/24`, nb, `${B}/24`);
    a = new Twill(lab, {
      ns: na,
      dir,
      routerId: A,
      asn: 64512,
      neighbors: [{ address: B, asn: 64513, connectRetry: 1, bfd }],
      originate: [PREFIX],
      extra: gr,
    });
    b = new Twill(lab, {
      ns: nb,
      dir,
      routerId: B,
      asn: 64513,
      neighbors: [{ address: A, asn: 64512, connectRetry: 1, bfd }],
      extra: gr,
    });
    await Promise.all([a.start(), b.start()]);
  }, 30_000);
  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const bfdUp = () =>
    waitFor('BGP and BFD up', () => b.peer(A).state === 'Established' && b.peer(A).bfd === 'Up', 20_000, 100);
  const hasPrefix = async () => (await b.prefixesFrom(A)).includes(PREFIX);

  it('a graceful stop (SIGTERM) leaves the routes as stale: BFD AdminDown is no failure', async () => {
    await bfdUp();
    expect(await hasPrefix()).toBe(true);
    await a.stop();
    await waitFor('B sees the session close', () => b.peer(A).state !== 'Established', 5000, 50);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await hasPrefix()).toBe(true);
    expect(b.peer(A).prefixesStale).toBe(1);
    a.spec.restarting = true;
    await a.start();
  }, 40_000);

  it('a killed speaker (SIGKILL): its peer drops its stale routes within a second', async () => {
    await bfdUp();
    await waitFor(
      'the route fresh again',
      async () => (await hasPrefix()) && b.peer(A).prefixesStale === 0,
      20_000,
      100,
    );
    const t0 = performance.now();
    a.kill('SIGKILL');
    await waitFor('A’s route gone from B', async () => !(await hasPrefix()), 5000, 20);
    expect(performance.now() - t0).toBeLessThan(1000);
  }, 40_000);
});
