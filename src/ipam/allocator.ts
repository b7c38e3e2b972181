/**
 * The allocator: hands out pod addresses from the IPAM objects (model.ts) over the `Datastore`
 * interface, so that no address is ever held twice, across nodes, restarts and conflicts.
 *
 * How it stays correct with several allocators on one store (one per node, and more than one
 * per node while CNI ADDs run side by side with the agent's clean-up):
 *
 * - The store is the only truth. The allocator keeps nothing in memory that a restart could
 *   lose except two observation lists (empty blocks, leaked addresses) whose loss only delays a
 *   clean-up.
 * - Every write is compare-and-swap on the resourceVersion of the read it was computed from (or
 *   a create, which fails if the object exists). A Conflict (or NotFound, AlreadyExists: the
 *   object changed under us) restarts the whole operation from fresh reads, up to `maxRetries`
 *   times; then `IpamError('Conflict')`. Every operation is written to resume from any state a
 *   crash between two of its writes can leave, so a restart is the same as a retry.
 * - Write order makes a crash harmless. Assign writes the handle (listing the block) before the
 *   block, so an address in a block is always findable from its handle. Release frees the
 *   block's addresses before it deletes the handle. A claim writes the affinity `pending`, then
 *   creates the block carrying the node's affinity (the create decides a race: one node wins,
 *   the loser deletes its pending affinity), then confirms the affinity. An empty block is
 *   released by marking its affinity `pendingDeletion`, deleting the block on the
 *   resourceVersion seen empty (an allocation in between makes it a Conflict and the affinity
 *   goes back to `confirmed`), then deleting the affinity. Deletes carry the resourceVersion
 *   they were decided on, so a delete never removes a newer object of the same name.
 *
 * - Reads may come from a watch (`ReadCache`, the agent's) for the common assign only: a new
 *   handle and an address in one of the node's confirmed blocks, two writes and no read
 *   (`assignFromCache`). Both writes are compare-and-swap on what the watch showed, so a stale
 *   read costs a failed write and one attempt the long way below, from the store's reads.
 *
 * assign(handle, node, family) in order:
 * 1. the address the handle already holds in that family, if any (so a CNI ADD retried after a
 *    crash gets the same address and nothing leaks);
 * 2. the node's confirmed blocks in usable pools, lowest address first (a `pending` claim or a
 *    `pendingDeletion` release left by a crash is finished first);
 * 3. a new block: the lowest-addressed block of the first usable pool (IPv4 first, then by
 *    address) that overlaps no existing block, unless the node holds `maxBlocksPerHost` blocks of
 *    the family. In a `podCIDR` pool the block is the node's `spec.podCIDRs` entry;
 * 4. unless `strictAffinity`, a free address in another node's block (lowest block first) in a
 *    `blocks` pool whose selector takes the node: the node then originates a /32 (/128) for it.
 * A pool is usable for a node when it is valid, not disabled, of the family, and its
 * `nodeSelector` matches the Node's labels.
 *
 * Release: `release(handle)` frees everything the handle holds and deletes it; again, it finds
 * nothing and returns []. `releaseAddress` frees one address, optionally only if it is still
 * held by a handle and allocation sequence number (a stale release is a no-op). Empty blocks go
 * back to the pool only when `releaseEmptyBlocks` saw them empty, unchanged, on two consecutive
 * calls, and a node keeps at least one block per family. `reclaim` applies reclaim.ts's plan.
 *
 * Departures from Calico, and why:
 * - Blocks are claimed in address order, not from a start point hashed from the node name
 *   (Calico's `RandomBlockGenerator`): deterministic, testable, and the CAS on block create
 *   resolves the contention the hash only spreads.
 * - A new block's sequence number starts at the clock (ms), so sequence numbers keep growing
 *   across a block deleted and claimed again, and a stale release from the old incarnation does
 *   not match an allocation in the new one.
 * - Borrowing skips `podCIDR` pools: there a node's addresses come from its podCIDR only.
 * - Nothing is borrowed from another node's block of one address (/32, /128): the borrower's
 *   host route would be as long as the block's route, and the two nodes would tie for it.
 * - A block's affinity never changes while the block exists: it is released only empty. Clean-up
 *   after a deleted node (Calico's kube-controllers clear its affinities, even from blocks that
 *   still hold addresses) is the agent's controller's job and is not here.
 *
 * Pure over its inputs: no Node I/O, no timers; time comes from `clock`.
 */
