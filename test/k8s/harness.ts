/**
 * The vitest side of the Kubernetes test bed: `describeK8s` (skip with the reason on a laptop
 * without the binaries, fail under CI=true) and `sharedControlPlane()`, the one control plane a
 * test run shares (see control-plane.ts for what it is and global-setup.ts for its end).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, inject } from 'vitest';
import { inCi } from '../helpers/env.js';
import { alive, type ControlPlaneInfo, k8sMissing, startControlPlane } from './control-plane.js';

/** describe() that skips with the reason on a laptop without the binaries, and fails under CI=true. */
export function describeK8s(name: string, body: () => void): void {
  const why = k8sMissing();
  if (why === undefined) describe(name, body);
  else if (inCi)
    describe(name, () => {
      throw new Error(`CI=true but "${name}" cannot run: ${why}`);
    });
  else describe.skip(`${name} (skipped: ${why})`, body);
}

declare module 'vitest' {
  export interface ProvidedContext {
    twillK8sShared: { dir: string; ownerPid: number };
  }
}

/**
 * The control plane shared by every test file of this run, started by the first file that asks.
 * Outside a vitest run with test/k8s/global-setup.ts, each caller gets its own.
 */
export async function sharedControlPlane(): Promise<ControlPlaneInfo> {
  let shared: { dir: string; ownerPid: number } | undefined;
  try {
    shared = inject('twillK8sShared');
  } catch {}
  if (!shared) return startControlPlane();
  const stateFile = join(shared.dir, 'state.json');
  const lock = join(shared.dir, 'lock');
  for (;;) {
    if (existsSync(stateFile)) return JSON.parse(readFileSync(stateFile, 'utf8')) as ControlPlaneInfo;
    try {
      mkdirSync(lock);
    } catch {
      // Another worker is starting it; take the lock over only if that worker died.
      const holder = Number(readFileSafe(join(lock, 'pid')));
      if (holder && !alive(holder)) rmSync(lock, { recursive: true, force: true });
      await sleep(250);
      continue;
    }
    writeFileSync(join(lock, 'pid'), String(process.pid));
    try {
      if (existsSync(stateFile)) continue;
      const cp = await startControlPlane({ parent: shared.dir, ownerPid: shared.ownerPid });
      const { stop: _, ...info } = cp;
      writeFileSync(`${stateFile}.tmp`, JSON.stringify(info));
      writeFileSync(join(shared.dir, 'pids'), info.pids.join(' '));
      execFileSync('mv', [`${stateFile}.tmp`, stateFile]);
      return info;
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

function readFileSafe(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}
