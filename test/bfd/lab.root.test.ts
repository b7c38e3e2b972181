/**
 * BFD in the lab: containerlab/mesh3 through `twill lab`, BFD turned on for the mesh with a
 * BGPConfiguration (100 ms x 3) applied to the lab's store. Every session shows BFD Up; then one
 * node's agent is killed (SIGKILL: no goodbye, its kernel still forwarding), and its block leaves
 * the other nodes' kernels within a second: without BFD they would keep it for the graceful
 * restart time (120 s).
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LabState } from '../../src/lab/lab.js';
import { describeSystem } from '../helpers/env.js';
import { sh, waitFor } from '../helpers/netns.js';
import { BIN } from '../helpers/twill.js';

const run = promisify(execFile);

describeSystem(
  'BFD in the lab: a killed node leaves every kernel within a second',
  { root: true, tools: ['ip', 'iptables'] },
  () => {
    let dir: string;
    const name = `bfl${process.pid % 10000}`;
    const lab = (...args: string[]) =>
      run(process.execPath, [BIN, 'lab', ...args, '--state-dir', dir], { timeout: 120_000 }).then(
        (r) => r.stdout,
      );
    const state = () => JSON.parse(readFileSync(join(dir, name, 'lab.json'), 'utf8')) as LabState;
    const viaGateway = (node: string, gw: string) =>
      (
        JSON.parse(sh('ip', ['-n', `tw-${name}-${node}`, '-j', 'route', 'show', 'proto', '84'])) as {
          gateway?: string;
        }[]
      ).some((r) => r.gateway === gw);

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-bfd-lab-'));
      chmodSync(dir, 0o755);
      await lab(
        'up',
        join(import.meta.dirname, '../../containerlab/mesh3.clab.yml'),
        '--name',
        name,
        '--pods',
        '1',
        '--wait',
        '60',
      );
      const objects = join(dir, 'bfd.yaml');
      writeFileSync(
        objects,
        'apiVersion: crd.twill.dev/v1\nkind: BGPConfiguration\nmetadata: { name: default }\nspec:\n  bfd: { enabled: true, minTxMs: 100, minRxMs: 100, multiplier: 3 }\n',
      );
      await lab('apply', name, objects);
    }, 150_000);
    afterAll(async () => {
      await lab('down', name).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    it('every mesh session shows BFD Up', async () => {
      await waitFor(
        'BFD Up everywhere',
        async () => {
          const st = JSON.parse(await lab('status', name, '--json')) as {
            nodes: { role: string; name: string }[];
          };
          const s = state();
          for (const n of s.nodes.filter((x) => x.role === 'twill')) {
            const out = sh(process.execPath, [BIN, 'status', '--api', n.api!, '--json']);
            const peers = (JSON.parse(out) as { peers: { state: string; bfd?: string }[] }).peers;
            if (peers.length !== 2 || !peers.every((p) => p.state === 'Established' && p.bfd === 'Up'))
              return false;
          }
          return st;
        },
        60_000,
        300,
      );
    }, 90_000);

    it('SIGKILL of an agent: its block is gone from the other kernels within a second', async () => {
      const s = state();
      const victim = s.nodes.find((n) => n.name === 'twill3')!;
      for (const o of ['twill1', 'twill2']) expect(viaGateway(o, victim.address!)).toBe(true);
      await new Promise((r) => setTimeout(r, 1500));
      const t0 = performance.now();
      process.kill(victim.procs[0]!.pid, 'SIGKILL');
      await waitFor(
        'twill3’s block gone from twill1 and twill2',
        () => !viaGateway('twill1', victim.address!) && !viaGateway('twill2', victim.address!),
        10_000,
        20,
      );
      expect(performance.now() - t0).toBeLessThan(1000);
    }, 30_000);
  },
);
