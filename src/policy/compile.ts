/**
 * The NetworkPolicy compiler: cluster state in, this node's rule model out. Pure and
 * deterministic (same state, same model, whatever the input order).
 *
 * Follows networking.k8s.io/v1 NetworkPolicy as the API reference documents it:
 * - A policy selects pods of its own namespace by `spec.podSelector` (`{}` = every pod there).
 * - `policyTypes` unset or empty defaults to `[Ingress]`, plus `Egress` when `spec.egress` has at
 *   least one rule (apiserver `SetDefaults_NetworkPolicySpec`).
 * - A pod selected by no policy of a type is not isolated for that direction; a selected pod is,
 *   and only what the union of its policies' rules allows gets through.
 * - A rule without `from`/`to` allows every peer; without `ports`, every port. A rule matches
 *   when one of its peers AND one of its ports match.
 * - A peer with `podSelector` only picks pods of the policy's namespace; with `namespaceSelector`
 *   only, every pod of the matching namespaces; with both, pods matching the pod selector in
 *   namespaces matching the namespace selector (AND). `ipBlock` is a CIDR minus its `except`s
 *   and matches any address in it, pods included (as Calico does).
 * - A port's protocol defaults to TCP; no `port` = every port of that protocol; `endPort` makes a
 *   range; a named port resolves per destination pod: the container port with that name and
 *   protocol on the pod the packet goes to (ingress: the selected local pod; egress: the peer,
 *   on any node, since the state has every pod).
 * - Two things the API describes but the dataplane implements: replies to allowed connections
 *   (conntrack) and traffic from the pod's own node (see src/dataplane/iptables/render.ts).
 *
 * Departures, all fail-closed and logged with the policy, rule and field:
 * - A rule with an invalid part (bad CIDR or except, unknown protocol, bad port or endPort, bad
 *   selector, an empty or mixed peer) is dropped: it allows nothing, while its policy still
 *   isolates the pods it selects and every other rule and policy is enforced. The API server
 *   would reject such an object; a hand-written state file can still contain one.
 * - A policy whose own podSelector is invalid is skipped whole (it cannot say whom it isolates).
 * - A named port that no pod has is legal Kubernetes and matches nothing; it is logged because it
 *   is almost always a typo.
 * - IPv4 only (see types.ts).
 */
import { AddrError, formatPrefix4, maskIpv4, parseIpv4, prefix4Addr, prefix4Len } from '../net/addr.js';
import { type CompiledSelector, compileSelector, SelectorError, selectorMatches } from './selector.js';
import type {
  AllowRule,
  ClusterState,
  CompiledPolicy,
  EndpointModel,
  NamedPortSet,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  PeerSet,
  PodInfo,
  PolicyLogger,
  PortMatch,
  Protocol,
  RuleModel,
} from './types.js';

export class PolicyError extends Error {
  override name = 'PolicyError';
}

const PROTOCOLS: readonly string[] = ['TCP', 'UDP', 'SCTP'];
// IANA_SVC_NAME: 1-15 chars of [a-z0-9-], at least one letter, no leading/trailing or double '-'.
const SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,14}$/;

const silent: PolicyLogger = { warn: () => {} };

interface Pod {
  info: PodInfo;
  ips: number[];
}

/** Parse an IPv4 CIDR, masking host bits like the API server's net.ParseCIDR. IPv6 -> null. */
export function parseCidr4(text: unknown, field: string): { addr: number; len: number } | null {
  if (typeof text !== 'string') throw new PolicyError(`${field}: not a CIDR string`);
  if (text.includes(':')) {
    // Validate the IPv6 form loosely: it must have a length; it matches no IPv4 address.
    if (!/^[0-9a-fA-F:.]+\/(0|[1-9][0-9]{0,2})$/.test(text) || Number(text.split('/')[1]) > 128) {
      throw new PolicyError(`${field}: invalid CIDR ${JSON.stringify(text)}`);
    }
    return null;
  }
  const m = /^([0-9.]+)\/(0|[1-9][0-9]?)$/.exec(text);
  if (!m || Number(m[2]) > 32) throw new PolicyError(`${field}: invalid CIDR ${JSON.stringify(text)}`);
  let addr: number;
  try {
    addr = parseIpv4(m[1]!);
  } catch (err) {
    if (err instanceof AddrError) throw new PolicyError(`${field}: invalid CIDR ${JSON.stringify(text)}`);
    throw err;
  }
  const len = Number(m[2]);
  return { addr: (addr & maskIpv4(len)) >>> 0, len };
}

