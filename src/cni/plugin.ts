/**
 * The Twill CNI plugin: the program a container runtime runs (as /opt/cni/bin/twill: main.ts
 * and what it imports, bundled into dist/cni/twill) for every pod it starts and stops. spec.ts
 * reads and writes the CNI protocol, wiring.ts says what to make in the kernel; this module does
 * the I/O: the agent's socket (protocol.ts), the `ip` processes, /sys and /proc. Configuration and results on
 * stdin/stdout, errors as the spec's error object on stdout (where libcni reads them), exit
 * status 0 or 1.
 *
 * Per command:
 * - ADD: the `assign` request goes to the agent first (it owns the node's IPAM), and `ip` starts
 *   while the agent works. A new IPv4 attachment takes the direct path: one `ip -batch -` in
 *   CNI_NETNS (`ip -n` for a named namespace, else nsenter) makes the veth from the pod's side,
 *   its host end sent to this process's namespace (the host's), and prints a `link show` line as
 *   a marker; once the addresses are in it configures the pod side, while the agent does the
 *   host side over its netlink socket (`wire`: alias, up, route, neighbour entry, sysctls;
 *   host-wiring.ts). An agent that answers `wire` Unsupported leaves that to an `ip` process here.
 *   Everything else (IPv6, a repeated ADD, a stale veth of the pod's name) takes the two-process
 *   path: one `ip -batch -` on the host makes the veth (the pod end created straight in
 *   CNI_NETNS) and prints the marker, one in CNI_NETNS gets the pod's lines once the marker is
 *   printed; ip runs batch lines as they arrive, so forking and loading ip overlap the agent's
 *   work. Without the marker (the veth could not be made: an interface already in the pod that
 *   is not ours makes `link add` fail, as the spec requires) nothing of someone else's is
 *   touched. The host veth's sysctls are written before ADD returns, so before anything in the
 *   pod runs. When the agent or a later step fails, the veth just made is deleted.
 * - DEL: `release` to the agent and, at the same time, `ip link del` of the host veth if its
 *   alias names this container (the pod end goes with it; a netns already gone took both). The
 *   veth is found in prevResult, else from CNI_ARGS. Missing pieces are success; an agent that
 *   cannot be reached is error 11 after the veth is gone, so the runtime retries the DEL and
 *   the address is not leaked.
 * - CHECK: the agent's handle holds exactly prevResult's addresses; the host veth exists, is
 *   ours, is up, has proxy_arp, and the host routes are there; in the pod (one `nsenter`) the
 *   interface is up with its MAC and MTU, holds its addresses, and has the gateway and default
 *   routes. Every difference is listed in `details` (code 102).
 * - GC: `gc` to the agent with the valid attachments; without the key there is no valid
 *   attachment, as libcni means it (cnitool's `gc`). Veths need no GC: they die with their netns.
 * - STATUS: the agent's `status`; 50 when it is not running or not ready.
 * - VERSION: the supported versions; needs nothing else.
 *
 * Start-up cost: the runtime starts this program for every pod, so it loads only node:fs,
 * node:net, node:child_process and this folder's names.ts, protocol.ts, spec.ts and wiring.ts
 * (test/cni/import-graph.test.ts checks the graph and the bundle): no logger, no YAML, no
 * Kubernetes client, not even node:crypto (names.ts hashes itself). bench/cni measures it.
 *
 * The plugin must run in the network and mount namespaces it configures as the host
 * (/sys/class/net must show its own links), as runtimes run it and as `ip netns exec` arranges.
 *
 * Departures: one attachment per container and network (the IPAM handle has no interface name,
 * as in Calico); `dns` comes from the configuration, else from prevResult.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { ALIAS_PREFIX, podMac } from './names.js';
import {
  type AgentRequest,
  type AgentResponse,
  type AssignedAddress,
  MAX_MESSAGE,
  PROTOCOL_VERSION,
  type ResponseOf,
} from './protocol.js';
import {
  atLeast,
  CniCode,
  CniError,
  type CniResult,
  type CniVersion,
  decodeStdin,
  errorObject,
  formatResult,
  type Invocation,
  type NetConf,
  parseConfig,
  parseEnv,
  SPEC_VERSION,
  SUPPORTED_VERSIONS,
  versionResult,
} from './spec.js';
import {
  addResult,
  expectedFrom,
  type HostVethState,
  hostAddressBatch,
  hostFinishBatch,
  hostIfnameFor,
  hostIfnameOf,
  hostLinkBatch,
  hostRouteProblems,
  hostSysctls,
  type LinkSpec,
  podBatch,
  podLinkBatch,
  podProblems,
  type Wiring,
} from './wiring.js';

// ---------------------------------------------------------------------------------------------
// I/O: the agent, processes, /sys and /proc

/** One request to the agent (protocol.ts): a line out, a line back. */
export function askAgent<Op extends AgentRequest['op']>(
  path: string,
  req: Extract<AgentRequest, { op: Op }>,
  timeoutMs: number,
): Promise<ResponseOf[Op] | Extract<AgentResponse, { ok: false }>> {
  return new Promise((resolve, reject) => {
    const sock = connect(path);
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(
        new CniError(
          CniCode.TryAgainLater,
          `the Twill agent did not answer within ${timeoutMs / 1000} s`,
          `socket ${path}`,
        ),
      );
    }, timeoutMs);
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
        reject(
          new CniError(
            CniCode.TryAgainLater,
            'the Twill agent is not running on this node',
            `nothing listens on ${path} (${err.code}); is the twill DaemonSet pod running here?`,
          ),
        );
      else if (err.code === 'EACCES' || err.code === 'EPERM')
        reject(
          new CniError(
            CniCode.IoFailure,
            `cannot reach the Twill agent at ${path}: ${err.code} (run as root)`,
          ),
        );
      else reject(new CniError(CniCode.TryAgainLater, `lost the Twill agent at ${path}: ${err.message}`));
    });
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size > MAX_MESSAGE) sock.destroy(new Error('answer too long'));
    });
    sock.once('end', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8').trim();
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(
          text === ''
            ? // An agent that stopped mid-request: the next attempt may find it back.
              new CniError(
                CniCode.TryAgainLater,
                'the Twill agent closed the connection without an answer',
                path,
              )
            : new CniError(
                CniCode.AgentFailure,
                `the Twill agent sent an answer that is not JSON: ${text.slice(0, 200)}`,
              ),
        );
      }
    });
  });
}

