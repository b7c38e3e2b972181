/**
 * NetworkPolicy benchmark: 1,000 local pods (plus 1,000 on other nodes) in 20 namespaces and 500
 * policies, applied into a throwaway network namespace (`twb-<pid>`, deleted at the end, also on
 * failure). Run as root after `npm run build`: `npm run bench:policy`.
 *
 * Measures
 * - full compile + render + apply into an empty namespace (ipset restore + iptables-restore);
 * - incremental latency, end to end, as the agent does it (the change into the incremental
 *   compiler, model, render, diff, apply) for one pod label change and one policy change,
 *   median and p95 over 20 runs each;
 * - rules a packet traverses (worst case over endpoints, pod-to-pod through FORWARD) as the pod
 *   count grows: sets and a dispatch tree, not per-IP rules, keep it bounded.
 * The machine and date are printed with the figures; copy them into the README.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpus } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Renderer, type Rendered, render } from '../src/dataplane/iptables/render.js';
import { execLocal, PolicyTable } from '../src/dataplane/iptables/table.js';
import { compile, PolicyCompiler } from '../src/policy/compile.js';
import type { ClusterState, NetworkPolicy, PodInfo } from '../src/policy/types.js';

const NAMESPACES = 20;
const APPS = 10;

export function cluster(localPods: number, policies: number): ClusterState {
  const pods: PodInfo[] = [];
  for (let i = 0; i < localPods * 2; i++) {
    const ns = `ns-${i % NAMESPACES}`;
    const local = i < localPods;
    pods.push({
      namespace: ns,
      name: `pod-${i}`,
      labels: {
        app: `app-${Math.floor(i / NAMESPACES) % APPS}`,
        tier: i % 3 === 0 ? 'fe' : 'be',
        version: `v${i % 4}`,
      },
      ips: [`10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
      node: local ? 'node-0' : `node-${1 + (i % 7)}`,
      interface: `twl${createHash('sha1').update(`${ns}.pod-${i}`).digest('hex').slice(0, 11)}`,
      ports: [
        { name: 'http', port: 8000 + (i % 3), protocol: 'TCP' },
        { name: 'metrics', port: 9100, protocol: 'TCP' },
      ],
    });
  }
  const pols: NetworkPolicy[] = [];
  for (let j = 0; j < policies; j++) {
    const ns = `ns-${j % NAMESPACES}`;
    const app = `app-${Math.floor(j / NAMESPACES) % APPS}`;
    const kind = j % 5;
    const spec: NetworkPolicy['spec'] = { podSelector: { matchLabels: { app } } };
    if (kind === 0)
      spec.ingress = [
        {
          from: [{ podSelector: { matchLabels: { app: `app-${(j + 1) % APPS}` } } }],
          ports: [{ port: 'http' }],
        },
      ];
    if (kind === 1) {
      spec.ingress = [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { team: `t${j % 4}` } },
              podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe'] }] },
            },
          ],
        },
      ];
    }
    if (kind === 2)
      spec.ingress = [
        {
          from: [{ ipBlock: { cidr: '10.0.0.0/8', except: [`10.64.${j % 8}.0/24`] } }],
          ports: [{ protocol: 'TCP', port: 8000, endPort: 8002 }],
        },
      ];
    if (kind === 3) {
      spec.policyTypes = ['Egress'];
      spec.egress = [
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: `app-${(j + 3) % APPS}` } } }],
          ports: [{ port: 'metrics' }, { protocol: 'UDP', port: 53 }],
        },
      ];
    }
    if (kind === 4)
      spec.ingress = [
        {
          from: [
            {
              podSelector: {
                matchExpressions: [{ key: 'version', operator: 'NotIn', values: [`v${j % 4}`] }],
              },
            },
          ],
        },
      ];
    pols.push({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: `pol-${j}`, namespace: ns },
      spec,
    });
  }
  return {
    node: 'node-0',
    namespaces: Array.from({ length: NAMESPACES }, (_, i) => ({
      name: `ns-${i}`,
      labels: { team: `t${i % 4}` },
    })),
    pods,
    policies: pols,
  };
}

/** Worst-case rules a new pod-to-pod packet crosses in twl- chains (FORWARD path). */
function rulesPerPacket(r: Rendered): { dispatch: number; worst: number } {
  const chain = (n: string) => r.chains.get(n) ?? [];
  // Depth of the dispatch walk to reach `iface`: rules passed in each chain on the way.
  const walk = (root: string, iface: string): number => {
    let name = root;
    let passed = 0;
    for (;;) {
      const rules = chain(name);
      const i = rules.findIndex((x) => {
        const m = /^-[io] (\S+?)(\+)? -g/.exec(x);
        return m !== null && (m[2] ? iface.startsWith(m[1]!) : iface === m[1]);
      });
      if (i < 0) return passed + rules.length;
      passed += i + 1;
      const target = / -g (\S+)/.exec(rules[i]!)![1]!;
      if (!target.includes('dispatch')) return passed;
      name = target;
    }
  };
  const endpointCost = (c: string): number => {
    let n = 0;
    for (const rule of chain(c)) {
      n++;
      const m = / -j (twl-p[io]-\S+)/.exec(` ${rule}`);
      if (m) n += chain(m[1]!).length;
    }
    return n;
  };
  let dispatch = 0;
  let worst = 0;
  const ifaces = [...r.chains.keys()]
    .filter((c) => c.startsWith('twl-tw-twl'))
    .map((c) => c.slice('twl-tw-'.length));
  for (const i of ifaces) {
    const d = walk('twl-tw-dispatch', i) + walk('twl-fw-dispatch', i);
    dispatch = Math.max(dispatch, d);
    worst = Math.max(
      worst,
      chain('twl-FORWARD').length + d + endpointCost(`twl-tw-${i}`) + endpointCost(`twl-fw-${i}`),
    );
  }
  return { dispatch, worst };
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const stat = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)]!,
    p95: s[Math.min(s.length - 1, Math.ceil(s.length * 0.95) - 1)]!,
  };
};

