/**
 * Layering as a checked artifact (DESIGN.md "Dependency direction", STYLE.md §2):
 *
 * - Folders import one way. `LAYERS` lists, for each part of src/, the parts it may import
 *   directly; what those may import it may import too. A part is a folder or a file, and a file
 *   belongs to the longest entry that contains it: `bgp/rib/rib.ts` is in `bgp/rib`, not `bgp`.
 *   A file in no part fails the test, so a new folder is placed in the order on purpose.
 * - No import cycles among the files of src/, type-only imports included: a cycle makes two
 *   modules one, and breaks the order inside a layer as surely as an upward import does.
 * - The pure cores stay pure: the codec, FSM, decision process, RIB, graceful-restart machines,
 *   the UPDATE pipeline and the peer layer (which take a Clock), configuration readers, IPAM and
 *   the policy compiler import no sockets, processes, files or timers, so they run the same under
 *   a fake clock and in a property test as in the agent.
 *
 * Each checker is a function of its input, tested here on made-up graphs before it is run on src/.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');

/**
 * Each part of src/ and the parts it may import directly, lowest first:
 *   net <- bgp/wire <- bgp/decision.ts <- bgp/rib <- bgp <- api <- cli
 *   net <- config (YAML field checking, shared) <- bgp, lab/clab.ts, the agent's configuration
 *   lab/clab.ts, api, datastore <- lab (twill lab: namespaces, daemons, the lab's store) <- cli
 *   net <- datastore (the contract: Kubernetes-shaped objects) <- ipam (allocates over it)
 *   net <- policy <- dataplane;  bgp, ipam, policy, datastore <- dataplane <- cni <- agent <- cli
 */
const LAYERS: Record<string, readonly string[]> = {
  net: [],
  config: ['net'],
  'bgp/wire': ['net'],
  'bgp/decision.ts': ['bgp/wire'],
  'bgp/rib': ['bgp/wire', 'bgp/decision.ts'],
  bfd: ['net', 'config'],
  bgp: ['bgp/rib', 'config', 'bfd'],
  datastore: ['net', 'config'],
  ipam: ['datastore'],
  policy: ['net', 'config'],
  dataplane: ['policy', 'ipam', 'bgp'],
  cni: ['dataplane'],
  'lab/clab.ts': ['config'],
  lab: ['lab/clab.ts', 'api', 'datastore'],
  api: ['bgp'],
  agent: ['api', 'cni'],
  cli: ['agent', 'lab'],
  'cli.ts': ['cli'],
};

/** Modules the pure cores may not import, and calls they may not make. */
const pure = [
  'src/bgp/wire',
  'src/bgp/fsm.ts',
  'src/bgp/decision.ts',
  'src/bgp/rib',
  'src/bgp/policy.ts',
  'src/bgp/export.ts',
  'src/bgp/warmup.ts',
  'src/bgp/config.ts',
  'src/bgp/graceful-restart.ts',
  'src/bgp/gr-driver.ts',
  'src/bgp/neighbor-config.ts',
  'src/bgp/origination.ts',
  'src/bgp/neighbors.ts',
  'src/bgp/reconfig.ts',
  'src/bgp/update-in.ts',
  'src/bgp/peer-tx.ts',
  'src/bgp/peer.ts',
  'src/bgp/best-routes.ts',
  'src/bgp/status.ts',
  'src/config',
  'src/bfd/packet.ts',
  'src/bfd/session.ts',
  'src/lab/clab.ts',
  'src/ipam',
  'src/datastore/types.ts',
  'src/policy',
  'src/net',
  'src/dataplane/route-model.ts',
  'src/dataplane/netlink-codec.ts',
  'src/cni/spec.ts',
  'src/cni/wiring.ts',
  'src/cni/names.ts',
  'src/cni/protocol.ts',
];
const bannedModules = [
  'net',
  'dgram',
  'child_process',
  'fs',
  'fs/promises',
  'timers',
  'timers/promises',
  'worker_threads',
  'http',
  'https',
];
const bannedGlobals =
  /\b(setTimeout|setInterval|setImmediate|clearTimeout|clearInterval|queueMicrotask)\s*\(/;

function files(path: string): string[] {
  const abs = join(root, path);
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(abs);
  } catch {
    return [];
  }
  if (st.isFile()) return path.endsWith('.ts') ? [abs] : [];
  return readdirSync(abs).flatMap((e) => files(join(path, e)));
}

