/**
 * A Kubernetes control plane as plain processes: etcd and kube-apiserver on 127.0.0.1 with free
 * ports and a fresh folder, no kubelet, no controller manager, no containers (the way Calico's CI
 * runs its datastore tests). The test bed (test/k8s/control-plane.ts) and `twill lab up
 * --kubernetes` both start theirs here; the binaries come from a folder the caller names (the
 * test bed's pinned builds, test/k8s/build.sh).
 *
 * What `startControlPlane()` sets up, in its own folder:
 * - PKI made with openssl, valid for `PKI_DAYS` (a lab may stay up for months): a CA; the
 *   apiserver's serving certificate (SANs 127.0.0.1, localhost and the in-cluster names); an admin
 *   client certificate with O=system:masters (RBAC lets that group do anything); an ECDSA
 *   service-account signing key, so the TokenRequest API mints tokens without
 *   kube-controller-manager.
 * - etcd 3.6 on loopback with `--unsafe-no-fsync` (a test store; its durability is not at stake).
 * - kube-apiserver with `--authorization-mode=RBAC`, `--advertise-address=127.0.0.1` and
 *   `--endpoint-reconciler-type=none` (a loopback advertise address is refused by the endpoint
 *   reconcilers), the ServiceAccount admission plugin off (no controller manager makes default
 *   ServiceAccounts), and the watch cache off for PodTemplates only, so a test can watch straight
 *   from etcd and see 410 Gone after it compacts etcd (the watch cache serves the rest, as in a
 *   real cluster).
 * - an admin kubeconfig; `kubeconfigWith()` writes one for a ServiceAccount token minted by
 *   `tokenFor()` (TokenRequest), or for another server address (a relay).
 *
 * The processes are detached and outlive their starter; `stop()` or `stopPids()` ends them by PID.
 * With `ownerPid`, a watchdog shell ends them when that process is gone.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON; its fields are checked where read
type Json = any;

/** How long the certificates last, in days; a lab's agents get a token for as long (lab.ts). */
export const PKI_DAYS = 365;

export type K8sBinary = 'kube-apiserver' | 'kubectl' | 'etcd' | 'cnitool';

export interface ControlPlaneInfo {
  dir: string;
  /** The folder of the binaries (kubectl is run from it too). */
  bin: string;
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
    String(PKI_DAYS),
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
      String(PKI_DAYS),
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
 * Starts etcd and kube-apiserver from the binaries in `bin`, in a new folder under `parent`
 * (or in `dir`, made if missing). `ownerPid`: a watchdog ends the processes and removes the
 * folder when that process is gone (none when absent).
 */
export async function startControlPlane(opts: {
  bin: string;
  parent?: string;
  dir?: string;
  ownerPid?: number;
  apiserverArgs?: string[];
}): Promise<ControlPlane> {
  const binary = (name: K8sBinary) => join(opts.bin, name);
  let dir: string;
  if (opts.dir !== undefined) {
    mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    dir = opts.dir;
  } else dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'twill-k8s-'));
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
      bin: opts.bin,
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
    if (opts.ownerPid !== undefined) watchdog(opts.ownerPid, pids, dir);
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

export interface KubeResponse {
  status: number;
  body: string;
  json: () => Json;
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

export function collect(res: import('node:http').IncomingMessage, resolve: (r: KubeResponse) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body) });
  });
}

export function tlsOptions(cp: ControlPlaneInfo, creds: Credentials) {
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
): Promise<Json> {
  const r = await kube(cp, method, path, body);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${path}: ${r.status} ${r.body}`);
  return r.body ? r.json() : undefined;
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
      join(cp.bin, 'kubectl'),
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

/** Applies the CRDs in `dir` and waits until every one is Established (idempotent). */
export function applyCrds(cp: ControlPlaneInfo, dir: string): void {
  const applied = kubectl(cp, ['apply', '-f', dir]);
  if (applied.status !== 0) throw new Error(`kubectl apply -f ${dir}: ${applied.stderr}`);
  const waited = kubectl(cp, ['wait', '--for=condition=Established', '--timeout=60s', '-f', dir]);
  if (waited.status !== 0) throw new Error(`CRDs not Established: ${waited.stderr}`);
}