import {
  type Datastore,
  type DatastoreError,
  isDatastoreError,
  type ObjectKey,
  type StoredObject,
  TWILL_API_VERSION,
} from '../datastore/types.js';
import * as alloc from './allocations.js';
import {
  addressAt,
  affinityName,
  blockCount,
  blockName,
  type Cidr,
  compareCidr,
  contains,
  containsAddress,
  type Family,
  familyBits,
  formatCidr,
  nthBlock,
  ordinalOf,
  overlaps,
  parseAddress,
  parseCidr,
} from './blocks.js';
import {
  affinityOf,
  type BlockAffinitySpec,
  blockSizeProblem,
  FieldError,
  IPAM_CONFIG_NAME,
  type IPAMBlockSpec,
  type IPAMConfigSpec,
  type IPAMHandleSpec,
  IpamError,
  isObjectName,
  type ParsedBlock,
  type ParsedPool,
  validateAffinity,
  validateBlock,
  validateConfig,
  validateHandle,
  validatePools,
} from './model.js';
import { type LeakCandidate, planReclaim } from './reclaim.js';
import { nodeSelectorMatches } from './selector.js';

export interface Clock {
  /** Milliseconds; only differences and order matter. */
  now(): number;
}

export interface AllocatorOptions {
  store: Datastore;
  clock: Clock;
  /** How many times an operation restarts after a Conflict before it gives up (default 20). */
  maxRetries?: number;
  /**
   * Waits before attempt `attempt + 1` after a Conflict, so allocators racing for one block do
   * not race again in step. The agent passes a jittered exponential sleep (`jitteredBackoff` in
   * datastore/backoff.ts, as client-go's RetryOnConflict); absent, attempts follow at once (tests).
   */
  backoff?: (attempt: number) => Promise<void>;
  /** Told about every invalid object the allocator skipped (each error names object and field). */
  onInvalid?: (errors: readonly FieldError[]) => void;
  /**
   * What a watch of the store last saw (the agent's), for the common assign: see `ReadCache`.
   * Absent, every read is the store's.
   */
  cache?: ReadCache;
}

/**
 * The store's objects as a watch last saw them: possibly stale, so the allocator only uses them
 * for writes that are compare-and-swap on what they show (a stale read is a Conflict, and the
 * attempt is made again from the store's reads). `null`: the cache does not know (a kind it does
 * not watch, or not in sync yet).
 */
export interface ReadCache {
  get(key: ObjectKey): StoredObject | undefined | null;
  list(kind: ObjectKey['kind']): readonly StoredObject[] | null;
  /** An object this allocator wrote, as the store returned it: newer than the watch for a while. */
  wrote?(object: StoredObject): void;
}

export interface AssignRequest {
  handle: string;
  node: string;
  family: Family;
  /** The pod the address is for (leaked-address reclamation needs both). */
  namespace?: string;
  pod?: string;
}

export interface Assignment {
  address: string;
  family: Family;
  /** The block's CIDR. */
  block: string;
  /** The allocation's sequence number; give it to `releaseAddress` to make a release exact. */
  sequenceNumber: number;
  /** The block is affine to another node (or none): the node originates a host route for it. */
  borrowed: boolean;
}

export interface Released {
  address: string;
  block: string;
}

interface Affinity {
  object: StoredObject;
  spec: BlockAffinitySpec;
  cidr: Cidr;
}

interface Context {
  node: string;
  family: Family;
  config: Required<IPAMConfigSpec>;
  /** Valid, enabled pools of the family whose selector takes the node. */
  pools: ParsedPool[];
  labels: Record<string, string>;
  podCIDRs: string[];
  /** Why there is nothing to hand out, for the Exhausted message. */
  notes: string[];
}

/** Restart the operation from fresh reads (the store changed under us). */
function retry(message: string): never {
  throw Object.assign(new Error(message), { ipamRetry: true });
}

function isRetryable(e: unknown): boolean {
  return (
    isDatastoreError(e, 'Conflict') ||
    isDatastoreError(e, 'NotFound') ||
    isDatastoreError(e, 'AlreadyExists') ||
    (e instanceof Error && (e as { ipamRetry?: boolean }).ipamRetry === true)
  );
}

const key = (kind: ObjectKey['kind'], name: string): ObjectKey => ({ kind, name });

export class Allocator {
  private readonly store: Datastore;
  private readonly clock: Clock;
  private readonly maxRetries: number;
  private readonly backoff: ((attempt: number) => Promise<void>) | undefined;
  private readonly onInvalid: (errors: readonly FieldError[]) => void;
  private readonly cache: ReadCache | undefined;
  /** Assigns so far, by where their reads came from: the cache's watch or the store. */
  readonly assigns = { watch: 0, store: 0 };
  /** Node -> block name -> resourceVersion at which `releaseEmptyBlocks` last saw it empty. */
  private readonly emptySeen = new Map<string, Map<string, string>>();
  /** The last reclamation plan's observations. */
  private leakSeen = new Map<string, LeakCandidate>();

