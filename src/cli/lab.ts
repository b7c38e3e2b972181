/**
 * `twill lab`: a pod network on this machine from a containerlab topology, in network
 * namespaces (src/lab/lab.ts says what each step makes).
 *
 *   twill lab up FILE.clab.yml [--name LAB] [--pods N] [--wait SECONDS] [--log-level L]
 *                [--kubernetes [--k8s-bin DIR]]    Kubernetes mode: a control plane, the lab as kubelet
 *   twill lab pods LAB NODE COUNT [--label k=v]...
 *   twill lab status [LAB] [--json]
 *   twill lab apply LAB FILE.yaml
 *   twill lab ping LAB FROM TO [--count N]      pods (or nodes) by name
 *   twill lab restart LAB NODE [--kill]         the agent: SIGTERM (graceful) or SIGKILL, then again
 *   twill lab remove LAB NODE                   a node leaves: daemons killed, Node object deleted
 *   twill lab add LAB NODE --link PEER:IFACE --like TWILL_NODE [--exec LINE]... [--peer-exec LINE]...
 *                                               a Twill node joins, its eth1 linked to PEER's IFACE
 *   twill lab kubectl LAB ARGS...               Kubernetes mode: the pinned kubectl, as the lab's admin
 *   twill lab down [LAB]
 *   twill lab list
 *   twill lab kubelet LAB                       (Kubernetes mode: the lab's kubelet, started by up)
 *
 * `--state-dir DIR` [/run/twill-lab] with any of them. LAB may be left out when exactly one lab
 * is up. `up --pods N` makes N pods on every Twill node once the sessions are up, and then
 * prints the status and a ping from the first node's first pod to the last node's. Exit codes:
 * 0 done, 1 a step failed (the message says which; `down` still cleans up), 2 a usage error.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  DEFAULT_STATE_ROOT,
  LabError,
  type LabState,
  labAdd,
  labApply,
  labDown,
  labKubectl,
  labNames,
  labPods,
  labRemove,
  labRestart,
  labUp,
  mustState,
  type NodeReport,
  nodeReport,
  readState,
} from '../lab/lab.js';
import { UsageError } from './usage.js';

const TWILL_BIN = join(import.meta.dirname, '../../../bin/twill.js');

const USAGE = `usage: twill lab up FILE.clab.yml [--name LAB] [--pods N] [--wait SECONDS] [--kubernetes [--k8s-bin DIR]]
       twill lab pods LAB NODE COUNT [--label k=v]...
       twill lab status [LAB] [--json]
       twill lab apply LAB FILE.yaml
       twill lab ping LAB FROM TO [--count N]
       twill lab restart LAB NODE [--kill]
       twill lab remove LAB NODE
       twill lab add LAB NODE --link PEER:IFACE --like TWILL_NODE [--exec LINE]... [--peer-exec LINE]...
       twill lab kubectl LAB ARGS...
       twill lab down [LAB]
       twill lab list
(all take --state-dir DIR, default ${DEFAULT_STATE_ROOT})`;

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
}

function parse(args: string[], valued: string[], bare: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--')) {
      const [k, inline] = a.split('=', 2) as [string, string | undefined];
      if (bare.includes(k)) flags.set(k, ['']);
      else if (valued.includes(k)) {
        const v = inline ?? args[++i];
        if (v === undefined) throw new UsageError(`${k} needs a value\n${USAGE}`);
        flags.set(k, [...(flags.get(k) ?? []), v]);
      } else throw new UsageError(`unknown option ${k}\n${USAGE}`);
    } else positional.push(a);
  }
  return { positional, flags };
}

function count(v: string | undefined, what: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 1000)
    throw new UsageError(`${what}: ${JSON.stringify(v)} is not 0..1000`);
  return n;
}

function oneLab(root: string, given: string | undefined): string {
  if (given !== undefined) return given;
  const up = labNames();
  for (const l of listStates(root)) if (!up.includes(l)) up.push(l);
  if (up.length === 1) return up[0]!;
  throw new UsageError(up.length === 0 ? 'no lab is up' : `several labs are up (${up.join(', ')}): name one`);
}

function listStates(root: string): string[] {
  try {
    return execFileSync('ls', [root], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((n) => n && existsSync(`${root}/${n}/lab.json`));
  } catch {
    return [];
  }
}

async function reports(state: LabState): Promise<NodeReport[]> {
  return Promise.all(state.nodes.map((n) => nodeReport(n)));
}

function formatStatus(state: LabState, rs: NodeReport[]): string {
  const lines: string[] = [`lab ${state.name} (${state.file})`];
  if (state.kubernetes)
    lines.push(
      `Kubernetes: ${state.kubernetes.cp.server}, admin kubeconfig ${state.kubernetes.cp.kubeconfig}`,
    );
  lines.push('');
  const rows = [['NODE', 'ROLE', 'ADDRESS', 'DAEMON', 'SESSIONS', 'PODS']];
  for (const r of rs) {
    const est = r.peers.filter((p) => p.state === 'Established').length;
    rows.push([
      r.name,
      r.role,
      r.address ?? '-',
      r.role === 'plain'
        ? '-'
        : r.running
          ? r.ready === false
            ? 'running, not ready'
            : 'running'
          : 'NOT RUNNING',
      r.role === 'plain' ? '-' : `${est}/${r.peers.length} Established`,
      String(state.pods.filter((p) => p.node === r.name).length),
    ]);
  }
  lines.push(...table(rows), '');
  const peerRows = [['NODE', 'PEER', 'STATE', 'PREFIXES RECEIVED']];
  for (const r of rs)
    for (const p of r.peers)
      peerRows.push([r.name, p.address, p.state, p.received === undefined ? '-' : String(p.received)]);
  for (const r of rs) if (r.error) peerRows.push([r.name, '-', `unreachable: ${r.error}`, '-']);
  if (peerRows.length > 1) lines.push(...table(peerRows), '');
  if (state.pods.length > 0) {
    const podRows = [['POD', 'NODE', 'ADDRESS', 'NETNS']];
    for (const p of state.pods)
      podRows.push([p.namespace ? `${p.namespace}/${p.name}` : p.name, p.node, p.address, p.ns]);
    lines.push(...table(podRows), '');
  }
  return lines.join('\n');
}

function table(rows: string[][]): string[] {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) =>
    r
      .map((cell, c) => cell.padEnd(w[c]!))
      .join('  ')
      .trimEnd(),
  );
}

/** Wait until every BGP daemon runs and its sessions with the lab's nodes are Established. */
async function waitConverged(state: LabState, seconds: number): Promise<NodeReport[]> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const rs = await reports(state);
    // Sessions with the lab's own nodes (a reflector may also list peers yet to join).
    const members = new Set(rs.map((r) => r.address).filter((a) => a !== undefined));
    const bgp = rs.filter((r) => r.role !== 'plain');
    const done = bgp.every(
      (r) =>
        r.running &&
        r.peers.length > 0 &&
        r.peers.filter((p) => members.has(p.address)).every((p) => p.state === 'Established'),
    );
    if (done || Date.now() > deadline) return rs;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** How to call this program again: `twill` when on PATH, else `node bin/twill.js` from here. */
