/**
 * The Kubernetes datastore against the test bed's real kube-apiserver and etcd: the contract
 * suite every store runs, then what only a real API server shows — the CRDs in deploy/crds
 * rejecting bad objects with messages that name the field, a watch that survives a lost
 * connection (resumed from the watch cache with a real apiserver's defaults, relisted after
 * 410 Gone when the watch cache is off and etcd was compacted) and delivers only the difference,
 * a watch whose connection went silent without closing taken for dead and resumed,
 * and calls made as a ServiceAccount judged by the real RBAC authorizer.
 */
import { createServer, type Server, type Socket, connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubernetesStore } from '../../src/datastore/kubernetes.js';
import { type StoredObject, TWILL_API_VERSION, type WatchEvent } from '../../src/datastore/types.js';
import {
  type ControlPlane,
  type ControlPlaneInfo,
  etcdCompact,
  etcdRevision,
  installCrds,
  kube,
  kubeOk,
  kubeconfigFor,
  kubeconfigWith,
  startControlPlane,
  testNamespace,
  tokenFor,
} from '../k8s/control-plane.js';
import { describeK8s, sharedControlPlane } from '../k8s/harness.js';
import { datastoreContract } from './contract.js';

const pool = (
  name: string,
  spec: Record<string, unknown>,
  labels: Record<string, string> = {},
): StoredObject => ({
  apiVersion: TWILL_API_VERSION,
  kind: 'IPPool',
  metadata: { name, labels },
  spec,
});

const uniq = () => Math.random().toString(36).slice(2, 8);