/** Every module specifier a source imports or re-exports, type-only ones included. */
function specifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const importRe =
    /(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|require\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;
  return [...code.matchAll(importRe)].map((m) => (m[1] ?? m[2] ?? m[3] ?? m[4])!);
}

function violations(source: string): string[] {
  const found: string[] = [];
  for (const spec of specifiers(source)) {
    const bare = spec.replace(/^node:/, '');
    if (bannedModules.includes(bare)) found.push(`imports ${spec}`);
  }
  const code = source.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
  const t = bannedGlobals.exec(code);
  if (t) found.push(`calls ${t[1]}`);
  return found;
}

/** The part of src/ a file (path relative to src/, e.g. `bgp/rib/rib.ts`) belongs to. */
function partOf(file: string, layers: Record<string, readonly string[]> = LAYERS): string | undefined {
  let best: string | undefined;
  for (const part of Object.keys(layers)) {
    const inside = file === part || file.startsWith(`${part}/`);
    if (inside && (best === undefined || part.length > best.length)) best = part;
  }
  return best;
}

/** Every part `part` may import: itself, and what its direct allowances may, transitively. */
function reachable(part: string, layers: Record<string, readonly string[]> = LAYERS): Set<string> {
  const seen = new Set<string>([part]);
  const todo = [part];
  while (todo.length)
    for (const q of layers[todo.pop()!] ?? []) if (!seen.has(q) && seen.add(q)) todo.push(q);
  return seen;
}

/** Imports against the order, as `from -> to (from part -> to part)`; files in no part too. */
function upwardImports(
  graph: ReadonlyMap<string, readonly string[]>,
  layers: Record<string, readonly string[]> = LAYERS,
): string[] {
  const bad: string[] = [];
  for (const [from, tos] of graph) {
    const fp = partOf(from, layers);
    if (fp === undefined) {
      bad.push(`${from} is in no layer (add its folder to LAYERS)`);
      continue;
    }
    const ok = reachable(fp, layers);
    for (const to of tos) {
      const tp = partOf(to, layers);
      if (tp === undefined || !ok.has(tp)) bad.push(`${from} -> ${to} (${fp} may not import ${tp ?? '?'})`);
    }
  }
  return bad;
}

/** The import cycles of a graph: each strongly connected component of more than one file (or a
 * file importing itself), as its files sorted. Tarjan's algorithm. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const scc: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      scc.push(w);
      if (w === v) break;
    }
    if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** src/'s import graph: file -> files it imports, paths relative to src/. */
