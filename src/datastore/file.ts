/**
 * The file store (`--datastore file:DIR`), the embedded default: the contract of types.ts kept
 * as one JSON file per object, shared safely by several processes on one host.
 *
 * Layout of DIR:
 *   format                      {"format":"twill-file-datastore","version":1}; checked at open
 *   revision                    {"revision":R,"log":G,"reservation":true}: no revision above R
 *                               has been handed out (fsynced), and the change log generation
 *                               being written; {"revision":N,"log":G}: N was the last one
 *   revision.run                {"revision":N,"boot":B}: the last revision handed out since the
 *                               host booted as B (/proc/sys/kernel/random/boot_id); not fsynced,
 *                               written in place (read only under the lock), padded to 128 bytes
 *   changes.<G>.log             the change log: one JSON line per change, in commit order:
 *                               {"rev":N,"type":"put"|"delete","object":{...}} | {"rev":N,"type":"resync"}
 *   lock, lock.*                the lock across processes (file-lock.ts)
 *   <Kind>/<name>.json          a cluster-scoped object (IPPool/default-ipv4.json)
 *   <Kind>/<namespace>/<name>.json   a namespaced one (NetworkPolicy/web/deny-all.json)
 *   .<file>.<pid>.<tag>.tmp     a write in progress, next to its target (file-io.ts)
 * An object's resourceVersion is the revision of its last write (decimal text); a deletion takes
 * a revision too. Names are DNS subdomains (memory-rules.ts), so they are safe as file names, of
 * up to 250 characters (Kubernetes allows 253; `<name>.json` must fit in 255 bytes).
 *
 * A write (create, update, updateStatus, delete), under the lock; what a crash after each step
 * leaves, and what the next process does about it:
 *   1. take the lock                        stale lock -> taken over (pid dead), then recovery
 *   2. read the object: compare-and-swap    nothing changed
 *   3. revision.run <- N+1 (in place;       a revision skipped: harmless. Bumped before the
 *      and first, when N+1 is above the     object, so a crash never hands one number out twice
 *      reservation: revision <- N+1000      (see Revisions)
 *      with temp, fsync, rename, fsync DIR)
 *   4. object file <- new (temp, fsync,     before the rename: a temp file, swept by recovery,
 *      rename) or unlinked                  the object unchanged; after: changed, not yet logged
 *   5. append the log line (not fsynced:    a torn last line: recovery ends it with a newline
 *      it serves running watchers, and      (after a power cut the object files, fsynced, are
 *      none outlive a power cut)            the truth; every watch starts from a snapshot)
 *   6. fsync the object's folder, and the   before it, a power cut can undo the rename and the
 *      write returns                        line: the caller had no answer yet
 *   7. release the lock                     stale lock, as in 1 (after a reboot the pid is dead
 *                                           or belongs to a process with another start time)
 * The line comes before the folder's fsync, not after it: a reader sees the renamed file at once,
 * and the watchers hear of it as soon, one fsync sooner than after it (about 1 ms on an idle disk,
 * on the path from an IPAM write to a block's route on every node). A power cut in between takes
 * every watcher down with it (all run on this host), and what they did with the change outside
 * the store, such as an advertised route, they take back from the snapshot they start from after
 * it. The caller still gets its answer only once the write is durable, and any write after it
 * waits for the lock, which step 6 holds. Should that fsync fail, the caller gets the error for a
 * change that readers and watchers already see, as readers always could.
 * Revisions: a write needs the last revision handed out, and no number may ever be handed out
 * twice, even across a power cut. Making each one durable cost two of a write's four fsyncs, so
 * `revision` reserves a thousand at a time (fsynced before any of them is used) and each write
 * records its own in `revision.run` without an fsync. Only a reboot can lose that file's latest
 * content, and a reboot changes the boot id it is stamped with: a `revision.run` from another
 * boot (or absent, or unreadable) is ignored and numbering goes on above the reservation, so
 * revisions jump after a reboot but never repeat. Without a boot id (not Linux) every revision is
 * fsynced on its own. A process of an earlier version writes `{"revision":N,"log":G}` with N
 * one above the reservation's top, and this version then goes on from there.
 *
 * Recovery (by whoever takes over a dead process's lock): remove temp files and dead lock
 * records, end a torn log line, append a `resync` line. Watchers that read a resync (or a line
 * they cannot parse) rescan and deliver only the difference, so a change that reached its file
 * but not the log (4-5) is still seen. Nothing that was committed (renamed) is lost or undone.
 *
 * Reads take no lock: a file is replaced by rename, so a reader sees the old or the new object,
 * whole. `list` is therefore per-object consistent, not a point-in-time snapshot of all of them.
 *
 * Watch: the snapshot is read under the lock together with the log's end position, so it is
 * exactly the state at that position; the changes after it are the log's lines, replayed in
 * order, carrying the objects themselves — every watcher in every process sees the same events
 * in the same order. One tailer per store instance reads the log, through a descriptor it keeps
 * open (one pread a change), when fs.watch says it changed, after our own writes, and every
 * `pollMs` (1 s) in case fs.watch missed one: on a local file system it misses nothing,
 * rotations included (the tests hold it to that with a poll of minutes), and at 4 a second the
 * poll was the most frequent wake-up of an idle agent. fs.watch is on the log file being read,
 * not on DIR: a write's lock and temp files in DIR would wake every watching process about ten
 * times per write (on the folder only while that log file does not exist yet). Every watching
 * process reads every write, so the common case (a line or two, nothing else on the tailer's
 * queue) is read and applied at once, and the parsed object goes to the watch uncopied (`poke`,
 * `apply`). At `logRotateBytes` a writer starts generation G+1, touches G so that its
 * watchers look for G+1, and removes G-1; a watcher still on G-1 reads it to its end through its
 * descriptor and goes on, and one that had not opened it, or is further behind, rescans.
 *
 * Bad files: an object file that is not JSON, breaks the kind's schema, or sits at a path that
 * does not match its kind, namespace and name is `DatastoreError('Invalid')` naming the file
 * and the field for a get or a write of that object (which neither overwrites nor deletes it);
 * list and watch skip it and report it to `onWarning`, and serve the other objects. A bad DIR
 * (not a folder, no permission, another format) fails at `openFileDatastore`. A corrupt
 * `revision` file stops writes with an error naming it; removing it makes the store recount
 * from the objects and the log.
 *
 * Not here: several hosts (the lock and fsync semantics assume one kernel; no NFS), processes
 * in different PID namespaces (see file-lock.ts), files edited by hand while watchers run
 * (nothing logs the edit; watchers see it at the next resync or restart), YAML files.
 */
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  type FSWatcher,
  constants as fsc,
  watch as fsWatch,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import { access, mkdir, open, readdir, stat, unlink, utimes } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  appendDurably,
  errno,
  fsError,
  isTempName,
  overwriteInPlace,
  readIfExists,
  readIfExistsSync,
  removeFile,
  replaceFile,
  syncDir,
  syncFolderOf,
  writeAtomic,
} from './file-io.js';
import { FileLock } from './file-lock.js';
import {
  checkDelete,
  checkKey,
  checkListOptions,
  checkObject,
  checkStored,
  checkVersion,
  describeKey,
  KINDS,
  keyOf,
  keyString,
  matches,
  mergeUpdate,
  newObject,
  WatchQueue,
} from './memory-rules.js';
import { byNamespaceAndName } from './memory.js';
import {
  type Datastore,
  DatastoreError,
  type DeletePreconditions,
  type Kind,
  type ListOptions,
  NAMESPACED_KINDS,
  type ObjectKey,
  type StoredObject,
  type WatchEvent,
  type WatchHandle,
  type WatchOptions,
} from './types.js';

