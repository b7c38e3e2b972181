/**
 * The node's BGP address when IP=autodetect, by calico-node's methods (config.ts):
 * - `first-found`: the first interface, in name order, that is not loopback and not one a
 *   container network makes (docker, cni, veth, our own `twl` veths, bridges of libvirt and lxc,
 *   tunnels...), with a global IPv4 address (not link-local);
 * - `interface=REGEX`: the first interface, in name order, whose whole name matches;
 * - `can-reach=ADDR`: the source address the kernel would use towards ADDR (a UDP socket
 *   connected to ADDR: the kernel picks the route and the source; no packet is sent);
 * - `kubernetes-internal-ip`: the Node object's InternalIP (the caller passes it in).
 *
 * `chooseAddress` is pure over an interface table; `autodetect` reads the host's.
 */
import { createSocket } from 'node:dgram';
import { networkInterfaces } from 'node:os';
import type { AutodetectMethod } from './config.js';

export interface InterfaceAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  internal: boolean;
}

/** Interfaces first-found skips, as calico-node's default exclusions do. */
const SKIPPED =
  /^(lo|docker.*|cbr.*|dummy.*|virbr.*|lxcbr.*|veth.*|cali.*|twl.*|tunl.*|flannel.*|kube-ipvs.*|cni.*|vxlan.*|nodelocaldns.*|podman.*)$/;

function usable(a: InterfaceAddress): boolean {
  return (
    a.family === 'IPv4' && !a.internal && !a.address.startsWith('169.254.') && !a.address.startsWith('127.')
  );
}

/** The address a method picks from `interfaces`, or why there is none. */
export function chooseAddress(
  method: Exclude<AutodetectMethod, { kind: 'can-reach' } | { kind: 'kubernetes-internal-ip' }>,
  interfaces: Readonly<Record<string, readonly InterfaceAddress[] | undefined>>,
): { address: string; interface: string } | { error: string } {
  const names = Object.keys(interfaces).sort();
  for (const name of names) {
    if (method.kind === 'first-found' ? SKIPPED.test(name) : !method.pattern.test(name)) continue;
    const a = (interfaces[name] ?? []).find(usable);
    if (a) return { address: a.address, interface: name };
  }
  return {
    error:
      method.kind === 'first-found'
        ? `no interface with a global IPv4 address (looked at ${names.join(', ') || 'none'}); set IP or IP_AUTODETECTION_METHOD`
        : `no interface matching ${method.pattern.source.slice(4, -2)} has a global IPv4 address (interfaces: ${names.join(', ') || 'none'})`,
  };
}

/** The source address the kernel picks towards `target`. */
export function sourceAddressTowards(target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createSocket(target.includes(':') ? 'udp6' : 'udp4');
    s.on('error', (err) => {
      s.close();
      reject(err);
    });
    // Connecting a UDP socket only asks the kernel for a route and a source; nothing is sent.
    s.connect(9, target, () => {
      const { address } = s.address();
      s.close();
      resolve(address);
    });
  });
}

/** Resolve the method on this host. Throws with a message that says what was looked at. */
export async function autodetect(method: AutodetectMethod, internalIP?: string): Promise<string> {
  switch (method.kind) {
    case 'kubernetes-internal-ip':
      if (!internalIP) throw new Error('the Node object has no InternalIP address (status.addresses)');
      return internalIP;
    case 'can-reach':
      try {
        return await sourceAddressTowards(method.address);
      } catch (err) {
        throw new Error(`can-reach=${method.address}: no route (${(err as Error).message})`);
      }
    default: {
      const r = chooseAddress(method, networkInterfaces() as Record<string, InterfaceAddress[]>);
      if ('error' in r) throw new Error(r.error);
      return r.address;
    }
  }
}
