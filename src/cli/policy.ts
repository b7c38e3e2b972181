/**
 * `twill policy render --state FILE [--format text|json]`: what the node named in FILE would
 * program for NetworkPolicy, without touching the kernel.
 *
 * FILE is JSON: `{"node", "namespaces": [{name, labels}], "pods": [{namespace, name, labels, ips,
 * node, interface, ports: [{name, port, protocol}]}], "policies": [NetworkPolicy...]}` (the
 * README's NetworkPolicy section documents it). The output is the exact input the dataplane
 * would send to a node that has none of our state: `ipset restore -exist` text (each set built
 * under a temp name and swapped in) and `iptables-restore --noflush` text for the filter table.
 * It is sorted and deterministic so operators can diff two renders. `--format text` (default)
 * prints a legend of what each hashed set and chain name stands for, then both texts with a `#`
 * header line each; `--format json` prints `{"ipset": ..., "iptables": ...}`.
 *
 * A structurally bad FILE (not JSON, a missing or mistyped top-level field, a pod without a
 * namespace or name) is a UsageError naming the field. A bad policy is not: it is logged on
 * stderr (one line per problem) and the rest is rendered, as the agent would.
 */
import { readFile } from 'node:fs/promises';
import { render, renderFull, renderNotes } from '../dataplane/iptables/render.js';
import { compile } from '../policy/compile.js';
import type { ClusterState } from '../policy/types.js';
import { UsageError } from './usage.js';

const USAGE = 'usage: twill policy render --state FILE [--format text|json]';

function need(cond: boolean, field: string, what: string): void {
  if (!cond) throw new UsageError(`state file: ${field}: ${what}`);
}

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isLabels = (v: unknown) =>
  v === undefined || (isObj(v) && Object.values(v).every((x) => typeof x === 'string'));

/** Check the shape of a parsed state file; throws UsageError naming the first bad field. */
export function validateState(raw: unknown): ClusterState {
  need(isObj(raw), '(top level)', 'expected an object {node, namespaces, pods, policies}');
  const s = raw as Record<string, unknown>;
  need(typeof s.node === 'string' && s.node !== '', 'node', 'expected the node name (a non-empty string)');
  for (const k of ['namespaces', 'pods', 'policies'])
    need(s[k] === undefined || Array.isArray(s[k]), k, 'expected a list');
  const namespaces = (s.namespaces ?? []) as unknown[];
  namespaces.forEach((n, i) => {
    need(isObj(n) && typeof n.name === 'string', `namespaces[${i}].name`, 'expected a string');
    need(
      isLabels((n as Record<string, unknown>).labels),
      `namespaces[${i}].labels`,
      'expected a map of strings',
    );
  });
  const pods = (s.pods ?? []) as unknown[];
  pods.forEach((p, i) => {
    need(isObj(p), `pods[${i}]`, 'expected an object');
    const o = p as Record<string, unknown>;
    need(typeof o.namespace === 'string', `pods[${i}].namespace`, 'expected a string');
    need(typeof o.name === 'string', `pods[${i}].name`, 'expected a string');
    need(isLabels(o.labels), `pods[${i}].labels`, 'expected a map of strings');
    need(
      Array.isArray(o.ips) && o.ips.every((x) => typeof x === 'string'),
      `pods[${i}].ips`,
      'expected a list of addresses',
    );
    need(typeof o.node === 'string', `pods[${i}].node`, 'expected a string');
    need(
      o.interface === undefined || typeof o.interface === 'string',
      `pods[${i}].interface`,
      'expected a string',
    );
    need(o.ports === undefined || Array.isArray(o.ports), `pods[${i}].ports`, 'expected a list');
    ((o.ports ?? []) as unknown[]).forEach((cp, j) => {
      need(isObj(cp) && Number.isInteger(cp.port), `pods[${i}].ports[${j}].port`, 'expected a port number');
    });
  });
  const policies = (s.policies ?? []) as unknown[];
  policies.forEach((p, i) => {
    need(
      isObj(p) && isObj(p.metadata) && typeof p.metadata.name === 'string',
      `policies[${i}].metadata.name`,
      'expected a string',
    );
    need(isObj((p as Record<string, unknown>).spec), `policies[${i}].spec`, 'expected an object');
  });
  return { node: s.node as string, namespaces, pods, policies } as ClusterState;
}

/** Render a state to the text the dataplane would apply on an empty node. */
export function renderState(
  state: ClusterState,
  warn: (msg: string) => void = () => {},
): { ipset: string; iptables: string; notes: Map<string, string> } {
  const model = compile(state, { warn: (_obj, msg) => warn(msg) });
  return { ...renderFull(render(model)), notes: renderNotes(model) };
}

export async function policyCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'render') throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}; ${USAGE}`);
  let file: string | undefined;
  let format = 'text';
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const [flag, inline] = a.includes('=')
      ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
      : [a, undefined];
    const value = (): string => {
      const v = inline ?? rest[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value; ${USAGE}`);
      return v;
    };
    if (flag === '--state') file = value();
    else if (flag === '--format') format = value();
    else throw new UsageError(`unknown flag ${JSON.stringify(a)}; ${USAGE}`);
  }
  if (file === undefined) throw new UsageError(`--state FILE is required; ${USAGE}`);
  if (format !== 'text' && format !== 'json')
    throw new UsageError(`--format: expected text or json, got ${JSON.stringify(format)}`);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--state: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--state: ${file} is not JSON: ${(err as Error).message}`);
  }
  const state = validateState(raw);
  const out = renderState(state, (msg) => process.stderr.write(`twill policy: warning: ${msg}\n`));
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify({ ipset: out.ipset, iptables: out.iptables })}\n`);
  } else {
    const legend = [...out.notes].map(([name, what]) => `#   ${name}: ${what}\n`).join('');
    process.stdout.write(
      `# node ${state.node}; names:\n${legend}# ipset restore -exist\n${out.ipset}# iptables-restore --noflush\n${out.iptables}`,
    );
  }
  return 0;
}
