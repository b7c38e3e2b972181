/**
 * What the speaker needs to know about the host's interfaces, behind one interface so that a test
 * or the agent can give its own: which next hops are directly connected (the standalone speaker's
 * NextHopResolver, RFC 4271 §9.1.2.1 "resolvable"), and which addresses we announce as NEXT_HOP
 * self on a session (RFC 4271 §5.1.3; for IPv6, RFC 2545 §3: a global address, then the
 * link-local one, as BIRD sends them).
 *
 * `osInterfaces` reads Node's `os.networkInterfaces()`, a system call whose cost grows with the
 * interfaces (a node has a veth per pod): the resolver reads it at most once a second (every
 * 200 ms while a next hop does not resolve: a link's RUNNING flag can lag its first packets), the
 * speaker reads a session's next hops once per session, and the speaker's 5 s check reads it once
 * for the resolver and the update groups together. Both look further (the resolver's subnets, the
 * groups' members' next hops) only when `interfacesKey` changed: with 200 pods' veth pairs in a
 * namespace (400 interfaces, 600 addresses) a read took 3.0 ms, working out the subnets 1.0 ms
 * and the key 0.09 ms.
 */
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import { parseIpv4, parseIpv6 } from '../net/addr.js';
import { type Clock, systemClock } from './clock.js';
import type { NextHopResolver } from './rib/rib.js';

/** The host's interfaces and their addresses, by interface name. */
export interface HostInterfaces {
  interfaces(): Record<string, readonly NetworkInterfaceInfo[] | undefined>;
}

export const osInterfaces: HostInterfaces = { interfaces: () => networkInterfaces() };

/** "::ffff:10.0.0.1" -> "10.0.0.1"; IPv6 text as Node gives it. */
export function normalizeAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/**
 * The standalone speaker's next-hop resolver: a next hop is reachable when it is on a directly
 * connected subnet (cost 0); link-local IPv6 next hops always are. `version` changes when the
 * interface list does, so the RIB knows to look again.
 */
export function connectedResolver(
  host: HostInterfaces = osInterfaces,
  clock: Clock = systemClock,
): NextHopResolver & { version: number; read(snapshot?: HostInterfaces): void } {
  let nets: { v6: boolean; addr: bigint; mask: bigint }[] = [];
  let readAt = Number.NEGATIVE_INFINITY;
  let key = '';
  let seenKey: string | undefined;
  const toBig = (a: string): { v6: boolean; n: bigint } | undefined => {
    const x = normalizeAddress(a);
    try {
      if (!x.includes(':')) return { v6: false, n: BigInt(parseIpv4(x)) };
      return { v6: true, n: BigInt(`0x${Buffer.from(parseIpv6(x.split('%')[0]!)).toString('hex')}`) };
    } catch {
      return undefined;
    }
  };
  const r = {
    version: 0,
    /**
     * Read the interfaces again (from `snapshot`, one read the caller shares, when given); the
     * subnets are worked out again only when the interfaces changed.
     */
    read(snapshot?: HostInterfaces) {
      readAt = clock.now();
      const ifs = (snapshot ?? host).interfaces();
      const seen = interfacesKey(ifs);
      if (seen === seenKey) return;
      seenKey = seen;
      const next: typeof nets = [];
      for (const addrs of Object.values(ifs)) {
        for (const a of addrs ?? []) {
          const b = toBig(a.address);
          if (!b || a.internal) continue;
          const bits = b.v6 ? 128 : 32;
          const len = Number(a.cidr?.split('/')[1] ?? bits);
          const mask = ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - len)) - 1n);
          next.push({ v6: b.v6, addr: b.n & mask, mask });
        }
      }
      const k = next.map((n) => `${n.addr}/${n.mask}`).join(',');
      if (k !== key) {
        key = k;
        r.version++;
      }
      nets = next;
    },
    resolve(nh: string): number | undefined {
      if (nh.startsWith('fe80')) return 0;
      const t = toBig(nh.startsWith('::ffff:') && nh.includes('.') ? nh.slice(7) : nh);
      if (!t) return undefined;
      const find = () => nets.some((n) => n.v6 === t.v6 && (t.n & n.mask) === n.addr);
      const age = clock.now() - readAt;
      if (age > 1000) r.read();
      if (find()) return 0;
      if (age > 200) {
        r.read();
        if (find()) return 0;
      }
      return undefined;
    },
  };
  return r;
}

/**
 * What of the interfaces the resolver and a session's next hops depend on (names, addresses,
 * prefix lengths), as one string: equal strings, equal answers.
 */
export function interfacesKey(ifs: ReturnType<HostInterfaces['interfaces']>): string {
  let k = '';
  for (const [name, addrs] of Object.entries(ifs)) {
    k += `${name}:`;
    for (const a of addrs ?? []) k += `${a.address}/${a.cidr ?? ''}${a.internal ? 'i' : ''},`;
    k += ';';
  }
  return k;
}

/**
 * Our next hops on the interface that carries a session from `local`: for the session's family
 * that address, for the other family an address of that family on the same interface (IPv6: the
 * global one, then the link-local one). `v6` falls back to the IPv4 address mapped into IPv6, and
 * the IPv4 one to the router id, when the interface has none.
 */
export function sessionNextHops(
  host: HostInterfaces,
  local: string,
  routerId: string,
): { v4: string; v6: string[] } {
  const v6Local = local.includes(':');
  let v4: string | undefined = v6Local ? undefined : local;
  let v6: string[] = v6Local ? [local] : [];
  for (const addrs of Object.values(host.interfaces())) {
    if (!addrs?.some((a) => normalizeAddress(a.address) === local)) continue;
    v4 = v6Local ? addrs.find((a) => a.family === 'IPv4')?.address : local;
    const global =
      v6Local && !local.startsWith('fe80')
        ? local
        : addrs.find((a) => a.family === 'IPv6' && !a.address.startsWith('fe80'))?.address;
    const ll = addrs.find((a) => a.family === 'IPv6' && a.address.startsWith('fe80'))?.address;
    v6 = global ? (ll ? [global, ll] : [global]) : [];
    break;
  }
  return { v4: v4 ?? routerId, v6: v6.length ? v6 : [`::ffff:${v4 ?? routerId}`] };
}
