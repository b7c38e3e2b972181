/**
 * The standalone speaker's configuration: `twill speaker --config FILE` reads one YAML file that
 * says who we are (routerId, asn), where we listen, whom we peer with, what we originate and where
 * the local status API listens. This module turns the file's text into a `SpeakerConfig` with
 * every default filled in, or throws one `ConfigError` that lists every problem it found.
 *
 * Parsing, unknown-key suggestions and the common field readers are config/fields.ts's: each
 * problem names the field's path and the expected form, all of them at once, and a key present
 * with no value is an error. Addresses and prefixes are normalised to canonical text (IPv6 per
 * RFC 5952), so `2001:DB8::1` and `2001:db8::1` are the same neighbor and the uniqueness checks
 * see that.
 *
 * What it does not do: read files (the CLI does; this module imports nothing from Node), open
 * sockets, or decide anything at run time. `dialsNeighbor()` applies the mesh rule as a pure
 * function of the config for the speaker to use.
 *
 * Choices worth knowing:
 * - Families default to both ipv4-unicast and ipv6-unicast for every neighbor, as GoBGP and BIRD
 *   do with multiprotocol channels configured: RFC 4760 / RFC 5492 negotiation uses only the
 *   families both sides offer, so offering both costs nothing with a peer that wants one, and one
 *   session can carry both. List `families` to offer fewer.
 * - holdTime follows RFC 4271 §4.2: 0 (no keepalives, no hold timer) or 3..65535 seconds. The
 *   negotiated value is the smaller of ours and the peer's.
 * - The router id must be a non-zero IPv4 address (RFC 6286 §2.1); AS 0 and AS_TRANS (23456,
 *   RFC 6793 §9) are not usable AS numbers.
 * - mesh.lowerAddressDials is Calico's node-to-node mesh rule: of two iBGP peers only the one
 *   with the lower address opens the TCP connection, so each pair has one connection and no
 *   collision to resolve (RFC 4271 §6.8). It applies to iBGP neighbors only.
 */
import {
  checkKeys,
  ConfigError,
  has,
  type Ip,
  Issues,
  isMapping,
  join,
  loadYaml,
  parseIp,
  readBool,
  readInt,
  readIp,
  readString,
  show,
} from '../config/fields.js';
import { AddrError, formatPrefix, parsePrefix } from '../net/addr.js';
import { type Family, familyName, IPV4_UNICAST, IPV6_UNICAST, parseFamilyName } from './wire/constants.js';

export { ConfigError, type ConfigIssue } from '../config/fields.js';

// ---------------------------------------------------------------------------------------------
// Types

export interface ListenConfig {
  /**
   * Canonical IPv4 or IPv6 literal. The default '::' takes IPv4 and IPv6 connections (dual
   * stack; the speaker falls back to '0.0.0.0' on a host without IPv6); '0.0.0.0' only IPv4.
   */
  address: string;
  /** 0 asks the kernel for a free port (tests). */
  port: number;
}

/** Where the local status API listens (and where `twill status --api` connects). */
export type ApiAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export interface NeighborConfig {
  /** Canonical IPv4 or IPv6 text; unique among neighbors. */
  address: string;
  asn: number;
  /** The peer's TCP port, when we dial. */
  port: number;
  /** Never dial; only accept the peer's connection. */
  passive: boolean;
  /** Seconds we offer in OPEN: 0 or 3..65535. */
  holdTime: number;
  /** Seconds between connection attempts (RFC 4271 ConnectRetryTimer). */
  connectRetry: number;
  /** Families offered in OPEN (Multiprotocol capability), in the order written. */
  families: Family[];
  /** Source address for our connection (same family as `address`), or null to let the kernel pick. */
  localAddress: string | null;
  description: string | null;
  /** We reflect to this iBGP neighbor as its route reflector (RFC 4456). */
  routeReflectorClient: boolean;
  /** Send our own address as NEXT_HOP on iBGP (always so on eBGP). */
  nextHopSelf: boolean;
  /** How many times our AS may appear in a path from this neighbor. */
  allowasIn: number;
  /** Most prefixes accepted from this neighbor; more ends the session with Cease 6/1. */
  maxPrefix: number | null;
  /** Prefix rules for what we accept from / send to this neighbor; first match wins. */
  import: PrefixRuleConfig[];
  export: PrefixRuleConfig[];
  /** BFD for this neighbor (bfd-link.ts); absent or null: none. */
  bfd?: BfdNeighborConfig | null;
}

