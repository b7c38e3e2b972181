/**
 * The file store's small-file primitives (src/datastore/file-io.ts) where their edges are not
 * reached through the store: overwriteInPlace's size, padding and truncation.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { overwriteInPlace } from '../../src/datastore/file-io.js';
import { DatastoreError } from '../../src/datastore/types.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('overwriteInPlace', () => {
  it('pads to the size, ends with a newline, keeps the inode and cuts a longer file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twill-file-io-'));
    dirs.push(dir);
    const path = join(dir, 'f');
    await writeFile(path, `${'x'.repeat(40)}\n`);
    const ino = statSync(path).ino;
    overwriteInPlace(path, '{"a":1}', 16);
    expect(await readFile(path, 'utf8')).toBe('{"a":1}        \n');
    expect(statSync(path).ino).toBe(ino);
    // The largest that fits: size - 1 bytes, then the newline.
    overwriteInPlace(path, '"0123456789abc"', 16);
    expect(JSON.parse(await readFile(path, 'utf8'))).toBe('0123456789abc');
  });

  it('refuses data with no room for the newline, naming the file, and leaves the file as it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twill-file-io-'));
    dirs.push(dir);
    const path = join(dir, 'f');
    overwriteInPlace(path, '{"a":1}', 16);
    expect(() => overwriteInPlace(path, '"0123456789abcd"', 16)).toThrow(DatastoreError);
    expect(() => overwriteInPlace(path, '"0123456789abcd"', 16)).toThrow(path);
    expect(await readFile(path, 'utf8')).toBe('{"a":1}        \n');
  });
});
