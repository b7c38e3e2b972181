/**
 * The policy dataplane's reconciler: desired chains and sets vs what it believes the kernel has.
 * Modelled on Calico Felix's iptables `Table` (STYLE.md §4-5):
 *
 * - `setDesired(rendered)` only records intent; `apply()` does all the I/O in three batches:
 *   `ipset restore -exist` (changed sets rebuilt under a temp name and swapped in atomically),
 *   one `iptables-restore --noflush` transaction for the filter table (only chains whose hash
 *   list differs, stale jumps and chains), then `ipset restore` destroying sets nothing uses.
 *   Unchanged chains and sets are not written, so a label change or a policy change rewrites
 *   only the chains and sets it affects. When no set is new (only members change), the ipset
 *   and iptables batches run side by side.
 * - What it believes is the kernel's state is the last read-back plus what it wrote since.
 *   The first `apply()`, any `apply()` after a failure, and any after `markForReadBack()` (the
 *   periodic timer, `startRefresh`) read `iptables-save -t filter` and `ipset save` first and
 *   compare per chain the lists of `twl:<hash>` comments: a changed, reordered, foreign or
 *   missing rule makes its chain rewritten; a `twl-` chain or set nobody wants is removed.
 * - A failed batch is retried once after a fresh read-back; a second failure is thrown
 *   (`DataplaneError`) so the caller reschedules, and the next apply reads back again.
 * - It owns only `twl-` chains and sets and its two jump rules (first in FORWARD and INPUT);
 *   nothing else is read for decisions or written.
 *
 * iptables backend: nft and legacy must not be mixed on one host. `backend: 'auto'` (default)
 * does what Felix does: count the rules each backend's `iptables-save` shows and use legacy
 * only when it has more (an older host), else nft (Debian's default). `'nft'` or `'legacy'`
 * override it.
 */
import { execFile } from 'node:child_process';
import {
  chainHashes,
  CHAIN_PREFIX,
  ipsetRestoreText,
  iptablesRestoreText,
  jumpBody,
  type Rendered,
  SET_PREFIX,
  type SetSpec,
  type SetType,
} from './render.js';
import { ApplyQueue, applyWithOneRetry } from '../apply.js';

/** Runs a command with optional stdin, resolves with stdout, rejects with stderr in the message. */
export type Exec = (cmd: string, args: string[], input?: string) => Promise<string>;

export const execLocal: Exec = (cmd, args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { maxBuffer: 256 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      },
    );
    // A command that exits without reading its stdin (a save) must not crash us with EPIPE;
    // its exit status is what counts.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });

/** Run every command inside network namespace `ns` (tests, the bench). */
export function execInNetns(ns: string, base: Exec = execLocal): Exec {
  return (cmd, args, input) => base('ip', ['netns', 'exec', ns, cmd, ...args], input);
}

export type Backend = 'nft' | 'legacy';

export class DataplaneError extends Error {
  override name = 'DataplaneError';
}

export interface ApplyStats {
  readBack: boolean;
  chainsWritten: string[];
  chainsRemoved: string[];
  setsWritten: string[];
  setsRemoved: string[];
  jumpsFixed: number;
}

export interface Logger {
  warn(obj: Record<string, unknown>, msg: string): void;
  info?(obj: Record<string, unknown>, msg: string): void;
}

/** What `iptables-save -t filter` shows of ours. */
export interface FilterReadBack {
  /** Our chains -> the twl hash of each rule (null for a rule without one). */
  chains: Map<string, (string | null)[]>;
  /** Rules in built-in chains that are ours (jump to twl- or twl comment), with their position. */
  jumps: { chain: string; index: number; spec: string; target: string | null }[];
}

const COMMENT = /--comment "?twl:([A-Za-z0-9_-]+)"?/;

export function parseIptablesSave(text: string): FilterReadBack {
  const chains = new Map<string, (string | null)[]>();
  const jumps: FilterReadBack['jumps'] = [];
  const counts = new Map<string, number>();
  let inFilter = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (name.startsWith(CHAIN_PREFIX)) chains.set(name, []);
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const sp = line.indexOf(' ', 3);
    const chain = line.slice(3, sp);
    const spec = line.slice(sp + 1);
    const index = counts.get(chain) ?? 0;
    counts.set(chain, index + 1);
    const m = COMMENT.exec(spec);
    if (chain.startsWith(CHAIN_PREFIX)) {
      (chains.get(chain) ?? chains.set(chain, []).get(chain)!).push(m ? m[1]! : null);
    } else {
      const target = / -[jg] (twl-\S+)/.exec(` ${spec}`);
      if (m || target) jumps.push({ chain, index, spec, target: target ? target[1]! : null });
    }
  }
  return { chains, jumps };
}