  constructor(options: AllocatorOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.maxRetries = options.maxRetries ?? 20;
    this.backoff = options.backoff;
    this.onInvalid = options.onInvalid ?? (() => {});
    this.cache = options.cache;
  }

  // -------------------------------------------------------------------------------------------
  // Assign

  async assign(req: AssignRequest): Promise<Assignment> {
    const errors = [...validateHandle(req.handle)];
    if (!isObjectName(req.node))
      errors.push(new FieldError('assign', 'node', `${JSON.stringify(req.node)} is not a node name`));
    if (req.family !== 4 && req.family !== 6)
      errors.push(new FieldError('assign', 'family', `${JSON.stringify(req.family)} is not 4 or 6`));
    if (errors.length > 0) throw new IpamError('Invalid', 'cannot assign', errors);
    let first = true;
    return this.retrying(`assign ${req.handle}`, async () => {
      if (first && this.cache) {
        first = false;
        try {
          const a = await this.assignFromCache(req, this.cache);
          if (a) {
            this.assigns.watch++;
            return a;
          }
        } catch (e) {
          // A stale read, or a handle that exists: the store's reads below, without a backoff.
          if (!isRetryable(e)) throw e;
        }
      }
      const a = await this.assignOnce(req);
      this.assigns.store++;
      return a;
    });
  }

  /**
   * The common assign in two writes and no read: a new handle, and an address in one of the
   * node's confirmed blocks, the blocks, affinities, pools, config and Node as the cache has them.
   * The handle is created, not read first: one that exists (a retried ADD, or the handle's other
   * family) fails the create with AlreadyExists, and the caller goes the long way, which finds
   * what it holds. A block newer in the store than in the cache fails the block's update with a
   * Conflict likewise; the handle, already listing the block, is then the long way's to update.
   * Anything less common (no confirmed block with room, a claim or release to finish, pools that
   * overlap, anything the cache does not know) returns undefined: the long way too.
   */
  private async assignFromCache(req: AssignRequest, cache: ReadCache): Promise<Assignment | undefined> {
    const configObj = cache.get(key('IPAMConfig', IPAM_CONFIG_NAME));
    const poolObjs = cache.list('IPPool');
    const nodeObj = cache.get(key('Node', req.node));
    const affinityObjs = cache.list('BlockAffinity');
    if (configObj === null || poolObjs === null || nodeObj === null || affinityObjs === null)
      return undefined;
    const ctx = this.contextOf(req.node, req.family, configObj, poolObjs, nodeObj);
    if (ctx === undefined) return undefined;
    const affinities: Affinity[] = [];
    for (const o of affinityObjs) {
      const spec = o.spec as BlockAffinitySpec | undefined;
      if (spec?.node !== req.node) continue;
      const a = this.parseAffinity(o);
      if (!a || a.cidr.family !== req.family) continue;
      if (a.spec.state !== 'confirmed') return undefined;
      affinities.push(a);
    }
    affinities.sort((x, y) => compareCidr(x.cidr, y.cidr));
    for (const a of affinities) {
      if (!ctx.pools.some((p) => contains(p.cidr, a.cidr))) continue;
      const o = cache.get(key('IPAMBlock', blockName(a.cidr)));
      if (o === null) return undefined;
      if (!o) continue;
      const b = validateBlock(o).block;
      if (!b) return undefined; // the long way reports it
      if (b.object.spec!.affinity === affinityOf(req.node) && alloc.freeCount(b.object.spec!) > 0)
        return this.allocateIn(b, req, false, { object: undefined });
    }
    return undefined;
  }

