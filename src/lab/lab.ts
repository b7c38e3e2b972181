/**
 * `twill lab`: a containerlab topology (src/lab/clab.ts reads the file) built out of network
 * namespaces on this host, with no container engine: a whole pod network on one machine.
 *
 *   up      every node a namespace `tw-<lab>-<node>`, every link a veth pair named as the file
 *           names its endpoints (MTU too), then each node's `exec` lines (`sh -c`, in order),
 *           then its daemon, chosen by image:
 *             twill image (…/twill:…)   `twill agent`, from the node's `cmd` (which must start
 *                                        `twill agent`): its flags kept, the datastore made the
 *                                        lab's shared file store, the API and CNI sockets put in
 *                                        the lab's folder, NODENAME the node's name;
 *             a BIRD image (…bird…)      `bird -f -c FILE` with the bound config;
 *             an FRR image (…frr…)       zebra and bgpd, with the bound frr.conf;
 *             anything else              no daemon (a switch: its `exec` lines make a bridge).
 *           A Twill node with no default route after its `exec` lines gets `default dev <its
 *           first link>`, as a container's management network would give it one: proxy ARP
 *           answers pods for 169.254.1.1 only when a route covers it.
 *           Objects in the files named by a node's `twill.dev/objects` label (YAML documents,
 *           relative to the topology file) go into the store first: BGPPeers, BGPConfiguration,
 *           and Node objects for non-Twill members of the mesh, as an operator would apply them.
 *   pods    pods on a node through the real CNI plugin (dist/cni/twill, run in the node's
 *           namespace as a runtime runs it), each in a namespace `tw-<lab>-<pod>`, with a Pod
 *           object in the store (labels for NetworkPolicy), as the kubelet would.
 *   status  nodes, their daemons, BGP sessions (the agents' API, `birdc`, `vtysh`) and pods.
 *   apply   YAML documents into the lab's store (NetworkPolicy, BGPPeer, ...).
 *   down    ends every process in the lab's namespaces (by PID, from `ip netns pids`), deletes
 *           the namespaces and the lab's folder. It works from the namespace names alone, so a
 *           lab whose `up` crashed, or whose state file is gone, still comes down.
 *
 * Kubernetes mode (`up --kubernetes`): instead of the file store, a control plane of etcd and
 * kube-apiserver on the host's loopback (control-plane.ts; the test bed's pinned binaries), the
 * CRDs and the agent's RBAC from deploy/, and agents on the kubernetes datastore with a token of
 * the DaemonSet's ServiceAccount (TokenRequest), each reaching the API server at its node's
 * 127.0.0.1:6443 through a relay (socat: the node's port to a unix socket, the socket to the API
 * server's port). The lab makes each Twill node's Node object (InternalIP), as a kubelet
 * registers, and starts `twill lab kubelet` (kubelet.ts), which wires Pods made with kubectl.
 * Pods, `apply` and `remove` then go through the API server; `down` ends the control plane too.
 *
 * State lives in /run/twill-lab/<lab>/ (--state-dir): lab.json (what was made, written before
 * each step so a crash leaves a record), the file store, each node's sockets and log.
 * Needs root (namespaces, veths); without it says so and what it needs.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DAEMON_ENV } from '../bgp/release-memory.js';
import { getJson } from '../api/http.js';
import { openFileDatastore } from '../datastore/file.js';
import { startTimeOf } from '../datastore/file-lock.js';
import type { KubernetesStore } from '../datastore/kubernetes.js';
import type { Datastore, StoredObject } from '../datastore/types.js';
import { bindHostPath, type ClabNode, type ClabTopology, readClab } from './clab.js';
import {
  applyCrds,
  type ControlPlaneInfo,
  kubeconfigWith,
  kubectl,
  startControlPlane,
  PKI_DAYS,
  tokenFor,
} from './control-plane.js';

export const DEFAULT_STATE_ROOT = '/run/twill-lab';
/** The checkout (or installed package) this module runs from: src/lab/ or dist/src/lab/. */
const TOP = (() => {
  let dir = import.meta.dirname;
  while (!existsSync(join(dir, 'package.json')) && dir !== '/') dir = join(dir, '..');
  return dir;
})();
const TWILL_BIN = join(TOP, 'bin', 'twill.js');
export const CNI_PLUGIN = join(TOP, 'dist', 'cni', 'twill');
const DEPLOY = join(TOP, 'deploy');
/** Where the agents reach the API server in Kubernetes mode: a relay on each node's loopback. */
const NODE_API_PORT = 6443;

export type Role = 'twill' | 'bird' | 'frr' | 'plain';

export interface LabNodeState {
  name: string;
  ns: string;
  role: Role;
  /** Daemon processes: pid and its start time (field 22 of /proc/PID/stat), to end only ours. */
  procs: { what: string; pid: number; start?: string }[];
  /** A Twill node's agent command line and environment additions, to start it again. */
  agent?: { argv: string[]; env: Record<string, string> };
  dir: string;
  api?: string;
  cni?: string;
  ctl?: string;
  address?: string;
}

export interface LabPodState {
  name: string;
  /** The pod's Kubernetes namespace (Kubernetes mode; `default` otherwise). */
  namespace?: string;
  uid?: string;
  node: string;
  ns: string;
  containerID: string;
  address: string;
  labels: Record<string, string>;
}

/** Kubernetes mode: the lab's control plane and the processes that play the kubelet's part. */
export interface LabKubernetes {
  /** The control plane's folder, binaries, URL on the host's loopback and admin kubeconfig. */
  cp: ControlPlaneInfo;
  /** The agents' kubeconfig: the DaemonSet's ServiceAccount token, the node-local relay. */
  agentKubeconfig: string;
  /** The host end of the relays: a unix socket carried to the API server's port. */
  relaySocket: string;
  /** etcd, kube-apiserver, the host relay and the lab's kubelet. */
  procs: { what: string; pid: number; start?: string }[];
}

