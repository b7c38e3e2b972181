/**
 * The agent's start-up configuration: command-line flags and environment variables, with
 * calico-node's names where Calico has one (NODENAME, IP, IP_AUTODETECTION_METHOD, AS,
 * DATASTORE), checked at start so a wrong value stops the agent with one line per wrong field,
 * naming the field and the form it expects. A flag wins over its variable.
 *
 *   flag                        variable                    default
 *   --nodename NAME             NODENAME                    the host name
 *   --datastore SPEC            DATASTORE                   file:/var/lib/twill/store
 *   --kubeconfig FILE           KUBECONFIG                  in-cluster, else ~/.kube/config
 *   --ip ADDR|autodetect        IP                          autodetect
 *   --ip-autodetection-method M IP_AUTODETECTION_METHOD     first-found
 *   --as N                      AS                          BGPConfiguration's, else 64512
 *   --bgp-port N                TWILL_BGP_PORT              BGPConfiguration's, else 179
 *   --pool-cidr CIDR            TWILL_POOL_CIDR             (none: no default pool is made)
 *   --pool-block-size N         TWILL_POOL_BLOCK_SIZE       26
 *   --log-level L               TWILL_LOG_LEVEL             info
 *   --health-listen HOST:PORT   TWILL_HEALTH_LISTEN         127.0.0.1:9099 (`off`: none)
 *   --api PATH                  TWILL_API_SOCKET            /run/twill/twill.sock
 *   --cni-socket PATH           TWILL_CNI_SOCKET            /run/twill/cni.sock
 *   --proc-sys-net PATH         TWILL_PROC_SYS_NET          /proc/sys/net
 *   --route-refresh SECONDS     TWILL_ROUTE_REFRESH         90 (the kernel read-back period)
 *   --metrics-peer-limit N      TWILL_METRICS_PEER_LIMIT    100 (no per-peer series above)
 *   --ipam-leak-grace SECONDS   TWILL_IPAM_LEAK_GRACE       900 (Kubernetes: release an address
 *                                                           whose pod is gone this long)
 *   --ipam-empty-block-release SECONDS
 *                               TWILL_IPAM_EMPTY_BLOCK_RELEASE  300 (how often this node's empty
 *                                                           blocks are looked at; one seen empty
 *                                                           twice in a row goes back to the pool)
 *
 * IP autodetection methods (Calico's): `first-found` (the first up, non-loopback interface's
 * first global IPv4 address, skipping container-looking interfaces), `interface=REGEX` (the
 * first interface whose name matches), `can-reach=ADDR` (the source address the kernel picks
 * towards ADDR), `kubernetes-internal-ip` (the Node's InternalIP; kubernetes datastore only).
 *
 * Pure: the caller passes argv, the environment and the host name; nothing here reads the
 * system. `parseAgentConfig` throws ConfigError (config/fields.ts) with every problem at once.
 */
import { ConfigError, Issues, parseIp, show } from '../config/fields.js';

const DATASTORE_FORMS = 'file:DIR or kubernetes';

export type AutodetectMethod =
  | { kind: 'first-found' }
  | { kind: 'interface'; pattern: RegExp }
  | { kind: 'can-reach'; address: string }
  | { kind: 'kubernetes-internal-ip' };

export type HostPort = { host: string; port: number };

export interface AgentConfig {
  nodename: string;
  /** `file:DIR` or `kubernetes`. */
  datastore: string;
  kubeconfig: string | undefined;
  /** A fixed IPv4 address, or how to find one. */
  ip: { kind: 'fixed'; address: string } | { kind: 'autodetect'; method: AutodetectMethod };
  /** Undefined: BGPConfiguration's asNumber, else 64512. */
  asn: number | undefined;
  /** Undefined: BGPConfiguration's listenPort, else 179. */
  bgpPort: number | undefined;
  pool: { cidr: string; blockSize: number } | undefined;
  logLevel: string;
  /** Undefined: no health server. */
  healthListen: HostPort | undefined;
  apiSocket: string;
  cniSocket: string;
  procSysNet: string;
  routeRefreshMs: number;
  metricsPeerLimit: number;
  leakGraceMs: number;
  emptyBlockReleaseMs: number;
}

