/**
 * The NetworkPolicy compiler: cluster state in, this node's rule model out. Pure and
 * deterministic (same state, same model, whatever the input order).
 *
 * Two entry points: `compile(state)` for a one-shot model (the CLI, tests), and the incremental
 * `PolicyCompiler` the agent feeds with one change at a time (`setPod`, `setNamespace`,
 * `setPolicy`, `delete*`). A change re-evaluates only what depends on it: a pod against the
 * peer selectors and its namespace's policies; a namespace's pods against namespace selectors;
 * a policy against its namespace's local pods. `model()` reuses every model object that did not
 * change, so the renderer and the table skip them by identity. A property test checks that any
 * sequence of changes gives the model a fresh `compile` of the same state gives.
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
  Labels,
  NamedPortSet,
  NamespaceInfo,
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

/** What a peer selects, before knowing who is in it. */
type PeerDef =
  | {
      kind: 'pods';
      key: string;
      ns: string | undefined;
      nsSel: CompiledSelector | undefined;
      podSel: CompiledSelector;
    }
  | { kind: 'cidr'; key: string; cidr: number; except: number[] };

function compilePeer(ns: string, peer: NetworkPolicyPeer, field: string): PeerDef | undefined {
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
    const ex = [...new Set(except.filter((x) => x !== null).map((e) => e.addr * 64 + e.len))].sort(
      (a, b) => a - b,
    );
    const cidr = c.addr * 64 + c.len;
    const key = `cidr ${formatPrefix4(cidr)}${ex.length ? ` except ${ex.map(formatPrefix4).join(',')}` : ''}`;
    return { kind: 'cidr', key, cidr, except: ex };
  }
  if (podSelector === undefined && namespaceSelector === undefined) {
    throw new PolicyError(`${field}: a peer needs podSelector, namespaceSelector or ipBlock`);
  }
  try {
    const podSel = compileSelector(podSelector, `${field}.podSelector`);
    const nsSel =
      namespaceSelector === undefined
        ? undefined
        : compileSelector(namespaceSelector, `${field}.namespaceSelector`);
    const key = nsSel
      ? `pods ns~${nsSel.canonical} pod~${podSel.canonical}`
      : `pods ns=${ns} pod~${podSel.canonical}`;
    return { kind: 'pods', key, ns: nsSel ? undefined : ns, nsSel, podSel };
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

function policyId(pol: NetworkPolicy): string {
  return `${policyNamespace(pol)}/${pol.metadata?.name}`;
}

interface NamedUse {
  protocol: Protocol;
  name: string;
  dir: 'ingress' | 'egress';
  field: string;
  rule: string;
}

/** Compile the rules of one direction; bad rules are dropped with a log line. */
function compileRules(
  pol: NetworkPolicy,
  dir: 'ingress' | 'egress',
  peerDefs: Map<string, PeerDef>,
  named: NamedUse[],
  log: PolicyLogger,
): AllowRule[] {
  const ns = policyNamespace(pol);
  const id = policyId(pol);
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
      const defs: PeerDef[] = [];
      if (peersIn !== undefined && peersIn !== null && (!Array.isArray(peersIn) || peersIn.length > 0)) {
        if (!Array.isArray(peersIn)) throw new PolicyError(`${peerField}: not a list`);
        peers = [];
        for (const [j, peer] of peersIn.entries()) {
          const def = compilePeer(ns, peer, `${peerField}[${j}]`);
          if (def !== undefined && !peers.includes(def.key)) {
            peers.push(def.key);
            defs.push(def);
          }
        }
      }
      let ports: PortMatch[] | undefined;
      if (
        rule.ports !== undefined &&
        rule.ports !== null &&
        (!Array.isArray(rule.ports) || rule.ports.length > 0)
      ) {
        if (!Array.isArray(rule.ports)) throw new PolicyError(`${field}.ports: not a list`);
        ports = rule.ports.map((p, j) => compilePort(p, `${field}.ports[${j}]`));
      }
      for (const d of defs) peerDefs.set(d.key, d);
      for (const [j, p] of (ports ?? []).entries()) {
        if (p.named !== undefined)
          named.push({
            protocol: p.protocol,
            name: p.named,
            dir,
            field: `${field}.ports[${j}].port`,
            rule: field,
          });
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

interface Pod {
  key: string;
  info: PodInfo;
  ips: number[];
  local: boolean;
}

interface PolicyEntry {
  id: string;
  ns: string;
  sel: CompiledSelector;
  types: { ingress: boolean; egress: boolean };
  compiled: CompiledPolicy;
  peers: Map<string, PeerDef>;
  named: NamedUse[];
  /** Keys of the local pods it selects. */
  selected: Set<string>;
}

interface PeerEntry {
  def: PeerDef;
  refs: number;
  /** Pod keys in the set (pods peers only). */
  members: Set<string>;
  set: PeerSet | undefined;
}

interface NamedEntry {
  protocol: Protocol;
  name: string;
  refs: number;
  set: NamedPortSet | undefined;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The compiler as a level-triggered, incremental state holder: `set*`/`delete*` record one
 * object each and update only what depends on it (the peer sets a pod belongs to, the policies
 * that select it, the endpoints a policy selects); `model()` assembles the rule model, reusing
 * the objects (CompiledPolicy, PeerSet, NamedPortSet, EndpointModel) that did not change, so a
 * renderer can skip them by identity. `compile(state)` is `setState(state)` + `model()`.
 */
export class PolicyCompiler {
  private readonly nsLabels = new Map<string, Labels>();
  private readonly pods = new Map<string, Pod>();
  private readonly podsByNs = new Map<string, Map<string, Pod>>();
  private readonly policies = new Map<string, PolicyEntry | null>();
  private readonly policiesByNs = new Map<string, Set<string>>();
  private readonly peers = new Map<string, PeerEntry>();
  private readonly named = new Map<string, NamedEntry>();
  /** Pod key -> ids of policies selecting it. */
  private readonly selectedBy = new Map<string, Set<string>>();
  private readonly endpoints = new Map<string, EndpointModel>();
  private order: Pod[] | undefined;

  constructor(
    readonly node: string,
    private readonly log: PolicyLogger = silent,
  ) {}

  /** Replace everything with `state` (pods and namespaces first, then policies). */
  setState(state: ClusterState): void {
    for (const id of [...this.policies.keys()]) this.deletePolicyById(id);
    for (const key of [...this.pods.keys()]) this.deletePodByKey(key);
    this.nsLabels.clear();
    for (const ns of state.namespaces ?? []) this.nsLabels.set(ns.name, ns.labels ?? {});
    for (const p of state.pods ?? []) this.setPod(p);
    const seen = new Set<string>();
    for (const pol of state.policies ?? []) {
      const id = policyId(pol);
      if (seen.has(id)) {
        this.log.warn({ policy: id }, `NetworkPolicy ${id}: duplicate name; the first one is used`);
        continue;
      }
      seen.add(id);
      this.setPolicy(pol);
    }
  }

  setNamespace(ns: NamespaceInfo): void {
    this.nsLabels.set(ns.name, ns.labels ?? {});
    this.namespaceChanged(ns.name);
  }

  deleteNamespace(name: string): void {
    this.nsLabels.delete(name);
    this.namespaceChanged(name);
  }

  private namespaceChanged(name: string): void {
    const pods = this.podsByNs.get(name);
    if (!pods) return;
    for (const e of this.peers.values()) {
      if (e.def.kind !== 'pods' || e.def.nsSel === undefined) continue;
      for (const p of pods.values()) this.updateMembership(e, p.key, this.peerMatches(e.def, p));
    }
  }

  setPod(info: PodInfo): void {
    const key = `${info.namespace}/${info.name}`;
    const old = this.pods.get(key);
    const ips: number[] = [];
    for (const t of info.ips ?? []) {
      try {
        ips.push(parseIpv4(t));
      } catch {
        // IPv6 or garbage: not in the IPv4 dataplane.
      }
    }
    ips.sort((a, b) => a - b);
    const local =
      info.node === this.node &&
      typeof info.interface === 'string' &&
      info.interface !== '' &&
      ips.length > 0;
    const pod: Pod = { key, info, ips, local };
    this.pods.set(key, pod);
    let byNs = this.podsByNs.get(info.namespace);
    if (!byNs) {
      byNs = new Map();
      this.podsByNs.set(info.namespace, byNs);
    }
    byNs.set(key, pod);
    const ipsChanged = !old || old.ips.length !== ips.length || old.ips.some((x, i) => x !== ips[i]);
    for (const e of this.peers.values()) {
      if (e.def.kind !== 'pods') continue;
      const was = e.members.has(key);
      const is = this.peerMatches(e.def, pod);
      if (was !== is || (is && ipsChanged)) e.set = undefined;
      if (is) e.members.add(key);
      else e.members.delete(key);
    }
    this.invalidateNamed(old, pod);
    this.reselect(pod);
    if (!old || old.local !== local || old.info.interface !== info.interface) this.order = undefined;
    this.endpoints.delete(key);
  }

  deletePod(namespace: string, name: string): void {
    this.deletePodByKey(`${namespace}/${name}`);
  }

  private deletePodByKey(key: string): void {
    const old = this.pods.get(key);
    if (!old) return;
    this.pods.delete(key);
    this.podsByNs.get(old.info.namespace)?.delete(key);
    for (const e of this.peers.values()) if (e.members.delete(key)) e.set = undefined;
    this.invalidateNamed(old, undefined);
    for (const id of this.selectedBy.get(key) ?? []) this.policies.get(id)?.selected.delete(key);
    this.selectedBy.delete(key);
    this.endpoints.delete(key);
    this.order = undefined;
  }

  setPolicy(pol: NetworkPolicy): void {
    const id = policyId(pol);
    this.deletePolicyById(id);
    const ns = policyNamespace(pol);
    let entry: PolicyEntry | null = null;
    try {
      if (!pol.metadata || typeof pol.metadata.name !== 'string' || pol.metadata.name === '') {
        throw new PolicyError('metadata.name: missing');
      }
      if (!pol.spec || typeof pol.spec !== 'object') throw new PolicyError('spec: missing');
      const sel = compileSelector(pol.spec.podSelector ?? {}, 'spec.podSelector');
      const types = policyTypes(pol);
      const peers = new Map<string, PeerDef>();
      const named: NamedUse[] = [];
      const compiled: CompiledPolicy = { id, namespace: ns, name: pol.metadata.name };
      if (types.ingress) compiled.ingress = compileRules(pol, 'ingress', peers, named, this.log);
      if (types.egress) compiled.egress = compileRules(pol, 'egress', peers, named, this.log);
      entry = { id, ns, sel, types, compiled, peers, named, selected: new Set() };
    } catch (err) {
      if (!(err instanceof PolicyError || err instanceof SelectorError)) throw err;
      this.log.warn(
        { policy: id, error: err.message },
        `NetworkPolicy ${id}: ${err.message}; the policy is ignored`,
      );
    }
    this.policies.set(id, entry);
    let ids = this.policiesByNs.get(ns);
    if (!ids) {
      ids = new Set();
      this.policiesByNs.set(ns, ids);
    }
    ids.add(id);
    if (!entry) return;
    for (const def of entry.peers.values()) this.refPeer(def);
    for (const u of entry.named) this.refNamed(u.protocol, u.name);
    for (const p of this.podsByNs.get(ns)?.values() ?? []) {
      if (p.local && selectorMatches(entry.sel, p.info.labels)) this.select(entry, p.key);
    }
    this.warnNamed(entry);
  }

  deletePolicy(namespace: string, name: string): void {
    this.deletePolicyById(`${namespace || 'default'}/${name}`);
  }

  private deletePolicyById(id: string): void {
    if (!this.policies.has(id)) return;
    const entry = this.policies.get(id);
    this.policies.delete(id);
    for (const ids of this.policiesByNs.values()) ids.delete(id);
    if (!entry) return;
    for (const key of entry.selected) {
      this.selectedBy.get(key)?.delete(id);
      this.endpoints.delete(key);
    }
    for (const def of entry.peers.values()) {
      const e = this.peers.get(def.key);
      if (e && --e.refs === 0) this.peers.delete(def.key);
    }
    for (const u of entry.named) {
      const k = `${u.protocol}/${u.name}`;
      const e = this.named.get(k);
      if (e && --e.refs === 0) this.named.delete(k);
    }
  }

  private select(entry: PolicyEntry, key: string): void {
    entry.selected.add(key);
    let s = this.selectedBy.get(key);
    if (!s) {
      s = new Set();
      this.selectedBy.set(key, s);
    }
    s.add(entry.id);
    this.endpoints.delete(key);
  }

  /** Re-evaluate which policies of its namespace select `pod`. */
  private reselect(pod: Pod): void {
    for (const id of this.policiesByNs.get(pod.info.namespace) ?? []) {
      const entry = this.policies.get(id);
      if (!entry) continue;
      const was = entry.selected.has(pod.key);
      const is = pod.local && selectorMatches(entry.sel, pod.info.labels);
      if (is && !was) this.select(entry, pod.key);
      if (!is && was) {
        entry.selected.delete(pod.key);
        this.selectedBy.get(pod.key)?.delete(id);
        this.endpoints.delete(pod.key);
      }
    }
  }

  private peerMatches(def: PeerDef & { kind: 'pods' }, p: Pod): boolean {
    if (
      def.ns !== undefined
        ? p.info.namespace !== def.ns
        : !selectorMatches(def.nsSel!, this.nsLabels.get(p.info.namespace))
    ) {
      return false;
    }
    return selectorMatches(def.podSel, p.info.labels);
  }

  private updateMembership(e: PeerEntry, key: string, is: boolean): void {
    const was = e.members.has(key);
    if (was === is) return;
    if (is) e.members.add(key);
    else e.members.delete(key);
    e.set = undefined;
  }

  private refPeer(def: PeerDef): void {
    const e = this.peers.get(def.key);
    if (e) {
      e.refs++;
      return;
    }
    const entry: PeerEntry = { def, refs: 1, members: new Set(), set: undefined };
    if (def.kind === 'pods') {
      const candidates =
        def.ns !== undefined ? (this.podsByNs.get(def.ns)?.values() ?? []) : this.pods.values();
      for (const p of candidates) if (this.peerMatches(def, p)) entry.members.add(p.key);
    }
    this.peers.set(def.key, entry);
  }

  private refNamed(protocol: Protocol, name: string): void {
    const k = `${protocol}/${name}`;
    const e = this.named.get(k);
    if (e) e.refs++;
    else this.named.set(k, { protocol, name, refs: 1, set: undefined });
  }

  private invalidateNamed(a: Pod | undefined, b: Pod | undefined): void {
    for (const p of [a, b]) {
      for (const cp of p?.info.ports ?? []) {
        const e = this.named.get(`${cp.protocol ?? 'TCP'}/${cp.name}`);
        if (e) e.set = undefined;
      }
    }
  }

  private namedSet(e: NamedEntry): NamedPortSet {
    if (e.set) return e.set;
    const seen = new Set<number>();
    const members: { ip: number; port: number }[] = [];
    for (const p of this.pods.values()) {
      for (const cp of p.info.ports ?? []) {
        if (cp.name !== e.name || (cp.protocol ?? 'TCP') !== e.protocol) continue;
        for (const ip of p.ips) {
          const k = ip * 65536 + cp.port;
          if (seen.has(k)) continue;
          seen.add(k);
          members.push({ ip, port: cp.port });
        }
      }
    }
    members.sort((a, b) => a.ip - b.ip || a.port - b.port);
    e.set = { key: `${e.protocol}/${e.name}`, protocol: e.protocol, name: e.name, members };
    return e.set;
  }

  private peerSet(e: PeerEntry): PeerSet {
    if (e.set) return e.set;
    if (e.def.kind === 'cidr') {
      e.set = { kind: 'cidr', key: e.def.key, cidr: e.def.cidr, except: e.def.except };
    } else {
      const ips = new Set<number>();
      for (const k of e.members) for (const ip of this.pods.get(k)?.ips ?? []) ips.add(ip);
      e.set = { kind: 'pods', key: e.def.key, ips: [...ips].sort((a, b) => a - b) };
    }
    return e.set;
  }

  /** A named port no relevant pod has is legal but almost always a typo: say so. */
  private warnNamed(entry: PolicyEntry): void {
    if (entry.selected.size === 0) return;
    const selectedIps = new Set<number>();
    for (const k of entry.selected) for (const ip of this.pods.get(k)?.ips ?? []) selectedIps.add(ip);
    const warned = new Set<string>();
    for (const u of entry.named) {
      const set = this.namedSet(this.named.get(`${u.protocol}/${u.name}`)!);
      const ok =
        u.dir === 'ingress' ? set.members.some((m) => selectedIps.has(m.ip)) : set.members.length > 0;
      if (ok || warned.has(u.field)) continue;
      warned.add(u.field);
      this.log.warn(
        { policy: entry.id, field: u.field, port: u.name, protocol: u.protocol },
        `NetworkPolicy ${entry.id}: named port ${JSON.stringify(u.name)}/${u.protocol} in ${u.rule} matches no pod; that port allows nothing`,
      );
    }
  }

  /** The rule model for this node; unchanged parts are the same objects as last time. */
  model(): RuleModel {
    if (!this.order) {
      this.order = [...this.pods.values()]
        .filter((p) => p.local)
        .sort((x, y) => byString(x.info.interface!, y.info.interface!) || byString(x.key, y.key));
    }
    const policies = new Map<string, CompiledPolicy>();
    const peerSets = new Map<string, PeerSet>();
    const namedPortSets = new Map<string, NamedPortSet>();
    for (const id of [...this.policies.keys()].sort(byString)) {
      const entry = this.policies.get(id);
      if (!entry || entry.selected.size === 0) continue;
      policies.set(id, entry.compiled);
      for (const k of entry.peers.keys())
        if (!peerSets.has(k)) peerSets.set(k, this.peerSet(this.peers.get(k)!));
      for (const u of entry.named) {
        const k = `${u.protocol}/${u.name}`;
        if (!namedPortSets.has(k)) namedPortSets.set(k, this.namedSet(this.named.get(k)!));
      }
    }
    const endpoints = this.order.map((p) => {
      let ep = this.endpoints.get(p.key);
      if (!ep) {
        const ids = [...(this.selectedBy.get(p.key) ?? [])].sort(byString);
        const ing = ids.filter((id) => this.policies.get(id)?.types.ingress);
        const eg = ids.filter((id) => this.policies.get(id)?.types.egress);
        ep = {
          namespace: p.info.namespace,
          name: p.info.name,
          interface: p.info.interface!,
          ips: p.ips,
          ingress: { isolated: ing.length > 0, policies: ing },
          egress: { isolated: eg.length > 0, policies: eg },
        };
        this.endpoints.set(p.key, ep);
      }
      return ep;
    });
    return { node: this.node, endpoints, policies, peerSets, namedPortSets };
  }
}

/** Compile the cluster state into this node's rule model (one-shot). */
export function compile(state: ClusterState, log: PolicyLogger = silent): RuleModel {
  const c = new PolicyCompiler(state.node, log);
  c.setState(state);
  return c.model();
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
