/**
 * The test bed's control plane is the real thing: a smoke test of the API server behaviour that
 * Twill's datastore, CRDs, RBAC and manifests stand on. Each case would fail against a stand-in
 * that only looks like Kubernetes: structural-schema validation and defaulting, watch event types
 * including BOOKMARK, 409 on a stale resourceVersion, 410 Gone after an etcd compaction, RBAC
 * denying a ServiceAccount until a Role is bound, and server-side dry run through kubectl.
 */
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { beforeAll, expect, it } from 'vitest';
import {
  type ControlPlaneInfo,
  etcdCompact,
  etcdRevision,
  type Json,
  kube,
  kubeOk,
  kubeconfigFor,
  kubectl,
  testNamespace,
  tokenFor,
  watchStream,
} from './control-plane.js';
import { describeK8s, sharedControlPlane } from './harness.js';

const GROUP = 'smoke.twill.dev';

describeK8s('a real kube-apiserver and etcd on loopback', () => {
  let cp: ControlPlaneInfo;
  let ns: string;

  beforeAll(async () => {
    cp = await sharedControlPlane();
    ns = await testNamespace(cp, 'smoke');
  }, 180_000);

  it('reports the pinned release and answers @kubernetes/client-node', async () => {
    const version = await kubeOk(cp, 'GET', '/version');
    expect(version.gitVersion).toBe('v1.35.4');
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const list = await core.listNamespace();
    expect(list.items.map((n) => n.metadata?.name)).toContain(ns);
  });

  it('a CRD with a structural schema rejects an object that violates it and defaults a field', async () => {
    await kubeOk(cp, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `pools.${GROUP}` },
      spec: {
        group: GROUP,
        scope: 'Cluster',
        names: { plural: 'pools', singular: 'pool', kind: 'Pool' },
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: {
                  spec: {
                    type: 'object',
                    required: ['cidr'],
                    properties: {
                      cidr: { type: 'string', pattern: '^[0-9.]+/[0-9]+$' },
                      blockSize: { type: 'integer', minimum: 20, maximum: 32, default: 26 },
                    },
                  },
                },
              },
            },
          },
        ],
      },
    });
    // The CRD's resource is served once the CRD is Established.
    for (let i = 0; ; i++) {
      const crd = await kubeOk(
        cp,
        'GET',
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pools.${GROUP}`,
      );
      if (crd.status?.conditions?.some((c: Json) => c.type === 'Established' && c.status === 'True')) break;
      if (i > 100) throw new Error('CRD never Established');
      await new Promise((r) => setTimeout(r, 100));
    }
    const path = `/apis/${GROUP}/v1/pools`;
    const bad = await kube(cp, 'POST', path, {
      apiVersion: `${GROUP}/v1`,
      kind: 'Pool',
      metadata: { name: 'too-big' },
      spec: { cidr: '10.0.0.0/16', blockSize: 99 },
    });
    expect(bad.status).toBe(422);
    expect(bad.json().reason).toBe('Invalid');
    expect(bad.body).toContain('spec.blockSize');
    const noCidr = await kube(cp, 'POST', path, {
      apiVersion: `${GROUP}/v1`,
      kind: 'Pool',
      metadata: { name: 'no-cidr' },
      spec: {},
    });
    expect(noCidr.status).toBe(422);
    expect(noCidr.body).toContain('spec.cidr');
    const good = await kubeOk(cp, 'POST', path, {
      apiVersion: `${GROUP}/v1`,
      kind: 'Pool',
      metadata: { name: 'defaulted' },
      spec: { cidr: '10.0.0.0/16' },
    });
    expect(good.spec.blockSize).toBe(26);
  });

  it('a watch receives ADDED, MODIFIED, DELETED and BOOKMARK', async () => {
    const base = `/api/v1/namespaces/${ns}/configmaps`;
    const list = await kubeOk(cp, 'GET', base);
    // sendInitialEvents (the streaming list informers use) ends its initial events with a
    // BOOKMARK annotated k8s.io/initial-events-end.
    const w = watchStream(
      cp,
      `${base}?watch=1&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=${list.metadata.resourceVersion}`,
    );
    try {
      const bookmark = await w.next((e) => e.type === 'BOOKMARK');
      expect(bookmark.object.metadata.annotations?.['k8s.io/initial-events-end']).toBe('true');
      expect(bookmark.object.metadata.resourceVersion).toMatch(/^\d+$/);
      await kubeOk(cp, 'POST', base, {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'w' },
        data: { a: '1' },
      });
      const r = await kube(
        cp,
        'PATCH',
        `${base}/w`,
        { data: { a: '2' } },
        {},
        'application/merge-patch+json',
      );
      expect(r.status).toBe(200);
      await kubeOk(cp, 'DELETE', `${base}/w`);
      const added = await w.next((e) => e.type === 'ADDED' && e.object.metadata.name === 'w');
      const modified = await w.next((e) => e.type === 'MODIFIED' && e.object.metadata.name === 'w');
      const deleted = await w.next((e) => e.type === 'DELETED' && e.object.metadata.name === 'w');
      expect(added.object.data).toEqual({ a: '1' });
      expect(modified.object.data).toEqual({ a: '2' });
      const order = w.events.filter((e) => e.object?.metadata?.name === 'w').map((e) => e.type);
      expect(order).toEqual(['ADDED', 'MODIFIED', 'DELETED']);
      expect(Number(deleted.object.metadata.resourceVersion)).toBeGreaterThan(
        Number(added.object.metadata.resourceVersion),
      );
    } finally {
      w.close();
    }
  });

  it('an update with a stale resourceVersion gets 409 Conflict and changes nothing', async () => {
    const base = `/api/v1/namespaces/${ns}/configmaps`;
    const first = await kubeOk(cp, 'POST', base, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cas' },
      data: { v: '1' },
    });
    const second = await kubeOk(cp, 'PUT', `${base}/cas`, { ...first, data: { v: '2' } });
    expect(second.metadata.resourceVersion).not.toBe(first.metadata.resourceVersion);
    const stale = await kube(cp, 'PUT', `${base}/cas`, { ...first, data: { v: '3' } });
    expect(stale.status).toBe(409);
    expect(stale.json().reason).toBe('Conflict');
    expect((await kubeOk(cp, 'GET', `${base}/cas`)).data).toEqual({ v: '2' });
    // A delete with a stale resourceVersion precondition is refused the same way.
    const del = await kube(cp, 'DELETE', `${base}/cas`, {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      preconditions: { resourceVersion: first.metadata.resourceVersion },
    });
    expect(del.status).toBe(409);
  });

  it('a watch from a compacted resourceVersion gets 410 Gone', async () => {
    // PodTemplates are served without the watch cache (--watch-cache-sizes=podtemplates#0), so
    // this watch reads etcd's history directly, as every watch does once the cache's window has
    // passed it.
    const base = `/api/v1/namespaces/${ns}/podtemplates`;
    const template = (name: string) => ({
      apiVersion: 'v1',
      kind: 'PodTemplate',
      metadata: { name },
      template: { spec: { containers: [{ name: 'c', image: 'none' }] } },
    });
    const old = await kubeOk(cp, 'POST', base, template('old'));
    const oldRv = old.metadata.resourceVersion as string;
    // Before the compaction the old version can be watched from.
    const before = watchStream(cp, `${base}?watch=1&resourceVersion=${oldRv}`);
    await kubeOk(cp, 'POST', base, template('newer'));
    await before.next((e) => e.type === 'ADDED' && e.object.metadata.name === 'newer');
    before.close();
    // Compaction at revision R keeps R itself: write once more so that everything up to and
    // including the revision after the old one is gone.
    await kubeOk(cp, 'POST', base, template('newest'));
    await etcdCompact(cp, await etcdRevision(cp));
    const after = watchStream(cp, `${base}?watch=1&resourceVersion=${oldRv}`);
    try {
      // The server answers 410 either as the response status or as an ERROR event carrying a
      // Status with code 410 (it has already sent 200 when etcd reports the compaction).
      const gone = await after.next((e) => e.type === 'ERROR' || e.type === 'STATUS');
      expect(gone.object.code).toBe(410);
      expect(gone.object.reason).toBe('Expired');
    } finally {
      after.close();
    }
    // A relist gives a current resourceVersion that can be watched from again.
    const relist = await kubeOk(cp, 'GET', base);
    expect(relist.items.map((i: Json) => i.metadata.name).sort()).toEqual(['newer', 'newest', 'old']);
    const resumed = watchStream(cp, `${base}?watch=1&resourceVersion=${relist.metadata.resourceVersion}`);
    try {
      expect(await resumed.status).toBe(200);
      await kubeOk(cp, 'DELETE', `${base}/old`);
      const del = await resumed.next((e) => e.type !== 'BOOKMARK');
      expect(del.type).toBe('DELETED');
      expect(del.object.metadata.name).toBe('old');
    } finally {
      resumed.close();
    }
  });

  it('a ServiceAccount with no role is denied, and allowed once a Role is bound', async () => {
    const token = await tokenFor(cp, ns, 'agent');
    const path = `/api/v1/namespaces/${ns}/configmaps`;
    const denied = await kube(cp, 'GET', path, undefined, { token });
    expect(denied.status).toBe(403);
    expect(denied.json().message).toContain(`system:serviceaccount:${ns}:agent`);
    await kubeOk(cp, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'read-configmaps' },
      rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }],
    });
    await kubeOk(cp, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'agent-reads' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-configmaps' },
      subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: ns }],
    });
    // The authorizer reads bindings through an informer: allow it a moment to see the new one.
    let allowed = await kube(cp, 'GET', path, undefined, { token });
    for (let i = 0; allowed.status === 403 && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      allowed = await kube(cp, 'GET', path, undefined, { token });
    }
    expect(allowed.status).toBe(200);
    // Only what the Role grants: it cannot write, nor read another namespace.
    const write = await kube(
      cp,
      'POST',
      path,
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } },
      { token },
    );
    expect(write.status).toBe(403);
    expect(
      (await kube(cp, 'GET', '/api/v1/namespaces/default/configmaps', undefined, { token })).status,
    ).toBe(403);
    // kubectl with a kubeconfig for that token is judged the same way.
    const kc = kubeconfigFor(cp, token);
    expect(
      kubectl(cp, ['auth', 'can-i', 'list', 'configmaps', '-n', ns], { kubeconfig: kc }).stdout.trim(),
    ).toBe('yes');
    expect(
      kubectl(cp, ['auth', 'can-i', 'create', 'configmaps', '-n', ns], { kubeconfig: kc }).stdout.trim(),
    ).toBe('no');
  });

  it('kubectl apply --dry-run=server validates on the server and stores nothing', async () => {
    const manifest = (name: string, extra = '') => `apiVersion: v1
kind: ConfigMap
metadata:
  name: ${name}
  namespace: ${ns}
data:
  k: v
${extra}`;
    const ok = kubectl(cp, ['apply', '--dry-run=server', '-f', '-'], { input: manifest('dry') });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('configmap/dry created (server dry run)');
    expect((await kube(cp, 'GET', `/api/v1/namespaces/${ns}/configmaps/dry`)).status).toBe(404);
    // The server, not kubectl, rejects what its validation refuses.
    const bad = kubectl(cp, ['apply', '--dry-run=server', '-f', '-'], { input: manifest('Not_A_Name') });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/Invalid value: "Not_A_Name"/);
    const real = kubectl(cp, ['apply', '-f', '-'], { input: manifest('wet') });
    expect(real.status).toBe(0);
    expect((await kubeOk(cp, 'GET', `/api/v1/namespaces/${ns}/configmaps/wet`)).data).toEqual({ k: 'v' });
  });
});