function invokedAs(): string {
  const script = process.argv[1] ?? '';
  const rel = relative(process.cwd(), script);
  return script.endsWith('/bin/twill.js') && !rel.startsWith('..') ? `node ${rel}` : 'twill';
}

function findTarget(state: LabState, name: string): { ns: string; address: string } {
  const pod = state.pods.find((p) => p.name === name || `${p.namespace}/${p.name}` === name);
  if (pod) return { ns: pod.ns, address: pod.address };
  const node = state.nodes.find((n) => n.name === name);
  if (node?.address) return { ns: node.ns, address: node.address };
  throw new LabError(`no pod or node ${name} in lab ${state.name}`);
}

const ECHO_SERVER =
  "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(7007,()=>process.stdout.write('ready\\n'));setTimeout(()=>process.exit(0),Number(process.argv[1]))";
const ECHO_CLIENT = `const [addr,n]=[process.argv[1],Number(process.argv[2])];const s=require('dgram').createSocket('udp4');let i=0,got=0;const sent=new Map();
s.on('message',(m)=>{const t=sent.get(m.toString());if(t!==undefined){got++;console.log('reply from '+addr+': seq='+m+' time='+(Number(process.hrtime.bigint()-t)/1e6).toFixed(2)+' ms');sent.delete(m.toString());}});
const tick=()=>{if(i>=n){setTimeout(()=>{console.log(got+'/'+n+' replies');process.exit(got===n?0:1)},1000);return;}const k=String(i++);sent.set(k,process.hrtime.bigint());s.send(k,7007,addr);setTimeout(tick,200)};tick();`;

