/**
 * What the agent wants, as pure functions of what the datastore holds (DESIGN.md "How data
 * flows"): the BGP neighbors, the originated prefixes, the kernel routes of each owner, and the
 * cluster state the policy compiler takes. The agent's shell (agent.ts) feeds these from its
 * watches and hands the results to the speaker, the route reconciler and the policy table,
 * which each apply differences. Nothing here does I/O; everything is tested in
 * test/agent/desired.test.ts.
 *
 * What a change moves (`changeMoves`): the neighbors, this node's own part (originated prefixes,
 * `pods` and `blocks` routes) or the policy input, each recomputed only when an event can move
 * it. Every agent sharing a store sees every write, and most writes (another node's block or
 * affinity, a Node rewritten with the same annotations) move nothing on the others.
 *
 * Node discovery (as calico-node's `projectcalico.org/IPv4Address` and `ASNumber`): each agent
 * publishes its BGP address, and its AS and port when they differ from the cluster's, as
 * annotations on its Node object (`NODE_ANNOTATIONS`); the others read them. A node without an
 * address annotation is not peered with (its agent has not started yet).
 *
 * Neighbors (Calico's rules):
 * - the node-to-node mesh, unless BGPConfiguration `default` sets nodeToNodeMeshEnabled false:
 *   every other node with an address, iBGP with the cluster AS (or the node's own), the lower
 *   address dials (mesh.lowerAddressDials in the speaker);
 * - BGPPeer objects: global (no node, no selector), for this node (`node`), or for the nodes a
 *   selector matches (`nodeSelector`, Calico's syntax); eBGP when its AS differs from ours. A
 *   BGPPeer whose address is a mesh node's replaces the mesh session (its settings win), as a
 *   route-reflector configuration needs. A BGPPeer naming our own address is skipped.
 * Exports go only inside the IP pools (Calico's `calico_export_to_bgp_peers`): a default route
 * a ToR sends is not passed on to the mesh.
 *
 * Routes (route reconciler owners, route-model.ts priorities):
 * - `pods`: a /32 (/128) `dev <host veth>` per address of an allocation this node made (IPAM
 *   attributes name the node), the veth named from the pod (cni/names.ts);
 * - `blocks`: a blackhole per block affine to this node, so unassigned addresses do not follow
 *   the default route;
 * - `bgp`: every best BGP route not our own, via all its equal-cost next hops.
 */

import type { RouteChange } from '../bgp/best-routes.js';
import {
  type BfdNeighborConfig,
  DEFAULT_BFD,
  type NeighborConfig,
  type PrefixRuleConfig,
} from '../bgp/config.js';
import { IPV4_UNICAST, IPV6_UNICAST } from '../bgp/wire/constants.js';
import { hostVethName, hostVethNameForContainer } from '../cni/names.js';
import { parseIp } from '../config/fields.js';
import type { RouteSpec } from '../dataplane/route-model.js';
import type { Kind, StoredObject } from '../datastore/types.js';
import { formatAddress, formatCidr, parseCidr } from '../ipam/blocks.js';
import { affinityOf, type BlockAffinitySpec, type IPAMBlockSpec } from '../ipam/model.js';
import { confirmedBlocks } from '../ipam/originate.js';
import { compileNodeSelector, nodeSelectorMatches, SelectorError } from '../ipam/selector.js';
import type { ClusterState, ContainerPort, NetworkPolicy, PodInfo } from '../policy/types.js';

export const NODE_ANNOTATIONS = {
  address: 'bgp.twill.dev/ipv4-address',
  asn: 'bgp.twill.dev/as-number',
  port: 'bgp.twill.dev/port',
} as const;

export const DEFAULT_AS = 64512;
export const DEFAULT_BGP_PORT = 179;
export const DEFAULT_GR_TIME = 120;
export const BGP_CONFIGURATION_NAME = 'default';

export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
  /** From the address annotation; undefined until the node's agent has published it. */
  address: string | undefined;
  /** From the AS annotation, when the node overrides the cluster's. */
  asn: number | undefined;
  port: number | undefined;
  /** status.addresses InternalIP (IPv4), for kubernetes-internal-ip autodetection. */
  internalIP: string | undefined;
}

const rec = (v: unknown): Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};

