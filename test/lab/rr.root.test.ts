/**
 * containerlab/rr.clab.yml end to end through `twill lab` (test/lab/e2e.ts): four Twill nodes,
 * node-to-node mesh off, each a client of a BIRD 2 route reflector (hold time 9 s). A removed
 * node is noticed by the reflector alone, by its hold timer, which then withdraws the node's
 * block from the others; a fifth node joins as a client too.
 */
import { join } from 'node:path';
import { describeSystem } from '../helpers/env.js';
import { labSuite } from './e2e.js';

describeSystem(
  'containerlab/rr end to end (twill lab)',
  { root: true, tools: ['ip', 'socat', 'python3', 'iptables', 'bird', 'birdc'] },
  () => {
    labSuite({
      file: join(import.meta.dirname, '../../containerlab/rr.clab.yml'),
      name: `rrt${process.pid % 10000}`,
      web: 'twill1',
      client: 'twill2',
      removed: 'twill3',
      holdTime: 9,
      add: {
        node: 'twill5',
        link: 'sw:eth6',
        like: 'twill1',
        exec: ['ip addr add 10.0.0.5/24 dev eth1'],
        peerExec: ['ip link set eth6 master br0'],
      },
    });
  },
);
