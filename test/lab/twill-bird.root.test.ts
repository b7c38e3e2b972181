/**
 * containerlab/twill-bird.clab.yml, built from network namespaces by reading the file (there is
 * no container engine here): every node a namespace, every link a veth pair named as the file
 * names its endpoints, the `exec` lines run in their node, and each node's `cmd` run with its
 * `binds` resolved on the host. The Twill image's `twill` is this checkout's bin/twill.js; the
 * only change made to a bound file is Twill's API socket, moved into the test's temp folder.
 * Then Twill and BIRD must reach Established and hold each other's prefix, as seen by
 * `twill status --json` and `birdc show route`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { bindHostPath, type ClabNode, readClab } from '../../src/lab/clab.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { BIN, ROOT } from '../helpers/twill.js';

const FILE = join(ROOT, 'containerlab/twill-bird.clab.yml');

describeSystem(
  'containerlab/twill-bird.clab.yml from namespaces',
  { root: true, tools: ['ip', 'bird', 'birdc'] },
  () => {
    const lab = new Lab();
    let dir: string;
    const ns = new Map<string, string>();
    const topo = readClab(readFileSync(FILE, 'utf8'), FILE);
    let twillSock: string;
    let birdSock: string;

    /** The host file bound at `container` in `node`. */
    const bound = (node: ClabNode, container: string) => {
      const b = node.binds.find((x) => x.container === container);
      if (!b) throw new Error(`${node.name} binds nothing at ${container}`);
      return bindHostPath(FILE, b);
    };

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-clab-'));
      for (const node of topo.nodes) ns.set(node.name, lab.ns(node.name));
      for (const [i, link] of topo.links.entries()) {
        const [a, b] = link.endpoints;
        const na = ns.get(a.node)!;
        const nb = ns.get(b.node)!;
        sh('ip', [
          'link',
          'add',
          `tcl${i}a`,
          'netns',
          na,
          'type',
          'veth',
          'peer',
          'name',
          `tcl${i}b`,
          'netns',
          nb,
        ]);
        sh('ip', ['-n', na, 'link', 'set', `tcl${i}a`, 'name', a.interface, 'up']);
        sh('ip', ['-n', nb, 'link', 'set', `tcl${i}b`, 'name', b.interface, 'up']);
      }
      for (const node of topo.nodes) {
        const n = ns.get(node.name)!;
        for (const line of node.exec) lab.exec(n, 'sh', ['-c', line]);
        const cmd = node.cmd ?? '';
        if (/(^|\/)twill:/.test(node.image ?? '')) {
          expect(cmd).toBe('twill speaker --config /etc/twill/speaker.yml');
          const cfg = parse(readFileSync(bound(node, '/etc/twill/speaker.yml'), 'utf8')) as Record<
            string,
            unknown
          >;
          twillSock = join(dir, 'twill.sock');
          cfg.api = { listen: twillSock };
          const file = join(dir, 'speaker.yml');
          writeFileSync(file, stringify(cfg));
          lab.spawn(n, process.execPath, [BIN, 'speaker', '--config', file]);
        } else if (node.image?.includes('bird')) {
          expect(cmd).toBe('bird -f -c /etc/bird/bird.conf');
          birdSock = join(dir, 'bird.ctl');
          lab.spawn(n, 'bird', [
            '-f',
            '-c',
            bound(node, '/etc/bird/bird.conf'),
            '-s',
            birdSock,
            '-P',
            join(dir, 'bird.pid'),
          ]);
        } else {
          throw new Error(`no local role for image ${node.image}`);
        }
      }
    });

    afterAll(async () => {
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    const twillStatus = () =>
      JSON.parse(
        execFileSync(process.execPath, [BIN, 'status', '--json', '--api', twillSock], { encoding: 'utf8' }),
      ) as {
        peers: { address: string; state: string; prefixesReceived: number }[];
      };

    it('the file has the two nodes and one link the lab expects', () => {
      expect(topo.nodes.map((n) => n.name)).toEqual(['twill1', 'bird1']);
      expect(topo.links).toHaveLength(1);
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
      const birdRoutes = await waitFor(
        'bird1 holds 10.20.0.0/24',
        () => {
          const out = execFileSync('birdc', ['-s', birdSock, 'show', 'route', 'protocol', 'twill1'], {
            encoding: 'utf8',
          });
          return out.includes('10.20.0.0/24') && out;
        },
        20_000,
      );
      expect(birdRoutes).toMatch(/10\.20\.0\.0\/24\s+unicast \[twill1 .*\] \* \(100\) \[AS64512i\]/);
    });
  },
);
