/**
 * Rule model -> the ipsets and iptables filter chains that enforce it. Pure: no I/O, no clock;
 * the same model always renders the same text, sorted, so operators can diff it.
 *
 * Layout (all chains and sets prefixed `twl-`; nothing else is ours but two jump rules):
 *
 *   FORWARD  -> twl-FORWARD   pod <-> anything routed through the node (pods are /32 routes to
 *                             their host-side veths, so pod-to-pod traffic is forwarded)
 *   INPUT    -> twl-INPUT     pod -> the node itself: the pod's egress policy applies
 *   OUTPUT   (nothing)        the node -> its pods is always allowed ("traffic from the pod's own
 *                             node"): host-originated packets never traverse FORWARD, and we
 *                             add no OUTPUT rule, so kubelet probes and host agents get through.
 *
 *   twl-FORWARD: replies (conntrack RELATED,ESTABLISHED) to/from pod veths are accepted first,
 *     INVALID dropped; then `-i twl+` goes to the from-pod dispatch (egress of the sender),
 *     `-o twl+` to the to-pod dispatch (ingress of the receiver), and what survives is ACCEPTed
 *     (so a host FORWARD policy of DROP does not undo an allow).
 *   twl-fw-dispatch / twl-tw-dispatch: a tree keyed on the interface name's characters (at
 *     most 16 branches per chain), so a packet walks O(log n) dispatch rules, not O(pods).
 *     An unknown `twl` interface is dropped.
 *   twl-fw-<iface> / twl-tw-<iface>: per endpoint. Not isolated: empty (returns = allowed).
 *     Isolated: clear the accept mark, jump to each selecting policy's chain, return as soon as
 *     the mark is set, DROP at the end.
 *   twl-pi-<hash> / twl-po-<hash>: per policy and direction (ingress/egress), shared by every
 *     endpoint it selects; each allow rule sets the accept mark. A rule becomes one iptables rule
 *     per (peer, port) pair: peers are `-m set` matches on src (ingress) or dst (egress), ports
 *     are `-p P --dport N[:M]`, named ports a `hash:ip,port` set matched on `dst,dst` (so a named
 *     port resolves per destination pod without per-pod rules).
 *
 * Sets: `twl-s-*` hash:ip (pods a selector picks), `twl-c-*` hash:net (one ipBlock: the CIDR,
 * and each except as a `nomatch` entry; /0 is written as two /1s because hash:net cannot hold
 * /0), `twl-n-*` hash:ip,port (a named port). Names are a hash of the canonical selector text.
 *
 * Every rule carries `-m comment --comment "twl:<hash>"`, the hash chaining the chain name, the
 * previous rule's hash and this rule's text (Felix's scheme): reading `iptables-save` back and
 * comparing the hash lists per chain shows any drift, including reordering and foreign rules.
 *
 * `Renderer` remembers what it rendered from which model object (see its comment); `render()`
 * is a fresh one-shot render. `renderFull` sorts by name for people, `renderNotes` is the legend.
 *
 * Departures from Calico: no mangle/raw/nat work, no host endpoints, no policy tiers or
 * `Pass`; IPv4 only.
 */
import { createHash } from 'node:crypto';
import { formatIpv4, formatPrefix4, prefix4Len } from '../../net/addr.js';
import type {
  AllowRule,
  CompiledPolicy,
  EndpointModel,
  NamedPortSet,
  PeerSet,
  PortMatch,
  RuleModel,
} from '../../policy/types.js';

export type SetType = 'hash:ip' | 'hash:net' | 'hash:ip,port';

export interface SetSpec {
  type: SetType;
  /** Member texts exactly as `ipset save` prints them, sorted. */
  members: string[];
}

export interface RenderOptions {
  /** Host-side interface prefix of pod veths. Default `twl`. */
  ifacePrefix?: string;
  /** The mark bit an allow rule sets. Default 0x100000 (clear of kube-proxy's 0x4000/0x8000). */
  acceptMark?: number;
}

export interface Rendered {
  sets: Map<string, SetSpec>;
  /** Chain -> rule bodies (what follows `-A CHAIN`), without the hash comment. */
  chains: Map<string, string[]>;
  /** Jumps from the built-in chains into ours, each inserted at position 1. */
  jumps: { chain: 'FORWARD' | 'INPUT'; target: string }[];
}

export const CHAIN_PREFIX = 'twl-';
export const SET_PREFIX = 'twl-';
const FANOUT = 16;

