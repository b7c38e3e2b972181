/**
 * The Twill CNI plugin: the program a container runtime runs (as /opt/cni/bin/twill, through
 * bin/twill-cni.js) for every pod it starts and stops. CNI spec 1.1.0 (SPEC.md); network
 * configurations of 0.3.0, 0.3.1, 0.4.0 and 1.0.0 are accepted too and answered in their own
 * result format.
 *
 * Protocol (SPEC.md section 2). Parameters from CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
 * CNI_IFNAME, CNI_ARGS (`K=V;...`; K8S_POD_NAMESPACE and K8S_POD_NAME name the pod; any other
 * key is an error unless `IgnoreUnknown=1` is among them) and CNI_PATH (unused: Twill delegates
 * to no plugin); the plugin configuration on stdin; the result on stdout; exit status 0 or 1.
 * Errors are the spec's error object (section 5), also on stdout, where libcni reads it:
 *   1 incompatible CNI version (also CHECK below 0.4.0, GC and STATUS below 1.1.0)
 *   4 invalid environment variables (the message names them)   5 I/O failure
 *   6 undecodable stdin                                         7 invalid network configuration
 *   11 try again later: the agent is not running, not ready, timed out or met a conflict
 *   50 STATUS: not available (the agent is not running or not ready)
 *   Twill's own: 100 no address left, 101 kernel configuration failed, 102 CHECK found a
 *   difference, 103 the agent failed otherwise, 104 an unexpected failure in the plugin.
 *
 * Configuration keys besides the spec's (cniVersion, name, type, prevResult, dns, ...):
 *   mtu (68..65535, default 1500), ipv4 (default true), ipv6 (default false), agentSocket
 *   (default $TWILL_CNI_SOCKET, else /run/twill/cni.sock), timeoutSeconds (agent requests,
 *   default 30).
 *
 * What each command does
 * - ADD: one `assign` request to the agent (protocol.ts; the agent owns the node's IPAM) and one
 *   `ip -batch -` process on the host, started at once so that its start-up and the veth
 *   creation overlap the agent's answer (ip runs batch lines as they arrive). Its script: the
 *   veth pair, with the container end created straight in CNI_NETNS under CNI_IFNAME, alias
 *   `twill:<containerID>`, the host end up; once the addresses are known, the pod's host route
 *   and permanent neighbour entry; then `netns exec <name> ip -batch FILE`, which runs the
 *   pod's script (a private temporary file) inside CNI_NETNS: link up, the /32 and /128, 169.254.1.1 as a
 *   scope-link route and the default route via it (IPv6: via fe80::ecee:eeff:feee:eeee). A
 *   CNI_NETNS that `ip netns` cannot name (/proc/PID/ns/net) takes a second process instead,
 *   `nsenter --net=CNI_NETNS ip -batch -`, started alongside. Then the host veth's sysctls are
 *   written to /proc/sys (proxy_arp, proxy_delay, forwarding; accept_ra and forwarding for
 *   IPv6: the list of dataplane/sysctl.ts `vethSysctls`, which a test holds us to), before ADD
 *   returns and so before anything in the pod runs. Every in-kernel write is a `replace`, so a
 *   repeated ADD for the same attachment (host veth present with our alias) changes nothing
 *   and returns the same result; a veth of the same name left by an earlier sandbox of the pod
 *   (another container ID in its alias) is deleted first. An interface already in the pod that
 *   is not ours makes `link add` fail: an error, as the spec requires. When the agent fails,
 *   the veth just made is deleted.
 * - DEL: `release` to the agent and, at the same time, `ip link del` of the host veth if its
 *   alias names this container (the pod end goes with it; a netns already gone took both).
 *   Missing pieces are success; an agent that cannot be reached is error 11 after the veth is
 *   gone, so the runtime retries the DEL and the address is not leaked.
 * - CHECK: from prevResult (our interface and its ips): the agent's handle holds exactly those
 *   addresses; the host veth exists, is ours, is up, has proxy_arp, and the kernel has the host
 *   route per address (/proc/net/route, /proc/net/ipv6_route); in the pod (one `nsenter`) the
 *   interface is up with its MAC and MTU, holds its addresses, and the gateway and default
 *   routes are there. Every difference is listed in `details` (code 102).
 * - GC: `gc` to the agent with `cni.dev/valid-attachments` (or the misspelt
 *   `cni.dev/attachments` libcni also sends). Without either key there is no valid attachment,
 *   as libcni means it (cnitool's `gc`). Veths need no GC: they die with their netns.
 * - STATUS: the agent's `status`; 50 when it is not running or not ready.
 * - VERSION: the supported versions; needs nothing else.
 *
 * Host route ownership: the plugin writes the pod's host route (scope link on the host veth,
 * main table, protocol 84) and neighbour entry (permanent, protocol 84) so the pod is reachable
 * when ADD returns. The agent's route reconciler owns them from then on: the agent learns the
 * attachment from the `assign` request (server.ts `onAssigned`: host veth, MAC, addresses) and
 * wants the identical route under its `pods` owner, so its first read-back adopts the plugin's
 * route unchanged; before that, the reconciler's grace period for a new interface keeps it.
 * Both sides use names.ts, so they derive the same veth name, MAC and gateway.
 *
 * proxy_arp answers the pod's ARP for 169.254.1.1 only when the node routes 169.254.1.1 out of
 * another interface, which its default route does; a node without a default route needs one
 * (Calico's requirement too). IPv6 needs no proxy: the gateway is a real address of the veth.
 *
 * Start-up cost: the runtime starts this program for every pod, so it loads only node:fs,
 * node:net, node:child_process, node:crypto, names.ts and protocol.ts (test/cni checks the
 * graph): no logger, no YAML, no Kubernetes client. The plugin must run in the network and mount
 * namespaces it configures as the host (/sys/class/net must show its own links), as runtimes
 * run it and as `ip netns exec` arranges.
 *
 * Departures: no IPAM delegation (`ipam` is ignored: the agent assigns); one attachment per
 * container and network (the IPAM handle has no interface name, as in Calico); `dns` comes
 * from the configuration only.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import {
  ALIAS_PREFIX,
  GATEWAY4,
  GATEWAY6,
  HOST_MAC,
  HOST_VETH_PREFIX,
  hostVethName,
  hostVethNameForContainer,
  podMac,
} from './names.js';
import {
  type AgentRequest,
  type AgentResponse,
  type AssignedAddress,
  type AttachmentId,
  DEFAULT_SOCKET,
  type Family,
  MAX_MESSAGE,
  PROTOCOL_VERSION,
  type ResponseOf,
} from './protocol.js';

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

/** The host-side veth of this attachment (names.ts). */
export function hostIfnameOf(inv: Pick<Invocation, 'containerID' | 'namespace' | 'pod'>): string {
  return inv.namespace !== undefined && inv.pod !== undefined
    ? hostVethName(inv.namespace, inv.pod)
    : hostVethNameForContainer(inv.containerID);
}