  private async assignOnce(req: AssignRequest): Promise<Assignment> {
    // Everything the common case needs is read at once: one round trip to the store, not four.
    const ofNode = (all: Affinity[]) =>
      all.filter((a) => a.spec.node === req.node && a.cidr.family === req.family);
    const [handleObj, ctx, allAffinities] = await Promise.all([
      this.store.get(key('IPAMHandle', req.handle)),
      this.context(req.node, req.family),
      this.affinities(),
    ]);
    // 1. What the handle already holds.
    const held = await this.heldBy(req.handle, req.family, handleObj);
    if (held) return held;
    const handle = { object: handleObj };
    let affinities = ofNode(allAffinities);
    if (affinities.some((a) => a.spec.state !== 'confirmed')) {
      // Claims and releases a crash interrupted: finish them, then look again. (A release still
      // under way elsewhere ends the same way: the block goes if empty, else is confirmed again.)
      for (const a of affinities) {
        if (a.spec.state === 'pending') await this.finishClaim(a, ctx);
        else if (a.spec.state === 'pendingDeletion') await this.finishRelease(a);
      }
      affinities = ofNode(await this.affinities());
    }

    // 2. The node's confirmed blocks.
    const usable = (c: Cidr) => ctx.pools.some((p) => contains(p.cidr, c));
    for (const a of affinities.filter((x) => x.spec.state === 'confirmed' && usable(x.cidr))) {
      const b = await this.block(a.cidr);
      if (b && b.object.spec!.affinity === affinityOf(req.node) && alloc.freeCount(b.object.spec!) > 0)
        return this.allocateIn(b, req, false, handle);
    }

    // 3. A new block.
    const max = ctx.config.maxBlocksPerHost;
    if (max > 0 && affinities.length >= max) {
      ctx.notes.push(`node ${req.node} holds maxBlocksPerHost (${max}) IPv${req.family} blocks`);
    } else {
      const cidr = await this.nextFreeBlock(ctx);
      if (cidr) {
        const b = await this.claim(cidr, ctx);
        return this.allocateIn(b, req, false, handle);
      }
    }

    // 4. Borrow.
    if (ctx.config.strictAffinity) {
      ctx.notes.push('strictAffinity forbids borrowing from other nodes');
    } else {
      const blocksPools = ctx.pools.filter((p) => p.mode === 'blocks');
      const candidates = (await this.blocks())
        .filter((b) => b.cidr.family === req.family && blocksPools.some((p) => contains(p.cidr, b.cidr)))
        .filter((b) => alloc.freeCount(b.object.spec!) > 0)
        .filter(
          (b) => b.cidr.len < familyBits(req.family) || b.object.spec!.affinity === affinityOf(req.node),
        );
      // The node's own confirmed blocks are full (step 2), so a block here is another node's,
      // or none's, or the node's own without a confirmed affinity (left by hand).
      const b = candidates[0];
      if (b) return this.allocateIn(b, req, b.object.spec!.affinity !== affinityOf(req.node), handle);
    }
    throw new IpamError(
      'Exhausted',
      `no IPv${req.family} address for node ${req.node}${ctx.notes.length > 0 ? ` (${ctx.notes.join('; ')})` : ''}`,
    );
  }

  /** The address `handle` (its object as read, `h`) already holds in `family`, if any. */
  private async heldBy(
    handle: string,
    family: Family,
    h: StoredObject | undefined,
  ): Promise<Assignment | undefined> {
    if (!h) return undefined;
    for (const text of (h.spec as IPAMHandleSpec).blocks ?? []) {
      let cidr: Cidr;
      try {
        cidr = parseCidr(text);
      } catch {
        continue;
      }
      if (cidr.family !== family) continue;
      const b = await this.block(cidr);
      if (!b) continue;
      const spec = b.object.spec!;
      const [ordinal] = alloc.ordinalsOf(spec, handle);
      if (ordinal === undefined) continue;
      return {
        address: addressAt(b.cidr, ordinal),
        family,
        block: spec.cidr,
        sequenceNumber: alloc.sequenceAt(spec, ordinal) ?? 0,
        borrowed: spec.affinity !== affinityOf(alloc.attributesAt(spec, ordinal)!.node),
      };
    }
    return undefined;
  }

  /**
   * Handle first (so the address is findable from it), then the block, both compare-and-swap.
   * `handle.object` is the handle as this attempt read it (absent: not there); a stale read is a
   * Conflict or AlreadyExists, and the attempt starts again.
   */
  private async allocateIn(
    b: ParsedBlock,
    req: AssignRequest,
    borrowed: boolean,
    handle: { object: StoredObject | undefined },
  ): Promise<Assignment> {
    const spec = b.object.spec!;
    await this.addBlockToHandle(req.handle, spec.cidr, handle.object);
    const attrs = {
      handle: req.handle,
      node: req.node,
      ...(req.namespace !== undefined && req.pod !== undefined
        ? { namespace: req.namespace, pod: req.pod }
        : {}),
    };
    const r = alloc.allocate(spec, attrs);
    if (!r) retry('block filled up');
    const written = await this.store.update({ ...b.object, spec: r.spec });
    this.cache?.wrote?.(written);
    return {
      address: addressAt(b.cidr, r.ordinal),
      family: b.cidr.family,
      block: spec.cidr,
      sequenceNumber: r.sequenceNumber,
      borrowed,
    };
  }

