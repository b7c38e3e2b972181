/**
 * The names and constants the CNI plugin, the agent's CNI endpoint and (later) the agent's route
 * reconciler must agree on, derived the same way everywhere from what the runtime gives us.
 *
 * - Host-side veth: `twl` + the first 11 hex digits of sha1("<namespace>.<pod>") (Calico's
 *   `cali` + the same; 14 characters, inside IFNAMSIZ). Outside Kubernetes (no K8S_POD_* in
 *   CNI_ARGS, e.g. cnitool) the hash is of the container ID instead.
 * - Host-side MAC `ee:ee:ee:ee:ee:ee` on every veth, as Calico: each veth is its own L2 segment,
 *   so one MAC is enough and operators recognise it.
 * - Pod-side MAC: locally administered unicast, from sha1("<containerID>/<ifname>"), so an ADD
 *   repeated for the same attachment returns the same result without reading the kernel back.
 * - Gateways: 169.254.1.1 (answered by proxy_arp on the host veth, which has no IPv4 address)
 *   and fe80::ecee:eeff:feee:eeee, the EUI-64 link-local of the host MAC, which the plugin puts
 *   on the host veth itself (so it does not depend on the host's addr_gen_mode).
 * - IPAM handle: `<network name>.<containerID>`; with the shipped conflist (name
 *   `k8s-pod-network`) that is Calico's `k8s-pod-network.<containerID>`, so `calicoctl ipam`
 *   habits carry over. A container ID that would not make a Kubernetes object name (upper case,
 *   `_`, too long) is replaced by `h-` + 40 hex of its sha256, still a pure function of it.
 *   Departure: one attachment per container and network (the handle does not carry CNI_IFNAME),
 *   as in Calico.
 * - The host veth's alias (IFLA_IFALIAS) is `twill:<containerID>`: DEL and a later ADD read it
 *   back to tell a veth of this sandbox from one left by an earlier sandbox of the same pod.
 *
 * Loaded by the plugin on every invocation: node:crypto only.
 */
import { createHash } from 'node:crypto';

export const HOST_VETH_PREFIX = 'twl';
export const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';
export const ALIAS_PREFIX = 'twill:';

const sha1 = (text: string): string => createHash('sha1').update(text).digest('hex');

/** `twl` + 11 hex of sha1("<namespace>.<pod>"). */
export function hostVethName(namespace: string, pod: string): string {
  return HOST_VETH_PREFIX + sha1(`${namespace}.${pod}`).slice(0, 11);
}

/** The host veth of an attachment without a Kubernetes pod: `twl` + 11 hex of sha1(containerID). */
export function hostVethNameForContainer(containerID: string): string {
  return HOST_VETH_PREFIX + sha1(containerID).slice(0, 11);
}

/** Locally administered unicast MAC from sha1("<containerID>/<ifname>"). */
export function podMac(containerID: string, ifname: string): string {
  const h = sha1(`${containerID}/${ifname}`);
  const first = (Number.parseInt(h.slice(0, 2), 16) & 0xfc) | 0x02;
  const bytes = [first.toString(16).padStart(2, '0')];
  for (let i = 2; i < 12; i += 2) bytes.push(h.slice(i, i + 2));
  return bytes.join(':');
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The IPAM handle of a container's attachment to a network (see the header). */
export function handleFor(network: string, containerID: string): string {
  const plain = `${network}.${containerID}`;
  if (plain.length <= 253 && SUBDOMAIN.test(plain)) return plain;
  return `${network}.h-${createHash('sha256').update(containerID).digest('hex').slice(0, 40)}`;
}
