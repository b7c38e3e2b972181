/**
 * A reader for the subset of the containerlab topology format (containerlab.dev, "Topology
 * definition") that Twill's labs use, so `twill lab` and the interop tests can build the same
 * topology out of network namespaces when no container engine is present, from the very file
 * containerlab deploys. Text in, a checked `ClabTopology` out; no I/O.
 *
 * Supported:
 * - `name` (required), and `prefix` and `mgmt`, which are accepted and ignored (they only shape
 *   container names and the management network).
 * - `topology.nodes.<name>`: kind, image, cmd, entrypoint, binds, exec, env, labels, mgmt-ipv4,
 *   mgmt-ipv6. A few container-runtime settings (ports, image-pull-policy, restart-policy, ...)
 *   are accepted and ignored; anything else is an error, so a lab never silently differs from
 *   what containerlab would deploy.
 * - `topology.defaults` and `topology.kinds.<kind>` with the same fields, inherited as
 *   containerlab does: a scalar comes from the node, else its kind, else defaults; `exec` lists
 *   are joined in defaults, kind, node order; `env` and `labels` maps are merged with the more
 *   specific level winning; `binds` are merged by container path, the more specific winning.
 * - `topology.links` in the brief form `endpoints: ["a:eth1", "b:eth1"]` and the extended form
 *   (containerlab 0.44+) `type: veth` with `endpoints: [{node, interface}, ...]`; `mtu` in both.
 *
 * Not supported (an error names the field): groups, link types other than veth, and special
 * endpoints (host, mgmt-net, macvlan) — links join two nodes of this topology.
 *
 * Bind host paths stay as written; `bindHostPath()` resolves them against the topology file's
 * directory, as containerlab does.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { checkKeys, Issues, isMapping, join, loadYaml, show } from '../config/fields.js';

export interface ClabBind {
  /** Host path as written: absolute, or relative to the topology file. */
  host: string;
  /** Absolute path inside the node. */
  container: string;
  /** Mount options after the second colon ("ro", "rw", ...), or null. */
  options: string | null;
}

export interface ClabNode {
  name: string;
  kind: string;
  image: string | null;
  /** The node's long-running command (overrides the image's CMD). */
  cmd: string | null;
  entrypoint: string | null;
  binds: ClabBind[];
  /** One-shot commands run in the node after its links are up, in order. */
  exec: string[];
  env: Record<string, string>;
  labels: Record<string, string>;
  mgmtIpv4: string | null;
  mgmtIpv6: string | null;
}

export interface ClabEndpoint {
  node: string;
  interface: string;
}

export interface ClabLink {
  endpoints: [ClabEndpoint, ClabEndpoint];
  mtu: number | null;
}

export interface ClabTopology {
  name: string;
  /** In file order. */
  nodes: ClabNode[];
  links: ClabLink[];
}