function intIn(v: unknown, min: number, max: number): number | undefined {
  const n = typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v;
  return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max ? n : undefined;
}

export function nodeInfo(o: StoredObject): NodeInfo {
  const ann = o.metadata.annotations ?? {};
  const ip =
    ann[NODE_ANNOTATIONS.address] !== undefined ? parseIp(ann[NODE_ANNOTATIONS.address]!) : undefined;
  let internalIP: string | undefined;
  const addresses = rec(o.status).addresses;
  if (Array.isArray(addresses))
    for (const a of addresses) {
      const r = rec(a);
      const p = typeof r.address === 'string' ? parseIp(r.address) : undefined;
      if (r.type === 'InternalIP' && p?.version === 4) {
        internalIP = p.text;
        break;
      }
    }
  return {
    name: o.metadata.name,
    labels: o.metadata.labels ?? {},
    address: ip?.version === 4 ? ip.text : undefined,
    asn: intIn(ann[NODE_ANNOTATIONS.asn], 1, 4294967295),
    port: intIn(ann[NODE_ANNOTATIONS.port], 1, 65535),
    internalIP,
  };
}

/** The annotations this node publishes (only the ones that differ from the cluster's). */
export function myAnnotations(
  address: string,
  asn: number | undefined,
  port: number | undefined,
): Record<string, string | undefined> {
  return {
    [NODE_ANNOTATIONS.address]: address,
    [NODE_ANNOTATIONS.asn]: asn === undefined ? undefined : String(asn),
    [NODE_ANNOTATIONS.port]: port === undefined ? undefined : String(port),
  };
}

export interface BgpGlobal {
  asn: number;
  meshEnabled: boolean;
  listenPort: number;
  /** Seconds; undefined: the speaker's default (90). */
  holdTime: number | undefined;
  gracefulRestartTime: number;
  /** BFD for the mesh peers; null: none. */
  bfd: BfdNeighborConfig | null;
}

/** BGPConfiguration `default` (absent: every default), with the CRD's defaults applied. */
export function bgpGlobal(o: StoredObject | undefined): BgpGlobal {
  const s = rec(o?.spec);
  const asn = intIn(s.asNumber, 1, 4294967295);
  const hold = intIn(s.holdTime, 0, 65535);
  return {
    asn: asn !== undefined && asn !== 23456 ? asn : DEFAULT_AS,
    meshEnabled: s.nodeToNodeMeshEnabled !== false,
    listenPort: intIn(s.listenPort, 1, 65535) ?? DEFAULT_BGP_PORT,
    holdTime: hold !== undefined && (hold === 0 || hold >= 3) ? hold : undefined,
    gracefulRestartTime: intIn(s.gracefulRestartTime, 0, 4095) ?? DEFAULT_GR_TIME,
    bfd: bfdOf(s.bfd),
  };
}

/** `spec.bfd` of BGPConfiguration or BGPPeer: {enabled, minTxMs, minRxMs, multiplier} (the CRDs). */
export function bfdOf(v: unknown): BfdNeighborConfig | null {
  if (v === undefined || v === null || typeof v !== 'object') return null;
  const b = v as Record<string, unknown>;
  if (b.enabled === false) return null;
  return {
    minTxMs: intIn(b.minTxMs, 10, 60_000) ?? DEFAULT_BFD.minTxMs,
    minRxMs: intIn(b.minRxMs, 10, 60_000) ?? DEFAULT_BFD.minRxMs,
    multiplier: intIn(b.multiplier, 1, 255) ?? DEFAULT_BFD.multiplier,
  };
}

export interface BgpPeerSpec {
  name: string;
  peerIP: string;
  asNumber: number;
  node: string | undefined;
  nodeSelector: string | undefined;
  holdTime: number | undefined;
  routeReflectorClient: boolean;
  bfd: BfdNeighborConfig | null;
}