function hex(text: string, n: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, n);
}

export function peerSetName(set: PeerSet): string {
  return `${SET_PREFIX}${set.kind === 'pods' ? 's' : 'c'}-${hex(set.key, 16)}`;
}

export function namedPortSetName(set: NamedPortSet): string {
  return `${SET_PREFIX}n-${hex(set.key, 16)}`;
}

/** The name a set is built under before it is swapped in. */
export function tempSetName(name: string): string {
  return `${SET_PREFIX}t${name.slice(SET_PREFIX.length - 1)}`;
}

export function policyChainName(id: string, dir: 'ingress' | 'egress'): string {
  return `${CHAIN_PREFIX}p${dir === 'ingress' ? 'i' : 'o'}-${hex(id, 16)}`;
}

/** The hash comment of one rule: chains the chain name, the previous hash and the rule text. */
export function ruleHash(chain: string, prev: string, body: string): string {
  return createHash('sha256')
    .update(chain)
    .update('\0')
    .update(prev)
    .update('\0')
    .update(body)
    .digest('base64url')
    .slice(0, 16);
}

export function chainHashes(chain: string, rules: string[]): string[] {
  const out: string[] = [];
  let prev = '';
  for (const r of rules) {
    prev = ruleHash(chain, prev, r);
    out.push(prev);
  }
  return out;
}

function setMembers(set: PeerSet): SetSpec {
  if (set.kind === 'pods') return { type: 'hash:ip', members: set.ips.map(formatIpv4).sort() };
  const net = (key: number) =>
    prefix4Len(key) === 32 ? formatIpv4(Math.floor(key / 64)) : formatPrefix4(key);
  const members: string[] = [];
  if (prefix4Len(set.cidr) === 0) members.push('0.0.0.0/1', '128.0.0.0/1');
  else members.push(net(set.cidr));
  for (const e of set.except) members.push(`${net(e)} nomatch`);
  return { type: 'hash:net', members: members.sort() };
}

function portArgs(pm: PortMatch, named: Map<string, string>): string {
  const p = pm.protocol.toLowerCase();
  if (pm.named !== undefined)
    return `-p ${p} -m set --match-set ${named.get(`${pm.protocol}/${pm.named}`)} dst,dst`;
  if (pm.port === undefined) return `-p ${p}`;
  return `-p ${p} -m ${p} --dport ${pm.port}${pm.endPort !== undefined ? `:${pm.endPort}` : ''}`;
}

function ruleBodies(
  rule: AllowRule,
  dir: 'ingress' | 'egress',
  peerNames: Map<string, string>,
  named: Map<string, string>,
  mark: string,
): string[] {
  const peerArgs =
    rule.peers === undefined
      ? ['']
      : rule.peers.map((k) => `-m set --match-set ${peerNames.get(k)} ${dir === 'ingress' ? 'src' : 'dst'}`);
  const ports = rule.ports === undefined ? [''] : rule.ports.map((pm) => portArgs(pm, named));
  const out: string[] = [];
  for (const peer of peerArgs) {
    for (const port of ports)
      out.push([port, peer, `-j MARK --set-xmark ${mark}/${mark}`].filter(Boolean).join(' '));
  }
  return out;
}

/** Dispatch tree: chain `name` sends each interface to `leaf(iface)`, splitting by character. */
function dispatch(
  chains: Map<string, string[]>,
  root: string,
  name: string,
  ifaces: string[],
  depth: number,
  flag: '-i' | '-o',
  prefix: string,
  leaf: (iface: string) => string,
): void {
  const rules: string[] = [];
  if (ifaces.length <= FANOUT) {
    for (const i of ifaces) rules.push(`${flag} ${i} -g ${leaf(i)}`);
  } else {
    const groups = new Map<string, string[]>();
    for (const i of ifaces) {
      const k = i.slice(0, prefix.length + depth + 1);
      (groups.get(k) ?? groups.set(k, []).get(k)!).push(i);
    }
    // A character every name shares does not branch: look at the next one, in this chain.
    if (groups.size === 1 && ifaces.every((i) => i.length > prefix.length + depth + 1)) {
      dispatch(chains, root, name, ifaces, depth + 1, flag, prefix, leaf);
      return;
    }
    for (const [k, members] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (members.length === 1) {
        rules.push(`${flag} ${members[0]} -g ${leaf(members[0]!)}`);
        continue;
      }
      const sub = `${root}-${k.slice(prefix.length)}`;
      rules.push(`${flag} ${k}+ -g ${sub}`);
      dispatch(chains, root, sub, members, depth + 1, flag, prefix, leaf);
    }
  }
  rules.push(`${flag} ${prefix}+ -j DROP`);
  chains.set(name, rules);
}

