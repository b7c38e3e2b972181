/**
 * containerlab/mesh3.clab.yml end to end through `twill lab` (test/lab/e2e.ts): three Twill
 * nodes in a full iBGP mesh on one bridge; a fourth joins on the bridge's eth4.
 */
import { join } from 'node:path';
import { describeSystem } from '../helpers/env.js';
import { labSuite } from './e2e.js';

describeSystem(
  'containerlab/mesh3 end to end (twill lab)',
  { root: true, tools: ['ip', 'socat', 'python3', 'iptables'] },
  () => {
    labSuite({
      file: join(import.meta.dirname, '../../containerlab/mesh3.clab.yml'),
      name: `m3t${process.pid % 10000}`,
      web: 'twill1',
      client: 'twill2',
      removed: 'twill3',
      add: {
        node: 'twill4',
        link: 'sw:eth4',
        like: 'twill1',
        exec: ['ip addr add 10.0.0.4/24 dev eth1'],
        peerExec: ['ip link set eth4 master br0'],
      },
    });
  },
);
