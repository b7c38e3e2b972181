/**
 * Twill as a router, in namespaces: four speakers, A and D feeding B, B feeding C, all eBGP.
 *   - B passes A's prefix to C with its own AS prepended and itself as next hop;
 *   - B picks between A's and D's paths for the same prefix and says why (`twill routes`);
 *   - a prefix A stops originating (live reload) is withdrawn all the way to C;
 *   - B's new import rule for D (live reload) asks D for a route refresh instead of resetting,
 *     and D's path goes;
 *   - more prefixes than B's max-prefix for A ends that session with Cease 6/1.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { BIN, Twill } from '../helpers/twill.js';

describeSystem(
  'Twill as a router: transit, best path, withdraw, refresh, max-prefix',
  { root: true, tools: ['ip'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let a: Twill;
    let b: Twill;
    let c: Twill;
    let d: Twill;
    const fast = { holdTime: 9, connectRetry: 1 };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-rib-'));
      const [na, nb, nc, nd] = ['a', 'b', 'c', 'd'].map((x) => lab.ns(x)) as [string, string, string, string];
      lab.link(na, '10.61.1.1/24', nb, '10.61.1.2/24');
      lab.link(nb, '10.61.2.2/24', nc, '10.61.2.3/24');
      lab.link(nd, '10.61.4.4/24', nb, '10.61.4.2/24');
      a = new Twill(lab, {
        ns: na,
        dir,
        routerId: '10.61.1.1',
        asn: 65001,
        neighbors: [{ address: '10.61.1.2', asn: 65002, ...fast }],
        originate: ['10.1.0.0/24', '10.9.0.0/24'],
      });
      b = new Twill(lab, {
        ns: nb,
        dir,
        routerId: '10.61.2.2',
        asn: 65002,
        neighbors: [
          { address: '10.61.1.1', asn: 65001, ...fast },
          { address: '10.61.2.3', asn: 65003, ...fast },
          { address: '10.61.4.4', asn: 65004, ...fast },
        ],
      });
      c = new Twill(lab, {
        ns: nc,
        dir,
        routerId: '10.61.2.3',
        asn: 65003,
        neighbors: [{ address: '10.61.2.2', asn: 65002, ...fast }],
      });
      d = new Twill(lab, {
        ns: nd,
        dir,
        routerId: '10.61.4.4',
        asn: 65004,
        neighbors: [{ address: '10.61.4.2', asn: 65002, ...fast }],
        originate: ['10.9.0.0/24'],
      });
      await Promise.all([a.start(), b.start(), c.start(), d.start()]);
      for (const addr of ['10.61.1.1', '10.61.2.3', '10.61.4.4']) await b.waitState(addr, 'Established');
    });

    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('B passes A’s prefix to C with its AS prepended and itself as next hop', async () => {
      await waitFor('C has 10.1.0.0/24', async () =>
        (await c.prefixesFrom('10.61.2.2')).includes('10.1.0.0/24'),
      );
      expect(await c.pathFrom('10.1.0.0/24', '10.61.2.2')).toMatchObject({
        best: true,
        asPath: '65002 65001',
        nextHops: ['10.61.2.2'],
        origin: 'IGP',
      });
      // Nothing goes back where it came from: A does not hear its own prefix from B.
      expect(await a.prefixesFrom('10.61.1.2')).not.toContain('10.1.0.0/24');
    });

    it('B picks one of two equal-length paths by router id, and twill routes says so', async () => {
      await waitFor('two paths at B', async () => (await b.routes('10.9.0.0/24'))[0]?.paths.length === 2);
      const [r] = await b.routes('10.9.0.0/24');
      expect(r!.reason).toBe('won on router id');
      const best = r!.paths.find((p) => p.best)!;
      expect(best.from).toBe('10.61.1.1'); // A's router id 10.61.1.1 is below D's 10.61.4.4
      const text = execFileSync(
        process.execPath,
        [BIN, 'routes', '--prefix', '10.9.0.0/24', '--api', b.sock],
        { encoding: 'utf8' },
      );
      expect(text).toMatch(/10\.9\.0\.0\/24 {2}\(2 paths, won on router id\)/);
      expect(text).toMatch(/>\s+via 10\.61\.1\.1\s+from 10\.61\.1\.1/);
    });

    it('a prefix A stops originating is withdrawn all the way to C', async () => {
      a.spec.originate = ['10.9.0.0/24'];
      a.reload();
      await waitFor(
        'C loses 10.1.0.0/24',
        async () => !(await c.prefixesFrom('10.61.2.2')).includes('10.1.0.0/24'),
      );
      expect((await b.routes('10.1.0.0/24')).length).toBe(0);
    });

    it('a new import rule asks the peer for a route refresh instead of resetting the session', async () => {
      const since = b.peer('10.61.4.4').since;
      b.spec.neighbors[2] = {
        ...b.spec.neighbors[2]!,
        import: [{ prefix: '10.9.0.0/24', action: 'reject' }],
      } as never;
      b.reload();
      await waitFor(
        'D’s path gone at B',
        async () => !(await b.routes('10.9.0.0/24'))[0]?.paths.some((p) => p.from === '10.61.4.4'),
      );
      expect(b.peer('10.61.4.4')).toMatchObject({ state: 'Established', since });
      await waitFor('B logs the refresh', () => /asked the peer for a route refresh/.test(b.log), 5000);
    });

    it('more prefixes than max-prefix ends the session with Cease 6/1', async () => {
      b.spec.neighbors[0] = { ...b.spec.neighbors[0]!, maxPrefix: 2 } as never;
      b.reload();
      // max-prefix is policy (bgp/reconfig.ts): the session stays; the limit applies from now on.
      await b.waitState('10.61.1.1', 'Established');
      a.spec.originate = ['10.9.0.0/24', '10.2.0.0/24', '10.3.0.0/24'];
      a.reload();
      await waitFor(
        'A hears Cease 6/1',
        () => {
          const e = a.peer('10.61.1.2').lastError;
          return e?.direction === 'received' && e.code === 6 && e.subcode === 1;
        },
        15_000,
      );
    });
  },
);