/** BFD timers for a neighbor, milliseconds (RFC 5880 bfd.DesiredMinTxInterval and friends). */
export interface BfdNeighborConfig {
  minTxMs: number;
  minRxMs: number;
  multiplier: number;
}

/** BIRD's and FRR's defaults are 100-300 ms x 3 or 5; Calico users ask for 300 ms x 3. */
export const DEFAULT_BFD: BfdNeighborConfig = { minTxMs: 300, minRxMs: 300, multiplier: 3 };

export interface PrefixRuleConfig {
  /** Canonical prefix text. */
  prefix: string;
  /** Prefix lengths matched (default: exactly the prefix's own length). */
  ge: number;
  le: number;
  action: 'accept' | 'reject';
}

export interface GracefulRestartConfig {
  /** Offer graceful restart (RFC 4724) to every neighbor and help restarting ones. */
  enabled: boolean;
  /** Seconds our neighbors should keep our routes while we restart (12 bits: 1..4095). */
  restartTime: number;
  /** Seconds a restarted speaker waits for End-of-RIB from its neighbors before it advertises. */
  deferralTime: number;
}

export interface SpeakerConfig {
  /** BGP Identifier: non-zero IPv4 text. */
  routerId: string;
  asn: number;
  /** null: do not listen (`listen: false`); only dial. */
  listen: ListenConfig | null;
  neighbors: NeighborConfig[];
  /** Prefixes originated to every neighbor, canonical text (`10.20.0.0/24`, `2001:db8::/48`). */
  originate: string[];
  api: { listen: ApiAddress };
  mesh: { lowerAddressDials: boolean };
  /** RFC 4456 cluster id for reflected routes; the router id unless set. */
  clusterId: string;
  gracefulRestart: GracefulRestartConfig;
  decision: { alwaysCompareMed: boolean };
}

export const DEFAULT_ASN = 64512;
export const DEFAULT_PORT = 179;
/** Every address, IPv4 and IPv6. */
export const DEFAULT_LISTEN_ADDRESS = '::';
export const DEFAULT_HOLD_TIME = 90;
export const DEFAULT_CONNECT_RETRY = 5;
export const DEFAULT_API_SOCKET = '/run/twill/twill.sock';
export const DEFAULT_FAMILIES: readonly Family[] = [IPV4_UNICAST, IPV6_UNICAST];

function readAsn(v: unknown, path: string, issues: Issues): number | undefined {
  const asn = readInt(v, path, 1, 4294967295, issues, 'an AS number 1..4294967295');
  if (asn === 23456) {
    issues.add(path, '23456 is AS_TRANS (RFC 6793), not an AS number to configure');
    return undefined;
  }
  return asn;
}