export interface FileDatastoreOptions {
  /** How long a write waits for another process's lock before failing Unavailable. */
  lockTimeoutMs?: number;
  /** How often watches read the change log besides fs.watch's hints. */
  pollMs?: number;
  /** Size of a change log generation at which a new one starts. */
  logRotateBytes?: number;
  /** Skipped corrupt files, recoveries, watch trouble that does not end a watch. */
  onWarning?: (message: string, error?: DatastoreError) => void;
  /**
   * Fail NotFound instead of creating the store when DIR holds none (commands that only read,
   * such as `twill ipam`, must not leave an empty store behind a mistyped path).
   */
  mustExist?: boolean;
}

const FORMAT = { format: 'twill-file-datastore', version: 1 };
const DEFAULTS = { lockTimeoutMs: 10_000, pollMs: 1_000, logRotateBytes: 4 << 20 };

/** `file:DIR` -> DIR; undefined when the spec is not a file store's. */
export function parseFileSpec(spec: string): string | undefined {
  return spec.startsWith('file:') && spec.length > 5 ? spec.slice(5) : undefined;
}

/** Opens (creating when absent, unless `mustExist`) the file store in `dir`; a bad folder is a clear error here. */
export async function openFileDatastore(
  dir: string,
  options: FileDatastoreOptions = {},
): Promise<FileDatastore> {
  const root = resolve(dir);
  try {
    const st = await stat(root);
    if (!st.isDirectory())
      throw new DatastoreError(
        'Invalid',
        `${root}: not a folder (the file datastore needs a folder: file:DIR)`,
      );
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw fsError(e, root, 'open the datastore folder');
    if (options.mustExist)
      throw new DatastoreError('NotFound', `${root}: no such folder (no file datastore there)`);
    try {
      await mkdir(root, { recursive: true });
    } catch (e2) {
      throw fsError(e2, root, 'create the datastore folder');
    }
  }
  try {
    await access(root, fsc.R_OK | fsc.W_OK | fsc.X_OK);
  } catch (e) {
    throw new DatastoreError(
      'Forbidden',
      `${root}: no permission to read and write the datastore folder (${errno(e)})`,
    );
  }
  const formatPath = join(root, 'format');
  const text = await readIfExists(formatPath);
  if (text === undefined && options.mustExist)
    throw new DatastoreError('NotFound', `${root}: no file datastore there (no ${formatPath})`);
  if (text === undefined) {
    await writeAtomic(formatPath, `${JSON.stringify(FORMAT)}\n`);
  } else {
    let f: unknown;
    try {
      f = JSON.parse(text);
    } catch {}
    const ok =
      typeof f === 'object' && f !== null && 'format' in f && f.format === FORMAT.format && 'version' in f;
    if (!ok)
      throw new DatastoreError(
        'Invalid',
        `${formatPath}: not a Twill file datastore (expected ${JSON.stringify(FORMAT)})`,
      );
    if ((f as { version: unknown }).version !== FORMAT.version)
      throw new DatastoreError(
        'Invalid',
        `${formatPath}: format version ${JSON.stringify((f as { version: unknown }).version)}, this Twill reads version ${FORMAT.version}`,
      );
  }
  return new FileDatastore(root, options);
}

