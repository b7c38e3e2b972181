/**
 * The end-to-end suite every topology in containerlab/ runs, through `twill lab` as a user runs
 * it (bin/twill.js, from dist/): the lab up from the file, pods through the real CNI plugin, then
 *   - pods on three different nodes reach each other: ICMP (test/cni/ping.py: no ping(8) here)
 *     and TCP (socat);
 *   - a NetworkPolicy applied to the lab's store is enforced across nodes: the allowed client's
 *     TCP gets through, another node's pod's does not;
 *   - the web pod's agent restarted (SIGTERM, then started again) while a client sends an echo
 *     every 10 ms: not one is lost;
 *   - a node removed (its daemons killed, its Node object deleted): its block leaves every
 *     other node's kernel within the BGP hold time;
 *   - a node added: its sessions come up, it learns the others' blocks, and its pod reaches a
 *     pod on another node;
 *   - `twill lab down` leaves no namespace behind.
 * Each lab gets its own name and state folder, so a lab a user has up is never touched.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sh, waitFor } from '../helpers/netns.js';
import { BIN } from '../helpers/twill.js';

const run = promisify(execFile);
const PING = join(import.meta.dirname, '../cni/ping.py');
const PROBE = join(import.meta.dirname, '../agent/probe.py');

export interface SuiteSpec {
  file: string;
  name: string;
  /** Twill nodes: the web pod's, the client's, and another pod's (default: the removed node). */
  web: string;
  client: string;
  other?: string;
  /** The node removed (a Twill node, or a BIRD or FRR member of the mesh). */
  removed: string;
  /** BIRD or FRR nodes whose kernels must route the Twill pods' blocks. */
  routers?: string[];
  /** For a removed router member: an address in the block it originates. */
  removedAddress?: string;
  /** The hold time of the removed node's sessions, seconds (default 90, the agents' own). */
  holdTime?: number;
  add: { node: string; link: string; like: string; exec: string[]; peerExec: string[] };
}

interface PodInfo {
  name: string;
  node: string;
  address: string;
  ns: string;
}

interface StatusJson {
  nodes: {
    name: string;
    role: string;
    running: boolean;
    address?: string;
    peers: { address: string; state: string }[];
  }[];
  pods: PodInfo[];
}

/** A pod (or node) to probe from or to: its namespace and address. */
export interface Endpoint {
  ns: string;
  address: string;
}

/** Whether `from` gets ICMP echo replies from `to` (test/cni/ping.py: no ping(8) here). */
export const icmp = (from: Endpoint, to: Endpoint): Promise<boolean> =>
  run('ip', ['netns', 'exec', from.ns, 'python3', PING, to.address, '2']).then(
    () => true,
    () => false,
  );

/** What a TCP connection from `from` to `to`:8080 reads, or undefined when it cannot connect. */
export async function tcp(from: Endpoint, to: Endpoint): Promise<string | undefined> {
  try {
    const { stdout } = await run(
      'ip',
      ['netns', 'exec', from.ns, 'socat', '-T2', '-', `TCP:${to.address}:8080,connect-timeout=2`],
      { timeout: 5000 },
    );
    return stdout.trim();
  } catch {
    return undefined;
  }
}

/** The policy both suites apply: the web pod takes TCP 8080 from the client pod alone. */
export const WEB_FROM_CLIENT = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-from-client, namespace: default }
spec:
  podSelector: { matchLabels: { app: web } }
  policyTypes: [Ingress]
  ingress:
    - from: [{ podSelector: { matchLabels: { app: client } } }]
      ports: [{ protocol: TCP, port: 8080 }]
