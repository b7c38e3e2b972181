/**
 * The datastore contract suite: the semantics of src/datastore/types.ts as tests, run by every
 * implementation (memory.test.ts, file.test.ts, and the Kubernetes store against a real
 * kube-apiserver).
 *
 * So that it can run against a shared, real API server:
 * - it uses only kinds a cluster has (Twill's CRDs, Namespace, NetworkPolicy) with objects the
 *   API server accepts: names are DNS labels unique to the run, NetworkPolicies have a
 *   podSelector, the namespaces it uses are created through the store first;
 * - every object carries the label `twill.dev/contract-run: <run id>`, every assertion about
 *   lists and watches looks only at those, and every object is deleted again after its test;
 * - resourceVersion is compared for equality only, never as a number;
 * - watch assertions wait (polling, up to `timeoutMs`) instead of assuming a delivery time, and
 *   "nothing more arrives" waits `quietMs`.
 * - a store may fill in the defaults of the kind's schema (the API server applies the CRDs'), so
 *   a spec written is compared with the spec read by `toMatchObject`, not equality;
 * The CRDs must keep the fields used here: IPPool `spec.cidr`, `spec.blockSize`,
 * `spec.disabled`, `status.allocatedBlocks`; every Twill kind has the status subresource.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type Datastore,
  type Kind,
  type ObjectKey,
  type StoredObject,
  TWILL_API_VERSION,
  type WatchEvent,
  type WatchHandle,
} from '../../src/datastore/types.js';

export interface ContractOptions {
  /** How long to wait for an expected event. */
  timeoutMs?: number;
  /** How long "nothing more is delivered" is watched for. */
  quietMs?: number;
}

const RUN_LABEL = 'twill.dev/contract-run';

/** An object's spec as a record, for `toMatchObject` (a store may add the schema's defaults). */
const specOf = (o: StoredObject | undefined): Record<string, unknown> =>
  (o?.spec ?? {}) as Record<string, unknown>;

interface PoolSpec {
  cidr: string;
  blockSize: number;
  disabled?: boolean;
}

