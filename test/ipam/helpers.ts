/**
 * Test helpers for IPAM: a fake clock, object builders, and `FaultyStore`, a Datastore wrapper
 * that injects the faults the allocator must survive: a Conflict on the next writes (as if
 * another writer got there first), and a crash before or after the Nth write (the process dies;
 * the wrapper refuses every later call, as a dead process makes none). An optional gate runs
 * every call through fast-check's scheduler so concurrent operations interleave at random.
 */
import { MemoryDatastore } from '../../src/datastore/memory.js';
import {
  type Datastore,
  DatastoreError,
  type DeletePreconditions,
  isDatastoreError,
  type Kind,
  type ListOptions,
  type ObjectKey,
  type StoredObject,
  TWILL_API_VERSION,
  type WatchEvent,
  type WatchHandle,
} from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';
import type { IPAMBlockSpec, IPAMConfigSpec, IPPoolSpec } from '../../src/ipam/model.js';

export class FakeClock {
  constructor(public t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

export class Crash extends Error {
  override name = 'Crash';
}

export class FaultyStore implements Datastore {
  writes = 0;
  private conflicts = 0;
  private crashAt: { write: number; applied: boolean } | undefined;
  dead = false;
  /** Conflicts this wrapper's writes met, injected or real (another writer got there first). */
  static conflicts = 0;

  constructor(
    readonly inner: Datastore,
    private readonly gate: <T>(label: string, f: () => Promise<T>) => Promise<T> = (_l, f) => f(),
  ) {}

  /** The next `n` writes fail with Conflict and change nothing. */
  conflictNext(n = 1): void {
    this.conflicts += n;
  }

  /** The write `n` writes from now crashes the process, after (`applied`) or before it lands. */
  crashOnWrite(n: number, applied: boolean): void {
    this.crashAt = { write: this.writes + n, applied };
  }

  private alive(): void {
    if (this.dead) throw new Crash('the process is dead');
  }

  private async write<T>(label: string, f: () => Promise<T>): Promise<T> {
    return this.gate(label, async () => {
      this.alive();
      this.writes++;
      if (this.crashAt && this.writes === this.crashAt.write) {
        this.dead = true;
        if (this.crashAt.applied) await f();
        throw new Crash(
          `crashed ${this.crashAt.applied ? 'after' : 'before'} write ${this.writes} (${label})`,
        );
      }
      if (this.conflicts > 0) {
        this.conflicts--;
        FaultyStore.conflicts++;
        throw new DatastoreError('Conflict', `injected conflict on ${label}`);
      }
      try {
        return await f();
      } catch (e) {
        if (isDatastoreError(e, 'Conflict')) FaultyStore.conflicts++;
        throw e;
      }
    });
  }

  private read<T>(label: string, f: () => Promise<T>): Promise<T> {
    return this.gate(label, async () => {
      this.alive();
      return f();
    });
  }

  get(key: ObjectKey): Promise<StoredObject | undefined> {
    return this.read(`get ${key.kind}`, () => this.inner.get(key));
  }
  list(kind: Kind, options?: ListOptions): Promise<StoredObject[]> {
    return this.read(`list ${kind}`, () => this.inner.list(kind, options));
  }
  watch(
    kind: Kind,
    onEvent: (event: WatchEvent) => void,
    options?: ListOptions & { onError?: (e: DatastoreError) => void },
  ): WatchHandle {
    return this.inner.watch(kind, onEvent, options);
  }
  create(object: StoredObject): Promise<StoredObject> {
    return this.write(`create ${object.kind}`, () => this.inner.create(object));
  }
  update(object: StoredObject): Promise<StoredObject> {
    return this.write(`update ${object.kind}`, () => this.inner.update(object));
  }
  updateStatus(object: StoredObject): Promise<StoredObject> {
    return this.write(`updateStatus ${object.kind}`, () => this.inner.updateStatus(object));
  }
  delete(key: ObjectKey, preconditions?: DeletePreconditions): Promise<void> {
    return this.write(`delete ${key.kind}`, () => this.inner.delete(key, preconditions));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export function pool(name: string, spec: IPPoolSpec): StoredObject {
  return { apiVersion: TWILL_API_VERSION, kind: 'IPPool', metadata: { name }, spec };
}

export function node(name: string, labels: Record<string, string> = {}, podCIDRs?: string[]): StoredObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels },
    spec: podCIDRs ? { podCIDR: podCIDRs[0], podCIDRs } : {},
  };
}

export function ipamConfig(spec: IPAMConfigSpec): StoredObject {
  return { apiVersion: TWILL_API_VERSION, kind: 'IPAMConfig', metadata: { name: 'default' }, spec };
}

/** A memory store holding `objects`, an allocator over it, and the clock. */
export async function setup(objects: StoredObject[], maxRetries?: number) {
  const store = new MemoryDatastore();
  for (const o of objects) await store.create(o);
  const clock = new FakeClock();
  const invalid: string[] = [];
  const allocator = new Allocator({
    store,
    clock,
    ...(maxRetries === undefined ? {} : { maxRetries }),
    onInvalid: (errors) => invalid.push(...errors.map(String)),
  });
  return { store, clock, allocator, invalid };
}

export async function blockSpecs(store: Datastore): Promise<IPAMBlockSpec[]> {
  return (await store.list('IPAMBlock')).map((o) => o.spec as IPAMBlockSpec);
}

/** handle -> addresses, from the blocks (the truth). */
export async function holdings(store: Datastore): Promise<Map<string, string[]>> {
  const { addressAt, parseCidr } = await import('../../src/ipam/blocks.js');
  const out = new Map<string, string[]>();
  for (const b of await blockSpecs(store)) {
    const c = parseCidr(b.cidr);
    b.allocations.forEach((a, o) => {
      if (a === null) return;
      const h = b.attributes[a]!.handle;
      out.set(h, [...(out.get(h) ?? []), addressAt(c, o)]);
    });
  }
  return out;
}
