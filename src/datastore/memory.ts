/**
 * The in-memory datastore: the contract of types.ts kept in one process's memory, for tests of
 * IPAM and the agent, and as the reference the contract suite (test/datastore/contract.ts) is
 * written against.
 *
 * - One map from `kind/namespace/name` to the stored object. `resourceVersion` is a store-wide
 *   counter (like etcd's revision), as decimal text; `uid` is a random UUID.
 * - Objects are deep-copied in (a JSON round trip, so what is stored is what the API server
 *   would keep) and out (every get, list and watch event is the caller's own copy).
 * - The object rules (validation, what update and updateStatus replace, preconditions, no-op
 *   updates) are memory-rules.ts, shared with the file store.
 * - Watch: the snapshot (`added` each, in name order), `synced`, then every change, queued
 *   synchronously at the moment it is committed, so all watchers see one order, and delivered
 *   from a microtask (never inside the call that made the change). With a namespace or label
 *   filter, an object that stops matching is delivered as `deleted` and one that starts
 *   matching as `added`, as the API server's watch cache does.
 * - After `close()` every call fails `Unavailable` and no event is delivered.
 *
 * Not here: persistence, several processes (file.ts), history (a watch cannot start from a
 * resourceVersion; the contract has no such call).
 */
import { randomUUID } from 'node:crypto';
import {
  checkDelete,
  checkKey,
  checkListOptions,
  checkObject,
  checkVersion,
  copy,
  describeKey,
  keyOf,
  keyString,
  matches,
  mergeUpdate,
  newObject,
  WatchQueue,
} from './memory-rules.js';
import {
  type Datastore,
  DatastoreError,
  type DeletePreconditions,
  type Kind,
  type ListOptions,
  type ObjectKey,
  type StoredObject,
  type WatchEvent,
  type WatchHandle,
  type WatchOptions,
} from './types.js';

interface Watch {
  kind: Kind;
  options: ListOptions | undefined;
  queue: WatchQueue;
}

export class MemoryDatastore implements Datastore {
  private readonly objects = new Map<string, StoredObject>();
  private revision = 0;
  private readonly watches = new Set<Watch>();
  private closed = false;

  async get(key: ObjectKey): Promise<StoredObject | undefined> {
    this.checkOpen();
    const o = this.objects.get(keyString(checkKey(key)));
    return o === undefined ? undefined : copy(o);
  }

  async list(kind: Kind, options?: ListOptions): Promise<StoredObject[]> {
    this.checkOpen();
    checkListOptions(kind, options);
    return this.select(kind, options).map(copy);
  }

  watch(kind: Kind, onEvent: (event: WatchEvent) => void, options?: WatchOptions): WatchHandle {
    const queue = new WatchQueue(onEvent);
    const fail = (e: DatastoreError) => {
      queueMicrotask(() => {
        if (!queue.isStopped) options?.onError?.(e);
        queue.stop();
      });
    };
    try {
      this.checkOpen();
      checkListOptions(kind, options);
    } catch (e) {
      fail(e as DatastoreError);
      return { stop: () => queue.stop() };
    }
    const filter = options && { namespace: options.namespace, labels: options.labels };
    const w: Watch = { kind, options: filter, queue };
    for (const o of this.select(kind, filter)) queue.push({ type: 'added', object: o });
    queue.push({ type: 'synced' });
    this.watches.add(w);
    return {
      stop: () => {
        queue.stop();
        this.watches.delete(w);
      },
    };
  }

  async create(object: StoredObject): Promise<StoredObject> {
    this.checkOpen();
    const checked = checkObject(object);
    const k = keyString(keyOf(checked));
    if (this.objects.has(k))
      throw new DatastoreError('AlreadyExists', `${describeKey(keyOf(checked))} already exists`);
    const stored = newObject(checked, randomUUID(), new Date());
    return copy(this.commit(k, undefined, stored));
  }

  async update(object: StoredObject): Promise<StoredObject> {
    return this.replace(object, 'update');
  }

  async updateStatus(object: StoredObject): Promise<StoredObject> {
    return this.replace(object, 'status');
  }

  async delete(key: ObjectKey, preconditions?: DeletePreconditions): Promise<void> {
    this.checkOpen();
    const k = keyString(checkKey(key));
    const stored = this.objects.get(k);
    if (stored === undefined) throw new DatastoreError('NotFound', `${describeKey(key)} not found`);
    checkDelete(stored, preconditions);
    this.commit(k, stored, undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches) w.queue.stop();
    this.watches.clear();
  }

  private replace(object: StoredObject, mode: 'update' | 'status'): StoredObject {
    this.checkOpen();
    const checked = checkObject(object);
    const key = keyOf(checked);
    const k = keyString(key);
    const stored = this.objects.get(k);
    if (stored === undefined) throw new DatastoreError('NotFound', `${describeKey(key)} not found`);
    checkVersion(stored, checked);
    const next = mergeUpdate(stored, checked, mode);
    if (next === undefined) return copy(stored);
    return copy(this.commit(k, stored, next));
  }

  /** Stores `next` (or removes the object) with a new revision and queues the watch events. */
  private commit(k: string, prev: StoredObject | undefined, next: StoredObject | undefined): StoredObject {
    this.revision++;
    const rv = String(this.revision);
    let now: StoredObject;
    if (next === undefined) {
      this.objects.delete(k);
      // A deleted object is delivered as it last was, with the revision of its deletion.
      now = { ...prev!, metadata: { ...prev!.metadata, resourceVersion: rv } };
    } else {
      now = { ...next, metadata: { ...next.metadata, resourceVersion: rv } };
      this.objects.set(k, now);
    }
    for (const w of this.watches) {
      if (w.kind !== now.kind) continue;
      const was = prev !== undefined && matches(prev, w.options);
      const is = next !== undefined && matches(now, w.options);
      if (was && is) w.queue.push({ type: 'modified', object: now });
      else if (is) w.queue.push({ type: 'added', object: now });
      else if (was) w.queue.push({ type: 'deleted', object: now });
    }
    return now;
  }

  private select(kind: Kind, options: ListOptions | undefined): StoredObject[] {
    const out: StoredObject[] = [];
    for (const o of this.objects.values()) if (o.kind === kind && matches(o, options)) out.push(o);
    return out.sort(byNamespaceAndName);
  }

  private checkOpen(): void {
    if (this.closed) throw new DatastoreError('Unavailable', 'the memory datastore is closed');
  }
}

export function byNamespaceAndName(a: StoredObject, b: StoredObject): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}
