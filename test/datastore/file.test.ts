/**
 * The file store: the contract suite, then what only a store on disk shared by processes has to
 * show — no lost increment under concurrent compare-and-swap from several OS processes, nothing
 * lost or blocked after a process dies mid-write, corrupt files named and left alone, a bad
 * folder refused at open, log generations.
 *
 * Other processes run test/datastore/file-worker.ts, bundled once with esbuild into the test's
 * temp folder and started with `node`.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FileDatastore, openFileDatastore } from '../../src/datastore/file.js';
import type { Datastore, StoredObject, WatchEvent } from '../../src/datastore/types.js';
import { bundleStandalone } from '../helpers/bundle.js';
import { datastoreContract } from './contract.js';
import { eventually as retry } from '../helpers/eventually.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'twill-file-store-'));
  dirs.push(d);
  return d;
}

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

datastoreContract('file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'twill-file-store-'));
  const store = await openFileDatastore(dir, { pollMs: 50, onWarning: () => {} });
  return { store, cleanup: () => rm(dir, { recursive: true, force: true }) };
});

const pool = (name: string, labels: Record<string, string> = {}): StoredObject => ({
  apiVersion: 'crd.twill.dev/v1',
  kind: 'IPPool',
  metadata: { name, labels },
  spec: { cidr: '10.0.0.0/16', blockSize: 26 },
});

const counter = (name: string): StoredObject => ({
  apiVersion: 'crd.twill.dev/v1',
  kind: 'IPAMConfig',
  metadata: { name },
  spec: { count: 0 },
});

/** Other processes write here: a longer wait than the helper's. */
const eventually = (check: () => void | Promise<void>, timeoutMs = 15_000) => retry(check, timeoutMs, 20);

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  return r.pid!;
}

function tempFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.tmp')) out.push(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

function watchAll(store: Datastore, kind: StoredObject['kind']) {
  const events: WatchEvent[] = [];
  const handle = store.watch(kind, (e) => events.push(e));
  return { events, handle };
}

const countOf = (o: StoredObject | undefined) => (o?.spec as { count: number } | undefined)?.count;

