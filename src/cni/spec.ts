/**
 * The CNI specification as the plugin speaks it, pure: versions, error objects, the
 * environment, the network configuration, and results in the format of each version. No I/O.
 * CNI spec 1.1.0 (containernetworking/cni SPEC.md); configurations of 0.3.0, 0.3.1, 0.4.0 and
 * 1.0.0 are accepted too and answered in their own result format.
 *
 * - Parameters (SPEC.md section 2): CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME,
 *   CNI_ARGS (`K=V;...`; K8S_POD_NAMESPACE and K8S_POD_NAME name the pod; any other key is an
 *   error unless `IgnoreUnknown=1` is among them, as the reference plugins' LoadArgs does) and
 *   CNI_PATH (unused: Twill delegates to no plugin). Each command checks only the variables the
 *   spec requires of it (DEL may come without CNI_NETNS; GC, STATUS and VERSION without any).
 * - Error objects (section 5) carry the configuration's cniVersion when it is a supported one:
 *     1 incompatible CNI version (also CHECK below 0.4.0, GC and STATUS below 1.1.0)
 *     4 invalid environment variables (the message names them)   5 I/O failure
 *     6 undecodable stdin                                         7 invalid network configuration
 *     11 try again later: the agent is not running, not ready, timed out or met a conflict
 *     50 STATUS: not available (the agent is not running or not ready)
 *     Twill's own: 100 no address left, 101 kernel configuration failed, 102 CHECK found a
 *     difference, 103 the agent failed otherwise, 104 an unexpected failure in the plugin.
 * - Configuration keys besides the spec's (cniVersion, name, type, prevResult, dns, ...): mtu
 *   (68..65535, default 1500), ipv4 (default true), ipv6 (default false), agentSocket (default
 *   $TWILL_CNI_SOCKET, else /run/twill/cni.sock), timeoutSeconds (agent requests, default 30).
 *   `ipam` is ignored: the agent assigns (a departure from plugins that delegate IPAM).
 * - Results: read in any supported version (a prevResult), kept version-neutral, written in the
 *   configuration's version: 0.3.x and 0.4.0 carry `version` in each ip, 1.0.0 drops it, 1.1.0
 *   adds interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope.
 * - GC's `cni.dev/valid-attachments` (and the misspelt `cni.dev/attachments` libcni also sends).
 *
 * Loaded by the plugin on every invocation: imports protocol.ts's constants only.
 */
import { type AttachmentId, DEFAULT_SOCKET, type Family } from './protocol.js';

// ---------------------------------------------------------------------------------------------
// Versions and errors

export const SPEC_VERSION = '1.1.0';
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

const rank = (v: CniVersion): number => SUPPORTED_VERSIONS.indexOf(v);
export const atLeast = (v: CniVersion, min: CniVersion): boolean => rank(v) >= rank(min);

/** Error codes: the spec's (SPEC.md section 5) and Twill's own (100+). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableLimited: 51,
  AddressesExhausted: 100,
  KernelFailure: 101,
  CheckFailed: 102,
  AgentFailure: 103,
  Unexpected: 104,
} as const;

export class CniError extends Error {
  override name = 'CniError';
  constructor(
    readonly code: number,
    message: string,
    readonly details?: string,
  ) {
    super(message);
  }
}

export interface CniErrorObject {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export function errorObject(e: CniError, version: string = SPEC_VERSION): CniErrorObject {
  return {
    cniVersion: version,
    code: e.code,
    msg: e.message,
    ...(e.details !== undefined && e.details !== '' ? { details: e.details } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Environment

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'GC' | 'STATUS' | 'VERSION';
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'];

export interface Invocation {
  command: Command;
  containerID: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS, parsed. */
  args: Record<string, string>;
  namespace?: string;
  pod?: string;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Linux interface names: 1..15 bytes, no '/', ':', whitespace; not '.' or '..'. */
