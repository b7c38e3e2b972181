/**
 * `twill policy render`: golden output for a fixture state (text and JSON), stable under input
 * order, usage errors that name the flag or field, bad policies logged on stderr while the rest
 * is rendered. Regenerate the golden files with UPDATE_GOLDEN=1 after a deliberate change.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { policyCommand } from '../../src/cli/policy.js';
import { UsageError } from '../../src/cli/usage.js';

const dir = join(import.meta.dirname, '../fixtures/policy');
const stateFile = join(dir, 'state.json');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c) => {
    out += String(c);
    return true;
  });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c) => {
    err += String(c);
    return true;
  });
  try {
    const code = await policyCommand(args);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

function golden(name: string, actual: string): void {
  const path = join(dir, name);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(path, actual);
  expect(actual).toBe(readFileSync(path, 'utf8'));
}

describe('twill policy render', () => {
  afterEach(() => vi.restoreAllMocks());
  afterAll(() => {
    for (const f of ['shuffled', 'bad'])
      rmSync(join(tmpdir(), `twill-${f}-state-${process.pid}.json`), { force: true });
  });

  it('prints the text form: a legend, ipset restore input, iptables-restore input (golden)', async () => {
    const r = await run(['render', '--state', stateFile]);
    expect(r.code).toBe(0);
    golden('state.render.txt', r.out);
    expect(r.out).toContain('-I FORWARD 1 -m comment --comment "twl:jump-twl-FORWARD" -j twl-FORWARD');
  });

  it('prints {"ipset", "iptables"} with --format json (golden)', async () => {
    const r = await run(['render', '--state', stateFile, '--format', 'json']);
    expect(r.code).toBe(0);
    golden('state.render.json', r.out);
    const parsed = JSON.parse(r.out) as Record<string, string>;
    expect(Object.keys(parsed).sort()).toEqual(['ipset', 'iptables']);
    expect(parsed.iptables!.startsWith('*filter\n')).toBe(true);
    expect(parsed.iptables!.endsWith('COMMIT\n')).toBe(true);
  });

  it('is the same whatever the order of namespaces, pods, policies and labels in the file', async () => {
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    state.pods.reverse();
    state.policies.reverse();
    state.namespaces.reverse();
    for (const p of state.pods) p.labels = Object.fromEntries(Object.entries(p.labels).reverse());
    const shuffled = join(tmpdir(), `twill-shuffled-state-${process.pid}.json`);
    writeFileSync(shuffled, JSON.stringify(state));
    const a = await run(['render', '--state', stateFile, '--format=json']);
    const b = await run(['render', '--state', shuffled, '--format=json']);
    expect(b.out).toBe(a.out);
  });

  it('logs each bad rule of a bad policy on stderr, naming policy and field, and renders the rest', async () => {
    const r = await run(['render', '--state', stateFile]);
    const lines = r.err.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      /shop\/typo: spec\.ingress\[0\]\.from\[0\]\.ipBlock\.cidr: invalid CIDR "10\.65\.0\.0\/33"/,
    );
    expect(lines[1]).toMatch(/shop\/typo: spec\.ingress\[1\]\.ports\[0\]\.protocol: unknown protocol "ICMP"/);
    expect(lines[2]).toMatch(/shop\/typo: named port "postgres"\/TCP in spec\.ingress\[2\] matches no pod/);
    expect(r.out).toContain('ingress rules of NetworkPolicy shop/web');
  });

  it('rejects bad flags and bad files with a UsageError naming the flag or field', async () => {
    await expect(run(['render'])).rejects.toThrow(/--state FILE is required/);
    await expect(run(['render', '--state'])).rejects.toThrow(/--state needs a value/);
    await expect(run(['render', '--state', stateFile, '--format', 'yaml'])).rejects.toThrow(
      /--format: expected text or json/,
    );
    await expect(run(['render', '--bogus'])).rejects.toThrow(UsageError);
    await expect(run(['show'])).rejects.toThrow(/unknown subcommand "show"/);
    await expect(run(['render', '--state', join(dir, 'missing.json')])).rejects.toThrow(
      /cannot read .*ENOENT/,
    );
    const bad = (obj: unknown) => {
      const f = join(tmpdir(), `twill-bad-state-${process.pid}.json`);
      writeFileSync(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
      return run(['render', '--state', f]);
    };
    await expect(bad('{not json')).rejects.toThrow(/is not JSON/);
    await expect(bad({ namespaces: [] })).rejects.toThrow(/state file: node: expected the node name/);
    await expect(bad({ node: 'n', pods: {} })).rejects.toThrow(/state file: pods: expected a list/);
    await expect(
      bad({ node: 'n', pods: [{ namespace: 'a', name: 'b', ips: '10.0.0.1', node: 'n' }] }),
    ).rejects.toThrow(/pods\[0\]\.ips/);
    await expect(bad({ node: 'n', policies: [{ metadata: {}, spec: {} }] })).rejects.toThrow(
      /policies\[0\]\.metadata\.name/,
    );
  });
});