export interface LabState {
  name: string;
  file: string;
  dir: string;
  /** The file store (absent in Kubernetes mode). */
  store: string;
  nodes: LabNodeState[];
  /** In Kubernetes mode, the pods the lab's kubelet has wired (its pods.json). */
  pods: LabPodState[];
  kubernetes?: LabKubernetes;
}

export class LabError extends Error {
  override name = 'LabError';
}

export function roleOf(node: ClabNode): Role {
  const image = node.image ?? '';
  if (/(^|\/)twill(:|$)/.test(image)) return 'twill';
  if (/bird/i.test(image)) return 'bird';
  if (/frr/i.test(image)) return 'frr';
  return 'plain';
}

/** A lab's namespaces carry its name: `tw-<lab>-<node>`. */
export const nsPrefix = (lab: string) => `tw-${lab}-`;

function sh(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      input,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new LabError(`${cmd} ${args.join(' ')}: ${(err.stderr ?? err.message).trim()}`);
  }
}

function tryCmd(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return undefined;
  }
}

const startTime = startTimeOf;

export function requireRoot(uid: number | undefined = process.getuid?.()): void {
  if (uid !== 0)
    throw new LabError(
      'twill lab needs root: it makes network namespaces and veth pairs and runs daemons in them (sudo twill lab ..., or sudo npm start)',
    );
}

export function labNames(): string[] {
  const out = tryCmd('ip', ['netns', 'list']) ?? '';
  const names = new Set<string>();
  for (const line of out.split('\n')) {
    const m = /^tw-([a-z0-9][a-z0-9_.]*)-/.exec(line.trim());
    if (m) names.add(m[1]!);
  }
  return [...names];
}

export function statePath(root: string, lab: string): string {
  return join(root, lab, 'lab.json');
}

export function readState(root: string, lab: string): LabState | undefined {
  const p = statePath(root, lab);
  if (!existsSync(p)) return undefined;
  let s: LabState;
  try {
    s = JSON.parse(readFileSync(p, 'utf8')) as LabState;
  } catch (e) {
    throw new LabError(`${p}: unreadable (${(e as Error).message}); \`twill lab down ${lab}\` still works`);
  }
  if (s.kubernetes) s.pods = readKubeletPods(s.dir);
  return s;
}

/** Kubernetes mode: the pods the lab's kubelet has wired, from its own file. */
export function readKubeletPods(dir: string): LabPodState[] {
  try {
    return JSON.parse(readFileSync(join(dir, 'pods.json'), 'utf8')) as LabPodState[];
  } catch {
    return [];
  }
}

export function writeJsonAtomic(p: string, value: unknown): void {
  writeFileSync(`${p}.tmp`, JSON.stringify(value, null, 1));
  renameSync(`${p}.tmp`, p);
}

function saveState(s: LabState): void {
  writeJsonAtomic(join(s.dir, 'lab.json'), s.kubernetes ? { ...s, pods: [] } : s);
}

const LAB_NAME = /^[a-z0-9][a-z0-9_.]{0,20}$/;

export interface UpOptions {
  file: string;
  name?: string;
  stateRoot: string;
  /** Log level of the agents. */
  logLevel?: string;
  /** Extra environment for the agents (tests shorten timers). */
  agentEnv?: Record<string, string>;
  /** Kubernetes mode: a control plane, agents on the kubernetes datastore, the lab as kubelet. */
  kubernetes?: boolean;
  /** The folder of etcd, kube-apiserver and kubectl (default: TWILL_K8S_BIN, the test bed's). */
  k8sBin?: string;
}

const K8S_BINARIES = ['etcd', 'kube-apiserver', 'kubectl'] as const;

/** The home of the user who ran sudo (the test bed builds into that user's cache). */
function sudoHome(): string | undefined {
  const user = process.env.SUDO_USER;
  if (!user) return undefined;
  return tryCmd('getent', ['passwd', user])?.trim().split(':')[5];
}

/** The folder of etcd, kube-apiserver and kubectl for Kubernetes mode, or a LabError saying how to get them. */
export function k8sBinDir(given?: string): string {
  const candidates: string[] = [];
  if (given !== undefined) candidates.push(given);
  else {
    if (process.env.TWILL_K8S_BIN) candidates.push(process.env.TWILL_K8S_BIN);
    const script = join(TOP, 'test', 'k8s', 'build.sh');
    if (existsSync(script))
      for (const home of [process.env.HOME, sudoHome()]) {
        if (!home) continue;
        try {
          const out = execFileSync('bash', [script, '--print'], {
            encoding: 'utf8',
            env: { ...process.env, HOME: home },
            stdio: ['ignore', 'pipe', 'ignore'],
          }).trim();
          if (out && !candidates.includes(out)) candidates.push(out);
        } catch {}
      }
  }
  for (const c of candidates) if (K8S_BINARIES.every((b) => existsSync(join(c, b)))) return c;
  throw new LabError(
    `--kubernetes needs ${K8S_BINARIES.join(', ')} (looked in ${candidates.join(', ') || 'nothing: no TWILL_K8S_BIN and no test/k8s/build.sh'}): ` +
      'build the pinned ones with test/k8s/build.sh (needs Go and the Go module proxy), or name their folder with --k8s-bin DIR or TWILL_K8S_BIN',
  );
}

function needTools(tools: string[], why: string): void {
  const missing = tools.filter((t) => tryCmd('sh', ['-c', `command -v ${t}`]) === undefined);
  if (missing.length) throw new LabError(`${why} needs ${missing.join(', ')} on PATH`);
}

/** A Datastore on the lab's store: its file store, or its API server as admin. */
async function openLabStore(state: LabState): Promise<Datastore> {
  if (!state.kubernetes) return openFileDatastore(state.store);
  const { KubernetesStore } = await import('../datastore/kubernetes.js');
  return KubernetesStore.open({ kubeconfig: state.kubernetes.cp.kubeconfig });
}

function spawnHost(argv: string[], log: string): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  return child;
}