interface Position {
  gen: number;
  offset: number;
}

function before(a: Position, b: Position): boolean {
  return a.gen < b.gen || (a.gen === b.gen && a.offset < b.offset);
}

interface RevisionState {
  /** The last revision handed out; with `reservation`, the top of a reservation instead. */
  revision: number;
  log: number;
  /** `revision` is the highest that may have been handed out; the last one is in `revision.run`. */
  reservation?: true;
}

/** `revision.run`: the last revision handed out since the host booted as `boot`. */
interface RunState {
  revision: number;
  boot: string;
}

/** Revisions made durable at once in `revision` (see "Revisions" in the header). */
const RESERVE = 1000;
/** revision.run's size: written in place, padded with spaces (file-io.ts overwriteInPlace). */
const RUN_FILE_BYTES = 128;

/** This boot of the host (Linux), or undefined: then every revision is made durable on its own. */
const BOOT_ID: string | undefined = (() => {
  try {
    const id = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return id.length > 0 ? id : undefined;
  } catch {
    return undefined;
  }
})();

interface FileWatch {
  kind: Kind;
  filter: ListOptions | undefined;
  queue: WatchQueue;
  /**
   * The objects this watch has delivered and not deleted, by keyString: the object, or the change
   * log line that carried it (its parsed object went to the consumer uncopied; `knownObject`).
   */
  known: Map<string, StoredObject | string>;
  /** Log lines before this position are part of its snapshot. */
  start: Position;
}

interface LogEntry {
  rev: number;
  type: 'put' | 'delete' | 'resync';
  object?: StoredObject;
}

/** A watch's known object (FileWatch.known), parsed again where it is kept as its log line. */
function knownObject(k: StoredObject | string): StoredObject {
  return typeof k === 'string' ? (JSON.parse(k) as LogEntry).object! : k;
}

const LOG_NAME = /^changes\.(\d+)\.log$/;
const NUMERIC = /^\d+$/;
/** `<name>.json` within a file name's 255 bytes (Kubernetes allows 253). */
const MAX_NAME = 250;

/** One at a time, in call order. */
class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  /** Runs asked for and not yet finished. */
  private pending = 0;
  /** Nothing running or waiting to run. */
  get idle(): boolean {
    return this.pending === 0;
  }
  run<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++;
    const r = this.tail.then(fn).finally(() => this.pending--);
    this.tail = r.catch(() => {});
    return r;
  }
}

export class FileDatastore implements Datastore {
  private readonly lock: FileLock;
  private readonly ops = new Serial();
  private readonly tail = new Serial();
  private readonly opts: Required<Omit<FileDatastoreOptions, 'onWarning' | 'mustExist'>>;
  private readonly warn: (message: string, error?: DatastoreError) => void;
  private readonly watches = new Set<FileWatch>();
  /** Watches reading their snapshot, not yet fed by the tailer. */
  private readonly starting = new Set<FileWatch>();
  /** A resync line was read and the rescan has not yet succeeded. */
  private resyncPending = false;
  /** Where the tailer has read to; undefined while no watch runs. */
  private pos: Position | undefined;
  private pollQueued = false;
  /** The last poll's error, reported once. */
  private pollError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private fsWatcher: FSWatcher | undefined;
  /**
   * The log generation the tailer reads, open, with its path and the next one's: a poll reads
   * from it with one pread instead of opening, sizing and closing the file each time.
   */
  private logFile: { gen: number; fd: number; path: string; next: string } | undefined;
  private readonly readBuffer = Buffer.allocUnsafe(16 << 10);
  /** What fsWatcher watches: the log generation `gen`'s file, or DIR until that file exists. */
  private watched: { gen: number; file: boolean } | undefined;
  private closed = false;

  constructor(
    readonly dir: string,
    options: FileDatastoreOptions = {},
  ) {
    this.opts = {
      lockTimeoutMs: options.lockTimeoutMs ?? DEFAULTS.lockTimeoutMs,
      pollMs: options.pollMs ?? DEFAULTS.pollMs,
      logRotateBytes: options.logRotateBytes ?? DEFAULTS.logRotateBytes,
    };
    this.warn = options.onWarning ?? ((m) => process.emitWarning(m, 'TwillDatastoreWarning'));
    this.lock = new FileLock(dir, this.opts.lockTimeoutMs);
  }

  // ---- reads ----

  async get(key: ObjectKey): Promise<StoredObject | undefined> {
    this.checkOpen();
    const k = checkKey(key);
    return this.readObject(this.objectPath(k), k);
  }

