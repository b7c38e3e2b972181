/**
 * `twill cni-install` as the DaemonSet's init container runs it, into folders of the test's
 * standing in for the host's /opt/cni/bin and /etc/cni/net.d: the installed plugin runs on its
 * own (the kernel starts the installed Node through its first line), a bad configuration
 * changes nothing, and the built-in default is the conflist deploy/ ships.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_CONFLIST } from '../../src/cni/install.js';

const ROOT = join(import.meta.dirname, '../..');
const TWILL = join(ROOT, 'bin/twill.js');

describe('twill cni-install', () => {
  let dir: string;
  let bin: string;
  let netd: string;
  const install = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [TWILL, 'cni-install', '--bin-dir', bin, '--conf-dir', netd, ...args], {
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
    });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'twill-cni-install-'));
    bin = join(dir, 'opt-cni-bin');
    netd = join(dir, 'etc-cni-net.d');
    mkdirSync(bin);
    mkdirSync(netd);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('installs the plugin, its Node and the conflist; the plugin runs on its own', () => {
    const conflist = { ...DEFAULT_CONFLIST, name: 'from-env' };
    const r = install([], { CNI_CONFLIST: JSON.stringify(conflist) });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain(`installed ${join(bin, 'twill')}`);
    // portmap is chained but not in this bin folder: said, not fatal.
    expect(r.stderr).toContain('"portmap"');
    const plugin = join(bin, 'twill');
    expect(readFileSync(plugin, 'utf8').split('\n')[0]).toBe(`#!${join(bin, 'twill-node')}`);
    expect(statSync(plugin).mode & 0o777).toBe(0o755);
    expect(statSync(join(bin, 'twill-node')).size).toBe(statSync(process.execPath).size);
    // Exec'd directly, as a runtime does, with no Node on PATH.
    const out = execFileSync(plugin, [], {
      env: { PATH: '/nonexistent', CNI_COMMAND: 'VERSION' },
      input: '{"cniVersion":"1.0.0"}',
      encoding: 'utf8',
    });
    expect(JSON.parse(out).supportedVersions).toContain('1.1.0');
    const written = join(netd, '10-twill.conflist');
    expect(JSON.parse(readFileSync(written, 'utf8'))).toEqual(conflist);
    expect(statSync(written).mode & 0o777).toBe(0o644);
  });

  it('--host-bin-dir names where the host sees the folder', () => {
    const r = install(['--host-bin-dir', '/opt/cni/bin']);
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(bin, 'twill'), 'utf8').split('\n')[0]).toBe('#!/opt/cni/bin/twill-node');
  });

  it('a bad configuration is one line per problem, exit 2, and the host keeps what it had', () => {
    expect(install([]).status).toBe(0);
    const before = readFileSync(join(netd, '10-twill.conflist'), 'utf8');
    const pluginBefore = statSync(join(bin, 'twill')).mtimeMs;
    const bad = {
      cniVersion: '1.0.0',
      name: 'x',
      plugins: [{ type: 'twill', mtu: 5 }, { type: 'twill' }, { snat: true }],
    };
    const r = install([], { CNI_CONFLIST: JSON.stringify(bad) });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toEqual([
      'twill cni-install: conflist: plugins[0] (twill): mtu: 5 is not 68..65535 (from CNI_CONFLIST)',
      'twill cni-install: conflist: plugins[2]: expected an object with a "type" (from CNI_CONFLIST)',
      'twill cni-install: conflist: plugins: expected exactly one "twill" entry, found 2 (from CNI_CONFLIST)',
      'nothing was changed on the host',
    ]);
    expect(readFileSync(join(netd, '10-twill.conflist'), 'utf8')).toBe(before);
    expect(statSync(join(bin, 'twill')).mtimeMs).toBe(pluginBefore);
    expect(
      install([], { CNI_CONFLIST: '{"cniVersion": "1.0.0", "name": "x", "type": "twill"}' }).stderr,
    ).toContain('plugins: expected a list of plugin configurations (this is a .conflist)');
    expect(install([], { CNI_CONFLIST: 'not json' }).stderr).toContain('conflist: not JSON');
  });

  it('a host folder that is not mounted is named, exit 2', () => {
    rmSync(netd, { recursive: true });
    const r = install([]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--conf-dir: ${netd} is not a folder (is the host path mounted?)`);
    expect(() => statSync(join(bin, 'twill'))).toThrow();
  });

  it('--conflist FILE is read, and an unreadable one is a usage error', () => {
    const file = join(dir, 'mine.conflist');
    writeFileSync(file, JSON.stringify({ ...DEFAULT_CONFLIST, name: 'from-file' }));
    expect(install(['--conflist', file]).status).toBe(0);
    expect(JSON.parse(readFileSync(join(netd, '10-twill.conflist'), 'utf8')).name).toBe('from-file');
    const r = install(['--conflist', join(dir, 'missing')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--conflist: ENOENT');
  });

  it('the built-in default is the conflist deploy/cni and the ConfigMap ship', () => {
    expect(JSON.parse(readFileSync(join(ROOT, 'deploy/cni/10-twill.conflist'), 'utf8'))).toEqual(
      DEFAULT_CONFLIST,
    );
    const docs = readFileSync(join(ROOT, 'deploy/config.yaml'), 'utf8')
      .split(/^---$/m)
      .map((d) => parse(d) as { kind?: string; data?: Record<string, string> } | null);
    const cm = docs.find((d) => d?.kind === 'ConfigMap' && d.data?.['cni-conflist'] !== undefined);
    expect(JSON.parse(cm!.data!['cni-conflist']!)).toEqual(DEFAULT_CONFLIST);
  });
});
