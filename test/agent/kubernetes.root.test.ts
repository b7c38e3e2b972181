/**
 * Agents on the Kubernetes datastore, against the test bed's real kube-apiserver, as the
 * DaemonSet runs them: `kubectl apply -f deploy/` (server dry run, then for real), each agent
 * with a token of the DaemonSet's ServiceAccount from the TokenRequest API, so every call passes
 * the real RBAC authorizer. Nodes are made through the API (the kubelet's part); the agents find
 * their address by kubernetes-internal-ip, annotate their Node, create the default pool, and the
 * mesh comes up; a third Node made through the API later joins; a BGPPeer made with kubectl
 * applies live; the TwillNodeStatus objects show the sessions. A ServiceAccount whose role lacks
 * one verb the agent needs (update on nodes) makes the agent stop with a Forbidden error, and an
 * API server nobody answers for makes it retry with backoff, leaving the kernel as it is.
 *
 * The agents live in network namespaces and the API server on the host's loopback: a socat
 * relay per namespace carries 127.0.0.1:PORT over a unix socket to the API server.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { type Daemon, startBird } from '../interop/daemons.js';
import {
  type ControlPlane,
  installCrds,
  kube,
  kubeconfigFor,
  kubeconfigWith,
  kubectl,
  kubeOk,
  startControlPlane,
  tokenFor,
} from '../k8s/control-plane.js';
import { describeK8s } from '../k8s/harness.js';
import {
  type AgentRun,
  addNode,
  agentStatus,
  buildSegment,
  ourRoutes,
  type Segment,
  startAgent,
  waitEstablished,
} from './helpers.js';

const DEPLOY = join(import.meta.dirname, '..', '..', 'deploy');

describeK8s('agents on the Kubernetes datastore', () => {
  describeSystem(
    'as the DaemonSet runs them',
    { root: true, tools: ['ip', 'socat', 'bird', 'birdc'] },
    () => {
      const lab = new Lab();
      let cp: ControlPlane;
      let seg: Segment;
      let kubeconfig: string;
      let apiPort: number;
      const agents: AgentRun[] = [];

      /** The API server's port on 127.0.0.1 inside `ns`, relayed to the host's. */
      function relay(ns: string): void {
        lab.spawn(ns, 'socat', [
          `TCP-LISTEN:${apiPort},bind=127.0.0.1,fork,reuseaddr`,
          `UNIX-CONNECT:${join(cp.dir, 'api-relay.sock')}`,
        ]);
      }

      async function makeNode(name: string, address: string): Promise<void> {
        await kubeOk(cp, 'POST', '/api/v1/nodes', {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name, labels: { 'kubernetes.io/hostname': name } },
        });
        // The kubelet reports its addresses in the status.
        const n = await kubeOk(cp, 'GET', `/api/v1/nodes/${name}`);
        await kubeOk(cp, 'PUT', `/api/v1/nodes/${name}/status`, {
          ...n,
          status: { addresses: [{ type: 'InternalIP', address }] },
        });
      }

      function start(node: Segment['nodes'][number], config = kubeconfig): AgentRun {
        relay(node.ns);
        const a = startAgent(lab, node, {
          dir: cp.dir,
          datastore: 'kubernetes',
          extraArgs: [
            '--kubeconfig',
            config,
            '--ip',
            'autodetect',
            '--ip-autodetection-method',
            'kubernetes-internal-ip',
            '--ipam-leak-grace',
            '2',
          ],
        });
        return a;
      }

      beforeAll(async () => {
        cp = await startControlPlane();
        apiPort = Number(new URL(cp.server).port);
        const hostRelay = spawn(
          'socat',
          [`UNIX-LISTEN:${join(cp.dir, 'api-relay.sock')},fork`, `TCP:127.0.0.1:${apiPort}`],
          { stdio: 'ignore' },
        );
        lab.procs.push(hostRelay);
        seg = buildSegment(lab, 2, 'k');
      }, 180_000);

      afterAll(async () => {
        await lab.cleanup();
        await cp?.stop();
      });

      it('kubectl apply -f deploy/ is accepted by the real server, dry run and for real', () => {
        const files = ['-f', join(DEPLOY, 'crds'), '-f', DEPLOY];
        const dry = kubectl(cp, ['apply', '--dry-run=server', ...files]);
        expect(dry.status, dry.stderr).toBe(0);
        expect(dry.stdout).toContain('daemonset.apps/twill-node created (server dry run)');
        const real = kubectl(cp, ['apply', ...files]);
        expect(real.status, real.stderr).toBe(0);
        installCrds(cp);
      });

      it('two agents with the ServiceAccount’s token register, make the pool, and mesh', async () => {
        const token = await tokenFor(cp, 'kube-system', 'twill-node');
        kubeconfig = kubeconfigFor(cp, token);
        for (const n of seg.nodes) await makeNode(n.name, n.address);
        for (const n of seg.nodes) agents.push(start(n));
        await waitEstablished(agents[0]!, [seg.nodes[1]!.address]);
        await waitEstablished(agents[1]!, [seg.nodes[0]!.address]);
        const node = await kubeOk(cp, 'GET', `/api/v1/nodes/${seg.nodes[0]!.name}`);
        expect(node.metadata.annotations['bgp.twill.dev/ipv4-address']).toBe(seg.nodes[0]!.address);
        const pools = await kubeOk(cp, 'GET', '/apis/crd.twill.dev/v1/ippools');
        expect(pools.items.map((p: { spec: { cidr: string } }) => p.spec.cidr)).toEqual(['10.244.0.0/16']);
      }, 120_000);

      it('a Node created through the API joins the mesh', async () => {
        const n = addNode(lab, seg, 'k3', 2);
        seg.nodes.push(n);
        await makeNode(n.name, n.address);
        agents.push(start(n));
        for (const [i, a] of agents.entries())
          await waitEstablished(
            a,
            seg.nodes.filter((_, j) => j !== i).map((x) => x.address),
          );
      }, 120_000);

      it('a BGPPeer created with kubectl applies live; the status objects show the sessions', async () => {
        const bird = lab.ns('bird');
        const port = `pb${bird.slice(-6)}`.replace(/[^a-zA-Z0-9]/g, '');
        sh('ip', [
          'link',
          'add',
          'eth1',
          'netns',
          bird,
          'type',
          'veth',
          'peer',
          'name',
          port,
          'netns',
          seg.sw,
        ]);
        sh('ip', ['-n', seg.sw, 'link', 'set', port, 'master', 'br0', 'up']);
        sh('ip', ['-n', bird, 'addr', 'add', '10.77.0.100/24', 'dev', 'eth1']);
        sh('ip', ['-n', bird, 'link', 'set', 'eth1', 'up']);
        const d: Daemon = await startBird(lab, {
          ns: bird,
          dir: join(cp.dir, 'bird'),
          routerId: '10.77.0.100',
          asn: 65100,
          peers: seg.nodes.map((n) => ({ address: n.address, asn: 64512, families: ['ipv4-unicast'] })),
          originate: ['192.0.2.0/24'],
        });
        const r = kubectl(cp, ['apply', '-f', '-'], {
          input: JSON.stringify({
            apiVersion: 'crd.twill.dev/v1',
            kind: 'BGPPeer',
            metadata: { name: 'tor' },
            spec: { peerIP: '10.77.0.100', asNumber: 65100 },
          }),
        });
        expect(r.status, r.stderr).toBe(0);
        for (const a of agents) await waitEstablished(a, ['10.77.0.100']);
        await waitFor('k1 routes BIRD’s prefix', () =>
          ourRoutes(seg.nodes[0]!.ns).some((x) => x.dst === '192.0.2.0/24'),
        );
        await waitFor(
          'TwillNodeStatus k1 shows three Established sessions',
          () => {
            const out = kubectl(cp, ['get', 'twillnodestatus', 'k1', '-o', 'json']);
            if (out.status !== 0) return false;
            const st = JSON.parse(out.stdout).status;
            return (
              st?.established === 3 &&
              st.sessions.some(
                (s: { peer: string; type: string }) => s.peer === '10.77.0.100' && s.type === 'global',
              )
            );
          },
          30_000,
        );
        expect(kubectl(cp, ['delete', 'bgppeer', 'tor']).status).toBe(0);
        await waitFor(
          'k1 drops the BGPPeer',
          async () => !(await agentStatus(agents[0]!)).peers.some((p) => p.address === '10.77.0.100'),
        );
        await d.stop();
      }, 120_000);

      it('an address whose pod is gone is released after the leak grace; a live pod keeps its own', async () => {
        const admin = KubernetesStore.open({ kubeconfig: cp.kubeconfig });
        try {
          await admin.create({
            apiVersion: 'v1',
            kind: 'Pod',
            metadata: { namespace: 'default', name: 'live' },
            spec: { nodeName: 'k1', containers: [{ name: 'c', image: 'x' }] },
          });
          const alloc = new Allocator({ store: admin, clock: { now: () => Date.now() } });
          const live = await alloc.assign({
            handle: 'k8s-pod-network.live',
            node: 'k1',
            family: 4,
            namespace: 'default',
            pod: 'live',
          });
          const gone = await alloc.assign({
            handle: 'k8s-pod-network.gone',
            node: 'k1',
            family: 4,
            namespace: 'default',
            pod: 'gone',
          });
          await waitFor(
            'k1 releases the address of the pod that does not exist',
            async () => !JSON.stringify(await admin.list('IPAMBlock')).includes('"pod":"gone"'),
            30_000,
          );
          // The agent logs the release after its write returns, and its output reaches us later
          // still: the block can show the release first.
          await waitFor(
            'k1 logs the released address',
            () => agents[0]!.log().includes(`"address":"${gone.address}"`),
            10_000,
          );
          expect(agents[0]!.log()).toContain(`"address":"${gone.address}"`);
          const blocks = JSON.stringify(await admin.list('IPAMBlock'));
          expect(blocks).toContain('"pod":"live"');
          expect(live.address).not.toBe(gone.address);
        } finally {
          await admin.close();
        }
      }, 60_000);

      it('a role that lacks one verb the agent needs (update on nodes) stops it with Forbidden', async () => {
        const role = await kubeOk(cp, 'GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/twill-node');
        const narrow = structuredClone(role);
        narrow.metadata = { name: 'twill-narrow' };
        for (const rule of narrow.rules as { resources: string[]; verbs: string[] }[])
          if (rule.resources.includes('nodes')) rule.verbs = rule.verbs.filter((v) => v !== 'update');
        await kubeOk(cp, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', narrow);
        await kubeOk(cp, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: 'twill-narrow' },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'twill-narrow' },
          subjects: [{ kind: 'ServiceAccount', name: 'twill-narrow', namespace: 'kube-system' }],
        });
        const token = await tokenFor(cp, 'kube-system', 'twill-narrow');
        const n = addNode(lab, seg, 'k4', 3);
        await makeNode(n.name, n.address);
        // The authorizer learns the binding through an informer: wait until it reads nodes.
        await waitFor(
          'the narrow role applies',
          async () => (await kube(cp, 'GET', '/api/v1/nodes', undefined, { token })).status === 200,
        );
        const a = start(n, kubeconfigFor(cp, token));
        const code = await Promise.race([
          a.exited,
          new Promise((r) => setTimeout(() => r('running'), 30_000)),
        ]);
        expect(code).toBe(1);
        const fatal = a
          .log()
          .split('\n')
          .find((l) => l.includes('the agent cannot start'));
        expect(fatal).toMatch(/forbidden/i);
      }, 60_000);

      it('an API server nobody answers for: the agent retries with backoff and leaves the kernel alone', async () => {
        const n = addNode(lab, seg, 'k5', 4);
        sh('ip', ['-n', n.ns, 'route', 'add', 'blackhole', '10.244.250.0/26', 'proto', '84']);
        const a = start(n, kubeconfigWith(cp, { server: 'https://127.0.0.1:9' }));
        await waitFor('two retries logged', () => (a.log().match(/retrying/g) ?? []).length >= 2, 30_000);
        expect(a.proc.exitCode).toBeNull();
        expect(ourRoutes(n.ns).map((r) => r.dst)).toEqual(['10.244.250.0/26']);
        const st = await agentStatus(agents[0]!);
        expect(st.peers.every((p) => p.state === 'Established')).toBe(true);
      }, 60_000);
    },
  );
});