  async list(kind: Kind, options?: ListOptions): Promise<StoredObject[]> {
    this.checkOpen();
    checkListOptions(kind, options);
    return (await this.readKind(kind, options?.namespace)).filter((o) => matches(o, options));
  }

  // ---- writes ----

  async create(object: StoredObject): Promise<StoredObject> {
    this.checkOpen();
    const checked = checkObject(object);
    const key = keyOf(checked);
    const fresh = newObject(checked, randomUUID(), new Date());
    return this.locked(async () => {
      const path = this.objectPath(key);
      if (this.readForWrite(path, key) !== undefined)
        throw new DatastoreError('AlreadyExists', `${describeKey(key)} already exists`);
      return this.commit(key, undefined, fresh);
    });
  }

  async update(object: StoredObject): Promise<StoredObject> {
    return this.replace(object, 'update');
  }

  async updateStatus(object: StoredObject): Promise<StoredObject> {
    return this.replace(object, 'status');
  }

  async delete(key: ObjectKey, preconditions?: DeletePreconditions): Promise<void> {
    this.checkOpen();
    const k = checkKey(key);
    await this.locked(async () => {
      const stored = this.readForWrite(this.objectPath(k), k);
      if (stored === undefined) throw new DatastoreError('NotFound', `${describeKey(k)} not found`);
      checkDelete(stored, preconditions);
      await this.commit(k, stored, undefined);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.watches, ...this.starting]) w.queue.stop();
    this.watches.clear();
    this.starting.clear();
    this.stopTailer();
    await this.ops.run(async () => {});
    await this.tail.run(async () => {});
  }

  private async replace(object: StoredObject, mode: 'update' | 'status'): Promise<StoredObject> {
    this.checkOpen();
    const checked = checkObject(object);
    const key = keyOf(checked);
    return this.locked(async () => {
      const stored = this.readForWrite(this.objectPath(key), key);
      if (stored === undefined) throw new DatastoreError('NotFound', `${describeKey(key)} not found`);
      checkVersion(stored, checked);
      const next = mergeUpdate(stored, checked, mode);
      return next === undefined ? stored : this.commit(key, stored, next);
    });
  }

  /** Steps 3-6 of a write (see the header), under the lock. */
  private async commit(
    key: ObjectKey,
    prev: StoredObject | undefined,
    next: StoredObject | undefined,
  ): Promise<StoredObject> {
    const state = await this.readRevision();
    const run = this.readRun();
    const rev = lastHandedOut(state, run) + 1;
    let log = state.log;
    const rotate = this.sizeOf(this.logPath(log)) >= this.opts.logRotateBytes;
    if (rotate) log++;
    if (rotate || !state.reservation || run === undefined || rev > state.revision) {
      const next: RevisionState =
        BOOT_ID === undefined
          ? { revision: rev, log }
          : { revision: rev + RESERVE - 1, log, reservation: true };
      await writeAtomic(this.revisionPath, `${JSON.stringify(next)}\n`);
    }
    // Not fsynced: only a reboot loses it, and a reboot changes the boot id. Read only under the
    // lock, so written in place (a torn or empty one reads as absent: see Revisions).
    if (BOOT_ID !== undefined)
      overwriteInPlace(
        this.runPath,
        JSON.stringify({ revision: rev, boot: BOOT_ID } satisfies RunState),
        RUN_FILE_BYTES,
      );

    const path = this.objectPath(key);
    const rv = String(rev);
    let now: StoredObject;
    if (next !== undefined) {
      now = { ...next, metadata: { ...next.metadata, resourceVersion: rv } };
      await this.ensureFolder(key);
      await replaceFile(path, `${JSON.stringify(now, null, 2)}\n`);
    } else {
      now = { ...prev!, metadata: { ...prev!.metadata, resourceVersion: rv } };
      removeFile(path);
    }

    const entry: LogEntry = { rev, type: next === undefined ? 'delete' : 'put', object: now };
    // Not fsynced: see step 5 in the header. Watchers read it while the folder is fsynced.
    await appendDurably(this.logPath(log), `${JSON.stringify(entry)}\n`, false);
    this.poke();
    await syncFolderOf(path);
    if (rotate) {
      await syncDir(this.dir).catch(() => {});
      const t = new Date();
      await utimes(this.logPath(log - 1), t, t).catch(() => {});
      await unlink(this.logPath(log - 2)).catch(() => {});
    }
    return now;
  }

  // ---- watch ----

  watch(kind: Kind, onEvent: (event: WatchEvent) => void, options?: WatchOptions): WatchHandle {
    const queue = new WatchQueue(onEvent);
    const filter = options && { namespace: options.namespace, labels: options.labels };
    const w: FileWatch = { kind, filter, queue, known: new Map(), start: { gen: 0, offset: 0 } };
    const handle = {
      stop: () => {
        queue.stop();
        this.starting.delete(w);
        this.watches.delete(w);
        if (this.watches.size === 0) this.stopTailer();
      },
    };
    const fail = (e: unknown) => {
      if (!queue.isStopped) options?.onError?.(asDatastoreError(e));
      handle.stop();
    };
    try {
      this.checkOpen();
      checkListOptions(kind, options);
    } catch (e) {
      queueMicrotask(() => fail(e));
      return handle;
    }
    this.starting.add(w);
    this.tail
      .run(async () => {
        if (queue.isStopped) return;
        let snapshot: StoredObject[] = [];
        await this.locked(async () => {
          w.start = await this.endPosition();
          snapshot = await this.scan(kind, filter);
        });
        this.starting.delete(w);
        if (queue.isStopped) return;
        for (const o of snapshot) {
          w.known.set(keyString(keyOf(o)), o);
          queue.push({ type: 'added', object: o });
        }
        queue.push({ type: 'synced' });
        this.watches.add(w);
        if (this.pos === undefined) this.startTailer(w.start);
      })
      .catch(fail);
    return handle;
  }