/** Map an agent error to a CniError (see the header's code table). */
export function agentError(e: { code: string; message: string }): CniError {
  switch (e.code) {
    case 'NotReady':
      return new CniError(CniCode.TryAgainLater, 'the Twill agent is not ready', e.message);
    case 'Conflict':
      return new CniError(CniCode.TryAgainLater, 'IPAM conflict, try again', e.message);
    case 'Invalid':
      return new CniError(CniCode.InvalidConfig, 'the Twill agent refused the request', e.message);
    case 'Exhausted':
      return new CniError(CniCode.AddressesExhausted, 'no pod address left for this node', e.message);
    case 'Mismatch':
      return new CniError(CniCode.CheckFailed, 'IPAM does not match the attachment', e.message);
    default:
      return new CniError(CniCode.AgentFailure, 'the Twill agent failed', e.message);
  }
}

async function agent<Op extends AgentRequest['op']>(
  conf: NetConf,
  req: Extract<AgentRequest, { op: Op }>,
): Promise<ResponseOf[Op]> {
  const r = await askAgent(conf.agentSocket, req, conf.timeoutMs);
  if (!r.ok) throw agentError(r.error);
  return r;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], input: string): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.stdin.on('error', () => {});
    child.once('error', (e) => resolve({ code: -1, stdout: '', stderr: e.message }));
    child.once('close', (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    child.stdin.end(input);
  });
}

const firstExisting = (paths: readonly string[], fallback: string): string =>
  paths.find((p) => existsSync(p)) ?? fallback;
let ipPath: string | undefined;
let nsenterPath: string | undefined;
const ip = () => (ipPath ??= firstExisting(['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'], 'ip'));
const nsenter = () =>
  (nsenterPath ??= firstExisting(['/usr/bin/nsenter', '/bin/nsenter', '/usr/sbin/nsenter'], 'nsenter'));

/**
 * `argv` run inside the network namespace at `netns`: `ip -n NAME` when argv is ip's and the
 * namespace is a named one (/run/netns/NAME, as containerd and CRI-O name theirs: ip enters it
 * itself, one exec fewer), else through nsenter, which takes any path.
 */