function inCidr(ip: number, addr: number, len: number): boolean {
  return (ip & maskIpv4(len)) >>> 0 === addr;
}

/** The compiler's memory for one run: sets by canonical key, selector results cached. */
class Builder {
  readonly peerSets = new Map<string, PeerSet>();
  readonly namedPortSets = new Map<string, NamedPortSet>();
  private readonly nsLabels = new Map<string, Record<string, string>>();
  readonly podsByNs = new Map<string, Pod[]>();
  readonly allPods: Pod[] = [];

  constructor(state: ClusterState) {
    for (const ns of state.namespaces ?? []) this.nsLabels.set(ns.name, ns.labels ?? {});
    for (const info of state.pods ?? []) {
      const ips: number[] = [];
      for (const t of info.ips ?? []) {
        try {
          ips.push(parseIpv4(t));
        } catch {
          // IPv6 or garbage: not in the IPv4 dataplane.
        }
      }
      const pod = { info, ips };
      this.allPods.push(pod);
      let list = this.podsByNs.get(info.namespace);
      if (!list) {
        list = [];
        this.podsByNs.set(info.namespace, list);
      }
      list.push(pod);
    }
  }

  /** The set of pods `peer` selects, from a policy in namespace `ns`; returns its key. */
  podPeer(ns: string, pod: CompiledSelector, nsSel: CompiledSelector | undefined): string {
    const key = nsSel
      ? `pods ns~${nsSel.canonical} pod~${pod.canonical}`
      : `pods ns=${ns} pod~${pod.canonical}`;
    if (this.peerSets.has(key)) return key;
    const namespaces = nsSel
      ? [...this.podsByNs.keys()].filter((n) => selectorMatches(nsSel, this.nsLabels.get(n)))
      : [ns];
    const ips = new Set<number>();
    for (const n of namespaces) {
      // A pod whose namespace object is missing still has a namespace name; a namespace
      // selector sees it with no labels, which `{}` and DoesNotExist/NotIn still match.
      for (const p of this.podsByNs.get(n) ?? [])
        if (selectorMatches(pod, p.info.labels)) for (const ip of p.ips) ips.add(ip);
    }
    this.peerSets.set(key, { kind: 'pods', key, ips: [...ips].sort((a, b) => a - b) });
    return key;
  }

  cidrPeer(addr: number, len: number, except: { addr: number; len: number }[]): string {
    const ex = [...new Set(except.map((e) => e.addr * 64 + e.len))].sort((a, b) => a - b);
    const key = `cidr ${formatPrefix4(addr * 64 + len)}${ex.length ? ` except ${ex.map(formatPrefix4).join(',')}` : ''}`;
    if (!this.peerSets.has(key))
      this.peerSets.set(key, { kind: 'cidr', key, cidr: addr * 64 + len, except: ex });
    return key;
  }

  namedPort(protocol: Protocol, name: string): NamedPortSet {
    const key = `${protocol}/${name}`;
    let set = this.namedPortSets.get(key);
    if (set) return set;
    const seen = new Set<string>();
    const members: { ip: number; port: number }[] = [];
    for (const p of this.allPods) {
      for (const cp of p.info.ports ?? []) {
        if (cp.name !== name || (cp.protocol ?? 'TCP') !== protocol) continue;
        for (const ip of p.ips) {
          const k = `${ip}:${cp.port}`;
          if (seen.has(k)) continue;
          seen.add(k);
          members.push({ ip, port: cp.port });
        }
      }
    }
    members.sort((a, b) => a.ip - b.ip || a.port - b.port);
    set = { key, protocol, name, members };
    this.namedPortSets.set(key, set);
    return set;
  }
}