async function ping(state: LabState, from: string, to: string, n: number): Promise<number> {
  const a = findTarget(state, from);
  const b = findTarget(state, to);
  const havePing = (() => {
    try {
      execFileSync('sh', ['-c', 'command -v ping'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  if (havePing) {
    process.stdout.write(`ping ${from} (${a.address}) -> ${to} (${b.address})\n`);
    try {
      process.stdout.write(
        execFileSync(
          'ip',
          ['netns', 'exec', a.ns, 'ping', '-c', String(n), '-i', '0.2', '-W', '1', b.address],
          {
            encoding: 'utf8',
          },
        ),
      );
      return 0;
    } catch (e) {
      process.stdout.write((e as { stdout?: string }).stdout ?? '');
      return 1;
    }
  }
  // No ping on this machine: a UDP echo between the two, both ends run by this Node.
  process.stdout.write(`UDP echo ${from} (${a.address}) -> ${to} (${b.address}):7007 (no ping here)\n`);
  const server = spawn(
    'ip',
    ['netns', 'exec', b.ns, process.execPath, '-e', ECHO_SERVER, String(n * 200 + 3000)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve) => {
    server.stdout!.once('data', () => resolve());
    server.once('exit', () => resolve());
  });
  try {
    process.stdout.write(
      execFileSync('ip', ['netns', 'exec', a.ns, process.execPath, '-e', ECHO_CLIENT, b.address, String(n)], {
        encoding: 'utf8',
      }),
    );
    return 0;
  } catch (e) {
    process.stdout.write((e as { stdout?: string }).stdout ?? '');
    return 1;
  } finally {
    if (server.exitCode === null && server.pid !== undefined) process.kill(server.pid, 'SIGTERM');
  }
}

export async function labCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  // `sudo npm start`: npm (7 and later) runs scripts as the owner of the checkout, not as root,
  // but leaves sudo's variables behind and sudo's credentials fresh: go back to root through it.
  if (process.getuid?.() !== 0 && process.env.SUDO_UID !== undefined && sub !== 'list') {
    const r = spawnSync('sudo', ['-n', '--preserve-env=PATH', process.execPath, TWILL_BIN, 'lab', ...args], {
      stdio: 'inherit',
    });
    if (r.status !== null && !r.error) return r.status;
  }
  if (sub === 'kubectl' || sub === 'kubelet') {
    let root = DEFAULT_STATE_ROOT;
    let args2 = rest;
    if (args2[0] === '--state-dir' && args2[1] !== undefined) {
      root = args2[1];
      args2 = args2.slice(2);
    }
    const [lab, ...kargs] = args2;
    if (lab === undefined) throw new UsageError(USAGE);
    try {
      if (sub === 'kubelet') {
        if (kargs[0] === '--state-dir' && kargs[1] !== undefined) root = kargs[1];
        const { runKubelet } = await import('../lab/kubelet.js');
        await runKubelet(root, lab);
        return 0;
      }
      const [cmd, ...argv] = labKubectl(root, lab, kargs);
      const r = spawnSync(cmd!, argv, { stdio: 'inherit' });
      if (r.error) throw new LabError(`${cmd}: ${r.error.message}`);
      return r.status ?? 1;
    } catch (e) {
      if (e instanceof LabError) {
        process.stderr.write(`twill lab ${sub}: ${e.message}\n`);
        return 1;
      }
      throw e;
    }
  }
  const p = parse(
    rest,
    [
      '--state-dir',
      '--name',
      '--pods',
      '--wait',
      '--log-level',
      '--label',
      '--count',
      '--link',
      '--like',
      '--exec',
      '--peer-exec',
      '--k8s-bin',
    ],
    ['--json', '--kill', '--kubernetes'],
  );
  const root = p.flags.get('--state-dir')?.[0] ?? DEFAULT_STATE_ROOT;
  try {
    switch (sub) {
      case 'up': {
        const file = p.positional[0];
        if (file === undefined || p.positional.length > 1) throw new UsageError(USAGE);
        const pods = count(p.flags.get('--pods')?.[0], '--pods', 0);
        const wait = count(p.flags.get('--wait')?.[0], '--wait', 60);
        let state: LabState;
        try {
          state = await labUp({
            file,
            stateRoot: root,
            ...(p.flags.has('--name') ? { name: p.flags.get('--name')![0]! } : {}),
            ...(p.flags.has('--log-level') ? { logLevel: p.flags.get('--log-level')![0]! } : {}),
            ...(p.flags.has('--kubernetes') ? { kubernetes: true } : {}),
            ...(p.flags.has('--k8s-bin') ? { k8sBin: p.flags.get('--k8s-bin')![0]! } : {}),
          });
        } catch (e) {
          const name = p.flags.get('--name')?.[0];
          const message = e instanceof Error ? e.message : String(e);
          if (/already up|needs root|--kubernetes needs/.test(message)) throw e;
          throw new LabError(`${message}\n\`twill lab down${name ? ` ${name}` : ''}\` removes what was made`);
        }
        process.stdout.write(
          `lab ${state.name}: ${state.nodes.length} nodes up; waiting for BGP sessions...\n`,
        );
        let rs = await waitConverged(state, wait);
        const twillNodes = state.nodes.filter((n) => n.role === 'twill');
        if (pods > 0) {
          for (const n of twillNodes) await labPods(root, state.name, n.name, pods);
          state = mustState(root, state.name);
          // The pods' blocks travel to the other nodes.
          await new Promise((r) => setTimeout(r, 2000));
          rs = await reports(state);
        }
        process.stdout.write(`\n${formatStatus(state, rs)}\n`);
        if (pods > 0 && twillNodes.length > 1) {
          const from = state.pods.find((x) => x.node === twillNodes[0]!.name)!;
          const to = state.pods.find((x) => x.node === twillNodes.at(-1)!.name)!;
          await ping(state, from.name, to.name, 3);
        }
        const me = invokedAs();
        process.stdout.write(
          `\nmore: sudo ${me} lab status ${state.name} | sudo ${me} lab pods ${state.name} NODE COUNT | sudo ${me} lab ping ${state.name} FROM TO\n` +
            (twillNodes[0]?.api ? `one node's agent: sudo ${me} status --api ${twillNodes[0].api}\n` : '') +
            (state.kubernetes ? `kubectl: sudo ${me} lab kubectl ${state.name} get pods -o wide\n` : '') +
            `tear down: sudo ${me} lab down ${state.name}   (or sudo npm stop)\n`,
        );
        return 0;
      }
      case 'pods': {
        const [lab, node, n] = p.positional;
        if (lab === undefined || node === undefined || n === undefined) throw new UsageError(USAGE);
        const labels: Record<string, string> = {};
        for (const l of p.flags.get('--label') ?? []) {
          const [k, v] = l.split('=', 2);
          if (!k || v === undefined) throw new UsageError(`--label ${l}: expected key=value`);
          labels[k] = v;
        }
        const made = await labPods(root, lab, node, count(n, 'COUNT', 1), { labels });
        for (const m of made) process.stdout.write(`${m.name}\t${m.node}\t${m.address}\t${m.ns}\n`);
        return 0;
      }
      case 'status': {
        const lab = oneLab(root, p.positional[0]);
        const state = readState(root, lab);
        if (!state)
          throw new LabError(
            `lab ${lab} has namespaces but no state (${root}/${lab}/lab.json): \`twill lab down ${lab}\``,
          );
        const rs = await reports(state);
        if (p.flags.has('--json'))
          process.stdout.write(
            `${JSON.stringify(
              {
                lab: state.name,
                ...(state.kubernetes
                  ? {
                      kubernetes: {
                        server: state.kubernetes.cp.server,
                        kubeconfig: state.kubernetes.cp.kubeconfig,
                      },
                    }
                  : {}),
                nodes: rs,
                pods: state.pods,
              },
              null,
              2,
            )}\n`,
          );
        else process.stdout.write(formatStatus(state, rs));
        return rs.every((r) => r.running) ? 0 : 1;
      }
      case 'apply': {
        const [lab, file] = p.positional;
        if (lab === undefined || file === undefined) throw new UsageError(USAGE);
        for (const d of await labApply(root, lab, file)) process.stdout.write(`${d} applied\n`);
        return 0;
      }
      case 'ping': {
        const [lab, from, to] = p.positional;
        if (lab === undefined || from === undefined || to === undefined) throw new UsageError(USAGE);
        return await ping(
          mustState(root, lab),
          from,
          to,
          count(p.flags.get('--count')?.[0], '--count', 3) || 1,
        );
      }
      case 'restart': {
        const [lab, node] = p.positional;
        if (lab === undefined || node === undefined) throw new UsageError(USAGE);
        await labRestart(root, lab, node, p.flags.has('--kill') ? 'SIGKILL' : 'SIGTERM');
        process.stdout.write(`${node}: agent restarted\n`);
        return 0;
      }
      case 'remove': {
        const [lab, node] = p.positional;
        if (lab === undefined || node === undefined) throw new UsageError(USAGE);
        await labRemove(root, lab, node);
        process.stdout.write(`${node} removed\n`);
        return 0;
      }
      case 'add': {
        const [lab, node] = p.positional;
        const link = p.flags.get('--link')?.[0];
        const like = p.flags.get('--like')?.[0];
        if (lab === undefined || node === undefined || !link || !like) throw new UsageError(USAGE);
        const [peer, peerInterface] = link.split(':');
        if (!peer || !peerInterface) throw new UsageError(`--link ${link}: expected NODE:INTERFACE`);
        const n = await labAdd(root, lab, {
          node,
          peer,
          peerInterface,
          like,
          exec: p.flags.get('--exec') ?? [],
          peerExec: p.flags.get('--peer-exec') ?? [],
        });
        process.stdout.write(`${node} added (${n.address ?? 'no address'}), agent started\n`);
        return 0;
      }
      case 'down': {
        const lab = oneLab(root, p.positional[0]);
        const r = await labDown(root, lab);
        process.stdout.write(
          `lab ${lab} down: ${r.processes} processes ended, ${r.namespaces} namespaces deleted\n`,
        );
        return 0;
      }
      case 'list': {
        const names = new Set([...labNames(), ...listStates(root)]);
        for (const n of names) process.stdout.write(`${n}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown lab command ${sub}\n${USAGE}`);
    }
  } catch (e) {
    if (e instanceof LabError) {
      process.stderr.write(`twill lab ${sub}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