  private async addBlockToHandle(handle: string, cidr: string, h: StoredObject | undefined): Promise<void> {
    if (!h) {
      const spec: IPAMHandleSpec = { handleID: handle, blocks: [cidr] };
      await this.store.create({
        apiVersion: TWILL_API_VERSION,
        kind: 'IPAMHandle',
        metadata: { name: handle },
        spec,
      });
      return;
    }
    const spec = h.spec as IPAMHandleSpec;
    const blocks = Array.isArray(spec?.blocks) ? spec.blocks : [];
    if (blocks.includes(cidr)) return;
    await this.store.update({ ...h, spec: { handleID: handle, blocks: [...blocks, cidr] } });
  }

  /** Config, pools and the node's labels and podCIDRs. */
  private async context(node: string, family: Family): Promise<Context> {
    const [configObj, poolObjs, nodeObj] = await Promise.all([
      this.store.get(key('IPAMConfig', IPAM_CONFIG_NAME)),
      this.store.list('IPPool'),
      this.store.get(key('Node', node)),
    ]);
    return (
      this.contextOf(node, family, configObj, poolObjs, nodeObj) ??
      // Which of two overlapping pools stays may depend on their blocks: only then list them.
      this.contextOf(node, family, configObj, poolObjs, nodeObj, await this.existingBlocks())!
    );
  }

  /** The context from objects read; undefined when pools overlap and `blocks` was not given. */
  private contextOf(
    node: string,
    family: Family,
    configObj: StoredObject | undefined,
    poolObjs: readonly StoredObject[],
    nodeObj: StoredObject | undefined,
    blocks?: Cidr[],
  ): Context | undefined {
    const { config, errors: configErrors } = validateConfig(configObj);
    const { pools, errors, overlapping } = validatePools(poolObjs, blocks);
    if (overlapping && blocks === undefined) return undefined;
    if (configErrors.length + errors.length > 0) this.onInvalid([...configErrors, ...errors]);
    const notes = errors.map(String);
    const meta = nodeObj?.metadata;
    const labels = meta?.labels ?? {};
    const nodeSpec = (nodeObj?.spec ?? {}) as { podCIDR?: unknown; podCIDRs?: unknown };
    const podCIDRs = Array.isArray(nodeSpec.podCIDRs)
      ? nodeSpec.podCIDRs.filter((c): c is string => typeof c === 'string')
      : typeof nodeSpec.podCIDR === 'string'
        ? [nodeSpec.podCIDR]
        : [];
    const ofFamily = pools.filter((p) => p.cidr.family === family);
    if (ofFamily.length === 0) notes.push(`no valid IPv${family} IPPool`);
    const usable = ofFamily.filter((p) => !p.disabled && nodeSelectorMatches(p.selector, labels));
    if (ofFamily.length > 0 && usable.length === 0)
      notes.push(`no enabled IPv${family} IPPool selects node ${node}`);
    return { node, family, config, pools: usable, labels, podCIDRs, notes };
  }

  /** The lowest-addressed block of the first usable pool that overlaps no existing block. */
  private async nextFreeBlock(ctx: Context): Promise<Cidr | undefined> {
    const existing = (await this.existingBlocks()).filter((c) => c.family === ctx.family);
    const taken = (c: Cidr) => existing.some((e) => overlaps(e, c));
    for (const pool of ctx.pools) {
      if (pool.mode === 'podCIDR') {
        const c = this.podCIDRIn(pool, ctx);
        if (c && !taken(c)) return c;
        if (c)
          ctx.notes.push(`the podCIDR ${formatCidr(c)} of node ${ctx.node} is full or another node's block`);
        continue;
      }
      const n = blockCount(pool.cidr, pool.blockSize);
      // Existing blocks are few next to the pool: skip past each taken block in turn.
      for (let k = 0n; k < n; k++) {
        const c = nthBlock(pool.cidr, pool.blockSize, k);
        if (!taken(c)) return c;
      }
      ctx.notes.push(`IPPool ${pool.name} has no free block`);
    }
    return undefined;
  }

  /** Every block's CIDR, valid or not (a new block must overlap none of them), lowest first. */
  private async existingBlocks(): Promise<Cidr[]> {
    return (await this.store.list('IPAMBlock'))
      .flatMap((o) => {
        try {
          return [parseCidr(String((o.spec as IPAMBlockSpec | undefined)?.cidr))];
        } catch {
          return [];
        }
      })
      .sort(compareCidr);
  }

  /** The node's podCIDR in a podCIDR-mode pool, or undefined with a note saying why not. */
  private podCIDRIn(pool: ParsedPool, ctx: Context): Cidr | undefined {
    for (const [i, text] of ctx.podCIDRs.entries()) {
      let c: Cidr;
      try {
        c = parseCidr(text);
      } catch (e) {
        this.report(new FieldError(`Node ${ctx.node}`, `spec.podCIDRs[${i}]`, (e as Error).message));
        continue;
      }
      if (!contains(pool.cidr, c)) continue;
      const why = blockSizeProblem(c);
      if (why) {
        const fe = new FieldError(`Node ${ctx.node}`, `spec.podCIDRs[${i}]`, why);
        this.report(fe);
        ctx.notes.push(String(fe));
        continue;
      }
      return c;
    }
    ctx.notes.push(
      `Node ${ctx.node} has no spec.podCIDRs entry in IPPool ${pool.name} (${formatCidr(pool.cidr)})`,
    );
    return undefined;
  }

