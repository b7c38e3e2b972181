/**
 * The devices under test of the BGP bench: Twill's speaker, BIRD 2, FRR bgpd and GoBGP, each
 * started in the DUT namespace with a generated config that peers eBGP (AS 65002) with the
 * injector (AS 65001) and the monitor (AS 65003), both passive on the DUT's side (the bench's
 * peers dial), import and export everything, and writes nothing to the kernel's routing table:
 *   Twill   never writes the kernel (the standalone speaker has no FIB).
 *   BIRD    no `protocol kernel`; `protocol device` only, so eBGP next hops resolve.
 *   FRR     bgpd -n (no FIB: bgpd sends zebra no routes) with a zebra of its own for interface
 *           state and next-hop tracking, as test/interop/daemons.ts runs it. `frr defaults
 *           traditional`, `no bgp ebgp-requires-policy`, advertisement-interval 0.
 *   GoBGP   default config, no zebra.
 * The knowledge is the interop harness's (test/interop/daemons.ts), cut down to this topology:
 * that harness serves tests and is not compiled into dist/, so the few lines needed are here.
 *
 * Each DUT runs in the foreground under `ip netns exec` (which execs), so the spawned child's PID
 * is the daemon's own (node's for Twill, bgpd's for FRR): `pid` is what RSS is sampled from.
 * `stop()` ends, by PID, only the processes started here.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DAEMON_ENV } from '../../src/bgp/release-memory.js';
import { stringify } from 'yaml';

export type DutKind = 'twill' | 'bird' | 'frr' | 'gobgp' | 'relay';
/** Run by default; `relay` (relay.ts, the Node floor) when asked for with --dut. */
export const DUT_KINDS: DutKind[] = ['twill', 'bird', 'frr', 'gobgp'];
export const ALL_DUT_KINDS: DutKind[] = [...DUT_KINDS, 'relay'];

export interface Topology {
  ns: string;
  routerId: string;
  asn: number;
  /** The DUT's address towards each peer, and the peer's. */
  peers: { name: string; local: string; address: string; asn: number; rrClient?: boolean }[];
  /** With route-reflector clients among the peers (RFC 4456): the cluster id. */
  clusterId?: string;
}

export interface Dut {
  kind: DutKind;
  /** PID of the main process: node for Twill, bird, bgpd, gobgpd. */
  pid: number;
  /** Every process started for this DUT (FRR: zebra too). */
  procs: ChildProcess[];
  stop(): Promise<void>;
  logTail(): string;
}

const ROOT = join(import.meta.dirname, '../../..');

function running(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null;
}