/** What `ipset save` shows of ours: name -> type and sorted members. */
export function parseIpsetSave(text: string): Map<string, SetSpec> {
  const sets = new Map<string, SetSpec>();
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    if (parts[0] === 'create' && parts[1]?.startsWith(SET_PREFIX)) {
      sets.set(parts[1], { type: parts[2] as SetType, members: [] });
    } else if (parts[0] === 'add' && parts[1]?.startsWith(SET_PREFIX)) {
      sets.get(parts[1])?.members.push(parts.slice(2).join(' '));
    }
  }
  for (const s of sets.values()) s.members.sort();
  return sets;
}

function sameList<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface PolicyTableOptions {
  exec?: Exec;
  backend?: Backend | 'auto';
  log?: Logger;
}

export class PolicyTable {
  private readonly exec: Exec;
  private readonly log: Logger | undefined;
  private backendChoice: Backend | 'auto';
  private backend: Backend | undefined;

  private desired: Rendered | undefined;
  /** Chain -> the rules array last hashed for it and its hash list. */
  private readonly hashCache = new Map<string, { rules: string[]; hashes: string[] }>();

  // Believed kernel state; `undefined` = unknown, read back before the next write.
  private actualChains: Map<string, (string | null)[]> | undefined;
  private actualSets: Map<string, SetSpec> | undefined;
  private actualJumps: FilterReadBack['jumps'] = [];
  /** Chain -> the rules known to be in the kernel (written or verified), to skip hashing. */
  private readonly believedRules = new Map<string, string[]>();
  private refreshTimer: ReturnType<typeof setInterval> | undefined;
  private readonly applies = new ApplyQueue();

  constructor(opts: PolicyTableOptions = {}) {
    this.exec = opts.exec ?? execLocal;
    this.log = opts.log;
    this.backendChoice = opts.backend ?? 'auto';
    if (this.backendChoice !== 'auto') this.backend = this.backendChoice;
  }

  /** Record what should be programmed. No I/O. */
  setDesired(r: Rendered): void {
    this.desired = r;
  }

  /** Make the next apply() read the kernel state back first (drift check). No I/O. */
  markForReadBack(): void {
    this.actualChains = undefined;
    this.actualSets = undefined;
    this.believedRules.clear();
  }

  /** Which backend is (or will be) used. */
  async detectBackend(): Promise<Backend> {
    if (this.backend) return this.backend;
    const count = async (cmd: string): Promise<number> => {
      try {
        return (await this.exec(cmd, ['-t', 'filter'])).split('\n').filter((l) => l.startsWith('-A ')).length;
      } catch {
        return -1;
      }
    };
    const [legacy, nft] = [await count('iptables-legacy-save'), await count('iptables-nft-save')];
    this.backend = legacy > nft && legacy > 0 ? 'legacy' : 'nft';
    this.log?.info?.({ legacy, nft, backend: this.backend }, `iptables backend: ${this.backend}`);
    return this.backend;
  }

  private expectedHashes(chain: string, rules: string[]): string[] {
    const c = this.hashCache.get(chain);
    if (c !== undefined && (c.rules === rules || sameList(c.rules, rules))) return c.hashes;
    const hashes = chainHashes(chain, rules);
    this.hashCache.set(chain, { rules, hashes });
    return hashes;
  }

  /** Read our chains, jumps and sets back from the kernel. */
  async readBack(): Promise<{ filter: FilterReadBack; sets: Map<string, SetSpec> }> {
    const backend = await this.detectBackend();
    const [save, ipsets] = await Promise.all([
      this.exec(`iptables-${backend}-save`, ['-t', 'filter']),
      this.exec('ipset', ['save']),
    ]);
    return { filter: parseIptablesSave(save), sets: parseIpsetSave(ipsets) };
  }

  /** Program the difference between desired and (believed) actual. Serialised (../apply.ts). */
  apply(): Promise<ApplyStats> {
    return this.applies.run(() =>
      applyWithOneRetry(
        () => this.applyOnce(),
        (err) => {
          this.log?.warn(
            { err: String(err) },
            'policy dataplane apply failed; reading back before the next try',
          );
          this.markForReadBack();
        },
        (err) => new DataplaneError(`policy dataplane apply failed twice: ${err.message}`),
      ),
    );
  }

