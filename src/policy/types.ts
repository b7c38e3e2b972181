/**
 * The inputs and the output of the NetworkPolicy compiler.
 *
 * Inputs are the Kubernetes objects as the API serves them (networking.k8s.io/v1 NetworkPolicy,
 * plus the few fields of Namespace and Pod that policy reads), flattened into a `ClusterState`
 * with the name of this node. Field names follow the API so a NetworkPolicy read from YAML or
 * from the API server is used as it is. Nothing here is validated by the type: the compiler
 * checks every field it reads, because a policy can come from a hand-written file.
 *
 * The output is a `RuleModel`: per local endpoint, whether ingress and egress are isolated and
 * which compiled policies apply (in a stable order); per policy and direction, ordered allow
 * rules whose peers name shared peer sets and whose ports are plain matchers or named-port sets.
 * Sets are shared between rules and policies, keyed by a canonical text of what they select, so
 * the dataplane renders one ipset per distinct selector or CIDR group.
 *
 * IPv4 only: IPv6 pod addresses are ignored and an IPv6 ipBlock matches no IPv4 address (the
 * dataplane is an IPv4 iptables/ipset one; IPv6 would be a second family of sets and ip6tables).
 */

export type Labels = Record<string, string>;

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

/** metav1.LabelSelector. `{}` selects everything; a missing selector is not the same as `{}`. */
export interface LabelSelector {
  matchLabels?: Labels;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';

export interface NetworkPolicyPort {
  protocol?: Protocol;
  port?: number | string;
  endPort?: number;
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicy {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  spec: {
    podSelector: LabelSelector;
    policyTypes?: PolicyType[];
    ingress?: NetworkPolicyIngressRule[];
    egress?: NetworkPolicyEgressRule[];
  };
}

export interface NamespaceInfo {
  name: string;
  labels?: Labels;
}

export interface ContainerPort {
  name?: string;
  port: number;
  protocol?: Protocol;
}

export interface PodInfo {
  namespace: string;
  name: string;
  labels?: Labels;
  ips: string[];
  node: string;
  /** Host-side veth; only local pods need one. */
  interface?: string;
  ports?: ContainerPort[];
}

export interface ClusterState {
  node: string;
  namespaces: NamespaceInfo[];
  pods: PodInfo[];
  policies: NetworkPolicy[];
}

/** pino-compatible: only `warn(obj, msg)` is used. */
export interface PolicyLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
}

// ---- The rule model ----

/** A set of peer addresses. `pods`: the IPv4 addresses of pods a selector picks; `cidr`: one ipBlock. */
export type PeerSet =
  | { kind: 'pods'; key: string; ips: number[] }
  | { kind: 'cidr'; key: string; cidr: number; except: number[] };

/** (pod IPv4, port) pairs for a named port: every pod whose container port has that name and protocol. */
export interface NamedPortSet {
  key: string;
  protocol: Protocol;
  name: string;
  members: { ip: number; port: number }[];
}

export type PortMatch =
  | { protocol: Protocol; port?: undefined; endPort?: undefined; named?: undefined }
  | { protocol: Protocol; port: number; endPort?: number; named?: undefined }
  | { protocol: Protocol; named: string; port?: undefined; endPort?: undefined };

/**
 * One allow rule. `peers` undefined = any address; an empty array = none (cannot happen from a
 * valid policy, kept explicit). `ports` undefined = every port and protocol; otherwise any of them.
 */
export interface AllowRule {
  peers?: string[];
  ports?: PortMatch[];
}

export interface CompiledPolicy {
  /** `namespace/name` */
  id: string;
  namespace: string;
  name: string;
  /** Present when the policy has that policyType (after defaulting). */
  ingress?: AllowRule[];
  egress?: AllowRule[];
}

export interface DirectionModel {
  isolated: boolean;
  /** Ids of the policies selecting the endpoint for this direction, sorted. */
  policies: string[];
}

export interface EndpointModel {
  namespace: string;
  name: string;
  interface: string;
  ips: number[];
  ingress: DirectionModel;
  egress: DirectionModel;
}

export interface RuleModel {
  node: string;
  /** Local endpoints sorted by interface name. */
  endpoints: EndpointModel[];
  /** Compiled policies by id; only those selecting at least one local endpoint. */
  policies: Map<string, CompiledPolicy>;
  peerSets: Map<string, PeerSet>;
  namedPortSets: Map<string, NamedPortSet>;
}
