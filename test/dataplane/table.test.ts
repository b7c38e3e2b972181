/**
 * The policy table's delta tracking and error handling, against a fake `exec` (no root): the
 * first apply reads back, later ones write only what changed, a failure is retried once after a
 * read-back and a second failure is reported; plus the read-back parsers and the render's
 * bounded dispatch.
 */
import { describe, expect, it, vi } from 'vitest';
import { render } from '../../src/dataplane/iptables/render.js';
import {
  DataplaneError,
  type Exec,
  parseIpsetSave,
  parseIptablesSave,
  PolicyTable,
} from '../../src/dataplane/iptables/table.js';
import { compile } from '../../src/policy/compile.js';
import type { ClusterState, NetworkPolicy } from '../../src/policy/types.js';

function fakeExec(opts: { failRestore?: number } = {}) {
  const calls: { cmd: string; args: string[]; input?: string }[] = [];
  let failures = opts.failRestore ?? 0;
  const exec: Exec = async (cmd, args, input) => {
    calls.push({ cmd, args, input });
    if (cmd.endsWith('-restore') && failures > 0) {
      failures--;
      throw new Error('iptables-restore: line 3 failed');
    }
    return '';
  };
  return { exec, calls };
}

const np = (ns: string, name: string, spec: NetworkPolicy['spec']): NetworkPolicy => ({
  metadata: { name, namespace: ns },
  spec,
});

function cluster(n: number, policies: NetworkPolicy[]): ClusterState {
  return {
    node: 'n1',
    namespaces: [{ name: 'a', labels: {} }],
    pods: Array.from({ length: n }, (_, i) => ({
      namespace: 'a',
      name: `p${i}`,
      labels: { app: i % 2 ? 'web' : 'db' },
      ips: [`10.0.${i >> 8}.${i & 255}`],
      node: 'n1',
      interface: `twl${i.toString(16).padStart(11, '0')}`,
    })),
    policies,
  };
}

const dbFromWeb = np('a', 'db', {
  podSelector: { matchLabels: { app: 'db' } },
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
});

describe('PolicyTable', () => {
  it('reads back first, then writes only the chains and sets a change affects', async () => {
    const { exec, calls } = fakeExec();
    const t = new PolicyTable({ exec, backend: 'nft' });
    const s = cluster(4, [dbFromWeb]);
    t.setDesired(render(compile(s)));
    const first = await t.apply();
    expect(first.readBack).toBe(true);
    expect(calls.map((c) => c.cmd)).toEqual(['iptables-nft-save', 'ipset', 'ipset', 'iptables-nft-restore']);
    expect(first.jumpsFixed).toBe(2);

    // Nothing changed: no I/O at all.
    calls.length = 0;
    expect(await t.apply()).toMatchObject({ readBack: false, chainsWritten: [], setsWritten: [] });
    expect(calls).toEqual([]);

    // A web pod becomes a db pod: the peer set changes, and that pod's ingress chain.
    const relabelled = {
      ...s,
      pods: s.pods.map((p) => (p.name === 'p1' ? { ...p, labels: { app: 'db' } } : p)),
    };
    t.setDesired(render(compile(relabelled)));
    const stats = await t.apply();
    expect(stats.setsWritten).toHaveLength(1);
    expect(stats.chainsWritten).toEqual(['twl-tw-twl00000000001']);
    expect(calls.find((c) => c.cmd === 'iptables-nft-restore')!.input).not.toContain(':twl-pi-');

    // A policy change rewrites its chain only.
    calls.length = 0;
    const changed = np('a', 'db', {
      ...dbFromWeb.spec,
      ingress: [{ ...dbFromWeb.spec.ingress![0]!, ports: [{ port: 5432 }] }],
    });
    t.setDesired(render(compile({ ...relabelled, policies: [changed] })));
    const pstats = await t.apply();
    expect(pstats.chainsWritten).toHaveLength(1);
    expect(pstats.chainsWritten[0]).toMatch(/^twl-pi-/);
    expect(pstats.setsWritten).toEqual([]);
  });

  it('retries a failed apply once after a read-back', async () => {
    const { exec, calls } = fakeExec({ failRestore: 1 });
    const t = new PolicyTable({ exec, backend: 'nft' });
    t.setDesired(render(compile(cluster(2, [dbFromWeb]))));
    const stats = await t.apply();
    expect(stats.readBack).toBe(true);
    expect(calls.filter((c) => c.cmd === 'iptables-nft-save')).toHaveLength(2);
  });

  it('reports a second failure and reads back on the next apply', async () => {
    const { exec, calls } = fakeExec({ failRestore: 2 });
    const t = new PolicyTable({ exec, backend: 'legacy' });
    t.setDesired(render(compile(cluster(2, [dbFromWeb]))));
    await expect(t.apply()).rejects.toThrow(DataplaneError);
    calls.length = 0;
    expect((await t.apply()).readBack).toBe(true);
    expect(calls.find((c) => c.cmd === 'iptables-legacy-restore')!.args).toEqual([
      '--noflush',
      '--wait',
      '10',
    ]);
  });

  it('auto-detects the backend: legacy only when it has more rules', async () => {
    const mk =
      (legacy: number, nft: number): Exec =>
      async (cmd) =>
        cmd === 'iptables-legacy-save'
          ? '-A X -j ACCEPT\n'.repeat(legacy)
          : cmd === 'iptables-nft-save'
            ? '-A X -j ACCEPT\n'.repeat(nft)
            : '';
    expect(await new PolicyTable({ exec: mk(0, 0) }).detectBackend()).toBe('nft');
    expect(await new PolicyTable({ exec: mk(5, 1) }).detectBackend()).toBe('legacy');
    expect(await new PolicyTable({ exec: mk(1, 5) }).detectBackend()).toBe('nft');
    expect(await new PolicyTable({ exec: mk(5, 1), backend: 'nft' }).detectBackend()).toBe('nft');
  });
});

