/**
 * What the BGP bench's runners share (run.ts, receivers.ts): commands, the namespaces and
 * processes a run made and their cleanup (by PID, and by the namespaces' own process lists, on
 * exit, on an error and on SIGINT/SIGTERM), the peer processes that talk JSON lines on stdio, a
 * sampler of a DUT's memory and CPU, quantiles, and the printed tables.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cpuSeconds } from '../proc.js';

/** Namespaces this run made, deleted by cleanup. */
export const made: string[] = [];
/** Processes this run started, ended by PID by cleanup. */
export const children = new Set<ChildProcess>();
let cleaned = false;

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Synchronous, so it can run from 'exit': SIGKILL our children by PID, then drop the namespaces. */
export function cleanup(): void {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const n of made) {
    // Whatever still runs in our own namespaces was started by this run (daemons that forked).
    let pids: string[] = [];
    try {
      pids = sh('ip', ['netns', 'pids', n]).split(/\s+/).filter(Boolean);
    } catch {
      // namespace gone
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      sh('ip', ['netns', 'del', n]);
    } catch {
      // gone
    }
  }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    console.error(`\n${sig}: cleaning up`);
    cleanup();
    process.exit(130);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The value after `--name` on the command line, if given. */
export function flag(name: string): string | undefined {
  const argv = process.argv;
  const i = argv.indexOf(`--${name}`, 2);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** Whether `--name` is on the command line. */
export const has = (name: string): boolean => process.argv.includes(`--${name}`, 2);

export type Ev = { ev: string; [k: string]: unknown };

/** An injector or monitor process: JSON lines in both directions. */
export class PeerProc {
  readonly child: ChildProcess;
  private readonly queue: Ev[] = [];
  private waiter: (() => void) | undefined;
  exited = false;
  stderr = '';

  constructor(
    readonly name: string,
    nsName: string,
    script: string,
    args: string[],
  ) {
    this.child = spawn(
      'ip',
      ['netns', 'exec', nsName, process.execPath, join(import.meta.dirname, script), ...args],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    children.add(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      try {
        this.queue.push(JSON.parse(line) as Ev);
      } catch {
        this.stderr += `${line}\n`;
      }
      this.waiter?.();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.child.on('exit', () => {
      this.exited = true;
      children.delete(this.child);
      this.waiter?.();
    });
  }

  send(cmd: Record<string, unknown>): void {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  /** The next event named `ev`; fails on a NOTIFICATION/close event, exit, `abort()` or timeout. */
  async wait(ev: string, ms: number, abort: () => string | undefined = () => undefined): Promise<Ev> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.queue.findIndex(
        (e) => e.ev === ev || e.ev === 'notification' || e.ev === 'closed' || e.ev === 'error',
      );
      if (i >= 0) {
        const e = this.queue.splice(i, 1)[0]!;
        if (e.ev !== ev) throw new Error(`${this.name}: ${JSON.stringify(e)}`);
        return e;
      }
      if (this.exited) throw new Error(`${this.name} exited: ${this.stderr.slice(-1000)}`);
      const why = abort();
      if (why) throw new Error(why);
      const left = end - Date.now();
      if (left <= 0) throw new Timeout(`${this.name}: no ${ev} after ${ms / 1000} s`);
      await new Promise<void>((r) => {
        this.waiter = r;
        setTimeout(r, Math.min(left, 250));
      });
      this.waiter = undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await done;
    clearTimeout(t);
  }
}

export class Timeout extends Error {}

// ---- DUT process sampling ----

export class Sampler {
  peakRss = 0;
  hwm = 0;
  rss = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly pid: number) {
    this.sample();
    this.timer = setInterval(() => this.sample(), 100);
  }

  sample(): void {
    try {
      const s = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const kib = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) * 1024;
      this.rss = kib('VmRSS');
      this.hwm = Math.max(this.hwm, kib('VmHWM'));
      this.peakRss = Math.max(this.peakRss, this.rss);
    } catch {
      // exited
    }
  }

  cpuSeconds(): number {
    return cpuSeconds(this.pid);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }
}

export const MiB = (b: number) => b / 2 ** 20;

export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
export const median = (xs: number[]) => quantile(xs, 0.5);

/** A ratio as the tables print it. */
export const fmtX = (x: number | undefined) => (x === undefined ? '-' : `${x.toFixed(2)}x`);

/** A markdown table, columns padded to their widest cell. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const line = (r: string[]) => `| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  return [
    line(rows[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
  ].join('\n');
}