function procOf(what: string, pid: number | undefined): { what: string; pid: number; start?: string } {
  if (pid === undefined) throw new LabError(`could not start ${what}`);
  const start = startTime(pid);
  return { what, pid, ...(start !== undefined ? { start } : {}) };
}

/**
 * Kubernetes mode, before the nodes' daemons: etcd and kube-apiserver on the host's loopback
 * (src/lab/control-plane.ts), the CRDs and the agent's RBAC from deploy/, a token of the
 * DaemonSet's ServiceAccount (TokenRequest) in the agents' kubeconfig, and the host end of the
 * relays that carry each node's 127.0.0.1:6443 to the API server.
 */
async function startLabKubernetes(state: LabState, bin: string): Promise<LabKubernetes> {
  const cp = await startControlPlane({ bin, dir: join(state.dir, 'k8s') });
  const { stop: _, ...info } = cp;
  const k: LabKubernetes = {
    cp: info,
    agentKubeconfig: '',
    relaySocket: join(info.dir, 'api.sock'),
    procs: info.pids.map((pid, i) => procOf(i === 0 ? 'etcd' : 'kube-apiserver', pid)),
  };
  state.kubernetes = k;
  saveState(state);
  try {
    applyCrds(info, join(DEPLOY, 'crds'));
  } catch (e) {
    throw new LabError((e as Error).message);
  }
  const rbac = kubectl(info, ['apply', '-f', join(DEPLOY, 'rbac.yaml')]);
  if (rbac.status !== 0) throw new LabError(`kubectl apply -f deploy/rbac.yaml: ${rbac.stderr.trim()}`);
  const apiPort = new URL(info.server).port;
  k.procs.push(
    procOf(
      'api relay',
      spawnHost(
        ['socat', `UNIX-LISTEN:${k.relaySocket},fork,mode=600`, `TCP:127.0.0.1:${apiPort}`],
        join(info.dir, 'relay.log'),
      ).pid,
    ),
  );
  const token = await tokenFor(info, 'kube-system', 'twill-node', PKI_DAYS * 86400);
  k.agentKubeconfig = kubeconfigWith(info, { server: `https://127.0.0.1:${NODE_API_PORT}`, token });
  saveState(state);
  return k;
}

/** Kubernetes mode: the node's Node object with its InternalIP, as its kubelet would make it. */
async function registerNode(store: Datastore, name: string, address: string | undefined): Promise<void> {
  if ((await store.get({ kind: 'Node', name })) === undefined)
    await store.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux' } },
    });
  const addresses = [{ type: 'Hostname', address: name }];
  if (address) addresses.unshift({ type: 'InternalIP', address });
  const n = (await store.get({ kind: 'Node', name }))!;
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  // Ready as a kubelet reports it (the lab's kubelet serves this node's pods), so kubectl shows it.
  const conditions = [
    {
      type: 'Ready',
      status: 'True',
      reason: 'KubeletReady',
      message: 'twill lab serves this node',
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    },
  ];
  await store.updateStatus({ ...n, status: { ...(n.status as object), addresses, conditions } });
}

/** Kubernetes mode: the node's 127.0.0.1:6443, carried to the API server over the host's socket. */
function startNodeRelay(n: LabNodeState, k: LabKubernetes): void {
  record(
    n,
    'api relay',
    spawnIn(
      n.ns,
      ['socat', `TCP-LISTEN:${NODE_API_PORT},bind=127.0.0.1,fork,reuseaddr`, `UNIX-CONNECT:${k.relaySocket}`],
      join(n.dir, 'relay.log'),
    ),
  );
}

/** Split a `cmd` line into words (double and single quotes group; no other shell syntax). */
export function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** The agent's flags from its node's cmd: lab-owned ones dropped (they are set by the lab). */
export function agentFlags(node: ClabNode): string[] {
  const w = words(node.cmd ?? '');
  if (w[0] !== 'twill' || w[1] !== 'agent')
    throw new LabError(`${node.name}: cmd must start with "twill agent" (got ${JSON.stringify(node.cmd)})`);
  const owned = new Set(['--datastore', '--api', '--cni-socket', '--nodename', '--kubeconfig']);
  const out: string[] = [];
  for (let i = 2; i < w.length; i++) {
    const f = w[i]!;
    const [flag] = f.split('=');
    if (owned.has(flag!)) {
      if (!f.includes('=')) i++;
      continue;
    }
    out.push(f);
  }
  return out;
}

/** Load the YAML documents of `file` into `store` (create, or update what exists). */
export async function applyObjects(store: Datastore, file: string): Promise<string[]> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LabError(`${file}: ${(e as Error).message}`);
  }
  const done: string[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new LabError(`${file}: ${doc.errors[0]!.message}`);
    const o = doc.toJS() as StoredObject | null;
    if (o === null) continue;
    if (typeof o !== 'object' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string')
      throw new LabError(`${file}: a document without kind and metadata.name`);
    const key = { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace };
    const old = await store.get(key);
    if (old === undefined) await store.create(o);
    else
      await store.update({
        ...o,
        metadata: { ...o.metadata, resourceVersion: old.metadata.resourceVersion, uid: old.metadata.uid },
      });
    done.push(`${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`);
  }
  return done;
}

function spawnIn(ns: string, argv: string[], log: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const fd = openSync(log, 'a');
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: env ?? process.env,
  });
  child.unref();
  return child;
}

function startAgentOf(n: LabNodeState): void {
  if (!n.agent) throw new LabError(`${n.name} has no agent to start`);
  record(
    n,
    'twill agent',
    spawnIn(n.ns, n.agent.argv, join(n.dir, 'log'), { ...process.env, ...n.agent.env }),
  );
}

function record(node: LabNodeState, what: string, child: ChildProcess): void {
  if (child.pid === undefined) throw new LabError(`${node.name}: could not start ${what}`);
  const start = startTime(child.pid);
  node.procs.push({ what, pid: child.pid, ...(start !== undefined ? { start } : {}) });
}

