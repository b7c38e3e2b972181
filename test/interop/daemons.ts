/**
 * Real BGP routers as test peers: BIRD 2, FRR bgpd and GoBGP, each run inside a test namespace
 * (see test/helpers/netns.ts), configured from one small `DaemonSpec`, queried through its own
 * CLI, and ended by PID. Twill's interop tests put Twill on one side and one of these on the
 * other; this file does not import Twill's speaker and never will.
 *
 * What it does
 * - Writes each daemon's config, pid file, control socket and logs under `spec.dir`, starts the
 *   daemon in the foreground under `ip netns exec` (which execs, so the spawned child's PID is the
 *   daemon's PID), and waits until its CLI answers. `stop()` sends SIGTERM by PID and waits;
 *   `kill(sig)` delivers any signal (SIGSTOP/SIGCONT for hold-timer tests). Every daemon is also
 *   registered with the Lab, whose `cleanup()` kills it by PID; `cleanupDaemons()` here does the
 *   same for daemons still running, for tests that want to end them before the namespaces go.
 * - Supports iBGP and eBGP, 4-octet ASNs, a listen port per daemon and a remote port per peer,
 *   passive peers, hold time per peer (keepalive = hold/3, at least 1 s), fast reconnects, IPv4
 *   and IPv6 unicast over one session of either family, route-reflector clients, graceful
 *   restart, and origination of prefixes (static in config; `announce`/`withdraw` at run time).
 * - `routes()` returns the routes the daemon LEARNED from its BGP peers and holds (best and
 *   non-best, also those whose next hop does not resolve), parsed from the daemon's own CLI.
 *   The daemon's own originated prefixes are not included.
 *
 * How each daemon is set up, and why
 * - Next hop of the other family. An IPv6 route sent over an IPv4 session (or the reverse) needs
 *   a next hop of the route's family. The harness looks up, with `ip route get`, the interface
 *   each peer is reached through and hands the daemon that interface's address of the other
 *   family where the daemon cannot find it itself: BIRD `next hop address`, GoBGP `nexthop` on
 *   `global rib add` (GoBGP would otherwise send the IPv4 address, which BIRD rejects). FRR gets
 *   it from zebra (below).
 * - BIRD: `protocol direct` puts connected networks into master4/master6 so iBGP's recursive
 *   next-hop lookup resolves next hops on a veth; routes whose next hop does not resolve stay in
 *   the table as `unreachable` and are still reported. The export filter passes only static
 *   (originated) and BGP routes, never the connected ones.
 * - FRR: bgpd plus a zebra of its own (zebra as user frr, `-f /dev/null`, zserv socket in
 *   `spec.dir`); bgpd runs with `-n` (no FIB install) and `-S` (stays root). Without zebra bgpd
 *   knows no interface addresses and sends IPv6 routes over an IPv4 eBGP session with the
 *   next hop ::ffff:a.b.c.d (an outbound `set ipv6 next-hop global` route-map is overridden for
 *   eBGP until FRR's route-map timer re-processes it). zebra's next-hop tracking marks routes
 *   with unresolvable next hops invalid; they are still listed by `routes()` (best: false).
 *   vty only on unix sockets in `spec.dir` (`--vty_socket DIR -P 0`), queried with
 *   `vtysh --vty_socket DIR -d bgpd -c ...`. Config: `frr defaults traditional`,
 *   `no bgp ebgp-requires-policy`, `no bgp network import-check`, `no bgp default ipv4-unicast`.
 * - GoBGP: gRPC API on 127.0.0.1:<unique port> inside the namespace; CLI through
 *   `ip netns exec NS gobgp -p PORT`. Originated prefixes are added with `global rib add` once
 *   the daemon answers.
 *
 * Known departures
 * - AS_SETs are flattened into `asPath` (set members in order, no braces).
 * - `stale`: BIRD shows only long-lived-GR staleness (`(100s)` in the route line); routes kept
 *   across a plain graceful restart are not marked by its CLI. FRR and GoBGP report `stale`.
 * - holdTime defaults to 9 s (not the daemons' 90-240 s), so failures show quickly in tests.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Lab, sh, waitFor } from '../helpers/netns.js';

export type Family = 'ipv4-unicast' | 'ipv6-unicast';

export interface PeerSpec {
  address: string;
  asn: number;
  /** TCP port the peer listens on (default 179). */
  port?: number;
  /** This daemon waits for the peer to connect. */
  passive?: boolean;
  /** Seconds; overrides DaemonSpec.holdTime. */
  holdTime?: number;
  /** Default: both. */
  families?: Family[];
  /** This daemon is a route reflector and the peer its client. */
  routeReflectorClient?: boolean;
  /** Overrides DaemonSpec.gracefulRestart for this peer. */
  gracefulRestart?: boolean;
}