const IFNAME = /^[^/:\s]{1,15}$/;
/** A path ip(8) and nsenter can take as one batch word. */
const NETNS_PATH = /^\/[^\s"'\\#]*$/;
const KNOWN_ARGS = new Set([
  'IgnoreUnknown',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
]);

/** `K=V;K=V` (CNI_ARGS). Throws CniError 4. */
export function parseCniArgs(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined || text === '') return out;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0)
      throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS: ${JSON.stringify(pair)} is not K=V`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const ignoreUnknown = ['1', 'true'].includes((out.IgnoreUnknown ?? '').toLowerCase());
  if (!ignoreUnknown) {
    const unknown = Object.keys(out).filter((k) => !KNOWN_ARGS.has(k));
    if (unknown.length > 0)
      throw new CniError(
        CniCode.InvalidEnvironment,
        `CNI_ARGS: unknown key ${unknown.join(', ')} (add IgnoreUnknown=1 to pass keys Twill does not use)`,
      );
  }
  return out;
}

/** Read and check the CNI_* variables the command needs. Throws CniError 4. */
export function parseEnv(env: Record<string, string | undefined>): Invocation {
  const raw = env.CNI_COMMAND;
  if (raw === undefined || raw === '')
    throw new CniError(CniCode.InvalidEnvironment, 'CNI_COMMAND is not set');
  const command = raw.toUpperCase() as Command;
  if (!COMMANDS.includes(command))
    throw new CniError(
      CniCode.InvalidEnvironment,
      `CNI_COMMAND: ${JSON.stringify(raw)} is not ADD, DEL, CHECK, GC, STATUS or VERSION`,
    );
  const attachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const bad: string[] = [];
  const containerID = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (attachment) {
    if (!CONTAINER_ID.test(containerID))
      bad.push(
        containerID === ''
          ? 'CNI_CONTAINERID is not set'
          : `CNI_CONTAINERID: ${JSON.stringify(containerID)} is not alphanumeric followed by alphanumerics, "_", "." or "-"`,
      );
    if (!IFNAME.test(ifname) || ifname === '.' || ifname === '..')
      bad.push(
        ifname === ''
          ? 'CNI_IFNAME is not set'
          : `CNI_IFNAME: ${JSON.stringify(ifname)} is not an interface name (1-15 characters, no "/", ":" or spaces)`,
      );
    const needsNetns = command !== 'DEL';
    if (netns === '' ? needsNetns : !NETNS_PATH.test(netns))
      bad.push(
        netns === ''
          ? 'CNI_NETNS is not set'
          : `CNI_NETNS: ${JSON.stringify(netns)} is not an absolute path without spaces or quotes`,
      );
  }
  if (bad.length > 0) throw new CniError(CniCode.InvalidEnvironment, bad.join('; '));
  const args = parseCniArgs(env.CNI_ARGS);
  const namespace = args.K8S_POD_NAMESPACE || undefined;
  const pod = args.K8S_POD_NAME || undefined;
  if ((namespace === undefined) !== (pod === undefined))
    throw new CniError(
      CniCode.InvalidEnvironment,
      'CNI_ARGS: K8S_POD_NAMESPACE and K8S_POD_NAME come together',
    );
  return {
    command,
    containerID,
    netns,
    ifname,
    args,
    ...(namespace !== undefined ? { namespace, pod } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Results (SPEC.md section 5), version-neutral inside, formatted per version on output

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

export interface CniIp {
  /** CIDR text. */
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

export interface CniDns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

export interface CniResult {
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns: CniDns;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const CIDR = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*)\/\d{1,3}$/;

function pickStrings(
  o: Record<string, unknown>,
  keys: readonly string[],
  where: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'string') throw new CniError(CniCode.InvalidConfig, `${where}.${k}: expected a string`);
    out[k] = v;
  }
  return out;
}

function pickUints(
  o: Record<string, unknown>,
  keys: readonly string[],
  where: string,
): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of keys) {
    const v = o[k];
    if (v === undefined) continue;
    if (!isUint(v))
      throw new CniError(CniCode.InvalidConfig, `${where}.${k}: expected a non-negative integer`);
    out[k] = v;
  }
  return out;
}

function stringList(v: unknown, where: string): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string'))
    throw new CniError(CniCode.InvalidConfig, `${where}: expected a list of strings`);
  return v;
}

export function parseDns(v: unknown, where: string): CniDns {
  if (v === undefined) return {};
  if (!isObject(v)) throw new CniError(CniCode.InvalidConfig, `${where}: expected an object`);
  const dns: CniDns = {};
  const ns = stringList(v.nameservers, `${where}.nameservers`);
  if (ns) dns.nameservers = ns;
  if (v.domain !== undefined) {
    if (typeof v.domain !== 'string')
      throw new CniError(CniCode.InvalidConfig, `${where}.domain: expected a string`);
    dns.domain = v.domain;
  }
  const search = stringList(v.search, `${where}.search`);
  if (search) dns.search = search;
  const options = stringList(v.options, `${where}.options`);
  if (options) dns.options = options;
  return dns;
}

/** A result of any supported version (a prevResult) in the version-neutral form. Throws 7. */
export function parseResult(v: unknown, where = 'prevResult'): CniResult {
  if (!isObject(v)) throw new CniError(CniCode.InvalidConfig, `${where}: expected an object`);
  const list = (key: string): Record<string, unknown>[] => {
    const x = v[key];
    if (x === undefined || x === null) return [];
    if (!Array.isArray(x) || !x.every(isObject))
      throw new CniError(CniCode.InvalidConfig, `${where}.${key}: expected a list of objects`);
    return x;
  };
  const interfaces = list('interfaces').map((o, i) => {
    const w = `${where}.interfaces[${i}]`;
    if (typeof o.name !== 'string' || o.name === '')
      throw new CniError(CniCode.InvalidConfig, `${w}.name: expected a non-empty string`);
    return {
      name: o.name,
      ...pickStrings(o, ['mac', 'sandbox', 'socketPath', 'pciID'], w),
      ...pickUints(o, ['mtu'], w),
    } as CniInterface;
  });
  const ips = list('ips').map((o, i) => {
    const w = `${where}.ips[${i}]`;
    if (typeof o.address !== 'string' || !CIDR.test(o.address))
      throw new CniError(CniCode.InvalidConfig, `${w}.address: expected an address in CIDR notation`);
    const ip: CniIp = { address: o.address, ...pickStrings(o, ['gateway'], w) };
    if (o.interface !== undefined && o.interface !== null) {
      if (!isUint(o.interface) || o.interface >= interfaces.length)
        throw new CniError(CniCode.InvalidConfig, `${w}.interface: expected an index into interfaces`);
      ip.interface = o.interface;
    }
    return ip;
  });
  const routes = list('routes').map((o, i) => {
    const w = `${where}.routes[${i}]`;
    if (typeof o.dst !== 'string' || !CIDR.test(o.dst))
      throw new CniError(CniCode.InvalidConfig, `${w}.dst: expected a prefix in CIDR notation`);
    return {
      dst: o.dst,
      ...pickStrings(o, ['gw'], w),
      ...pickUints(o, ['mtu', 'advmss', 'priority', 'table', 'scope'], w),
    } as CniRoute;
  });
  return { interfaces, ips, routes, dns: parseDns(v.dns, `${where}.dns`) };
}

export const familyOfCidr = (cidr: string): Family => (cidr.includes(':') ? 6 : 4);

/**
 * The result object of `version`: 0.3.x and 0.4.0 carry `version` ("4"/"6") in each ip; 1.0.0
 * drops it; 1.1.0 adds interface mtu/socketPath/pciID and route mtu/advmss/priority/table/scope,
 * which older versions leave out.
 */
export function formatResult(r: CniResult, version: CniVersion): Record<string, unknown> {
  const v11 = atLeast(version, '1.1.0');
  const v10 = atLeast(version, '1.0.0');
  const out: Record<string, unknown> = { cniVersion: version };
  out.interfaces = r.interfaces.map((i) => {
    const o: Record<string, unknown> = { name: i.name };
    if (i.mac !== undefined) o.mac = i.mac;
    if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
    if (i.sandbox !== undefined) o.sandbox = i.sandbox;
    if (v11 && i.socketPath !== undefined) o.socketPath = i.socketPath;
    if (v11 && i.pciID !== undefined) o.pciID = i.pciID;
    return o;
  });
  out.ips = r.ips.map((ip) => {
    const o: Record<string, unknown> = {};
    if (!v10) o.version = String(familyOfCidr(ip.address));
    o.address = ip.address;
    if (ip.gateway !== undefined) o.gateway = ip.gateway;
    if (ip.interface !== undefined) o.interface = ip.interface;
    return o;
  });
  out.routes = r.routes.map((rt) => {
    const o: Record<string, unknown> = { dst: rt.dst };
    if (rt.gw !== undefined) o.gw = rt.gw;
    if (v11)
      for (const k of ['mtu', 'advmss', 'priority', 'table', 'scope'] as const)
        if (rt[k] !== undefined) o[k] = rt[k];
    return o;
  });
  out.dns = { ...r.dns };
  return out;
}

export function versionResult(version: string): { cniVersion: string; supportedVersions: string[] } {
  return { cniVersion: version, supportedVersions: [...SUPPORTED_VERSIONS] };
}

// ---------------------------------------------------------------------------------------------
// Configuration

export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  type: string;
  mtu: number;
  families: Family[];
  agentSocket: string;
  timeoutMs: number;
  dns: CniDns;
  prevResult?: CniResult;
  /** GC: `cni.dev/valid-attachments`; undefined when absent. */
  validAttachments?: AttachmentId[];
}

function versionOf(o: Record<string, unknown>): CniVersion {
  const v = o.cniVersion;
  if (typeof v !== 'string' || v === '')
    throw new CniError(CniCode.InvalidConfig, 'cniVersion: missing (expected one of the supported versions)');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v))
    throw new CniError(
      CniCode.IncompatibleVersion,
      `incompatible CNI version ${v}`,
      `Twill supports ${SUPPORTED_VERSIONS.join(', ')}`,
    );
  return v as CniVersion;
}

/** Decode stdin as JSON. Throws CniError 6. */
export function decodeStdin(text: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new CniError(
      CniCode.DecodeFailure,
      'cannot decode the network configuration',
      (e as Error).message,
    );
  }
  if (!isObject(o))
    throw new CniError(CniCode.DecodeFailure, 'the network configuration is not a JSON object');
  return o;
}

/** Check the plugin configuration for `command`. Throws CniError 1, 7. */
export function parseConfig(
  o: Record<string, unknown>,
  command: Command,
  env: Record<string, string | undefined> = {},
): NetConf {
  const cniVersion = versionOf(o);
  const bad = (field: string, msg: string) => new CniError(CniCode.InvalidConfig, `${field}: ${msg}`);
  if (typeof o.name !== 'string' || !NETWORK_NAME.test(o.name))
    throw bad('name', 'expected a network name (alphanumeric, then alphanumerics, "_", "." or "-")');
  if (typeof o.type !== 'string' || o.type === '') throw bad('type', 'expected the plugin type');
  const mtu = o.mtu ?? 1500;
  if (!isUint(mtu) || mtu < 68 || mtu > 65535) throw bad('mtu', `${JSON.stringify(o.mtu)} is not 68..65535`);
  const flag = (k: 'ipv4' | 'ipv6', dflt: boolean): boolean => {
    const v = o[k] ?? dflt;
    if (typeof v !== 'boolean') throw bad(k, `${JSON.stringify(v)} is not true or false`);
    return v;
  };
  const families: Family[] = [];
  if (flag('ipv4', true)) families.push(4);
  if (flag('ipv6', false)) families.push(6);
  if (families.length === 0) throw bad('ipv4, ipv6', 'at least one must be true');
  const socket = o.agentSocket ?? (env.TWILL_CNI_SOCKET || DEFAULT_SOCKET);
  if (typeof socket !== 'string' || !socket.startsWith('/'))
    throw bad('agentSocket', `${JSON.stringify(socket)} is not an absolute path`);
  const timeout = o.timeoutSeconds ?? 30;
  if (typeof timeout !== 'number' || !(timeout > 0) || timeout > 3600)
    throw bad('timeoutSeconds', `${JSON.stringify(timeout)} is not a number of seconds (0..3600]`);
  const conf: NetConf = {
    cniVersion,
    name: o.name,
    type: o.type,
    mtu,
    families,
    agentSocket: socket,
    timeoutMs: Math.round(timeout * 1000),
    dns: parseDns(o.dns, 'dns'),
  };
  if (o.prevResult !== undefined && o.prevResult !== null && command !== 'GC' && command !== 'STATUS')
    conf.prevResult = parseResult(o.prevResult);
  if (command === 'GC') {
    const raw = o['cni.dev/valid-attachments'] ?? o['cni.dev/attachments'];
    if (raw !== undefined && raw !== null) {
      if (!Array.isArray(raw)) throw bad('cni.dev/valid-attachments', 'expected a list');
      conf.validAttachments = raw.map((a, i) => {
        if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string')
          throw bad(`cni.dev/valid-attachments[${i}]`, 'expected {"containerID": ..., "ifname": ...}');
        return { containerID: a.containerID, ifname: a.ifname };
      });
    }
  }
  return conf;
}
