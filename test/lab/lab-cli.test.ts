/**
 * `twill lab` without a lab: how a node's cmd becomes the agent's command line, which image
 * plays which role, the usage errors, and what it says to a user without root (the check
 * itself: a process of another user may not even read the checkout, as under a 0700 home).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ClabNode } from '../../src/lab/clab.js';
import { sandboxOf } from '../../src/lab/kubelet.js';
import { agentFlags, k8sBinDir, LabError, requireRoot, roleOf, words } from '../../src/lab/lab.js';
import { BIN } from '../helpers/twill.js';

const node = (over: Partial<ClabNode>): ClabNode => ({
  name: 'n1',
  kind: 'linux',
  image: null,
  cmd: null,
  entrypoint: null,
  binds: [],
  exec: [],
  env: {},
  labels: {},
  mgmtIpv4: null,
  mgmtIpv6: null,
  ...over,
});

describe('twill lab', () => {
  it('splits a cmd into words, quotes grouping', () => {
    expect(words(`twill agent --log-level "debug" --ip-autodetection-method 'interface=eth1'`)).toEqual([
      'twill',
      'agent',
      '--log-level',
      'debug',
      '--ip-autodetection-method',
      'interface=eth1',
    ]);
  });

  it("keeps the agent's flags and drops the ones the lab sets itself", () => {
    const n = node({
      image: 'ghcr.io/twill-net/twill:latest',
      cmd: 'twill agent --datastore kubernetes --as 64512 --api=/x.sock --nodename other --pool-cidr 10.244.0.0/16',
    });
    expect(agentFlags(n)).toEqual(['--as', '64512', '--pool-cidr', '10.244.0.0/16']);
    expect(() => agentFlags(node({ name: 'n2', cmd: 'twill speaker --config x' }))).toThrow(
      'n2: cmd must start with "twill agent"',
    );
  });

  it('gives each image its role', () => {
    expect(roleOf(node({ image: 'ghcr.io/twill-net/twill:latest' }))).toBe('twill');
    expect(roleOf(node({ image: 'twill-lab/bird2:latest' }))).toBe('bird');
    expect(roleOf(node({ image: 'quay.io/frrouting/frr:9.1.0' }))).toBe('frr');
    expect(roleOf(node({ image: 'nicolaka/netshoot:latest' }))).toBe('plain');
    // "twill-lab/…" is not the Twill image.
    expect(roleOf(node({ image: 'twill-lab/switch:latest' }))).toBe('plain');
  });

  const twill = (args: string[]) =>
    spawnSync(process.execPath, [BIN, 'lab', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });

  it('usage errors exit 2 and say what is wrong', () => {
    expect(twill([]).status).toBe(2);
    const r = twill(['frob']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown lab command frob');
    expect(twill(['up']).stderr).toContain('usage: twill lab up FILE.clab.yml');
    expect(twill(['up', 'x.clab.yml', '--pods', 'many']).stderr).toContain('--pods: "many" is not 0..1000');
  });

  it('without root: says so and what it needs', () => {
    expect(() => requireRoot(65534)).toThrow(LabError);
    expect(() => requireRoot(65534)).toThrow(/twill lab needs root: .*sudo/);
    expect(() => requireRoot(0)).not.toThrow();
  });

  it('Kubernetes mode without the control plane binaries says where it looked and how to get them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'twill-nobin-'));
    try {
      expect(() => k8sBinDir(dir)).toThrow(LabError);
      expect(() => k8sBinDir(dir)).toThrow(
        new RegExp(`needs etcd, kube-apiserver, kubectl \\(looked in ${dir}\\).*test/k8s/build\\.sh.*--k8s-bin DIR`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("names a Kubernetes pod's sandbox after the lab, the pod's namespace and its name", () => {
    expect(sandboxOf('mesh3', 'default', 'web')).toBe('tw-mesh3-default.web');
    expect(sandboxOf('mesh3', 'kube-system', 'dns-0')).toBe('tw-mesh3-kube-system.dns-0');
  });
});