export function datastoreContract(
  name: string,
  open: () => Promise<{ store: Datastore; cleanup(): Promise<void> }>,
  options: ContractOptions = {},
): void {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const quietMs = options.quietMs ?? 300;

  describe(`datastore contract: ${name}`, () => {
    let store: Datastore;
    let cleanup: () => Promise<void>;
    let run: string;
    let created: ObjectKey[];
    let watches: WatchHandle[];
    let seq = 0;

    beforeEach(async () => {
      ({ store, cleanup } = await open());
      run = `c${Date.now().toString(36)}${(seq++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
      created = [];
      watches = [];
    });

    afterEach(async () => {
      for (const w of watches) w.stop();
      try {
        for (const key of created.reverse()) await store.delete(key).catch(() => {});
        await store.close();
      } finally {
        await cleanup();
      }
    });

    /** A name unique to this run: `<run>-<suffix>`. */
    const n = (suffix: string) => `${run}-${suffix}`;
    const labels = (extra: Record<string, string> = {}) => ({ [RUN_LABEL]: run, ...extra });

    const pool = (
      suffix: string,
      extra: Record<string, string> = {},
      cidr = '10.0.0.0/16',
    ): StoredObject => ({
      apiVersion: TWILL_API_VERSION,
      kind: 'IPPool',
      metadata: { name: n(suffix), labels: labels(extra) },
      spec: { cidr, blockSize: 26 } satisfies PoolSpec,
    });
    const netpol = (namespace: string, suffix: string, extra: Record<string, string> = {}): StoredObject => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: n(suffix), namespace, labels: labels(extra) },
      spec: { podSelector: {}, policyTypes: ['Ingress'] },
    });
    const poolKey = (suffix: string): ObjectKey => ({ kind: 'IPPool', name: n(suffix) });

    async function create(o: StoredObject): Promise<StoredObject> {
      const out = await store.create(o);
      created.push({ kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace });
      return out;
    }

    async function namespaces(...suffixes: string[]): Promise<string[]> {
      for (const s of suffixes)
        await create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n(s), labels: labels() } });
      return suffixes.map(n);
    }

    const ours = (list: StoredObject[]) => list.filter((o) => o.metadata.labels?.[RUN_LABEL] === run);
    const names = (list: StoredObject[]) => ours(list).map((o) => o.metadata.name);

    /** A watch whose events (for this run's objects, plus `synced`) are recorded as `type name`. */
    function record(kind: Kind, opts: { namespace?: string; labels?: Record<string, string> } = {}) {
      const events: WatchEvent[] = [];
      const errors: Error[] = [];
      const handle = store.watch(
        kind,
        (e) => {
          if (e.type === 'synced' || e.object.metadata.labels?.[RUN_LABEL] === run) events.push(e);
        },
        { ...opts, onError: (e) => errors.push(e) },
      );
      watches.push(handle);
      const lines = () =>
        events.map((e) => (e.type === 'synced' ? 'synced' : `${e.type} ${e.object.metadata.name}`));
      return { events, errors, handle, lines };
    }

    async function eventually(check: () => void): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        try {
          check();
          return;
        } catch (e) {
          if (Date.now() > deadline) throw e;
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    }

    const quiet = () => new Promise((r) => setTimeout(r, quietMs));

    describe('create, get, list', () => {
      it('create returns the stored object with a resourceVersion, a uid and a creationTimestamp', async () => {
        const out = await create(pool('a'));
        expect(out).toMatchObject({ apiVersion: TWILL_API_VERSION, kind: 'IPPool', spec: pool('a').spec });
        expect(out.metadata.name).toBe(n('a'));
        expect(out.metadata.labels).toEqual(labels());
        expect(out.metadata.resourceVersion).toMatch(/.+/);
        expect(out.metadata.uid).toMatch(/.+/);
        expect(out.metadata.creationTimestamp).toMatch(/.+/);
        expect(await store.get(poolKey('a'))).toEqual(out);
      });

      it('get of an absent object is undefined', async () => {
        expect(await store.get(poolKey('absent'))).toBeUndefined();
      });

      it('create of an existing name fails AlreadyExists and changes nothing', async () => {
        const first = await create(pool('a'));
        await expect(store.create(pool('a', {}, '10.1.0.0/16'))).rejects.toMatchObject({
          name: 'DatastoreError',
          code: 'AlreadyExists',
        });
        expect(await store.get(poolKey('a'))).toEqual(first);
      });

      it('a name that is not a DNS subdomain is Invalid', async () => {
        const bad = pool('a');
        bad.metadata.name = `${run}_Not_Valid`;
        await expect(store.create(bad)).rejects.toMatchObject({ code: 'Invalid' });
      });

      it('lists a cluster-scoped kind, and selects by labels', async () => {
        await create(pool('a', { color: 'red' }));
        await create(pool('b', { color: 'blue' }));
        await create(pool('c', { color: 'red', size: 'big' }));
        expect(names(await store.list('IPPool')).sort()).toEqual([n('a'), n('b'), n('c')]);
        expect(names(await store.list('IPPool', { labels: labels({ color: 'red' }) })).sort()).toEqual([
          n('a'),
          n('c'),
        ]);
        expect(names(await store.list('IPPool', { labels: labels({ color: 'red', size: 'big' }) }))).toEqual([
          n('c'),
        ]);
        expect(await store.list('IPPool', { labels: labels({ color: 'green' }) })).toEqual([]);
      });

      it('lists a namespaced kind in one namespace or all, and gets by namespace and name', async () => {
        const [nsA, nsB] = await namespaces('ns-a', 'ns-b');
        const pa = await create(netpol(nsA!, 'p', { tier: 'web' }));
        const pb = await create(netpol(nsB!, 'p', { tier: 'db' }));
        expect(pa.metadata.namespace).toBe(nsA);
        expect(await store.get({ kind: 'NetworkPolicy', namespace: nsA!, name: n('p') })).toEqual(pa);
        expect(await store.get({ kind: 'NetworkPolicy', namespace: nsB!, name: n('p') })).toEqual(pb);
        const all = ours(await store.list('NetworkPolicy'));
        expect(all.map((o) => o.metadata.namespace).sort()).toEqual([nsA, nsB].sort());
        expect(ours(await store.list('NetworkPolicy', { namespace: nsA! }))).toEqual([pa]);
        expect(ours(await store.list('NetworkPolicy', { labels: labels({ tier: 'db' }) }))).toEqual([pb]);
        expect(
          await store.list('NetworkPolicy', { namespace: nsA!, labels: labels({ tier: 'db' }) }),
        ).toEqual([]);
      });
    });

    describe('update', () => {
      it('with the current resourceVersion replaces spec and labels and gives a new resourceVersion', async () => {
        const a = await create(pool('a'));
        const next = structuredClone(a);
        next.spec = { cidr: '10.0.0.0/16', blockSize: 26, disabled: true } satisfies PoolSpec;
        next.metadata.labels = labels({ color: 'red' });
        const out = await store.update(next);
        expect(specOf(out)).toMatchObject(specOf(next));
        expect(out.metadata.labels).toEqual(next.metadata.labels);
        expect(out.metadata.uid).toBe(a.metadata.uid);
        expect(out.metadata.creationTimestamp).toBe(a.metadata.creationTimestamp);
        expect(out.metadata.resourceVersion).not.toBe(a.metadata.resourceVersion);
        expect(await store.get(poolKey('a'))).toEqual(out);
      });

      it('with a stale resourceVersion fails Conflict and changes nothing', async () => {
        const a = await create(pool('a'));
        const b = await store.update({ ...a, spec: { cidr: '10.0.0.0/16', blockSize: 26, disabled: true } });
        const stale = { ...a, spec: { cidr: '10.9.0.0/16', blockSize: 26 } };
        await expect(store.update(stale)).rejects.toMatchObject({ name: 'DatastoreError', code: 'Conflict' });
        expect(await store.get(poolKey('a'))).toEqual(b);
      });

      it('without a resourceVersion, the last writer wins', async () => {
        const a = await create(pool('a'));
        await store.update({ ...a, spec: { cidr: '10.0.0.0/16', blockSize: 26, disabled: true } });
        const blind = structuredClone(a);
        delete blind.metadata.resourceVersion;
        blind.spec = { cidr: '10.7.0.0/16', blockSize: 26 };
        const out = await store.update(blind);
        expect(specOf(out)).toMatchObject(specOf(blind));
        expect(specOf(await store.get(poolKey('a')))).toMatchObject(specOf(blind));
      });

      it('of an absent object fails NotFound', async () => {
        await expect(store.update(pool('absent'))).rejects.toMatchObject({ code: 'NotFound' });
        await expect(store.updateStatus(pool('absent'))).rejects.toMatchObject({ code: 'NotFound' });
        expect(await store.get(poolKey('absent'))).toBeUndefined();
      });

      it('updateStatus changes status only, and update leaves status alone', async () => {
        const a = await create(pool('a'));
        const s = await store.updateStatus({
          ...a,
          spec: { cidr: '10.9.0.0/16', blockSize: 24 },
          status: { allocatedBlocks: 3 },
        });
        expect(s.status).toEqual({ allocatedBlocks: 3 });
        expect(s.spec).toEqual(a.spec);
        expect(s.metadata.resourceVersion).not.toBe(a.metadata.resourceVersion);
        const u = await store.update({
          ...s,
          spec: { cidr: '10.0.0.0/16', blockSize: 26, disabled: true },
          status: { allocatedBlocks: 99 },
        });
        expect(specOf(u)).toMatchObject({ cidr: '10.0.0.0/16', blockSize: 26, disabled: true });
        expect(u.status).toEqual({ allocatedBlocks: 3 });
        expect(await store.get(poolKey('a'))).toEqual(u);
      });

      it('updateStatus with a stale resourceVersion fails Conflict and changes nothing', async () => {
        const a = await create(pool('a'));
        const s = await store.updateStatus({ ...a, status: { allocatedBlocks: 1 } });
        await expect(store.updateStatus({ ...a, status: { allocatedBlocks: 2 } })).rejects.toMatchObject({
          code: 'Conflict',
        });
        expect(await store.get(poolKey('a'))).toEqual(s);
      });
    });

    describe('delete', () => {
      it('removes the object; a second delete fails NotFound', async () => {
        await create(pool('a'));
        await store.delete(poolKey('a'));
        expect(await store.get(poolKey('a'))).toBeUndefined();
        expect(names(await store.list('IPPool'))).toEqual([]);
        await expect(store.delete(poolKey('a'))).rejects.toMatchObject({ code: 'NotFound' });
      });

      it('with a stale resourceVersion fails Conflict and keeps the object', async () => {
        const a = await create(pool('a'));
        const b = await store.update({ ...a, spec: { cidr: '10.0.0.0/16', blockSize: 26, disabled: true } });
        await expect(
          store.delete(poolKey('a'), { resourceVersion: a.metadata.resourceVersion! }),
        ).rejects.toMatchObject({ code: 'Conflict' });
        expect(await store.get(poolKey('a'))).toEqual(b);
        await store.delete(poolKey('a'), { resourceVersion: b.metadata.resourceVersion! });
        expect(await store.get(poolKey('a'))).toBeUndefined();
      });

      it("with another incarnation's uid fails Conflict and keeps the object", async () => {
        const first = await create(pool('a'));
        await store.delete(poolKey('a'), { uid: first.metadata.uid! });
        const second = await create(pool('a'));
        expect(second.metadata.uid).not.toBe(first.metadata.uid);
        await expect(store.delete(poolKey('a'), { uid: first.metadata.uid! })).rejects.toMatchObject({
          code: 'Conflict',
        });
        expect(await store.get(poolKey('a'))).toEqual(second);
        await store.delete(poolKey('a'), {
          uid: second.metadata.uid!,
          resourceVersion: second.metadata.resourceVersion!,
        });
        expect(await store.get(poolKey('a'))).toBeUndefined();
      });

      it('of a namespaced object removes it from its namespace only', async () => {
        const [nsA, nsB] = await namespaces('ns-a', 'ns-b');
        await create(netpol(nsA!, 'p'));
        const pb = await create(netpol(nsB!, 'p'));
        await store.delete({ kind: 'NetworkPolicy', namespace: nsA!, name: n('p') });
        expect(await store.get({ kind: 'NetworkPolicy', namespace: nsA!, name: n('p') })).toBeUndefined();
        expect(ours(await store.list('NetworkPolicy'))).toEqual([pb]);
      });
    });

    describe('watch', () => {
      it('delivers the snapshot, then synced, then each change in order', async () => {
        const a = await create(pool('a'));
        await create(pool('b'));
        const w = record('IPPool');
        await eventually(() => expect(w.events.some((e) => e.type === 'synced')).toBe(true));
        const synced = w.lines().indexOf('synced');
        // The snapshot: our objects as `added` (in any order) before `synced`; synced once.
        expect(w.lines().slice(0, synced).sort()).toEqual([`added ${n('a')}`, `added ${n('b')}`]);
        const snapA = w.events.find((e) => e.type === 'added' && e.object.metadata.name === n('a'));
        expect(snapA).toMatchObject({ object: a });

        await create(pool('c'));
        const a2 = await store.update({ ...a, spec: { cidr: '10.0.0.0/16', blockSize: 26, disabled: true } });
        await store.delete(poolKey('b'));
        await eventually(() =>
          expect(w.lines().slice(synced + 1)).toEqual([
            `added ${n('c')}`,
            `modified ${n('a')}`,
            `deleted ${n('b')}`,
          ]),
        );
        expect(w.events[synced + 2]).toEqual({ type: 'modified', object: a2 });
        await quiet();
        expect(w.lines().filter((l) => l === 'synced')).toHaveLength(1);
        expect(w.lines()).toHaveLength(synced + 4);
        expect(w.errors).toEqual([]);
      });

      it('on an empty selection delivers synced alone', async () => {
        const w = record('IPPool', { labels: labels() });
        await eventually(() => expect(w.lines()).toEqual(['synced']));
      });

      it('with a label filter delivers matching objects only; leaving or entering the selection is deleted or added', async () => {
        const red = await create(pool('red', { color: 'red' }));
        await create(pool('blue', { color: 'blue' }));
        const w = record('IPPool', { labels: labels({ color: 'red' }) });
        await eventually(() => expect(w.lines()).toEqual([`added ${n('red')}`, 'synced']));
        await create(pool('red2', { color: 'red' }));
        await create(pool('blue2', { color: 'blue' }));
        const blue = (await store.get(poolKey('blue')))!;
        await store.update({ ...blue, metadata: { ...blue.metadata, labels: labels({ color: 'red' }) } });
        await store.update({ ...red, metadata: { ...red.metadata, labels: labels({ color: 'green' }) } });
        await eventually(() =>
          expect(w.lines()).toEqual([
            `added ${n('red')}`,
            'synced',
            `added ${n('red2')}`,
            `added ${n('blue')}`,
            `deleted ${n('red')}`,
          ]),
        );
        await quiet();
        expect(w.lines()).toHaveLength(5);
      });

      it('with a namespace filter delivers that namespace only', async () => {
        const [nsA, nsB] = await namespaces('ns-a', 'ns-b');
        await create(netpol(nsA!, 'p1'));
        await create(netpol(nsB!, 'p1'));
        const w = record('NetworkPolicy', { namespace: nsA! });
        await eventually(() => expect(w.lines()).toEqual([`added ${n('p1')}`, 'synced']));
        await create(netpol(nsB!, 'p2'));
        await create(netpol(nsA!, 'p3'));
        await store.delete({ kind: 'NetworkPolicy', namespace: nsB!, name: n('p1') });
        await store.delete({ kind: 'NetworkPolicy', namespace: nsA!, name: n('p1') });
        await eventually(() =>
          expect(w.lines()).toEqual([`added ${n('p1')}`, 'synced', `added ${n('p3')}`, `deleted ${n('p1')}`]),
        );
        for (const e of w.events) if (e.type !== 'synced') expect(e.object.metadata.namespace).toBe(nsA);
        await quiet();
        expect(w.lines()).toHaveLength(4);
      });

      it('stop() ends delivery', async () => {
        const w = record('IPPool', { labels: labels() });
        await eventually(() => expect(w.lines()).toEqual(['synced']));
        await create(pool('a'));
        await eventually(() => expect(w.lines()).toEqual(['synced', `added ${n('a')}`]));
        w.handle.stop();
        await create(pool('b'));
        await store.delete(poolKey('a'));
        await quiet();
        expect(w.lines()).toEqual(['synced', `added ${n('a')}`]);
      });

      it('stop() right after a change: nothing is delivered after it returns', async () => {
        const w = record('IPPool', { labels: labels() });
        await eventually(() => expect(w.lines()).toEqual(['synced']));
        await create(pool('a'));
        w.handle.stop();
        const at = w.lines().length;
        await quiet();
        expect(w.lines()).toHaveLength(at);
      });

      it('two watchers see the same changes in the same order', async () => {
        await create(pool('a'));
        await create(pool('b'));
        const w1 = record('IPPool', { labels: labels() });
        const w2 = record('IPPool', { labels: labels() });
        await eventually(() => {
          expect(w1.lines()).toContain('synced');
          expect(w2.lines()).toContain('synced');
        });
        const start1 = w1.events.length;
        const start2 = w2.events.length;
        // Interleaved writes to several objects, some concurrent.
        for (let i = 0; i < 5; i++) {
          const [a, b] = await Promise.all([store.get(poolKey('a')), store.get(poolKey('b'))]);
          await Promise.all([
            store.update({ ...a!, spec: { cidr: '10.0.0.0/16', blockSize: 26 + i + 1 } }),
            store.update({ ...b!, spec: { cidr: '10.0.0.0/16', blockSize: 26 + i + 1 } }),
          ]);
          await create(pool(`x${i}`));
        }
        await store.delete(poolKey('a'));
        const tail = (w: { events: WatchEvent[] }, from: number) =>
          w.events
            .slice(from)
            .map((e) =>
              e.type === 'synced'
                ? 'synced'
                : `${e.type} ${e.object.metadata.name} ${e.object.metadata.resourceVersion}`,
            );
        await eventually(() => expect(tail(w1, start1)).toHaveLength(16));
        await eventually(() => expect(tail(w2, start2)).toHaveLength(16));
        expect(tail(w1, start1)).toEqual(tail(w2, start2));
        expect(tail(w1, start1).at(-1)).toMatch(new RegExp(`^deleted ${n('a')} `));
      });

      it('the objects a watcher is given are its own copies', async () => {
        await create(pool('a'));
        const w1 = record('IPPool', { labels: labels() });
        const w2 = record('IPPool', { labels: labels() });
        await eventually(() => {
          expect(w1.lines()).toContain('synced');
          expect(w2.lines()).toContain('synced');
        });
        const e1 = w1.events[0] as { object: StoredObject };
        (e1.object.spec as PoolSpec).cidr = '192.0.2.0/24';
        expect(specOf((w2.events[0] as { object: StoredObject }).object)).toMatchObject(specOf(pool('a')));
        expect(specOf(await store.get(poolKey('a')))).toMatchObject(specOf(pool('a')));
        // So are those of the changes after the snapshot (the file store's, read from its log).
        const a = (await store.get(poolKey('a')))!;
        const spec = { cidr: '10.0.0.0/16', blockSize: 27 } satisfies PoolSpec;
        await store.update({ ...a, spec });
        const modified = (w: typeof w1) =>
          (w.events.find((e) => e.type === 'modified') as { object: StoredObject } | undefined)?.object;
        await eventually(() => {
          expect(modified(w1)).toBeDefined();
          expect(modified(w2)).toBeDefined();
        });
        (modified(w1)!.spec as PoolSpec).blockSize = 30;
        expect(specOf(modified(w2))).toMatchObject(spec);
        expect(specOf(await store.get(poolKey('a')))).toMatchObject(spec);
      });
    });
  });
}