/** A BGPPeer's spec, or the reason it is unusable (the caller logs it and goes on). */
export function bgpPeerSpec(o: StoredObject): BgpPeerSpec | string {
  const s = rec(o.spec);
  const where = `BGPPeer ${o.metadata.name}`;
  const ip = typeof s.peerIP === 'string' ? parseIp(s.peerIP) : undefined;
  if (!ip) return `${where}: spec.peerIP: ${JSON.stringify(s.peerIP)} is not an IP address`;
  const asn = intIn(s.asNumber, 1, 4294967295);
  if (asn === undefined || asn === 23456)
    return `${where}: spec.asNumber: ${JSON.stringify(s.asNumber)} is not an AS number 1..4294967295`;
  const hold = s.holdTime === undefined ? undefined : intIn(s.holdTime, 0, 65535);
  if (s.holdTime !== undefined && (hold === undefined || (hold > 0 && hold < 3)))
    return `${where}: spec.holdTime: ${JSON.stringify(s.holdTime)} is not 0 or 3..65535`;
  if (s.node !== undefined && typeof s.node !== 'string') return `${where}: spec.node: not a string`;
  if (s.nodeSelector !== undefined && typeof s.nodeSelector !== 'string')
    return `${where}: spec.nodeSelector: not a string`;
  if (s.node !== undefined && s.nodeSelector !== undefined)
    return `${where}: spec.node and spec.nodeSelector exclude each other`;
  if (typeof s.nodeSelector === 'string')
    try {
      compileNodeSelector(s.nodeSelector);
    } catch (err) {
      if (err instanceof SelectorError) return `${where}: spec.nodeSelector: ${err.message}`;
      throw err;
    }
  return {
    name: o.metadata.name,
    peerIP: ip.text,
    asNumber: asn,
    node: s.node as string | undefined,
    nodeSelector: s.nodeSelector as string | undefined,
    holdTime: hold,
    routeReflectorClient: s.routeReflectorClient === true,
    bfd: bfdOf(s.bfd),
  };
}

function appliesTo(p: BgpPeerSpec, me: NodeInfo): boolean {
  if (p.node !== undefined) return p.node === me.name;
  if (p.nodeSelector !== undefined)
    return nodeSelectorMatches(compileNodeSelector(p.nodeSelector), me.labels);
  return true;
}

/** Accept prefixes inside the pools (any length), reject the rest. */
export function exportRules(poolCidrs: readonly string[]): PrefixRuleConfig[] {
  const out: PrefixRuleConfig[] = [];
  for (const c of poolCidrs) {
    try {
      const p = parseCidr(c);
      out.push({
        prefix: `${formatAddress(p.family, p.base)}/${p.len}`,
        ge: p.len,
        le: p.family === 4 ? 32 : 128,
        action: 'accept',
      });
    } catch {
      // an invalid pool is reported by IPAM; it exports nothing
    }
  }
  out.push({ prefix: '0.0.0.0/0', ge: 0, le: 32, action: 'reject' });
  out.push({ prefix: '::/0', ge: 0, le: 128, action: 'reject' });
  return out;
}

export interface NeighborInput {
  me: NodeInfo;
  /** Our AS (the flag, else the cluster's). */
  asn: number;
  global: BgpGlobal;
  nodes: readonly NodeInfo[];
  peers: readonly BgpPeerSpec[];
  poolCidrs: readonly string[];
}

export type NeighborKind = 'node-to-node mesh' | 'global' | 'node specific';