interface Field {
  flag: string;
  env: string;
  /** What goes in the usage text. */
  form: string;
}

export const FIELDS = {
  nodename: { flag: '--nodename', env: 'NODENAME', form: 'NAME' },
  datastore: { flag: '--datastore', env: 'DATASTORE', form: DATASTORE_FORMS },
  kubeconfig: { flag: '--kubeconfig', env: 'KUBECONFIG', form: 'FILE' },
  ip: { flag: '--ip', env: 'IP', form: 'an IPv4 address or autodetect' },
  method: {
    flag: '--ip-autodetection-method',
    env: 'IP_AUTODETECTION_METHOD',
    form: 'first-found, interface=REGEX, can-reach=ADDR or kubernetes-internal-ip',
  },
  as: { flag: '--as', env: 'AS', form: 'an AS number 1..4294967295' },
  bgpPort: { flag: '--bgp-port', env: 'TWILL_BGP_PORT', form: 'a port 1..65535' },
  poolCidr: { flag: '--pool-cidr', env: 'TWILL_POOL_CIDR', form: 'an IPv4 CIDR such as 10.244.0.0/16' },
  poolBlockSize: { flag: '--pool-block-size', env: 'TWILL_POOL_BLOCK_SIZE', form: 'a prefix length 20..32' },
  logLevel: { flag: '--log-level', env: 'TWILL_LOG_LEVEL', form: 'trace, debug, info, warn, error or fatal' },
  healthListen: { flag: '--health-listen', env: 'TWILL_HEALTH_LISTEN', form: 'HOST:PORT or off' },
  api: { flag: '--api', env: 'TWILL_API_SOCKET', form: 'an absolute unix socket path' },
  cniSocket: { flag: '--cni-socket', env: 'TWILL_CNI_SOCKET', form: 'an absolute unix socket path' },
  procSysNet: { flag: '--proc-sys-net', env: 'TWILL_PROC_SYS_NET', form: 'an absolute path' },
  routeRefresh: { flag: '--route-refresh', env: 'TWILL_ROUTE_REFRESH', form: 'seconds 1..86400' },
  leakGrace: { flag: '--ipam-leak-grace', env: 'TWILL_IPAM_LEAK_GRACE', form: 'seconds 1..86400' },
  emptyBlockRelease: {
    flag: '--ipam-empty-block-release',
    env: 'TWILL_IPAM_EMPTY_BLOCK_RELEASE',
    form: 'seconds 1..86400',
  },
  metricsPeerLimit: {
    flag: '--metrics-peer-limit',
    env: 'TWILL_METRICS_PEER_LIMIT',
    form: 'a count 0..100000',
  },
} as const satisfies Record<string, Field>;

type Name = keyof typeof FIELDS;

export const DEFAULT_DATASTORE = 'file:/var/lib/twill/store';
export const DEFAULT_API_SOCKET = '/run/twill/twill.sock';
export const DEFAULT_CNI_SOCKET = '/run/twill/cni.sock';
export const DEFAULT_HEALTH_LISTEN = '127.0.0.1:9099';
const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function agentUsage(): string {
  const rows = Object.values(FIELDS).map((f) => `  ${`${f.flag} (${f.env})`.padEnd(52)} ${f.form}`);
  return `usage: twill agent [options]\n\noptions (each also an environment variable; a flag wins):\n${rows.join('\n')}\n`;
}