function srcGraph(): Map<string, string[]> {
  const src = join(root, 'src');
  const graph = new Map<string, string[]>();
  for (const abs of files('src')) {
    const deps: string[] = [];
    for (const spec of specifiers(readFileSync(abs, 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      let target = resolve(dirname(abs), spec).replace(/\.js$/, '.ts');
      if (!target.endsWith('.ts'))
        target = existsSync(`${target}.ts`) ? `${target}.ts` : join(target, 'index.ts');
      deps.push(relative(src, target));
    }
    graph.set(relative(src, abs), deps);
  }
  return graph;
}

describe('layering', () => {
  it('the checker itself catches each banned import and timer', () => {
    expect(violations("import { Socket } from 'node:net';")).toEqual(['imports node:net']);
    expect(violations("import * as fs from 'fs';")).toEqual(['imports fs']);
    expect(violations("const cp = require('node:child_process');")).toEqual(['imports node:child_process']);
    expect(violations("await import('node:dgram');")).toEqual(['imports node:dgram']);
    expect(violations('setTimeout(() => {}, 10);')).toEqual(['calls setTimeout']);
    expect(violations("// setTimeout(x)\nimport { x } from './y.js';")).toEqual([]);
  });

  it('the checker reads every form of import, type-only and re-exports included', () => {
    const src = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      'import {\n  c,\n  type D,\n} from "./c.js";',
      "export { e } from './e.js';",
      "export type { F } from './f.js';",
      "import './side-effect.js';",
      "const g = await import('./g.js');",
      "// import { z } from './commented.js';",
    ].join('\n');
    expect(specifiers(src).sort()).toEqual(
      ['./a.js', '../b.js', './c.js', './e.js', './f.js', './g.js', './side-effect.js'].sort(),
    );
  });

  it('the checker places files in the most specific part', () => {
    expect(partOf('bgp/rib/rib.ts')).toBe('bgp/rib');
    expect(partOf('bgp/decision.ts')).toBe('bgp/decision.ts');
    expect(partOf('bgp/speaker.ts')).toBe('bgp');
    expect(partOf('bgpx/a.ts')).toBeUndefined();
    expect(partOf('cli.ts')).toBe('cli.ts');
    expect(reachable('bgp/rib').has('net')).toBe(true);
    expect(reachable('bgp/rib').has('bgp')).toBe(false);
  });

  it('the checker refuses a deliberate upward import, and a file in no layer', () => {
    const g = new Map<string, string[]>([
      ['bgp/rib/rib.ts', ['bgp/speaker.ts', 'bgp/wire/constants.ts', 'net/addr.ts']],
      ['bgp/wire/update.ts', ['bgp/rib/attrs.ts']],
      ['net/addr.ts', []],
      ['policy/compile.ts', ['dataplane/iptables/render.ts']],
      ['cli/speaker.ts', ['bgp/speaker.ts', 'api/http.ts', 'config/fields.ts']],
      ['somewhere/new.ts', []],
    ]);
    expect(upwardImports(g)).toEqual([
      'bgp/rib/rib.ts -> bgp/speaker.ts (bgp/rib may not import bgp)',
      'bgp/wire/update.ts -> bgp/rib/attrs.ts (bgp/wire may not import bgp/rib)',
      'policy/compile.ts -> dataplane/iptables/render.ts (policy may not import dataplane)',
      'somewhere/new.ts is in no layer (add its folder to LAYERS)',
    ]);
  });

  it('the checker finds cycles, long and short, and nothing in a tree', () => {
    const tree = new Map<string, string[]>([
      ['a', ['b', 'c']],
      ['b', ['c']],
      ['c', []],
    ]);
    expect(cycles(tree)).toEqual([]);
    const loops = new Map<string, string[]>([
      ['rib', ['adj-out', 'attrs']],
      ['adj-out', ['rib']],
      ['attrs', []],
      ['x', ['y']],
      ['y', ['z']],
      ['z', ['x', 'attrs']],
      ['self', ['self']],
    ]);
    expect(cycles(loops).sort()).toEqual([['adj-out', 'rib'], ['self'], ['x', 'y', 'z']]);
  });

  it('src/ imports only downward, by LAYERS', () => {
    const graph = srcGraph();
    expect(graph.size).toBeGreaterThan(20);
    expect(upwardImports(graph)).toEqual([]);
  });

  it('src/ has no import cycle', () => {
    expect(cycles(srcGraph())).toEqual([]);
  });

  it('pure modules import no socket, process, file or timer', () => {
    const checked = pure.flatMap(files);
    expect(checked.length).toBeGreaterThan(0);
    const bad = checked.flatMap((f) =>
      violations(readFileSync(f, 'utf8')).map((v) => `${relative(root, f)} ${v}`),
    );
    expect(bad).toEqual([]);
  });
});
