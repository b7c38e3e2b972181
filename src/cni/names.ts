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
 *   `_`, too long) is replaced by `h-` + the 40 hex of its sha1, still a pure function of it.
 *   Departure: one attachment per container and network (the handle does not carry CNI_IFNAME),
 *   as in Calico.
 * - The host veth's alias (IFLA_IFALIAS) is `twill:<containerID>`: DEL and a later ADD read it
 *   back to tell a veth of this sandbox from one left by an earlier sandbox of the same pod.
 *
 * Loaded by the plugin on every invocation, so it imports nothing: SHA-1 is computed here
 * (FIPS 180-4) rather than by node:crypto, whose loading alone costs the plugin about 10 ms of
 * CPU at start-up (bench/cni), for three hashes of a few dozen bytes.
 */

export const HOST_VETH_PREFIX = 'twl';
export const HOST_MAC = 'ee:ee:ee:ee:ee:ee';
export const GATEWAY4 = '169.254.1.1';
export const GATEWAY6 = 'fe80::ecee:eeff:feee:eeee';
export const ALIAS_PREFIX = 'twill:';

/** SHA-1 of the UTF-8 bytes of `text`, as 40 hex digits (FIPS 180-4 section 6.1). */
export function sha1(text: string): string {
  const msg = new TextEncoder().encode(text);
  const words = ((msg.length + 8) >>> 6) * 16 + 16;
  const w = new Uint32Array(words);
  for (let i = 0; i < msg.length; i++) w[i >>> 2]! |= msg[i]! << (24 - (i & 3) * 8);
  w[msg.length >>> 2]! |= 0x80 << (24 - (msg.length & 3) * 8);
  w[words - 1] = msg.length * 8;
  w[words - 2] = Math.floor((msg.length * 8) / 2 ** 32);
  let h0 = 0x67452301;
  let h1 = 0xefcdab89;
  let h2 = 0x98badcfe;
  let h3 = 0x10325476;
  let h4 = 0xc3d2e1f0;
  const s = new Uint32Array(80);
  for (let block = 0; block < words; block += 16) {
    for (let t = 0; t < 16; t++) s[t] = w[block + t]!;
    for (let t = 16; t < 80; t++) {
      const x = s[t - 3]! ^ s[t - 8]! ^ s[t - 14]! ^ s[t - 16]!;
      s[t] = (x << 1) | (x >>> 31);
    }
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    for (let t = 0; t < 80; t++) {
      const f =
        t < 20 ? (b & c) | (~b & d) : t < 40 ? b ^ c ^ d : t < 60 ? (b & c) | (b & d) | (c & d) : b ^ c ^ d;
      const k = t < 20 ? 0x5a827999 : t < 40 ? 0x6ed9eba1 : t < 60 ? 0x8f1bbcdc : 0xca62c1d6;
      const temp = (((a << 5) | (a >>> 27)) + f + e + k + s[t]!) >>> 0;
      e = d;
      d = c;
      c = ((b << 30) | (b >>> 2)) >>> 0;
      b = a;
      a = temp;
    }
    h0 = (h0 + a) >>> 0;
    h1 = (h1 + b) >>> 0;
    h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0;
    h4 = (h4 + e) >>> 0;
  }
  return [h0, h1, h2, h3, h4].map((h) => h.toString(16).padStart(8, '0')).join('');
}

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
  return `${network}.h-${sha1(containerID)}`;
}
