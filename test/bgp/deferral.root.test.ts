/**
 * Selection deferral after a graceful restart (RFC 4724 §4.1) waits only for peers that can send
 * End-of-RIB: a Twill started with --graceful-restart next to a peer without graceful restart
 * (GoBGP, which then sends no End-of-RIB at all) advertises at once, not after the deferral time
 * (60 s by default).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { Twill } from '../helpers/twill.js';
import { type Daemon, startGobgp } from '../interop/daemons.js';

describeSystem(
  'graceful-restart deferral with a peer that has no graceful restart',
  { root: true, tools: ['ip', 'gobgpd', 'gobgp'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let x: Twill;
    let y: Daemon;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-deferral-'));
      const nx = lab.ns('x');
      const ny = lab.ns('y');
      lab.link(nx, '10.62.0.1/24', ny, '10.62.0.2/24');
      x = new Twill(lab, {
        ns: nx,
        dir,
        routerId: '10.62.0.1',
        asn: 65001,
        neighbors: [{ address: '10.62.0.2', asn: 65002, holdTime: 9, connectRetry: 1 }],
        originate: ['10.1.0.0/24'],
        restarting: true,
      });
      [y] = await Promise.all([
        startGobgp(lab, {
          ns: ny,
          dir: join(dir, 'gobgp'),
          routerId: '10.62.0.2',
          asn: 65002,
          gracefulRestart: false,
          peers: [{ address: '10.62.0.1', asn: 65001, passive: true, families: ['ipv4-unicast'] }],
        }),
        x.start(),
      ]);
    });

    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('advertises at once', async () => {
      await y.waitEstablished('10.62.0.1', 20_000);
      await waitFor(
        'the prefix at GoBGP',
        async () => (await y.routes()).some((r) => r.prefix === '10.1.0.0/24'),
        10_000,
      );
      expect(x.log).toMatch(/restart: advertising/);
    });
  },
);
