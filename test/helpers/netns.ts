/**
 * Throwaway network namespaces for tests. Every namespace a test makes has a unique name with the
 * prefix `twt-` and the test's PID, is recorded here, and is deleted by `cleanup()` (call it in
 * afterAll/afterEach) — also when the test failed. Processes started in a namespace are tracked by
 * PID and ended by PID. Nothing here touches the host's own links, routes or firewall.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';

let counter = 0;

export function sh(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    if (opts.allowFail) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr || e.message}`);
  }
}

export class Lab {
  readonly namespaces: string[] = [];
  readonly procs: ChildProcess[] = [];

  /** A new namespace with loopback up. */
  ns(tag: string): string {
    const name = `twt-${process.pid}-${counter++}-${tag}`.slice(0, 31);
    sh('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    sh('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  }

  /** A veth pair between two namespaces with an address on each end (CIDR form, e.g. 10.0.0.1/24). */
  link(
    a: string,
    aAddr: string,
    b: string,
    bAddr: string,
    opts: { v6?: [string, string] } = {},
  ): { aIf: string; bIf: string } {
    const id = counter++;
    const aIf = `ta${id}`;
    const bIf = `tb${id}`;
    sh('ip', ['link', 'add', aIf, 'netns', a, 'type', 'veth', 'peer', 'name', bIf, 'netns', b]);
    for (const [ns, ifn, addr, v6] of [
      [a, aIf, aAddr, opts.v6?.[0]],
      [b, bIf, bAddr, opts.v6?.[1]],
    ] as const) {
      sh('ip', ['-n', ns, 'addr', 'add', addr, 'dev', ifn]);
      if (v6) sh('ip', ['-n', ns, 'addr', 'add', v6, 'dev', ifn, 'nodad']);
      sh('ip', ['-n', ns, 'link', 'set', ifn, 'up']);
    }
    return { aIf, bIf };
  }

  exec(ns: string, cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** Start a long-running process inside a namespace; it is killed (by PID) in cleanup(). */
  spawn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...opts,
    });
    this.procs.push(child);
    return child;
  }

  async cleanup(): Promise<void> {
    for (const p of this.procs.reverse()) {
      if (p.exitCode === null && p.signalCode === null && p.pid !== undefined) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await new Promise((r) => {
          p.once('exit', r);
          setTimeout(r, 2000);
        });
      }
    }
    this.procs.length = 0;
    for (const ns of this.namespaces.reverse()) {
      // Daemons that double-forked (bird, bgpd) still live in the namespace: end them by PID.
      for (const pid of sh('ip', ['netns', 'pids', ns], { allowFail: true }).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
      sh('ip', ['netns', 'del', ns], { allowFail: true });
    }
    this.namespaces.length = 0;
  }
}

/** Poll until `fn` returns a value that is not undefined/false, or throw after `ms`. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 20_000,
  every = 100,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