function compilePeer(b: Builder, ns: string, peer: NetworkPolicyPeer, field: string): string | undefined {
  if (!peer || typeof peer !== 'object') throw new PolicyError(`${field}: not a peer object`);
  const { podSelector, namespaceSelector, ipBlock } = peer;
  if (ipBlock !== undefined && ipBlock !== null) {
    if (podSelector !== undefined || namespaceSelector !== undefined) {
      throw new PolicyError(`${field}: ipBlock cannot be combined with podSelector or namespaceSelector`);
    }
    const c = parseCidr4(ipBlock.cidr, `${field}.ipBlock.cidr`);
    const except = (ipBlock.except ?? []).map((e, i) => {
      const f = `${field}.ipBlock.except[${i}]`;
      const x = parseCidr4(e, f);
      if ((x === null) !== (c === null))
        throw new PolicyError(`${f}: ${JSON.stringify(e)} is not the family of the cidr`);
      if (x && c && !(x.len > c.len && inCidr(x.addr, c.addr, c.len))) {
        throw new PolicyError(
          `${f}: ${JSON.stringify(e)} is not strictly inside cidr ${JSON.stringify(ipBlock.cidr)}`,
        );
      }
      return x;
    });
    if (c === null) return undefined; // IPv6: matches no IPv4 address
    return b.cidrPeer(
      c.addr,
      c.len,
      except.filter((x) => x !== null),
    );
  }
  if (podSelector === undefined && namespaceSelector === undefined) {
    throw new PolicyError(`${field}: a peer needs podSelector, namespaceSelector or ipBlock`);
  }
  try {
    const pod = compileSelector(podSelector, `${field}.podSelector`);
    const nsSel =
      namespaceSelector === undefined
        ? undefined
        : compileSelector(namespaceSelector, `${field}.namespaceSelector`);
    return b.podPeer(ns, pod, nsSel);
  } catch (err) {
    if (err instanceof SelectorError) throw new PolicyError(err.message);
    throw err;
  }
}

function compilePort(p: NetworkPolicyPort, field: string): PortMatch {
  if (!p || typeof p !== 'object') throw new PolicyError(`${field}: not a port object`);
  const protocol = (p.protocol ?? 'TCP') as Protocol;
  if (!PROTOCOLS.includes(protocol)) {
    throw new PolicyError(
      `${field}.protocol: unknown protocol ${JSON.stringify(p.protocol)} (TCP, UDP or SCTP)`,
    );
  }
  if (p.port === undefined || p.port === null) {
    if (p.endPort !== undefined && p.endPort !== null)
      throw new PolicyError(`${field}.endPort: needs a numeric port`);
    return { protocol };
  }
  if (typeof p.port === 'string') {
    if (!SVC_NAME.test(p.port))
      throw new PolicyError(`${field}.port: ${JSON.stringify(p.port)} is not a valid port name`);
    if (p.endPort !== undefined && p.endPort !== null)
      throw new PolicyError(`${field}.endPort: not allowed with a named port`);
    return { protocol, named: p.port };
  }
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) {
    throw new PolicyError(`${field}.port: ${JSON.stringify(p.port)} is not a port number 1-65535`);
  }
  if (p.endPort === undefined || p.endPort === null) return { protocol, port: p.port };
  if (!Number.isInteger(p.endPort) || p.endPort < p.port || p.endPort > 65535) {
    throw new PolicyError(
      `${field}.endPort: ${JSON.stringify(p.endPort)} must be a port number >= port (${p.port})`,
    );
  }
  return p.endPort === p.port ? { protocol, port: p.port } : { protocol, port: p.port, endPort: p.endPort };
}

function policyTypes(pol: NetworkPolicy): { ingress: boolean; egress: boolean } {
  const t = pol.spec.policyTypes;
  if (t === undefined || t === null || t.length === 0) {
    return { ingress: true, egress: Array.isArray(pol.spec.egress) && pol.spec.egress.length > 0 };
  }
  for (const x of t)
    if (x !== 'Ingress' && x !== 'Egress')
      throw new PolicyError(`spec.policyTypes: unknown type ${JSON.stringify(x)}`);
  return { ingress: t.includes('Ingress'), egress: t.includes('Egress') };
}

function policyNamespace(pol: NetworkPolicy): string {
  return pol.metadata?.namespace || 'default';
}

/**
 * Compile the rules of one direction. Bad rules are dropped with a log line; named ports that
 * resolve on no relevant pod are logged. `relevantIps` are the pods a named port should be on.
 */