/** Read flags into a map by field name. Unknown flags and missing values are issues. */
function readFlags(argv: readonly string[], issues: Issues): Map<Name, string> {
  const byFlag = new Map<string, Name>();
  for (const [name, f] of Object.entries(FIELDS)) byFlag.set(f.flag, name as Name);
  const out = new Map<Name, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const flag = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const name = byFlag.get(flag);
    if (name === undefined) {
      issues.add('', `unknown option ${show(a)}`);
      continue;
    }
    const value = flag !== a ? a.slice(eq + 1) : argv[++i];
    if (value === undefined) issues.add(flag, 'needs a value');
    else out.set(name, value);
  }
  return out;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function isIpv4Cidr(text: string): { ok: true; len: number } | { ok: false; why: string } {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  const ip = m ? parseIp(m[1]!) : undefined;
  if (!m || ip?.version !== 4) return { ok: false, why: 'is not an IPv4 CIDR such as 10.244.0.0/16' };
  const len = Number(m[2]);
  if (len > 32) return { ok: false, why: `has prefix length ${len}, not 0..32` };
  const bits = (ip.bytes[0]! << 24) | (ip.bytes[1]! << 16) | (ip.bytes[2]! << 8) | ip.bytes[3]!;
  const host = len === 0 ? bits : bits & ~(-1 << (32 - len));
  if (len < 32 && host !== 0) return { ok: false, why: 'has host bits set' };
  return { ok: true, len };
}

export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && parseIp(host)?.version !== 6) return undefined;
  return { host, port };
}

export function parseMethod(text: string): AutodetectMethod | string {
  if (text === 'first-found') return { kind: 'first-found' };
  if (text === 'kubernetes-internal-ip') return { kind: 'kubernetes-internal-ip' };
  if (text.startsWith('interface=')) {
    const src = text.slice('interface='.length);
    if (src === '') return 'interface= needs a regular expression';
    try {
      return { kind: 'interface', pattern: new RegExp(`^(?:${src})$`) };
    } catch (err) {
      return `interface=${src}: not a regular expression (${(err as Error).message})`;
    }
  }
  if (text.startsWith('can-reach=')) {
    const ip = parseIp(text.slice('can-reach='.length));
    if (ip === undefined) return `${show(text)}: can-reach needs an IP address`;
    return { kind: 'can-reach', address: ip.text };
  }
  return `${show(text)} is not ${FIELDS.method.form}`;
}

/**
 * The configuration from `argv` (after `twill agent`), `env` and the host name. Throws
 * ConfigError with a line per wrong field, each naming the flag or variable it came from.
 */