/** Parse an API address: an absolute unix socket path, HOST:PORT or [IPv6]:PORT. */
function apiAddress(text: string): ApiAddress | string {
  const expected = 'is not an absolute unix socket path, HOST:PORT or [IPv6]:PORT';
  if (text.startsWith('/')) {
    // sun_path is 108 bytes including the terminating NUL.
    if (new TextEncoder().encode(text).length > 107)
      return `${show(text)} is longer than 107 bytes, the limit for a unix socket path`;
    return { kind: 'unix', path: text };
  }
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:([0-9]+)$/.exec(text);
  if (v6) {
    const ip = parseIp(v6[1]!);
    if (ip?.version !== 6) return `${show(text)} ${expected}`;
    host = ip.text;
    portText = v6[2]!;
  } else {
    const m = /^([A-Za-z0-9.-]+):([0-9]+)$/.exec(text);
    if (!m) return `${show(text)} ${expected}`;
    host = m[1]!;
    portText = m[2]!;
    if (/^[0-9.]+$/.test(host)) {
      const ip = parseIp(host);
      if (ip === undefined) return `${show(text)} ${expected}`;
      host = ip.text;
    }
  }
  const port = Number(portText);
  if (!/^[1-9][0-9]{0,4}$/.test(portText) || port > 65535)
    return `${show(text)} has port ${portText}, not 1..65535`;
  return { kind: 'tcp', host, port };
}

/**
 * Parse `twill status --api ADDR` and the like. Throws ConfigError naming `source` (e.g. `--api`)
 * when the text is not an absolute unix socket path, HOST:PORT or [IPv6]:PORT.
 */
export function parseApiAddress(text: string, source = 'api address'): ApiAddress {
  const a = apiAddress(text);
  if (typeof a === 'string') throw new ConfigError(source, [{ path: '', message: a }]);
  return a;
}