  private startTailer(at: Position): void {
    this.pos = at;
    this.timer = setInterval(() => this.poke(), this.opts.pollMs);
    this.timer.unref();
    this.watchLog();
  }

  /**
   * fs.watch on the log generation the tailer reads, or on DIR (for the log's first line) while
   * that file does not exist. Called again after every poll: the tailer may have moved on.
   */
  private watchLog(): void {
    const gen = this.pos?.gen;
    if (gen === undefined || (this.watched?.gen === gen && this.watched.file)) return;
    const path = this.logPath(gen);
    let file = true;
    let w: FSWatcher | undefined;
    try {
      w = fsWatch(path, { persistent: false }, () => this.poke());
    } catch {
      file = false;
      if (this.watched?.gen === gen) return; // already on the folder, waiting for the file
      try {
        w = fsWatch(this.dir, { persistent: false }, (_event, name) => {
          if (name === null || name.startsWith('changes.')) this.poke();
        });
      } catch {
        // No inotify (limits, file system): the timer alone finds changes.
      }
    }
    this.fsWatcher?.close();
    this.fsWatcher = w;
    w?.on('error', () => {});
    this.watched = { gen, file };
  }

  private stopTailer(): void {
    this.pos = undefined;
    this.resyncPending = false;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    this.watched = undefined;
    this.closeLogFile();
  }

  /**
   * Asks the tailer to read the log (once, however often it is asked meanwhile). With nothing
   * else on the tailer's queue (a watch starting, a rescan) the new lines are read and applied
   * at once, without a trip through promises: what every watching process does at every write.
   * What needs waiting for (a rescan, looking for later generations) goes through the queue.
   */
  private poke(): void {
    if (this.pos === undefined || this.pollQueued) return;
    if (this.tail.idle && !this.resyncPending) {
      let done: boolean;
      try {
        done = this.readAhead() === 'done';
      } catch (e) {
        this.pollFailed(e);
        return;
      }
      if (done) {
        this.pollError = undefined;
        this.watchLog();
        return;
      }
    }
    this.pollQueued = true;
    this.tail
      .run(async () => {
        this.pollQueued = false;
        await this.poll();
        this.pollError = undefined;
        this.watchLog();
      })
      .catch((e) => this.pollFailed(e));
  }

  /** Said once, not at every poll, until a poll succeeds again. */
  private pollFailed(e: unknown): void {
    const err = asDatastoreError(e);
    if (err.message === this.pollError) return;
    this.pollError = err.message;
    this.warn(`${this.dir}: watch: ${err.message}; retrying`, err);
  }

  /** Reads the change log from `pos` to its end and applies each line to the watches. */
  private async poll(): Promise<void> {
    for (;;) {
      const next = this.readAhead();
      if (next === 'done') return;
      if (next === 'gone') {
        const gen = this.pos!.gen;
        if (!(await this.logGenerations()).some((g) => g > gen) || this.pos === undefined) return;
        this.resyncPending = true;
      }
      await this.resyncAll();
    }
  }

  /**
   * What `poll` does without waiting: reads and applies lines from `pos` on, across generations,
   * until the log's end ('done'), a rescan to run ('resync'), or a generation whose file is gone
   * with no next one in sight ('gone': the caller looks for later ones).
   */
  private readAhead(): 'done' | 'resync' | 'gone' {
    for (;;) {
      if (this.pos === undefined) return 'done';
      if (this.resyncPending) return 'resync';
      const { gen, offset } = this.pos;
      const nextExists = existsSync(this.logPaths(gen).next);
      const chunk = this.readLogFrom(gen, offset);
      // Gone: never there, or read to its end through the descriptor after the writer removed it.
      if (chunk === undefined || (chunk.length === 0 && !nextExists && this.logFileRemoved())) {
        if (!nextExists) return 'gone';
        this.resyncPending = true;
        continue;
      }
      let resync = false;
      let lineStart = 0;
      for (let nl = chunk.indexOf(0x0a); nl >= 0 && !resync; nl = chunk.indexOf(0x0a, lineStart)) {
        const at = { gen, offset: offset + lineStart };
        const line = chunk.subarray(lineStart, nl).toString('utf8');
        lineStart = nl + 1;
        this.pos = { gen, offset: offset + lineStart };
        resync = this.apply(line, at);
      }
      if (resync || (nextExists && lineStart < chunk.length)) {
        this.resyncPending = true;
        continue;
      }
      if (nextExists) {
        this.pos = { gen: gen + 1, offset: 0 };
        continue;
      }
      return 'done';
    }
  }