/**
 * The bench runs inside a throwaway network namespace, like the agent runs in its node's: this
 * process creates the namespace, runs itself again inside it (so every iptables-restore and ipset
 * call is a direct child, with no `ip netns exec` in between), and deletes it afterwards.
 */
async function main(): Promise<void> {
  const inside = process.env.TWILL_BENCH_NS;
  if (!inside) {
    const ns = `twb-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, ...process.execArgv, process.argv[1]!], {
        stdio: 'inherit',
        env: { ...process.env, TWILL_BENCH_NS: ns },
      });
      if (r.status !== 0) process.exitCode = r.status ?? 1;
    } finally {
      execFileSync('ip', ['netns', 'del', ns]);
    }
    return;
  }
  {
    const table = new PolicyTable({ exec: execLocal, backend: 'nft' });
    const state = cluster(1000, 500);

    // Full: load the state, compile, render, apply into an empty namespace.
    const compiler = new PolicyCompiler('node-0');
    const renderer = new Renderer();
    let t0 = process.hrtime.bigint();
    compiler.setState(state);
    const model = compiler.model();
    const tCompile = ms(t0);
    t0 = process.hrtime.bigint();
    const rendered = renderer.render(model);
    const tRender = ms(t0);
    t0 = process.hrtime.bigint();
    table.setDesired(rendered);
    await table.apply();
    const tApply = ms(t0);
    const nRules = [...rendered.chains.values()].reduce((a, c) => a + c.length, 0);
    const nMembers = [...rendered.sets.values()].reduce((a, s) => a + s.members.length, 0);

    // Incremental, as the agent does it: one change into the compiler, model, render, apply.
    const step = async (change: () => void) => {
      const t = process.hrtime.bigint();
      change();
      const r = renderer.render(compiler.model());
      const computeMs = ms(t);
      table.setDesired(r);
      const stats = await table.apply();
      return { total: ms(t), computeMs, chains: stats.chainsWritten.length, sets: stats.setsWritten.length };
    };

    const label: { total: number; computeMs: number; chains: number; sets: number }[] = [];
    for (let k = 0; k < 20; k++) {
      const pods = state.pods;
      const idx = (k * 37) % 1000;
      const pod = pods[idx]!;
      const next = {
        ...pod,
        labels: { ...pod.labels, app: `app-${(Number(pod.labels!.app!.slice(4)) + 1) % APPS}` },
      };
      pods[idx] = next;
      label.push(await step(() => compiler.setPod(next)));
    }
    const policy: typeof label = [];
    for (let k = 0; k < 20; k++) {
      const idx = (k * 23) % 500;
      const p = state.policies[idx]!;
      const next: NetworkPolicy = {
        ...p,
        spec: { ...p.spec, ingress: [{ ...(p.spec.ingress?.[0] ?? {}), ports: [{ port: 7000 + k }] }] },
      };
      state.policies[idx] = next;
      policy.push(await step(() => compiler.setPolicy(next)));
    }
    // The same end state compiled from scratch renders the same rules (a sanity check).
    const fresh = render(compile(state));
    const now = renderer.render(compiler.model());
    if (JSON.stringify([...fresh.chains]) !== JSON.stringify([...now.chains]))
      throw new Error('incremental render differs from a fresh one');

    const scaling = [100, 1000, 4000].map((n) => ({
      pods: n,
      ...rulesPerPacket(render(compile(cluster(n, 500)))),
    }));

    const cpu = cpus()[0]?.model ?? 'unknown CPU';
    const out = {
      machine: `${cpu}, ${cpus().length} cores, Node ${process.version}, ${execFileSync('iptables', ['-V']).toString().trim()}`,
      date: new Date().toISOString().slice(0, 10),
      full: {
        compileMs: tCompile,
        renderMs: tRender,
        applyMs: tApply,
        chains: rendered.chains.size,
        rules: nRules,
        sets: rendered.sets.size,
        setMembers: nMembers,
      },
      labelChange: {
        ...stat(label.map((x) => x.total)),
        computeMedianMs: stat(label.map((x) => x.computeMs)).median,
        chainsWritten: stat(label.map((x) => x.chains)).median,
        setsWritten: stat(label.map((x) => x.sets)).median,
      },
      policyChange: {
        ...stat(policy.map((x) => x.total)),
        computeMedianMs: stat(policy.map((x) => x.computeMs)).median,
        chainsWritten: stat(policy.map((x) => x.chains)).median,
        setsWritten: stat(policy.map((x) => x.sets)).median,
      },
      rulesPerPacket: scaling,
    };
    process.stdout.write(
      `${JSON.stringify(out, (_k, v) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 10) / 10 : v), 2)}\n`,
    );
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