export function inNetns(netns: string, argv: readonly string[]): [string, string[]] {
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns)?.[1];
  if (
    named !== undefined &&
    argv[0] === ip() &&
    !named.startsWith('.') &&
    existsSync(`/var/run/netns/${named}`)
  )
    return [ip(), ['-n', named, ...argv.slice(1)]];
  return [nsenter(), [`--net=${netns}`, ...argv]];
}

/**
 * An `ip -batch -` process (inside `netns` when given: `inNetns`), started before its
 * script is complete: ip runs each line as it arrives and flushes what a line prints, so a
 * process can be started, and its first lines run, while the plugin still waits for the agent;
 * `printed()` tells when the script has printed something (a `link show` line placed as a
 * marker), or that the process ended first (a line before it failed).
 */
class Batch {
  private readonly child: ReturnType<typeof spawn>;
  private readonly done: Promise<Ran>;
  private readonly output: Promise<boolean>;
  private script = '';

  constructor(readonly netns?: string) {
    const stdio: ['pipe', 'pipe', 'pipe'] = ['pipe', 'pipe', 'pipe'];
    this.child =
      netns === undefined
        ? spawn(ip(), ['-batch', '-'], { stdio })
        : spawn(...inNetns(netns, [ip(), '-batch', '-']), { stdio });
    const err: Buffer[] = [];
    this.child.stderr!.on('data', (c: Buffer) => err.push(c));
    // ip stops at the first failing line; later writes then meet a closed pipe.
    this.child.stdin!.on('error', () => {});
    this.done = new Promise((resolve) => {
      this.child.once('error', (e) => resolve({ code: -1, stdout: '', stderr: e.message }));
      this.child.once('close', (code) =>
        resolve({ code: code ?? -1, stdout: '', stderr: Buffer.concat(err).toString('utf8') }),
      );
    });
    this.output = new Promise((resolve) => {
      this.child.stdout!.once('data', () => resolve(true));
      void this.done.then(() => resolve(false));
    });
    this.child.stdout!.on('data', () => {});
  }

  write(text: string): void {
    this.script += text;
    if (text !== '') this.child.stdin!.write(text);
  }

  /** True once the script printed something; false when the process ended without. */
  printed(): Promise<boolean> {
    return this.output;
  }

  /** Send the rest and wait; throws CniError 101 when a line failed. */
  async end(text = ''): Promise<void> {
    this.script += text;
    this.child.stdin!.end(text);
    const r = await this.done;
    if (r.code !== 0)
      throw new CniError(
        CniCode.KernelFailure,
        `configuring the ${this.netns === undefined ? 'host' : 'pod'} side failed`,
        [
          r.stderr.trim(),
          `--- ip -batch input${this.netns === undefined ? '' : ' (in the pod)'} ---\n${this.script}`,
        ]
          .join('\n')
          .trim(),
      );
  }