  private async applyOnce(): Promise<ApplyStats> {
    const desired = this.desired;
    const stats: ApplyStats = {
      readBack: false,
      chainsWritten: [],
      chainsRemoved: [],
      setsWritten: [],
      setsRemoved: [],
      jumpsFixed: 0,
    };
    if (!desired) return stats;
    const backend = await this.detectBackend();
    if (this.actualChains === undefined || this.actualSets === undefined) {
      const rb = await this.readBack();
      this.actualChains = rb.filter.chains;
      this.actualJumps = rb.filter.jumps;
      this.actualSets = rb.sets;
      stats.readBack = true;
    }
    const actualChains = this.actualChains;
    const actualSets = this.actualSets;

    // Sets: rebuild the changed ones (before any rule refers to them).
    const writeSets = new Map<string, SetSpec>();
    for (const [name, spec] of desired.sets) {
      const a = actualSets.get(name);
      if (!a || a.type !== spec.type || !sameList(a.members, spec.members)) writeSets.set(name, spec);
    }
    // Leftover temp sets from an interrupted apply are destroyed with the stale ones.
    const staleSets = [...actualSets.keys()].filter((n) => !desired.sets.has(n)).sort();

    // Chains.
    const writeChains = new Map<string, string[]>();
    for (const [name, rules] of desired.chains) {
      const known = this.believedRules.get(name);
      if (known !== undefined && (known === rules || sameList(known, rules))) continue;
      if (sameList(actualChains.get(name), this.expectedHashes(name, rules)))
        this.believedRules.set(name, rules);
      else writeChains.set(name, rules);
    }
    const removeChains = [...actualChains.keys()].filter((n) => !desired.chains.has(n)).sort();

    // Jumps: exactly one of ours per built-in chain, first, with the expected comment.
    const deleteRules: { chain: string; spec: string }[] = [];
    const insertJumps: { chain: string; target: string }[] = [];
    for (const j of desired.jumps) {
      const ours = this.actualJumps.filter((a) => a.chain === j.chain);
      const good =
        ours.length === 1 &&
        ours[0]!.index === 0 &&
        ours[0]!.target === j.target &&
        ours[0]!.spec.includes(`twl:jump-${j.target}`);
      if (!good) {
        for (const a of ours) deleteRules.push({ chain: a.chain, spec: a.spec });
        insertJumps.push(j);
      }
    }
    const desiredJumpChains = new Set<string>(desired.jumps.map((j) => j.chain));
    for (const a of this.actualJumps)
      if (!desiredJumpChains.has(a.chain)) deleteRules.push({ chain: a.chain, spec: a.spec });

    const writingChains =
      writeChains.size > 0 || removeChains.length > 0 || deleteRules.length > 0 || insertJumps.length > 0;
    // A set must exist before a rule names it; when every set written exists already (only
    // members change) the two batches are independent and run side by side.
    const setsFirst = [...writeSets.keys()].some((n) => !actualSets.has(n));
    const setsDone =
      writeSets.size > 0
        ? this.exec('ipset', ['restore', '-exist'], ipsetRestoreText(writeSets))
        : Promise.resolve('');
    if (setsFirst || !writingChains) await setsDone;
    if (writingChains) {
      const text = iptablesRestoreText({
        write: writeChains,
        remove: removeChains,
        deleteRules,
        insertJumps,
      });
      const args = backend === 'legacy' ? ['--noflush', '--wait', '10'] : ['--noflush'];
      const [, chainsResult] = await Promise.allSettled([
        setsDone,
        this.exec(`iptables-${backend}-restore`, args, text),
      ]);
      if (chainsResult.status === 'rejected') throw chainsResult.reason;
      for (const [n, rules] of writeChains) {
        actualChains.set(n, this.expectedHashes(n, rules));
        this.believedRules.set(n, rules);
      }
      for (const n of removeChains) {
        actualChains.delete(n);
        this.believedRules.delete(n);
        this.hashCache.delete(n);
      }
      this.actualJumps = desired.jumps.map((j) => ({
        chain: j.chain,
        index: 0,
        spec: jumpBody(j),
        target: j.target,
      }));
    }
    await setsDone;
    for (const [n, s] of writeSets) actualSets.set(n, s);
    if (staleSets.length > 0) {
      try {
        await this.exec('ipset', ['restore', '-exist'], ipsetRestoreText(new Map(), staleSets));
        for (const n of staleSets) actualSets.delete(n);
      } catch (err) {
        // Still referenced by a rule we do not own, or in use: try again on the next read-back.
        this.log?.warn({ err: String(err), sets: staleSets }, 'could not destroy stale ipsets');
        this.markForReadBack();
      }
    }
    stats.chainsWritten = [...writeChains.keys()];
    stats.chainsRemoved = removeChains;
    stats.setsWritten = [...writeSets.keys()];
    stats.setsRemoved = staleSets;
    stats.jumpsFixed = insertJumps.length;
    return stats;
  }

  /** Every `ms`, read back and repair drift. Errors go to the log; the next tick retries. */
  startRefresh(ms: number): void {
    this.stopRefresh();
    this.refreshTimer = setInterval(() => {
      this.markForReadBack();
      this.apply().catch((err) => this.log?.warn({ err: String(err) }, 'policy dataplane refresh failed'));
    }, ms);
    this.refreshTimer.unref?.();
  }

  stopRefresh(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.refreshTimer = undefined;
  }

  /** Remove everything of ours (jumps, chains, sets). */
  async removeAll(): Promise<void> {
    this.desired = { sets: new Map(), chains: new Map(), jumps: [] };
    this.markForReadBack();
    await this.apply();
  }
}
