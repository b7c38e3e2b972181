/**
 * `twill lab up --kubernetes` end to end, driven with kubectl as a user drives a cluster: the
 * lab's control plane (the test bed's kube-apiserver and etcd), three agents on the kubernetes
 * datastore with the DaemonSet's ServiceAccount token, and the lab as kubelet and scheduler.
 *   - pods made with `kubectl apply` (two bound to nodes by the manifest, one left to the lab's
 *     scheduler) become Ready with addresses from their nodes' blocks, and reach each other
 *     across nodes over ICMP and TCP;
 *   - a NetworkPolicy applied with kubectl is enforced across nodes;
 *   - `kubectl delete pod` returns once the lab's kubelet has run CNI DEL: the sandbox is gone
 *     and the address is free in its block;
 *   - `twill lab down` ends the control plane and the relays by PID and leaves no namespace.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { sh, waitFor } from '../helpers/netns.js';
import { PKI_DAYS } from '../../src/lab/control-plane.js';
import { BIN } from '../helpers/twill.js';
import { binDir } from '../k8s/control-plane.js';
import { describeK8s } from '../k8s/harness.js';
import { expectReach, icmp, tcp, twillLab, WEB_FROM_CLIENT } from './e2e.js';

const FILE = join(import.meta.dirname, '../../containerlab/mesh3.clab.yml');

interface LabPod {
  name: string;
  namespace: string;
  node: string;
  address: string;
  ns: string;
}

describeK8s('twill lab in Kubernetes mode', () => {
  describeSystem(
    'containerlab/mesh3 with a control plane, driven with kubectl',
    { root: true, tools: ['ip', 'socat', 'python3', 'iptables', 'openssl'] },
    () => {
      const name = `k8s${process.pid % 10000}`;
      let dir: string;
      const servers: ChildProcess[] = [];

      const lab = (...args: string[]) => twillLab(dir, ...args);
      const kubectl = async (args: string[], input?: string): Promise<string> => {
        const child = execFile(process.execPath, [BIN, 'lab', 'kubectl', '--state-dir', dir, name, ...args], {
          timeout: 90_000,
        });
        if (input !== undefined) child.stdin!.end(input);
        else child.stdin!.end();
        let out = '';
        let err = '';
        child.stdout!.on('data', (d) => {
          out += d;
        });
        child.stderr!.on('data', (d) => {
          err += d;
        });
        const code = await new Promise<number | null>((r) => child.on('close', r));
        if (code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${code}: ${err}${out}`);
        return out;
      };
      const labPods = async () =>
        (JSON.parse(await lab('status', name, '--json')) as { pods: LabPod[] }).pods;
      const pod = async (n: string) => {
        const p = (await labPods()).find((x) => x.name === n);
        if (!p) throw new Error(`no lab pod ${n}`);
        return p;
      };
      const manifest = (pod: string, app: string, node?: string) => `---
apiVersion: v1
kind: Pod
metadata: { name: ${pod}, namespace: default, labels: { app: ${app} } }
spec:
  ${node ? `nodeName: ${node}` : 'restartPolicy: Always'}
  containers: [{ name: main, image: registry.k8s.io/pause:3.10 }]
`;

      beforeAll(async () => {
        dir = mkdtempSync(join(tmpdir(), 'twill-lab-k8s-'));
        chmodSync(dir, 0o755);
        await lab('up', FILE, '--name', name, '--kubernetes', '--k8s-bin', binDir(), '--wait', '90');
      }, 240_000);

      afterAll(async () => {
        for (const s of servers)
          if (s.exitCode === null && s.pid !== undefined) process.kill(s.pid, 'SIGKILL');
        if (dir) {
          await lab('down', name).catch(() => {});
          rmSync(dir, { recursive: true, force: true });
        }
      }, 60_000);

      it('the agents register on the API server as the DaemonSet does and the mesh comes up', async () => {
        const st = JSON.parse(await lab('status', name, '--json')) as {
          kubernetes?: { kubeconfig: string };
          nodes: { name: string; role: string; peers: { state: string }[] }[];
        };
        expect(st.kubernetes?.kubeconfig).toBeTruthy();
        for (const n of st.nodes.filter((x) => x.role === 'twill'))
          expect(
            n.peers.map((p) => p.state),
            n.name,
          ).toEqual(['Established', 'Established']);
        // The agents' identity is the DaemonSet's ServiceAccount, through its token.
        const state = JSON.parse(readFileSync(join(dir, name, 'lab.json'), 'utf8')) as {
          kubernetes: { agentKubeconfig: string; cp: { dir: string } };
        };
        const token = /token: (\S+)/.exec(readFileSync(state.kubernetes.agentKubeconfig, 'utf8'))?.[1];
        expect(token).toBeDefined();
        // The token and the certificates last as long as each other, a year: a lab left up for
        // months keeps its API access (control-plane.ts PKI_DAYS).
        const claims = JSON.parse(Buffer.from(token!.split('.')[1]!, 'base64url').toString()) as {
          iat: number;
          exp: number;
        };
        expect(claims.exp - claims.iat).toBe(PKI_DAYS * 86400);
        for (const cert of ['ca.crt', 'apiserver.crt']) {
          const end = sh('openssl', [
            'x509',
            '-enddate',
            '-noout',
            '-in',
            join(state.kubernetes.cp.dir, cert),
          ]);
          const days = (Date.parse(end.replace('notAfter=', '').trim()) - Date.now()) / 86_400_000;
          expect(days, cert).toBeGreaterThan(PKI_DAYS - 1);
        }
        const who = await kubectl([
          'auth',
          'can-i',
          'list',
          'secrets',
          '--as',
          'system:serviceaccount:kube-system:twill-node',
        ]).catch((e: Error) => e.message);
        expect(who).toMatch(/\bno\b/);
        const nodes = JSON.parse(await kubectl(['get', 'nodes', '-o', 'json'])) as {
          items: {
            metadata: { name: string; annotations?: Record<string, string> };
            status: { conditions?: { type: string; status: string }[] };
          }[];
        };
        expect(nodes.items.map((n) => n.metadata.name).sort()).toEqual(['twill1', 'twill2', 'twill3']);
        for (const n of nodes.items)
          expect(
            Object.keys(n.metadata.annotations ?? {}).some((k) => k.includes('twill')),
            n.metadata.name,
          ).toBe(true);
        // Ready, as the lab's kubelet reports its nodes.
        for (const n of nodes.items)
          expect(n.status.conditions?.find((c) => c.type === 'Ready')?.status, n.metadata.name).toBe('True');
      });

      it('pods made with kubectl become Ready with addresses from their nodes and reach each other', async () => {
        await kubectl(
          ['apply', '-f', '-'],
          manifest('web', 'web', 'twill1') +
            manifest('client', 'client', 'twill2') +
            manifest('other', 'other'),
        );
        await kubectl([
          'wait',
          '--for=condition=Ready',
          'pod/web',
          'pod/client',
          'pod/other',
          '--timeout=60s',
        ]);
        const pods = JSON.parse(await kubectl(['get', 'pods', '-o', 'json'])) as {
          items: {
            metadata: { name: string };
            spec: { nodeName: string };
            status: { podIP: string; phase: string };
          }[];
        };
        const byName = new Map(pods.items.map((p) => [p.metadata.name, p]));
        expect(byName.get('web')!.spec.nodeName).toBe('twill1');
        expect(byName.get('client')!.spec.nodeName).toBe('twill2');
        // The lab's scheduler bound the third to the node with no pod yet.
        expect(byName.get('other')!.spec.nodeName).toBe('twill3');
        for (const p of pods.items) {
          expect(p.status.phase).toBe('Running');
          expect(p.status.podIP).toMatch(/^10\.244\./);
          const lp = await pod(p.metadata.name);
          expect(lp.address).toBe(p.status.podIP);
          // The address is in a block affine to the pod's node, seen on that node's eth0.
          expect(sh('ip', ['-n', lp.ns, '-j', 'addr', 'show', 'dev', 'eth0'])).toContain(p.status.podIP);
        }
        const [web, client, other] = [await pod('web'), await pod('client'), await pod('other')];
        await expectReach(web, client, other, servers);
      }, 120_000);

      it('a NetworkPolicy applied with kubectl is enforced across nodes', async () => {
        await kubectl(['apply', '-f', '-'], WEB_FROM_CLIENT);
        const [web, client, other] = [await pod('web'), await pod('client'), await pod('other')];
        await waitFor(
          'the other node’s pod is refused',
          async () => (await tcp(other, web)) === undefined,
          20_000,
          300,
        );
        expect(await tcp(client, web)).toBe('hello-from-web');
        expect(await icmp(other, web)).toBe(false);
        await kubectl(['delete', 'networkpolicy', 'web-from-client']);
        expect(
          await waitFor('the policy gone, other gets through again', () => tcp(other, web), 20_000, 300),
        ).toBe('hello-from-web');
      }, 60_000);

      it('kubectl delete pod returns once CNI DEL has run: sandbox gone, address free', async () => {
        const other = await pod('other');
        const inUse = async () => {
          const blocks = JSON.parse(await kubectl(['get', 'ipamblocks', '-o', 'json'])) as {
            items: { spec: { allocations?: (number | null)[] } }[];
          };
          return blocks.items.reduce(
            (n, b) => n + (b.spec.allocations ?? []).filter((a) => a !== null).length,
            0,
          );
        };
        expect(await inUse()).toBe(3);
        await kubectl(['delete', 'pod', 'other', '--timeout=30s']);
        expect(sh('ip', ['netns', 'list'])).not.toContain(other.ns);
        expect((await labPods()).map((p) => p.name).sort()).toEqual(['client', 'web']);
        expect(await inUse()).toBe(2);
        expect(await kubectl(['get', 'pods', '-o', 'name'])).not.toContain('pod/other');
      }, 60_000);

      it('twill lab down ends the control plane and everything else the lab started', async () => {
        const state = JSON.parse(readFileSync(join(dir, name, 'lab.json'), 'utf8')) as {
          kubernetes: { procs: { pid: number; what: string }[] };
          nodes: { procs: { pid: number }[] }[];
        };
        const pids = [...state.kubernetes.procs, ...state.nodes.flatMap((n) => n.procs)].map((p) => p.pid);
        expect(state.kubernetes.procs.map((p) => p.what)).toEqual([
          'etcd',
          'kube-apiserver',
          'api relay',
          'kubelet',
        ]);
        await lab('down', name);
        const alive = (pid: number) => {
          try {
            process.kill(pid, 0);
            return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
          } catch {
            return false;
          }
        };
        expect(pids.filter(alive)).toEqual([]);
        expect(sh('ip', ['netns', 'list'])).not.toContain(`tw-${name}-`);
      }, 60_000);
    },
  );
});