function bound(file: string, node: ClabNode, container: string): string {
  const b = node.binds.find((x) => x.container === container);
  if (!b) throw new LabError(`${node.name}: binds nothing at ${container}`);
  return bindHostPath(file, b);
}

/** The first IPv4 address on the node's first link, for a Twill node's Node object. */
function firstAddress(ns: string, dev: string): string | undefined {
  const out = tryCmd('ip', ['-n', ns, '-j', '-4', 'addr', 'show', 'dev', dev]);
  if (!out) return undefined;
  const j = JSON.parse(out) as { addr_info?: { local: string }[] }[];
  return j[0]?.addr_info?.[0]?.local;
}

export async function labUp(opts: UpOptions): Promise<LabState> {
  requireRoot();
  const file = resolve(opts.file);
  let topo: ClabTopology;
  try {
    topo = readClab(readFileSync(file, 'utf8'), file);
  } catch (e) {
    throw new LabError((e as Error).message);
  }
  const name = opts.name ?? topo.name;
  if (!LAB_NAME.test(name))
    throw new LabError(
      `lab name ${JSON.stringify(name)}: lower-case letters, digits, "_" and "." (up to 21), for namespace names (--name to choose one)`,
    );
  if (labNames().includes(name) || existsSync(statePath(opts.stateRoot, name)))
    throw new LabError(`lab ${name} is already up: \`twill lab down ${name}\` first`);
  for (const node of topo.nodes) if (roleOf(node) === 'twill') agentFlags(node);
  let k8sBin: string | undefined;
  if (opts.kubernetes) {
    k8sBin = k8sBinDir(opts.k8sBin);
    needTools(['socat', 'openssl'], '--kubernetes');
  }
  const dir = join(opts.stateRoot, name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const state: LabState = { name, file, dir, store: join(dir, 'store'), nodes: [], pods: [] };
  for (const node of topo.nodes)
    state.nodes.push({
      name: node.name,
      ns: `${nsPrefix(name)}${node.name}`,
      role: roleOf(node),
      procs: [],
      dir: join(dir, 'nodes', node.name),
    });
  saveState(state);
  const byName = new Map(state.nodes.map((n) => [n.name, n]));

  for (const n of state.nodes) {
    mkdirSync(n.dir, { recursive: true, mode: 0o755 });
    sh('ip', ['netns', 'add', n.ns]);
    sh('ip', ['-n', n.ns, 'link', 'set', 'lo', 'up']);
  }
  for (const [i, link] of topo.links.entries()) {
    const [a, b] = link.endpoints;
    const na = byName.get(a.node)!.ns;
    const nb = byName.get(b.node)!.ns;
    const ta = `twlab${process.pid % 1000}x${i}a`;
    const tb = `twlab${process.pid % 1000}x${i}b`;
    sh('ip', ['link', 'add', ta, 'netns', na, 'type', 'veth', 'peer', 'name', tb, 'netns', nb]);
    sh('ip', ['-n', na, 'link', 'set', ta, 'name', a.interface]);
    sh('ip', ['-n', nb, 'link', 'set', tb, 'name', b.interface]);
    for (const [ns, dev] of [
      [na, a.interface],
      [nb, b.interface],
    ] as const) {
      if (link.mtu !== null) sh('ip', ['-n', ns, 'link', 'set', dev, 'mtu', String(link.mtu)]);
      sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    }
  }
  for (const node of topo.nodes) {
    const n = byName.get(node.name)!;
    for (const line of node.exec) sh('ip', ['netns', 'exec', n.ns, 'sh', '-c', line]);
  }

  let k8s: LabKubernetes | undefined;
  if (k8sBin !== undefined) k8s = await startLabKubernetes(state, k8sBin);
  const store = await openLabStore(state);
  try {
    if (!k8s && (await store.get({ kind: 'Namespace', name: 'default' })) === undefined)
      await store.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    const objectFiles = new Set<string>();
    for (const node of topo.nodes) {
      const f = node.labels['twill.dev/objects'];
      if (f) for (const p of f.split(',')) objectFiles.add(resolve(dirname(file), p.trim()));
    }
    for (const f of objectFiles) await applyObjects(store, f);
    await startDaemons(state, topo, opts, store);
  } finally {
    await store.close();
  }
  if (k8s) {
    k8s.procs.push(
      procOf(
        'kubelet',
        spawnHost(
          [process.execPath, TWILL_BIN, 'lab', 'kubelet', state.name, '--state-dir', opts.stateRoot],
          join(state.dir, 'kubelet.log'),
        ).pid,
      ),
    );
  }
  saveState(state);
  return state;
}

async function startDaemons(
  state: LabState,
  topo: ClabTopology,
  opts: UpOptions,
  store: Datastore,
): Promise<void> {
  const file = state.file;
  const byName = new Map(state.nodes.map((n) => [n.name, n]));
  for (const node of topo.nodes) {
    const n = byName.get(node.name)!;
    const firstLink = topo.links.flatMap((l) => l.endpoints).find((e) => e.node === node.name)?.interface;
    if (firstLink) n.address = firstAddress(n.ns, firstLink);
    const log = join(n.dir, 'log');
    if (n.role === 'twill') {
      if (firstLink && !sh('ip', ['-n', n.ns, 'route', 'show', 'default']).trim())
        sh('ip', ['-n', n.ns, 'route', 'add', 'default', 'dev', firstLink]);
      n.api = join(n.dir, 'api.sock');
      n.cni = join(n.dir, 'cni', 'cni.sock');
      const nodename = node.env.NODENAME ?? node.name;
      const k = state.kubernetes;
      if (k) {
        await registerNode(store, nodename, n.address);
        startNodeRelay(n, k);
      }
      const argv = [
        process.execPath,
        TWILL_BIN,
        'agent',
        '--nodename',
        nodename,
        ...(k
          ? ['--datastore', 'kubernetes', '--kubeconfig', k.agentKubeconfig]
          : ['--datastore', `file:${state.store}`]),
        '--api',
        n.api,
        '--cni-socket',
        n.cni,
        ...(opts.logLevel ? ['--log-level', opts.logLevel] : []),
        ...agentFlags(node),
      ];
      // What the Twill image's ENV gives its agents (deploy/Dockerfile).
      const env = { ...DAEMON_ENV, ...node.env, ...opts.agentEnv };
      delete env.NODENAME;
      n.agent = { argv, env };
      saveState(state);
      startAgentOf(n);
    } else if (n.role === 'bird') {
      // The node's own flags (-R, say) kept; the config is the bound file, the control socket
      // the lab's, and -f keeps it in the foreground.
      const w = words(node.cmd ?? '');
      const c = w.indexOf('-c');
      if (w[0] !== 'bird' || c < 0 || w[c + 1] === undefined)
        throw new LabError(`${node.name}: cmd ${JSON.stringify(node.cmd)} is not bird [-R] -f -c FILE`);
      w[c + 1] = bound(file, node, w[c + 1]!);
      if (!w.includes('-f')) w.push('-f');
      n.ctl = join(n.dir, 'bird.ctl');
      saveState(state);
      record(n, 'bird', spawnIn(n.ns, [...w, '-s', n.ctl], log));
    } else if (n.role === 'frr') {
      // FRR runs as user frr: its folder must be open to it, and its config is copied there,
      // since the checkout the topology lives in may be closed to other users.
      const conf = join(n.dir, 'frr.conf');
      copyFileSync(bound(file, node, '/etc/frr/frr.conf'), conf);
      n.ctl = n.dir;
      const zserv = join(n.dir, 'zserv.api');
      execFileSync('chown', ['-R', 'frr:frr', n.dir]);
      saveState(state);
      record(
        n,
        'zebra',
        spawnIn(
          n.ns,
          [
            '/usr/lib/frr/zebra',
            ...['-f', '/dev/null', '-i', join(n.dir, 'zebra.pid'), '-z', zserv],
            ...['--vty_socket', n.dir, '-u', 'frr', '-g', 'frr', '-A', '127.0.0.1', '-P', '0'],
          ],
          join(n.dir, 'zebra.log'),
        ),
      );
      for (let i = 0; i < 100 && !existsSync(zserv); i++) await new Promise((r) => setTimeout(r, 50));
      record(
        n,
        'bgpd',
        spawnIn(
          n.ns,
          [
            '/usr/lib/frr/bgpd',
            ...['-f', conf, '-i', join(n.dir, 'bgpd.pid'), '-z', zserv],
            ...['--vty_socket', n.dir, '-u', 'frr', '-g', 'frr', '-A', '127.0.0.1', '-P', '0'],
          ],
          log,
        ),
      );
    }
  }
}

/**
 * Runs the CNI plugin in `node`'s namespace as a container runtime does (CNI_* environment, the
 * network configuration on stdin) for the pod whose namespace is `pod.ns`; its stdout, or a
 * LabError with the plugin's error object.
 */
export function cniExec(
  node: LabNodeState,
  command: 'ADD' | 'DEL',
  pod: { ns: string; containerID: string; namespace: string; name: string },
): string {
  if (!node.cni) throw new LabError(`${node.name} is not a Twill node: pods need its agent`);
  if (!existsSync(CNI_PLUGIN)) throw new LabError(`${CNI_PLUGIN} is missing: npm run build makes it`);
  const conf = {
    cniVersion: '1.0.0',
    name: 'k8s-pod-network',
    type: 'twill',
    mtu: 1500,
    agentSocket: node.cni,
  };
  try {
    return execFileSync('ip', ['netns', 'exec', node.ns, process.execPath, CNI_PLUGIN], {
      input: JSON.stringify(conf),
      encoding: 'utf8',
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        PATH: process.env.PATH,
        CNI_COMMAND: command,
        CNI_CONTAINERID: pod.containerID,
        CNI_NETNS: `/run/netns/${pod.ns}`,
        CNI_IFNAME: 'eth0',
        CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${pod.namespace};K8S_POD_NAME=${pod.name}`,
        CNI_PATH: '/opt/cni/bin:/usr/lib/cni',
      },
    });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new LabError((err.stdout || err.stderr || err.message).trim());
  }
}

/** Pods on `node` through the CNI plugin. */
export async function labPods(
  root: string,
  lab: string,
  nodeName: string,
  count: number,
  opts: { labels?: Record<string, string>; prefix?: string } = {},
): Promise<LabPodState[]> {
  requireRoot();
  const state = mustState(root, lab);
  const node = state.nodes.find((n) => n.name === nodeName);
  if (!node)
    throw new LabError(`no node ${nodeName} in lab ${lab} (${state.nodes.map((n) => n.name).join(', ')})`);
  if (node.role !== 'twill' || !node.cni)
    throw new LabError(`${nodeName} is not a Twill node: pods need its agent`);
  if (!existsSync(CNI_PLUGIN)) throw new LabError(`${CNI_PLUGIN} is missing: npm run build makes it`);
  if (state.kubernetes) return podsThroughApi(state, node, count, opts);
  const store = await openFileDatastore(state.store);
  const made: LabPodState[] = [];
  try {
    const prefix = opts.prefix ?? `${nodeName}-pod`;
    let k = 0;
    for (let i = 0; i < count; i++) {
      while (state.pods.some((p) => p.name === `${prefix}${k}`)) k++;
      const name = `${prefix}${k}`;
      if (!/^[a-z0-9][a-z0-9-]{0,40}$/.test(name))
        throw new LabError(`pod name ${name}: lower-case letters, digits and "-"`);
      const ns = `${nsPrefix(lab)}${name}`;
      const containerID = `lab${lab.replace(/\W/g, '')}${name.replace(/\W/g, '')}`;
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      let out: string;
      try {
        out = cniExec(node, 'ADD', { ns, containerID, namespace: 'default', name });
      } catch (e) {
        sh('ip', ['netns', 'del', ns]);
        throw new LabError(`ADD of ${name} on ${nodeName} failed: ${(e as Error).message}`);
      }
      const res = JSON.parse(out) as { ips: { address: string }[] };
      const address = res.ips[0]!.address.split('/')[0]!;
      const labels = { app: name, ...opts.labels };
      await store.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'default', name, labels },
        spec: { nodeName: node.name, containers: [{ name: 'main' }] },
        status: { podIP: address, podIPs: [{ ip: address }], phase: 'Running' },
      });
      const pod = { name, node: nodeName, ns, containerID, address, labels };
      state.pods.push(pod);
      saveState(state);
      made.push(pod);
    }
  } finally {
    await store.close();
  }
  return made;
}

/** The image a lab pod names: nothing runs it (a pod is a namespace), the API server wants one. */
export const LAB_POD_IMAGE = 'registry.k8s.io/pause:3.10';

/**
 * Kubernetes mode: pods made through the API server, bound to `node`, as `kubectl apply` makes
 * them; the lab's kubelet wires them through the CNI plugin and writes their status. Resolves
 * once it has.
 */
async function podsThroughApi(
  state: LabState,
  node: LabNodeState,
  count: number,
  opts: { labels?: Record<string, string>; prefix?: string },
): Promise<LabPodState[]> {
  const store = await openLabStore(state);
  const uids: string[] = [];
  try {
    const prefix = opts.prefix ?? `${node.name}-pod`;
    const taken = new Set((await store.list('Pod', { namespace: 'default' })).map((p) => p.metadata.name));
    let k = 0;
    for (let i = 0; i < count; i++) {
      while (taken.has(`${prefix}${k}`)) k++;
      const name = `${prefix}${k}`;
      taken.add(name);
      const made = await store.create({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { namespace: 'default', name, labels: { app: name, ...opts.labels } },
        spec: { nodeName: nodeNameOf(node), containers: [{ name: 'main', image: LAB_POD_IMAGE }] },
      });
      uids.push(made.metadata.uid!);
    }
  } finally {
    await store.close();
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    const wired = readKubeletPods(state.dir).filter((p) => p.uid !== undefined && uids.includes(p.uid));
    if (wired.length === uids.length) return wired;
    if (Date.now() > deadline)
      throw new LabError(
        `the lab's kubelet wired ${wired.length} of ${uids.length} pods within 60 s: see ${join(state.dir, 'kubelet.log')}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

export function mustState(root: string, lab: string): LabState {
  const s = readState(root, lab);
  if (!s) throw new LabError(`no lab ${lab} here (${statePath(root, lab)}): \`twill lab up FILE\` first`);
  return s;
}

export async function labApply(root: string, lab: string, file: string): Promise<string[]> {
  const state = mustState(root, lab);
  if (state.kubernetes) {
    const r = kubectl(state.kubernetes.cp, ['apply', '-f', file]);
    if (r.status !== 0) throw new LabError(`kubectl apply -f ${file}: ${r.stderr.trim()}`);
    return r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => l.replace(/ (created|configured|unchanged)$/, ''));
  }
  const store = await openFileDatastore(state.store);
  try {
    return await applyObjects(store, file);
  } finally {
    await store.close();
  }
}

/** Kubernetes mode: the pinned kubectl's command line as the lab's admin, for ARGS. */
export function labKubectl(root: string, lab: string, args: string[]): string[] {
  const state = mustState(root, lab);
  if (!state.kubernetes)
    throw new LabError(`lab ${lab} is not in Kubernetes mode (twill lab up --kubernetes)`);
  const cp = state.kubernetes.cp;
  return [join(cp.bin, 'kubectl'), `--kubeconfig=${cp.kubeconfig}`, ...args];
}

export interface NodeReport {
  name: string;
  role: Role;
  address?: string;
  running: boolean;
  ready?: boolean;
  peers: { address: string; state: string; received?: number }[];
  error?: string;
}

/**
 * Whether `p.pid` is still the process that started at `p.start` (any, without it) and has not
 * exited: a zombie, whose parent has not collected it yet, has.
 */
function alive(p: { pid: number; start?: string }): boolean {
  try {
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: state first, starttime 20th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && fields[0] !== 'X' && (p.start === undefined || fields[19] === p.start);
  } catch {
    return false;
  }
}

export async function nodeReport(n: LabNodeState): Promise<NodeReport> {
  const r: NodeReport = {
    name: n.name,
    role: n.role,
    ...(n.address ? { address: n.address } : {}),
    running: n.procs.length > 0 && n.procs.every(alive),
    peers: [],
  };
  if (n.role === 'plain') r.running = true;
  try {
    if (n.role === 'twill' && n.api) {
      const st = (await getJson({ kind: 'unix', path: n.api }, '/status', 2000)) as {
        ready?: boolean;
        peers: { address: string; state: string; prefixesReceived?: number }[];
      };
      r.ready = st.ready;
      r.peers = st.peers.map((p) => ({
        address: p.address,
        state: p.state,
        ...(p.prefixesReceived !== undefined ? { received: p.prefixesReceived } : {}),
      }));
    } else if (n.role === 'bird' && n.ctl) {
      const out = tryCmd('birdc', ['-s', n.ctl, 'show', 'protocols', 'all']) ?? '';
      for (const block of out.split(/\n(?=\S)/)) {
        const head = /^(\S+)\s+BGP\s+\S+\s+\S+\s+\S+\s+(\S+)/.exec(block);
        if (!head) continue;
        const addr = /Neighbor address:\s+(\S+)/.exec(block)?.[1] ?? head[1]!;
        const recv = /Routes:\s+(\d+) imported/.exec(block)?.[1];
        r.peers.push({ address: addr, state: head[2]!, ...(recv ? { received: Number(recv) } : {}) });
      }
    } else if (n.role === 'frr' && n.ctl) {
      const out = tryCmd('vtysh', ['--vty_socket', n.ctl, '-d', 'bgpd', '-c', 'show bgp summary json']);
      if (out) {
        const j = JSON.parse(out) as Record<
          string,
          { peers?: Record<string, { state: string; pfxRcd?: number }> }
        >;
        const seen = new Set<string>();
        for (const fam of Object.values(j))
          for (const [addr, p] of Object.entries(fam.peers ?? {})) {
            if (seen.has(addr)) continue;
            seen.add(addr);
            r.peers.push({
              address: addr,
              state: p.state,
              ...(p.pfxRcd !== undefined ? { received: p.pfxRcd } : {}),
            });
          }
      }
    }
  } catch (e) {
    r.error = (e as Error).message;
  }
  return r;
}

/** Ends every process in the lab's namespaces and deletes them and the lab's folder. */
export async function labDown(root: string, lab: string): Promise<{ namespaces: number; processes: number }> {
  requireRoot();
  if (!LAB_NAME.test(lab)) throw new LabError(`lab name ${JSON.stringify(lab)} is not one twill lab makes`);
  let state: LabState | undefined;
  try {
    state = readState(root, lab);
  } catch {
    state = undefined;
  }
  const prefix = nsPrefix(lab);
  const namespaces = new Set<string>(
    (tryCmd('ip', ['netns', 'list']) ?? '')
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0]!)
      .filter((n) => n?.startsWith(prefix)),
  );
  for (const n of state?.nodes ?? []) if (existsSync(`/run/netns/${n.ns}`)) namespaces.add(n.ns);
  for (const p of state?.pods ?? []) if (existsSync(`/run/netns/${p.ns}`)) namespaces.add(p.ns);
  const pids = new Set<number>();
  for (const n of state?.nodes ?? []) for (const p of n.procs) if (alive(p)) pids.add(p.pid);
  for (const p of state?.kubernetes?.procs ?? []) if (alive(p)) pids.add(p.pid);
  for (const ns of namespaces)
    for (const pid of (tryCmd('ip', ['netns', 'pids', ns]) ?? '').split(/\s+/).filter(Boolean))
      pids.add(Number(pid));
  const procs = [...pids].map((pid) => ({ pid, start: startTime(pid) }));
  const running = () => procs.filter(alive).map((p) => p.pid);
  const waitOut = async (ms: number) => {
    const deadline = Date.now() + ms;
    while (running().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
  await waitOut(5000);
  // What did not stop is killed, and waited for: a large process (kube-apiserver, etcd, an
  // agent) takes a while to exit after SIGKILL, and `down` returns once nothing of the lab runs.
  for (const pid of running()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  await waitOut(5000);
  for (const ns of namespaces) tryCmd('ip', ['netns', 'del', ns]);
  rmSync(join(root, lab), { recursive: true, force: true });
  return { namespaces: namespaces.size, processes: pids.size };
}

async function endProcs(
  n: LabNodeState,
  signal: NodeJS.Signals,
  which: (p: { what: string }) => boolean = () => true,
): Promise<void> {
  const live = n.procs.filter((p) => which(p) && alive(p));
  for (const p of live) {
    try {
      process.kill(p.pid, signal);
    } catch {}
  }
  const deadline = Date.now() + 20_000;
  while (live.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const p of live.filter(alive)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
  n.procs = n.procs.filter((p) => !which(p));
}

function nodeOf(state: LabState, name: string): LabNodeState {
  const n = state.nodes.find((x) => x.name === name);
  if (!n)
    throw new LabError(`no node ${name} in lab ${state.name} (${state.nodes.map((x) => x.name).join(', ')})`);
  return n;
}

/**
 * Restart a Twill node's agent: SIGTERM (the agent leaves its routes and rules and closes its
 * sessions as a graceful restart), wait for it to exit, start it again with the same command.
 * `signal` KILL makes it a crash instead.
 */
export async function labRestart(
  root: string,
  lab: string,
  node: string,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<void> {
  requireRoot();
  const state = mustState(root, lab);
  const n = nodeOf(state, node);
  if (n.role !== 'twill') throw new LabError(`${node} is not a Twill node`);
  await endProcs(n, signal, (p) => p.what === 'twill agent');
  startAgentOf(n);
  saveState(state);
}

/**
 * Remove a node from the cluster, as an operator deleting a machine does: its daemons end
 * (SIGKILL: no goodbye), its namespace and links go, and its Node object is deleted from the
 * store (\`kubectl delete node\`), so the others drop it from the mesh; BIRD nodes drop their
 * peer for it (what confd's re-rendered config does), FRR members shut that neighbor down. Its
 * pods go with it.
 */
export async function labRemove(root: string, lab: string, node: string): Promise<void> {
  requireRoot();
  const state = mustState(root, lab);
  const n = nodeOf(state, node);
  await endProcs(n, 'SIGKILL');
  // BIRD members configured by address (a reflector, a Calico-style node) drop their peer for
  // it, as calico-node's confd does when a Node goes: it renders the config without that peer.
  // Without this they would keep its routes as a graceful restart's stale routes.
  if (n.address)
    for (const b of state.nodes.filter((x) => x.role === 'bird' && x.ctl)) {
      const out = tryCmd('birdc', ['-s', b.ctl!, 'show', 'protocols', 'all']) ?? '';
      for (const block of out.split(/\n(?=\S)/)) {
        const proto = /^(\S+)\s+BGP\s/.exec(block)?.[1];
        if (
          proto &&
          new RegExp(`Neighbor address:\\s+${n.address.replace(/\./g, '\\.')}\\s`).test(`${block}\n`)
        )
          tryCmd('birdc', ['-s', b.ctl!, 'disable', proto]);
      }
    }
  // FRR members likewise: the neighbor is shut down (`neighbor ADDR shutdown`).
  if (n.address)
    for (const f of state.nodes.filter((x) => x.role === 'frr' && x.ctl)) {
      const vty = ['--vty_socket', f.ctl!, '-d', 'bgpd'];
      const sum = tryCmd('vtysh', [...vty, '-c', 'show bgp summary json']);
      const asn = sum ? (JSON.parse(sum) as { ipv4Unicast?: { as?: number } }).ipv4Unicast?.as : undefined;
      if (asn !== undefined)
        tryCmd('vtysh', [
          ...vty,
          ...['-c', 'configure terminal', '-c', `router bgp ${asn}`, '-c', `neighbor ${n.address} shutdown`],
        ]);
    }
  for (const p of state.pods.filter((x) => x.node === node)) tryCmd('ip', ['netns', 'del', p.ns]);
  tryCmd('ip', ['netns', 'del', n.ns]);
  state.pods = state.pods.filter((x) => x.node !== node);
  state.nodes = state.nodes.filter((x) => x !== n);
  saveState(state);
  const store = await openLabStore(state);
  try {
    const nodeName = n.agent ? nodeNameOf(n) : node;
    const obj = await store.get({ kind: 'Node', name: nodeName });
    if (obj) await store.delete({ kind: 'Node', name: obj.metadata.name });
    for (const p of await store.list('Pod'))
      if ((p.spec as { nodeName?: string } | undefined)?.nodeName === nodeName) {
        const key = { kind: 'Pod' as const, name: p.metadata.name, namespace: p.metadata.namespace };
        if (state.kubernetes) await forceDeletePod(store as KubernetesStore, key);
        else await store.delete(key);
      }
  } finally {
    await store.close();
  }
}

/** Kubernetes mode: a pod's last delete, grace period 0, as its kubelet makes once it is stopped. */
export async function forceDeletePod(
  store: KubernetesStore,
  key: { name: string; namespace?: string | undefined },
  uid?: string,
): Promise<void> {
  const r = await store.call('DELETE', `/api/v1/namespaces/${key.namespace ?? 'default'}/pods/${key.name}`, {
    apiVersion: 'v1',
    kind: 'DeleteOptions',
    gracePeriodSeconds: 0,
    ...(uid ? { preconditions: { uid } } : {}),
  });
  if (r.status >= 300 && r.status !== 404 && r.status !== 409)
    throw new LabError(`deleting pod ${key.namespace}/${key.name}: ${r.status} ${JSON.stringify(r.body)}`);
}

export function nodeNameOf(n: LabNodeState): string {
  const i = n.agent?.argv.indexOf('--nodename') ?? -1;
  return i >= 0 ? n.agent!.argv[i + 1]! : n.name;
}

export interface AddOptions {
  node: string;
  /** The node and interface the new node's eth1 connects to. */
  peer: string;
  peerInterface: string;
  /** Lines run in the new node, then in the peer (say, to put the new port in its bridge). */
  exec: string[];
  peerExec: string[];
  /** Another Twill node whose agent command the new one copies (its own name and sockets). */
  like: string;
}

/** Add a Twill node to a lab that is up, linked to one of its nodes, its agent like another's. */
export async function labAdd(root: string, lab: string, o: AddOptions): Promise<LabNodeState> {
  requireRoot();
  const state = mustState(root, lab);
  if (state.nodes.some((x) => x.name === o.node))
    throw new LabError(`lab ${lab} already has a node ${o.node}`);
  if (!/^[a-z0-9][a-z0-9-]{0,30}$/.test(o.node))
    throw new LabError(`node name ${o.node}: lower-case letters, digits and "-"`);
  const peer = nodeOf(state, o.peer);
  const like = nodeOf(state, o.like);
  if (!like.agent) throw new LabError(`${o.like} is not a Twill node`);
  const n: LabNodeState = {
    name: o.node,
    ns: `${nsPrefix(lab)}${o.node}`,
    role: 'twill',
    procs: [],
    dir: join(state.dir, 'nodes', o.node),
  };
  state.nodes.push(n);
  saveState(state);
  mkdirSync(n.dir, { recursive: true, mode: 0o755 });
  sh('ip', ['netns', 'add', n.ns]);
  sh('ip', ['-n', n.ns, 'link', 'set', 'lo', 'up']);
  const t = `twladd${process.pid % 10000}`;
  sh('ip', [
    'link',
    'add',
    `${t}a`,
    'netns',
    n.ns,
    'type',
    'veth',
    'peer',
    'name',
    `${t}b`,
    'netns',
    peer.ns,
  ]);
  sh('ip', ['-n', n.ns, 'link', 'set', `${t}a`, 'name', 'eth1', 'up']);
  sh('ip', ['-n', peer.ns, 'link', 'set', `${t}b`, 'name', o.peerInterface, 'up']);
  for (const line of o.exec) sh('ip', ['netns', 'exec', n.ns, 'sh', '-c', line]);
  for (const line of o.peerExec) sh('ip', ['netns', 'exec', peer.ns, 'sh', '-c', line]);
  n.address = firstAddress(n.ns, 'eth1');
  if (!sh('ip', ['-n', n.ns, 'route', 'show', 'default']).trim())
    sh('ip', ['-n', n.ns, 'route', 'add', 'default', 'dev', 'eth1']);
  n.api = join(n.dir, 'api.sock');
  n.cni = join(n.dir, 'cni', 'cni.sock');
  const argv = [...like.agent.argv];
  const set = (flag: string, value: string) => {
    const i = argv.indexOf(flag);
    if (i >= 0) argv[i + 1] = value;
    else argv.push(flag, value);
  };
  set('--nodename', o.node);
  set('--api', n.api);
  set('--cni-socket', n.cni);
  const ip = argv.indexOf('--ip');
  if (ip >= 0) argv.splice(ip, 2);
  n.agent = { argv, env: { ...like.agent.env } };
  if (state.kubernetes) {
    const store = await openLabStore(state);
    try {
      await registerNode(store, o.node, n.address);
    } finally {
      await store.close();
    }
    startNodeRelay(n, state.kubernetes);
  }
  startAgentOf(n);
  saveState(state);
  return n;
}
