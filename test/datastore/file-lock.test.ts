import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileLock } from '../../src/datastore/file-lock.js';

describe('file store lock', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'twill-lock-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('sweep keeps a live contender whose record is still empty (caught mid-write), removes a dead one', async () => {
    // A contender's record is written and then linked; a sweep may read it before the bytes land.
    await writeFile(join(dir, `lock.${process.pid}.00aa11bb22cc33dd`), '');
    // pid 2^22+1 is above any pid_max: nobody can own it.
    await writeFile(join(dir, `lock.4194305.0123456789abcdef`), '');
    const lock = new FileLock(dir, 1000);
    await lock.acquire();
    await lock.sweep();
    await lock.release();
    expect((await readdir(dir)).sort()).toEqual([`lock.${process.pid}.00aa11bb22cc33dd`]);
  });

  it('a record removed under a contender is written again, and the lock is taken', async () => {
    const lock = new FileLock(dir, 1000);
    const other = new FileLock(dir, 1000);
    await other.acquire();
    const taking = lock.acquire();
    // While `lock` waits on the held lock, its record is removed by hand.
    await new Promise((r) => setTimeout(r, 20));
    for (const n of await readdir(dir)) if (n !== 'lock') await rm(join(dir, n));
    await other.release();
    await expect(taking).resolves.toEqual({ tookOver: false });
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
  });
});