/** The neighbor list, sorted by address; `kinds` says where each came from (status). */
export function desiredNeighbors(input: NeighborInput): {
  neighbors: NeighborConfig[];
  kinds: Map<string, NeighborKind>;
} {
  const { me, global } = input;
  const exp = exportRules(input.poolCidrs);
  const base = (address: string, asn: number, port: number, description: string): NeighborConfig => ({
    address,
    asn,
    port,
    passive: false,
    holdTime: global.holdTime ?? 90,
    connectRetry: 5,
    families: [IPV4_UNICAST, IPV6_UNICAST],
    localAddress: null,
    description,
    routeReflectorClient: false,
    nextHopSelf: false,
    allowasIn: 0,
    maxPrefix: null,
    import: [],
    export: exp,
  });
  const out = new Map<string, NeighborConfig>();
  const kinds = new Map<string, NeighborKind>();
  if (global.meshEnabled)
    for (const n of input.nodes) {
      if (n.name === me.name || n.address === undefined || n.address === me.address) continue;
      const nb = base(n.address, n.asn ?? global.asn, n.port ?? global.listenPort, `node ${n.name}`);
      if (global.bfd) nb.bfd = global.bfd;
      out.set(n.address, nb);
      kinds.set(n.address, 'node-to-node mesh');
    }
  for (const p of input.peers) {
    if (p.peerIP === me.address || !appliesTo(p, me)) continue;
    const nb = base(p.peerIP, p.asNumber, DEFAULT_BGP_PORT, `BGPPeer ${p.name}`);
    if (p.holdTime !== undefined) nb.holdTime = p.holdTime;
    if (p.bfd) nb.bfd = p.bfd;
    nb.routeReflectorClient = p.routeReflectorClient && p.asNumber === input.asn;
    // A node listed as a BGPPeer (a node acting as route reflector) keeps its own port.
    const node = input.nodes.find((n) => n.address === p.peerIP);
    if (node?.port !== undefined) nb.port = node.port;
    out.set(p.peerIP, nb);
    kinds.set(p.peerIP, p.node !== undefined || p.nodeSelector !== undefined ? 'node specific' : 'global');
  }
  const neighbors = [...out.values()].sort((a, b) =>
    a.address < b.address ? -1 : a.address > b.address ? 1 : 0,
  );
  return { neighbors, kinds };
}

// ---------------------------------------------------------------------------------------------
// What a change moves

/**
 * What one datastore change can move for a node's agent, so that it recomputes only that part:
 * - `neighbors`: the BGP neighbor list (and, through BGPConfiguration, the speaker itself);
 * - `local`: what comes from this node's own IPAM state: the originated prefixes and the `pods`
 *   and `blocks` routes;
 * - `policy`: the policy compiler's input.
 * A mesh of N agents sharing one store sees every write; most of them (another node's block,
 * another node's affinity, a Node object rewritten with the same annotations) move nothing here.
 */
export interface Moves {
  neighbors: boolean;
  local: boolean;
  policy: boolean;
}

const NOTHING: Moves = { neighbors: false, local: false, policy: false };

/** What a change of one object of `kind` (before -> after; undefined: absent) moves for `node`. */
export function changeMoves(
  node: string,
  kind: Kind,
  before: StoredObject | undefined,
  after: StoredObject | undefined,
): Moves {
  switch (kind) {
    case 'Node':
      return { ...NOTHING, neighbors: nodeChangeMoves(before, after) };
    case 'BGPConfiguration':
    case 'BGPPeer':
    case 'IPPool':
      return { ...NOTHING, neighbors: true };
    case 'IPAMBlock':
      return {
        neighbors: false,
        ...blockChangeMoves(
          node,
          before?.spec as IPAMBlockSpec | undefined,
          after?.spec as IPAMBlockSpec | undefined,
        ),
      };
    case 'BlockAffinity':
      return {
        ...NOTHING,
        local: affinityChangeMoves(
          node,
          before?.spec as BlockAffinitySpec | undefined,
          after?.spec as BlockAffinitySpec | undefined,
        ),
      };
    case 'Namespace':
    case 'Pod':
    case 'NetworkPolicy':
      return { ...NOTHING, policy: true };
    default:
      return NOTHING;
  }
}

/**
 * Whether a Node change moves the neighbors: only what desiredNeighbors reads (name, labels,
 * the published address, AS and port), not its status (Kubernetes rewrites that on its own).
 */
export function nodeChangeMoves(before: StoredObject | undefined, after: StoredObject | undefined): boolean {
  const seen = (o: StoredObject | undefined) => {
    if (o === undefined) return '';
    const { internalIP: _, ...rest } = nodeInfo(o);
    return JSON.stringify(rest);
  };
  return seen(before) !== seen(after);
}

/**
 * What a change of one IPAM block (before -> after; undefined: absent) can move for `node`:
 * its own part (`local`) when the block is affine to it (origination, blackhole) or holds an
 * address of its (a borrowed /32, a pod route), on either side; the policy input when who holds
 * which address changed. Another node's new, empty block moves neither.
 */
export function blockChangeMoves(
  node: string,
  before: IPAMBlockSpec | undefined,
  after: IPAMBlockSpec | undefined,
): { local: boolean; policy: boolean } {
  const mine = affinityOf(node);
  const local = [before, after].some(
    (b) => b !== undefined && (b.affinity === mine || localAddresses(node, [b]).length > 0),
  );
  const holders = (b: IPAMBlockSpec | undefined) =>
    b ? JSON.stringify(localAddresses(undefined, [b])) : '[]';
  return { local, policy: holders(before) !== holders(after) };
}