export function parseAgentConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  hostname: string,
): AgentConfig {
  const issues = new Issues();
  const flags = readFlags(argv, issues);
  /** The value and the name of where it came from (for messages). */
  const get = (name: Name): { value: string; from: string } | undefined => {
    const f = FIELDS[name];
    const flag = flags.get(name);
    if (flag !== undefined) return { value: flag, from: f.flag };
    const e = env[f.env];
    if (e !== undefined && e !== '') return { value: e, from: f.env };
    return undefined;
  };
  const bad = (v: { value: string; from: string }, why: string) =>
    issues.add(v.from, why.startsWith(show(v.value)) ? why : `${show(v.value)} ${why}`);
  const int = (name: Name, min: number, max: number): number | undefined => {
    const v = get(name);
    if (v === undefined) return undefined;
    if (!/^[0-9]+$/.test(v.value) || Number(v.value) < min || Number(v.value) > max) {
      bad(v, `is not ${FIELDS[name].form}`);
      return undefined;
    }
    return Number(v.value);
  };
  const path = (name: Name, fallback: string): string => {
    const v = get(name);
    if (v === undefined) return fallback;
    if (!v.value.startsWith('/')) bad(v, `is not ${FIELDS[name].form}`);
    else if ((name === 'api' || name === 'cniSocket') && new TextEncoder().encode(v.value).length > 107)
      bad(v, 'is longer than 107 bytes, the limit for a unix socket path');
    return v.value;
  };

  const nodeV = get('nodename');
  const nodename = (nodeV?.value ?? hostname).toLowerCase();
  if (nodename.length > 253 || !DNS_SUBDOMAIN.test(nodename))
    issues.add(
      nodeV?.from ?? FIELDS.nodename.env,
      `${show(nodename)} is not a Kubernetes node name (lower-case letters, digits, '-' and '.', at most 253)`,
    );

  const dsV = get('datastore');
  const datastore = dsV?.value ?? DEFAULT_DATASTORE;
  if (dsV && dsV.value !== 'kubernetes' && !/^file:\/./.test(dsV.value))
    bad(dsV, `is not ${DATASTORE_FORMS} (file: takes an absolute folder path)`);

  const ipV = get('ip');
  const methodV = get('method');
  let ip: AgentConfig['ip'] = { kind: 'autodetect', method: { kind: 'first-found' } };
  if (methodV) {
    const m = parseMethod(methodV.value);
    if (typeof m === 'string') issues.add(methodV.from, m);
    else {
      ip = { kind: 'autodetect', method: m };
      if (m.kind === 'kubernetes-internal-ip' && datastore !== 'kubernetes')
        issues.add(methodV.from, 'kubernetes-internal-ip needs DATASTORE=kubernetes');
    }
  }
  if (ipV && ipV.value !== 'autodetect') {
    const addr = parseIp(ipV.value);
    if (addr?.version !== 4) bad(ipV, `is not ${FIELDS.ip.form}`);
    else ip = { kind: 'fixed', address: addr.text };
  }

  const asn = int('as', 1, 4294967295);
  if (asn === 23456)
    issues.add(get('as')!.from, '23456 is AS_TRANS (RFC 6793), not an AS number to configure');
  const bgpPort = int('bgpPort', 1, 65535);

  const cidrV = get('poolCidr');
  const blockSize = int('poolBlockSize', 20, 32) ?? 26;
  let pool: AgentConfig['pool'];
  if (cidrV) {
    const c = isIpv4Cidr(cidrV.value);
    if (!c.ok) bad(cidrV, c.why);
    else if (c.len > blockSize)
      bad(cidrV, `is smaller than one block (/${blockSize}); use a shorter prefix or a longer block size`);
    else pool = { cidr: cidrV.value, blockSize };
  }

  const levelV = get('logLevel');
  if (levelV && !LEVELS.includes(levelV.value)) bad(levelV, `is not ${FIELDS.logLevel.form}`);

  const healthV = get('healthListen');
  let healthListen: HostPort | undefined = parseHostPort(DEFAULT_HEALTH_LISTEN);
  if (healthV) {
    if (healthV.value === 'off') healthListen = undefined;
    else {
      healthListen = parseHostPort(healthV.value);
      if (!healthListen) bad(healthV, `is not ${FIELDS.healthListen.form}`);
    }
  }

  const config: AgentConfig = {
    nodename,
    datastore,
    kubeconfig: get('kubeconfig')?.value,
    ip,
    asn,
    bgpPort,
    pool,
    logLevel: levelV?.value ?? 'info',
    healthListen,
    apiSocket: path('api', DEFAULT_API_SOCKET),
    cniSocket: path('cniSocket', DEFAULT_CNI_SOCKET),
    procSysNet: path('procSysNet', '/proc/sys/net'),
    routeRefreshMs: (int('routeRefresh', 1, 86400) ?? 90) * 1000,
    metricsPeerLimit: int('metricsPeerLimit', 0, 100000) ?? 100,
    leakGraceMs: (int('leakGrace', 1, 86400) ?? 900) * 1000,
    emptyBlockReleaseMs: (int('emptyBlockRelease', 1, 86400) ?? 300) * 1000,
  };
  if (config.apiSocket === config.cniSocket)
    issues.add(FIELDS.cniSocket.env, 'must differ from the local API socket');
  if (issues.list.length > 0) throw new ConfigError('twill agent', issues.list);
  return config;
}
