/**
 * Sysctls for pod networking, written through /proc/sys (no `sysctl` binary needed).
 *
 * Host-side veth of a pod (Calico sets the same; DESIGN.md "Calico facts we match"):
 *   net.ipv4.conf.<veth>.proxy_arp = 1      the host answers the pod's ARP for 169.254.1.1
 *                                           (its default gateway) with the veth's MAC
 *   net.ipv4.neigh.<veth>.proxy_delay = 0   answer those ARPs at once (the default delays a
 *                                           proxied reply by up to 0.8 s; Calico sets 0 too)
 *   net.ipv4.conf.<veth>.forwarding = 1
 *   net.ipv6.conf.<veth>.accept_ra = 0      a pod must not configure the host's routes
 *   net.ipv6.conf.<veth>.forwarding = 1
 * Node-wide: net.ipv4.ip_forward = 1, net.ipv6.conf.all.forwarding = 1.
 *
 * rp_filter is left as the host has it (a strict rp_filter is the host's choice; the pod's /32
 * route on its veth passes either mode). A value already right is not written again. /proc/sys/net
 * belongs to the network namespace of the process, so inside `ip netns exec` this sets the
 * namespace's values and never the host's. `root` is a parameter so unit tests use a temporary
 * directory (the same code then runs against /proc/sys in the root tests).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface SysctlOptions {
  /** Default /proc/sys. */
  root?: string;
  ipv4?: boolean;
  ipv6?: boolean;
}

export type Sysctl = readonly [path: string, value: string];

/** The sysctls a host-side veth gets, as paths relative to /proc/sys. Pure. */
export function vethSysctls(dev: string, opts: { ipv4?: boolean; ipv6?: boolean } = {}): Sysctl[] {
  if (!/^[^/\s.][^/\s]{0,14}$/.test(dev) || dev === '..')
    throw new Error(`not an interface name: ${JSON.stringify(dev)}`);
  const out: Sysctl[] = [];
  if (opts.ipv4 ?? true) {
    out.push([`net/ipv4/conf/${dev}/proxy_arp`, '1']);
    out.push([`net/ipv4/neigh/${dev}/proxy_delay`, '0']);
    out.push([`net/ipv4/conf/${dev}/forwarding`, '1']);
  }
  if (opts.ipv6 ?? false) {
    out.push([`net/ipv6/conf/${dev}/accept_ra`, '0']);
    out.push([`net/ipv6/conf/${dev}/forwarding`, '1']);
  }
  return out;
}

/** Node-wide forwarding. Pure. */
export function forwardingSysctls(opts: { ipv4?: boolean; ipv6?: boolean } = {}): Sysctl[] {
  const out: Sysctl[] = [];
  if (opts.ipv4 ?? true) out.push(['net/ipv4/ip_forward', '1']);
  if (opts.ipv6 ?? false) out.push(['net/ipv6/conf/all/forwarding', '1']);
  return out;
}

/** Write each value that differs; returns the paths written. Throws naming the path. */
export async function writeSysctls(list: readonly Sysctl[], root = '/proc/sys'): Promise<string[]> {
  const written: string[] = [];
  for (const [path, value] of list) {
    const file = join(root, path);
    let cur: string;
    try {
      cur = (await readFile(file, 'utf8')).trim();
    } catch (err) {
      throw new Error(`sysctl ${path.replaceAll('/', '.')}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    if (cur === value) continue;
    try {
      await writeFile(file, `${value}\n`);
    } catch (err) {
      throw new Error(
        `sysctl ${path.replaceAll('/', '.')} = ${value}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    written.push(path);
  }
  return written;
}

/** writeSysctls without the thread pool, for a few values on a latency path. */
export function writeSysctlsSync(list: readonly Sysctl[], root = '/proc/sys'): string[] {
  const written: string[] = [];
  for (const [path, value] of list) {
    const file = join(root, path);
    let cur: string;
    try {
      cur = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new Error(`sysctl ${path.replaceAll('/', '.')}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
    if (cur === value) continue;
    try {
      writeFileSync(file, `${value}\n`);
    } catch (err) {
      throw new Error(
        `sysctl ${path.replaceAll('/', '.')} = ${value}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
    written.push(path);
  }
  return written;
}

export function configureHostVeth(dev: string, opts: SysctlOptions = {}): Promise<string[]> {
  return writeSysctls(vethSysctls(dev, opts), opts.root);
}

export function enableForwarding(opts: SysctlOptions = {}): Promise<string[]> {
  return writeSysctls(forwardingSysctls(opts), opts.root);
}