  /** Claim a block: affinity pending, block with our affinity, affinity confirmed. */
  private async claim(cidr: Cidr, ctx: Context): Promise<ParsedBlock> {
    const name = affinityName(ctx.node, cidr);
    if (!isObjectName(name))
      throw new IpamError('Invalid', 'cannot claim a block', [
        new FieldError(
          `BlockAffinity ${name}`,
          'metadata.name',
          'is longer than 253 characters (node name + block)',
        ),
      ]);
    const existing = await this.store.get(key('BlockAffinity', name));
    if (existing) {
      // Our own affinity left by an earlier attempt: finish or clear it, then start again.
      // Or one another allocator on this node just confirmed: then the block exists, and the
      // next attempt finds it. A confirmed affinity without its block was left by hand: it goes.
      const a = this.parseAffinity(existing);
      if (a?.spec.state === 'pendingDeletion') await this.finishRelease(a);
      else if (a?.spec.state === 'pending') await this.finishClaim(a, ctx);
      else if (!(await this.store.get(key('IPAMBlock', blockName(cidr)))))
        await this.deleteIfUnchanged('BlockAffinity', existing);
      retry('found an earlier affinity for this block');
    }
    const spec: BlockAffinitySpec = { node: ctx.node, cidr: formatCidr(cidr), state: 'pending' };
    const created = await this.store.create({
      apiVersion: TWILL_API_VERSION,
      kind: 'BlockAffinity',
      metadata: { name },
      spec,
    });
    const b = await this.finishClaim({ object: created, spec, cidr }, ctx);
    if (!b) retry('another node claimed the block first');
    return b;
  }

  /**
   * Take a `pending` affinity forward: create the block with our affinity (or find it already
   * ours), then confirm. If another node owns the block, or the block's pool no longer takes this
   * node, delete the pending affinity instead. Returns the block when confirmed.
   */
  private async finishClaim(a: Affinity, ctx: Context): Promise<ParsedBlock | undefined> {
    if (a.spec.state !== 'pending') return undefined;
    const mine = affinityOf(a.spec.node);
    let b = await this.block(a.cidr);
    const stillWanted = ctx.pools.some((p) => contains(p.cidr, a.cidr));
    if (!b && stillWanted) {
      const created = await this.store.create({
        apiVersion: TWILL_API_VERSION,
        kind: 'IPAMBlock',
        metadata: { name: blockName(a.cidr) },
        spec: {
          ...alloc.newBlockSpec(a.cidr, mine),
          sequenceNumber: Math.max(0, Math.floor(this.clock.now())),
        },
      });
      b = { object: created as ParsedBlock['object'], cidr: a.cidr };
    }
    if (!b || b.object.spec!.affinity !== mine) {
      await this.deleteIfUnchanged('BlockAffinity', a.object);
      return undefined;
    }
    await this.store.update({ ...a.object, spec: { ...a.spec, state: 'confirmed' } });
    return b;
  }

  // -------------------------------------------------------------------------------------------
  // Release

  /** Free every address `handle` holds and delete the handle. Idempotent. */
  async release(handle: string): Promise<Released[]> {
    if (!isObjectName(handle)) return [];
    const released: Released[] = [];
    await this.retrying(`release ${handle}`, async () => {
      const h = await this.store.get(key('IPAMHandle', handle));
      if (!h) return;
      const blocks = (h.spec as IPAMHandleSpec | undefined)?.blocks ?? [];
      for (const text of blocks) {
        let cidr: Cidr;
        try {
          cidr = parseCidr(text);
        } catch {
          continue;
        }
        const obj = await this.store.get(key('IPAMBlock', blockName(cidr)));
        if (!obj) continue;
        const b = this.parseBlockOrThrow(obj, `release ${handle}`);
        const r = alloc.release(b.object.spec!, (_o, attrs) => attrs.handle === handle);
        if (r.released.length === 0) continue;
        await this.store.update({ ...b.object, spec: r.spec });
        for (const o of r.released) released.push({ address: addressAt(b.cidr, o), block: r.spec.cidr });
      }
      await this.deleteIfUnchanged('IPAMHandle', h);
    });
    return released;
  }

