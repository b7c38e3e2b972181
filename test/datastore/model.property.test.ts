/**
 * The file store against the memory store as a reference model: any sequence of creates,
 * updates (current, stale or no resourceVersion), status updates and deletes (with or without
 * preconditions) gives the same outcome in both (the same objects, or the same error code), and
 * a consumer that applies each store's watch events to a map ends with that store's list.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openFileDatastore } from '../../src/datastore/file.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import type { Datastore, StoredObject, WatchEvent } from '../../src/datastore/types.js';

type Rv = 'current' | 'stale' | 'none';
type Op =
  | { op: 'create'; name: string; color: string }
  | { op: 'update'; name: string; size: number; color: string; rv: Rv }
  | { op: 'status'; name: string; blocks: number; rv: Rv }
  | { op: 'delete'; name: string; rv: Rv; uid: boolean };

const name = fc.constantFrom('a', 'b');
const color = fc.constantFrom('red', 'blue');
const rv = fc.constantFrom<Rv>('current', 'stale', 'none');
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('create' as const), name, color }),
  fc.record({ op: fc.constant('update' as const), name, size: fc.integer({ min: 24, max: 28 }), color, rv }),
  fc.record({ op: fc.constant('status' as const), name, blocks: fc.integer({ min: 0, max: 3 }), rv }),
  fc.record({ op: fc.constant('delete' as const), name, rv, uid: fc.boolean() }),
);

/** One store and what a client of it has seen: the first version of each name it read. */
class Client {
  readonly first = new Map<string, string>();
  readonly events: WatchEvent[] = [];

  constructor(readonly store: Datastore) {
    store.watch('IPPool', (e) => this.events.push(e));
  }

  private async current(n: string): Promise<StoredObject | undefined> {
    const o = await this.store.get({ kind: 'IPPool', name: n });
    if (o !== undefined && !this.first.has(n)) this.first.set(n, o.metadata.resourceVersion!);
    return o;
  }

  private version(o: StoredObject | undefined, n: string, rv: Rv): string | undefined {
    if (rv === 'none') return undefined;
    if (rv === 'stale') return this.first.get(n) ?? '1';
    return o?.metadata.resourceVersion ?? '1';
  }

  /** Runs one operation; the outcome without the store's own uid, versions and timestamps. */
  async run(o: Op): Promise<unknown> {
    try {
      const cur = await this.current(o.name);
      const meta = (labels: Record<string, string>) => {
        const m: StoredObject['metadata'] = { name: o.name, labels };
        const v = 'rv' in o ? this.version(cur, o.name, o.rv) : undefined;
        if (v !== undefined) m.resourceVersion = v;
        return m;
      };
      switch (o.op) {
        case 'create':
          return strip(
            await this.store.create({
              apiVersion: 'crd.twill.dev/v1',
              kind: 'IPPool',
              metadata: { name: o.name, labels: { color: o.color } },
              spec: { cidr: '10.0.0.0/16', blockSize: 26 },
            }),
          );
        case 'update':
          return strip(
            await this.store.update({
              apiVersion: 'crd.twill.dev/v1',
              kind: 'IPPool',
              metadata: meta({ color: o.color }),
              spec: { cidr: '10.0.0.0/16', blockSize: o.size },
            }),
          );
        case 'status':
          return strip(
            await this.store.updateStatus({
              apiVersion: 'crd.twill.dev/v1',
              kind: 'IPPool',
              metadata: meta({}),
              status: { allocatedBlocks: o.blocks },
            }),
          );
        case 'delete': {
          const v = this.version(cur, o.name, o.rv);
          await this.store.delete(
            { kind: 'IPPool', name: o.name },
            {
              ...(v !== undefined && { resourceVersion: v }),
              ...(o.uid && cur !== undefined && { uid: cur.metadata.uid! }),
            },
          );
          return 'deleted';
        }
      }
    } catch (e) {
      return { error: (e as { code?: string }).code ?? String(e) };
    }
  }

  async list(): Promise<unknown[]> {
    return (await this.store.list('IPPool')).map(strip);
  }

  /** The watch's events applied to a map, as a consumer keeps it. */
  watched(): unknown[] {
    const m = new Map<string, StoredObject>();
    for (const e of this.events) {
      if (e.type === 'synced') continue;
      if (e.type === 'deleted') m.delete(e.object.metadata.name);
      else m.set(e.object.metadata.name, e.object);
    }
    return [...m.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1)).map(strip);
  }
}

function strip(o: StoredObject): unknown {
  const { uid: _u, resourceVersion: _r, creationTimestamp: _c, ...meta } = o.metadata;
  return { ...o, metadata: meta };
}

async function settle(check: () => void): Promise<void> {
  const deadline = Date.now() + 10_000;
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

describe('file store against the memory model', () => {
  it('every sequence of operations has the same outcomes, lists and watched state', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 3, maxLength: 16 }), async (ops) => {
        const dir = await mkdtemp(join(tmpdir(), 'twill-file-model-'));
        const file = await openFileDatastore(dir, { pollMs: 20, onWarning: () => {} });
        const memory = new MemoryDatastore();
        try {
          const m = new Client(memory);
          const f = new Client(file);
          for (const o of ops) {
            expect(await f.run(o), JSON.stringify(o)).toEqual(await m.run(o));
            expect(await f.list()).toEqual(await m.list());
          }
          const final = await m.list();
          await settle(() => {
            expect(m.watched()).toEqual(final);
            expect(f.watched()).toEqual(final);
          });
          const kinds = (c: Client) =>
            c.events.map((e) => (e.type === 'synced' ? e.type : `${e.type} ${e.object.metadata.name}`));
          expect(kinds(f)).toEqual(kinds(m));
        } finally {
          await file.close();
          await memory.close();
          await rm(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 50 },
    );
  });
});
