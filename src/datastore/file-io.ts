/**
 * Durable file primitives for the file store (file.ts, file-lock.ts): replace a file atomically
 * (temp file in the same folder, fsync, rename, fsync of the folder; the two halves apart when
 * something must happen between the rename and the folder's fsync), append a line durably,
 * read a file that may be absent, and Node's error codes turned into `DatastoreError`s that
 * name the path.
 *
 * The small steps (open, write, rename, close) are blocking calls and only the fsyncs go
 * through libuv's thread pool: each trip through the pool costs a wake-up of the event loop,
 * and on a busy host (every agent woken by every write) a wait for the CPU, far more than the
 * syscall on a file of a few hundred bytes; a write was about 35 such trips. An fsync may wait
 * for the disk, so it stays off the event loop.
 *
 * A temp file is named `.<name>.<pid>.<tag>.tmp` next to its target (`uniqueTag`), so it is
 * hidden from listings, renames within one file system, and tells a recovering process that it
 * is debris (`isTempName`).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants as fsConstants,
  ftruncateSync,
  fsync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DatastoreError } from './types.js';

/** A Node system error's code (`ENOENT`), or undefined. */
export function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}

/** Turns a file-system error into a DatastoreError naming the path and what was being done. */
export function fsError(e: unknown, path: string, doing: string): DatastoreError {
  if (e instanceof DatastoreError) return e;
  const code = errno(e);
  const why = e instanceof Error ? e.message : String(e);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
    return new DatastoreError('Forbidden', `${path}: cannot ${doing}: ${why}`);
  return new DatastoreError('Unavailable', `${path}: cannot ${doing}: ${why}`);
}

let processTag: string | undefined;
let tagCount = 0;

/**
 * A name part (lowercase hex) that no other call returns, in this process or any other: a random
 * tag drawn once per process, then a count. One randomBytes per name cost a write tens of
 * microseconds before its watchers heard of it (three a write: a temp name for the object and
 * for revision.run, the lock's token).
 */
export function uniqueTag(): string {
  processTag ??= randomBytes(6).toString('hex');
  return processTag + (++tagCount).toString(16);
}

export function tempNameFor(target: string): string {
  // The target's name is cut so that the temp name stays within NAME_MAX (255 bytes).
  const base = basename(target).slice(0, 200);
  return join(dirname(target), `.${base}.${process.pid}.${uniqueTag()}.tmp`);
}

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}

/** fsync(2) of an open descriptor, in the thread pool. */
export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err ? reject(err) : resolve())));
}

/** fsync of a folder, so a rename or unlink in it survives a power cut. */
export async function syncDir(dir: string): Promise<void> {
  const fd = openSync(dir, 'r');
  try {
    await fsyncFd(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` with `data` durably (the file and its folder fsynced): readers see the old file
 * or the new one, never a part.
 */
export async function writeAtomic(path: string, data: string): Promise<void> {
  await replaceFile(path, data);
  await syncFolderOf(path);
}

/**
 * writeAtomic's first half: the data reaches the disk (fsynced) and then replaces `path` by a
 * rename, which readers see at once; the rename is durable only once the folder is fsynced
 * (`syncFolderOf`). The file store logs a change between the two halves.
 */
export async function replaceFile(path: string, data: string): Promise<void> {
  const tmp = tempNameFor(path);
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeFileSync(fd, data);
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw fsError(e, path, 'write');
  }
}

/**
 * Writes `data` over `path` in place, padded with spaces to `size` bytes (JSON allows them), with
 * no temp file, rename or fsync: for a small file that is read only under the store's lock, so
 * never while it is being written. A rename over an existing file, or a truncation to zero, has
 * ext4 (auto_da_alloc) start writing the new data out at once: about 0.1 ms of a write's path, for
 * a file nobody fsyncs. A crash can leave it torn or empty; its reader must take that as absent.
 */
export function overwriteInPlace(path: string, data: string, size: number): void {
  try {
    // The data, spaces, and a newline as the last byte.
    if (Buffer.byteLength(data) >= size)
      throw new Error(`${Buffer.byteLength(data)} bytes, room for ${size - 1}`);
    const buf = Buffer.alloc(size, 0x20);
    buf.write(data);
    buf[size - 1] = 0x0a;
    const fd = openSync(path, fsConstants.O_WRONLY | fsConstants.O_CREAT, 0o644);
    try {
      writeSync(fd, buf, 0, size, 0);
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw fsError(e, path, 'write');
  }
}

/** Unlinks `path` (durable once its folder is fsynced); false when it was already gone. */
export function removeFile(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw fsError(e, path, 'remove');
  }
}

/** fsync of the folder holding `path`, so that a rename or unlink there survives a power cut. */
export async function syncFolderOf(path: string): Promise<void> {
  await syncDir(dirname(path)).catch((e) => {
    throw fsError(e, dirname(path), 'sync');
  });
}

/** Appends `data` (and fsyncs, unless told not to); creates the file when absent. */
export async function appendDurably(path: string, data: string, sync = true): Promise<void> {
  try {
    const fd = openSync(path, 'a', 0o644);
    try {
      writeFileSync(fd, data);
      if (sync) await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw fsError(e, path, 'append to');
  }
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw fsError(e, path, 'read');
  }
}

/** readIfExists with a blocking read: for the small files a write reads under the lock. */
export function readIfExistsSync(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw fsError(e, path, 'read');
  }
}
