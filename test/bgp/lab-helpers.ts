/**
 * Helpers shared by the route-reflection and graceful-restart interop tests:
 *
 * - `buildClab()` builds a containerlab topology out of network namespaces from the file itself
 *   (src/lab/clab.ts reads it), as test/lab/twill-bird.root.test.ts does: every node a namespace,
 *   every link a veth pair named as the file names its endpoints, the `exec` lines run in their
 *   node, and each node's `cmd` run with its `binds` resolved on the host. The Twill image's
 *   `twill` is this checkout's bin/twill.js and the BIRD image's `bird` is the host's. The only
 *   change made to a bound file is where the control sockets go (Twill's `api.listen`, BIRD's
 *   `-s`), into the test's temp folder.
 * - `decodeUpdate()` reads the IPv4 withdrawn routes and NLRI of an UPDATE received by a raw peer
 *   (test/interop/rawpeer.ts), written by hand from RFC 4271 §4.3 so the check does not lean on
 *   Twill's codec. MP_REACH/MP_UNREACH (RFC 4760) are reported by AFI/SAFI only.
 * - `birdc()` and `twillRoutes()` query a daemon the way an operator would.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { getJson } from '../../src/api/http.js';
import { bindHostPath, type ClabNode, type ClabTopology, readClab } from '../../src/lab/clab.js';
import { type Lab, sh } from '../helpers/netns.js';
import { BIN, type TwillRoute } from '../helpers/twill.js';

export interface ClabRun {
  topo: ClabTopology;
  /** Node name -> namespace. */
  ns: Map<string, string>;
  /** Twill node name -> its API socket. */
  twillSock: Map<string, string>;
  /** BIRD node name -> its control socket. */
  birdSock: Map<string, string>;
}

/** The host file bound at `container` in `node`. */
export function bound(file: string, node: ClabNode, container: string): string {
  const b = node.binds.find((x) => x.container === container);
  if (!b) throw new Error(`${node.name} binds nothing at ${container}`);
  return bindHostPath(file, b);
}

/** Build the topology in `file` from namespaces of `lab`; sockets and rewritten configs go in `dir`. */
export function buildClab(lab: Lab, file: string, dir: string): ClabRun {
  const topo = readClab(readFileSync(file, 'utf8'), file);
  const run: ClabRun = { topo, ns: new Map(), twillSock: new Map(), birdSock: new Map() };
  for (const node of topo.nodes) run.ns.set(node.name, lab.ns(node.name));
  for (const [i, link] of topo.links.entries()) {
    const [a, b] = link.endpoints;
    const na = run.ns.get(a.node)!;
    const nb = run.ns.get(b.node)!;
    sh('ip', [
      'link',
      'add',
      `tcl${i}a`,
      'netns',
      na,
      'type',
      'veth',
      'peer',
      'name',
      `tcl${i}b`,
      'netns',
      nb,
    ]);
    sh('ip', ['-n', na, 'link', 'set', `tcl${i}a`, 'name', a.interface, 'up']);
    sh('ip', ['-n', nb, 'link', 'set', `tcl${i}b`, 'name', b.interface, 'up']);
    if (link.mtu !== null) {
      sh('ip', ['-n', na, 'link', 'set', a.interface, 'mtu', String(link.mtu)]);
      sh('ip', ['-n', nb, 'link', 'set', b.interface, 'mtu', String(link.mtu)]);
    }
  }
  for (const node of topo.nodes) {
    const n = run.ns.get(node.name)!;
    for (const line of node.exec) lab.exec(n, 'sh', ['-c', line]);
    const cmd = node.cmd ?? '';
    if (/(^|\/)twill:/.test(node.image ?? '')) {
      const m = /^twill speaker --config (\S+)$/.exec(cmd);
      if (!m) throw new Error(`${node.name}: cmd ${JSON.stringify(cmd)} is not twill speaker --config FILE`);
      const cfg = parse(readFileSync(bound(file, node, m[1]!), 'utf8')) as Record<string, unknown>;
      const sock = join(dir, `${node.name}.sock`);
      cfg.api = { listen: sock };
      const conf = join(dir, `${node.name}.yml`);
      writeFileSync(conf, stringify(cfg));
      lab.spawn(n, process.execPath, [BIN, 'speaker', '--config', conf]);
      run.twillSock.set(node.name, sock);
    } else if (node.image?.includes('bird')) {
      const m = /^bird -f -c (\S+)$/.exec(cmd);
      if (!m) throw new Error(`${node.name}: cmd ${JSON.stringify(cmd)} is not bird -f -c FILE`);
      const sock = join(dir, `${node.name}.ctl`);
      lab.spawn(n, 'bird', [
        '-f',
        '-c',
        bound(file, node, m[1]!),
        '-s',
        sock,
        '-P',
        join(dir, `${node.name}.pid`),
      ]);
      run.birdSock.set(node.name, sock);
    } else {
      throw new Error(`no local role for image ${node.image}`);
    }
  }
  return run;
}

export function birdc(sock: string, ...args: string[]): string {
  return execFileSync('birdc', ['-s', sock, ...args], { encoding: 'utf8' });
}

/** The Loc-RIB of the Twill whose API listens at `sock`, as `twill routes --json` prints it. */
export async function twillRoutes(sock: string, prefix?: string): Promise<TwillRoute[]> {
  const q = prefix ? `?prefix=${encodeURIComponent(prefix)}` : '';
  return (await getJson({ kind: 'unix', path: sock }, `/routes${q}`)) as TwillRoute[];
}

export interface DecodedUpdate {
  withdrawn: string[];
  nlri: string[];
  /** Multiprotocol sections present, as "reach AFI/SAFI" or "unreach AFI/SAFI". */
  mp: string[];
}

function readPrefixes(buf: Buffer, start: number, end: number): string[] {
  const out: string[] = [];
  let i = start;
  while (i < end) {
    const len = buf[i]!;
    const n = Math.ceil(len / 8);
    if (len > 32 || i + 1 + n > end) throw new Error(`bad IPv4 prefix at offset ${i}`);
    const octets = [0, 0, 0, 0];
    for (let k = 0; k < n; k++) octets[k] = buf[i + 1 + k]!;
    out.push(`${octets.join('.')}/${len}`);
    i += 1 + n;
  }
  return out;
}

/** The withdrawn routes and NLRI of an UPDATE message (whole message, as hex). */
export function decodeUpdate(hex: string): DecodedUpdate {
  const buf = Buffer.from(hex, 'hex');
  if (buf.length < 23 || buf[18] !== 2) throw new Error('not an UPDATE');
  const wdLen = buf.readUInt16BE(19);
  const wdEnd = 21 + wdLen;
  const attrLen = buf.readUInt16BE(wdEnd);
  const attrStart = wdEnd + 2;
  const attrEnd = attrStart + attrLen;
  if (attrEnd > buf.length) throw new Error('UPDATE sections overrun the message');
  const mp: string[] = [];
  for (let i = attrStart; i < attrEnd; ) {
    const flags = buf[i]!;
    const type = buf[i + 1]!;
    const ext = (flags & 0x10) !== 0;
    const len = ext ? buf.readUInt16BE(i + 2) : buf[i + 2]!;
    const v = i + (ext ? 4 : 3);
    if (type === 14 || type === 15)
      mp.push(`${type === 14 ? 'reach' : 'unreach'} ${buf.readUInt16BE(v)}/${buf[v + 2]}`);
    i = v + len;
  }
  return { withdrawn: readPrefixes(buf, 21, wdEnd), nlri: readPrefixes(buf, attrEnd, buf.length), mp };
}
