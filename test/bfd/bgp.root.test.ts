/**
 * BGP over BFD against BIRD 2 (`bfd on`), as RFC 5882 §10.2 couples them: a Twill speaker with
 * `bfd: {minTx: 100, minRx: 100, multiplier: 3}` on its neighbor and BIRD with `bfd on` on its
 * BGP protocol, hold time 90 s on both. With the link cut, both BGP sessions close within the
 * BFD detection time (300 ms, with slack for timers), not the 90 s hold time; Twill closes with
 * Cease 6/10 "BFD Down" (RFC 9384); `twill status` shows the BFD state. With the link back, the
 * sessions come back by the FSM's usual rules.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getJson } from '../../src/api/http.js';
import type { SpeakerStatus } from '../../src/bgp/status.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { BIN, Twill } from '../helpers/twill.js';

describeSystem(
  'BGP over BFD: Twill and BIRD 2 close the session on a BFD Down',
  { root: true, tools: ['ip', 'bird', 'birdc'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let twill: Twill;
    let ctl: string;
    let tIf: string;
    let tw: string;

    const birdBgp = () => {
      const out = sh('birdc', ['-s', ctl, 'show', 'protocols'], { allowFail: true });
      return /twill\s+BGP\s+\S+\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1] ?? 'none';
    };
    const twillPeer = async () =>
      ((await getJson({ kind: 'unix', path: twill.sock }, '/status', 2000)) as SpeakerStatus).peers[0]!;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-bfd-bgp-'));
      tw = lab.ns('tw');
      const bird = lab.ns('bird');
      ({ aIf: tIf } = lab.link(tw, '10.9.1.1/24', bird, '10.9.1.2/24'));
      const conf = join(dir, 'bird.conf');
      writeFileSync(
        conf,
        `router id 10.9.1.2;
protocol device { }
protocol bfd {
  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
protocol bgp twill {
  local 10.9.1.2 as 64513;
  neighbor 10.9.1.1 as 64512;
  hold time 90;
  connect retry time 1;
  error wait time 1, 2;
  bfd on;
  ipv4 { import all; export none; };
}
`,
      );
      ctl = join(dir, 'bird.ctl');
      lab.spawn(bird, 'bird', ['-f', '-c', conf, '-s', ctl]);
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
    }, 30_000);
    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('comes up with BFD Up, and twill status says so', async () => {
      await waitFor(
        'BGP Established and BFD Up',
        async () => {
          const p = await twillPeer();
          return p.state === 'Established' && p.bfd === 'Up' && birdBgp() === 'Established';
        },
        20_000,
        100,
      );
      const text = sh(process.execPath, [BIN, 'status', '--api', twill.sock]);
      expect(text).toMatch(/Established .*BFD Up/);
    }, 30_000);

    it('a cut link closes both BGP sessions within the BFD detection time, not the hold time', async () => {
      // Up came at the slow start's 1 s; the Poll that brings in 100 ms takes a few packets.
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      sh('ip', ['-n', tw, 'link', 'set', tIf, 'down']);
      const p = await waitFor(
        'Twill’s session closed',
        async () => {
          const x = await twillPeer();
          return x.state !== 'Established' && x;
        },
        5000,
        20,
      );
      const took = performance.now() - t0;
      expect(took).toBeLessThan(300 + 250);
      expect(JSON.stringify(p.lastError)).toMatch(/BFD/);
      await waitFor('BIRD’s session closed', () => birdBgp() !== 'Established', 3000, 50);
      expect(performance.now() - t0).toBeLessThan(1500);
    }, 15_000);

    it('with the link back, the sessions come back by the usual rules', async () => {
      sh('ip', ['-n', tw, 'link', 'set', tIf, 'up']);
      await waitFor(
        'BGP Established and BFD Up again',
        async () => {
          const p = await twillPeer();
          return p.state === 'Established' && p.bfd === 'Up' && birdBgp() === 'Established';
        },
        30_000,
        200,
      );
    }, 40_000);
  },
);