const IFACE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * A renderer that remembers: sets, policy chains, endpoint chains and the dispatch tree are
 * rebuilt only when the model objects they come from are new (the incremental compiler keeps
 * unchanged ones), and unchanged chains keep the same rules array, so the table skips them by
 * identity. Output is the same as a fresh render.
 */
export class Renderer {
  private readonly prefix: string;
  private readonly mark: string;
  private readonly peerSpecs = new WeakMap<PeerSet, SetSpec>();
  private readonly namedSpecs = new WeakMap<NamedPortSet, SetSpec>();
  private readonly policyRules = new WeakMap<CompiledPolicy, { ingress?: string[]; egress?: string[] }>();
  private endpointRules = new Map<string, string[]>();
  private readonly endpointChains = new WeakMap<
    EndpointModel,
    { fw: string; tw: string; ingressKey: string; egressKey: string; ingress: string[]; egress: string[] }
  >();
  private readonly ifaceOk = new Map<string, boolean>();

  private validIface(name: string): boolean {
    let ok = this.ifaceOk.get(name);
    if (ok === undefined) {
      ok = IFACE.test(name) && name.startsWith(this.prefix);
      if (this.ifaceOk.size > 100_000) this.ifaceOk.clear();
      this.ifaceOk.set(name, ok);
    }
    return ok;
  }
  private dispatchFor: { key: string; chains: Map<string, string[]> } | undefined;
  private readonly chainNames = new Map<string, string>();
  private readonly setNames = new Map<string, string>();

  private readonly forward: string[];
  private readonly input: string[];