`;

/**
 * Starts the web pod's TCP server (its process added to `servers`) and checks that the three
 * pods, on three nodes, reach each other over ICMP and that both others get the server's answer.
 */
export async function expectReach(
  web: Endpoint,
  client: Endpoint,
  other: Endpoint,
  servers: ChildProcess[],
): Promise<void> {
  servers.push(
    spawn(
      'ip',
      ['netns', 'exec', web.ns, 'socat', 'TCP-LISTEN:8080,fork,reuseaddr', 'SYSTEM:echo hello-from-web'],
      {
        stdio: 'ignore',
      },
    ),
  );
  await waitFor('client reaches web over ICMP', () => icmp(client, web), 30_000, 300);
  expect(await icmp(other, client)).toBe(true);
  expect(await icmp(web, other)).toBe(true);
  expect(await waitFor('client reaches web over TCP', () => tcp(client, web), 10_000, 200)).toBe(
    'hello-from-web',
  );
  expect(await tcp(other, web)).toBe('hello-from-web');
}

/** `twill lab ARGS --state-dir DIR` through bin/twill.js, as a user runs it; its stdout. */
export async function twillLab(dir: string, ...args: string[]): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, [BIN, 'lab', ...args, '--state-dir', dir], {
      timeout: 180_000,
    });
    return stdout;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `twill lab ${args.join(' ')} failed: ${err.stderr ?? ''}${err.stdout ?? ''}${err.message}`,
    );
  }
}

export function labSuite(spec: SuiteSpec): void {
  let dir: string;
  const servers: ChildProcess[] = [];
  const pods = new Map<string, PodInfo>();

  const lab = (...args: string[]) => twillLab(dir, ...args);
  const status = async () => JSON.parse(await lab('status', spec.name, '--json')) as StatusJson;
  const addPod = async (node: string, app: string): Promise<PodInfo> => {
    const out = await lab('pods', spec.name, node, '1', '--label', `app=${app}`);
    const [name, n, address, ns] = out.trim().split('\t');
    const p = { name: name!, node: n!, address: address!, ns: ns! };
    pods.set(app, p);
    return p;
  };
  /** Whether a node's kernel routes `address` through a gateway (a BGP route, not its default). */
  const routed = (ns: string, address: string) =>
    (JSON.parse(sh('ip', ['-n', ns, '-j', 'route', 'get', address])) as { gateway?: string }[]).some(
      (r) => r.gateway !== undefined,
    );
  const nsOf = (node: string) => `tw-${spec.name}-${node}`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'twill-lab-e2e-'));
    chmodSync(dir, 0o755);
    await lab('up', spec.file, '--name', spec.name, '--wait', '90');
  }, 150_000);

  afterAll(async () => {
    for (const s of servers) if (s.exitCode === null && s.pid !== undefined) process.kill(s.pid, 'SIGKILL');
    if (dir) {
      await lab('down', spec.name).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('comes up: every daemon running, every BGP session Established', async () => {
    const st = await status();
    // A reflector may list peers that join later: sessions with the lab's nodes are what count.
    const members = new Set(st.nodes.map((n) => n.address));
    for (const n of st.nodes.filter((x) => x.role !== 'plain')) {
      expect(n.running, n.name).toBe(true);
      expect(n.peers.length, n.name).toBeGreaterThan(0);
      expect(
        n.peers.filter((p) => members.has(p.address) && p.state !== 'Established'),
        n.name,
      ).toEqual([]);
    }
  });

  it('pods on different nodes reach each other (ICMP and TCP)', async () => {
    const web = await addPod(spec.web, 'web');
    const client = await addPod(spec.client, 'client');
    const other = await addPod(spec.other ?? spec.removed, 'other');
    await expectReach(web, client, other, servers);
    // A router's kernel routes each pod's block: to the node on its own segment, or on to the
    // next router.
    for (const r of spec.routers ?? [])
      for (const p of [web, client])
        await waitFor(
          `${r} routes ${p.name}'s block`,
          () =>
            (
              JSON.parse(sh('ip', ['-n', nsOf(r), '-j', 'route', 'get', p.address])) as { gateway?: string }[]
            ).some((x) => x.gateway !== undefined),
          20_000,
          200,
        );
  }, 60_000);

  it('a NetworkPolicy is enforced across nodes', async () => {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, WEB_FROM_CLIENT);
    await lab('apply', spec.name, policy);
    const web = pods.get('web')!;
    await waitFor(
      'the other node’s pod is refused',
      async () => (await tcp(pods.get('other')!, web)) === undefined,
      20_000,
      300,
    );
    expect(await tcp(pods.get('client')!, web)).toBe('hello-from-web');
    expect(await icmp(pods.get('client')!, web)).toBe(false);
  }, 60_000);

  it("the web pod's agent restarted during an echo every 10 ms: nothing lost", async () => {
    const client = pods.get('client')!;
    const other = pods.get('other')!;
    // Web itself refuses ICMP now (the policy): the probe goes to another pod on web's node,
    // through the routes and rules the restarted agent must leave in place.
    const target = await addPod(spec.web, 'probe-target');
    await waitFor('client reaches the probe target', () => icmp(client, target), 30_000, 300);
    const probe = run('ip', ['netns', 'exec', client.ns, 'python3', PROBE, target.address, '8', '10'], {
      timeout: 30_000,
    });
    await new Promise((r) => setTimeout(r, 1500));
    await lab('restart', spec.name, spec.web);
    const result = JSON.parse((await probe).stdout) as { sent: number; received: number; lost: number[] };
    expect(result.sent).toBeGreaterThan(300);
    expect(result.lost).toEqual([]);
    expect(await icmp(other, target)).toBe(true);
  }, 90_000);

  it("a removed node's block leaves every other node's kernel within the hold time", async () => {
    const st = await status();
    const gone = st.nodes.find((n) => n.name === spec.removed)!;
    // An address in the removed node's block: a pod of its own, or the block a router member
    // originates (spec.removedAddress).
    const address = spec.removedAddress ?? (await addPod(spec.removed, 'doomed')).address;
    const others = st.nodes.filter((n) => n.role === 'twill' && n.name !== spec.removed);
    for (const o of others)
      await waitFor(`${o.name} routes ${address}`, () => routed(nsOf(o.name), address), 30_000, 200);
    const hold = spec.holdTime ?? 90;
    const t0 = Date.now();
    await lab('remove', spec.name, spec.removed);
    await waitFor(
      `${gone.name}'s block gone from ${others.map((o) => o.name).join(', ')}`,
      () => others.every((o) => !routed(nsOf(o.name), address)),
      hold * 1000 + 5000,
      100,
    );
    const took = (Date.now() - t0) / 1000;
    expect(took).toBeLessThan(hold);
  }, 120_000);

  it('an added node converges: sessions up, the others’ blocks learned, its pod reaches theirs', async () => {
    const a = spec.add;
    await lab(
      'add',
      spec.name,
      a.node,
      '--link',
      a.link,
      '--like',
      a.like,
      ...a.exec.flatMap((e) => ['--exec', e]),
      ...a.peerExec.flatMap((e) => ['--peer-exec', e]),
    );
    const st = await waitFor(
      `${a.node} Established with every peer`,
      async () => {
        const s = await status();
        const n = s.nodes.find((x) => x.name === a.node);
        return n && n.peers.length > 0 && n.peers.every((p) => p.state === 'Established') && s;
      },
      60_000,
      300,
    );
    expect(st.nodes.some((n) => n.name === a.node)).toBe(true);
    await waitFor(
      `${a.node} routes ${spec.web}'s pods`,
      () => routed(nsOf(a.node), pods.get('web')!.address),
      30_000,
      200,
    );
    const newcomer = await addPod(a.node, 'newcomer');
    await waitFor('the new pod reaches the client', () => icmp(newcomer, pods.get('client')!), 30_000, 300);
  }, 120_000);

  it('down removes every namespace of the lab', async () => {
    await lab('down', spec.name);
    const left = sh('ip', ['netns', 'list'])
      .split('\n')
      .filter((l) => l.startsWith(`tw-${spec.name}-`));
    expect(left).toEqual([]);
  }, 60_000);
}
