import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uniqueTag } from '../../src/datastore/file-io.js';
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

  it('tokens and temp names are unique to each call, and lock tokens are names the lock accepts', async () => {
    const tags = Array.from({ length: 10_000 }, () => uniqueTag());
    expect(new Set(tags).size).toBe(tags.length);
    // A token names `lock.<pid>.<token>` and `lock.break.<token>` (file-lock.ts CANDIDATE, TOKEN).
    for (const t of [tags[0]!, tags.at(-1)!]) expect(t).toMatch(/^[0-9a-f]{1,64}$/);
    // Two acquisitions by one process: two tokens, so a breaker of the first cannot act on the second.
    const a = new FileLock(dir, 1000);
    const token = async () =>
      (JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { token: string }).token;
    await a.acquire();
    const first = await token();
    await a.release();
    await a.acquire();
    const second = await token();
    await a.release();
    expect(first).toMatch(/^[0-9a-f]+$/);
    expect(second).not.toBe(first);
  });
});