function compileRules(
  b: Builder,
  pol: NetworkPolicy,
  dir: 'ingress' | 'egress',
  relevant: (set: NamedPortSet) => boolean,
  log: PolicyLogger,
): AllowRule[] {
  const ns = policyNamespace(pol);
  const id = `${ns}/${pol.metadata.name}`;
  const rules = pol.spec[dir] ?? [];
  const out: AllowRule[] = [];
  if (!Array.isArray(rules)) {
    log.warn(
      { policy: id, field: `spec.${dir}` },
      `NetworkPolicy ${id}: spec.${dir} is not a list; it allows nothing`,
    );
    return out;
  }
  rules.forEach((rule, i) => {
    const field = `spec.${dir}[${i}]`;
    try {
      const peersIn =
        dir === 'ingress'
          ? (rule as { from?: NetworkPolicyPeer[] }).from
          : (rule as { to?: NetworkPolicyPeer[] }).to;
      const peerField = `${field}.${dir === 'ingress' ? 'from' : 'to'}`;
      let peers: string[] | undefined;
      if (peersIn !== undefined && peersIn !== null && (!Array.isArray(peersIn) || peersIn.length > 0)) {
        if (!Array.isArray(peersIn)) throw new PolicyError(`${peerField}: not a list`);
        peers = [];
        peersIn.forEach((peer, j) => {
          const key = compilePeer(b, ns, peer, `${peerField}[${j}]`);
          if (key !== undefined && !peers!.includes(key)) peers!.push(key);
        });
      }
      let ports: PortMatch[] | undefined;
      if (
        rule.ports !== undefined &&
        rule.ports !== null &&
        (!Array.isArray(rule.ports) || rule.ports.length > 0)
      ) {
        if (!Array.isArray(rule.ports)) throw new PolicyError(`${field}.ports: not a list`);
        ports = rule.ports.map((p, j) => compilePort(p, `${field}.ports[${j}]`));
        for (const [j, p] of ports.entries()) {
          if (p.named !== undefined && !relevant(b.namedPort(p.protocol, p.named))) {
            log.warn(
              { policy: id, field: `${field}.ports[${j}].port`, port: p.named, protocol: p.protocol },
              `NetworkPolicy ${id}: named port ${JSON.stringify(p.named)}/${p.protocol} in ${field} matches no pod; that port allows nothing`,
            );
          }
        }
      }
      const r: AllowRule = {};
      if (peers !== undefined) r.peers = peers;
      if (ports !== undefined) r.ports = ports;
      out.push(r);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      log.warn(
        { policy: id, rule: field, error: err.message },
        `NetworkPolicy ${id}: ${err.message}; rule ${field} is ignored (allows nothing), the rest of the policy is enforced`,
      );
    }
  });
  return out;
}