describe('read-back parsers', () => {
  it('parse our chains, hashes and jumps from iptables-save, ignoring everything else', () => {
    const rb = parseIptablesSave(
      [
        '*nat',
        ':twl-nat - [0:0]',
        'COMMIT',
        '*filter',
        ':INPUT ACCEPT [0:0]',
        ':FORWARD DROP [0:0]',
        ':twl-a - [0:0]',
        ':KUBE-X - [0:0]',
        '-A FORWARD -j KUBE-X',
        '-A FORWARD -m comment --comment "twl:jump-twl-FORWARD" -j twl-FORWARD',
        '-A twl-a -p tcp -m comment --comment "twl:abc_-1" -m tcp --dport 80 -j RETURN',
        '-A twl-a -j DROP',
        'COMMIT',
      ].join('\n'),
    );
    expect([...rb.chains]).toEqual([['twl-a', ['abc_-1', null]]]);
    expect(rb.jumps).toEqual([
      {
        chain: 'FORWARD',
        index: 1,
        spec: '-m comment --comment "twl:jump-twl-FORWARD" -j twl-FORWARD',
        target: 'twl-FORWARD',
      },
    ]);
  });

  it('parse our sets from ipset save', () => {
    const sets = parseIpsetSave(
      [
        'create twl-s-1 hash:ip family inet hashsize 1024 maxelem 65536',
        'add twl-s-1 10.0.0.2',
        'add twl-s-1 10.0.0.1',
        'create other hash:ip family inet',
        'add other 1.1.1.1',
        'create twl-c-1 hash:net family inet',
        'add twl-c-1 10.0.0.0/30 nomatch',
      ].join('\n'),
    );
    expect([...sets]).toEqual([
      ['twl-s-1', { type: 'hash:ip', members: ['10.0.0.1', '10.0.0.2'] }],
      ['twl-c-1', { type: 'hash:net', members: ['10.0.0.0/30 nomatch'] }],
    ]);
  });
});

describe('render', () => {
  it('keeps the dispatch walk short as pods grow (a tree, not a list)', () => {
    const walk = (n: number) => {
      const r = render(compile(cluster(n, [dbFromWeb])));
      // Longest dispatch path: follow -g into sub-chains, counting rules passed.
      const longest = (chain: string): number => {
        const rules = r.chains.get(chain) ?? [];
        let worst = rules.length;
        rules.forEach((rule, i) => {
          const m = / -g (twl-[fwt]+-dispatch-\S+)/.exec(` ${rule}`);
          if (m) worst = Math.max(worst, i + 1 + longest(m[1]!));
        });
        return worst;
      };
      return longest('twl-tw-dispatch');
    };
    expect(walk(10)).toBeLessThanOrEqual(17);
    expect(walk(1000)).toBeLessThanOrEqual(3 * 17);
    expect(walk(4000)).toBeLessThanOrEqual(4 * 17);
  });

  it('names chains and sets within the kernel limits', () => {
    const r = render(compile(cluster(300, [dbFromWeb])));
    for (const c of r.chains.keys()) expect(c.length).toBeLessThanOrEqual(28);
    for (const s of r.sets.keys()) expect(`twl-t${s.slice(3)}`.length).toBeLessThanOrEqual(31);
  });
});

describe('Renderer', () => {
  it('after incremental changes renders what a fresh render does, reusing unchanged chains', async () => {
    const { PolicyCompiler } = await import('../../src/policy/compile.js');
    const { Renderer } = await import('../../src/dataplane/iptables/render.js');
    const s = cluster(40, [
      dbFromWeb,
      np('a', 'eg', { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] }),
    ]);
    const c = new PolicyCompiler('n1');
    c.setState(s);
    const r = new Renderer();
    const before = r.render(c.model());
    const pod = { ...s.pods[3]!, labels: { app: 'db' } };
    c.setPod(pod);
    const after = r.render(c.model());
    const fresh = render(compile({ ...s, pods: s.pods.map((p) => (p.name === pod.name ? pod : p)) }));
    expect(after.chains).toEqual(fresh.chains);
    expect(after.sets).toEqual(fresh.sets);
    const changed = [...after.chains.keys()].filter((k) => after.chains.get(k) !== before.chains.get(k));
    expect(changed).toEqual([`twl-tw-${pod.interface}`]);
  });
});

describe('PolicyTable.startRefresh', () => {
  it('reads back and repairs on every tick, and stops', async () => {
    vi.useFakeTimers();
    try {
      const { exec, calls } = fakeExec();
      const t = new PolicyTable({ exec, backend: 'nft' });
      t.setDesired(render(compile(cluster(2, [dbFromWeb]))));
      await t.apply();
      calls.length = 0;
      t.startRefresh(180_000);
      await vi.advanceTimersByTimeAsync(180_000);
      expect(calls.filter((c) => c.cmd === 'iptables-nft-save')).toHaveLength(1);
      t.stopRefresh();
      await vi.advanceTimersByTimeAsync(360_000);
      expect(calls.filter((c) => c.cmd === 'iptables-nft-save')).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });
});