export function formatApiAddress(a: ApiAddress): string {
  if (a.kind === 'unix') return a.path;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

// ---------------------------------------------------------------------------------------------
// The document

const TOP_KEYS = [
  'routerId',
  'asn',
  'listen',
  'neighbors',
  'originate',
  'api',
  'mesh',
  'clusterId',
  'gracefulRestart',
  'decision',
] as const;
const GR_KEYS = ['enabled', 'restartTime', 'deferralTime'] as const;
const DECISION_KEYS = ['alwaysCompareMed'] as const;
const RULE_KEYS = ['prefix', 'ge', 'le', 'action'] as const;
const LISTEN_KEYS = ['address', 'port'] as const;
const NEIGHBOR_KEYS = [
  'address',
  'asn',
  'port',
  'passive',
  'holdTime',
  'connectRetry',
  'families',
  'localAddress',
  'description',
  'routeReflectorClient',
  'nextHopSelf',
  'allowasIn',
  'maxPrefix',
  'import',
  'export',
  'bfd',
] as const;
const BFD_KEYS = ['minTx', 'minRx', 'multiplier'] as const;
const API_KEYS = ['listen'] as const;
const MESH_KEYS = ['lowerAddressDials'] as const;

function readListen(v: unknown, issues: Issues): ListenConfig | null | undefined {
  if (v === false) return null;
  if (!isMapping(v)) {
    issues.add('listen', `${show(v)} is not a mapping {address, port} or false`);
    return undefined;
  }
  checkKeys(v, 'listen', LISTEN_KEYS, issues);
  let address = DEFAULT_LISTEN_ADDRESS;
  let port = DEFAULT_PORT;
  if (has(v, 'address', 'listen', issues))
    address = readIp(v.address, 'listen.address', issues)?.text ?? address;
  if (has(v, 'port', 'listen', issues)) port = readInt(v.port, 'listen.port', 0, 65535, issues) ?? port;
  return { address, port };
}

function readFamilies(v: unknown, path: string, issues: Issues): Family[] | undefined {
  if (!Array.isArray(v) || v.length === 0) {
    issues.add(path, `${show(v)} is not a non-empty list of ipv4-unicast, ipv6-unicast`);
    return undefined;
  }
  const out: Family[] = [];
  v.forEach((item, i) => {
    const f = typeof item === 'string' ? parseFamilyName(item) : undefined;
    if (f === undefined) issues.add(`${path}[${i}]`, `${show(item)} is not ipv4-unicast or ipv6-unicast`);
    else if (out.includes(f)) issues.add(`${path}[${i}]`, `${familyName(f)} is listed twice`);
    else out.push(f);
  });
  return out;
}

function readNeighbor(v: unknown, path: string, issues: Issues): NeighborConfig | undefined {
  if (!isMapping(v)) {
    issues.add(path, `${show(v)} is not a mapping {address, asn, ...}`);
    return undefined;
  }
  checkKeys(v, path, NEIGHBOR_KEYS, issues);
  const at = (k: string) => join(path, k);
  let address: Ip | undefined;
  let asn: number | undefined;
  if (has(v, 'address', path, issues)) address = readIp(v.address, at('address'), issues);
  else if (!('address' in v)) issues.add(at('address'), 'required (the neighbor IPv4 or IPv6 address)');
  if (has(v, 'asn', path, issues)) asn = readAsn(v.asn, at('asn'), issues);
  else if (!('asn' in v)) issues.add(at('asn'), 'required (the neighbor AS number, 1..4294967295)');

  const n: NeighborConfig = {
    address: address?.text ?? '',
    asn: asn ?? 0,
    port: DEFAULT_PORT,
    passive: false,
    holdTime: DEFAULT_HOLD_TIME,
    connectRetry: DEFAULT_CONNECT_RETRY,
    families: [...DEFAULT_FAMILIES],
    localAddress: null,
    description: null,
    routeReflectorClient: false,
    nextHopSelf: false,
    allowasIn: 0,
    maxPrefix: null,
    import: [],
    export: [],
  };
  if (has(v, 'port', path, issues)) n.port = readInt(v.port, at('port'), 1, 65535, issues) ?? n.port;
  if (has(v, 'passive', path, issues)) n.passive = readBool(v.passive, at('passive'), issues) ?? n.passive;
  if (has(v, 'holdTime', path, issues)) {
    const h = v.holdTime;
    if (typeof h === 'number' && Number.isInteger(h) && (h === 0 || (h >= 3 && h <= 65535))) n.holdTime = h;
    else issues.add(at('holdTime'), `${show(h)} is not 0 or 3..65535`);
  }
  if (has(v, 'connectRetry', path, issues))
    n.connectRetry =
      readInt(v.connectRetry, at('connectRetry'), 1, 3600, issues, 'a number of seconds 1..3600') ??
      n.connectRetry;
  if (has(v, 'families', path, issues))
    n.families = readFamilies(v.families, at('families'), issues) ?? n.families;
  if (has(v, 'localAddress', path, issues)) {
    const local = readIp(v.localAddress, at('localAddress'), issues);
    if (local !== undefined && address !== undefined && local.version !== address.version)
      issues.add(
        at('localAddress'),
        `${local.text} is IPv${local.version} but the neighbor address ${address.text} is IPv${address.version}`,
      );
    else if (local !== undefined) n.localAddress = local.text;
  }
  if (has(v, 'description', path, issues))
    n.description = readString(v.description, at('description'), issues) ?? null;
  if (has(v, 'routeReflectorClient', path, issues))
    n.routeReflectorClient = readBool(v.routeReflectorClient, at('routeReflectorClient'), issues) ?? false;
  if (has(v, 'nextHopSelf', path, issues))
    n.nextHopSelf = readBool(v.nextHopSelf, at('nextHopSelf'), issues) ?? false;
  if (has(v, 'allowasIn', path, issues))
    n.allowasIn = readInt(v.allowasIn, at('allowasIn'), 0, 10, issues) ?? 0;
  if (has(v, 'maxPrefix', path, issues))
    n.maxPrefix = readInt(v.maxPrefix, at('maxPrefix'), 1, 100_000_000, issues) ?? null;
  if (has(v, 'import', path, issues)) n.import = readRules(v.import, at('import'), issues);
  if (has(v, 'export', path, issues)) n.export = readRules(v.export, at('export'), issues);
  if (has(v, 'bfd', path, issues)) n.bfd = readBfd(v.bfd, at('bfd'), issues);
  if (n.routeReflectorClient && asn !== undefined && address !== undefined && n.asn !== asn) {
    // (checked against our AS in parseSpeakerConfig)
  }
  return address !== undefined && asn !== undefined ? n : undefined;
}

function readRules(v: unknown, path: string, issues: Issues): PrefixRuleConfig[] {
  if (!Array.isArray(v)) {
    issues.add(path, `${show(v)} is not a list of rules {prefix, ge, le, action}`);
    return [];
  }
  const out: PrefixRuleConfig[] = [];
  v.forEach((item, i) => {
    const at = `${path}[${i}]`;
    if (!isMapping(item)) {
      issues.add(at, `${show(item)} is not a rule {prefix, ge, le, action}`);
      return;
    }
    checkKeys(item, at, RULE_KEYS, issues);
    let prefix: string | undefined;
    let len = 0;
    let max = 32;
    if (typeof item.prefix === 'string') {
      try {
        const k = parsePrefix(item.prefix);
        prefix = formatPrefix(k);
        len = Number(prefix.slice(prefix.lastIndexOf('/') + 1));
        max = prefix.includes(':') ? 128 : 32;
      } catch (err) {
        if (!(err instanceof AddrError)) throw err;
        issues.add(`${at}.prefix`, `${show(item.prefix)}: ${err.message}`);
      }
    } else issues.add(`${at}.prefix`, 'required (an IPv4 or IPv6 prefix)');
    const ge = has(item, 'ge', at, issues) ? readInt(item.ge, `${at}.ge`, len, max, issues) : len;
    const le = has(item, 'le', at, issues)
      ? readInt(item.le, `${at}.le`, len, max, issues)
      : has(item, 'ge', at, issues)
        ? max
        : len;
    if (ge !== undefined && le !== undefined && ge > le) issues.add(at, `ge ${ge} is above le ${le}`);
    const action = item.action;
    if (action !== 'accept' && action !== 'reject')
      issues.add(`${at}.action`, `${show(action)} is not accept or reject`);
    if (
      prefix !== undefined &&
      ge !== undefined &&
      le !== undefined &&
      (action === 'accept' || action === 'reject')
    ) {
      out.push({ prefix, ge, le, action });
    }
  });
  return out;
}

function readOriginate(v: unknown, issues: Issues): string[] {
  if (!Array.isArray(v)) {
    issues.add('originate', `${show(v)} is not a list of prefixes`);
    return [];
  }
  const out: string[] = [];
  const seen = new Map<string, number>();
  v.forEach((item, i) => {
    const path = `originate[${i}]`;
    if (typeof item !== 'string') {
      issues.add(path, `${show(item)} is not a prefix (ADDRESS/LENGTH)`);
      return;
    }
    let canonical: string;
    try {
      canonical = formatPrefix(parsePrefix(item));
    } catch (err) {
      if (!(err instanceof AddrError)) throw err;
      let masked: string | undefined;
      try {
        masked = formatPrefix(parsePrefix(item, true));
      } catch {
        masked = undefined;
      }
      issues.add(
        path,
        masked !== undefined
          ? `${show(item)} has host bits set (did you mean ${masked}?)`
          : `${show(item)} is not an IPv4 or IPv6 prefix (ADDRESS/LENGTH)`,
      );
      return;
    }
    const first = seen.get(canonical);
    if (first !== undefined) issues.add(path, `${canonical} is also originate[${first}]`);
    else {
      seen.set(canonical, i);
      out.push(canonical);
    }
  });
  return out;
}

/**
 * Parse and check a speaker config. `source` names the file in messages. Throws ConfigError
 * listing every problem, one per line.
 */
export function parseSpeakerConfig(text: string, source: string): SpeakerConfig {
  const doc = loadYaml(text, source);
  const issues = new Issues();
  const root: Record<string, unknown> = doc === null ? {} : isMapping(doc) ? doc : {};
  if (doc !== null && !isMapping(doc))
    issues.add('', `the document is ${show(doc)}, not a mapping of fields`);
  checkKeys(root, '', TOP_KEYS, issues);

  const config: SpeakerConfig = {
    routerId: '',
    asn: DEFAULT_ASN,
    listen: { address: DEFAULT_LISTEN_ADDRESS, port: DEFAULT_PORT },
    neighbors: [],
    originate: [],
    api: { listen: { kind: 'unix', path: DEFAULT_API_SOCKET } },
    mesh: { lowerAddressDials: false },
    clusterId: '',
    gracefulRestart: { enabled: true, restartTime: 120, deferralTime: 60 },
    decision: { alwaysCompareMed: false },
  };

  if (has(root, 'routerId', '', issues)) {
    const r = root.routerId;
    const ip = typeof r === 'string' ? parseIp(r) : undefined;
    if (ip?.version !== 4 || ip.text === '0.0.0.0')
      issues.add('routerId', `${show(r)} is not a non-zero IPv4 address (e.g. 10.10.0.1)`);
    else config.routerId = ip.text;
  } else if (!('routerId' in root)) {
    issues.add('routerId', 'required (a non-zero IPv4 address, usually the node address)');
  }
  if (has(root, 'asn', '', issues)) config.asn = readAsn(root.asn, 'asn', issues) ?? config.asn;
  if ('listen' in root) {
    if (root.listen === null) issues.add('listen', 'has no value (a mapping {address, port}, or false)');
    else {
      const l = readListen(root.listen, issues);
      if (l !== undefined) config.listen = l;
    }
  }

  if (has(root, 'neighbors', '', issues)) {
    const list = root.neighbors;
    if (!Array.isArray(list)) issues.add('neighbors', `${show(list)} is not a list of neighbors`);
    else {
      const byAddress = new Map<string, number>();
      list.forEach((item, i) => {
        const n = readNeighbor(item, `neighbors[${i}]`, issues);
        if (n === undefined) return;
        const first = byAddress.get(n.address);
        if (first !== undefined)
          issues.add(`neighbors[${i}].address`, `${n.address} is also neighbors[${first}].address`);
        else byAddress.set(n.address, i);
        config.neighbors.push(n);
      });
    }
  }

  if (has(root, 'originate', '', issues)) config.originate = readOriginate(root.originate, issues);

  config.clusterId = config.routerId;
  if (has(root, 'clusterId', '', issues)) {
    const ip = typeof root.clusterId === 'string' ? parseIp(root.clusterId) : undefined;
    if (ip?.version !== 4) issues.add('clusterId', `${show(root.clusterId)} is not an IPv4 address`);
    else config.clusterId = ip.text;
  }
  if (has(root, 'gracefulRestart', '', issues)) {
    const gr = root.gracefulRestart;
    if (!isMapping(gr))
      issues.add('gracefulRestart', `${show(gr)} is not a mapping {enabled, restartTime, deferralTime}`);
    else {
      checkKeys(gr, 'gracefulRestart', GR_KEYS, issues);
      const g = config.gracefulRestart;
      if (has(gr, 'enabled', 'gracefulRestart', issues))
        g.enabled = readBool(gr.enabled, 'gracefulRestart.enabled', issues) ?? g.enabled;
      if (has(gr, 'restartTime', 'gracefulRestart', issues))
        g.restartTime =
          readInt(gr.restartTime, 'gracefulRestart.restartTime', 1, 4095, issues) ?? g.restartTime;
      if (has(gr, 'deferralTime', 'gracefulRestart', issues))
        g.deferralTime =
          readInt(gr.deferralTime, 'gracefulRestart.deferralTime', 1, 3600, issues) ?? g.deferralTime;
    }
  }
  if (has(root, 'decision', '', issues)) {
    const d = root.decision;
    if (!isMapping(d)) issues.add('decision', `${show(d)} is not a mapping {alwaysCompareMed}`);
    else {
      checkKeys(d, 'decision', DECISION_KEYS, issues);
      if (has(d, 'alwaysCompareMed', 'decision', issues))
        config.decision.alwaysCompareMed =
          readBool(d.alwaysCompareMed, 'decision.alwaysCompareMed', issues) ?? false;
    }
  }
  config.neighbors.forEach((n, i) => {
    if (n.routeReflectorClient && n.asn !== config.asn)
      issues.add(
        `neighbors[${i}].routeReflectorClient`,
        `route reflection is for iBGP; AS ${n.asn} is not ours (${config.asn})`,
      );
  });

  if (has(root, 'api', '', issues)) {
    const api = root.api;
    if (!isMapping(api)) issues.add('api', `${show(api)} is not a mapping {listen}`);
    else {
      checkKeys(api, 'api', API_KEYS, issues);
      if (has(api, 'listen', 'api', issues)) {
        const a = typeof api.listen === 'string' ? apiAddress(api.listen) : undefined;
        if (a === undefined)
          issues.add(
            'api.listen',
            `${show(api.listen)} is not an absolute unix socket path, HOST:PORT or [IPv6]:PORT`,
          );
        else if (typeof a === 'string') issues.add('api.listen', a);
        else config.api.listen = a;
      }
    }
  }

  if (has(root, 'mesh', '', issues)) {
    const mesh = root.mesh;
    if (!isMapping(mesh)) issues.add('mesh', `${show(mesh)} is not a mapping {lowerAddressDials}`);
    else {
      checkKeys(mesh, 'mesh', MESH_KEYS, issues);
      if (has(mesh, 'lowerAddressDials', 'mesh', issues))
        config.mesh.lowerAddressDials =
          readBool(mesh.lowerAddressDials, 'mesh.lowerAddressDials', issues) ?? false;
    }
  }

  issues.throwIfAny(source);
  return config;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length && i < b.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * Whether the speaker opens the TCP connection to `n` (else it only waits for the peer's).
 * A passive neighbor is never dialled. With mesh.lowerAddressDials, an iBGP neighbor (same AS)
 * is dialled only when our address for it is the lower one: our address is `localAddress`, or
 * the router id for an IPv4 neighbor. When there is no address of the neighbor's family to
 * compare (an IPv6 neighbor without localAddress) we dial, and collision detection
 * (RFC 4271 §6.8) settles it.
 */
export function dialsNeighbor(config: SpeakerConfig, n: NeighborConfig): boolean {
  if (n.passive) return false;
  if (!config.mesh.lowerAddressDials || n.asn !== config.asn) return true;
  const peer = parseIp(n.address);
  const local = parseIp(n.localAddress ?? config.routerId);
  if (peer === undefined || local === undefined || peer.version !== local.version) return true;
  return compareBytes(local.bytes, peer.bytes) < 0;
}

/** `bfd: true` (the defaults), `false`, or {minTx, minRx, multiplier} (milliseconds). */
function readBfd(v: unknown, path: string, issues: Issues): BfdNeighborConfig | null {
  if (v === true) return { ...DEFAULT_BFD };
  if (v === false || v === null) return null;
  if (!isMapping(v)) {
    issues.add(path, `expected true, false or {minTx, minRx, multiplier}, got ${show(v)}`);
    return null;
  }
  checkKeys(v, path, BFD_KEYS, issues);
  const b = { ...DEFAULT_BFD };
  if (v.minTx !== undefined)
    b.minTxMs = readInt(v.minTx, join(path, 'minTx'), 10, 60_000, issues) ?? b.minTxMs;
  if (v.minRx !== undefined)
    b.minRxMs = readInt(v.minRx, join(path, 'minRx'), 10, 60_000, issues) ?? b.minRxMs;
  if (v.multiplier !== undefined)
    b.multiplier = readInt(v.multiplier, join(path, 'multiplier'), 1, 255, issues) ?? b.multiplier;
  return b;
}