const TOP_KEYS = ['name', 'topology'];
const TOP_IGNORED = ['prefix', 'mgmt'];
const TOPOLOGY_KEYS = ['nodes', 'links', 'kinds', 'defaults'];
const NODE_KEYS = [
  'kind',
  'image',
  'cmd',
  'entrypoint',
  'binds',
  'exec',
  'env',
  'labels',
  'mgmt-ipv4',
  'mgmt-ipv6',
];
const NODE_IGNORED = [
  'ports',
  'image-pull-policy',
  'restart-policy',
  'auto-remove',
  'startup-delay',
  'memory',
  'cpu',
  'cpu-set',
  'shm-size',
];
const BRIEF_LINK_KEYS = ['endpoints', 'mtu', 'labels', 'vars'];
const EXTENDED_LINK_KEYS = ['type', 'endpoints', 'mtu', 'labels', 'vars'];
const ENDPOINT_KEYS = ['node', 'interface', 'mac'];

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
/** Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** One level of node settings, before inheritance. */
interface Level {
  kind?: string;
  image?: string;
  cmd?: string;
  entrypoint?: string;
  binds?: ClabBind[];
  exec?: string[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  mgmtIpv4?: string;
  mgmtIpv6?: string;
}

function readStringField(v: unknown, path: string, issues: Issues): string | undefined {
  if (typeof v === 'string' && v !== '') return v;
  issues.add(path, `${show(v)} is not a non-empty string`);
  return undefined;
}

function readStringList(v: unknown, path: string, issues: Issues): string[] | undefined {
  if (!Array.isArray(v)) {
    issues.add(path, `${show(v)} is not a list of strings`);
    return undefined;
  }
  const out: string[] = [];
  v.forEach((item, i) => {
    const s = readStringField(item, `${path}[${i}]`, issues);
    if (s !== undefined) out.push(s);
  });
  return out;
}

/** env and labels: a mapping of scalars; numbers and booleans become their text, as in Go. */
function readStringMap(v: unknown, path: string, issues: Issues): Record<string, string> | undefined {
  if (!isMapping(v)) {
    issues.add(path, `${show(v)} is not a mapping of names to values`);
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean') out[k] = String(val);
    else issues.add(join(path, k), `${show(val)} is not a string, number or boolean`);
  }
  return out;
}

export function parseBind(text: string): ClabBind | string {
  const parts = text.split(':');
  if (parts.length < 2 || parts.length > 3 || parts[0] === '' || parts[1] === '')
    return `${show(text)} is not HOST_PATH:CONTAINER_PATH[:OPTIONS]`;
  const [host, container, options] = parts as [string, string, string | undefined];
  if (!container.startsWith('/')) return `${show(text)}: the container path ${container} is not absolute`;
  if (options === '') return `${show(text)} ends with an empty option`;
  return { host, container, options: options ?? null };
}

function readLevel(v: unknown, path: string, issues: Issues): Level {
  const level: Level = {};
  if (v === null || v === undefined) return level;
  if (!isMapping(v)) {
    issues.add(path, `${show(v)} is not a mapping of node settings`);
    return level;
  }
  checkKeys(v, path, NODE_KEYS, issues, NODE_IGNORED);
  const at = (k: string) => join(path, k);
  for (const [key, field] of [
    ['kind', 'kind'],
    ['image', 'image'],
    ['cmd', 'cmd'],
    ['entrypoint', 'entrypoint'],
    ['mgmt-ipv4', 'mgmtIpv4'],
    ['mgmt-ipv6', 'mgmtIpv6'],
  ] as const) {
    if (key in v) {
      const s = readStringField(v[key], at(key), issues);
      if (s !== undefined) level[field] = s;
    }
  }
  if ('binds' in v) {
    const list = readStringList(v.binds, at('binds'), issues);
    if (list !== undefined) {
      level.binds = [];
      list.forEach((text, i) => {
        const b = parseBind(text);
        if (typeof b === 'string') issues.add(`${at('binds')}[${i}]`, b);
        else level.binds!.push(b);
      });
    }
  }
  if ('exec' in v) {
    const list = readStringList(v.exec, at('exec'), issues);
    if (list !== undefined) level.exec = list;
  }
  for (const key of ['env', 'labels'] as const) {
    if (key in v) {
      const m = readStringMap(v[key], at(key), issues);
      if (m !== undefined) level[key] = m;
    }
  }
  return level;
}

function inherit(
  name: string,
  node: Level,
  kinds: Map<string, Level>,
  defaults: Level,
): ClabNode | undefined {
  const kindName = node.kind ?? defaults.kind;
  if (kindName === undefined) return undefined;
  const kind = kinds.get(kindName) ?? {};
  const levels = [defaults, kind, node];
  const pick = <K extends keyof Level>(k: K): Level[K] => node[k] ?? kind[k] ?? defaults[k];
  const binds = new Map<string, ClabBind>();
  for (const l of levels) for (const b of l.binds ?? []) binds.set(b.container, b);
  return {
    name,
    kind: kindName,
    image: pick('image') ?? null,
    cmd: pick('cmd') ?? null,
    entrypoint: pick('entrypoint') ?? null,
    binds: [...binds.values()],
    exec: levels.flatMap((l) => l.exec ?? []),
    env: Object.assign({}, ...levels.map((l) => l.env ?? {})),
    labels: Object.assign({}, ...levels.map((l) => l.labels ?? {})),
    mgmtIpv4: pick('mgmtIpv4') ?? null,
    mgmtIpv6: pick('mgmtIpv6') ?? null,
  };
}

function readEndpoint(v: unknown, path: string, issues: Issues): ClabEndpoint | undefined {
  let node: unknown;
  let iface: unknown;
  if (typeof v === 'string') {
    const colon = v.indexOf(':');
    if (colon < 0 || v.indexOf(':', colon + 1) >= 0) {
      issues.add(path, `${show(v)} is not NODE:INTERFACE`);
      return undefined;
    }
    node = v.slice(0, colon);
    iface = v.slice(colon + 1);
  } else if (isMapping(v)) {
    checkKeys(v, path, ENDPOINT_KEYS, issues);
    node = v.node;
    iface = v.interface;
  } else {
    issues.add(path, `${show(v)} is not NODE:INTERFACE or a mapping {node, interface}`);
    return undefined;
  }
  if (node === undefined || iface === undefined) {
    issues.add(
      path,
      `${node === undefined ? 'node' : 'interface'} is missing (NODE:INTERFACE or {node, interface})`,
    );
    return undefined;
  }
  let ok = true;
  if (typeof node !== 'string' || !NAME.test(node)) {
    issues.add(path, `node ${show(node)} is not a node name`);
    ok = false;
  }
  if (typeof iface !== 'string' || !IFNAME.test(iface)) {
    issues.add(path, `interface ${show(iface)} is not a Linux interface name (1..15 of A-Z a-z 0-9 _ . -)`);
    ok = false;
  }
  return ok ? { node: node as string, interface: iface as string } : undefined;
}

function readLink(v: unknown, path: string, issues: Issues): ClabLink | undefined {
  if (!isMapping(v)) {
    issues.add(path, `${show(v)} is not a mapping {endpoints: [...]}`);
    return undefined;
  }
  const extended = 'type' in v;
  checkKeys(v, path, extended ? EXTENDED_LINK_KEYS : BRIEF_LINK_KEYS, issues);
  if (extended && v.type !== 'veth') {
    issues.add(join(path, 'type'), `${show(v.type)} is not supported (only veth links between nodes)`);
    return undefined;
  }
  let mtu: number | null = null;
  if ('mtu' in v) {
    const m = v.mtu;
    if (typeof m === 'number' && Number.isInteger(m) && m >= 68 && m <= 65535) mtu = m;
    else issues.add(join(path, 'mtu'), `${show(m)} is not an MTU 68..65535`);
  }
  const eps = v.endpoints;
  const epPath = join(path, 'endpoints');
  if (!Array.isArray(eps) || eps.length !== 2) {
    issues.add(
      epPath,
      eps === undefined
        ? 'required (a list of two endpoints)'
        : `${show(eps)} is not a list of two endpoints`,
    );
    return undefined;
  }
  const a = readEndpoint(eps[0], `${epPath}[0]`, issues);
  const b = readEndpoint(eps[1], `${epPath}[1]`, issues);
  if (a === undefined || b === undefined) return undefined;
  return { endpoints: [a, b], mtu };
}

/** Parse and check a containerlab topology. Throws ConfigError listing every problem. */
export function readClab(text: string, source: string): ClabTopology {
  const doc = loadYaml(text, source);
  const issues = new Issues();
  if (!isMapping(doc)) {
    issues.add('', `the document is ${show(doc)}, not a containerlab topology (name, topology)`);
    issues.throwIfAny(source);
  }
  const root = doc as Record<string, unknown>;
  checkKeys(root, '', TOP_KEYS, issues, TOP_IGNORED);
  let name = '';
  if (!('name' in root)) issues.add('name', 'required (the lab name)');
  else if (typeof root.name !== 'string' || !NAME.test(root.name))
    issues.add('name', `${show(root.name)} is not a lab name (letters, digits, _ . -)`);
  else name = root.name;

  const topo = root.topology;
  const nodes: ClabNode[] = [];
  const links: ClabLink[] = [];
  if (!isMapping(topo)) {
    issues.add('topology', 'topology' in root ? `${show(topo)} is not a mapping {nodes, links}` : 'required');
    issues.throwIfAny(source);
  }
  const t = topo as Record<string, unknown>;
  checkKeys(t, 'topology', TOPOLOGY_KEYS, issues);

  const defaults = readLevel(t.defaults, 'topology.defaults', issues);
  const kinds = new Map<string, Level>();
  if ('kinds' in t) {
    if (!isMapping(t.kinds)) issues.add('topology.kinds', `${show(t.kinds)} is not a mapping of kinds`);
    else
      for (const [k, v] of Object.entries(t.kinds)) kinds.set(k, readLevel(v, `topology.kinds.${k}`, issues));
  }

  if (!isMapping(t.nodes) || Object.keys(t.nodes).length === 0) {
    issues.add('topology.nodes', 'nodes' in t ? `${show(t.nodes)} is not a mapping of nodes` : 'required');
  } else {
    for (const [n, v] of Object.entries(t.nodes)) {
      const path = `topology.nodes.${n}`;
      if (!NAME.test(n)) issues.add(path, `${JSON.stringify(n)} is not a node name (letters, digits, _ . -)`);
      const node = inherit(n, readLevel(v, path, issues), kinds, defaults);
      if (node === undefined)
        issues.add(join(path, 'kind'), 'required (here, in its kind or in topology.defaults)');
      else nodes.push(node);
    }
  }

  if ('links' in t && t.links !== null) {
    if (!Array.isArray(t.links)) issues.add('topology.links', `${show(t.links)} is not a list of links`);
    else {
      const used = new Map<string, string>();
      t.links.forEach((v, i) => {
        const path = `topology.links[${i}]`;
        const link = readLink(v, path, issues);
        if (link === undefined) return;
        link.endpoints.forEach((ep, j) => {
          const at = `${path}.endpoints[${j}]`;
          if (isMapping(t.nodes) && !(ep.node in t.nodes))
            issues.add(at, `node ${JSON.stringify(ep.node)} is not in topology.nodes`);
          const key = `${ep.node}:${ep.interface}`;
          const first = used.get(key);
          if (first !== undefined) issues.add(at, `${key} is also ${first}`);
          else used.set(key, at);
        });
        links.push(link);
      });
    }
  }

  issues.throwIfAny(source);
  return { name, nodes, links };
}

/** The host path of a bind, resolved as containerlab does: relative to the topology file. */
export function bindHostPath(topologyFile: string, bind: ClabBind): string {
  return isAbsolute(bind.host) ? bind.host : resolve(dirname(topologyFile), bind.host);
}