describeK8s('Kubernetes datastore on a real kube-apiserver', () => {
  let cp: ControlPlaneInfo;
  beforeAll(async () => {
    cp = await sharedControlPlane();
    installCrds(cp);
  }, 180_000);

  datastoreContract(
    'kubernetes',
    async () => ({ store: KubernetesStore.open({ kubeconfig: cp.kubeconfig }), cleanup: async () => {} }),
    { timeoutMs: 15_000 },
  );

  describe('the CRDs in deploy/crds reject bad objects, naming the object and the field', () => {
    let store: KubernetesStore;
    beforeAll(() => {
      store = KubernetesStore.open({ kubeconfig: cp.kubeconfig });
    });
    afterAll(() => store.close());

    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['a malformed CIDR', { cidr: '10.0.0/16' }, /spec\.cidr.*must be a CIDR/],
      ['host bits set', { cidr: '10.0.0.1/16' }, /spec\.cidr.*host bits set/],
      [
        'an IPv4 block size out of range',
        { cidr: '10.0.0.0/16', blockSize: 33 },
        /spec\.blockSize.*out of range/,
      ],
      [
        'an IPv6 block size out of range',
        { cidr: 'fd00::/48', blockSize: 64 },
        /spec\.blockSize.*out of range/,
      ],
      [
        'a block larger than the pool',
        { cidr: '10.0.0.0/24', blockSize: 20 },
        /spec\.blockSize.*must fit in the pool/,
      ],
      ['an unknown mode', { cidr: '10.0.0.0/16', mode: 'vxlan' }, /spec\.mode.*Unsupported value: "vxlan"/],
      ['no cidr', { blockSize: 26 }, /spec\.cidr: Required value/],
    ];
    for (const [what, spec, message] of cases)
      it(`IPPool with ${what}`, async () => {
        const name = `bad-${uniq()}`;
        const err = await store.create(pool(name, spec)).catch((e) => e);
        expect(err).toMatchObject({ name: 'DatastoreError', code: 'Invalid' });
        expect(err.message).toContain(`IPPool.crd.twill.dev "${name}" is invalid`);
        expect(err.message).toMatch(message);
        expect(await store.get({ kind: 'IPPool', name })).toBeUndefined();
      });

    it('defaults an IPPool as the model documents', async () => {
      const created = await store.create(pool(`ok-${uniq()}`, { cidr: '10.10.0.0/16' }));
      expect(created.spec).toEqual({
        cidr: '10.10.0.0/16',
        nodeSelector: 'all()',
        disabled: false,
        mode: 'blocks',
      });
      await store.delete({ kind: 'IPPool', name: created.metadata.name });
    });

    it('BGPPeer keeps its bfd settings with the CRD defaults filled in, and refuses a bad multiplier', async () => {
      const name = `bfd-${uniq()}`;
      const created = await store.create({
        apiVersion: TWILL_API_VERSION,
        kind: 'BGPPeer',
        metadata: { name },
        spec: { peerIP: '10.0.0.254', asNumber: 65001, bfd: { minTxMs: 100 } },
      });
      expect((created.spec as { bfd: unknown }).bfd).toEqual({
        enabled: true,
        minTxMs: 100,
        minRxMs: 300,
        multiplier: 3,
      });
      await store.delete({ kind: 'BGPPeer', name });
      const bad = await store
        .create({
          apiVersion: TWILL_API_VERSION,
          kind: 'BGPConfiguration',
          metadata: { name: `c-${uniq()}` },
          spec: { bfd: { multiplier: 0 } },
        })
        .catch((e) => e);
      expect(bad.code).toBe('Invalid');
      expect(bad.message).toMatch(/spec\.bfd\.multiplier/);
    });

    it('BGPPeer and BGPConfiguration refuse what BGP cannot use', async () => {
      const peer = await store
        .create({
          apiVersion: TWILL_API_VERSION,
          kind: 'BGPPeer',
          metadata: { name: `tor-${uniq()}` },
          spec: { peerIP: '10.0.0.300', asNumber: 65001, node: 'a', nodeSelector: 'all()' },
        })
        .catch((e) => e);
      expect(peer.code).toBe('Invalid');
      expect(peer.message).toMatch(/spec\.peerIP.*must be an IPv4 or IPv6 address/);
      expect(peer.message).toMatch(/node and nodeSelector exclude each other/);
      const conf = await store
        .create({
          apiVersion: TWILL_API_VERSION,
          kind: 'BGPConfiguration',
          metadata: { name: `c-${uniq()}` },
          spec: { asNumber: 23456, holdTime: 2 },
        })
        .catch((e) => e);
      expect(conf.code).toBe('Invalid');
      expect(conf.message).toMatch(/spec\.asNumber.*AS_TRANS/);
      expect(conf.message).toMatch(/spec\.holdTime.*must be 0 or 3\.\.65535/);
    });
  });

  describe('a watch that loses its connection delivers only the difference', () => {
    /**
     * A TCP relay between the store and the API server that the test can cut, or silence: the
     * store's kubeconfig points at it (TLS passes through untouched).
     */
    class Relay {
      private server: Server | undefined;
      private readonly sockets = new Set<Socket>();
      private readonly pairs = new Set<[Socket, Socket]>();
      port = 0;
      constructor(private readonly target: number) {}
      async up(): Promise<void> {
        this.server = createServer((c) => {
          const s = connect(this.target, '127.0.0.1');
          const pair: [Socket, Socket] = [c, s];
          this.pairs.add(pair);
          for (const x of pair) {
            this.sockets.add(x);
            x.on('close', () => {
              this.sockets.delete(x);
              this.pairs.delete(pair);
            });
            x.on('error', () => {});
          }
          c.pipe(s).pipe(c);
        });
        await new Promise<void>((r) => this.server!.listen(this.port, '127.0.0.1', () => r()));
        this.port = (this.server.address() as { port: number }).port;
      }
      /**
       * The connections open now carry nothing more either way, and stay open: a path that
       * dropped them without a FIN or RST (a NAT's or a load balancer's idle timeout). New
       * connections pass.
       */
      freeze(): void {
        for (const [c, s] of this.pairs) {
          c.unpipe(s);
          s.unpipe(c);
          c.pause();
          s.pause();
        }
        this.pairs.clear();
      }
      async down(): Promise<void> {
        for (const s of this.sockets) s.destroy();
        await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
        this.server = undefined;
      }
    }

    async function scenario(plane: ControlPlaneInfo, opts: { compact: boolean }) {
      const run = uniq();
      const labels = { 'twill.dev/relay-run': run };
      const relay = new Relay(Number(new URL(plane.server).port));
      await relay.up();
      const kc = kubeconfigWith(plane, { server: `https://127.0.0.1:${relay.port}` });
      const transient: string[] = [];
      const store = KubernetesStore.open({
        kubeconfig: kc,
        backoffMs: { min: 100, max: 400 },
        onTransient: (_k, e) => transient.push(e.code),
      });
      const admin = KubernetesStore.open({ kubeconfig: plane.kubeconfig });
      const view = new Map<string, StoredObject>();
      const events: WatchEvent[] = [];
      const retried: string[] = [];
      try {
        const a = await admin.create(pool(`a-${run}`, { cidr: '10.1.0.0/16' }, labels));
        await admin.create(pool(`c-${run}`, { cidr: '10.3.0.0/16' }, labels));
        let synced = false;
        const handle = store.watch(
          'IPPool',
          (e) => {
            events.push(e);
            if (e.type === 'synced') synced = true;
            else if (e.type === 'deleted') view.delete(e.object.metadata.name);
            else view.set(e.object.metadata.name, e.object);
          },
          { labels, onRetry: (e) => retried.push(e?.code ?? 'works') },
        );
        await until(() => synced);
        expect([...view.keys()].sort()).toEqual([`a-${run}`, `c-${run}`]);
        const before = events.length;

        // The API server becomes unreachable; the cluster changes meanwhile.
        await relay.down();
        await admin.create(pool(`b-${run}`, { cidr: '10.2.0.0/16' }, labels));
        await admin.update({ ...a, spec: { ...(a.spec as object), disabled: true } });
        await admin.delete({ kind: 'IPPool', name: `c-${run}` });
        if (opts.compact) {
          await admin.create(pool(`d-${run}`, { cidr: '10.4.0.0/16' }, labels));
          await admin.delete({ kind: 'IPPool', name: `d-${run}` });
          await etcdCompact(plane, await etcdRevision(plane));
        }
        await until(() => transient.length > 0);
        await relay.up();

        const truth = (await admin.list('IPPool', { labels })).map((o) => o.metadata.name).sort();
        await until(() => JSON.stringify([...view.keys()].sort()) === JSON.stringify(truth));
        expect(truth).toEqual([`a-${run}`, `b-${run}`]);
        expect((view.get(`a-${run}`)!.spec as { disabled: boolean }).disabled).toBe(true);
        const after = events
          .slice(before)
          .map((e) => (e.type === 'synced' ? 'synced' : `${e.type} ${e.object.metadata.name}`));
        // Each change once, and nothing the watcher already had (no second `synced`, no re-add of a).
        expect(after.sort()).toEqual([`added b-${run}`, `deleted c-${run}`, `modified a-${run}`]);
        expect(transient.every((c) => c === 'Unavailable')).toBe(true);
        // The watch's own onRetry heard each failure, then that it works again, once.
        await until(() => retried.at(-1) === 'works');
        expect(retried.length).toBeGreaterThan(1);
        expect(retried.slice(0, -1).every((c) => c === 'Unavailable')).toBe(true);
        expect(retried.filter((c) => c === 'works')).toHaveLength(1);
        handle.stop();
        return store.stats;
      } finally {
        await store.close();
        await admin.close();
        await relay.down();
      }
    }

    it('a watch whose connection goes silent is taken for dead and resumed', async () => {
      const run = uniq();
      const labels = { 'twill.dev/relay-run': run };
      const relay = new Relay(Number(new URL(cp.server).port));
      await relay.up();
      const store = KubernetesStore.open({
        kubeconfig: kubeconfigWith(cp, { server: `https://127.0.0.1:${relay.port}` }),
        backoffMs: { min: 100, max: 400 },
        watchIdleMs: 2000,
      });
      const admin = KubernetesStore.open({ kubeconfig: cp.kubeconfig });
      const names = new Set<string>();
      const retried: string[] = [];
      let synced = false;
      const handle = store.watch(
        'IPPool',
        (e) => {
          if (e.type === 'synced') synced = true;
          else if (e.type === 'added') names.add(e.object.metadata.name);
        },
        { labels, onRetry: (e) => retried.push(e ? `${e.code}: ${e.message}` : 'works') },
      );
      try {
        await admin.create(pool(`a-${run}`, { cidr: '10.1.0.0/16' }, labels));
        await until(() => synced && names.has(`a-${run}`));
        // The watch's connection goes silent, and stays open; the cluster changes meanwhile.
        relay.freeze();
        await admin.create(pool(`b-${run}`, { cidr: '10.2.0.0/16' }, labels));
        await until(() => names.has(`b-${run}`), 15_000);
        // Resumed from where it was, quietly, as after the server's own timeout: no second list,
        // nothing reported (the way to the server works; only that connection was dead).
        expect(store.stats.idleRestarts).toBeGreaterThanOrEqual(1);
        expect(store.stats.lists).toBe(1);
        expect(store.stats.watches).toBeGreaterThanOrEqual(2);
        expect(retried).toEqual([]);
      } finally {
        handle.stop();
        await store.close();
        await admin.close();
        await relay.down();
      }
    });

    it('resumed from the watch cache (a real apiserver with its defaults)', async () => {
      const stats = await scenario(cp, { compact: false });
      expect(stats.relistsAfterGone).toBe(0);
      expect(stats.lists).toBe(1);
    });

    describe('relisted after 410 Gone', () => {
      let own: ControlPlane;
      beforeAll(async () => {
        // Its own control plane with the watch cache off, so a resumed watch reads etcd's history
        // and meets the compaction (with the cache on, the cache's window decides instead).
        own = await startControlPlane({ apiserverArgs: ['--watch-cache=false'] });
        installCrds(own);
      }, 180_000);
      afterAll(() => own?.stop());

      it('when etcd was compacted past the resume point', async () => {
        const stats = await scenario(own, { compact: true });
        expect(stats.relistsAfterGone).toBeGreaterThanOrEqual(1);
      });
    });
  });

  describe('as the agent: a ServiceAccount token, judged by RBAC', () => {
    it('is denied until a ClusterRole is bound, then works with exactly those verbs', async () => {
      const ns = await testNamespace(cp, 'rbac');
      const token = await tokenFor(cp, ns, 'twill-agent');
      const store = KubernetesStore.open({ kubeconfig: kubeconfigFor(cp, token) });
      try {
        const denied = await store.list('IPPool').catch((e) => e);
        expect(denied).toMatchObject({ code: 'Forbidden' });
        expect(denied.message).toContain(`system:serviceaccount:${ns}:twill-agent`);
        const role = `twill-read-pools-${uniq()}`;
        await kubeOk(cp, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterroles', {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRole',
          metadata: { name: role },
          rules: [{ apiGroups: ['crd.twill.dev'], resources: ['ippools'], verbs: ['get', 'list', 'watch'] }],
        });
        await kubeOk(cp, 'POST', '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings', {
          apiVersion: 'rbac.authorization.k8s.io/v1',
          kind: 'ClusterRoleBinding',
          metadata: { name: role },
          roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
          subjects: [{ kind: 'ServiceAccount', name: 'twill-agent', namespace: ns }],
        });
        await until(async () => Array.isArray(await store.list('IPPool').catch(() => undefined)));
        // A verb the role lacks is refused with Forbidden, and the watch it may do works.
        const write = await store.create(pool(`w-${uniq()}`, { cidr: '10.9.0.0/16' })).catch((e) => e);
        expect(write).toMatchObject({ code: 'Forbidden' });
        let synced = false;
        const h = store.watch('IPPool', (e) => {
          if (e.type === 'synced') synced = true;
        });
        await until(() => synced);
        h.stop();
        // A watch on a kind it may not read ends with Forbidden through onError.
        const errors: string[] = [];
        store.watch('BGPPeer', () => {}, { onError: (e) => errors.push(e.code) });
        await until(() => errors.length > 0);
        expect(errors).toEqual(['Forbidden']);
      } finally {
        await store.close();
      }
    });

    it('an unreachable API server is Unavailable, not a crash', async () => {
      const dead = kubeconfigWith(cp, { server: 'https://127.0.0.1:1' });
      const store = KubernetesStore.open({ kubeconfig: dead });
      try {
        await expect(store.get({ kind: 'IPPool', name: 'x' })).rejects.toMatchObject({ code: 'Unavailable' });
      } finally {
        await store.close();
      }
      expect((await kube(cp, 'GET', '/readyz')).status).toBe(200);
    });
  });
});

async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}