  /** Applies one log line; true when the watches must rescan instead. */
  private apply(line: string, at: Position): boolean {
    let entry: LogEntry;
    try {
      entry = JSON.parse(line) as LogEntry;
      if (entry.type === 'resync') return true;
      if (entry.type !== 'put' && entry.type !== 'delete') return true;
      checkStored(entry.object, 'change log entry');
    } catch {
      return true;
    }
    const o = entry.object!;
    // The first watch to take the object gets it as parsed; any other, a copy.
    let owned = true;
    for (const w of this.watches) {
      if (w.kind !== o.kind || before(at, w.start)) continue;
      if (w.filter?.namespace !== undefined && o.metadata.namespace !== w.filter.namespace) continue;
      const k = keyString(keyOf(o));
      const was = w.known.has(k);
      if (entry.type === 'put' && matches(o, w.filter)) {
        w.known.set(k, line);
        w.queue.push({ type: was ? 'modified' : 'added', object: o }, owned);
        owned = false;
      } else if (was) {
        w.known.delete(k);
        w.queue.push({ type: 'deleted', object: o }, owned);
        owned = false;
      }
    }
    return false;
  }

  /** Every watch rescans under the lock and gets the difference; all restart at the log's end. */
  private async resyncAll(): Promise<void> {
    await this.locked(async () => {
      const end = await this.endPosition();
      for (const w of this.watches) {
        const now = await this.scan(w.kind, w.filter);
        const seen = new Set<string>();
        for (const o of now) {
          const k = keyString(keyOf(o));
          seen.add(k);
          const had = w.known.get(k);
          if (had === undefined) w.queue.push({ type: 'added', object: o });
          else if (knownObject(had).metadata.resourceVersion !== o.metadata.resourceVersion)
            w.queue.push({ type: 'modified', object: o });
          w.known.set(k, o);
        }
        for (const [k, o] of w.known) {
          if (seen.has(k)) continue;
          w.known.delete(k);
          w.queue.push({ type: 'deleted', object: knownObject(o) }, typeof o === 'string');
        }
        w.start = end;
      }
      if (this.pos === undefined) return; // the last watch stopped meanwhile
      this.pos = end;
      this.resyncPending = false;
    });
  }

  /** The log's end, under the lock: the next line will be written there. */
  private async endPosition(): Promise<Position> {
    const { log } = await this.readRevision();
    return { gen: log, offset: this.sizeOf(this.logPath(log)) };
  }

  private async scan(kind: Kind, filter: ListOptions | undefined): Promise<StoredObject[]> {
    return (await this.readKind(kind, filter?.namespace)).filter((o) => matches(o, filter));
  }

  // ---- files ----

  private get revisionPath(): string {
    return join(this.dir, 'revision');
  }

  private get runPath(): string {
    return join(this.dir, 'revision.run');
  }

  /**
   * The last revision handed out in this boot of the host, from `revision.run`; undefined when
   * it is absent, unreadable, or from another boot (then `revision`'s reservation counts).
   */
  private readRun(): number | undefined {
    if (BOOT_ID === undefined) return undefined;
    let r: Partial<RunState>;
    try {
      r = JSON.parse(readFileSync(this.runPath, 'utf8')) as Partial<RunState>;
    } catch {
      return undefined;
    }
    return r?.boot === BOOT_ID && Number.isSafeInteger(r.revision) && r.revision! >= 0
      ? r.revision
      : undefined;
  }

  private logPath(gen: number): string {
    return join(this.dir, `changes.${gen}.log`);
  }

  private objectPath(key: ObjectKey): string {
    if (key.name.length > MAX_NAME)
      throw new DatastoreError(
        'Invalid',
        `${describeKey(key)}: metadata.name is ${key.name.length} characters; the file store keeps names of up to ${MAX_NAME} (a file name is at most 255 bytes)`,
      );
    return key.namespace === undefined
      ? join(this.dir, key.kind, `${key.name}.json`)
      : join(this.dir, key.kind, key.namespace, `${key.name}.json`);
  }

  private async ensureFolder(key: ObjectKey): Promise<void> {
    const folder =
      key.namespace === undefined ? join(this.dir, key.kind) : join(this.dir, key.kind, key.namespace);
    try {
      const first = mkdirSync(folder, { recursive: true });
      if (first !== undefined) {
        await syncDir(this.dir);
        if (key.namespace !== undefined) await syncDir(join(this.dir, key.kind));
      }
    } catch (e) {
      throw fsError(e, folder, 'create');
    }
  }

  /** The object in `path`, undefined when absent; Invalid (naming the file) when corrupt. */
  private async readObject(path: string, key: ObjectKey): Promise<StoredObject | undefined> {
    return parseObject(path, key, await readIfExists(path));
  }

  /**
   * As readObject, for a write (a blocking read: see file-io.ts): a corrupt file stops the
   * write and is left as it is.
   */
  private readForWrite(path: string, key: ObjectKey): StoredObject | undefined {
    try {
      return parseObject(path, key, readIfExistsSync(path));
    } catch (e) {
      if (e instanceof DatastoreError && e.code === 'Invalid')
        throw new DatastoreError('Invalid', `${e.message}; not changed: repair or remove the file`);
      throw e;
    }
  }

