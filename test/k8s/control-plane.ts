/**
 * A real Kubernetes control plane for tests: etcd and kube-apiserver, built from pinned sources by
 * test/k8s/build.sh, started as plain processes on 127.0.0.1 with free ports and a fresh data
 * folder — the way Calico's CI runs its datastore tests (no kubelet, no containers).
 *
 * What `startControlPlane()` sets up, in its own folder:
 * - PKI made with openssl: a CA; the apiserver's serving certificate (SANs 127.0.0.1, localhost
 *   and the in-cluster names); an admin client certificate with O=system:masters (RBAC lets that
 *   group do anything); an ECDSA service-account signing key, so the TokenRequest API mints
 *   tokens without kube-controller-manager.
 * - etcd 3.6 on loopback with `--unsafe-no-fsync` (a test store; its durability is not under test).
 * - kube-apiserver with `--authorization-mode=RBAC`, `--advertise-address=127.0.0.1` and
 *   `--endpoint-reconciler-type=none` (a loopback advertise address is refused by the endpoint
 *   reconcilers), the ServiceAccount admission plugin off (no controller manager makes default
 *   ServiceAccounts), and the watch cache off for PodTemplates only, so a test can watch straight
 *   from etcd and see 410 Gone after it compacts etcd (the watch cache serves the rest, as in a
 *   real cluster).
 * - an admin kubeconfig; `kubeconfigFor(token)` writes one for a ServiceAccount token minted by
 *   `tokenFor()`, so a test can act as the agent does and be judged by the real RBAC authorizer.
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
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

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

export function binary(name: 'kube-apiserver' | 'kubectl' | 'etcd' | 'cnitool'): string {
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

export interface ControlPlaneInfo {
  dir: string;
  /** https://127.0.0.1:PORT */
  server: string;
  /** http://127.0.0.1:PORT (etcd's client URL; its v3 JSON gateway answers on it too) */
  etcd: string;
  caFile: string;
  adminCertFile: string;
  adminKeyFile: string;
  kubeconfig: string;
  pids: number[];
}

