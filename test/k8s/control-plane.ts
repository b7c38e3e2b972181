/**
 * The test bed's Kubernetes control plane: src/lab/control-plane.ts (etcd and kube-apiserver as
 * plain processes, its PKI, kubeconfigs, TokenRequest tokens, kubectl) run from the binaries
 * test/k8s/build.sh builds from pinned sources, plus what only tests need: a watch read event by
 * event, a namespace per test, etcd's revision and compaction.
 *
 * Sharing: test files call `sharedControlPlane()`. The first one to call starts the control plane
 * (a lock folder serialises workers), later ones read its state file; tests isolate themselves
 * with a namespace each (`testNamespace()`). The processes are started detached and outlive the
 * worker that started them; test/k8s/global-setup.ts ends them by PID when the run ends, and a
 * watchdog ends them if the test runner itself dies. Without kube-controller-manager, a deleted
 * namespace stays Terminating: tests never wait for one to go.
 *
 * Without the binaries (a laptop without Go) `k8sMissing()` says why and which script builds them;
 * test/k8s/harness.ts skips on that, or fails with CI=true. This module imports nothing from
 * vitest, so the global setup can use it.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import {
  applyCrds,
  type ControlPlane,
  type ControlPlaneInfo,
  type Credentials,
  collect,
  type K8sBinary,
  kubeconfigWith,
  kubeOk,
  startControlPlane as startCore,
  stopPids,
  tlsOptions,
} from '../../src/lab/control-plane.js';

export {
  alive,
  type ControlPlane,
  type ControlPlaneInfo,
  type Credentials,
  type KubeResponse,
  kube,
  kubeconfigWith,
  kubectl,
  kubeOk,
  stopPids,
  tokenFor,
} from '../../src/lab/control-plane.js';

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON; its fields are checked where read
export type Json = any;

/** The repository's top folder, also when this module runs compiled from dist/ (benchmarks). */
const top = (() => {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json')) && dir !== '/') dir = join(dir, '..');
  return dir;
})();
export const buildScript = join(top, 'test', 'k8s', 'build.sh');

/** Where build.sh puts the binaries (TWILL_K8S_BIN overrides). */
export function binDir(): string {
  if (process.env.TWILL_K8S_BIN) return process.env.TWILL_K8S_BIN;
  return execFileSync('bash', [buildScript, '--print'], { encoding: 'utf8' }).trim();
}

export function binary(name: K8sBinary): string {
  return join(binDir(), name);
}

/** Why the control plane cannot run here, or undefined. */
export function k8sMissing(): string | undefined {
  const missing = (['etcd', 'kube-apiserver', 'kubectl'] as const).filter((b) => !existsSync(binary(b)));
  if (missing.length)
    return `needs ${missing.join(', ')}: run test/k8s/build.sh (Go and the Go module proxy)`;
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return 'needs openssl on PATH';
  }
  return undefined;
}

/**
 * Starts a control plane of the pinned binaries in a new folder under `parent`. `ownerPid`: a
 * watchdog ends it when that process is gone (default: this process).
 */
export async function startControlPlane(
  opts: { parent?: string; ownerPid?: number; apiserverArgs?: string[] } = {},
): Promise<ControlPlane> {
  const why = k8sMissing();
  if (why) throw new Error(why);
  return startCore({ bin: binDir(), ownerPid: process.pid, ...opts });
}

function readFileSafe(f: string): string {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return '';
  }
}

/** For global-setup.ts: end what the run started. */
export async function stopShared(dir: string): Promise<void> {
  const pids = readFileSafe(join(dir, 'pids')).split(' ').map(Number).filter(Boolean);
  await stopPids(pids);
  rmSync(dir, { recursive: true, force: true });
}

export interface WatchStream {
  /** Every event received so far, in order: { type, object }. */
  events: Array<{ type: string; object: Json }>;
  /** Resolves with the first event (already received or later) that matches. */
  next(
    match: (e: { type: string; object: Json }) => boolean,
    ms?: number,
  ): Promise<{ type: string; object: Json }>;
  /** HTTP status of the watch response. */
  status: Promise<number>;
  close(): void;
}

/** A raw watch (GET ...?watch=1...) read as newline-delimited JSON events. */
export function watchStream(cp: ControlPlaneInfo, path: string, creds: Credentials = {}): WatchStream {
  const tls = tlsOptions(cp, creds);
  const events: Array<{ type: string; object: Json }> = [];
  const waiters: Array<() => void> = [];
  let setStatus!: (s: number) => void;
  const status = new Promise<number>((r) => {
    setStatus = r;
  });
  let buf = '';
  const req = httpsRequest(
    `${cp.server}${path}`,
    { method: 'GET', ...tls, headers: { ...tls.headers, accept: 'application/json' } },
    (res) => {
      setStatus(res.statusCode ?? 0);
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) {
            const parsed = JSON.parse(line);
            // A non-200 answer is a Status object, not an event: record it as one.
            events.push(parsed.type ? parsed : { type: 'STATUS', object: parsed });
            for (const w of waiters.splice(0)) w();
          }
          nl = buf.indexOf('\n');
        }
      });
    },
  );
  req.on('error', () => {});
  req.end();
  return {
    events,
    status,
    next: (match, ms = 30_000) =>
      new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < events.length; seen++) {
            const e = events[seen]!;
            if (match(e)) {
              clearTimeout(timer);
              return resolve(e);
            }
          }
          waiters.push(check);
        };
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `no matching watch event within ${ms} ms; got ${events.map((e) => e.type).join(', ')}`,
              ),
            ),
          ms,
        );
        check();
      }),
    close: () => req.destroy(),
  };
}

/** A namespace of its own for one test (never deleted: without a controller manager it would hang in Terminating). */
export async function testNamespace(cp: ControlPlaneInfo, prefix = 'test'): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await kubeOk(cp, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

/** Writes a kubeconfig that authenticates with TOKEN; returns its path. */
export function kubeconfigFor(cp: ControlPlaneInfo, token: string): string {
  return kubeconfigWith(cp, { token });
}

/** Applies deploy/crds and waits until every CRD is Established (idempotent: files share a plane). */
export function installCrds(cp: ControlPlaneInfo): void {
  applyCrds(cp, join(top, 'deploy', 'crds'));
}

/** etcd's v3 JSON gateway: the current revision, and compaction up to a revision. */
export async function etcdRevision(cp: ControlPlaneInfo): Promise<number> {
  const r = await etcdPost(cp, '/v3/kv/range', { key: Buffer.from('/').toString('base64'), limit: 1 });
  return Number(r.header.revision);
}

export async function etcdCompact(cp: ControlPlaneInfo, revision: number): Promise<void> {
  await etcdPost(cp, '/v3/kv/compaction', { revision: String(revision), physical: true });
}

function etcdPost(cp: ControlPlaneInfo, path: string, body: unknown): Promise<Json> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = httpRequest(
      `${cp.etcd}${path}`,
      { method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) =>
        collect(res, (r) =>
          r.status === 200 ? resolve(r.json()) : reject(new Error(`etcd ${path}: ${r.status} ${r.body}`)),
        ),
    );
    req.on('error', reject);
    req.end(data);
  });
}