/** Compile the cluster state into this node's rule model. */
export function compile(state: ClusterState, log: PolicyLogger = silent): RuleModel {
  const b = new Builder(state);
  const local: Pod[] = b.allPods
    .filter(
      (p) =>
        p.info.node === state.node &&
        typeof p.info.interface === 'string' &&
        p.info.interface !== '' &&
        p.ips.length > 0,
    )
    .sort((x, y) =>
      x.info.interface! < y.info.interface! ? -1 : x.info.interface! > y.info.interface! ? 1 : 0,
    );
  const localByNs = new Map<string, Pod[]>();
  for (const p of local) {
    const l = localByNs.get(p.info.namespace) ?? [];
    l.push(p);
    localByNs.set(p.info.namespace, l);
  }
  const ingressOf = new Map<Pod, string[]>();
  const egressOf = new Map<Pod, string[]>();
  const policies = new Map<string, CompiledPolicy>();
  const sorted = [...(state.policies ?? [])].sort((x, y) => {
    const a = `${policyNamespace(x)}/${x.metadata?.name}`;
    const c = `${policyNamespace(y)}/${y.metadata?.name}`;
    return a < c ? -1 : a > c ? 1 : 0;
  });
  for (const pol of sorted) {
    const ns = policyNamespace(pol);
    const id = `${ns}/${pol.metadata?.name}`;
    if (policies.has(id)) {
      log.warn({ policy: id }, `NetworkPolicy ${id}: duplicate name; the first one is used`);
      continue;
    }
    let sel: CompiledSelector;
    let types: { ingress: boolean; egress: boolean };
    try {
      if (!pol.metadata || typeof pol.metadata.name !== 'string' || pol.metadata.name === '') {
        throw new PolicyError('metadata.name: missing');
      }
      if (!pol.spec || typeof pol.spec !== 'object') throw new PolicyError('spec: missing');
      sel = compileSelector(pol.spec.podSelector ?? {}, 'spec.podSelector');
      types = policyTypes(pol);
    } catch (err) {
      if (!(err instanceof PolicyError || err instanceof SelectorError)) throw err;
      log.warn(
        { policy: id, error: err.message },
        `NetworkPolicy ${id}: ${err.message}; the policy is ignored`,
      );
      continue;
    }
    const selected = (localByNs.get(ns) ?? []).filter((p) => selectorMatches(sel, p.info.labels));
    if (selected.length === 0) continue;
    const cp: CompiledPolicy = { id, namespace: ns, name: pol.metadata.name };
    if (types.ingress) {
      const selectedIps = new Set(selected.flatMap((p) => p.ips));
      cp.ingress = compileRules(b, pol, 'ingress', (s) => s.members.some((m) => selectedIps.has(m.ip)), log);
      for (const p of selected) (ingressOf.get(p) ?? ingressOf.set(p, []).get(p)!).push(id);
    }
    if (types.egress) {
      cp.egress = compileRules(b, pol, 'egress', (s) => s.members.length > 0, log);
      for (const p of selected) (egressOf.get(p) ?? egressOf.set(p, []).get(p)!).push(id);
    }
    policies.set(id, cp);
  }
  const endpoints: EndpointModel[] = local.map((p) => {
    const ing = ingressOf.get(p) ?? [];
    const eg = egressOf.get(p) ?? [];
    return {
      namespace: p.info.namespace,
      name: p.info.name,
      interface: p.info.interface!,
      ips: [...p.ips].sort((a, c) => a - c),
      ingress: { isolated: ing.length > 0, policies: ing },
      egress: { isolated: eg.length > 0, policies: eg },
    };
  });
  return { node: state.node, endpoints, policies, peerSets: b.peerSets, namedPortSets: b.namedPortSets };
}

// ---- Evaluating the model (what the dataplane is meant to do), for tests and tools ----

export interface Packet {
  src: number;
  dst: number;
  protocol: Protocol;
  port: number;
  /** Sent by this node itself (host-originated), not forwarded. */
  fromHost?: boolean;
}

function peerHas(set: PeerSet | undefined, ip: number): boolean {
  if (!set) return false;
  if (set.kind === 'pods') return set.ips.includes(ip);
  if (!inCidr(ip, prefix4Addr(set.cidr), prefix4Len(set.cidr))) return false;
  return !set.except.some((e) => inCidr(ip, prefix4Addr(e), prefix4Len(e)));
}

function ruleAllows(model: RuleModel, rule: AllowRule, peer: number, dst: number, pkt: Packet): boolean {
  if (rule.peers !== undefined && !rule.peers.some((k) => peerHas(model.peerSets.get(k), peer))) return false;
  if (rule.ports === undefined) return true;
  return rule.ports.some((pm) => {
    if (pm.protocol !== pkt.protocol) return false;
    if (pm.named !== undefined) {
      const set = model.namedPortSets.get(`${pm.protocol}/${pm.named}`);
      return set?.members.some((m) => m.ip === dst && m.port === pkt.port) === true;
    }
    if (pm.port === undefined) return true;
    return pkt.port >= pm.port && pkt.port <= (pm.endPort ?? pm.port);
  });
}

/** Does the model let a new connection `pkt` through this node? (Replies are always allowed.) */
export function modelAllows(model: RuleModel, pkt: Packet): boolean {
  const src = pkt.fromHost ? undefined : model.endpoints.find((e) => e.ips.includes(pkt.src));
  const dst = model.endpoints.find((e) => e.ips.includes(pkt.dst));
  if (src?.egress.isolated) {
    const ok = src.egress.policies.some((id) =>
      (model.policies.get(id)?.egress ?? []).some((r) => ruleAllows(model, r, pkt.dst, pkt.dst, pkt)),
    );
    if (!ok) return false;
  }
  if (dst?.ingress.isolated && !pkt.fromHost) {
    const ok = dst.ingress.policies.some((id) =>
      (model.policies.get(id)?.ingress ?? []).some((r) => ruleAllows(model, r, pkt.src, pkt.dst, pkt)),
    );
    if (!ok) return false;
  }
  return true;
}
