/**
 * What a `twill` command loads is its start-up time and memory: the Kubernetes client alone is
 * about 70 MiB and half a second of CPU. Commands that do not talk to Kubernetes must not load it
 * (`twill speaker`, `twill status`, `twill ipam` on a file store). Checked on the built CLI
 * (bin/twill.js -> dist/, built by npm test's pretest) with Node's own ESM loader log
 * (NODE_DEBUG=esm names every module it stores).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN } from '../helpers/twill.js';

function loaded(...args: string[]): string {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, NODE_DEBUG: 'esm' },
  });
  return r.stderr;
}

describe('twill loads the Kubernetes client only for commands that use it', () => {
  it('not for version, nor for ipam on a file store', () => {
    expect(loaded('version')).toContain('dist/src/cli.js');
    expect(loaded('version')).not.toContain('@kubernetes/client-node');
    const dir = mkdtempSync(join(tmpdir(), 'twill-startup-'));
    try {
      const log = loaded('ipam', '--datastore', `file:${dir}`);
      expect(log).toContain('dist/src/datastore/file.js');
      expect(log).not.toContain('@kubernetes/client-node');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('for ipam on Kubernetes (a positive control: the log would show it)', () => {
    expect(loaded('ipam', '--datastore', 'kubernetes', '--kubeconfig', '/nonexistent')).toContain(
      '@kubernetes/client-node',
    );
  });
});