/**
 * The host veth of this attachment for DEL and CHECK: the one our ADD listed in prevResult (the
 * host interface just before the container's), else derived from CNI_ARGS as ADD did. So a DEL
 * whose CNI_ARGS lost the pod's name still finds the veth.
 */
export function hostIfnameFor(inv: Invocation, prev: CniResult | undefined): string {
  if (prev) {
    const i = prev.interfaces.findIndex((x) => x.name === inv.ifname && x.sandbox === inv.netns);
    const host = i > 0 ? prev.interfaces[i - 1] : undefined;
    if (host && host.sandbox === undefined && host.name.startsWith(HOST_VETH_PREFIX)) return host.name;
  }
  return hostIfnameOf(inv);
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

const familyOfCidr = (cidr: string): Family => (cidr.includes(':') ? 6 : 4);

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

// ---------------------------------------------------------------------------------------------
// Kernel work, as text for `ip -batch -` (pure)

/** What the host veth looks like before ADD: absent, ours (same container), or another sandbox's. */
export type HostVethState = 'absent' | 'ours' | 'stale';

/** The veth pair of an attachment: known before the agent has answered. */
export interface LinkSpec {
  hostIfname: string;
  ifname: string;
  netns: string;
  containerID: string;
  mtu: number;
  mac: string;
  families: readonly Family[];
}

/** The pair and the addresses the agent assigned. */
export interface Wiring extends LinkSpec {
  /** Address text without prefix length. */
  addresses: { address: string; family: Family }[];
}

const hostLen = (f: Family) => (f === 4 ? 32 : 128);
/** The route protocol number the dataplane's reconciler owns (route-model.ts RTPROT_TWILL). */
export const ROUTE_PROTOCOL = 84;

/**
 * The host side of ADD, first part (needs no address, so it runs while the agent assigns): the
 * pair, with the pod end created straight in CNI_NETNS; the alias; the host end up.
 */
export function hostLinkBatch(l: LinkSpec, state: HostVethState): string {
  const v6 = l.families.includes(6);
  const lines: string[] = [];
  if (state === 'stale') lines.push(`link del ${l.hostIfname}`);
  if (state !== 'ours') {
    lines.push(
      `link add ${l.hostIfname} mtu ${l.mtu} address ${HOST_MAC} type veth peer name ${l.ifname} mtu ${l.mtu} address ${l.mac} netns ${l.netns}`,
      `link set ${l.hostIfname} alias ${ALIAS_PREFIX}${l.containerID}`,
    );
    if (v6) lines.push(`link set ${l.hostIfname} addrgenmode none`);
  }
  lines.push(`link set ${l.hostIfname} up`);
  if (v6) lines.push(`addr replace ${GATEWAY6}/64 dev ${l.hostIfname} nodad`);
  return `${lines.join('\n')}\n`;
}

/** The host side of ADD, second part: the pod's host route and neighbour entry per address. */
export function hostAddressBatch(w: Wiring): string {
  const lines: string[] = [];
  for (const a of w.addresses)
    lines.push(
      `route replace ${a.address}/${hostLen(a.family)} dev ${w.hostIfname} scope link proto ${ROUTE_PROTOCOL}`,
      `neigh replace ${a.address} lladdr ${w.mac} dev ${w.hostIfname} nud permanent proto ${ROUTE_PROTOCOL}`,
    );
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** The whole host side of ADD, as one script. */
export function hostBatch(w: Wiring, state: HostVethState): string {
  return hostLinkBatch(w, state) + hostAddressBatch(w);
}

/** The pod side of ADD: one `ip -batch -` script run inside CNI_NETNS. */
export function podBatch(w: Wiring): string {
  const lines = [`link set ${w.ifname} up`];
  for (const a of w.addresses) {
    if (a.family === 4)
      lines.push(
        `addr replace ${a.address}/32 dev ${w.ifname}`,
        `route replace ${GATEWAY4} dev ${w.ifname} scope link`,
        `route replace default via ${GATEWAY4} dev ${w.ifname}`,
      );
    else
      lines.push(
        `addr replace ${a.address}/128 dev ${w.ifname} nodad`,
        `route replace ::/0 via ${GATEWAY6} dev ${w.ifname}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

/**
 * The host veth's sysctls, paths under /proc/sys: dataplane/sysctl.ts `vethSysctls` (a test
 * keeps them equal). IPv6 also needs the node's default disable_ipv6 = 0 (checked, not set: it
 * must hold before the veth exists).
 */
export function hostSysctls(dev: string, families: readonly Family[]): [string, string][] {
  const out: [string, string][] = [];
  if (families.includes(4))
    out.push(
      [`net/ipv4/conf/${dev}/proxy_arp`, '1'],
      [`net/ipv4/neigh/${dev}/proxy_delay`, '0'],
      [`net/ipv4/conf/${dev}/forwarding`, '1'],
    );
  if (families.includes(6))
    out.push([`net/ipv6/conf/${dev}/accept_ra`, '0'], [`net/ipv6/conf/${dev}/forwarding`, '1']);
  return out;
}

/** The ADD result for this attachment, merged after prevResult's content when there is one. */
export function addResult(w: Wiring, conf: Pick<NetConf, 'dns' | 'prevResult'>): CniResult {
  const prev = conf.prevResult;
  const base = prev?.interfaces.length ?? 0;
  const interfaces: CniInterface[] = [
    { name: w.hostIfname, mac: HOST_MAC, mtu: w.mtu },
    { name: w.ifname, mac: w.mac, mtu: w.mtu, sandbox: w.netns },
  ];
  const ips: CniIp[] = w.addresses.map((a) => ({
    address: `${a.address}/${hostLen(a.family)}`,
    gateway: a.family === 4 ? GATEWAY4 : GATEWAY6,
    interface: base + 1,
  }));
  const routes: CniRoute[] = [];
  if (w.addresses.some((a) => a.family === 4)) routes.push({ dst: '0.0.0.0/0', gw: GATEWAY4 });
  if (w.addresses.some((a) => a.family === 6)) routes.push({ dst: '::/0', gw: GATEWAY6 });
  const dns = Object.keys(conf.dns).length > 0 ? conf.dns : (prev?.dns ?? {});
  return {
    interfaces: [...(prev?.interfaces ?? []), ...interfaces],
    ips: [...(prev?.ips ?? []), ...ips],
    routes: [...(prev?.routes ?? []), ...routes],
    dns,
  };
}

// ---------------------------------------------------------------------------------------------
// CHECK (pure parts)

export interface Expected {
  hostIfname: string;
  ifname: string;
  mac?: string;
  mtu?: number;
  addresses: { address: string; family: Family }[];
}

/** Our interface and addresses in a prevResult. Throws CniError 7 when they are not there. */
export function expectedFrom(prev: CniResult, inv: Invocation, hostIfname: string): Expected {
  const index = prev.interfaces.findIndex((i) => i.name === inv.ifname && i.sandbox === inv.netns);
  if (index === -1)
    throw new CniError(
      CniCode.InvalidConfig,
      `prevResult has no interface ${inv.ifname} in sandbox ${inv.netns}`,
      'CHECK compares the attachment with the result of its ADD',
    );
  const mine = prev.interfaces[index]!;
  const addresses = prev.ips
    .filter((ip) => ip.interface === index)
    .map((ip) => {
      const [address] = ip.address.split('/') as [string];
      return { address, family: familyOfCidr(address) };
    });
  return {
    hostIfname,
    ifname: inv.ifname,
    ...(mine.mac !== undefined ? { mac: mine.mac } : {}),
    ...(mine.mtu !== undefined ? { mtu: mine.mtu } : {}),
    addresses,
  };
}

interface IpAddrInfo {
  family?: string;
  local?: string;
  prefixlen?: number;
}
interface IpLink {
  ifname?: string;
  flags?: string[];
  mtu?: number;
  address?: string;
  addr_info?: IpAddrInfo[];
}
interface IpRoute {
  dst?: string;
  gateway?: string;
  dev?: string;
  scope?: string;
}

const canonical6 = (a: string): string => {
  // Expand then compress, so fd00:0::5 and fd00::5 compare equal.
  const [head = '', tail = ''] = a.toLowerCase().split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = a.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => Number.parseInt(g, 16).toString(16)).join(':');
};
const sameAddress = (a: string, b: string): boolean =>
  a.includes(':') ? canonical6(a) === canonical6(b) : a === b;

/**
 * What is wrong in the pod, from `ip -j addr show dev IFNAME`, `ip -j -4 route show` and
 * `ip -j -6 route show` run inside it. Empty when all is well. Only what ADD made is looked at:
 * a later plugin in the chain may have added routes or addresses.
 */
export function podProblems(e: Expected, addrJson: string, route4Json: string, route6Json: string): string[] {
  const problems: string[] = [];
  const parse = <T>(text: string, what: string): T[] => {
    try {
      const v = JSON.parse(text || '[]');
      return Array.isArray(v) ? (v as T[]) : [];
    } catch {
      problems.push(`cannot read ${what}`);
      return [];
    }
  };
  const links = parse<IpLink>(addrJson, 'the interface');
  const link = links.find((l) => l.ifname === e.ifname);
  if (!link) return [`pod: interface ${e.ifname} is missing`];
  if (!link.flags?.includes('UP')) problems.push(`pod: ${e.ifname} is down`);
  if (e.mac !== undefined && link.address?.toLowerCase() !== e.mac.toLowerCase())
    problems.push(`pod: ${e.ifname} has MAC ${link.address}, not ${e.mac}`);
  if (e.mtu !== undefined && link.mtu !== e.mtu)
    problems.push(`pod: ${e.ifname} has MTU ${link.mtu}, not ${e.mtu}`);
  for (const a of e.addresses) {
    const len = hostLen(a.family);
    const found = (link.addr_info ?? []).some(
      (i) => i.local !== undefined && sameAddress(i.local, a.address) && i.prefixlen === len,
    );
    if (!found) problems.push(`pod: ${e.ifname} lacks address ${a.address}/${len}`);
  }
  const routes4 = parse<IpRoute>(route4Json, 'IPv4 routes');
  const routes6 = parse<IpRoute>(route6Json, 'IPv6 routes');
  if (e.addresses.some((a) => a.family === 4)) {
    if (!routes4.some((r) => r.dst === GATEWAY4 && r.dev === e.ifname && r.scope === 'link'))
      problems.push(`pod: route ${GATEWAY4} dev ${e.ifname} scope link is missing`);
    if (!routes4.some((r) => r.dst === 'default' && r.gateway === GATEWAY4 && r.dev === e.ifname))
      problems.push(`pod: default route via ${GATEWAY4} dev ${e.ifname} is missing`);
  }
  if (e.addresses.some((a) => a.family === 6)) {
    if (!routes6.some((r) => r.dst === 'default' && r.gateway === GATEWAY6 && r.dev === e.ifname))
      problems.push(`pod: IPv6 default route via ${GATEWAY6} dev ${e.ifname} is missing`);
  }
  return problems;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** /proc/net/route's Destination column for an IPv4 address (host byte order, hex). */
export function procRouteHex(address: string): string {
  const b = address.split('.').map((x) => Number(x).toString(16).toUpperCase().padStart(2, '0'));
  return (LITTLE_ENDIAN ? b.reverse() : b).join('');
}

/** /proc/net/ipv6_route's destination column for an IPv6 address (32 hex digits). */
export function procRoute6Hex(address: string): string {
  return canonical6(address)
    .split(':')
    .map((g) => g.padStart(4, '0'))
    .join('');
}

/** Host route problems, from /proc/net/route and /proc/net/ipv6_route text. */
export function hostRouteProblems(e: Expected, route4: string, route6: string): string[] {
  const problems: string[] = [];
  const rows4 = route4
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/));
  const rows6 = route6.split('\n').map((l) => l.trim().split(/\s+/));
  for (const a of e.addresses) {
    const ok =
      a.family === 4
        ? rows4.some((r) => r[0] === e.hostIfname && r[1] === procRouteHex(a.address) && r[7] === 'FFFFFFFF')
        : rows6.some((r) => r[0] === procRoute6Hex(a.address) && r[1] === '80' && r[9] === e.hostIfname);
    if (!ok) problems.push(`host: route ${a.address}/${hostLen(a.family)} dev ${e.hostIfname} is missing`);
  }
  return problems;
}

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
          new CniError(
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
 * An `ip -batch -` process (inside `netns` through nsenter when given), started before its
 * script is complete: ip runs each line as it arrives, so a process can be started, and its
 * first lines run, while the plugin still waits for the agent. `writePod` puts a second script
 * in a private file (O_EXCL, 0600, under /tmp) for a `netns exec NAME ip -batch FILE` line to
 * run inside the pod (`podExecLine`); the file goes when the process ends. (Not a pipe on fd 3:
 * Node's extra stdio are socket pairs, which /dev/fd/3 cannot open.)
 */
class Batch {
  private readonly child: ReturnType<typeof spawn>;
  private readonly done: Promise<Ran>;
  private script = '';
  private podScript = '';
  podFile: string | undefined;

  constructor(readonly netns?: string) {
    const stdio: ['pipe', 'ignore', 'pipe'] = ['pipe', 'ignore', 'pipe'];
    this.child =
      netns === undefined
        ? spawn(ip(), ['-batch', '-'], { stdio })
        : spawn(nsenter(), [`--net=${netns}`, ip(), '-batch', '-'], { stdio });
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
  }

  write(text: string): void {
    this.script += text;
    if (text !== '') this.child.stdin!.write(text);
  }

  /** Write the pod's script to its file; returns the path. */
  writePod(text: string): string {
    this.podScript = text;
    const path = `/tmp/twill-cni-${process.pid}-${Math.random().toString(36).slice(2)}.batch`;
    try {
      writeFileSync(path, text, { flag: 'wx', mode: 0o600 });
    } catch (e) {
      throw new CniError(
        CniCode.IoFailure,
        `cannot write ${path}`,
        (e as NodeJS.ErrnoException).code ?? String(e),
      );
    }
    this.podFile = path;
    return path;
  }

  /** Send the rest and wait; throws CniError 101 when a line failed. */
  async end(text = ''): Promise<void> {
    this.script += text;
    this.child.stdin!.end(text);
    const r = await this.done;
    if (this.podFile !== undefined) rmSync(this.podFile, { force: true });
    if (r.code !== 0)
      throw new CniError(
        CniCode.KernelFailure,
        `configuring the ${this.netns === undefined ? 'host' : 'pod'} side failed`,
        [
          r.stderr.trim(),
          `--- ip -batch input ---\n${this.script}`,
          ...(this.podScript ? [`--- ${this.podFile} (in the pod) ---\n${this.podScript}`] : []),
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

/**
 * The name `ip netns exec` knows CNI_NETNS by, when it is a bind mount in ip's folder
 * (/run/netns, /var/run/netns: where containerd, CRI-O and `ip netns add` put them); undefined for
 * any other path (/proc/PID/ns/net), which then needs nsenter and a second process.
 */
export function netnsName(path: string): string | undefined {
  const m = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(path);
  if (!m) return undefined;
  const byName = `/var/run/netns/${m[1]}`;
  if (byName === path) return m[1];
  try {
    const a = statSync(path);
    const b = statSync(byName);
    return a.ino === b.ino && a.dev === b.dev ? m[1] : undefined;
  } catch {
    return undefined;
  }
}

/** The host batch line that runs the pod's script file inside the pod. */
export const podExecLine = (name: string, ipPath: string, file: string): string =>
  `netns exec ${name} ${ipPath} -batch ${file}\n`;

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
  return a.startsWith(ALIAS_PREFIX) ? 'stale' : 'foreign';
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
  // One process when ip knows the netns by name (the pod's part then runs through
  // `netns exec`), else two; either way they start now and make the veth while the agent
  // assigns (see Batch).
  const name = netnsName(inv.netns);
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
  const host = new Batch();
  const pod = name === undefined ? new Batch(inv.netns) : undefined;
  host.write(hostLinkBatch(link, state));
  let assigned: ResponseOf['assign'];
  try {
    assigned = await assigning;
  } catch (e) {
    // No address: take back the veth this call made, so a failed ADD leaves nothing behind.
    await Promise.all([
      host.abandon(state === 'ours' ? '' : `link del ${link.hostIfname}\n`),
      pod?.abandon(),
    ]);
    throw e;
  }
  const w: Wiring = {
    ...link,
    addresses: assigned.addresses.map((a: AssignedAddress) => ({ address: a.address, family: a.family })),
  };
  if (name !== undefined) {
    const file = host.writePod(podBatch(w));
    await host.end(hostAddressBatch(w) + podExecLine(name, ip(), file));
  } else {
    try {
      await host.end(hostAddressBatch(w));
    } catch (e) {
      await pod?.abandon();
      throw e;
    }
    await pod!.end(podBatch(w));
  }
  // Written once the veth is configured, before ADD returns: nothing in the pod runs before that.
  writeSysctls(hostSysctls(link.hostIfname, conf.families));
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
