/**
 * A pod network made of two agents: pods created through the real CNI plugin (dist/cni/twill,
 * run in each node's namespace as a runtime runs it) get addresses from their node's agent,
 * reach pods on the other node (ICMP and TCP) over the routes BGP put in the kernels, a
 * NetworkPolicy written to the datastore is enforced across nodes (the allowed client gets
 * through, another pod does not), an agent restarted under a probe every 10 ms loses no packet,
 * and a DEL takes the pod's host route away.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hostVethName } from '../../src/cni/names.js';
import { openFileDatastore } from '../../src/datastore/file.js';
import type { Datastore } from '../../src/datastore/types.js';
import { k8sArgs, ping, plugin } from '../cni/helpers.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import {
  type AgentRun,
  buildSegment,
  ourRoutes,
  type Segment,
  startAgent,
  stopAgent,
  waitEstablished,
} from './helpers.js';

const run = promisify(execFile);
const PROBE = join(import.meta.dirname, 'probe.py');

interface Pod {
  name: string;
  node: number;
  ns: string;
  ip: string;
  labels: Record<string, string>;
}

describeSystem(
  'a pod network of two agents',
  { root: true, tools: ['ip', 'socat', 'python3', 'iptables'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let seg: Segment;
    let store: Datastore;
    const agents: AgentRun[] = [];
    const pods = new Map<string, Pod>();
    const servers: ChildProcess[] = [];

    const conf = (a: AgentRun) => ({
      cniVersion: '1.0.0',
      name: 'k8s-pod-network',
      type: 'twill',
      mtu: 1500,
      ipv4: true,
      ipv6: false,
      agentSocket: a.cni,
    });

    async function addPod(name: string, node: number, labels: Record<string, string>): Promise<Pod> {
      const ns = lab.ns(name);
      const r = await plugin(seg.nodes[node]!.ns, {
        command: 'ADD',
        containerID: `c-${name}`,
        netns: `/run/netns/${ns}`,
        ifname: 'eth0',
        args: k8sArgs('default', name),
        conf: conf(agents[node]!),
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const ip = (r.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
      await store.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'default', name, labels },
        spec: {
          nodeName: seg.nodes[node]!.name,
          containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080 }] }],
        },
      });
      const pod = { name, node, ns, ip, labels };
      pods.set(name, pod);
      return pod;
    }

    /** A TCP answer from `to`'s port 8080, or undefined when none comes within 2 s. */
    async function tcp(from: Pod, to: Pod): Promise<string | undefined> {
      try {
        const { stdout } = await run(
          'ip',
          ['netns', 'exec', from.ns, 'socat', '-T2', '-', `TCP:${to.ip}:8080,connect-timeout=2`],
          {
            timeout: 5000,
          },
        );
        return stdout.trim();
      } catch {
        return undefined;
      }
    }

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-pods-'));
      chmodSync(dir, 0o755);
      seg = buildSegment(lab, 2);
      const datastore = `file:${join(dir, 'store')}`;
      for (const n of seg.nodes) agents.push(startAgent(lab, n, { dir, datastore }));
      store = await openFileDatastore(join(dir, 'store'));
      await store.create({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'default', labels: { team: 'a' } },
      });
      await waitEstablished(agents[0]!, [seg.nodes[1]!.address]);
      await waitEstablished(agents[1]!, [seg.nodes[0]!.address]);
    }, 90_000);

    afterAll(async () => {
      await store?.close();
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    it('pods on different nodes get addresses and reach each other (ICMP and TCP)', async () => {
      const web = await addPod('web', 0, { app: 'web' });
      const client = await addPod('client', 1, { app: 'client' });
      await addPod('other', 1, { app: 'other' });
      expect(web.ip).not.toBe(client.ip);
      const server = lab.spawn(web.ns, 'socat', [
        'TCP-LISTEN:8080,fork,reuseaddr',
        'SYSTEM:echo hello-from-web',
      ]);
      servers.push(server);
      // The agents route each other's blocks; the host routes of the pods are theirs (protocol 84).
      await waitFor('n2 routes web’s block via n1', () =>
        ourRoutes(seg.nodes[1]!.ns).some((r) => r.gateway === seg.nodes[0]!.address),
      );
      await waitFor('n1 holds web’s host route', () =>
        ourRoutes(seg.nodes[0]!.ns).some((r) => r.dst === web.ip && r.dev === hostVethName('default', 'web')),
      );
      await waitFor('client pings web', () => {
        ping(client.ns, web.ip, 1);
        return true;
      });
      ping(web.ns, client.ip);
      ping(client.ns, seg.nodes[0]!.address);
      await waitFor(
        'client reaches web on TCP 8080',
        async () => (await tcp(client, web)) === 'hello-from-web',
        10_000,
      );
      // n2's first ADD claimed its block from the datastore's reads; its second took the
      // block from its watches and wrote twice (allocator.ts assignFromCache).
      const metrics = lab.exec(seg.nodes[1]!.ns, 'curl', ['-s', 'http://127.0.0.1:9099/metrics']);
      expect(metrics).toMatch(/^twill_ipam_assigns_total\{reads="datastore"\} 1$/m);
      expect(metrics).toMatch(/^twill_ipam_assigns_total\{reads="watch"\} 1$/m);
      // Each pod's host route, written by its agent's CNI wiring, is the one the reconciler wants
      // when the block's change comes: it neither adds it again (EEXIST) nor reads all back.
      for (const a of agents) expect(a.log()).not.toMatch(/route apply failed/);
    }, 60_000);

    it('a NetworkPolicy is enforced across nodes', async () => {
      const [web, client, other] = ['web', 'client', 'other'].map((n) => pods.get(n)!) as [Pod, Pod, Pod];
      await store.create({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { namespace: 'default', name: 'web-from-client' },
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Ingress'],
          ingress: [
            { from: [{ podSelector: { matchLabels: { app: 'client' } } }], ports: [{ port: 'http' }] },
          ],
        },
      });
      await waitFor('other is refused', async () => (await tcp(other, web)) === undefined, 15_000);
      expect(await tcp(client, web)).toBe('hello-from-web');
      // ICMP is not in the policy: refused too, from the allowed client as well.
      expect(() => ping(client.ns, web.ip, 1)).toThrow();
      // Egress from web is not isolated.
      ping(web.ns, client.ip);
      await store.delete({ kind: 'NetworkPolicy', name: 'web-from-client', namespace: 'default' });
      await waitFor(
        'other gets through again',
        async () => (await tcp(other, web)) === 'hello-from-web',
        15_000,
      );
    }, 60_000);

    it('an agent restarted under a probe every 10 ms loses no packet', async () => {
      const [web, client] = [pods.get('web')!, pods.get('client')!];
      const probe = run('ip', ['netns', 'exec', client.ns, 'python3', PROBE, web.ip, '8', '10'], {
        timeout: 30_000,
      });
      await new Promise((r) => setTimeout(r, 1000));
      expect(await stopAgent(agents[0]!)).toBe(0);
      agents[0] = startAgent(lab, seg.nodes[0]!, { dir, datastore: `file:${join(dir, 'store')}` });
      await waitEstablished(agents[0]!, [seg.nodes[1]!.address]);
      const result = JSON.parse((await probe).stdout) as { sent: number; received: number; lost: number[] };
      expect(result.sent).toBeGreaterThan(400);
      expect(result.lost).toEqual([]);
      // Back to normal: a new pod on the restarted node gets an address.
      const late = await addPod('late', 0, { app: 'late' });
      await waitFor('client pings the new pod', () => {
        ping(client.ns, late.ip, 1);
        return true;
      });
    }, 60_000);

    it('DEL removes the pod’s host route and releases its address', async () => {
      const other = pods.get('other')!;
      const r = await plugin(seg.nodes[1]!.ns, {
        command: 'DEL',
        containerID: 'c-other',
        netns: `/run/netns/${other.ns}`,
        ifname: 'eth0',
        args: k8sArgs('default', 'other'),
        conf: conf(agents[1]!),
      });
      expect(r.code, r.stdout + r.stderr).toBe(0);
      await waitFor(
        'n2 no longer routes other’s address',
        () => !ourRoutes(seg.nodes[1]!.ns).some((x) => x.dst === other.ip),
      );
      const blocks = JSON.stringify(await store.list('IPAMBlock'));
      expect(blocks).not.toContain('"pod":"other"');
    }, 30_000);
  },
);