describe('file store: several processes', () => {
  let worker: string;

  beforeAll(async () => {
    const out = await tempDir();
    worker = join(out, 'file-worker.mjs');
    await build({
      entryPoints: [join(import.meta.dirname, 'file-worker.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: worker,
      logLevel: 'silent',
    });
  });

  interface Run {
    child: ChildProcess;
    acked: number[];
    out: string;
    exit: Promise<number | null>;
  }

  function start(dir: string, name: string, n: number): Run {
    const child = spawn(process.execPath, [worker, 'increment', dir, name, String(n)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const run: Run = { child, acked: [], out: '', exit: Promise.resolve(null) };
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      run.out += s;
      for (const m of s.matchAll(/acked (\d+)/g)) run.acked.push(Number(m[1]));
    });
    let err = '';
    child.stderr!.on('data', (s: Buffer) => {
      err += s.toString();
    });
    run.exit = new Promise((resolve) =>
      child.on('exit', (code) => {
        if (code !== 0 && code !== null) run.out += err;
        resolve(code);
      }),
    );
    return run;
  }

  it('four processes incrementing one object with compare-and-swap lose no increment, and a watch sees every one in order', async () => {
    const dir = await tempDir();
    const store = await openFileDatastore(dir, { pollMs: 50, onWarning: () => {} });
    await store.create(counter('shared'));
    const w = watchAll(store, 'IPAMConfig');
    await eventually(() => expect(w.events.map((e) => e.type)).toContain('synced'));

    const runs = [0, 1, 2, 3].map(() => start(dir, 'shared', 40));
    const codes = await Promise.all(runs.map((r) => r.exit));
    expect(codes, runs.map((r) => r.out).join('\n')).toEqual([0, 0, 0, 0]);
    expect(countOf(await store.get({ kind: 'IPAMConfig', name: 'shared' }))).toBe(160);
    // Each acknowledged count was acknowledged once, by one process.
    const acked = runs.flatMap((r) => r.acked).sort((a, b) => a - b);
    expect(acked).toEqual(Array.from({ length: 160 }, (_, i) => i + 1));

    const counts = () => w.events.flatMap((e) => (e.type === 'modified' ? [countOf(e.object)] : []));
    await eventually(() => expect(counts()).toHaveLength(160));
    expect(counts()).toEqual(Array.from({ length: 160 }, (_, i) => i + 1));
    w.handle.stop();
    await store.close();
  });

  it("processes racing to take over a dead process's lock: one at a time gets it, no increment is lost", async () => {
    const dir = await tempDir();
    const seed = await openFileDatastore(dir, { onWarning: () => {} });
    await seed.create(counter('c'));
    await seed.close();
    writeFileSync(
      join(dir, 'lock'),
      JSON.stringify({ pid: deadPid(), token: 'deadbeefdeadbeef', since: 'then' }),
    );
    const runs = [0, 1, 2, 3].map(() => start(dir, 'c', 25));
    // One of them is killed half-way, maybe holding the lock; the others take it over.
    const victim = runs[0]!;
    await eventually(() => expect(victim.acked.length).toBeGreaterThanOrEqual(5));
    victim.child.kill('SIGKILL');
    const codes = await Promise.all(runs.map((r) => r.exit));
    expect(codes.slice(1), runs.map((r) => r.out).join('\n')).toEqual([0, 0, 0]);
    const store = await openFileDatastore(dir, { onWarning: () => {} });
    const total = countOf(await store.get({ kind: 'IPAMConfig', name: 'c' }))!;
    const acked = runs.flatMap((r) => r.acked);
    expect(new Set(acked).size).toBe(acked.length);
    expect(total).toBeGreaterThanOrEqual(75 + victim.acked.length);
    expect(total).toBeLessThanOrEqual(75 + victim.acked.length + 1);
    // When the others finished before the victim died, no one has taken its lock over yet:
    // the next write does, and removes what the victim left half-written.
    await store.create(counter('after'));
    expect(tempFiles(dir)).toEqual([]);
    await store.close();
  });

  it('a process killed while writing loses nothing it acknowledged and blocks no one', async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const seed = await openFileDatastore(dir, { onWarning: () => {} });
    await seed.create(counter('c'));
    await seed.close();
    for (let round = 0; round < 4; round++) {
      const run = start(dir, 'c', 1_000_000);
      const atLeast = 10 + Math.floor(Math.random() * 30);
      await eventually(() => expect(run.acked.length).toBeGreaterThanOrEqual(atLeast));
      run.child.kill('SIGKILL');
      await run.exit;
      const last = run.acked.at(-1)!;
      const store = await openFileDatastore(dir, {
        lockTimeoutMs: 5_000,
        onWarning: (m) => warnings.push(m),
      });
      const now = await store.get({ kind: 'IPAMConfig', name: 'c' });
      // The write in flight when it died is either whole or absent.
      expect(countOf(now)).toBeGreaterThanOrEqual(last);
      expect(countOf(now)).toBeLessThanOrEqual(last + 1);
      const next = await store.update({ ...now!, spec: { count: countOf(now)! + 1 } });
      expect(countOf(next)).toBe(countOf(now)! + 1);
      expect(tempFiles(dir)).toEqual([]);
      expect(existsSync(join(dir, 'lock'))).toBe(false);
      await store.close();
    }
  });
});

describe('file store: crashes', () => {
  it('a stale lock of a dead process, a temp file and a torn log line: reads go on, the next write recovers, watchers resync', async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const a = await openFileDatastore(dir, { pollMs: 50, onWarning: (m) => warnings.push(m) });
    const p1 = await a.create(pool('p1'));
    const w = watchAll(a, 'IPPool');
    await eventually(() => expect(w.events.map((e) => e.type)).toEqual(['added', 'synced']));

    // A process died after step 4 of a write of p2 (renamed, not logged), in the middle of its
    // log line, and left the temp file of another write and its lock.
    const pid = deadPid();
    const revision = JSON.parse(readFileSync(join(dir, 'revision'), 'utf8')) as {
      revision: number;
      log: number;
    };
    const rv = revision.revision + 1;
    writeFileSync(join(dir, 'revision'), JSON.stringify({ revision: rv, log: revision.log }));
    const p2 = {
      ...pool('p2'),
      metadata: { name: 'p2', uid: 'u-p2', resourceVersion: String(rv), labels: {} },
    };
    writeFileSync(join(dir, 'IPPool', 'p2.json'), JSON.stringify(p2));
    appendFileSync(join(dir, `changes.${revision.log}.log`), `{"rev":${rv},"type":"put","obj`);
    writeFileSync(join(dir, 'IPPool', `.p3.json.${pid}.0badf00d.tmp`), '{"half":');
    writeFileSync(join(dir, 'lock'), JSON.stringify({ pid, token: 'deadbeefdeadbeef', since: 'then' }));

    const b = await openFileDatastore(dir, { lockTimeoutMs: 3_000, onWarning: (m) => warnings.push(m) });
    expect(await b.get({ kind: 'IPPool', name: 'p1' })).toEqual(p1);
    const t0 = Date.now();
    const p1b = await b.update({ ...p1, spec: { cidr: '10.0.0.0/16', blockSize: 27 } });
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(Number(p1b.metadata.resourceVersion)).toBeGreaterThan(rv);
    expect(tempFiles(dir)).toEqual([]);
    expect(warnings.join('\n')).toMatch(
      /took over the lock of a process that died; removed 1 unfinished write/,
    );
    expect((await b.list('IPPool')).map((o) => o.metadata.name)).toEqual(['p1', 'p2']);

    // The watcher rescans at the resync line: it learns of p2 (which never reached the log),
    // then p1's change, and nothing twice.
    await eventually(() =>
      expect(
        w.events
          .slice(2)
          .map((e) => (e.type === 'synced' ? 'synced' : `${e.type} ${e.object.metadata.name}`))
          .sort(),
      ).toEqual(['added p2', 'modified p1']),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(w.events).toHaveLength(4);
    // Released, with no record of a contender or breaker left behind.
    expect(readdirSync(dir).filter((n) => n.startsWith('lock'))).toEqual([]);
    w.handle.stop();
    await a.close();
    await b.close();
  });

  it('a resync that cannot take the lock is retried until it can, and not skipped', async () => {
    const dir = await tempDir();
    const warnings: string[] = [];
    const store = await openFileDatastore(dir, {
      pollMs: 50,
      lockTimeoutMs: 100,
      onWarning: (m) => warnings.push(m),
    });
    const p = await store.create(pool('p'));
    const w = watchAll(store, 'IPPool');
    await eventually(() => expect(w.events.map((e) => e.type)).toEqual(['added', 'synced']));
    // A live process holds the lock; p's file changed without a log line (as a write cut
    // between steps 4 and 5 would leave it) and a resync line follows.
    writeFileSync(
      join(dir, 'lock'),
      JSON.stringify({ pid: process.pid, token: 'feedfeedfeedfeed', since: 'now' }),
    );
    const changed = {
      ...p,
      spec: { cidr: '10.0.0.0/16', blockSize: 28 },
      metadata: { ...p.metadata, resourceVersion: '99' },
    };
    writeFileSync(join(dir, 'IPPool', 'p.json'), JSON.stringify(changed));
    appendFileSync(join(dir, 'changes.0.log'), '{"rev":99,"type":"resync"}\n');
    await eventually(() => expect(warnings.join('\n')).toMatch(/held by pid/));
    await new Promise((r) => setTimeout(r, 400));
    expect(w.events).toHaveLength(2);
    // Said once, though every poll meanwhile failed the same way.
    expect(warnings.filter((m) => m.includes('held by pid'))).toHaveLength(1);
    await rm(join(dir, 'lock'));
    await eventually(() => expect(w.events.slice(2)).toEqual([{ type: 'modified', object: changed }]));
    w.handle.stop();
    await store.close();
  });

  it('close() while a watch is still reading its snapshot: nothing is delivered, no error', async () => {
    const dir = await tempDir();
    const store = await openFileDatastore(dir, { onWarning: () => {} });
    await store.create(pool('p'));
    const events: WatchEvent[] = [];
    const errors: Error[] = [];
    store.watch('IPPool', (e) => events.push(e), { onError: (e) => errors.push(e) });
    await store.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(events).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('a live lock holder makes writers wait, then fail Unavailable naming its pid; reads go on', async () => {
    const dir = await tempDir();
    const store = await openFileDatastore(dir, { lockTimeoutMs: 200, onWarning: () => {} });
    const p = await store.create(pool('p'));
    writeFileSync(
      join(dir, 'lock'),
      JSON.stringify({ pid: process.pid, token: 'feedfeedfeedfeed', since: 'now' }),
    );
    await expect(store.update(p)).rejects.toMatchObject({
      code: 'Unavailable',
      message: expect.stringContaining(`held by pid ${process.pid}`),
    });
    expect(await store.get({ kind: 'IPPool', name: 'p' })).toEqual(p);
    await rm(join(dir, 'lock'));
    await store.delete({ kind: 'IPPool', name: 'p' });
    await store.close();
  });
});

describe('file store: bad files', () => {
  let dir: string;
  let store: FileDatastore;
  let warnings: string[];

  afterEach(async () => {
    await store.close();
  });

  async function setup() {
    dir = await tempDir();
    warnings = [];
    store = await openFileDatastore(dir, { pollMs: 50, onWarning: (m) => warnings.push(m) });
    await store.create(pool('good'));
  }

  it('a file that is not JSON: get and writes fail Invalid naming it, list and watch skip it, it is never overwritten or deleted', async () => {
    await setup();
    const bad = join(dir, 'IPPool', 'bad.json');
    await writeFile(bad, '{"kind": "IPPool", "metadata": ');
    const key = { kind: 'IPPool' as const, name: 'bad' };
    await expect(store.get(key)).rejects.toMatchObject({
      code: 'Invalid',
      message: expect.stringMatching(new RegExp(`^${bad}: IPPool bad: not valid JSON \\(`)),
    });
    for (const write of [
      () => store.create(pool('bad')),
      () => store.update(pool('bad')),
      () => store.updateStatus({ ...pool('bad'), status: {} }),
      () => store.delete(key),
    ])
      await expect(write()).rejects.toMatchObject({
        code: 'Invalid',
        message: expect.stringContaining(`${bad}: IPPool bad: not valid JSON`),
      });
    expect(await readFile(bad, 'utf8')).toBe('{"kind": "IPPool", "metadata": ');

    expect((await store.list('IPPool')).map((o) => o.metadata.name)).toEqual(['good']);
    expect(warnings.join('\n')).toContain(`${bad}: IPPool bad: not valid JSON`);
    const w = watchAll(store, 'IPPool');
    await eventually(() => expect(w.events.map((e) => e.type)).toEqual(['added', 'synced']));
    await store.create(pool('other'));
    await eventually(() => expect(w.events).toHaveLength(3));
    w.handle.stop();
  });

  it('a file that breaks the schema names the field; a file in the wrong place names both', async () => {
    await setup();
    const good = (await store.get({ kind: 'IPPool', name: 'good' }))!;
    await writeFile(
      join(dir, 'IPPool', 'labels.json'),
      JSON.stringify({ ...good, metadata: { ...good.metadata, name: 'labels', labels: { tier: 7 } } }),
    );
    await expect(store.get({ kind: 'IPPool', name: 'labels' })).rejects.toMatchObject({
      code: 'Invalid',
      message: expect.stringMatching(/labels\.json: IPPool labels: metadata\.labels\.tier must be a string/),
    });
    await writeFile(
      join(dir, 'IPPool', 'norv.json'),
      JSON.stringify({ ...good, metadata: { ...good.metadata, name: 'norv', resourceVersion: undefined } }),
    );
    await expect(store.get({ kind: 'IPPool', name: 'norv' })).rejects.toMatchObject({
      message: expect.stringMatching(/norv\.json: IPPool norv: metadata\.resourceVersion is required/),
    });
    await writeFile(join(dir, 'IPPool', 'elsewhere.json'), JSON.stringify(good));
    await expect(store.get({ kind: 'IPPool', name: 'elsewhere' })).rejects.toMatchObject({
      message: expect.stringMatching(/elsewhere\.json: holds IPPool good, but its place is IPPool elsewhere/),
    });
    await writeFile(join(dir, 'IPPool', 'Not_A_Name.json'), JSON.stringify(good));
    expect((await store.list('IPPool')).map((o) => o.metadata.name)).toEqual(['good']);
    expect(warnings).toHaveLength(4);
    expect(warnings.join('\n')).toContain('Not_A_Name');
  });

  it('a name too long for a file name is Invalid, not a file-system error', async () => {
    await setup();
    const long = `${'a'.repeat(199)}.${'b'.repeat(50)}`;
    const ok = await store.create(pool(long));
    expect(ok.metadata.name).toBe(long);
    await expect(store.create(pool(`${long}c`))).rejects.toMatchObject({
      code: 'Invalid',
      message: expect.stringContaining(
        'metadata.name is 251 characters; the file store keeps names of up to 250',
      ),
    });
  });

  it('a corrupt revision file stops writes with an error naming it; removed, the store recounts', async () => {
    await setup();
    const before = await store.create(pool('second'));
    await writeFile(join(dir, 'revision'), 'garbage');
    await expect(store.create(pool('third'))).rejects.toMatchObject({
      code: 'Invalid',
      message: expect.stringContaining(`${join(dir, 'revision')}: not valid JSON`),
    });
    expect((await store.list('IPPool')).map((o) => o.metadata.name)).toEqual(['good', 'second']);
    await rm(join(dir, 'revision'));
    const third = await store.create(pool('third'));
    expect(Number(third.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));
  });
});

describe('file store: revisions', () => {
  const rv = (o: StoredObject) => Number(o.metadata.resourceVersion);
  const read = (dir: string, f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
  let dir: string;
  let store: FileDatastore;
  afterEach(async () => {
    await store?.close();
  });

  it('writes within a reservation leave the fsynced revision file alone; the last one is in revision.run', async () => {
    dir = await tempDir();
    store = await openFileDatastore(dir, { onWarning: () => {} });
    const first = await store.create(pool('p0'));
    const reserved = read(dir, 'revision');
    expect(reserved).toMatchObject({ reservation: true });
    expect(reserved.revision).toBeGreaterThanOrEqual(rv(first) + 100);
    const ino = statSync(join(dir, 'revision')).ino;
    const runIno = statSync(join(dir, 'revision.run')).ino;
    let last = first;
    for (let i = 1; i < 10; i++) {
      const next = await store.create(pool(`p${i}`));
      expect(rv(next)).toBe(rv(last) + 1);
      last = next;
    }
    // Not replaced (a rename would give it a new inode): no fsync of it for these writes.
    expect(statSync(join(dir, 'revision')).ino).toBe(ino);
    // revision.run is written in place, never renamed over (a rename has ext4 flush it).
    expect(statSync(join(dir, 'revision.run'))).toMatchObject({ ino: runIno, size: 128 });
    expect(read(dir, 'revision.run')).toEqual({
      revision: rv(last),
      boot: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
    });
  });

  it('after a reboot (revision.run of another boot, or lost) numbering goes on above the reservation: a deletion’s revision is never handed out again', async () => {
    dir = await tempDir();
    store = await openFileDatastore(dir, { onWarning: () => {} });
    await store.create(pool('a'));
    await store.create(pool('b'));
    await store.delete({ kind: 'IPPool', name: 'b' });
    const top = read(dir, 'revision').revision;
    // The deletion's revision reached only revision.run and the log, neither fsynced.
    const run = read(dir, 'revision.run');
    writeFileSync(join(dir, 'revision.run'), JSON.stringify({ ...run, boot: 'another-boot' }));
    const c = await store.create(pool('c'));
    expect(rv(c)).toBe(top + 1);
    expect(read(dir, 'revision').revision).toBeGreaterThan(top + 1);
    rmSync(join(dir, 'revision.run'));
    const top2 = read(dir, 'revision').revision;
    const d = await store.create(pool('d'));
    expect(rv(d)).toBe(top2 + 1);
  });

  it('a process of an earlier version, which writes {revision, log} one above the reservation, is followed', async () => {
    dir = await tempDir();
    store = await openFileDatastore(dir, { onWarning: () => {} });
    await store.create(pool('a'));
    const { revision: top, log } = read(dir, 'revision');
    // What an earlier version does: the revision file's number plus one, fsynced, no revision.run.
    writeFileSync(join(dir, 'revision'), JSON.stringify({ revision: top + 1, log }));
    const b = await store.create(pool('b'));
    expect(rv(b)).toBe(top + 2);
    expect(read(dir, 'revision')).toMatchObject({ reservation: true });
  });
});

describe('file store: open', () => {
  it('creates a missing folder and marks its format', async () => {
    const dir = join(await tempDir(), 'a', 'b');
    const store = await openFileDatastore(dir);
    expect(JSON.parse(readFileSync(join(dir, 'format'), 'utf8'))).toEqual({
      format: 'twill-file-datastore',
      version: 1,
    });
    await store.close();
  });

  it('refuses a path that is a file, naming it', async () => {
    const file = join(await tempDir(), 'not-a-folder');
    await writeFile(file, 'x');
    await expect(openFileDatastore(file)).rejects.toMatchObject({
      code: 'Invalid',
      message: `${file}: not a folder (the file datastore needs a folder: file:DIR)`,
    });
  });

  it('refuses a folder of another format', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'format'), '{"format":"something-else"}');
    await expect(openFileDatastore(dir)).rejects.toMatchObject({
      code: 'Invalid',
      message: expect.stringContaining(`${join(dir, 'format')}: not a Twill file datastore`),
    });
    await writeFile(join(dir, 'format'), '{"format":"twill-file-datastore","version":2}');
    await expect(openFileDatastore(dir)).rejects.toMatchObject({
      message: expect.stringContaining('format version 2'),
    });
  });

  it('refuses a folder it may not write, naming it', async () => {
    const dir = await tempDir();
    await chmod(dir, 0o755);
    const locked = join(dir, 'locked');
    await mkdir(locked, { mode: 0o555 });
    const expected = { code: 'Forbidden', message: expect.stringContaining(`${locked}: no permission`) };
    if (process.getuid?.() !== 0) {
      await expect(openFileDatastore(locked)).rejects.toMatchObject(expected);
      return;
    }
    // Root may write anywhere: open it from a process running as nobody.
    const worker = await bundleStandalone(join(import.meta.dirname, 'open-worker.ts'));
    const r = spawnSync(process.execPath, [worker, locked], { uid: 65534, gid: 65534, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject(expected);
  });
});

describe('file store: change log generations', () => {
  /** A writer and a reader on one new store; the reader watches, and has seen counter 'c'. */
  async function writerAndReader(opts: { pollMs: number; logRotateBytes: number }) {
    const dir = await tempDir();
    const writer = await openFileDatastore(dir, { ...opts, onWarning: () => {} });
    const reader = await openFileDatastore(dir, { ...opts, onWarning: () => {} });
    const p = await writer.create(counter('c'));
    const w = watchAll(reader, 'IPAMConfig');
    await eventually(() => expect(w.events.map((e) => e.type)).toEqual(['added', 'synced']));
    return { dir, writer, reader, p, w };
  }

  it('a watch in another instance follows every change across generations; old ones are removed', async () => {
    const { dir, writer, reader, w, ...first } = await writerAndReader({ pollMs: 50, logRotateBytes: 2_000 });
    let p = first.p;
    for (let i = 1; i <= 60; i++) {
      p = await writer.update({ ...p, spec: { count: i } });
      // Let the reader fall behind by a generation now and then, but not by two.
      if (i % 5 === 0) await eventually(() => expect(w.events).toHaveLength(2 + i));
    }
    await eventually(() => expect(w.events).toHaveLength(62));
    expect(w.events.slice(2).map((e) => (e.type === 'modified' ? countOf(e.object) : e.type))).toEqual(
      Array.from({ length: 60 }, (_, i) => i + 1),
    );
    const logs = (await readdir(dir)).filter((n) => n.startsWith('changes.'));
    expect(logs.length).toBeLessThanOrEqual(2);
    expect(logs.some((n) => n !== 'changes.0.log')).toBe(true);
    w.handle.stop();
    await writer.close();
    await reader.close();
  });

  it('fs.watch alone wakes a watch in another instance: on a store with no log yet, at every write, across generations', async () => {
    const dir = await tempDir();
    // The timer never fires within the test: only fs.watch can tell the reader.
    const opts = { pollMs: 600_000, logRotateBytes: 600, onWarning: () => {} };
    const writer = await openFileDatastore(dir, opts);
    const reader = await openFileDatastore(dir, opts);
    const w = watchAll(reader, 'IPAMConfig');
    await eventually(() => expect(w.events.map((e) => e.type)).toEqual(['synced']));
    let p = await writer.create(counter('c'));
    await eventually(() => expect(w.events).toHaveLength(2), 5_000);
    for (let i = 1; i <= 12; i++) {
      p = await writer.update({ ...p, spec: { count: i } });
      await eventually(() => expect(w.events).toHaveLength(2 + i), 5_000);
    }
    expect(countOf((w.events.at(-1) as { object: StoredObject }).object)).toBe(12);
    const logs = (await readdir(dir)).filter((n) => n.startsWith('changes.'));
    expect(logs.some((n) => n !== 'changes.0.log')).toBe(true);
    // What the reader watches is the log file it reads, not the folder.
    const r = reader as unknown as { watched?: { gen: number; file: boolean } };
    expect(r.watched?.file).toBe(true);
    w.handle.stop();
    await writer.close();
    await reader.close();
  });

  it('a watch reads the generation it is on to its end after the writer has removed it, and replays every change', async () => {
    const { dir, writer, reader, w, ...first } = await writerAndReader({
      pollMs: 600_000,
      logRotateBytes: 600,
    });
    let p = first.p;
    // One change read through the log: the reader's tailer now has generation 0 open.
    p = await writer.update({ ...p, spec: { count: 1 } });
    await eventually(() => expect(w.events).toHaveLength(3), 5_000);
    const r = reader as unknown as { fsWatcher?: { close(): void }; poke(): void };
    r.fsWatcher?.close();
    // The writer goes on to generation 2, which removes generation 0 (the reader still on it).
    let n = 1;
    while (!existsSync(join(dir, 'changes.2.log'))) p = await writer.update({ ...p, spec: { count: ++n } });
    expect(existsSync(join(dir, 'changes.0.log'))).toBe(false);
    r.poke();
    // Every change, one by one, rather than a rescan's difference (one event for the last).
    await eventually(() => expect(w.events).toHaveLength(2 + n), 5_000);
    expect(w.events.slice(2).map((e) => (e.type === 'modified' ? countOf(e.object) : e.type))).toEqual(
      Array.from({ length: n }, (_, i) => i + 1),
    );
    w.handle.stop();
    await writer.close();
    await reader.close();
  });

  it('a watch that falls more than a generation behind rescans and delivers only the difference', async () => {
    const dir = await tempDir();
    const opts = { pollMs: 60_000, logRotateBytes: 600, onWarning: () => {} };
    const writer = await openFileDatastore(dir, { onWarning: () => {}, logRotateBytes: 600 });
    const a = await writer.create(pool('a'));
    await writer.create(pool('b'));
    const reader = await openFileDatastore(dir, opts);
    const w = watchAll(reader, 'IPPool');
    await eventually(() => expect(w.events.map((e) => e.type)).toEqual(['added', 'added', 'synced']));
    // One the reader learns of from the log (it keeps that one as its log line).
    const d = await writer.create(pool('d'));
    await eventually(() => expect(w.events).toHaveLength(4), 5_000);
    // The reader's tailer is made to miss the writes: its fs.watch and timer are stopped.
    const r = reader as unknown as { fsWatcher?: { close(): void }; timer?: NodeJS.Timeout };
    r.fsWatcher?.close();
    clearInterval(r.timer);
    let cur = a;
    for (let i = 0; i < 20; i++)
      cur = await writer.update({ ...cur, spec: { cidr: '10.0.0.0/16', blockSize: 26 + (i % 3) } });
    await writer.delete({ kind: 'IPPool', name: 'b' });
    await writer.delete({ kind: 'IPPool', name: 'd' });
    await writer.create(pool('c'));
    expect(existsSync(join(dir, 'changes.0.log'))).toBe(false);
    (reader as unknown as { poke(): void }).poke();
    await eventually(() =>
      expect(
        w.events
          .slice(4)
          .map((e) => (e.type === 'synced' ? 'synced' : `${e.type} ${e.object.metadata.name}`))
          .sort(),
      ).toEqual(['added c', 'deleted b', 'deleted d', 'modified a']),
    );
    expect((w.events.find((e) => e.type === 'modified') as { object: StoredObject }).object).toEqual(cur);
    const deleted = (name: string) =>
      (
        w.events.find((e) => e.type === 'deleted' && e.object.metadata.name === name) as {
          object: StoredObject;
        }
      ).object;
    expect(deleted('d')).toEqual(d);
    w.handle.stop();
    await writer.close();
    await reader.close();
  });
});