/** Whether a change of one BlockAffinity can move `node`'s origination: only its own do. */
export function affinityChangeMoves(
  node: string,
  before: BlockAffinitySpec | undefined,
  after: BlockAffinitySpec | undefined,
): boolean {
  return before?.node === node || after?.node === node;
}

// ---------------------------------------------------------------------------------------------
// Routes

/** The container ID of a handle `<network>.<containerID>` (cni/names.ts handleFor), if it has one. */
function containerOf(handle: string): string | undefined {
  const dot = handle.indexOf('.');
  if (dot < 0) return undefined;
  const id = handle.slice(dot + 1);
  return id.startsWith('h-') ? undefined : id;
}

export interface LocalAddress {
  /** The node whose assign took it. */
  node: string;
  address: string;
  family: 4 | 6;
  handle: string;
  namespace: string | undefined;
  pod: string | undefined;
  /** The host-side veth, when it can be named. */
  dev: string | undefined;
}

/** Every address an allocation by `node` holds, in any block (own or borrowed); every node's without one. */
export function localAddresses(node: string | undefined, blocks: readonly IPAMBlockSpec[]): LocalAddress[] {
  const out: LocalAddress[] = [];
  for (const b of blocks) {
    if (!Array.isArray(b.allocations) || !Array.isArray(b.attributes)) continue;
    let cidr: ReturnType<typeof parseCidr>;
    try {
      cidr = parseCidr(b.cidr);
    } catch {
      continue;
    }
    b.allocations.forEach((a, ordinal) => {
      const attr = a === null ? undefined : b.attributes[a];
      if (!attr || (node !== undefined && attr.node !== node)) return;
      const ns = typeof attr.namespace === 'string' && attr.namespace !== '' ? attr.namespace : undefined;
      const pod = typeof attr.pod === 'string' && attr.pod !== '' ? attr.pod : undefined;
      const cid = containerOf(attr.handle);
      out.push({
        node: attr.node,
        address: formatAddress(cidr.family, cidr.base + BigInt(ordinal)),
        family: cidr.family,
        handle: attr.handle,
        namespace: ns,
        pod,
        dev: ns && pod ? hostVethName(ns, pod) : cid ? hostVethNameForContainer(cid) : undefined,
      });
    });
  }
  return out;
}

export function podRoutes(addresses: readonly LocalAddress[]): RouteSpec[] {
  const out: RouteSpec[] = [];
  for (const a of addresses)
    if (a.dev) out.push({ dst: `${a.address}/${a.family === 4 ? 32 : 128}`, kind: 'dev', dev: a.dev });
  return out;
}

/**
 * A blackhole per block this node originates: affine to it and, with the affinities given, with
 * its affinity confirmed (the rule of ipam/originate.ts, so what is blackholed here is what the
 * others are told to send here; a claim or release under way has neither).
 */
export function blockRoutes(
  node: string,
  blocks: readonly IPAMBlockSpec[],
  affinities?: readonly BlockAffinitySpec[],
): RouteSpec[] {
  const mine = affinityOf(node);
  const confirmed = affinities && confirmedBlocks(node, affinities);
  const out: RouteSpec[] = [];
  for (const b of blocks) {
    if (b.affinity !== mine) continue;
    try {
      const c = parseCidr(b.cidr);
      if (confirmed && !confirmed.has(formatCidr(c))) continue;
      out.push({ dst: `${formatAddress(c.family, c.base)}/${c.len}`, kind: 'blackhole' });
    } catch {
      // invalid blocks are IPAM's to report
    }
  }
  return out;
}

/** Applies best-route changes to the `bgp` owner's map (prefix -> spec). */
export function applyRouteChanges(into: Map<string, RouteSpec>, changes: readonly RouteChange[]): void {
  for (const c of changes) {
    if (c.local || c.nextHops.length === 0) into.delete(c.prefix);
    else into.set(c.prefix, { dst: c.prefix, kind: 'via', via: c.nextHops });
  }
}

// ---------------------------------------------------------------------------------------------
// Policy

