/**
 * Test helpers for the CNI plugin: an agent endpoint (CniHandler + CniServer over the real
 * Allocator on the in-memory datastore) in the test's own process, and the plugin binary
 * (dist/cni/twill, the bundle `npm test`'s pretest builds) run as a runtime runs it:
 * CNI_* environment, the configuration on stdin, inside the test's "node" namespace
 * (`ip netns exec NODE`), so the plugin's host side is that namespace and never the machine's.
 *
 * Processes are spawned asynchronously: the agent answers from this process's event loop.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AttachmentEvent, CniHandler, CniServer } from '../../src/cni/server.js';
import { MemoryDatastore } from '../../src/datastore/memory.js';
import { TWILL_API_VERSION } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';

export const ROOT = join(import.meta.dirname, '../..');
export const PLUGIN = join(ROOT, 'dist/cni/twill');

export interface Agent {
  store: MemoryDatastore;
  allocator: Allocator;
  handler: CniHandler;
  server: CniServer;
  socket: string;
  dir: string;
  stop(): Promise<void>;
}

/** An agent endpoint for node `node` with an IPv4 pool (and an IPv6 one), listening in a temp folder. */
export async function startAgent(
  opts: {
    node?: string;
    pool4?: string;
    pool6?: string;
    blockSize4?: number;
    ready?: boolean;
    onAssigned?: (e: AttachmentEvent) => void;
    wireHost?: (e: AttachmentEvent) => Promise<void>;
  } = {},
): Promise<Agent> {
  const node = opts.node ?? 'node-a';
  const store = new MemoryDatastore();
  await store.create({ apiVersion: 'v1', kind: 'Node', metadata: { name: node }, spec: {} });
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'pool4' },
    spec: { cidr: opts.pool4 ?? '10.77.0.0/24', blockSize: opts.blockSize4 ?? 28 },
  });
  await store.create({
    apiVersion: TWILL_API_VERSION,
    kind: 'IPPool',
    metadata: { name: 'pool6' },
    spec: { cidr: opts.pool6 ?? 'fd00:77::/120', blockSize: 122 },
  });
  const allocator = new Allocator({ store, clock: { now: () => Date.now() } });
  const handler = new CniHandler({
    allocator,
    node,
    ready: opts.ready ?? true,
    ...(opts.onAssigned ? { onAssigned: opts.onAssigned } : {}),
    ...(opts.wireHost ? { wireHost: opts.wireHost } : {}),
  });
  const dir = mkdtempSync(join(tmpdir(), 'twill-cni-'));
  const socket = join(dir, 'run', 'cni.sock');
  const server = new CniServer({ handler, path: socket });
  await server.listen();
  return {
    store,
    allocator,
    handler,
    server,
    socket,
    dir,
    async stop() {
      await server.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PluginRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed, when it is JSON. */
  json: unknown;
  ms: number;
}

/** Run a program with env and stdin, asynchronously. */
export function runProcess(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  stdin: string,
): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...env },
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.once('error', reject);
    child.once('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      let json: unknown;
      try {
        json = stdout.trim() === '' ? undefined : JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({
        code: code ?? -1,
        stdout,
        stderr: Buffer.concat(err).toString('utf8'),
        json,
        ms: performance.now() - t0,
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(stdin);
  });
}

export interface Call {
  command: string;
  containerID?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  conf: Record<string, unknown>;
}

/** The plugin run inside namespace `node` (its "host"). */
export function plugin(node: string, call: Call): Promise<PluginRun> {
  const env: Record<string, string> = { CNI_COMMAND: call.command, CNI_PATH: '/usr/lib/cni' };
  if (call.containerID !== undefined) env.CNI_CONTAINERID = call.containerID;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args !== undefined) env.CNI_ARGS = call.args;
  return runProcess('ip', ['netns', 'exec', node, process.execPath, PLUGIN], env, JSON.stringify(call.conf));
}

export function k8sArgs(namespace: string, pod: string): string {
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${pod};K8S_POD_INFRA_CONTAINER_ID=x`;
}

const PING = join(import.meta.dirname, 'ping.py');

/** One ICMP (or ICMPv6) echo from inside namespace `ns` to `address`; throws when none comes back. */
export function ping(ns: string, address: string, timeoutS = 2): void {
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'python3', PING, address, String(timeoutS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    throw new Error(
      `ping ${address} from ${ns} failed: ${(e as { stderr?: Buffer }).stderr?.toString() ?? e}`,
    );
  }
}
