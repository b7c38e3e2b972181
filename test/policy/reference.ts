/**
 * A plain reference evaluator of networking.k8s.io/v1 NetworkPolicy, written straight from the
 * API reference and sharing no code with src/policy: given the cluster state and one new
 * connection, is it allowed on this node? Slow on purpose (rescans everything per packet).
 */
import type {
  ClusterState,
  LabelSelector,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PodInfo,
} from '../../src/policy/types.js';

function ip2n(s: string): number {
  return s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

export function refSelects(
  sel: LabelSelector | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  const l = labels ?? {};
  for (const [k, v] of Object.entries(sel?.matchLabels ?? {})) if (l[k] !== v) return false;
  for (const e of sel?.matchExpressions ?? []) {
    const has = k(l, e.key);
    const vals = e.values ?? [];
    if (e.operator === 'In' && !(has && vals.includes(l[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && vals.includes(l[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function k(l: Record<string, string>, key: string): boolean {
  return Object.keys(l).includes(key);
}

function inCidr(ip: string, cidr: string): boolean {
  const [a, lenT] = cidr.split('/');
  const len = Number(lenT);
  if (len === 0) return true;
  const shift = 32 - len;
  return Math.floor(ip2n(ip) / 2 ** shift) === Math.floor(ip2n(a!) / 2 ** shift);
}

function types(p: NetworkPolicy): string[] {
  if (p.spec.policyTypes && p.spec.policyTypes.length > 0) return p.spec.policyTypes;
  return p.spec.egress && p.spec.egress.length > 0 ? ['Ingress', 'Egress'] : ['Ingress'];
}

function nsOf(p: NetworkPolicy): string {
  return p.metadata.namespace ?? 'default';
}

function peerMatches(state: ClusterState, policyNs: string, peer: NetworkPolicyPeer, ip: string): boolean {
  if (peer.ipBlock) {
    return inCidr(ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((e) => inCidr(ip, e));
  }
  return state.pods.some((pod) => {
    if (!pod.ips.includes(ip)) return false;
    if (peer.namespaceSelector) {
      const ns = state.namespaces.find((n) => n.name === pod.namespace);
      if (!refSelects(peer.namespaceSelector, ns?.labels)) return false;
    } else if (pod.namespace !== policyNs) {
      return false;
    }
    return peer.podSelector ? refSelects(peer.podSelector, pod.labels) : true;
  });
}

function portMatches(
  state: ClusterState,
  ports: NetworkPolicyPort[] | undefined,
  dstIp: string,
  proto: string,
  port: number,
): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if ((p.protocol ?? 'TCP') !== proto) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'number') return port >= p.port && port <= (p.endPort ?? p.port);
    return state.pods.some(
      (pod) =>
        pod.ips.includes(dstIp) &&
        (pod.ports ?? []).some(
          (cp) => cp.name === p.port && (cp.protocol ?? 'TCP') === proto && cp.port === port,
        ),
    );
  });
}

function directionAllows(
  state: ClusterState,
  pod: PodInfo,
  dir: 'Ingress' | 'Egress',
  peerIp: string,
  dstIp: string,
  proto: string,
  port: number,
): boolean {
  const pols = state.policies.filter(
    (p) => nsOf(p) === pod.namespace && refSelects(p.spec.podSelector, pod.labels) && types(p).includes(dir),
  );
  if (pols.length === 0) return true;
  return pols.some((p) => {
    const rules =
      dir === 'Ingress'
        ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
        : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    return rules.some(
      (r) =>
        (!r.peers ||
          r.peers.length === 0 ||
          r.peers.some((peer) => peerMatches(state, nsOf(p), peer, peerIp))) &&
        portMatches(state, r.ports, dstIp, proto, port),
    );
  });
}

/** Is a new connection src -> dst allowed by this node (state.node)? `fromHost`: the node itself sends it. */
export function refAllows(
  state: ClusterState,
  src: string,
  dst: string,
  proto: string,
  port: number,
  fromHost = false,
): boolean {
  const local = (ip: string) =>
    state.pods.find((p) => p.node === state.node && p.interface && p.ips.includes(ip));
  const s = fromHost ? undefined : local(src);
  const d = local(dst);
  if (s && !directionAllows(state, s, 'Egress', dst, dst, proto, port)) return false;
  if (d && !fromHost && !directionAllows(state, d, 'Ingress', src, dst, proto, port)) return false;
  return true;
}