  /** Every readable object of a kind (in one namespace when given), in name order. */
  private async readKind(kind: Kind, namespace: string | undefined): Promise<StoredObject[]> {
    const base = join(this.dir, kind);
    const folders: { path: string; namespace?: string }[] = [];
    if (!NAMESPACED_KINDS.has(kind)) folders.push({ path: base });
    else if (namespace !== undefined) folders.push({ path: join(base, namespace), namespace });
    else
      for (const e of await this.readDir(base))
        if (e.isDirectory() && !e.name.startsWith('.'))
          folders.push({ path: join(base, e.name), namespace: e.name });
    const out: StoredObject[] = [];
    for (const f of folders) {
      const files = (await this.readDir(f.path)).filter(
        (e) => e.isFile() && e.name.endsWith('.json') && !e.name.startsWith('.'),
      );
      for (let i = 0; i < files.length; i += 64) {
        const batch = files.slice(i, i + 64).map(async (e) => {
          const path = join(f.path, e.name);
          try {
            const key = checkKey({ kind, name: e.name.slice(0, -5), namespace: f.namespace });
            return await this.readObject(path, key);
          } catch (err) {
            if (!(err instanceof DatastoreError) || err.code !== 'Invalid') throw err;
            this.warn(`${err.message}; skipped, the file is left as it is`, err);
            return undefined;
          }
        });
        for (const o of await Promise.all(batch)) if (o !== undefined) out.push(o);
      }
    }
    return out.sort(byNamespaceAndName);
  }

  private async readDir(path: string) {
    try {
      return await readdir(path, { withFileTypes: true });
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw fsError(e, path, 'list');
    }
  }

  /** The file's size; 0 when it does not exist. A blocking stat (see file-io.ts). */
  private sizeOf(path: string): number {
    try {
      return statSync(path).size;
    } catch (e) {
      if (errno(e) === 'ENOENT') return 0;
      throw fsError(e, path, 'stat');
    }
  }

  /** The bytes of `path` from `offset` on; undefined when the file does not exist. */
  private async readFrom(path: string, offset: number): Promise<Buffer | undefined> {
    let fh: Awaited<ReturnType<typeof open>>;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      throw fsError(e, path, 'read');
    }
    try {
      const size = (await fh.stat()).size;
      if (size <= offset) return Buffer.alloc(0);
      const buf = Buffer.allocUnsafe(size - offset);
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  /** Generation `gen`'s log path and the next one's, kept while the tailer is on `gen`. */
  private logPaths(gen: number): { path: string; next: string } {
    const f = this.logFile;
    if (f?.gen === gen) return f;
    return { path: this.logPath(gen), next: this.logPath(gen + 1) };
  }

  /**
   * The tailer's read of generation `gen` from `offset` to its end, or undefined when that
   * generation's file is gone. Blocking calls: a poll reads a few lines from the page cache, and
   * each trip through libuv's thread pool would cost more than the read itself; every watching
   * process pays it at every write. The file stays open while the tailer is on it (one pread a
   * poll); a file the writer removes meanwhile is still read to its end through it. What is
   * returned is a view of a buffer the next read reuses.
   */
  private readLogFrom(gen: number, offset: number): Buffer | undefined {
    let f = this.logFile;
    if (f?.gen !== gen) {
      this.closeLogFile();
      const { path, next } = this.logPaths(gen);
      let fd: number;
      try {
        fd = openSync(path, 'r');
      } catch (e) {
        if (errno(e) === 'ENOENT') return undefined;
        throw fsError(e, path, 'read');
      }
      f = this.logFile = { gen, fd, path, next };
    }
    try {
      let buf = this.readBuffer;
      let got = 0;
      // A short read is the file's end as it is now; a full one may have more behind it.
      for (;;) {
        const n = readSync(f.fd, buf, got, buf.length - got, offset + got);
        got += n;
        if (n === 0 || got < buf.length) break;
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, got);
        buf = bigger;
      }
      return buf.subarray(0, got);
    } catch (e) {
      this.closeLogFile();
      throw fsError(e, f.path, 'read');
    }
  }

  /** Whether the writer has removed the log file the tailer has open (then it is closed). */
  private logFileRemoved(): boolean {
    const f = this.logFile;
    if (f === undefined) return false;
    let removed: boolean;
    try {
      removed = fstatSync(f.fd).nlink === 0;
    } catch {
      removed = true;
    }
    if (removed) this.closeLogFile();
    return removed;
  }

  private closeLogFile(): void {
    const f = this.logFile;
    if (f === undefined) return;
    this.logFile = undefined;
    try {
      closeSync(f.fd);
    } catch {
      // Nothing to do about a failed close of a file only read.
    }
  }

  private async logGenerations(): Promise<number[]> {
    const gens: number[] = [];
    for (const e of await this.readDir(this.dir)) {
      const m = LOG_NAME.exec(e.name);
      if (m) gens.push(Number(m[1]));
    }
    return gens;
  }