  /** Send the rest and wait, ignoring failures (clean-up after another error). */
  async abandon(text = ''): Promise<void> {
    await this.end(text).catch(() => {});
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The host veth's state from its alias in /sys (no process). */
export function hostVethState(hostIfname: string, containerID: string): HostVethState | 'foreign' {
  const alias = readText(`/sys/class/net/${hostIfname}/ifalias`);
  if (alias === undefined) return 'absent';
  const a = alias.trim();
  if (a === `${ALIAS_PREFIX}${containerID}`) return 'ours';
  // No alias on a veth with our name: the direct path's ADD stopped before the host side was
  // done (names.ts names are ours alone), so it is ours to replace.
  return a.startsWith(ALIAS_PREFIX) || a === '' ? 'stale' : 'foreign';
}

function writeSysctls(list: readonly [string, string][]): void {
  for (const [path, value] of list) {
    const file = `/proc/sys/${path}`;
    if (readText(file)?.trim() === value) continue;
    try {
      writeFileSync(file, `${value}\n`);
    } catch (e) {
      throw new CniError(
        CniCode.KernelFailure,
        `sysctl ${path.replaceAll('/', '.')} = ${value} failed`,
        (e as NodeJS.ErrnoException).code ?? String(e),
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

export interface Output {
  /** Text for stdout (a result or error object), or undefined for none. */
  stdout?: string;
  exitCode: number;
}

async function cmdAdd(inv: Invocation, conf: NetConf): Promise<CniResult> {
  const link: LinkSpec = {
    hostIfname: hostIfnameOf(inv),
    ifname: inv.ifname,
    netns: inv.netns,
    containerID: inv.containerID,
    mtu: conf.mtu,
    mac: podMac(inv.containerID, inv.ifname),
    families: conf.families,
  };
  const state = hostVethState(link.hostIfname, inv.containerID);
  if (state === 'foreign')
    throw new CniError(
      CniCode.KernelFailure,
      `host interface ${link.hostIfname} exists and was not made by Twill`,
      'remove it, or rename it, and let the runtime retry',
    );
  if (conf.families.includes(6) && readText('/proc/sys/net/ipv6/conf/default/disable_ipv6')?.trim() === '1')
    throw new CniError(
      CniCode.KernelFailure,
      'IPv6 is disabled on this node',
      'net.ipv6.conf.default.disable_ipv6 = 1: new interfaces get no IPv6, so the pod cannot',
    );
  // The request goes first, so the agent works while this process forks.
  const assigning = agent(conf, {
    v: PROTOCOL_VERSION,
    op: 'assign',
    network: conf.name,
    containerID: inv.containerID,
    ifname: inv.ifname,
    ...(inv.namespace !== undefined ? { namespace: inv.namespace, pod: inv.pod } : {}),
    families: conf.families,
    hostIfname: link.hostIfname,
    mac: link.mac,
  });
  assigning.catch(() => {});
  if (state === 'absent' && conf.families.length === 1 && conf.families[0] === 4)
    return addFromPod(inv, conf, link, assigning);
  // Two ip processes, both started now: the host's makes the veth at once (the pod end straight
  // into CNI_NETNS) and prints the marker line after it; the pod's (in CNI_NETNS through
  // nsenter) gets its script when the addresses are in and the veth is there. Forking and
  // loading ip thus overlap the agent's work.
  const host = new Batch();
  const pod = new Batch(inv.netns);
  host.write(`${hostLinkBatch(link, state)}link show dev ${link.hostIfname}\n`);
  let assigned: ResponseOf['assign'];
  try {
    assigned = await assigning;
  } catch (e) {
    // No address: take back the veth this call made, so a failed ADD leaves nothing behind.
    await Promise.all([host.abandon(state === 'ours' ? '' : `link del ${link.hostIfname}\n`), pod.abandon()]);
    throw e;
  }
  const w: Wiring = {
    ...link,
    addresses: assigned.addresses.map((a: AssignedAddress) => ({ address: a.address, family: a.family })),
  };
  const hostDone = host.end(hostAddressBatch(w));
  hostDone.catch(() => {});
  // Without the marker the veth was not made (an interface of that name already in the pod,
  // say): the pod's process gets nothing, so nothing of someone else's is touched.
  const made = await host.printed();
  const podDone = pod.end(made ? podBatch(w) : '');
  podDone.catch(() => {});
  await hostDone;
  await podDone;
  // Written once the veth is configured, before ADD returns: nothing in the pod runs before that.
  writeSysctls(hostSysctls(link.hostIfname, conf.families));
  return addResult(w, conf);
}

/**
 * ADD's direct path (a new IPv4 attachment): one `ip` process, in the pod, makes the veth with
 * its host end sent to this process's (the host's) namespace and prints a marker; once the
 * addresses are in it configures the pod side, while the agent does the host side (`wire`:
 * alias, up, route, neighbour entry, sysctls over its netlink socket). An agent that does not
 * wire (Unsupported) leaves the host side to an `ip` process of the plugin's, as the two-process
 * path does it. Any failure after the veth was made deletes it.
 */
async function addFromPod(
  inv: Invocation,
  conf: NetConf,
  link: LinkSpec,
  assigning: Promise<ResponseOf['assign']>,
): Promise<CniResult> {
  const pod = new Batch(inv.netns);
  pod.write(`${podLinkBatch(link, process.pid)}link show dev ${link.ifname}\n`);
  let assigned: ResponseOf['assign'];
  try {
    assigned = await assigning;
  } catch (e) {
    // Delete the veth only if this call made it (the marker came): never someone else's.
    const made = await pod.printed();
    await pod.abandon(made ? `link del ${link.ifname}\n` : '');
    throw e;
  }
  const w: Wiring = {
    ...link,
    addresses: assigned.addresses.map((a: AssignedAddress) => ({ address: a.address, family: a.family })),
  };
  if (!(await pod.printed())) {
    await pod.end(); // throws with ip's own words (an interface of that name already in the pod, say)
    throw new CniError(CniCode.KernelFailure, `the veth ${link.hostIfname} was not made`);
  }
  const podDone = pod.end(podBatch(w));
  podDone.catch(() => {});
  const hostDone = (async () => {
    const r = await askAgent(
      conf.agentSocket,
      {
        v: PROTOCOL_VERSION,
        op: 'wire',
        network: conf.name,
        containerID: inv.containerID,
        ifname: inv.ifname,
      },
      conf.timeoutMs,
    );
    if (r.ok) return;
    if (r.error.code !== 'Unsupported') throw agentError(r.error);
    const host = new Batch();
    await host.end(hostFinishBatch(w));
    writeSysctls(hostSysctls(link.hostIfname, conf.families));
  })();
  hostDone.catch(() => {});
  try {
    await hostDone;
    await podDone;
  } catch (e) {
    await run(ip(), ['link', 'del', link.hostIfname], '');
    throw e;
  }
  return addResult(w, conf);
}

async function cmdDel(inv: Invocation, conf: NetConf): Promise<void> {
  // The veth goes while the agent releases: neither waits for the other.
  const hostIfname = hostIfnameFor(inv, conf.prevResult);
  const unlink =
    hostVethState(hostIfname, inv.containerID) === 'ours'
      ? run(ip(), ['link', 'del', hostIfname], '')
      : undefined;
  let agentFailure: CniError | undefined;
  try {
    await agent(conf, {
      v: PROTOCOL_VERSION,
      op: 'release',
      network: conf.name,
      containerID: inv.containerID,
      ifname: inv.ifname,
    });
  } catch (e) {
    agentFailure = e instanceof CniError ? e : new CniError(CniCode.AgentFailure, String(e));
  }
  const r = await unlink;
  if (r && r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr))
    throw new CniError(CniCode.KernelFailure, `deleting ${hostIfname} failed`, r.stderr.trim());
  if (agentFailure) throw agentFailure;
}

async function cmdCheck(inv: Invocation, conf: NetConf): Promise<void> {
  if (!conf.prevResult)
    throw new CniError(CniCode.InvalidConfig, 'prevResult: CHECK needs the result of the ADD');
  const hostIfname = hostIfnameFor(inv, conf.prevResult);
  const e = expectedFrom(conf.prevResult, inv, hostIfname);
  await agent(conf, {
    v: PROTOCOL_VERSION,
    op: 'check',
    network: conf.name,
    containerID: inv.containerID,
    ifname: inv.ifname,
    addresses: e.addresses.map((a) => a.address),
  });
  const problems: string[] = [];
  const state = hostVethState(hostIfname, inv.containerID);
  if (state !== 'ours') {
    problems.push(
      state === 'absent'
        ? `host: interface ${hostIfname} is missing`
        : `host: interface ${hostIfname} belongs to another container`,
    );
  } else {
    const flags = Number.parseInt(readText(`/sys/class/net/${hostIfname}/flags`) ?? '0', 16);
    if ((flags & 1) === 0) problems.push(`host: ${hostIfname} is down`);
    if (
      e.addresses.some((a) => a.family === 4) &&
      readText(`/proc/sys/net/ipv4/conf/${hostIfname}/proxy_arp`)?.trim() !== '1'
    )
      problems.push(`host: ${hostIfname} has proxy_arp off`);
    problems.push(
      ...hostRouteProblems(e, readText('/proc/net/route') ?? '', readText('/proc/net/ipv6_route') ?? ''),
    );
  }
  // One process in the pod: the interface, then IPv4 and IPv6 routes, separated by `#` lines.
  const r = await run(
    nsenter(),
    [
      `--net=${inv.netns}`,
      'sh',
      '-c',
      `"$0" -j addr show dev "$1"; echo '#'; "$0" -j -4 route show; echo '#'; "$0" -j -6 route show`,
      ip(),
      inv.ifname,
    ],
    '',
  );
  const parts = r.stdout.split(/^#$/m);
  if (parts.length !== 3) problems.push(`pod: cannot look into ${inv.netns}: ${r.stderr.trim()}`);
  else problems.push(...podProblems(e, parts[0]!.trim(), parts[1]!.trim(), parts[2]!.trim()));
  if (problems.length > 0)
    throw new CniError(
      CniCode.CheckFailed,
      `attachment ${inv.containerID}/${inv.ifname} is not as ADD left it`,
      problems.join('; '),
    );
}

async function cmdGc(conf: NetConf): Promise<void> {
  const r = await agent(conf, {
    v: PROTOCOL_VERSION,
    op: 'gc',
    network: conf.name,
    valid: conf.validAttachments ?? [],
  });
  if (r.errors.length > 0)
    throw new CniError(
      CniCode.AgentFailure,
      `GC released ${r.released.length} addresses but some failed`,
      r.errors.join('; '),
    );
}

async function cmdStatus(conf: NetConf): Promise<void> {
  let r: ResponseOf['status'];
  try {
    r = await agent(conf, { v: PROTOCOL_VERSION, op: 'status' });
  } catch (e) {
    const ce = e as CniError;
    throw new CniError(CniCode.NotAvailable, ce.message, ce.details);
  }
  if (!r.ready)
    throw new CniError(
      CniCode.NotAvailable,
      'the Twill agent is not ready',
      `node ${r.node}: ${r.reason ?? ''}`,
    );
}

/** Run one CNI invocation: environment and stdin in, stdout text and exit code out. */
export async function invoke(env: Record<string, string | undefined>, stdin: string): Promise<Output> {
  let version: string = SPEC_VERSION;
  try {
    const inv = parseEnv(env);
    if (inv.command === 'VERSION') {
      let v = SPEC_VERSION;
      if (stdin.trim() !== '') {
        const o = decodeStdin(stdin);
        if (typeof o.cniVersion === 'string' && o.cniVersion !== '') v = o.cniVersion;
      }
      return { stdout: JSON.stringify(versionResult(v)), exitCode: 0 };
    }
    const raw = decodeStdin(stdin);
    if (
      typeof raw.cniVersion === 'string' &&
      (SUPPORTED_VERSIONS as readonly string[]).includes(raw.cniVersion)
    )
      version = raw.cniVersion;
    const conf = parseConfig(raw, inv.command, env);
    const need = (min: CniVersion) => {
      if (!atLeast(conf.cniVersion, min))
        throw new CniError(
          CniCode.IncompatibleVersion,
          `config version ${conf.cniVersion} does not allow ${inv.command}`,
          `${inv.command} needs cniVersion ${min} or later`,
        );
    };
    switch (inv.command) {
      case 'ADD':
        return {
          stdout: JSON.stringify(formatResult(await cmdAdd(inv, conf), conf.cniVersion)),
          exitCode: 0,
        };
      case 'DEL':
        await cmdDel(inv, conf);
        return { exitCode: 0 };
      case 'CHECK':
        need('0.4.0');
        await cmdCheck(inv, conf);
        return { exitCode: 0 };
      case 'GC':
        need('1.1.0');
        await cmdGc(conf);
        return { exitCode: 0 };
      case 'STATUS':
        need('1.1.0');
        await cmdStatus(conf);
        return { exitCode: 0 };
    }
    throw new CniError(CniCode.InvalidEnvironment, `CNI_COMMAND: ${inv.command} is not handled`);
  } catch (e) {
    const ce = e instanceof CniError ? e : new CniError(CniCode.Unexpected, 'unexpected failure', String(e));
    return { stdout: JSON.stringify(errorObject(ce, version)), exitCode: 1 };
  }
}

/** The program: read stdin, invoke, write stdout. Resolves to the exit code. */
export async function main(): Promise<number> {
  let stdin = '';
  try {
    if (process.env.CNI_COMMAND?.toUpperCase() !== 'VERSION' || !process.stdin.isTTY)
      stdin = readFileSync(0, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EAGAIN' && code !== 'EOF') {
      process.stdout.write(
        `${JSON.stringify(errorObject(new CniError(CniCode.IoFailure, 'cannot read the network configuration from stdin', String(code ?? e))))}\n`,
      );
      return 1;
    }
  }
  const out = await invoke(process.env, stdin);
  if (out.stdout !== undefined) process.stdout.write(`${out.stdout}\n`);
  return out.exitCode;
}
