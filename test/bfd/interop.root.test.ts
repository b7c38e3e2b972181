/**
 * Twill's BFD (src/bfd, through test/bfd/endpoint.mjs in a namespace) against BIRD 2's bfd
 * protocol and FRR's bfdd, single hop over a veth, 100 ms x 3 on both sides: the session comes
 * Up, and when the path is cut both sides go Down within the detection time (300 ms; the test
 * allows 150 ms for timers and the pipe). Two cuts: the link set down, and every packet dropped
 * both ways by netfilter, the stand-in here for `tc netem loss 100%` (these machines' kernels
 * have no sch_netem).
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';

const ENDPOINT = join(import.meta.dirname, 'endpoint.mjs');
const DETECT_MS = 300;
const SLACK_MS = 150;

interface Line {
  t?: number;
  to?: string;
  diag?: number;
  ready?: boolean;
}

describeSystem(
  'BFD interop: Twill against BIRD 2 and FRR bfdd',
  { root: true, tools: ['ip', 'bird', 'birdc', 'vtysh', '/usr/lib/frr/bfdd', 'iptables'] },
  () => {
    let lab: Lab;
    let dir: string;
    let twill: string;
    let other: string;
    let tIf: string;
    const lines: { at: number; line: Line }[] = [];
    let ep: ChildProcess;

    beforeEach(async () => {
      lab = new Lab();
      dir = mkdtempSync(join(tmpdir(), 'twill-bfd-'));
      chmodSync(dir, 0o755);
      twill = lab.ns('tw');
      other = lab.ns('peer');
      ({ aIf: tIf } = lab.link(twill, '10.9.0.1/24', other, '10.9.0.2/24'));
      lines.length = 0;
    });
    afterEach(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    function startTwill(): void {
      ep = lab.spawn(twill, process.execPath, [ENDPOINT, '10.9.0.1', '10.9.0.2', '100', '100', '3']);
      let buf = '';
      ep.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const p of parts) lines.push({ at: performance.now(), line: JSON.parse(p) as Line });
      });
    }
    const twillState = () => lines.filter((l) => l.line.to).at(-1)?.line.to ?? 'Down';

    async function cutAndMeasure(kind: 'link down' | 'drop all', peerState: () => string): Promise<number> {
      // Up came at the slow start's 1 s; the Poll that brings in 100 ms takes a few packets.
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      if (kind === 'link down') sh('ip', ['-n', twill, 'link', 'set', tIf, 'down']);
      else
        for (const ns of [twill, other]) {
          lab.exec(ns, 'iptables', ['-A', 'INPUT', '-p', 'udp', '-j', 'DROP']);
          lab.exec(ns, 'iptables', ['-A', 'OUTPUT', '-p', 'udp', '-j', 'DROP']);
        }
      const down = await waitFor(
        'Twill’s session Down',
        () => lines.find((l) => l.at > t0 && l.line.to === 'Down'),
        5000,
        10,
      );
      expect(down.line.diag).toBe(1);
      const took = down.at - t0;
      expect(took).toBeLessThan(DETECT_MS + SLACK_MS);
      await waitFor('the peer’s session Down', () => /down/i.test(peerState()), 2000, 50);
      expect(performance.now() - t0).toBeLessThan(DETECT_MS + SLACK_MS + 300);
      return took;
    }

    for (const kind of ['link down', 'drop all'] as const) {
      it(`BIRD 2: Up, then ${kind}: both Down within the detection time`, async () => {
        const conf = join(dir, 'bird.conf');
        writeFileSync(
          conf,
          `router id 10.9.0.2;
protocol device { }
protocol bfd {
  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
  neighbor 10.9.0.1;
}
`,
        );
        const ctl = join(dir, 'bird.ctl');
        lab.spawn(other, 'bird', ['-f', '-c', conf, '-s', ctl]);
        startTwill();
        const birdState = () => {
          const out = sh('birdc', ['-s', ctl, 'show', 'bfd', 'sessions'], { allowFail: true });
          return /10\.9\.0\.1\s+\S+\s+(\S+)/.exec(out)?.[1] ?? 'none';
        };
        await waitFor(
          'BFD Up on both sides',
          () => twillState() === 'Up' && birdState() === 'Up',
          10_000,
          50,
        );
        await cutAndMeasure(kind, birdState);
      }, 30_000);

      it(`FRR bfdd: Up, then ${kind}: both Down within the detection time`, async () => {
        const frr = join(dir, 'frr');
        sh('mkdir', ['-p', frr]);
        sh('chown', ['frr:frr', frr]);
        const conf = join(frr, 'bfdd.conf');
        writeFileSync(
          conf,
          'bfd\n peer 10.9.0.1 local-address 10.9.0.2\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n!\n',
        );
        lab.spawn(other, '/usr/lib/frr/bfdd', [
          ...['-f', conf, '-i', join(frr, 'bfdd.pid'), '--vty_socket', frr],
          ...['-u', 'frr', '-g', 'frr', '-A', '127.0.0.1', '-P', '0'],
        ]);
        startTwill();
        const frrState = () => {
          const out = sh('vtysh', ['--vty_socket', frr, '-d', 'bfdd', '-c', 'show bfd peers brief'], {
            allowFail: true,
          });
          return /10\.9\.0\.2\s+10\.9\.0\.1\s+(\S+)/.exec(out)?.[1] ?? 'none';
        };
        await waitFor('BFD up on both sides', () => twillState() === 'Up' && frrState() === 'up', 10_000, 50);
        await cutAndMeasure(kind, frrState);
      }, 30_000);
    }
  },
);