  /** The revision file; when absent, recounted from the objects and the log. Under the lock. */
  private async readRevision(): Promise<RevisionState> {
    const path = this.revisionPath;
    const text = readIfExistsSync(path);
    if (text === undefined) return this.recount();
    let r: unknown;
    try {
      r = JSON.parse(text);
    } catch (e) {
      throw new DatastoreError(
        'Invalid',
        `${path}: not valid JSON (${(e as Error).message}); expected {"revision":N,"log":G}. Remove it to have the store recount`,
      );
    }
    const s = r as Partial<RevisionState>;
    for (const f of ['revision', 'log'] as const)
      if (typeof r !== 'object' || r === null || !Number.isSafeInteger(s[f]) || s[f]! < 0)
        throw new DatastoreError(
          'Invalid',
          `${path}: ${f} must be a whole number, not ${JSON.stringify(s[f])}. Remove the file to have the store recount`,
        );
    return { revision: s.revision!, log: s.log!, ...(s.reservation === true ? { reservation: true } : {}) };
  }

  /** The highest revision in any object file or log line, and the newest log generation. */
  private async recount(): Promise<RevisionState> {
    let revision = 0;
    for (const kind of KINDS)
      for (const o of await this.readKind(kind, undefined))
        revision = Math.max(revision, Number(o.metadata.resourceVersion));
    const gens = await this.logGenerations();
    for (const g of gens) {
      const text = (await readIfExists(this.logPath(g))) ?? '';
      for (const line of text.split('\n')) {
        try {
          const rev = (JSON.parse(line) as LogEntry).rev;
          if (Number.isSafeInteger(rev)) revision = Math.max(revision, rev);
        } catch {}
      }
    }
    return { revision, log: gens.length === 0 ? 0 : Math.max(...gens) };
  }

  // ---- lock and recovery ----

  /** Runs `fn` holding the lock (one operation of this instance at a time, then the file lock). */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.ops.run(async () => {
      this.checkOpen();
      const { tookOver } = await this.lock.acquire();
      try {
        if (tookOver) await this.recover();
        return await fn();
      } finally {
        await this.lock.release();
      }
    });
  }

  /** After taking over a dead process's lock (see the header). Safe to repeat. */
  private async recover(): Promise<void> {
    await this.lock.sweep();
    let removed = 0;
    const sweep = async (folder: string, depth: number) => {
      for (const e of await this.readDir(folder)) {
        const p = join(folder, e.name);
        if (e.isFile() && isTempName(e.name)) {
          await unlink(p).catch(() => {});
          removed++;
        } else if (e.isDirectory() && depth > 0 && !e.name.startsWith('.')) await sweep(p, depth - 1);
      }
    };
    await sweep(this.dir, 0);
    for (const kind of KINDS) await sweep(join(this.dir, kind), NAMESPACED_KINDS.has(kind) ? 1 : 0);
    const state = await this.readRevision();
    const revision = lastHandedOut(state, this.readRun());
    const log = this.logPath(state.log);
    const size = this.sizeOf(log);
    const last = size > 0 ? await this.readFrom(log, size - 1) : undefined;
    const torn = last !== undefined && last[0] !== 0x0a ? '\n' : '';
    await appendDurably(
      log,
      `${torn}${JSON.stringify({ rev: revision, type: 'resync' } satisfies LogEntry)}\n`,
    );
    this.warn(
      `${this.dir}: took over the lock of a process that died; removed ${removed} unfinished write(s)${torn ? ', ended a torn log line' : ''}; watches rescan`,
    );
  }

  private checkOpen(): void {
    if (this.closed) throw new DatastoreError('Unavailable', `${this.dir}: the file datastore is closed`);
  }
}

/**
 * The last revision handed out: `revision.run`'s in this boot, unless the revision file says more
 * (written by a process of an earlier version, which knows no reservation); after a reboot, the
 * top of the reservation.
 */
function lastHandedOut(state: RevisionState, run: number | undefined): number {
  if (!state.reservation) return Math.max(state.revision, run ?? 0);
  return run ?? state.revision;
}

/** An object file's text, checked: undefined when absent; Invalid (naming the file) when corrupt. */
function parseObject(path: string, key: ObjectKey, text: string | undefined): StoredObject | undefined {
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new DatastoreError(
      'Invalid',
      `${path}: ${describeKey(key)}: not valid JSON (${(e as Error).message})`,
    );
  }
  let o: StoredObject;
  try {
    o = checkStored(json, describeKey(key));
  } catch (e) {
    throw new DatastoreError('Invalid', `${path}: ${(e as Error).message}`);
  }
  if (keyString(keyOf(o)) !== keyString(key))
    throw new DatastoreError(
      'Invalid',
      `${path}: holds ${describeKey(keyOf(o))}, but its place is ${describeKey(key)} (kind, namespace and name must match the path)`,
    );
  if (!NUMERIC.test(o.metadata.resourceVersion!))
    throw new DatastoreError(
      'Invalid',
      `${path}: metadata.resourceVersion ${JSON.stringify(o.metadata.resourceVersion)} is not a revision number`,
    );
  return o;
}

function asDatastoreError(e: unknown): DatastoreError {
  return e instanceof DatastoreError
    ? e
    : new DatastoreError('Unavailable', e instanceof Error ? e.message : String(e));
}
