/**
 * What the plugin makes in the kernel, as data, pure: the veth's names, the `ip -batch` scripts
 * for the host and the pod, the host veth's sysctls, the ADD result, and how CHECK reads the
 * kernel's answers back. plugin.ts runs them.
 *
 * The attachment (DESIGN.md "Calico facts we match"):
 * - a veth pair: host end `twl` + 11 hex of sha1("<namespace>.<pod>") (names.ts) with MAC
 *   ee:ee:ee:ee:ee:ee, no IPv4 address, alias `twill:<containerID>`; pod end CNI_IFNAME, created
 *   straight in CNI_NETNS (never visible on the host), with a MAC derived from the attachment;
 *   both with the configured MTU;
 * - in the pod: the /32 (and /128), 169.254.1.1 as a scope-link route and the default route via
 *   it; for IPv6 the default route via fe80::ecee:eeff:feee:eeee, which the host end carries
 *   (its own link-local generation is off, so the address does not depend on addr_gen_mode);
 * - on the host: per address a scope-link route to the pod on its veth and a permanent
 *   neighbour entry, both with protocol 84 (route-model.ts RTPROT_TWILL); the veth's sysctls
 *   (proxy_arp, proxy_delay 0, forwarding; IPv6 accept_ra 0 and forwarding): the list of
 *   dataplane/sysctl.ts `vethSysctls`, which a test holds these to.
 * Every write is a `replace`, so a repeated ADD changes nothing; `link add` is left out when the
 * host veth is already this container's, and a veth of the same name left by an earlier sandbox
 * of the pod is deleted first.
 *
 * Host route ownership: the plugin writes the pod's host route and neighbour entry so the pod
 * is reachable when ADD returns; the agent's route reconciler owns them from then on. The agent
 * learns the attachment from the `assign` request (server.ts `onAssigned`: host veth, MAC,
 * addresses) and wants the identical route under its `pods` owner, so its first read-back
 * adopts the plugin's route unchanged; before that, the reconciler's grace period for a new
 * interface keeps it. Both sides derive names from names.ts.
 *
 * proxy_arp answers the pod's ARP for 169.254.1.1 only when the node routes 169.254.1.1 out of
 * another interface, which its default route does; a node without a default route needs one
 * (Calico's requirement too). IPv6 needs no proxy: the gateway is a real address of the veth.
 *
 * CHECK reads: `ip -j addr show dev IFNAME` and `ip -j -4/-6 route show` in the pod, and
 * /proc/net/route and /proc/net/ipv6_route on the host. Only what ADD made is looked at: a later
 * plugin in the chain may add routes or addresses (SPEC.md, CHECK).
 */
import {
  ALIAS_PREFIX,
  GATEWAY4,
  GATEWAY6,
  HOST_MAC,
  HOST_VETH_PREFIX,
  hostVethName,
  hostVethNameForContainer,
} from './names.js';
import type { Family } from './protocol.js';
import {
  CniCode,
  CniError,
  type CniInterface,
  type CniIp,
  type CniResult,
  type CniRoute,
  familyOfCidr,
  type Invocation,
  type NetConf,
} from './spec.js';

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

/**
 * The veth made from inside the pod (`ip -batch` in CNI_NETNS): the pod end here, the host end
 * sent straight to the network namespace of process `hostPid` (the plugin, which runs in the
 * host's), both with their names, MACs and MTU. ADD's direct path (plugin.ts): one process.
 */
export function podLinkBatch(l: LinkSpec, hostPid: number): string {
  return `link add ${l.ifname} mtu ${l.mtu} address ${l.mac} type veth peer name ${l.hostIfname} mtu ${l.mtu} address ${HOST_MAC} netns ${hostPid}\n`;
}

/** The host side after podLinkBatch, when the plugin does it itself: alias, up, route, neighbour. */
export function hostFinishBatch(w: Wiring): string {
  return `link set ${w.hostIfname} alias ${ALIAS_PREFIX}${w.containerID}\nlink set ${w.hostIfname} up\n${hostAddressBatch(w)}`;
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
