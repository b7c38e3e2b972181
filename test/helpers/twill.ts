/**
 * Run Twill's own standalone speaker (`twill speaker --config FILE`, from dist/, built by
 * `npm test`'s pretest) inside a test namespace, and read it back through its local API the way
 * an operator would (`twill status --json`).
 */
import { type ChildProcess, execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { getJson } from '../../src/api/http.js';
import type { RouteView } from '../../src/bgp/speaker.js';
import type { SpeakerStatus } from '../../src/bgp/status.js';
import type { Lab } from './netns.js';
import { waitFor } from './netns.js';

/** The repository, also when this module runs compiled from dist/ (bench/ imports it). */
const up = join(import.meta.dirname, '../..');
export const ROOT = basename(up) === 'dist' ? dirname(up) : up;
export const BIN = join(ROOT, 'bin/twill.js');

export interface TwillNeighbor {
  address: string;
  asn: number;
  port?: number;
  passive?: boolean;
  holdTime?: number;
  connectRetry?: number;
  families?: string[];
  localAddress?: string;
  bfd?: boolean | { minTx?: number; minRx?: number; multiplier?: number };
}

export interface TwillSpec {
  ns: string;
  dir: string;
  routerId: string;
  asn: number;
  listen?: { address: string; port: number } | false;
  neighbors: TwillNeighbor[];
  originate?: string[];
  mesh?: { lowerAddressDials: boolean };
  /** More top-level config fields (gracefulRestart, clusterId, decision...). */
  extra?: Record<string, unknown>;
  /** Start with --graceful-restart. */
  restarting?: boolean;
}

/** `twill routes` entries, as the speaker's API serves them. */
export type TwillRoute = RouteView;
export type TwillPathView = RouteView['paths'][number];

export class Twill {
  proc: ChildProcess | undefined;
  readonly sock: string;
  readonly config: string;
  log = '';

  constructor(
    private readonly lab: Lab,
    readonly spec: TwillSpec,
  ) {
    this.sock = join(spec.dir, `${spec.routerId}.sock`);
    this.config = join(spec.dir, `${spec.routerId}.yml`);
    this.writeConfig();
  }

  writeConfig(): void {
    const s = this.spec;
    const doc: Record<string, unknown> = {
      routerId: s.routerId,
      asn: s.asn,
      listen: s.listen ?? { address: '0.0.0.0', port: 179 },
      neighbors: s.neighbors,
      originate: s.originate ?? [],
      api: { listen: this.sock },
    };
    if (s.mesh) doc.mesh = s.mesh;
    Object.assign(doc, s.extra ?? {});
    writeFileSync(this.config, stringify(doc));
  }

  async start(): Promise<void> {
    if (!existsSync(join(ROOT, 'dist/src/cli.js')))
      throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
    const args = [BIN, 'speaker', '--config', this.config, '--log-level', 'debug'];
    if (this.spec.restarting) args.push('--graceful-restart');
    this.proc = this.lab.spawn(this.spec.ns, process.execPath, args, {
      env: { ...process.env, TWILL_TEST_FAST_TIMERS: '1' },
    });
    this.proc.stdout?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    this.proc.stderr?.on('data', (d: Buffer) => {
      this.log += d.toString();
    });
    await waitFor(`twill ${this.spec.routerId} API`, () => existsSync(this.sock) && this.status(), 15_000);
  }

  pid(): number {
    return this.proc!.pid!;
  }

  /** Stop with SIGTERM and wait for the exit. */
  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    const done = new Promise((r) => p.once('exit', r));
    // `ip netns exec` execs node, so the PID is node's own.
    process.kill(p.pid!, 'SIGTERM');
    await done;
  }

  /** Write the spec's config again and send SIGHUP (live reload). */
  reload(): void {
    this.writeConfig();
    this.kill('SIGHUP');
  }

  kill(sig: NodeJS.Signals): void {
    process.kill(this.proc!.pid!, sig);
  }

  /** `twill status --json`, through the CLI. */
  status(): SpeakerStatus {
    const out = execFileSync(process.execPath, [BIN, 'status', '--json', '--api', this.sock], {
      encoding: 'utf8',
    });
    return JSON.parse(out) as SpeakerStatus;
  }

  statusText(): string {
    return execFileSync(process.execPath, [BIN, 'status', '--api', this.sock], { encoding: 'utf8' });
  }

  /** The Loc-RIB, as `twill routes --json` prints it. */
  async routes(prefix?: string): Promise<TwillRoute[]> {
    const q = prefix ? `?prefix=${encodeURIComponent(prefix)}` : '';
    return (await getJson({ kind: 'unix', path: this.sock }, `/routes${q}`)) as TwillRoute[];
  }

  peer(address: string) {
    const p = this.status().peers.find((x) => x.address === address);
    if (!p) throw new Error(`no peer ${address} in twill status`);
    return p;
  }

  async waitState(address: string, state: string, ms = 30_000): Promise<void> {
    await waitFor(
      `twill ${this.spec.routerId}: peer ${address} ${state}`,
      () => this.peer(address).state === state,
      ms,
    );
  }

  /** Prefixes for which `address` sent a path (its Adj-RIB-In as the Loc-RIB shows it). */
  async prefixesFrom(address: string): Promise<string[]> {
    return (await this.routes())
      .filter((r) => r.paths.some((p) => p.from === address))
      .map((r) => r.prefix)
      .sort();
  }

  async pathFrom(prefix: string, address: string): Promise<TwillPathView | undefined> {
    return (await this.routes(prefix))
      .find((r) => r.prefix === prefix)
      ?.paths.find((p) => p.from === address);
  }
}
