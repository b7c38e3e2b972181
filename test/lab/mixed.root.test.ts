/**
 * containerlab/mixed.clab.yml end to end through `twill lab` (test/lab/e2e.ts): two Twill nodes
 * and a BIRD 2 node configured as Calico configures calico-node's BIRD, in one iBGP mesh. BIRD
 * routes the Twill pods' blocks in its kernel; removing it (its Node object deleted) takes its
 * block out of the Twill nodes' kernels.
 */
import { join } from 'node:path';
import { describeSystem } from '../helpers/env.js';
import { labSuite } from './e2e.js';

describeSystem(
  'containerlab/mixed end to end (twill lab)',
  { root: true, tools: ['ip', 'socat', 'python3', 'iptables', 'bird', 'birdc'] },
  () => {
    labSuite({
      file: join(import.meta.dirname, '../../containerlab/mixed.clab.yml'),
      name: `mxt${process.pid % 10000}`,
      web: 'twill1',
      client: 'twill2',
      other: 'twill2',
      removed: 'bird1',
      removedAddress: '10.244.100.1',
      routers: ['bird1'],
      add: {
        node: 'twill3',
        link: 'sw:eth4',
        like: 'twill1',
        exec: ['ip addr add 10.0.0.4/24 dev eth1'],
        peerExec: ['ip link set eth4 master br0'],
      },
    });
  },
);