function podIps(o: StoredObject): string[] {
  const st = rec(o.status);
  const ips = new Set<string>();
  if (Array.isArray(st.podIPs))
    for (const e of st.podIPs) {
      const ip = parseIp(String(rec(e).ip ?? ''));
      if (ip) ips.add(ip.text);
    }
  if (typeof st.podIP === 'string') {
    const ip = parseIp(st.podIP);
    if (ip) ips.add(ip.text);
  }
  return [...ips];
}

function podPorts(o: StoredObject): ContainerPort[] {
  const out: ContainerPort[] = [];
  const containers = rec(o.spec).containers;
  if (!Array.isArray(containers)) return out;
  for (const c of containers) {
    const ports = rec(c).ports;
    if (!Array.isArray(ports)) continue;
    for (const p of ports) {
      const r = rec(p);
      const port = intIn(r.containerPort, 1, 65535);
      if (port === undefined) continue;
      const proto = r.protocol === 'UDP' || r.protocol === 'SCTP' ? r.protocol : 'TCP';
      out.push({ ...(typeof r.name === 'string' ? { name: r.name } : {}), port, protocol: proto });
    }
  }
  return out;
}

/** PodInfo per pod object (see clusterState); null for a pod the policy does not see. */
const podInfos = new WeakMap<StoredObject, { node: string; ipam: string; info: PodInfo | null }>();

function podInfo(
  o: StoredObject,
  ns: string,
  node: string,
  me: string,
  ipam: readonly string[],
): PodInfo | null {
  const spec = rec(o.spec);
  if (spec.hostNetwork === true) return null;
  const name = o.metadata.name;
  const local = node === me;
  const ips = new Set(podIps(o));
  for (const ip of ipam) ips.add(ip);
  if (ips.size === 0) return null;
  return {
    namespace: ns,
    name,
    labels: o.metadata.labels ?? {},
    ips: [...ips],
    node,
    ...(local ? { interface: hostVethName(ns, name) } : {}),
    ports: podPorts(o),
  };
}

/**
 * The policy compiler's input. A pod's addresses are its status's and the ones IPAM holds for it
 * by its node (`addresses`: every node's allocations): a pod is policed from its first packet,
 * before the runtime has written its status, and on the file datastore nobody writes it.
 * Host-network pods are left out (they have no veth and no address of their own).
 */
export function clusterState(input: {
  node: string;
  namespaces: readonly StoredObject[];
  pods: readonly StoredObject[];
  policies: readonly StoredObject[];
  addresses: readonly LocalAddress[];
}): ClusterState {
  const ipamIps = new Map<string, string[]>();
  for (const a of input.addresses)
    if (a.namespace && a.pod) {
      const k = `${a.node}/${a.namespace}/${a.pod}`;
      ipamIps.set(k, [...(ipamIps.get(k) ?? []), a.address]);
    }
  const pods: PodInfo[] = [];
  for (const o of input.pods) {
    const ns = o.metadata.namespace ?? 'default';
    const nodeName = rec(o.spec).nodeName;
    const node = typeof nodeName === 'string' ? nodeName : '';
    const ipam = ipamIps.get(`${node}/${ns}/${o.metadata.name}`);
    const ipamKey = ipam === undefined ? '' : ipam.join(',');
    // A pod object the store has not replaced is the same object: its PodInfo is kept (with
    // the IPAM addresses it was made with), so an unchanged pod costs a lookup, not a parse.
    const cached = podInfos.get(o);
    let info: PodInfo | null;
    if (cached !== undefined && cached.node === input.node && cached.ipam === ipamKey) info = cached.info;
    else {
      info = podInfo(o, ns, node, input.node, ipam ?? []);
      podInfos.set(o, { node: input.node, ipam: ipamKey, info });
    }
    if (info !== null) pods.push(info);
  }
  return {
    node: input.node,
    namespaces: input.namespaces.map((o) => ({ name: o.metadata.name, labels: o.metadata.labels ?? {} })),
    pods,
    policies: input.policies.map(
      (o) =>
        ({
          metadata: { name: o.metadata.name, namespace: o.metadata.namespace ?? 'default' },
          spec: o.spec,
        }) as NetworkPolicy,
    ),
  };
}
