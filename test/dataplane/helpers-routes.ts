/**
 * Drive the route reconciler inside a test namespace: test/dataplane/route-driver.mjs runs under
 * `ip netns exec` (Node cannot switch namespaces) and answers JSON commands; `RouteMonitor`
 * records `ip monitor route` in the same namespace, so a test sees every RTM_NEWROUTE and
 * RTM_DELROUTE the kernel announced. Both are started through the Lab, which ends them by PID.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Lab } from '../helpers/netns.js';
import { sh, waitFor } from '../helpers/netns.js';

const ROOT = join(import.meta.dirname, '../..');
const DRIVER = join(import.meta.dirname, 'route-driver.mjs');

export class RouteDriver {
  private proc: ChildProcess | undefined;
  private buf = '';
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly errors: string[] = [];
  stderr = '';

  constructor(
    private readonly lab: Lab,
    readonly ns: string,
  ) {}

  async start(): Promise<void> {
    if (!existsSync(join(ROOT, 'dist/src/dataplane/routes.js')))
      throw new Error('dist/ is missing the route reconciler: run `npm run build` (npm test does it)');
    const proc = this.lab.spawn(this.ns, process.execPath, [DRIVER], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc = proc;
    let ready = false;
    proc.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const msg = JSON.parse(line) as {
          id?: number;
          ok?: boolean;
          result?: unknown;
          error?: string;
          event?: string;
        };
        if (msg.event === 'ready') ready = true;
        else if (msg.event === 'error') this.errors.push(msg.error!);
        else if (msg.id !== undefined) {
          const w = this.waiting.get(msg.id);
          this.waiting.delete(msg.id);
          if (msg.ok) w?.resolve(msg.result);
          else w?.reject(new Error(msg.error));
        }
      }
    });
    proc.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    proc.once('exit', () => {
      for (const w of this.waiting.values()) w.reject(new Error(`route driver exited: ${this.stderr}`));
      this.waiting.clear();
    });
    await waitFor(
      'route driver',
      () => ready || (proc.exitCode !== null ? Promise.reject(new Error(this.stderr)) : false),
    );
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc!.stdin!.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    });
  }

  /** Ask the driver to close its handles and exit (routes stay in the kernel). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.once('exit', r));
    await this.call('exit').catch(() => undefined);
    await done;
  }
}

/** Marker routes the monitor and the tests use to know the monitor has caught up (TEST-NET-1). */
export const MARKER = /\b192\.0\.2\.25[0-9]\b/;

export class RouteMonitor {
  private proc: ChildProcess | undefined;
  /** Every line `ip monitor route` printed. */
  all: string[] = [];
  private buf = '';

  constructor(
    private readonly lab: Lab,
    readonly ns: string,
  ) {}

  /** Lines about anything but the marker routes. */
  get lines(): string[] {
    return this.all.filter((l) => !MARKER.test(l));
  }

  /** Start `ip monitor route` and wait until it listens (a marker route it must report). */
  async start(): Promise<void> {
    this.proc = this.lab.spawn(this.ns, 'ip', ['monitor', 'route']);
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.buf += d.toString();
      const parts = this.buf.split('\n');
      this.buf = parts.pop()!;
      this.all.push(...parts.filter(Boolean));
    });
    const marker = '192.0.2.254';
    // Re-adding an identical route is silent, so each attempt deletes the marker and adds it.
    try {
      await waitFor('ip monitor route', () => {
        sh('ip', ['-n', this.ns, 'route', 'del', 'blackhole', `${marker}/32`], { allowFail: true });
        sh('ip', ['-n', this.ns, 'route', 'add', 'blackhole', `${marker}/32`]);
        return this.all.some((l) => l.includes(marker));
      });
    } finally {
      sh('ip', ['-n', this.ns, 'route', 'del', 'blackhole', `${marker}/32`], { allowFail: true });
    }
  }

  /** Lines about routes with protocol `proto`. */
  ours(proto = 84): string[] {
    return this.lines.filter((l) => new RegExp(`\\bproto ${proto}\\b`).test(l));
  }
}

export interface IpRoute {
  dst: string;
  type?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  nexthops?: { gateway: string; dev: string }[];
}

/** `ip -j route show` of a family in the namespace. */
export function ipRoutes(ns: string, family: 4 | 6, ...filter: string[]): IpRoute[] {
  return JSON.parse(
    sh('ip', ['-n', ns, '-j', `-${family}`, 'route', 'show', ...filter]) || '[]',
  ) as IpRoute[];
}
