/**
 * containerlab/tor.clab.yml end to end through `twill lab` (test/lab/e2e.ts): two racks, one AS
 * each, nodes peering eBGP with their top-of-rack router (rack A: BIRD 2, rack B: FRR), the
 * ToRs peering with each other. Web on rack A, the client on rack B, so pod traffic crosses
 * both ToRs; the other pod shares web's rack (through the ToR, which takes the rack's AS out of
 * the path). A rack B node is removed (FRR shuts its neighbor down), a rack A node joins.
 */
import { join } from 'node:path';
import { describeSystem } from '../helpers/env.js';
import { labSuite } from './e2e.js';

describeSystem(
  'containerlab/tor end to end (twill lab)',
  {
    root: true,
    tools: ['ip', 'socat', 'python3', 'iptables', 'bird', 'birdc', 'vtysh', '/usr/lib/frr/bgpd'],
  },
  () => {
    labSuite({
      file: join(import.meta.dirname, '../../containerlab/tor.clab.yml'),
      name: `trt${process.pid % 10000}`,
      web: 'a1',
      client: 'b1',
      other: 'a2',
      removed: 'b2',
      routers: ['torA', 'torB'],
      add: {
        node: 'a3',
        link: 'torA:eth4',
        like: 'a1',
        exec: ['ip addr add 10.1.0.3/24 dev eth1'],
        peerExec: ['ip link set eth4 master br0'],
      },
    });
  },
);
