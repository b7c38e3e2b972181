/**
 * containerlab/twill-bird.clab.yml, built from network namespaces by reading the file (there is
 * no container engine here; test/bgp/lab-helpers.ts buildClab: every node a namespace, every link
 * a veth pair named as the file names its endpoints, the `exec` lines run in their node, and each
 * node's `cmd` run with its `binds` resolved on the host). Twill and BIRD must reach Established
 * and hold each other's prefix, as seen by `twill status --json` and `birdc show route`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { birdc, buildClab, type ClabRun } from '../bgp/lab-helpers.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { BIN, ROOT } from '../helpers/twill.js';

const FILE = join(ROOT, 'containerlab/twill-bird.clab.yml');

describeSystem(
  'containerlab/twill-bird.clab.yml from namespaces',
  { root: true, tools: ['ip', 'bird', 'birdc'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let run: ClabRun;

    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'twill-clab-'));
      run = buildClab(lab, FILE, dir);
    });

    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    const twillStatus = () =>
      JSON.parse(
        execFileSync(process.execPath, [BIN, 'status', '--json', '--api', run.twillSock.get('twill1')!], {
          encoding: 'utf8',
        }),
      ) as { peers: { address: string; state: string; prefixesReceived: number }[] };

    it('the file has the two nodes and one link the lab expects', () => {
      expect(run.topo.nodes.map((n) => n.name)).toEqual(['twill1', 'bird1']);
      expect(run.topo.links).toHaveLength(1);
    });

    it('Twill and BIRD reach Established and hold each other’s prefix', async () => {
      await waitFor(
        'twill1 Established with bird1',
        () => twillStatus().peers[0]?.state === 'Established',
        40_000,
      );
      await waitFor(
        'twill1 holds 192.0.2.0/24',
        () => twillStatus().peers[0]?.prefixesReceived === 1,
        20_000,
      );
      const routes = await waitFor(
        'bird1 holds 10.20.0.0/24',
        () => {
          const out = birdc(run.birdSock.get('bird1')!, 'show', 'route', 'protocol', 'twill1');
          return out.includes('10.20.0.0/24') && out;
        },
        20_000,
      );
      expect(routes).toMatch(/10\.20\.0\.0\/24\s+unicast \[twill1 .*\] \* \(100\) \[AS64512i\]/);
    });
  },
);
