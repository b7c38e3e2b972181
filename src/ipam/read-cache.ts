/**
 * The allocator's `ReadCache` (allocator.ts) over a watch of the store: the agent's own maps of
 * the objects it watches, so that the common CNI ADD is two writes (a new handle, the block's
 * update) and no read, where it was four round trips (the reads, the block, the handle, the block).
 *
 * The watch lags the store: an object may be older here than there. That is safe because the
 * allocator only writes compare-and-swap on the resourceVersion it read, and makes a failed
 * attempt again from the store's reads. What the cache adds to the watch is what this allocator
 * wrote itself, so that pods started one after another on a node do not each find the block as
 * it was before the last one's address and fail their first write: an object written here is
 * read as written until the watch has moved on for it (its map holds another object than when
 * the write was recorded: the write's own event, or a later one), or `ttlMs` has passed.
 */
import type { Kind, ObjectKey, StoredObject } from '../datastore/types.js';
import type { ReadCache } from './allocator.js';

/** A kind's objects by name as the watch last saw them, or null when it does not know them. */
export type WatchSource = (kind: Kind) => ReadonlyMap<string, StoredObject> | null;

interface Written {
  object: StoredObject;
  /** What the watch's map held for the name when the write was recorded. */
  watched: StoredObject | undefined;
  at: number;
}

export class WatchReadCache implements ReadCache {
  private readonly written = new Map<string, Written>();

  constructor(
    private readonly source: WatchSource,
    private readonly now: () => number,
    private readonly ttlMs = 5_000,
  ) {}

  get(key: ObjectKey): StoredObject | undefined | null {
    const map = this.source(key.kind);
    if (map === null) return null;
    const seen = map.get(key.name);
    return this.mine(key.kind, key.name, seen) ?? seen;
  }

  list(kind: ObjectKey['kind']): readonly StoredObject[] | null {
    const map = this.source(kind);
    if (map === null) return null;
    const out: StoredObject[] = [];
    for (const [name, seen] of map) out.push(this.mine(kind, name, seen) ?? seen);
    return out;
  }

  wrote(object: StoredObject): void {
    const kind = object.kind as Kind;
    const name = object.metadata.name;
    const map = this.source(kind);
    if (map === null) return;
    if (this.written.size >= 256)
      for (const [id, w] of this.written) if (this.now() - w.at > this.ttlMs) this.written.delete(id);
    this.written.set(`${kind}/${name}`, { object, watched: map.get(name), at: this.now() });
  }

  /** This allocator's write of the object, while the watch has not moved on from it. */
  private mine(kind: Kind, name: string, seen: StoredObject | undefined): StoredObject | undefined {
    if (this.written.size === 0) return undefined;
    const id = `${kind}/${name}`;
    const w = this.written.get(id);
    if (w === undefined) return undefined;
    if (seen !== w.watched || this.now() - w.at > this.ttlMs) {
      this.written.delete(id);
      return undefined;
    }
    return w.object;
  }
}