  constructor(opts: RenderOptions = {}) {
    const prefix = opts.ifacePrefix ?? 'twl';
    this.prefix = prefix;
    this.mark = `0x${(opts.acceptMark ?? 0x100000).toString(16)}`;
    const inbound = `${CHAIN_PREFIX}tw-dispatch`;
    const outbound = `${CHAIN_PREFIX}fw-dispatch`;
    this.forward = [
      `-i ${prefix}+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-o ${prefix}+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-i ${prefix}+ -m conntrack --ctstate INVALID -j DROP`,
      `-o ${prefix}+ -m conntrack --ctstate INVALID -j DROP`,
      `-i ${prefix}+ -j ${outbound}`,
      `-o ${prefix}+ -j ${inbound}`,
      `-i ${prefix}+ -j ACCEPT`,
      `-o ${prefix}+ -j ACCEPT`,
    ];
    // To the node itself: the sender's egress policy applies; the host's own INPUT rules decide
    // the rest, so we RETURN rather than ACCEPT.
    this.input = [
      `-i ${prefix}+ -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
      `-i ${prefix}+ -m conntrack --ctstate INVALID -j DROP`,
      `-i ${prefix}+ -j ${outbound}`,
    ];
  }

  private chainOf(id: string, dir: 'ingress' | 'egress'): string {
    const k = `${dir} ${id}`;
    let n = this.chainNames.get(k);
    if (n === undefined) {
      n = policyChainName(id, dir);
      this.chainNames.set(k, n);
    }
    return n;
  }

  private setName(key: string, make: () => string): string {
    let n = this.setNames.get(key);
    if (n === undefined) {
      n = make();
      this.setNames.set(key, n);
    }
    return n;
  }

  render(model: RuleModel): Rendered {
    const { prefix, mark } = this;
    const sets = new Map<string, SetSpec>();
    const chains = new Map<string, string[]>();
    const peerNames = new Map<string, string>();
    const namedNames = new Map<string, string>();

    // Only the sets some rule of a used policy refers to.
    const used = new Set<string>();
    const usedNamed = new Set<string>();
    for (const p of model.policies.values()) {
      for (const r of [...(p.ingress ?? []), ...(p.egress ?? [])]) {
        for (const k of r.peers ?? []) used.add(k);
        for (const pm of r.ports ?? [])
          if (pm.named !== undefined) usedNamed.add(`${pm.protocol}/${pm.named}`);
      }
    }
    for (const k of used) {
      const s = model.peerSets.get(k);
      if (!s) continue;
      const name = this.setName(`peer ${s.kind} ${k}`, () => peerSetName(s));
      peerNames.set(k, name);
      let spec = this.peerSpecs.get(s);
      if (!spec) {
        spec = setMembers(s);
        this.peerSpecs.set(s, spec);
      }
      sets.set(name, spec);
    }
    for (const k of usedNamed) {
      const s = model.namedPortSets.get(k);
      if (!s) continue;
      const name = this.setName(`named ${k}`, () => namedPortSetName(s));
      namedNames.set(k, name);
      let spec = this.namedSpecs.get(s);
      if (!spec) {
        const proto = s.protocol.toLowerCase();
        spec = {
          type: 'hash:ip,port',
          members: s.members.map((m) => `${formatIpv4(m.ip)},${proto}:${m.port}`).sort(),
        };
        this.namedSpecs.set(s, spec);
      }
      sets.set(name, spec);
    }

    const inbound = `${CHAIN_PREFIX}tw-dispatch`;
    const outbound = `${CHAIN_PREFIX}fw-dispatch`;
    chains.set(`${CHAIN_PREFIX}FORWARD`, this.forward);
    chains.set(`${CHAIN_PREFIX}INPUT`, this.input);

    const endpoints = model.endpoints.filter((e) => this.validIface(e.interface));
    let ifaces = endpoints.map((e) => e.interface);
    // The compiler sorts endpoints by interface already; sort (and dedupe) only if not.
    if (ifaces.some((x, i) => i > 0 && x <= ifaces[i - 1]!)) ifaces = [...new Set(ifaces)].sort();
    const dkey = ifaces.join(' ');
    if (this.dispatchFor?.key !== dkey) {
      const d = new Map<string, string[]>();
      dispatch(d, outbound, outbound, ifaces, 0, '-i', prefix, (i) => `${CHAIN_PREFIX}fw-${i}`);
      dispatch(d, inbound, inbound, ifaces, 0, '-o', prefix, (i) => `${CHAIN_PREFIX}tw-${i}`);
      this.dispatchFor = { key: dkey, chains: d };
    }
    for (const [n, r] of this.dispatchFor.chains) chains.set(n, r);

    // Endpoint chains depend only on the direction and the policy list: endpoints with the same
    // policies share one rules array.
    const endpointRules = new Map<string, string[]>();
    for (const e of endpoints) {
      const done = this.endpointChains.get(e);
      if (
        done &&
        this.endpointRules.get(done.ingressKey) === done.ingress &&
        this.endpointRules.get(done.egressKey) === done.egress
      ) {
        chains.set(done.fw, done.egress);
        chains.set(done.tw, done.ingress);
        endpointRules.set(done.ingressKey, done.ingress).set(done.egressKey, done.egress);
        continue;
      }
      const memo = {
        fw: `${CHAIN_PREFIX}fw-${e.interface}`,
        tw: `${CHAIN_PREFIX}tw-${e.interface}`,
        ingressKey: '',
        egressKey: '',
        ingress: [] as string[],
        egress: [] as string[],
      };
      for (const [dir, chain] of [
        ['egress', memo.fw],
        ['ingress', memo.tw],
      ] as const) {
        const d = e[dir];
        const key = `${dir} ${d.isolated} ${d.policies.join(' ')}`;
        let rules = endpointRules.get(key) ?? this.endpointRules.get(key);
        if (rules === undefined) {
          rules = [];
          if (d.isolated) {
            rules.push(`-j MARK --set-xmark 0x0/${mark}`);
            for (const id of d.policies) {
              rules.push(`-j ${this.chainOf(id, dir)}`);
              rules.push(`-m mark --mark ${mark}/${mark} -j RETURN`);
            }
            rules.push('-j DROP');
          }
        }
        endpointRules.set(key, rules);
        chains.set(chain, rules);
        memo[`${dir}Key`] = key;
        memo[dir] = rules;
      }
      this.endpointChains.set(e, memo);
    }
    this.endpointRules = endpointRules;

    for (const p of model.policies.values()) {
      let cached = this.policyRules.get(p);
      if (!cached) {
        cached = {};
        for (const dir of ['ingress', 'egress'] as const) {
          const rules = p[dir];
          if (rules !== undefined)
            cached[dir] = rules.flatMap((r) => ruleBodies(r, dir, peerNames, namedNames, mark));
        }
        this.policyRules.set(p, cached);
      }
      for (const dir of ['ingress', 'egress'] as const) {
        const rules = cached[dir];
        if (rules === undefined) continue;
        chains.set(this.chainOf(p.id, dir), rules);
      }
    }

    // Insertion order is deterministic; `renderFull` sorts by name for people.
    return {
      sets,
      chains,
      jumps: [
        { chain: 'FORWARD', target: `${CHAIN_PREFIX}FORWARD` },
        { chain: 'INPUT', target: `${CHAIN_PREFIX}INPUT` },
      ],
    };
  }
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Render a model from scratch. */
export function render(model: RuleModel, opts: RenderOptions = {}): Rendered {
  return new Renderer(opts).render(model);
}

// ---- restore texts ----

export function jumpBody(j: { chain: string; target: string }): string {
  return `-m comment --comment "twl:jump-${j.target}" -j ${j.target}`;
}

/** `ipset restore -exist` input that (re)builds each set under a temp name and swaps it in. */
export function ipsetRestoreText(write: Map<string, SetSpec>, destroy: string[] = []): string {
  const lines: string[] = [];
  for (const [name, spec] of write) {
    const tmp = tempSetName(name);
    const maxelem = Math.max(65536, spec.members.length * 2);
    lines.push(`create ${name} ${spec.type} family inet maxelem ${maxelem}`);
    lines.push(`create ${tmp} ${spec.type} family inet maxelem ${maxelem}`);
    lines.push(`flush ${tmp}`);
    for (const m of spec.members) lines.push(`add ${tmp} ${m}`);
    lines.push(`swap ${tmp} ${name}`);
    lines.push(`destroy ${tmp}`);
  }
  for (const name of destroy) lines.push(`destroy ${name}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * `iptables-restore --noflush` input: declaring a chain creates or flushes it; then its rules
 * with their hash comments; stale jump rules deleted by their exact spec; our jumps inserted at
 * the top; stale chains flushed and deleted last.
 */
export function iptablesRestoreText(opts: {
  write: Map<string, string[]>;
  remove?: string[];
  deleteRules?: { chain: string; spec: string }[];
  insertJumps?: { chain: string; target: string }[];
}): string {
  const lines = ['*filter'];
  const remove = opts.remove ?? [];
  for (const c of [...opts.write.keys(), ...remove]) lines.push(`:${c} - [0:0]`);
  for (const d of opts.deleteRules ?? []) lines.push(`-D ${d.chain} ${d.spec}`);
  for (const [c, rules] of opts.write) {
    const hashes = chainHashes(c, rules);
    rules.forEach((r, i) => {
      lines.push(`-A ${c} -m comment --comment "twl:${hashes[i]}" ${r}`);
    });
  }
  for (const j of opts.insertJumps ?? []) lines.push(`-I ${j.chain} 1 ${jumpBody(j)}`);
  for (const c of remove) lines.push(`-X ${c}`);
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}

/** What a node with none of our state would be sent (sorted by name): `twill policy render`. */
export function renderFull(r: Rendered): { ipset: string; iptables: string } {
  return {
    ipset: ipsetRestoreText(new Map([...r.sets].sort(([a], [b]) => byName(a, b)))),
    iptables: iptablesRestoreText({
      write: new Map([...r.chains].sort(([a], [b]) => byName(a, b))),
      insertJumps: r.jumps,
    }),
  };
}

/** Set or chain name -> what it stands for, sorted by name: the legend of the text render. */
export function renderNotes(model: RuleModel): Map<string, string> {
  const notes = new Map<string, string>();
  for (const p of model.policies.values()) {
    for (const dir of ['ingress', 'egress'] as const) {
      const rules = p[dir];
      if (rules === undefined) continue;
      notes.set(policyChainName(p.id, dir), `${dir} rules of NetworkPolicy ${p.id}`);
      for (const r of rules) {
        for (const k of r.peers ?? []) {
          const s = model.peerSets.get(k);
          if (s) notes.set(peerSetName(s), s.key);
        }
        for (const pm of r.ports ?? []) {
          const s =
            pm.named !== undefined ? model.namedPortSets.get(`${pm.protocol}/${pm.named}`) : undefined;
          if (s) notes.set(namedPortSetName(s), `named port ${s.key}`);
        }
      }
    }
  }
  for (const e of model.endpoints) {
    notes.set(`${CHAIN_PREFIX}fw-${e.interface}`, `egress of ${e.namespace}/${e.name}`);
    notes.set(`${CHAIN_PREFIX}tw-${e.interface}`, `ingress of ${e.namespace}/${e.name}`);
  }
  return new Map([...notes].sort(([a], [b]) => byName(a, b)));
}