export interface DaemonSpec {
  ns: string;
  /** Temporary directory of this daemon: config, pid file, control socket, logs. */
  dir: string;
  routerId: string;
  asn: number;
  /** Default 179. */
  listenPort?: number;
  peers: PeerSpec[];
  /** Prefixes this daemon originates, IPv4 and/or IPv6. */
  originate?: string[];
  /** Seconds, default 9 (minimum 3). */
  holdTime?: number;
  gracefulRestart?: boolean;
  /** Set when any peer is a route-reflector client; clusterId defaults to routerId. */
  routeReflector?: { clusterId?: string };
}

export interface Route {
  prefix: string;
  nextHop?: string;
  asPath: number[];
  localPref?: number;
  med?: number;
  /** Standard communities as "asn:value", well-known ones numerically (65535:65281). */
  communities?: string[];
  originatorId?: string;
  clusterList?: string[];
  stale?: boolean;
  /** Address of the peer the route was learned from. */
  from?: string;
  /** The daemon selected this path as best for the prefix. */
  best?: boolean;
}

export type DaemonKind = 'bird' | 'frr' | 'gobgp';

export interface Daemon {
  kind: DaemonKind;
  spec: DaemonSpec;
  /** Main daemon PID (changes across stop/start). */
  pid(): number;
  /** Start again after stop() (same config, current originated set). */
  start(): Promise<void>;
  /** SIGTERM by PID, wait for exit (SIGKILL after 5 s). */
  stop(): Promise<void>;
  kill(sig: NodeJS.Signals): void;
  /** 'Established' | 'Idle' | 'Active' | 'Connect' | 'OpenSent' | 'OpenConfirm' | raw state text. */
  peerState(address: string): Promise<string>;
  waitEstablished(address: string, ms?: number): Promise<void>;
  /** Resolves once peerState(address) is anything but Established. */
  waitNotEstablished(address: string, ms?: number): Promise<void>;
  routes(): Promise<Route[]>;
  announce(prefix: string): Promise<void>;
  withdraw(prefix: string): Promise<void>;
  /** The daemon's log so far (for failure messages). */
  log(): string;
}

// ---------------------------------------------------------------------------------------------
// Shared plumbing

const live = new Set<ChildProcess>();

/** SIGKILL every daemon this module started that is still running. Lab.cleanup() does it too. */
export async function cleanupDaemons(): Promise<void> {
  await Promise.all([...live].map((c) => endChild(c, 'SIGKILL', 2000)));
  live.clear();
}

function running(c: ChildProcess | undefined): c is ChildProcess {
  return c !== undefined && c.exitCode === null && c.signalCode === null;
}

async function endChild(c: ChildProcess, sig: NodeJS.Signals, ms: number): Promise<void> {
  if (!running(c) || c.pid === undefined) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  try {
    process.kill(c.pid, sig);
  } catch {
    return;
  }
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms));
  if ((await Promise.race([exited, timer])) === 'timeout' && running(c) && c.pid !== undefined) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  }
}

/** Spawn a foreground daemon in a namespace with stdout/stderr to a file; tracked by the Lab. */
function spawnDaemon(lab: Lab, ns: string, cmd: string, args: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a');
  try {
    const child = lab.spawn(ns, cmd, args, { stdio: ['ignore', fd, fd] });
    live.add(child);
    child.once('exit', () => live.delete(child));
    return child;
  } finally {
    closeSync(fd);
  }
}