/** End one child by PID: SIGTERM, then SIGKILL after `ms`. */
export async function endChild(c: ChildProcess, ms = 5000): Promise<void> {
  if (!running(c) || c.pid === undefined) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  try {
    process.kill(c.pid, 'SIGTERM');
  } catch {
    return;
  }
  const t = setTimeout(() => {
    if (running(c) && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }, ms);
  await exited;
  clearTimeout(t);
}

function spawnIn(
  ns: string,
  cmd: string,
  args: string[],
  log: string,
  env?: NodeJS.ProcessEnv,
): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    return spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: ['ignore', fd, fd],
      env: env ?? process.env,
    });
  } finally {
    closeSync(fd);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

async function until(what: string, fn: () => boolean, ms: number, dead: () => boolean): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (dead()) throw new Error(`${what}: the process exited`);
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function make(kind: DutKind, main: ChildProcess, procs: ChildProcess[], log: string): Dut {
  return {
    kind,
    pid: main.pid!,
    procs,
    async stop() {
      for (const p of [...procs].reverse()) await endChild(p);
    },
    logTail: () => tail(log),
  };
}

export interface StartOptions {
  /** Twill only: directory for `node --cpu-prof` output. */
  cpuProfDir?: string;
  /** Twill only: more flags for node, such as `--trace-deopt` (the output goes to twill.log). */
  nodeFlags?: string[];
}

export async function startDut(kind: DutKind, t: Topology, dir: string, o: StartOptions = {}): Promise<Dut> {
  switch (kind) {
    case 'twill':
      return startTwill(t, dir, o);
    case 'bird':
      return startBird(t, dir);
    case 'frr':
      return startFrr(t, dir);
    case 'gobgp':
      return startGobgp(t, dir);
    case 'relay':
      return startRelay(t, dir);
  }
}

async function startTwill(t: Topology, dir: string, o: StartOptions): Promise<Dut> {
  const conf = join(dir, 'twill.yml');
  const sock = join(dir, 'twill.sock');
  writeFileSync(
    conf,
    stringify({
      routerId: t.routerId,
      asn: t.asn,
      listen: { address: '0.0.0.0', port: 179 },
      ...(t.clusterId ? { clusterId: t.clusterId } : {}),
      neighbors: t.peers.map((p) => ({
        address: p.address,
        asn: p.asn,
        passive: true,
        families: ['ipv4-unicast'],
        description: p.name,
        ...(p.rrClient ? { routeReflectorClient: true } : {}),
      })),
      api: { listen: sock },
    }),
  );
  const log = join(dir, 'twill.log');
  const prof = [
    ...(o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : []),
    ...(o.nodeFlags ?? []),
  ];
  // As the image runs it (deploy/Dockerfile ENV).
  const env = { ...process.env, ...DAEMON_ENV };
  delete env.TWILL_TEST_FAST_TIMERS;
  const main = spawnIn(
    t.ns,
    process.execPath,
    [...prof, join(ROOT, 'bin/twill.js'), 'speaker', '--config', conf, '--log-level', 'info'],
    log,
    env,
  );
  await until(
    'twill API socket',
    () => existsSync(sock),
    15_000,
    () => !running(main),
  );
  return make('twill', main, [main], log);
}

async function startBird(t: Topology, dir: string): Promise<Dut> {
  const conf = join(dir, 'bird.conf');
  const sock = join(dir, 'bird.ctl');
  const lines = [
    `log "${join(dir, 'bird.log')}" { info, warning, error, fatal, bug };`,
    `router id ${t.routerId};`,
    '# Interfaces, so that eBGP next hops on the veths resolve. No kernel protocol: no FIB writes.',
    'protocol device { }',
  ];
  for (const p of t.peers) {
    const ibgp = p.asn === t.asn;
    lines.push(
      `protocol bgp ${p.name} {`,
      `\tlocal ${p.local} as ${t.asn};`,
      `\tneighbor ${p.address} as ${p.asn};`,
      '\tpassive on;',
      ...(p.rrClient ? ['\trr client;', `\trr cluster id ${t.clusterId ?? t.routerId};`] : []),
      // An iBGP peer counts as multihop, its next hops resolved recursively; these are on the link.
      ...(ibgp ? ['\tdirect;'] : []),
      '\tipv4 { import all; export all; };',
      '}',
    );
  }
  writeFileSync(conf, `${lines.join('\n')}\n`);
  const log = join(dir, 'bird.out');
  const main = spawnIn(t.ns, 'bird', ['-f', '-c', conf, '-s', sock, '-P', join(dir, 'bird.pid')], log);
  await until(
    'bird control socket',
    () => existsSync(sock),
    15_000,
    () => !running(main),
  );
  return make('bird', main, [main], join(dir, 'bird.log'));
}

async function startFrr(t: Topology, dir: string): Promise<Dut> {
  // zebra drops to the frr user: it must create its socket and pid file here.
  chmodSync(dir, 0o777);
  const zserv = join(dir, 'zserv.api');
  const zebra = spawnIn(
    t.ns,
    '/usr/lib/frr/zebra',
    [
      ...['-f', '/dev/null', '-i', join(dir, 'zebra.pid'), '-z', zserv, '--vty_socket', dir],
      ...['-u', 'frr', '-g', 'frr', '-A', '127.0.0.1', '-P', '0'],
    ],
    join(dir, 'zebra.log'),
  );
  await until(
    'zebra socket',
    () => existsSync(zserv),
    10_000,
    () => !running(zebra),
  );
  const conf = join(dir, 'bgpd.conf');
  const out = [
    'frr defaults traditional',
    'hostname dut',
    `log file ${join(dir, 'bgpd.log')} informational`,
    '!',
    `router bgp ${t.asn}`,
    ` bgp router-id ${t.routerId}`,
    ' no bgp ebgp-requires-policy',
    ' no bgp network import-check',
  ];
  for (const p of t.peers) {
    out.push(
      ` neighbor ${p.address} remote-as ${p.asn}`,
      ` neighbor ${p.address} passive`,
      ` neighbor ${p.address} advertisement-interval 0`,
    );
  }
  if (t.clusterId) out.push(` bgp cluster-id ${t.clusterId}`);
  out.push(' address-family ipv4 unicast');
  for (const p of t.peers) {
    out.push(`  neighbor ${p.address} activate`);
    if (p.rrClient) out.push(`  neighbor ${p.address} route-reflector-client`);
  }
  out.push(' exit-address-family', '!');
  writeFileSync(conf, `${out.join('\n')}\n`);
  const log = join(dir, 'bgpd.out');
  const main = spawnIn(
    t.ns,
    '/usr/lib/frr/bgpd',
    [
      ...['-f', conf, '-i', join(dir, 'bgpd.pid'), '-z', zserv],
      ...['-n', '-S', '--vty_socket', dir, '-A', '127.0.0.1', '-P', '0'],
    ],
    log,
  );
  await until(
    'bgpd vty socket',
    () => existsSync(join(dir, 'bgpd.vty')),
    15_000,
    () => !running(main),
  );
  return make('frr', main, [zebra, main], join(dir, 'bgpd.log'));
}

async function startGobgp(t: Topology, dir: string): Promise<Dut> {
  const conf = join(dir, 'gobgpd.toml');
  const q = JSON.stringify;
  const out = ['[global.config]', `  as = ${t.asn}`, `  router-id = ${q(t.routerId)}`, '  port = 179'];
  for (const p of t.peers) {
    out.push(
      '[[neighbors]]',
      '  [neighbors.config]',
      `    neighbor-address = ${q(p.address)}`,
      `    peer-as = ${p.asn}`,
      '  [neighbors.transport.config]',
      '    passive-mode = true',
      '  [[neighbors.afi-safis]]',
      '    [neighbors.afi-safis.config]',
      '      afi-safi-name = "ipv4-unicast"',
    );
  }
  writeFileSync(conf, `${out.join('\n')}\n`);
  const log = join(dir, 'gobgpd.log');
  const main = spawnIn(
    t.ns,
    'gobgpd',
    ['-f', conf, '-p', '--api-hosts', '127.0.0.1:50051', '--pprof-disable'],
    log,
  );
  await until(
    'gobgpd API',
    () => {
      try {
        execFileSync('ip', ['netns', 'exec', t.ns, 'gobgp', '-p', '50051', 'global'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    },
    15_000,
    () => !running(main),
  );
  return make('gobgp', main, [main], log);
}

/** The Node floor (relay.ts): the injector is the first peer, the monitor the second. */
async function startRelay(t: Topology, dir: string): Promise<Dut> {
  const log = join(dir, 'relay.log');
  const [inj, mon] = t.peers;
  const main = spawnIn(
    t.ns,
    process.execPath,
    [
      join(ROOT, 'dist/bench/bgp/relay.js'),
      ...['--asn', String(t.asn), '--router-id', t.routerId],
      ...['--in', inj!.address, '--out', mon!.address],
    ],
    log,
  );
  await until(
    'relay listening',
    () => spawnSync('ip', ['netns', 'exec', t.ns, 'ss', '-Hltn', 'sport = :179']).stdout.length > 0,
    15_000,
    () => !running(main),
  );
  return make('relay', main, [main], log);
}

/** Versions of every DUT: the first line each prints (on stdout or, for bird, stderr). */
export function versions(): Record<DutKind, string> {
  const first = (cmd: string, args: string[]): string => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] || 'unknown';
  };
  const commit = first('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  return {
    twill: `${first(process.execPath, [join(ROOT, 'bin/twill.js'), 'version'])} (${commit}), Node ${process.version}`,
    bird: first('bird', ['--version']),
    frr: first('/usr/lib/frr/bgpd', ['--version']),
    gobgp: first('gobgpd', ['--version']),
    relay: `Node ${process.version}`,
  };
}