  /**
   * Free one address. With `handle` and/or `sequenceNumber`, only if the allocation still
   * matches them (a stale release is a no-op). Returns whether it freed the address.
   * The handle object keeps naming the block; `release(handle)` tidies it.
   */
  async releaseAddress(
    address: string,
    options: { handle?: string; sequenceNumber?: number } = {},
  ): Promise<boolean> {
    let parsed: ReturnType<typeof parseAddress>;
    try {
      parsed = parseAddress(address);
    } catch (e) {
      throw new IpamError('Invalid', 'cannot release', [
        new FieldError('releaseAddress', 'address', (e as Error).message),
      ]);
    }
    return this.retrying(`release ${address}`, async () => {
      const obj = (await this.store.list('IPAMBlock')).find((o) => {
        try {
          return containsAddress(
            parseCidr(String((o.spec as IPAMBlockSpec | undefined)?.cidr)),
            parsed.family,
            parsed.value,
          );
        } catch {
          return false;
        }
      });
      if (!obj) return false;
      const b = this.parseBlockOrThrow(obj, `release ${address}`);
      const ordinal = ordinalOf(b.cidr, parsed.family, parsed.value)!;
      const r = alloc.release(
        b.object.spec!,
        (o, attrs, seq) =>
          o === ordinal &&
          (options.handle === undefined || attrs.handle === options.handle) &&
          (options.sequenceNumber === undefined || seq === options.sequenceNumber),
      );
      if (r.released.length === 0) return false;
      await this.store.update({ ...b.object, spec: r.spec });
      return true;
    });
  }

  /**
   * Release the node's empty blocks: a block goes when this call and the one before both saw it
   * empty at the same resourceVersion; the node keeps at least one block per family. Also
   * finishes releases a crash interrupted. Returns the released blocks' CIDRs.
   */
  async releaseEmptyBlocks(node: string): Promise<string[]> {
    if (!isObjectName(node)) return [];
    const released: string[] = [];
    // The previous call's sightings: a retry within this call is not a second sighting.
    const seenBefore = this.emptySeen.get(node) ?? new Map<string, string>();
    await this.retrying(`release empty blocks of ${node}`, async () => {
      const mine = (await this.affinities()).filter((a) => a.spec.node === node);
      for (const a of mine) if (a.spec.state === 'pendingDeletion') await this.finishRelease(a);
      const confirmed = mine.filter((a) => a.spec.state === 'confirmed');
      const seenNow = new Map<string, string>();
      const candidates: { a: Affinity; b: ParsedBlock }[] = [];
      for (const a of confirmed) {
        const b = await this.block(a.cidr);
        if (!b || b.object.spec!.affinity !== affinityOf(node) || !alloc.isEmpty(b.object.spec!)) continue;
        const name = blockName(a.cidr);
        const rv = b.object.metadata.resourceVersion ?? '';
        seenNow.set(name, rv);
        if (seenBefore.get(name) === rv) candidates.push({ a, b });
      }
      this.emptySeen.set(node, seenNow);
      for (const family of [4, 6] as const) {
        const all = confirmed.filter((a) => a.cidr.family === family).length;
        const go = candidates.filter((c) => c.a.cidr.family === family);
        // Keep at least one block: the lowest-addressed of the empty ones stays.
        if (go.length >= all) go.sort((x, y) => compareCidr(x.a.cidr, y.a.cidr)).shift();
        for (const { a, b } of go) {
          seenNow.delete(blockName(a.cidr));
          if (await this.releaseBlock(a, b)) released.push(formatCidr(a.cidr));
        }
      }
    });
    return released;
  }

  /** pendingDeletion, delete the block at the version seen empty, delete the affinity. */
  private async releaseBlock(a: Affinity, b: ParsedBlock): Promise<boolean> {
    const marked = await this.store.update({ ...a.object, spec: { ...a.spec, state: 'pendingDeletion' } });
    return this.finishRelease({ ...a, object: marked, spec: marked.spec as BlockAffinitySpec }, b);
  }

  /**
   * Take a `pendingDeletion` affinity forward: delete the block if it is still ours and empty
   * (at `seen`'s version when given), then the affinity; if the block holds addresses again,
   * the affinity goes back to `confirmed`. Returns whether the block is gone.
   */
  private async finishRelease(a: Affinity, seen?: ParsedBlock): Promise<boolean> {
    const b = seen ?? (await this.block(a.cidr));
    if (b && b.object.spec!.affinity === affinityOf(a.spec.node)) {
      if (!alloc.isEmpty(b.object.spec!)) {
        await this.store.update({ ...a.object, spec: { ...a.spec, state: 'confirmed' } });
        return false;
      }
      try {
        await this.store.delete(key('IPAMBlock', b.object.metadata.name), {
          resourceVersion: b.object.metadata.resourceVersion,
        });
      } catch (e) {
        if (!isDatastoreError(e, 'Conflict')) throw e;
        // An allocation came in after we saw the block empty: keep it.
        const now = await this.block(a.cidr);
        if (now && !alloc.isEmpty(now.object.spec!)) {
          await this.store.update({ ...a.object, spec: { ...a.spec, state: 'confirmed' } });
          return false;
        }
        retry('block changed while being released');
      }
    }
    await this.deleteIfUnchanged('BlockAffinity', a.object);
    return true;
  }