export interface ControlPlane extends ControlPlaneInfo {
  /** Ends the processes by PID and removes the folder. */
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makePki(dir: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '7',
    '-subj',
    '/CN=twill-test-ca',
  ]);
  const sign = (name: string, subj: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    openssl(dir, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '7',
      '-extfile',
      `${name}.ext`,
    ]);
  };
  sign(
    'apiserver',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,' +
      'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1\n' +
      'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
  );
  sign(
    'admin',
    '/O=system:masters/CN=twill-test-admin',
    'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n',
  );
  openssl(dir, ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key']);
  openssl(dir, ['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
}

function kubeconfigText(server: string, caFile: string, user: Record<string, string>): string {
  const userLines = Object.entries(user)
    .map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  return `apiVersion: v1
kind: Config
clusters:
- name: twill-test
  cluster:
    server: ${server}
    certificate-authority: ${JSON.stringify(caFile)}
users:
- name: user
  user:
${userLines}
contexts:
- name: test
  context:
    cluster: twill-test
    user: user
current-context: test
`;
}

/** Starts a detached process writing to LOG; it outlives this worker. */
function startDetached(cmd: string, args: string[], log: string): number {
  const fd = openSync(log, 'a');
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  return child.pid;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(
  what: string,
  log: string,
  pid: number,
  ok: () => Promise<boolean>,
  ms = 90_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!alive(pid)) throw new Error(`${what} exited at start:\n${tail(log)}`);
    if (await ok().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} not ready within ${ms / 1000} s:\n${tail(log)}`);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function stopPids(pids: number[]): Promise<void> {
  for (const pid of [...pids].reverse()) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await sleep(100);
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

/**
 * Starts etcd and kube-apiserver in a new folder under `parent`. `ownerPid`: a watchdog ends the
 * processes and removes the folder when that process is gone (default: this process).
 */
export async function startControlPlane(
  opts: { parent?: string; ownerPid?: number; apiserverArgs?: string[] } = {},
): Promise<ControlPlane> {
  const why = k8sMissing();
  if (why) throw new Error(why);
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'twill-k8s-'));
  const pids: number[] = [];
  try {
    makePki(dir);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcd = `http://127.0.0.1:${etcdPort}`;
    const etcdLog = join(dir, 'etcd.log');
    const etcdPid = startDetached(
      binary('etcd'),
      [
        '--name=twill-test',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcd}`,
        `--advertise-client-urls=${etcd}`,
        `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
        `--initial-cluster=twill-test=http://127.0.0.1:${peerPort}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      etcdLog,
    );
    pids.push(etcdPid);
    await waitFor('etcd', etcdLog, etcdPid, async () => (await httpGet(`${etcd}/health`)).status === 200);

    const server = `https://127.0.0.1:${apiPort}`;
    const apiLog = join(dir, 'kube-apiserver.log');
    const apiPid = startDetached(
      binary('kube-apiserver'),
      [
        `--etcd-servers=${etcd}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        '--advertise-address=127.0.0.1',
        '--endpoint-reconciler-type=none',
        `--cert-dir=${join(dir, 'certs')}`,
        `--tls-cert-file=${join(dir, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(dir, 'apiserver.key')}`,
        `--client-ca-file=${join(dir, 'ca.crt')}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--authorization-mode=RBAC',
        '--allow-privileged=true',
        '--disable-admission-plugins=ServiceAccount',
        '--enable-priority-and-fairness=false',
        '--watch-cache-sizes=podtemplates#0',
        '--profiling=false',
        '--v=1',
        ...(opts.apiserverArgs ?? []),
      ],
      apiLog,
    );
    pids.push(apiPid);
    const info: ControlPlaneInfo = {
      dir,
      server,
      etcd,
      caFile: join(dir, 'ca.crt'),
      adminCertFile: join(dir, 'admin.crt'),
      adminKeyFile: join(dir, 'admin.key'),
      kubeconfig: join(dir, 'admin.kubeconfig'),
      pids,
    };
    writeFileSync(
      info.kubeconfig,
      kubeconfigText(server, info.caFile, {
        'client-certificate': info.adminCertFile,
        'client-key': info.adminKeyFile,
      }),
    );
    await waitFor(
      'kube-apiserver',
      apiLog,
      apiPid,
      async () => (await kube(info, 'GET', '/readyz')).status === 200,
    );
    // The bootstrap controller makes the `default` namespace shortly after /readyz.
    await waitFor(
      'the default namespace',
      apiLog,
      apiPid,
      async () => (await kube(info, 'GET', '/api/v1/namespaces/default')).status === 200,
    );
    watchdog(opts.ownerPid ?? process.pid, pids, dir);
    return {
      ...info,
      stop: async () => {
        await stopPids(pids);
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await stopPids(pids);
    const keep = process.env.TWILL_K8S_KEEP ? ` (logs kept in ${dir})` : '';
    if (!keep) rmSync(dir, { recursive: true, force: true });
    throw new Error(`control plane did not start${keep}: ${(e as Error).message}`);
  }
}

/** A detached shell that ends the processes and removes the folder once the owner is gone. */
function watchdog(ownerPid: number, pids: number[], dir: string): void {
  const script = `while kill -0 ${ownerPid} 2>/dev/null; do sleep 2; done; kill ${pids.join(' ')} 2>/dev/null; sleep 3; kill -9 ${pids.join(' ')} 2>/dev/null; rm -rf '${dir}'`;
  spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' }).unref();
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

// ---------------------------------------------------------------------------------------------
// Talking to it

export interface KubeResponse {
  status: number;
  body: string;
  json: () => any;
}

export interface Credentials {
  /** A bearer token (a ServiceAccount's); the admin client certificate when absent. */
  token?: string;
}

function httpGet(url: string): Promise<KubeResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { timeout: 2000 }, (res) => collect(res, resolve));
    req.on('error', reject);
    req.end();
  });
}

function collect(res: import('node:http').IncomingMessage, resolve: (r: KubeResponse) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body) });
  });
}

function tlsOptions(cp: ControlPlaneInfo, creds: Credentials) {
  const base = { ca: readFileSync(cp.caFile) };
  return creds.token
    ? { ...base, headers: { authorization: `Bearer ${creds.token}` } }
    : { ...base, cert: readFileSync(cp.adminCertFile), key: readFileSync(cp.adminKeyFile), headers: {} };
}

