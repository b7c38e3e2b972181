/**
 * Agents in network namespaces for tests and bench/agent: N node namespaces on one segment (a
 * bridge in a switch namespace, 10.77.0.<i>/24 on each node's eth1, a default route via
 * 10.77.0.254 as a host has), and `twill agent` (from
 * dist/, through bin/twill.js) started in a node with its sockets in a folder of the test's.
 * Processes are the Lab's (ended by PID in cleanup).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { getJson } from '../../src/api/http.js';
import type { SpeakerStatus } from '../../src/bgp/status.js';
import { type Lab, sh, waitFor } from '../helpers/netns.js';
import { BIN } from '../helpers/twill.js';

export interface Segment {
  sw: string;
  nodes: { name: string; ns: string; address: string }[];
}

export function nodeAddress(i: number): string {
  return `10.77.0.${i + 1}`;
}

/** `count` node namespaces (n1..), each with eth1 on one bridge. */
export function buildSegment(lab: Lab, count: number, prefix = 'n'): Segment {
  const sw = lab.ns('sw');
  sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
  const nodes: Segment['nodes'] = [];
  for (let i = 0; i < count; i++) nodes.push(addNode(lab, { sw, nodes }, `${prefix}${i + 1}`, i));
  return { sw, nodes };
}

export function addNode(lab: Lab, seg: Segment, name: string, i: number): Segment['nodes'][number] {
  const ns = lab.ns(name);
  const port = `p${ns.slice(-8)}`.replace(/[^a-zA-Z0-9]/g, '').slice(0, 12);
  sh('ip', ['link', 'add', 'eth1', 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', seg.sw]);
  sh('ip', ['-n', seg.sw, 'link', 'set', port, 'master', 'br0', 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', `${nodeAddress(i)}/24`, 'dev', 'eth1']);
  sh('ip', ['-n', ns, 'link', 'set', 'eth1', 'up']);
  // A host has a default route; proxy ARP answers pods for 169.254.1.1 only when some route
  // covers it. Nothing answers at .254: traffic meant for the world goes nowhere.
  sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', '10.77.0.254', 'dev', 'eth1']);
  return { name, ns, address: nodeAddress(i) };
}

export interface AgentRun {
  name: string;
  ns: string;
  dir: string;
  api: string;
  cni: string;
  proc: ChildProcess;
  /** Everything it logged so far. */
  log(): string;
  exited: Promise<number | null>;
}

export function startAgent(
  lab: Lab,
  node: { name: string; ns: string; address: string },
  opts: { dir: string; datastore: string; extraArgs?: string[]; env?: Record<string, string> },
): AgentRun {
  const dir = join(opts.dir, node.name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const api = join(dir, 'api.sock');
  const cni = join(dir, 'cni', 'cni.sock');
  const proc = lab.spawn(
    node.ns,
    process.execPath,
    [
      BIN,
      'agent',
      '--nodename',
      node.name,
      '--datastore',
      opts.datastore,
      '--ip',
      node.address,
      '--pool-cidr',
      '10.244.0.0/16',
      '--api',
      api,
      '--cni-socket',
      cni,
      '--log-level',
      'debug',
      ...(opts.extraArgs ?? []),
    ],
    { env: { ...process.env, TWILL_TEST_FAST_TIMERS: '1', ...opts.env } },
  );
  let text = '';
  proc.stdout?.on('data', (c: Buffer) => {
    text += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    text += c.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { name: node.name, ns: node.ns, dir, api, cni, proc, log: () => text, exited };
}

export type AgentStatus = SpeakerStatus & {
  node: string;
  ready: boolean;
  reasons: string[];
  peerTypes: Record<string, string>;
  routes: { desired: number; installed: number; waiting: number; conflicts: number };
};

export function agentStatus(a: AgentRun): Promise<AgentStatus> {
  return getJson({ kind: 'unix', path: a.api }, '/status', 2000) as Promise<AgentStatus>;
}

export async function waitEstablished(a: AgentRun, peers: string[], ms = 60_000): Promise<AgentStatus> {
  return waitFor(
    `${a.name} Established with ${peers.join(', ')}`,
    async () => {
      const st = await agentStatus(a);
      return peers.every((p) => st.peers.some((x) => x.address === p && x.state === 'Established')) && st;
    },
    ms,
    200,
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n--- ${a.name} log (tail) ---\n${a.log().slice(-4000)}`);
  });
}

/** Our routes (protocol 84) in a namespace, as `ip -j route` objects. */
export function ourRoutes(ns: string): { dst: string; gateway?: string; type?: string; dev?: string }[] {
  return JSON.parse(sh('ip', ['-n', ns, '-j', 'route', 'show', 'proto', '84'])) as {
    dst: string;
    gateway?: string;
    type?: string;
    dev?: string;
  }[];
}

/** Stop by SIGTERM and wait for the exit code. */
export async function stopAgent(a: AgentRun): Promise<number | null> {
  if (a.proc.exitCode !== null) return a.proc.exitCode;
  a.proc.kill('SIGTERM');
  return a.exited;
}
