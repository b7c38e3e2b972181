/**
 * A node with pods, built from network namespaces the way the CNI plugin will build it (the
 * Calico 169.254.1.1 scheme), and a probe agent in every namespace that serves TCP and UDP echo
 * on 80 and 81 and makes probe connections on request, so a whole matrix of real connections
 * runs in parallel in well under a second.
 *
 * Node namespace: forwarding on, the node's address on lo, a default route out of
 * an uplink veth (proxy ARP needs a route to 169.254.1.1 elsewhere), a /32 route per pod to its
 * host-side veth (`twl` + 11 hex of sha1("<ns>.<pod>"), no address, proxy_arp=1, forwarding=1,
 * proxy_delay=0). Pod namespace: eth0 with the pod's /32, a scope-link route to 169.254.1.1 and a
 * default route via it.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Lab, sh } from '../helpers/netns.js';

export function vethName(namespace: string, pod: string): string {
  return `twl${createHash('sha1').update(`${namespace}.${pod}`).digest('hex').slice(0, 11)}`;
}

const AGENT = String.raw`
import net from 'node:net';
import dgram from 'node:dgram';
import readline from 'node:readline';
const ports = [80, 81];
let pending = 0;
const ready = () => { if (--pending === 0) process.stdout.write('ready\n'); };
for (const port of ports) {
  pending += 2;
  const srv = net.createServer((s) => { s.on('data', (d) => s.write(d)); s.on('error', () => {}); });
  srv.listen(port, '0.0.0.0', ready);
  const u = dgram.createSocket('udp4');
  u.on('message', (m, r) => u.send(m, r.port, r.address));
  u.bind(port, '0.0.0.0', ready);
}
function tcp(host, port, ms) {
  return new Promise((res) => {
    const s = net.connect({ host, port });
    const done = (ok) => { clearTimeout(t); s.destroy(); res(ok); };
    const t = setTimeout(() => done(false), ms);
    s.on('connect', () => s.write('x'));
    s.on('data', () => done(true));
    s.on('error', () => done(false));
  });
}
function udp(host, port, ms) {
  return new Promise((res) => {
    const s = dgram.createSocket('udp4');
    const done = (ok) => { clearTimeout(t); try { s.close(); } catch {} res(ok); };
    const t = setTimeout(() => done(false), ms);
    s.on('message', () => done(true));
    s.on('error', () => done(false));
    s.send('x', port, host);
  });
}
readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const [id, proto, host, port, ms] = line.split(' ');
  const ok = await (proto === 'tcp' ? tcp : udp)(host, Number(port), Number(ms));
  process.stdout.write(id + ' ' + (ok ? 1 : 0) + '\n');
});
`;

let agentPath: string | undefined;
function agentFile(): string {
  if (!agentPath) {
    agentPath = join(tmpdir(), `twill-probe-agent-${process.pid}.mjs`);
    writeFileSync(agentPath, AGENT);
  }
  return agentPath;
}

/** Remove the agent script written for this test process (call in afterAll). */
export function removeAgentFile(): void {
  if (agentPath) rmSync(agentPath, { force: true });
  agentPath = undefined;
}

/** A probe agent running in one namespace. */
export class Agent {
  private next = 0;
  private readonly waiting = new Map<string, (ok: boolean) => void>();
  readonly ready: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    let onReady: () => void = () => {};
    let onFail: (e: Error) => void = () => {};
    this.ready = new Promise((res, rej) => {
      onReady = res;
      onFail = rej;
    });
    let stderr = '';
    proc.stderr?.on('data', (d) => {
      stderr += String(d);
    });
    proc.once('exit', (code) => onFail(new Error(`probe agent exited ${code}: ${stderr}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line === 'ready') return onReady();
      const [id, ok] = line.split(' ');
      const w = this.waiting.get(id!);
      this.waiting.delete(id!);
      w?.(ok === '1');
    });
  }

  probe(proto: 'tcp' | 'udp', host: string, port: number, ms: number): Promise<boolean> {
    const id = String(this.next++);
    return new Promise((res) => {
      this.waiting.set(id, res);
      this.proc.stdin!.write(`${id} ${proto} ${host} ${port} ${ms}\n`);
    });
  }
}

export function startAgent(lab: Lab, ns: string): Agent {
  return new Agent(lab.spawn(ns, process.execPath, [agentFile()], { stdio: ['pipe', 'pipe', 'pipe'] }));
}

export interface LabPod {
  namespace: string;
  name: string;
  ip: string;
  veth: string;
  netns: string;
}

/** The node namespace, with forwarding on and `nodeIp` on lo. */
export function buildNode(lab: Lab, nodeIp: string): string {
  const node = lab.ns('node');
  lab.exec(node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  // On lo: host-originated packets to a pod take it as their source (the veths have none).
  sh('ip', ['-n', node, 'addr', 'add', `${nodeIp}/32`, 'dev', 'lo']);
  // An uplink with the default route: proxy ARP answers for 169.254.1.1 only when the node has
  // a route to it through another interface, as a real node does.
  sh('ip', ['-n', node, '-batch', '-'], {
    input: [
      'link add up0 type veth peer name up1',
      'link set up0 up',
      'link set up1 up',
      'route add default dev up0',
    ].join('\n'),
  });
  return node;
}

/** A pod namespace wired to the node with the 169.254.1.1 scheme. */
export function addPod(lab: Lab, node: string, namespace: string, name: string, ip: string): LabPod {
  const netns = lab.ns(`${namespace}-${name}`.slice(0, 10));
  const veth = vethName(namespace, name);
  sh('ip', ['link', 'add', veth, 'netns', node, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  sh('ip', ['-n', netns, '-batch', '-'], {
    input: [
      `addr add ${ip}/32 dev eth0`,
      'link set eth0 up',
      'route add 169.254.1.1 dev eth0 scope link',
      'route add default via 169.254.1.1 dev eth0',
    ].join('\n'),
  });
  lab.exec(node, 'sysctl', [
    '-qw',
    `net.ipv4.conf.${veth}.proxy_arp=1`,
    `net.ipv4.conf.${veth}.forwarding=1`,
    `net.ipv4.neigh.${veth}.proxy_delay=0`,
  ]);
  sh('ip', ['-n', node, '-batch', '-'], {
    input: [`link set ${veth} up`, `route add ${ip}/32 dev ${veth} scope link`].join('\n'),
  });
  return { namespace, name, ip, veth, netns };
}