  // -------------------------------------------------------------------------------------------
  // Leaked addresses

  /**
   * Plan (reclaim.ts) and apply: release addresses whose pod is not in `pods` and has not been
   * for `gracePeriodMs`; with `node`, only allocations that node made. Returns what was released.
   */
  async reclaimLeaked(
    pods: ReadonlySet<string>,
    gracePeriodMs: number,
    node?: string,
  ): Promise<LeakCandidate[]> {
    const blocks = (await this.blocks()).map((b) => b.object.spec!);
    const plan = planReclaim({
      blocks,
      pods,
      now: this.clock.now(),
      gracePeriodMs,
      seen: this.leakSeen,
      ...(node === undefined ? {} : { node }),
    });
    this.leakSeen = plan.seen;
    return this.reclaim(plan.reclaim);
  }

  /** Apply a reclamation plan: each address only if its handle and sequence number still match. */
  async reclaim(items: readonly LeakCandidate[]): Promise<LeakCandidate[]> {
    const done: LeakCandidate[] = [];
    for (const c of items) {
      if (await this.releaseAddress(c.address, { handle: c.handle, sequenceNumber: c.sequenceNumber }))
        done.push(c);
    }
    return done;
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /** CIDRs of the node's confirmed blocks, lowest first. */
  async claimedBlocks(node: string): Promise<string[]> {
    return (await this.affinities())
      .filter((a) => a.spec.node === node && a.spec.state === 'confirmed')
      .sort((x, y) => compareCidr(x.cidr, y.cidr))
      .map((a) => formatCidr(a.cidr));
  }

  /** Every valid block, lowest first; invalid ones are reported and left out. */
  async blocks(): Promise<ParsedBlock[]> {
    const out: ParsedBlock[] = [];
    for (const o of await this.store.list('IPAMBlock')) {
      const r = validateBlock(o);
      if (r.block) out.push(r.block);
      else this.onInvalid(r.errors);
    }
    return out.sort((x, y) => compareCidr(x.cidr, y.cidr));
  }

  private async affinities(): Promise<Affinity[]> {
    const out: Affinity[] = [];
    for (const o of await this.store.list('BlockAffinity')) {
      const a = this.parseAffinity(o);
      if (a) out.push(a);
    }
    return out.sort((x, y) => compareCidr(x.cidr, y.cidr));
  }

  private parseAffinity(o: StoredObject): Affinity | undefined {
    const errors = validateAffinity(o);
    if (errors.length > 0) {
      this.onInvalid(errors);
      return undefined;
    }
    const spec = o.spec as BlockAffinitySpec;
    return { object: o, spec, cidr: parseCidr(spec.cidr) };
  }

  /** The valid block with this CIDR; undefined when absent or invalid (reported). */
  private async block(cidr: Cidr): Promise<ParsedBlock | undefined> {
    const o = await this.store.get(key('IPAMBlock', blockName(cidr)));
    if (!o) return undefined;
    const r = validateBlock(o);
    if (!r.block) this.onInvalid(r.errors);
    return r.block;
  }

  private parseBlockOrThrow(o: StoredObject, what: string): ParsedBlock {
    const r = validateBlock(o);
    if (!r.block)
      throw new IpamError('Invalid', `${what}: the block is invalid and is left as it is`, r.errors);
    return r.block;
  }

  private report(e: FieldError): void {
    this.onInvalid([e]);
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  private async deleteIfUnchanged(kind: ObjectKey['kind'], o: StoredObject): Promise<void> {
    try {
      await this.store.delete(key(kind, o.metadata.name), { resourceVersion: o.metadata.resourceVersion });
    } catch (e) {
      if (!isDatastoreError(e, 'NotFound')) throw e;
    }
  }

  private async retrying<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await attempt();
      } catch (e) {
        if (!isRetryable(e)) throw e;
        if (i >= this.maxRetries)
          throw new IpamError(
            'Conflict',
            `${what}: the store kept changing; gave up after ${i + 1} attempts (${(e as DatastoreError).message})`,
          );
        if (this.backoff) await this.backoff(i);
      }
    }
  }
}
