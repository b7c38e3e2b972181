/**
 * The file store's commit order (file.ts header, steps 4-6): the object's rename, then the log
 * line that watchers read, then the fsync of the object's folder, after which the write returns.
 * So a watcher hears of a write as soon as a reader can read it, one fsync sooner than if the
 * line came after the folder's fsync, and the writer's caller still gets a durable write.
 *
 * The folder's fsync (file-io.ts `syncFolderOf`) is replaced here by one the test holds until it
 * lets it go: a watch of a second store on the same folder (its own tailer and fs.watch, as in
 * another process) must see the change while it is held, and the write must not return before
 * it is let go.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StoredObject, WatchEvent } from '../../src/datastore/types.js';

const held = vi.hoisted(() => ({
  syncs: [] as { path: string; release: () => void }[],
  hold: false,
}));

vi.mock('../../src/datastore/file-io.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../src/datastore/file-io.js')>();
  return {
    ...orig,
    syncFolderOf: async (path: string) => {
      if (held.hold) await new Promise<void>((release) => held.syncs.push({ path, release }));
      await orig.syncFolderOf(path);
    },
  };
});

const { openFileDatastore } = await import('../../src/datastore/file.js');

const dirs: string[] = [];
afterEach(async () => {
  held.hold = false;
  for (const s of held.syncs.splice(0)) s.release();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const pool = (name: string): StoredObject => ({
  apiVersion: 'crd.twill.dev/v1',
  kind: 'IPPool',
  metadata: { name },
  spec: { cidr: '10.0.0.0/16', blockSize: 26 },
});

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

describe('file store commit order (a second store on the same folder stands in for another process)', () => {
  it('a watcher sees a create and a delete while the folder fsync is held; the write returns after it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twill-file-order-'));
    dirs.push(dir);
    const writer = await openFileDatastore(dir, { pollMs: 60_000 });
    const reader = await openFileDatastore(dir, { pollMs: 60_000 });
    const events: WatchEvent[] = [];
    const w = reader.watch('IPPool', (e) => events.push(e));
    await until('the watch to start', () => events.some((e) => e.type === 'synced'));
    try {
      held.hold = true;
      let created = false;
      const create = writer.create(pool('a')).then(() => (created = true));
      await until('the held fsync', () => held.syncs.length === 1);
      expect(held.syncs[0]!.path).toBe(join(dir, 'IPPool', 'a.json'));
      // The log line is written and read while the folder's fsync waits.
      await until('the watcher to see the create', () =>
        events.some((e) => e.type === 'added' && e.object.metadata.name === 'a'),
      );
      expect(created).toBe(false);
      held.syncs.shift()!.release();
      await create;

      let deleted = false;
      const del = writer.delete({ kind: 'IPPool', name: 'a' }).then(() => (deleted = true));
      await until('the held fsync', () => held.syncs.length === 1);
      await until('the watcher to see the delete', () =>
        events.some((e) => e.type === 'deleted' && e.object.metadata.name === 'a'),
      );
      expect(deleted).toBe(false);
      held.syncs.shift()!.release();
      await del;
    } finally {
      held.hold = false;
      for (const s of held.syncs.splice(0)) s.release();
      w.stop();
      await writer.close();
      await reader.close();
    }
  });
});
