/**
 * deploy/ against the test bed's real kube-apiserver: the API server accepts every manifest
 * (server-side dry run, then for real), and the agent's ServiceAccount, with a token from the
 * TokenRequest API, can make exactly the calls the agent makes — the allocator assigning and
 * releasing pod addresses, node discovery, the status object — through the real RBAC
 * authorizer, and nothing it should not (Secrets, deleting Nodes, writing Pods). A ClusterRole
 * that lacks one verb the allocator needs makes an assign fail: the test sees missing verbs.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { readFileSync } from 'node:fs';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { type Datastore, TWILL_API_VERSION } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';
import {
  type ControlPlane,
  type ControlPlaneInfo,
  installCrds,
  kube,
  kubeconfigFor,
  kubectl,
  kubeOk,
  startControlPlane,
  tokenFor,
} from '../k8s/control-plane.js';
import { describeK8s } from '../k8s/harness.js';

const DEPLOY = join(import.meta.dirname, '..', '..', 'deploy');
const MANIFESTS = ['rbac.yaml', 'config.yaml', 'daemonset.yaml'].map((f) => join(DEPLOY, f));

describeK8s('deploy/ on a real kube-apiserver', () => {
  let cp: ControlPlaneInfo;
  let agent: Datastore;
  const run = Math.random().toString(36).slice(2, 7);
  const node = `deploy-${run}`;

  // A control plane of its own: the allocator takes from every pool its node may use, and other
  // test files' pools on a shared API server take every node.
  let own: ControlPlane;
  beforeAll(async () => {
    own = await startControlPlane();
    cp = own;
    installCrds(cp);
  }, 180_000);
  afterAll(() => own?.stop());

  it('kubectl apply --dry-run=server accepts every manifest, then applies them', () => {
    const files = MANIFESTS.flatMap((f) => ['-f', f]);
    const dry = kubectl(cp, ['apply', '--dry-run=server', ...files]);
    expect(dry.stderr).toBe('');
    expect(dry.stdout).toContain('daemonset.apps/twill-node created (server dry run)');
    expect(dry.stdout).toContain('clusterrole.rbac.authorization.k8s.io/twill-node created (server dry run)');
    const real = kubectl(cp, ['apply', ...files]);
    expect(real.status, real.stderr).toBe(0);
    // The DaemonSet as the server stored it: not privileged, only the capabilities it names.
    const ds = JSON.parse(
      kubectl(cp, ['get', '-n', 'kube-system', 'daemonset', 'twill-node', '-o', 'json']).stdout,
    );
    const c = ds.spec.template.spec.containers[0];
    expect(c.securityContext).toMatchObject({
      privileged: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    });
    expect(ds.spec.template.spec.hostNetwork).toBe(true);
    expect(ds.spec.template.spec.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(ds.spec.updateStrategy.rollingUpdate.maxUnavailable).toBe(1);
    expect(c.livenessProbe.httpGet.host).toBe('127.0.0.1');
    // The conflist the init container installs is the one in deploy/cni.
    const cm = parseAllDocuments(readFileSync(join(DEPLOY, 'config.yaml'), 'utf8'))[0]!.toJS();
    expect(JSON.parse(cm.data['cni-conflist'])).toEqual(
      JSON.parse(readFileSync(join(DEPLOY, 'cni', '10-twill.conflist'), 'utf8')),
    );
  });

  it("the agent's ServiceAccount can assign and release addresses, discover nodes and publish its status", async () => {
    const token = await tokenFor(cp, 'kube-system', 'twill-node');
    agent = KubernetesStore.open({ kubeconfig: kubeconfigFor(cp, token) });
    const admin = KubernetesStore.open({ kubeconfig: cp.kubeconfig });
    try {
      await admin.create({
        apiVersion: 'v1',
        kind: 'Node',
        metadata: { name: node, labels: { [`deploy-${run}`]: 'yes' } },
      });
      await admin.create({
        apiVersion: TWILL_API_VERSION,
        kind: 'IPPool',
        metadata: { name: `deploy-${run}` },
        spec: { cidr: '10.98.0.0/28', blockSize: 30, nodeSelector: `has(deploy-${run})` },
      });
      // The RBAC authorizer learns new bindings through an informer: wait until they apply.
      await until(async () => (await agent.list('IPPool').catch(() => undefined)) !== undefined);
      const alloc = new Allocator({ store: agent, clock: { now: () => Date.now() } });
      const a = await alloc.assign({ handle: `deploy-${run}-1`, node, family: 4 });
      expect(a.address).toMatch(/^10\.98\.0\./);
      expect(await alloc.release(`deploy-${run}-1`)).toHaveLength(1);
      // Node discovery: read all, annotate its own.
      const self = (await agent.get({ kind: 'Node', name: node }))!;
      await agent.update({
        ...self,
        metadata: { ...self.metadata, annotations: { 'twill.dev/bgp-address': '10.0.0.1' } },
      });
      for (const kind of [
        'Node',
        'Pod',
        'Namespace',
        'NetworkPolicy',
        'BGPPeer',
        'BGPConfiguration',
        'IPAMConfig',
      ] as const)
        expect(Array.isArray(await agent.list(kind)), kind).toBe(true);
      // Its status object, with the status subresource.
      const st = await agent.create({
        apiVersion: TWILL_API_VERSION,
        kind: 'TwillNodeStatus',
        metadata: { name: node },
        spec: { node },
      });
      const upd = await agent.updateStatus({ ...st, status: { established: 0, sessions: [] } });
      expect(upd.status).toEqual({ established: 0, sessions: [] });
    } finally {
      await admin.close();
    }
  });

  it('and nothing it should not: Secrets, deleting Nodes, writing Pods or BGP configuration', async () => {
    const token = await tokenFor(cp, 'kube-system', 'twill-node');
    const denied = async (method: string, path: string, body?: unknown) =>
      (await kube(cp, method, path, body, { token })).status;
    expect(await denied('GET', '/api/v1/secrets')).toBe(403);
    expect(await denied('GET', '/api/v1/namespaces/kube-system/secrets')).toBe(403);
    expect(await denied('DELETE', `/api/v1/nodes/${node}`)).toBe(403);
    expect(
      await denied('POST', '/api/v1/namespaces/default/pods', {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'x' },
      }),
    ).toBe(403);
    expect(
      await denied('POST', '/apis/crd.twill.dev/v1/bgppeers', {
        apiVersion: TWILL_API_VERSION,
        kind: 'BGPPeer',
        metadata: { name: 'x' },
        spec: { peerIP: '10.0.0.9', asNumber: 65000 },
      }),
    ).toBe(403);
  });

  it('a ClusterRole missing one verb the allocator needs makes the assign fail Forbidden', async () => {
    const role = await kubeOk(cp, 'GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/twill-node');
    const without = structuredClone(role);
    // Take `create` away from ipamblocks alone: its rule is shared with other IPAM kinds.
    const rules = without.rules as Array<{ apiGroups: string[]; resources: string[]; verbs: string[] }>;
    const shared = rules.find((r) => r.resources.includes('ipamblocks'))!;
    shared.resources = shared.resources.filter((r) => r !== 'ipamblocks');
    rules.push({ ...shared, resources: ['ipamblocks'], verbs: shared.verbs.filter((v) => v !== 'create') });
    await kubeOk(cp, 'PUT', '/apis/rbac.authorization.k8s.io/v1/clusterroles/twill-node', without);
    try {
      const alloc = new Allocator({ store: agent, clock: { now: () => Date.now() } });
      let err: unknown;
      // Wait until the authorizer has the narrower role (an assign in between claims a block and succeeds).
      await until(async () => {
        err = await alloc
          .assign({ handle: `deploy-${run}-${Math.random().toString(36).slice(2, 6)}`, node, family: 4 })
          .then(
            () => undefined,
            (e) => e,
          );
        return err !== undefined;
      });
      expect(err).toMatchObject({ code: 'Forbidden' });
      expect(String((err as Error).message)).toMatch(/cannot create resource "ipamblocks"/);
    } finally {
      const current = await kubeOk(cp, 'GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/twill-node');
      await kubeOk(cp, 'PUT', '/apis/rbac.authorization.k8s.io/v1/clusterroles/twill-node', {
        ...role,
        metadata: current.metadata,
      });
      await agent.close();
    }
  });
});

async function until(cond: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