/** Run a command without blocking the event loop; resolves stdout, rejects with stderr. */
export function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, out, errOut) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${errOut || err.message}`));
      else resolve(out);
    });
  });
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const isV6 = (addrOrPrefix: string): boolean => addrOrPrefix.includes(':');
const familyOf = (prefix: string): Family => (isV6(prefix) ? 'ipv6-unicast' : 'ipv4-unicast');

interface PeerPlan extends PeerSpec {
  families: Family[];
  holdTime: number;
  keepalive: number;
  ibgp: boolean;
  /** Local address of the session (the source address towards the peer). */
  local: string;
  /** Local addresses of each family on the interface towards the peer. */
  local4?: string;
  local6?: string;
  gracefulRestart: boolean;
}

function planPeers(spec: DaemonSpec): PeerPlan[] {
  return spec.peers.map((p) => {
    const holdTime = Math.max(3, p.holdTime ?? spec.holdTime ?? 9);
    const addrs = localAddresses(spec.ns, p.address);
    return {
      ...p,
      families: p.families ?? ['ipv4-unicast', 'ipv6-unicast'],
      holdTime,
      keepalive: Math.max(1, Math.floor(holdTime / 3)),
      ibgp: p.asn === spec.asn,
      local: addrs.src,
      local4: addrs.v4,
      local6: addrs.v6,
      gracefulRestart: p.gracefulRestart ?? spec.gracefulRestart ?? false,
    };
  });
}

/** The source address towards `peer` in `ns`, and the interface's global v4 and v6 addresses. */
function localAddresses(ns: string, peer: string): { src: string; v4?: string; v6?: string } {
  const get = JSON.parse(sh('ip', ['-n', ns, '-j', isV6(peer) ? '-6' : '-4', 'route', 'get', peer])) as {
    dev?: string;
    prefsrc?: string;
  }[];
  const dev = get[0]?.dev;
  if (!dev) throw new Error(`no route to ${peer} in ${ns}`);
  const links = JSON.parse(sh('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', dev])) as {
    addr_info?: { family: string; local: string; scope: string }[];
  }[];
  const info = links[0]?.addr_info ?? [];
  const v4 = info.find((a) => a.family === 'inet' && a.scope === 'global')?.local;
  const v6 = info.find((a) => a.family === 'inet6' && a.scope === 'global')?.local;
  const src = get[0]?.prefsrc ?? (isV6(peer) ? v6 : v4);
  if (!src) throw new Error(`no local address towards ${peer} in ${ns}`);
  return { src, v4, v6 };
}

const STATE_NAMES: Record<string, string> = {
  idle: 'Idle',
  connect: 'Connect',
  active: 'Active',
  opensent: 'OpenSent',
  openconfirm: 'OpenConfirm',
  established: 'Established',
};

/** Normalises the daemons' spellings of RFC 4271 §8.2.2 states. */
export function normalizeState(raw: string): string {
  const key = raw
    .trim()
    .toLowerCase()
    .replace(/^bgp_fsm_/, '')
    .replace(/[^a-z]/g, '');
  return STATE_NAMES[key] ?? raw.trim();
}

const WELL_KNOWN: Record<string, string> = {
  'no-export': '65535:65281',
  'no-advertise': '65535:65282',
  'local-as': '65535:65283',
  'no-peer': '65535:65284',
  blackhole: '65535:666',
  'graceful-shutdown': '65535:0',
  'accept-own': '65535:1',
  'llgr-stale': '65535:6',
  'no-llgr': '65535:7',
};

function communityFromU32(v: number): string {
  return `${Math.floor(v / 65536)}:${v % 65536}`;
}

/** Common Daemon behaviour around a process: lifecycle, state polling. */
abstract class Base implements Daemon {
  abstract readonly kind: DaemonKind;
  protected child: ChildProcess | undefined;
  protected readonly plans: PeerPlan[];
  protected readonly originated: Set<string>;
  protected readonly logFile: string;

  constructor(
    protected readonly lab: Lab,
    readonly spec: DaemonSpec,
  ) {
    mkdirSync(spec.dir, { recursive: true });
    this.plans = planPeers(spec);
    this.originated = new Set(spec.originate ?? []);
    this.logFile = join(spec.dir, 'daemon.log');
  }

  pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined || !running(this.child))
      throw new Error(`${this.kind} in ${this.spec.ns} is not running`);
    return pid;
  }

  kill(sig: NodeJS.Signals): void {
    process.kill(this.pid(), sig);
  }

  async stop(): Promise<void> {
    if (this.child) await endChild(this.child, 'SIGTERM', 5000);
  }

  async start(): Promise<void> {
    if (running(this.child)) throw new Error(`${this.kind} in ${this.spec.ns} is already running`);
    this.writeConfig();
    await this.beforeSpawn();
    this.child = this.spawn();
    const child = this.child;
    let exited = false;
    await waitFor(
      `${this.kind} in ${this.spec.ns} to answer its CLI`,
      async () => {
        if (!running(child)) exited = true;
        return exited || (await this.ready()) || undefined;
      },
      15_000,
      100,
    );
    if (exited) throw new Error(`${this.kind} in ${this.spec.ns} exited: ${this.log().slice(-2000)}`);
    await this.afterStart();
  }

  log(): string {
    return readLog(this.logFile);
  }

  async waitEstablished(address: string, ms = 30_000): Promise<void> {
    let last = '';
    try {
      await waitFor(
        `${this.kind} session to ${address} Established`,
        async () => {
          last = await this.peerState(address);
          return last === 'Established';
        },
        ms,
        200,
      );
    } catch (err) {
      throw new Error(`${String(err)} (last state ${last}); log tail:\n${this.log().slice(-1500)}`);
    }
  }

  async waitNotEstablished(address: string, ms = 30_000): Promise<void> {
    await waitFor(
      `${this.kind} session to ${address} to leave Established`,
      async () => (await this.peerState(address)) !== 'Established',
      ms,
      200,
    );
  }

  protected plan(address: string): PeerPlan {
    const p = this.plans.find((x) => x.address === address);
    if (!p) throw new Error(`${this.kind} in ${this.spec.ns} has no peer ${address}`);
    return p;
  }

  protected clusterId(): string {
    return this.spec.routeReflector?.clusterId ?? this.spec.routerId;
  }

  protected abstract writeConfig(): void;
  protected abstract spawn(): ChildProcess;
  protected abstract ready(): Promise<boolean>;
  protected async beforeSpawn(): Promise<void> {}
  protected async afterStart(): Promise<void> {}
  abstract peerState(address: string): Promise<string>;
  abstract routes(): Promise<Route[]>;
  abstract announce(prefix: string): Promise<void>;
  abstract withdraw(prefix: string): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// BIRD 2

const birdName = (address: string): string => `peer_${address.replace(/[.:]/g, '_')}`;

class Bird extends Base {
  readonly kind = 'bird';
  private readonly conf = join(this.spec.dir, 'bird.conf');
  private readonly sock = join(this.spec.dir, 'bird.ctl');

  protected writeConfig(): void {
    const s = this.spec;
    const statics = (v6: boolean) =>
      [...this.originated]
        .filter((p) => isV6(p) === v6)
        .map((p) => `\troute ${p} blackhole;\n`)
        .join('');
    const lines: string[] = [
      `log "${join(s.dir, 'bird.log')}" all;`,
      `router id ${s.routerId};`,
      'protocol device { scan time 1; }',
      '# Connected networks, so that recursive (iBGP) next hops on a veth resolve.',
      'protocol direct { ipv4; ipv6; }',
      `protocol static orig4 {\n\tipv4;\n${statics(false)}}`,
      `protocol static orig6 {\n\tipv6;\n${statics(true)}}`,
      'filter to_peers { if source ~ [RTS_STATIC, RTS_BGP] then accept; reject; }',
    ];
    for (const p of this.plans) {
      const port = s.listenPort !== undefined ? ` port ${s.listenPort}` : '';
      const body = [
        `local ${p.local}${port} as ${s.asn};`,
        `neighbor ${p.address}${p.port !== undefined ? ` port ${p.port}` : ''} as ${p.asn};`,
        `hold time ${p.holdTime};`,
        `keepalive time ${p.keepalive};`,
        'connect delay time 1;',
        'connect retry time 1;',
        'error wait time 1, 5;',
        'error forget time 10;',
      ];
      if (p.passive) body.push('passive on;');
      if (p.gracefulRestart) body.push('graceful restart on;', 'graceful restart time 30;');
      if (p.routeReflectorClient) body.push('rr client;', `rr cluster id ${this.clusterId()};`);
      for (const f of p.families) {
        const v6 = f === 'ipv6-unicast';
        const ch = [`import all;`, `export filter to_peers;`];
        // A next hop of the channel's family when the session is of the other family.
        const other = v6 ? p.local6 : p.local4;
        if (isV6(p.address) !== v6 && other) ch.push(`next hop address ${other};`);
        body.push(`${v6 ? 'ipv6' : 'ipv4'} { ${ch.join(' ')} };`);
      }
      lines.push(`protocol bgp ${birdName(p.address)} {\n\t${body.join('\n\t')}\n}`);
    }
    writeFileSync(this.conf, `${lines.join('\n')}\n`);
  }

  protected spawn(): ChildProcess {
    const pidFile = join(this.spec.dir, 'bird.pid');
    return spawnDaemon(
      this.lab,
      this.spec.ns,
      'bird',
      ['-f', '-c', this.conf, '-s', this.sock, '-P', pidFile],
      this.logFile,
    );
  }

  override log(): string {
    return readLog(this.logFile) + readLog(join(this.spec.dir, 'bird.log'));
  }

  private birdc(...args: string[]): Promise<string> {
    return run('birdc', ['-s', this.sock, ...args]);
  }

  protected async ready(): Promise<boolean> {
    if (!existsSync(this.sock)) return false;
    return (await this.birdc('show', 'status')).includes('Daemon is up');
  }

  async peerState(address: string): Promise<string> {
    this.plan(address);
    const out = await this.birdc('show', 'protocols', 'all', birdName(address));
    const m = /BGP state:\s+(\S+)/.exec(out);
    if (!m?.[1]) throw new Error(`no BGP state for ${address} in:\n${out}`);
    return normalizeState(m[1]);
  }

  async routes(): Promise<Route[]> {
    const byProto = new Map(this.plans.map((p) => [birdName(p.address), p.address]));
    return parseBirdRoutes(await this.birdc('show', 'route', 'all'), byProto);
  }

  private async reconfigure(): Promise<void> {
    this.writeConfig();
    const out = await this.birdc('configure');
    if (!/Reconfigured|Reconfiguration in progress/.test(out)) throw new Error(`birdc configure: ${out}`);
  }

  async announce(prefix: string): Promise<void> {
    this.originated.add(prefix);
    await this.reconfigure();
  }

  async withdraw(prefix: string): Promise<void> {
    this.originated.delete(prefix);
    await this.reconfigure();
  }
}

/**
 * Parses `birdc show route all`. A route starts with a line
 *   `PREFIX  unicast [PROTO TIME( from ADDR)?] * (PREF[s][/METRIC]) [ASi]`
 * where PREFIX is blank for further routes of the same network, followed by tab-indented lines
 * (`via`, `Type:`, `BGP.origin:`, `BGP.as_path:` ...). Only routes of the given BGP protocols are
 * kept; `byProto` maps protocol name to the peer's address.
 */
export function parseBirdRoutes(text: string, byProto: Map<string, string>): Route[] {
  const routes: Route[] = [];
  let prefix = '';
  let cur: Route | undefined;
  const head = /^(\S*)\s+(\S+)\s+\[(\S+)\s[^\]]*\]\s*([*!])?\s*\((\d+)([^)]*)\)/;
  for (const line of text.split('\n')) {
    if (/^Table |^BIRD |^\s*$/.test(line)) continue;
    const h = line.startsWith('\t') ? null : head.exec(line);
    if (h) {
      if (h[1]) prefix = h[1];
      const from = byProto.get(h[3] ?? '');
      cur = undefined;
      if (from === undefined) continue;
      cur = { prefix, asPath: [], from, best: h[4] === '*' };
      if (/s/.test(h[6] ?? '')) cur.stale = true;
      routes.push(cur);
      continue;
    }
    if (!cur) continue;
    const a = /^\s+BGP\.(\w+):\s?(.*)$/.exec(line);
    if (!a) continue;
    const [, key, val = ''] = a;
    switch (key) {
      case 'as_path':
        cur.asPath = (val.match(/\d+/g) ?? []).map(Number);
        break;
      case 'next_hop':
        cur.nextHop = val.split(/\s+/)[0];
        break;
      case 'local_pref':
        cur.localPref = Number(val);
        break;
      case 'med':
        cur.med = Number(val);
        break;
      case 'community':
        cur.communities = [...val.matchAll(/\((\d+),\s*(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
        break;
      case 'originator_id':
        cur.originatorId = val.trim();
        break;
      case 'cluster_list':
        cur.clusterList = val.trim().split(/\s+/).filter(Boolean);
        break;
    }
  }
  return routes;
}

// ---------------------------------------------------------------------------------------------
// FRR bgpd (without zebra)

class Frr extends Base {
  readonly kind = 'frr';
  private readonly conf = join(this.spec.dir, 'bgpd.conf');

  private zebra: ChildProcess | undefined;

  /** zebra, once per daemon: it tells bgpd the interface addresses (next hops of the other family). */
  protected override async beforeSpawn(): Promise<void> {
    if (running(this.zebra)) return;
    const d = this.spec.dir;
    openToFrrUser(d);
    const zserv = join(d, 'zserv.api');
    const zebra = spawnDaemon(
      this.lab,
      this.spec.ns,
      '/usr/lib/frr/zebra',
      [
        ...['-f', '/dev/null', '-i', join(d, 'zebra.pid'), '-z', zserv, '--vty_socket', d],
        ...['-u', 'frr', '-g', 'frr', '-A', '127.0.0.1', '-P', '0'],
      ],
      join(d, 'zebra.log'),
    );
    this.zebra = zebra;
    await waitFor(
      `zebra in ${this.spec.ns} to open ${zserv}`,
      () => !running(zebra) || existsSync(zserv),
      10_000,
      50,
    );
    if (!running(zebra)) throw new Error(`zebra exited: ${readLog(join(d, 'zebra.log')).slice(-1500)}`);
  }

  protected writeConfig(): void {
    const s = this.spec;
    const out: string[] = [
      'frr defaults traditional',
      `hostname ${s.ns.slice(-20)}`,
      `log file ${join(s.dir, 'bgpd.log')} informational`,
      '!',
    ];
    out.push(
      `router bgp ${s.asn}`,
      ` bgp router-id ${s.routerId}`,
      ' no bgp ebgp-requires-policy',
      ' no bgp network import-check',
      ' no bgp default ipv4-unicast',
    );
    if (this.plans.some((p) => p.routeReflectorClient)) out.push(` bgp cluster-id ${this.clusterId()}`);
    if (this.plans.some((p) => p.gracefulRestart)) {
      out.push(' bgp graceful-restart', ' bgp graceful-restart restart-time 30');
    }
    for (const p of this.plans) {
      const n = ` neighbor ${p.address}`;
      out.push(
        `${n} remote-as ${p.asn}`,
        `${n} timers ${p.keepalive} ${p.holdTime}`,
        `${n} timers connect 1`,
      );
      out.push(`${n} advertisement-interval 0`);
      if (p.port !== undefined) out.push(`${n} port ${p.port}`);
      if (p.passive) out.push(`${n} passive`);
      if (!p.gracefulRestart && this.plans.some((x) => x.gracefulRestart))
        out.push(`${n} graceful-restart-disable`);
    }
    for (const fam of ['ipv4-unicast', 'ipv6-unicast'] as const) {
      out.push(` address-family ${fam === 'ipv4-unicast' ? 'ipv4' : 'ipv6'} unicast`);
      for (const p of this.originated) if (familyOf(p) === fam) out.push(`  network ${p}`);
      for (const p of this.plans) {
        if (!p.families.includes(fam)) continue;
        out.push(`  neighbor ${p.address} activate`);
        if (p.routeReflectorClient) out.push(`  neighbor ${p.address} route-reflector-client`);
      }
      out.push(' exit-address-family');
    }
    out.push('!');
    writeFileSync(this.conf, `${out.join('\n')}\n`);
  }

  protected spawn(): ChildProcess {
    const d = this.spec.dir;
    return spawnDaemon(
      this.lab,
      this.spec.ns,
      '/usr/lib/frr/bgpd',
      [
        ...['-f', this.conf, '-i', join(d, 'bgpd.pid'), '-z', join(d, 'zserv.api')],
        ...['-n', '-S', '--vty_socket', d, '-A', '127.0.0.1', '-P', '0'],
        ...['-p', String(this.spec.listenPort ?? 179)],
      ],
      this.logFile,
    );
  }

  override log(): string {
    return readLog(this.logFile) + readLog(join(this.spec.dir, 'bgpd.log'));
  }

  /** vtysh against this bgpd's own vty socket directory. */
  vtysh(...commands: string[]): Promise<string> {
    return run('vtysh', ['--vty_socket', this.spec.dir, '-d', 'bgpd', ...commands.flatMap((c) => ['-c', c])]);
  }

  protected async ready(): Promise<boolean> {
    if (!existsSync(join(this.spec.dir, 'bgpd.vty'))) return false;
    await this.vtysh('show bgp summary');
    return true;
  }

  async peerState(address: string): Promise<string> {
    this.plan(address);
    const j = JSON.parse(await this.vtysh(`show bgp neighbors ${address} json`)) as Record<
      string,
      { bgpState?: string }
    >;
    const st = j[address]?.bgpState;
    if (!st) throw new Error(`no bgpState for ${address}`);
    return normalizeState(st);
  }

  async routes(): Promise<Route[]> {
    const routes: Route[] = [];
    for (const afi of ['ipv4', 'ipv6']) {
      const table = JSON.parse(await this.vtysh(`show bgp ${afi} unicast json`)) as {
        routes?: Record<string, { peerId?: string }[]>;
      };
      const learned = Object.entries(table.routes ?? {})
        .filter(([, paths]) => paths.some((p) => p.peerId && p.peerId !== '(unspec)'))
        .map(([prefix]) => prefix);
      if (learned.length === 0) continue;
      // One vtysh call for all prefixes: the output is a sequence of JSON documents.
      const text = await this.vtysh(...learned.map((p) => `show bgp ${afi} unicast ${p} json`));
      for (const doc of splitJsonDocuments(text)) routes.push(...frrPaths(JSON.parse(doc) as FrrPrefix));
    }
    return routes;
  }

  async announce(prefix: string): Promise<void> {
    this.originated.add(prefix);
    const v6 = isV6(prefix);
    await this.vtysh(
      'configure terminal',
      `router bgp ${this.spec.asn}`,
      `address-family ${v6 ? 'ipv6' : 'ipv4'} unicast`,
      `network ${prefix}`,
    );
  }

  async withdraw(prefix: string): Promise<void> {
    this.originated.delete(prefix);
    const v6 = isV6(prefix);
    await this.vtysh(
      'configure terminal',
      `router bgp ${this.spec.asn}`,
      `address-family ${v6 ? 'ipv6' : 'ipv4'} unicast`,
      `no network ${prefix}`,
    );
  }
}

/**
 * zebra drops privileges to the frr user (it refuses root without the frrvty group), so it must
 * be able to create its socket and pid file in the daemon's dir: that dir is made world-writable
 * and the temp dirs above it (only those under the system temp dir) traversable.
 */
function openToFrrUser(dir: string): void {
  chmodSync(dir, 0o777);
  const top = tmpdir();
  for (let d = dirname(dir); d.startsWith(`${top}/`); d = dirname(d)) {
    chmodSync(d, statSync(d).mode | 0o011);
  }
}

interface FrrPath {
  aspath?: { segments?: { list?: number[] }[] };
  locPrf?: number;
  metric?: number;
  community?: { string?: string };
  originatorId?: string;
  clusterList?: { list?: string[] };
  stale?: boolean;
  nexthops?: { ip?: string; scope?: string }[];
  peer?: { peerId?: string };
  bestpath?: { overall?: boolean };
}
interface FrrPrefix {
  prefix?: string;
  paths?: FrrPath[];
}

function frrPaths(doc: FrrPrefix): Route[] {
  const out: Route[] = [];
  for (const p of doc.paths ?? []) {
    const from = p.peer?.peerId;
    if (!doc.prefix || !from || from === '(unspec)') continue;
    const r: Route = {
      prefix: doc.prefix,
      asPath: (p.aspath?.segments ?? []).flatMap((s) => s.list ?? []),
      from,
      best: p.bestpath?.overall === true,
    };
    const nh = p.nexthops?.find((n) => n.scope !== 'link-local')?.ip;
    if (nh) r.nextHop = nh;
    if (p.locPrf !== undefined) r.localPref = p.locPrf;
    if (p.metric !== undefined) r.med = p.metric;
    if (p.community?.string) {
      r.communities = p.community.string.split(/\s+/).map((c) => WELL_KNOWN[c.toLowerCase()] ?? c);
    }
    if (p.originatorId) r.originatorId = p.originatorId;
    if (p.clusterList?.list) r.clusterList = p.clusterList.list;
    if (p.stale) r.stale = true;
    out.push(r);
  }
  return out;
}

/** Splits concatenated JSON documents (as vtysh prints for several -c commands). */
export function splitJsonDocuments(text: string): string[] {
  const docs: string[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i;
    } else if (c === '}' || c === ']') {
      if (--depth === 0 && start >= 0) docs.push(text.slice(start, i + 1));
    }
  }
  return docs;
}

// ---------------------------------------------------------------------------------------------
// GoBGP

let nextApiPort = 50_100;

class Gobgp extends Base {
  readonly kind = 'gobgp';
  private readonly conf = join(this.spec.dir, 'gobgpd.toml');
  /** gRPC API port on the namespace's loopback, unique per daemon. */
  readonly apiPort = nextApiPort++;

  protected writeConfig(): void {
    const s = this.spec;
    const q = JSON.stringify;
    const out: string[] = [
      '[global.config]',
      `  as = ${s.asn}`,
      `  router-id = ${q(s.routerId)}`,
      `  port = ${s.listenPort ?? 179}`,
    ];
    for (const p of this.plans) {
      out.push(
        '[[neighbors]]',
        '  [neighbors.config]',
        `    neighbor-address = ${q(p.address)}`,
        `    peer-as = ${p.asn}`,
        '  [neighbors.transport.config]',
        `    passive-mode = ${p.passive === true}`,
        `    remote-port = ${p.port ?? 179}`,
        '  [neighbors.timers.config]',
        `    hold-time = ${p.holdTime}`,
        `    keepalive-interval = ${p.keepalive}`,
        '    connect-retry = 1',
        '    idle-hold-time-after-reset = 1',
      );
      if (p.routeReflectorClient) {
        out.push(
          '  [neighbors.route-reflector.config]',
          '    route-reflector-client = true',
          `    route-reflector-cluster-id = ${q(this.clusterId())}`,
        );
      }
      if (p.gracefulRestart) {
        out.push('  [neighbors.graceful-restart.config]', '    enabled = true', '    restart-time = 30');
      }
      for (const f of p.families) {
        out.push(
          '  [[neighbors.afi-safis]]',
          '    [neighbors.afi-safis.config]',
          `      afi-safi-name = ${q(f)}`,
        );
        if (p.gracefulRestart)
          out.push('    [neighbors.afi-safis.mp-graceful-restart.config]', '      enabled = true');
      }
    }
    writeFileSync(this.conf, `${out.join('\n')}\n`);
  }

  protected spawn(): ChildProcess {
    return spawnDaemon(
      this.lab,
      this.spec.ns,
      'gobgpd',
      ['-f', this.conf, '-p', '--api-hosts', `127.0.0.1:${this.apiPort}`, '--pprof-disable'],
      this.logFile,
    );
  }

  /** The gobgp CLI inside the daemon's namespace, against its API port. */
  gobgp(...args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', this.spec.ns, 'gobgp', '-p', String(this.apiPort), ...args]);
  }

  protected async ready(): Promise<boolean> {
    await this.gobgp('global');
    return true;
  }

  protected override async afterStart(): Promise<void> {
    for (const p of this.originated) await this.ribAdd('add', p);
  }

  /** `global rib add|del`; a next hop of the prefix's family is given when sessions are of the other. */
  private async ribAdd(op: 'add' | 'del', prefix: string): Promise<void> {
    const v6 = isV6(prefix);
    const args = ['global', 'rib', op, '-a', v6 ? 'ipv6' : 'ipv4', prefix];
    if (!this.plans.some((p) => isV6(p.address) === v6)) {
      const nh = this.plans.map((p) => (v6 ? p.local6 : p.local4)).find(Boolean);
      if (nh) args.push('nexthop', nh);
    }
    await this.gobgp(...args);
  }

  async peerState(address: string): Promise<string> {
    this.plan(address);
    const j = JSON.parse(await this.gobgp('neighbor', address, '-j')) as {
      state?: { session_state?: number | string };
    };
    const st = j.state?.session_state;
    const byNumber = ['Unknown', 'Idle', 'Connect', 'Active', 'OpenSent', 'OpenConfirm', 'Established'];
    if (typeof st === 'number') return byNumber[st] ?? String(st);
    return normalizeState(st ?? 'Idle');
  }

  async routes(): Promise<Route[]> {
    const routes: Route[] = [];
    for (const afi of ['ipv4', 'ipv6']) {
      const text = await this.gobgp('global', 'rib', '-a', afi, '-j');
      const rib = (text.trim() ? JSON.parse(text) : {}) as Record<string, GobgpPath[]>;
      for (const [prefix, paths] of Object.entries(rib)) {
        for (const p of paths) {
          const r = gobgpRoute(prefix, p);
          if (r) routes.push(r);
        }
      }
    }
    return routes;
  }

  async announce(prefix: string): Promise<void> {
    this.originated.add(prefix);
    await this.ribAdd('add', prefix);
  }

  async withdraw(prefix: string): Promise<void> {
    this.originated.delete(prefix);
    await this.ribAdd('del', prefix);
  }
}

interface GobgpAttr {
  type: number;
  value?: unknown;
  nexthop?: string;
  metric?: number;
  communities?: number[];
  as_paths?: { asns?: number[] }[];
}
interface GobgpPath {
  best?: boolean;
  stale?: boolean;
  attrs?: GobgpAttr[];
  'neighbor-ip'?: string;
}

function gobgpRoute(prefix: string, p: GobgpPath): Route | undefined {
  const from = p['neighbor-ip'];
  if (!from) return undefined; // originated here
  const r: Route = { prefix, asPath: [], from, best: p.best === true };
  if (p.stale) r.stale = true;
  for (const a of p.attrs ?? []) {
    switch (a.type) {
      case 2:
        r.asPath = (a.as_paths ?? []).flatMap((s) => s.asns ?? []);
        break;
      case 3:
      case 14:
        if (a.nexthop) r.nextHop = a.nexthop;
        break;
      case 4:
        r.med = a.metric ?? Number(a.value);
        break;
      case 5:
        r.localPref = Number(a.value);
        break;
      case 8:
        r.communities = (a.communities ?? []).map(communityFromU32);
        break;
      case 9:
        r.originatorId = String(a.value);
        break;
      case 10:
        r.clusterList = (a.value as string[] | undefined) ?? [];
        break;
    }
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Entry points

async function launch<T extends Base>(d: T): Promise<T> {
  await d.start();
  return d;
}

export function startBird(lab: Lab, spec: DaemonSpec): Promise<Daemon> {
  return launch(new Bird(lab, spec));
}

export function startFrr(lab: Lab, spec: DaemonSpec): Promise<Daemon> {
  return launch(new Frr(lab, spec));
}

export function startGobgp(lab: Lab, spec: DaemonSpec): Promise<Daemon> {
  return launch(new Gobgp(lab, spec));
}
