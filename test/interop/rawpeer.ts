/**
 * Test-side wrapper of rawpeer.mjs (a BGP peer that sends exactly the bytes it is given and
 * records what it receives), plus small byte builders for the messages tests send through it.
 *
 * The builders write RFC 4271 §4 layouts by hand on purpose: the interop harness must not depend
 * on Twill's codec, whose bugs it exists to find. They build well-formed pieces; a test makes
 * them malformed by choosing odd values (ORIGIN 5) or by editing the hex (a bad marker).
 */
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Lab, waitFor } from '../helpers/netns.js';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'rawpeer.mjs');

export interface RawPeerSpec {
  ns: string;
  dir: string;
  asn: number;
  routerId: string;
  /** Connect to the router at address:port (port default 179)... */
  connect?: { address: string; port?: number };
  /** ...or wait for it to connect to us. */
  listen?: { address: string; port?: number };
  /** Hold time offered in our OPEN (default 90). */
  holdTime?: number;
  families?: ('ipv4' | 'ipv6')[];
  /** Script lines: hex messages, `sleep MS`, `waitfile PATH`, `close` (see rawpeer.mjs). */
  script: string[];
  /** Run the script right after TCP connects instead of after the session is established. */
  immediate?: boolean;
  /** Send no OPEN of our own. */
  noOpen?: boolean;
}

export type RawEvent =
  | { t: number; event: string; detail?: string }
  | { t: number; dir: 'rx' | 'tx'; type: number; hex: string }
  | { t: number; dir: 'rx'; raw: string };

export interface RawMessage {
  type: number;
  hex: string;
}

export interface RawPeer {
  pid(): number;
  stop(): Promise<void>;
  events(): RawEvent[];
  /** Messages received from the router, in order. */
  received(): RawMessage[];
  /** Resolves with the first received NOTIFICATION as {code, subcode, dataHex}. */
  waitNotification(ms?: number): Promise<{ code: number; subcode: number; dataHex: string }>;
  waitEvent(name: string, ms?: number): Promise<void>;
  /** Create the file a `waitfile NAME` script line (NAME relative to dir) waits for. */
  signal(name: string): void;
  log(): string;
}

export async function startRawPeer(lab: Lab, spec: RawPeerSpec): Promise<RawPeer> {
  mkdirSync(spec.dir, { recursive: true });
  const out = join(spec.dir, 'rawpeer.jsonl');
  const scriptFile = join(spec.dir, 'rawpeer.script');
  const logFile = join(spec.dir, 'rawpeer.log');
  writeFileSync(out, '');
  writeFileSync(
    scriptFile,
    `${spec.script.map((l) => l.replace(/^waitfile\s+(?!\/)(\S+)/, (_, f: string) => `waitfile ${join(spec.dir, f)}`)).join('\n')}\n`,
  );
  const args = [
    SCRIPT,
    '--out',
    out,
    '--script',
    scriptFile,
    '--asn',
    String(spec.asn),
    '--id',
    spec.routerId,
  ];
  args.push(
    '--hold',
    String(spec.holdTime ?? 90),
    '--families',
    (spec.families ?? ['ipv4', 'ipv6']).join(','),
  );
  const hostPort = (a: string, p: number) => (a.includes(':') ? `[${a}]:${p}` : `${a}:${p}`);
  if (spec.connect) args.push('--connect', hostPort(spec.connect.address, spec.connect.port ?? 179));
  else if (spec.listen)
    args.push('--listen', hostPort(spec.listen.address ?? '0.0.0.0', spec.listen.port ?? 179));
  else throw new Error('raw peer needs connect or listen');
  if (spec.immediate) args.push('--immediate');
  if (spec.noOpen) args.push('--no-open');

  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = lab.spawn(spec.ns, process.execPath, args, { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }

  const events = (): RawEvent[] =>
    readFileSync(out, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as RawEvent);
  const received = (): RawMessage[] =>
    events().flatMap((e) =>
      'dir' in e && e.dir === 'rx' && 'hex' in e ? [{ type: e.type, hex: e.hex }] : [],
    );

  return {
    pid: () => {
      if (child.pid === undefined) throw new Error('raw peer did not start');
      return child.pid;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    },
    events,
    received,
    async waitNotification(ms = 15_000) {
      const n = await waitFor(
        'a NOTIFICATION from the router',
        () => received().find((m) => m.type === 3),
        ms,
      );
      return {
        code: Number.parseInt(n.hex.slice(38, 40), 16),
        subcode: Number.parseInt(n.hex.slice(40, 42), 16),
        dataHex: n.hex.slice(42),
      };
    },
    async waitEvent(name, ms = 15_000) {
      await waitFor(
        `raw peer event ${name}`,
        () => events().some((e) => 'event' in e && e.event === name),
        ms,
      );
    },
    signal(name) {
      writeFileSync(join(spec.dir, name), '');
    },
    log: () => readFileSync(logFile, 'utf8'),
  };
}

// ---------------------------------------------------------------------------------------------
// Byte builders (hex strings)

const hex8 = (n: number) => (n & 0xff).toString(16).padStart(2, '0');
const hex16 = (n: number) => (n & 0xffff).toString(16).padStart(4, '0');
const hex32 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

/** A whole message: marker, length, type, body. `marker` replaces the 16 marker octets. */
export function bgpMessage(type: number, bodyHex: string, marker = 'ff'.repeat(16)): string {
  return `${marker}${hex16(19 + bodyHex.length / 2)}${hex8(type)}${bodyHex}`;
}

/** A path attribute; the Extended Length flag (0x10) is set when the value needs it. */
export function pathAttribute(flags: number, type: number, valueHex: string): string {
  const len = valueHex.length / 2;
  return len > 255
    ? `${hex8(flags | 0x10)}${hex8(type)}${hex16(len)}${valueHex}`
    : `${hex8(flags & ~0x10)}${hex8(type)}${hex8(len)}${valueHex}`;
}

/** An IPv4 prefix in NLRI encoding (length octet, then the significant octets). */
export function ipv4Prefix(cidr: string): string {
  const [addr = '', lenText = '32'] = cidr.split('/');
  const len = Number(lenText);
  const octets = addr
    .split('.')
    .map(Number)
    .slice(0, Math.ceil(len / 8));
  return hex8(len) + octets.map(hex8).join('');
}

export const ORIGIN_IGP = 0;

/** Attributes of a plain eBGP IPv4 route: ORIGIN, AS_PATH (one AS_SEQUENCE, 4-octet ASNs), NEXT_HOP. */
export function ipv4RouteAttributes(opts: { origin?: number; asPath: number[]; nextHop: string }): string {
  const seg = opts.asPath.length ? `02${hex8(opts.asPath.length)}${opts.asPath.map(hex32).join('')}` : '';
  return (
    pathAttribute(0x40, 1, hex8(opts.origin ?? ORIGIN_IGP)) +
    pathAttribute(0x40, 2, seg) +
    pathAttribute(0x40, 3, opts.nextHop.split('.').map(Number).map(hex8).join(''))
  );
}

/** An UPDATE (type 2) from its three sections. */
export function updateMessage(opts: { withdrawn?: string[]; attributes: string; nlri: string[] }): string {
  const wd = (opts.withdrawn ?? []).map(ipv4Prefix).join('');
  const nlri = opts.nlri.map(ipv4Prefix).join('');
  return bgpMessage(
    2,
    `${hex16(wd.length / 2)}${wd}${hex16(opts.attributes.length / 2)}${opts.attributes}${nlri}`,
  );
}

export const KEEPALIVE_HEX = bgpMessage(4, '');