/** One request to the API server, as admin or with a token. */
export function kube(
  cp: ControlPlaneInfo,
  method: string,
  path: string,
  body?: unknown,
  creds: Credentials = {},
  contentType = 'application/json',
): Promise<KubeResponse> {
  const tls = tlsOptions(cp, creds);
  const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${cp.server}${path}`,
      {
        method,
        ...tls,
        headers: {
          ...tls.headers,
          accept: 'application/json',
          ...(data ? { 'content-type': contentType, 'content-length': Buffer.byteLength(data) } : {}),
        },
        timeout: 30_000,
      },
      (res) => collect(res, resolve),
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    if (data) req.write(data);
    req.end();
  });
}

/** kube() that throws unless the status is 2xx, returning the parsed body. */
export async function kubeOk(
  cp: ControlPlaneInfo,
  method: string,
  path: string,
  body?: unknown,
): Promise<any> {
  const r = await kube(cp, method, path, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body ? r.json() : undefined;
}

export interface WatchStream {
  /** Every event received so far, in order: { type, object }. */
  events: Array<{ type: string; object: any }>;
  /** Resolves with the first event (already received or later) that matches. */
  next(
    match: (e: { type: string; object: any }) => boolean,
    ms?: number,
  ): Promise<{ type: string; object: any }>;
  /** HTTP status of the watch response. */
  status: Promise<number>;
  close(): void;
}

/** A raw watch (GET ...?watch=1...) read as newline-delimited JSON events. */
export function watchStream(cp: ControlPlaneInfo, path: string, creds: Credentials = {}): WatchStream {
  const tls = tlsOptions(cp, creds);
  const events: Array<{ type: string; object: any }> = [];
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

/** A token for ServiceAccount NS/NAME through the TokenRequest API (the SA is created if needed). */
export async function tokenFor(
  cp: ControlPlaneInfo,
  namespace: string,
  name: string,
  seconds = 3600,
): Promise<string> {
  const sa = await kube(cp, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: { name },
  });
  if (sa.status !== 201 && sa.status !== 409)
    throw new Error(`creating ServiceAccount ${namespace}/${name}: ${sa.status} ${sa.body}`);
  const tr = await kubeOk(cp, 'POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: { expirationSeconds: seconds },
  });
  return tr.status.token as string;
}

/** Writes a kubeconfig that authenticates with TOKEN; returns its path. */
export function kubeconfigFor(cp: ControlPlaneInfo, token: string): string {
  return kubeconfigWith(cp, { token });
}

/**
 * Writes a kubeconfig for this control plane; returns its path. `server` replaces the API
 * server's URL (a relay, an address nobody answers on); `token` replaces the admin certificate.
 */
export function kubeconfigWith(cp: ControlPlaneInfo, opts: { server?: string; token?: string }): string {
  const file = join(cp.dir, `kc-${randomBytes(4).toString('hex')}.kubeconfig`);
  const user: Record<string, string> = opts.token
    ? { token: opts.token }
    : { 'client-certificate': cp.adminCertFile, 'client-key': cp.adminKeyFile };
  writeFileSync(file, kubeconfigText(opts.server ?? cp.server, cp.caFile, user), { mode: 0o600 });
  return file;
}

/** Runs the pinned kubectl against the control plane (admin unless another kubeconfig is given). */
export function kubectl(
  cp: ControlPlaneInfo,
  args: string[],
  opts: { input?: string; kubeconfig?: string } = {},
): { status: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(
      binary('kubectl'),
      [`--kubeconfig=${opts.kubeconfig ?? cp.kubeconfig}`, ...args],
      {
        encoding: 'utf8',
        input: opts.input,
        stdio: ['pipe', 'pipe', 'pipe'],
        timeout: 60_000,
      },
    );
    return { status: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { status: e.status ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Applies deploy/crds and waits until every CRD is Established (idempotent: files share a plane). */
export function installCrds(cp: ControlPlaneInfo): void {
  const crds = join(top, 'deploy', 'crds');
  const applied = kubectl(cp, ['apply', '-f', crds]);
  if (applied.status !== 0) throw new Error(`kubectl apply -f deploy/crds: ${applied.stderr}`);
  const waited = kubectl(cp, ['wait', '--for=condition=Established', '--timeout=60s', '-f', crds]);
  if (waited.status !== 0) throw new Error(`CRDs not Established: ${waited.stderr}`);
}

/** etcd's v3 JSON gateway: the current revision, and compaction up to a revision. */
export async function etcdRevision(cp: ControlPlaneInfo): Promise<number> {
  const r = await etcdPost(cp, '/v3/kv/range', { key: Buffer.from('/').toString('base64'), limit: 1 });
  return Number(r.header.revision);
}

export async function etcdCompact(cp: ControlPlaneInfo, revision: number): Promise<void> {
  await etcdPost(cp, '/v3/kv/compaction', { revision: String(revision), physical: true });
}

function etcdPost(cp: ControlPlaneInfo, path: string, body: unknown): Promise<any> {
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
