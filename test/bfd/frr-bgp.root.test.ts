/**
 * BGP over BFD against FRR (zebra, bfdd and bgpd with `neighbor ... bfd profile fast`, 100 ms x 3)
 * and a Twill speaker with BFD on its neighbor, hold time 90 s on both: with the link cut, both
 * BGP sessions close within the BFD detection time (300 ms, with slack), not the hold time.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getJson } from '../../src/api/http.js';
import type { SpeakerStatus } from '../../src/bgp/status.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { Twill } from '../helpers/twill.js';

describeSystem(
  'BGP over BFD: Twill and FRR close the session on a BFD Down',
  { root: true, tools: ['ip', 'vtysh', '/usr/lib/frr/bgpd', '/usr/lib/frr/bfdd', '/usr/lib/frr/zebra'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let frr: string;
    let twill: Twill;
    let tw: string;
    let tIf: string;

    const frrBgp = () => {
      const out = sh('vtysh', ['--vty_socket', frr, '-d', 'bgpd', '-c', 'show bgp summary json'], {
        allowFail: true,
      });
      try {
        const j = JSON.parse(out) as { ipv4Unicast?: { peers?: Record<string, { state: string }> } };
        return j.ipv4Unicast?.peers?.['10.9.1.1']?.state ?? 'none';
      } catch {
        return 'none';
      }
    };

    /** The peer as the API serves it: straight from the socket, no CLI start-up in the timing. */
    const apiPeer = async () =>
      ((await getJson({ kind: 'unix', path: twill.sock }, '/status', 2000)) as SpeakerStatus).peers[0]!;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-bfd-frr-'));
      chmodSync(dir, 0o755);
      frr = join(dir, 'frr');
      sh('mkdir', ['-p', frr]);
      sh('chown', ['frr:frr', frr]);
      tw = lab.ns('tw');
      const ns = lab.ns('frr');
      ({ aIf: tIf } = lab.link(tw, '10.9.1.1/24', ns, '10.9.1.2/24'));
      const zserv = join(frr, 'zserv.api');
      const common = ['--vty_socket', frr, '-z', zserv, '-A', '127.0.0.1', '-P', '0'];
      writeFileSync(
        join(frr, 'bfdd.conf'),
        'bfd\n profile fast\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n!\n',
      );
      writeFileSync(
        join(frr, 'bgpd.conf'),
        [
          'frr defaults traditional',
          'router bgp 64513',
          ' bgp router-id 10.9.1.2',
          ' no bgp ebgp-requires-policy',
          ' neighbor 10.9.1.1 remote-as 64512',
          ' neighbor 10.9.1.1 timers 30 90',
          ' neighbor 10.9.1.1 timers connect 1',
          ' neighbor 10.9.1.1 bfd profile fast',
          '!',
          '',
        ].join('\n'),
      );
      lab.spawn(ns, '/usr/lib/frr/zebra', [
        '-f',
        '/dev/null',
        '-i',
        join(frr, 'zebra.pid'),
        '-u',
        'frr',
        '-g',
        'frr',
        ...common,
      ]);
      await waitFor('zebra', () => sh('ls', [frr]).includes('zserv.api'), 10_000, 50);
      lab.spawn(ns, '/usr/lib/frr/bfdd', [
        '-f',
        join(frr, 'bfdd.conf'),
        '-i',
        join(frr, 'bfdd.pid'),
        '-u',
        'frr',
        '-g',
        'frr',
        ...common,
      ]);
      lab.spawn(ns, '/usr/lib/frr/bgpd', [
        '-f',
        join(frr, 'bgpd.conf'),
        '-i',
        join(frr, 'bgpd.pid'),
        '-S',
        '-n',
        ...common,
      ]);
      twill = new Twill(lab, {
        ns: tw,
        dir,
        routerId: '10.9.1.1',
        asn: 64512,
        neighbors: [
          {
            address: '10.9.1.2',
            asn: 64513,
            holdTime: 90,
            connectRetry: 1,
            bfd: { minTx: 100, minRx: 100, multiplier: 3 },
          },
        ],
      });
      await twill.start();
    }, 40_000);
    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('comes up with BFD Up on both', async () => {
      await waitFor(
        'BGP Established with BFD Up',
        async () => {
          const p = await apiPeer();
          return p.state === 'Established' && p.bfd === 'Up' && frrBgp() === 'Established';
        },
        30_000,
        200,
      );
    }, 40_000);

    it('a cut link closes both BGP sessions within the BFD detection time', async () => {
      // Up came at the slow start's 1 s; the Poll that brings in 100 ms takes a few packets.
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      sh('ip', ['-n', tw, 'link', 'set', tIf, 'down']);
      await waitFor(
        'Twill’s session closed',
        async () => (await apiPeer()).state !== 'Established',
        5000,
        10,
      );
      expect(performance.now() - t0).toBeLessThan(300 + 250);
      await waitFor('FRR’s session closed', () => frrBgp() !== 'Established', 3000, 50);
      expect(performance.now() - t0).toBeLessThan(1500);
    }, 15_000);
  },
);
