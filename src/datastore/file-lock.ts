/**
 * The file store's lock across processes on one host: `DIR/lock`, a file that exists while a
 * process holds it and names that process. Node has no flock(2), and an O_EXCL file that stays
 * behind when its owner dies has to be taken over safely, so:
 *
 *   acquire   write our owner record {pid, start, token, since} to `lock.<pid>.<token>`, then
 *             link(2) it to `lock`: the link either appears whole or fails EEXIST (no window in
 *             which `lock` exists but is empty, as with O_EXCL then write). The token is this
 *             acquisition's alone (file-io.ts `uniqueTag`).
 *   busy      the owner is alive: wait (1, 2, 4 .. 20 ms) up to the timeout, then `Unavailable`
 *             naming the owner's pid.
 *   stale     the owner is dead (kill(pid, 0) fails ESRCH, or /proc/<pid>/stat shows another
 *             start time: the pid was reused). Whoever creates `lock.break.<token>` (also by
 *             link) may act on that one stale `lock`: it re-reads `lock`, and if the token is
 *             still the dead owner's, renames its own record over it and holds the lock; the
 *             caller is told it took over, to recover (file.ts). A dead owner cannot release,
 *             and no one else may act on that token, so nothing changes between the re-read
 *             and the rename. A break record whose own owner died is broken the same way.
 *   release   unlink `lock`.
 *
 * An unparseable `lock` (edited by hand) counts as held by a dead owner; its token is a hash of
 * its bytes. `sweep()` removes the records of dead contenders and breakers; a contender's pid is
 * also in its record's name, so a record caught half-written by a sweep is not taken for dead.
 * Assumes the processes share a PID namespace (one host, no containers with their own PIDs).
 */
import { createHash } from 'node:crypto';
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { link, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errno, fsError, uniqueTag } from './file-io.js';
import { DatastoreError } from './types.js';

interface Owner {
  pid: number;
  /** The process's start time from /proc/<pid>/stat, when readable. */
  start?: string;
  token: string;
  since: string;
  host?: string;
}

const CANDIDATE = /^lock\.\d+\.[0-9a-f]+$/;
const BREAK = /^lock\.break\./;
/** Tokens become file names (`lock.break.<token>`): nothing else is accepted from a record. */
const TOKEN = /^[0-9a-z]{1,64}$/;

/** A process's start time (field 22 of /proc/<pid>/stat), to tell it from a later one with its pid. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields are counted after the command name, which may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const OWN_START = startTimeOf(process.pid);

function isAlive(owner: Owner): boolean {
  if (!Number.isInteger(owner.pid) || owner.pid <= 0) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if (errno(e) === 'ESRCH') return false;
  }
  if (owner.start !== undefined) {
    const now = startTimeOf(owner.pid);
    if (now !== undefined && now !== owner.start) return false;
  }
  return true;
}

function newOwner(): Owner {
  const o: Owner = {
    pid: process.pid,
    token: uniqueTag(),
    since: new Date().toISOString(),
    host: hostname(),
  };
  if (OWN_START !== undefined) o.start = OWN_START;
  return o;
}

/** The owner record in `path`; undefined when the file is gone. */
async function readOwner(path: string): Promise<Owner | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (errno(e) === 'ENOENT') return undefined;
    throw fsError(e, path, 'read');
  }
  try {
    const o = JSON.parse(text) as Owner;
    if (typeof o === 'object' && o !== null && typeof o.pid === 'number' && TOKEN.test(String(o.token)))
      return o;
  } catch {}
  const hash = createHash('sha1').update(text).digest('hex').slice(0, 16);
  return { pid: 0, token: `x${hash}`, since: '(unreadable lock record)' };
}

export class FileLock {
  private readonly path: string;
  private held = false;

  constructor(
    private readonly dir: string,
    private readonly timeoutMs: number,
  ) {
    this.path = join(dir, 'lock');
  }

  /** Takes the lock, waiting for a live owner; `tookOver` when a dead owner's lock was taken. */
  async acquire(): Promise<{ tookOver: boolean }> {
    const me = newOwner();
    const record = join(this.dir, `lock.${me.pid}.${me.token}`);
    // Blocking calls on the way to a free lock, as in file-io.ts; only the waits are timers.
    const writeRecord = () => {
      try {
        writeFileSync(record, JSON.stringify(me));
      } catch (e) {
        throw fsError(e, record, 'write the lock record');
      }
    };
    writeRecord();
    const deadline = Date.now() + this.timeoutMs;
    let delay = 1;
    try {
      for (;;) {
        try {
          linkSync(record, this.path);
          this.held = true;
          return { tookOver: false };
        } catch (e) {
          // ENOENT: our record was removed under us (a hand clean-up): write it again.
          if (errno(e) === 'ENOENT' && Date.now() <= deadline) {
            writeRecord();
            continue;
          }
          if (errno(e) !== 'EEXIST') throw fsError(e, this.path, 'take the lock');
        }
        const owner = await readOwner(this.path);
        if (owner === undefined) continue;
        if (!isAlive(owner) && (await this.breakStale(this.path, owner, record))) {
          this.held = true;
          return { tookOver: true };
        }
        if (Date.now() > deadline) {
          throw new DatastoreError(
            'Unavailable',
            `${this.path}: held by pid ${owner.pid} since ${owner.since}; waited ${this.timeoutMs} ms`,
          );
        }
        await sleep(delay);
        delay = Math.min(delay * 2, 20);
      }
    } finally {
      try {
        unlinkSync(record);
      } catch {}
    }
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    try {
      unlinkSync(this.path);
    } catch (e) {
      if (errno(e) !== 'ENOENT') throw fsError(e, this.path, 'release the lock');
    }
  }

  /** Removes the records of contenders and breakers that died. Call while holding the lock. */
  async sweep(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      throw fsError(e, this.dir, 'list');
    }
    for (const name of names) {
      const candidate = CANDIDATE.test(name);
      if (!candidate && !BREAK.test(name)) continue;
      const p = join(this.dir, name);
      const owner = await readOwner(p);
      if (owner === undefined) continue;
      // A contender's record may be read while it is still being written (empty or cut short):
      // its name carries the pid, so an unreadable record of a live process is left alone.
      if (candidate && owner.pid === 0) owner.pid = Number(name.split('.')[1]);
      if (!isAlive(owner)) await unlink(p).catch(() => {});
    }
  }

  /**
   * Acts on `path` while it still holds the dead `owner`'s token: renames `replacement` over it
   * (taking the lock) or, without one, removes it. False when another process is doing it.
   */
  private async breakStale(path: string, owner: Owner, replacement?: string): Promise<boolean> {
    const claim = join(this.dir, `lock.break.${owner.token}`);
    const me = newOwner();
    const record = join(this.dir, `lock.${me.pid}.${me.token}`);
    try {
      await writeFile(record, JSON.stringify(me));
      await link(record, claim);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw fsError(e, claim, 'claim a stale lock');
      const breaker = await readOwner(claim);
      if (breaker !== undefined && !isAlive(breaker)) await this.breakStale(claim, breaker);
      return false;
    } finally {
      await unlink(record).catch(() => {});
    }
    try {
      const now = await readOwner(path);
      if (now?.token !== owner.token) return false;
      if (replacement !== undefined) await rename(replacement, path);
      else await unlink(path);
      return true;
    } catch (e) {
      throw fsError(e, path, 'take over a stale lock');
    } finally {
      await unlink(claim).catch(() => {});
    }
  }
}
