/**
 * `twill lab down` returns only once nothing the lab started runs: a process that ignores
 * SIGTERM is killed after the grace time and waited for. Before, `down` sent SIGKILL and
 * returned at once, and a large process (kube-apiserver, an agent) could still be exiting when
 * the caller looked (test/lab/kubernetes.root.test.ts saw one alive).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { labDown, labUp } from '../../src/lab/lab.js';
import { describeSystem } from '../helpers/env.js';

function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describeSystem('twill lab down', { root: true, tools: ['ip', 'python3'] }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'twill-lab-down-'));
  const name = `dn${process.pid % 10000}`;
  const stateRoot = join(dir, 'state');
  afterAll(async () => {
    await labDown(stateRoot, name).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  it('kills what ignores SIGTERM and returns once it is gone', async () => {
    const file = join(dir, 'down.clab.yml');
    const ready = join(dir, 'ready');
    writeFileSync(
      file,
      [
        `name: ${name}`,
        'topology:',
        '  nodes:',
        '    a:',
        '      kind: linux',
        '      image: nicolaka/netshoot:latest',
        '      exec:',
        // Ignores SIGTERM, and holds 600 MiB of touched memory: its exit after SIGKILL, giving
        // that back, takes long enough to be seen.
        `        - python3 -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); b = b'x' * (600 << 20); open('${ready}', 'w').close(); time.sleep(600)" >/dev/null 2>&1 </dev/null &`,
        '',
      ].join('\n'),
    );
    await labUp({ file, name, stateRoot });
    for (let i = 0; i < 200 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(ready)).toBe(true);
    const pids = execFileSync('ip', ['netns', 'pids', `tw-${name}-a`], { encoding: 'utf8' })
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    expect(pids.length).toBeGreaterThan(0);
    const t0 = Date.now();
    await labDown(stateRoot, name);
    // It waited out the grace time (the process ignored SIGTERM), then the kill.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4900);
    expect(pids.filter(running)).toEqual([]);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(`tw-${name}-`);
  }, 60_000);
});
