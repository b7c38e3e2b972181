/**
 * The node agent: one process per node that does what calico-node's BIRD, confd and Felix do
 * together (DESIGN.md "How data flows"). It is the composition root of the parts below it:
 *
 *   datastore watches ──> desired.ts (pure) ──> speaker.setNeighbors / setOriginated
 *                                          ├──> route reconciler: `pods`, `blocks` owners
 *                                          └──> policy compiler -> iptables (PolicyTable)
 *   speaker.onRoutes ──────────────────────────> route reconciler: `bgp` owner
 *   CNI socket ──> CniHandler over the Allocator (this node's IPAM; the common assign reads
 *                  the watches' objects, ipam/read-cache.ts)
 *
 * Start-up, in order:
 * 1. Open the datastore. Register this node: find its Node object (the file datastore gets one
 *    made; on Kubernetes the kubelet made it), resolve the BGP address (config.ts autodetection),
 *    and publish address, AS and port as Node annotations (desired.ts). An unreachable datastore
 *    is retried with a jittered backoff, logged each time, and nothing in the kernel is touched.
 * 2. Create the default IP pool from --pool-cidr if there is no pool at all.
 * 3. Look at the kernel: routes with our protocol (84) mean this is a restart, so the speaker
 *    starts as a restarting graceful-restart speaker (RFC 4724 R bit, deferral) and the route
 *    reconciler adopts those routes instead of re-adding them.
 * 4. Watch every kind it needs. Once each has delivered its snapshot (in sync): warm a pod
 *    block's path once over scratch parts (warmup.ts), start the speaker with the neighbors and
 *    originated blocks, the route reconciler with the `pods` and
 *    `blocks` routes, the policy table, and tell the CNI handler it is ready. (IPAMConfig is
 *    watched for the allocator's reads only, and not waited for.) A watch that fails later is
 *    started again after 1 s, doubling to 30 s (the Kubernetes store retries its own with
 *    backoff and says so through onRetry); a warning is logged the first time and when the
 *    error changes, and `status()` (`watchErrors`) and the metrics show it until it works.
 *
 * Live configuration: every later event recomputes only what it can move (desired.ts
 * changeMoves: the neighbors, this node's own part, the policy input; another node's block moves
 * nothing but, once it holds pods, the policy input), coalesced to one recomputation per turn of
 * the event loop, and each output applies only the difference. The
 * speaker's setNeighbors leaves unaffected sessions alone. A change of the cluster's AS,
 * listen port or graceful-restart time (BGPConfiguration) restarts the speaker, since every
 * session depends on it.
 *
 * Restarts lose nothing: the `bgp` owner of the route reconciler is first set once BGP has
 * converged (every neighbor Established and no best-route change for `BGP_SETTLE_MS`, or the
 * graceful-restart time passed), so kernel routes kept from the previous run are not deleted
 * while the speaker relearns them. SIGTERM (`stop`) closes sessions the graceful-restart way
 * (no NOTIFICATION to peers that negotiated it: they keep our routes), leaves kernel routes and
 * iptables rules as they are, and closes the sockets.
 *
 * Also here: the per-node TwillNodeStatus object (sessions, timers, route counts; written
 * `STATUS_SETTLE_MS` after a change rather than in the middle of it, at most every
 * `STATUS_MIN_INTERVAL_MS`, and a change of counts alone once a minute: node-status.ts), the
 * local API on a unix socket (`/status`, `/routes`, `/ipam`), and the health port (health.ts)
 * with the metrics (metrics.ts).
 *
 * On Kubernetes, addresses this node allocated for pods that no longer exist (the runtime never
 * sent DEL: a crash, lost kubelet state) are released once leaked for --ipam-leak-grace (15
 * minutes by default), checked every minute or half the grace if shorter (ipam/reclaim.ts; Calico's kube-controllers do the same cluster-wide).
 *
 * The CNI endpoint also wires each new IPv4 pod's host side when the plugin asks (cni/host-wiring.ts:
 * the veth up, its route and neighbour entry, its sysctls), over a netlink socket of its own.
 *
 * Empty blocks go back to the pool: every --ipam-empty-block-release (5 minutes by default) the
 * agent asks the allocator to release this node's blocks seen empty and unchanged twice in a
 * row, keeping one per family.
 *
 * Not here (yet): IPv6 node addresses.
 */
import { dirname } from 'node:path';
import type { Server } from 'node:http';
import { serveApi } from '../api/http.js';
import type { RouteChange } from '../bgp/best-routes.js';
import { type Clock, systemClock, type TimerHandle } from '../bgp/clock.js';
import type { NeighborConfig, SpeakerConfig } from '../bgp/config.js';
import { withoutYoungGrowthAsync } from '../bgp/release-memory.js';
import { Speaker, type SpeakerOptions } from '../bgp/speaker.js';
import type { SpeakerStatus } from '../bgp/status.js';
import { wireHostSide } from '../cni/host-wiring.js';
import { type AttachmentEvent, CniHandler, CniServer } from '../cni/server.js';
import type { KernelFactory } from '../dataplane/kernel.js';
import { NetlinkKernel } from '../dataplane/netlink-kernel.js';
import { RTPROT_TWILL, type RouteSpec } from '../dataplane/route-model.js';
import { RouteReconciler } from '../dataplane/routes.js';
import { enableForwarding } from '../dataplane/sysctl.js';
import { type Exec, execLocal, PolicyTable } from '../dataplane/iptables/table.js';
import { jitteredBackoff } from '../datastore/backoff.js';
import { openDatastore } from '../datastore/open.js';
import {
  API_VERSIONS,
  type Datastore,
  DatastoreError,
  isDatastoreError,
  type Kind,
  type StoredObject,
  type WatchHandle,
} from '../datastore/types.js';
import { Allocator } from '../ipam/allocator.js';
import type { BlockAffinitySpec, IPAMBlockSpec } from '../ipam/model.js';
import { affinityOf } from '../ipam/model.js';
import { originated } from '../ipam/originate.js';
import { WatchReadCache } from '../ipam/read-cache.js';
import { ipamReport } from '../ipam/report.js';
import { autodetect } from './autodetect.js';
import type { AgentConfig } from './config.js';
import {
  applyRouteChanges,
  BGP_CONFIGURATION_NAME,
  type BgpGlobal,
  bgpGlobal,
  bgpPeerSpec,
  blockRoutes,
  changeMoves,
  clusterState,
  desiredNeighbors,
  type LocalAddress,
  localAddresses,
  myAnnotations,
  type NeighborKind,
  nodeInfo,
  podRoutes,
} from './desired.js';
import { readiness, serveHealth } from './health.js';
import { AgentMetrics } from './metrics.js';
import {
  NOTHING_WRITTEN,
  nodeStatusBody,
  STATUS_MIN_INTERVAL_MS,
  STATUS_SETTLE_MS,
  statusDue,
  statusTexts,
  type WrittenStatus,
} from './node-status.js';
import { PolicyInput } from './policy-input.js';
import { warmUpBlockPath } from './warmup.js';

export interface AgentLogger {
  trace(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
  child(bindings: Record<string, unknown>): AgentLogger;
}

export interface AgentOptions {
  log: AgentLogger;
  /** The kernel for routes; default netlink in this process's network namespace. */
  kernel?: KernelFactory;
  /** How iptables and ipset run; default here. */
  exec?: Exec;
  clock?: Clock;
  /** Passed to the speaker (tests shorten its timers). */
  speaker?: Omit<SpeakerOptions, 'clock' | 'restarting'>;
  /** A datastore to use instead of opening `config.datastore` (tests). */
  store?: Datastore;
}

/** Kinds the agent watches. */
const WATCHED: readonly Kind[] = [
  'Node',
  'BGPConfiguration',
  'BGPPeer',
  'IPPool',
  'IPAMBlock',
  'BlockAffinity',
  'Namespace',
  'Pod',
  'NetworkPolicy',
];
/**
 * Watched for the allocator's reads only (read-cache.ts), and not waited for: a cluster without
 * the kind's CRD is in sync without it, and its assigns read the store.
 */
const WATCHED_FOR_IPAM: readonly Kind[] = ['IPAMConfig'];

/** A watch that ended is started again after 1 s, doubling per failure in a row up to 30 s. */
export const WATCH_RETRY_MIN_MS = 1_000;
export const WATCH_RETRY_MAX_MS = 30_000;

/** A watch failing now: what `twill status` shows (`watchErrors`). */
export interface WatchTrouble {
  kind: Kind;
  /** The last error, with its code. */
  error: string;
  /** When the failures in a row began (ISO 8601). */
  since: string;
  failures: number;
}

export const BGP_SETTLE_MS = 2_000;
/** Leaked-address reclamation (Kubernetes only): at most this long between two runs. */
export const RECLAIM_EVERY_MS = 60_000;
export const DEFAULT_POOL_NAME = 'default-ipv4-ippool';

function keyOf(o: StoredObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

export class Agent {
  private readonly log: AgentLogger;
  private readonly clock: Clock;
  private store: Datastore | undefined;
  private readonly objects = new Map<Kind, Map<string, StoredObject>>();
  private readonly synced = new Set<Kind>();
  private readonly watches: WatchHandle[] = [];
  private readonly watchTrouble = new Map<Kind, WatchTrouble>();
  private inSync = false;
  private stopping = false;
  private readonly startedAt: number;

  /** The BGP address. */
  address = '';
  private speaker: Speaker | undefined;
  private speakerKey = '';
  private speakerStarting = false;
  private restarting = false;
  private global: BgpGlobal = bgpGlobal(undefined);
  private kinds = new Map<string, NeighborKind>();
  private readonly bgpRoutes = new Map<string, RouteSpec>();
  private bgpReported = false;
  private lastRouteChange = 0;
  private bgpWaitTimer: TimerHandle | undefined;

  private readonly reconciler: RouteReconciler;
  private readonly policy: PolicyTable;
  private policyDirty = true;
  /** The neighbor list, and this node's own part (originated, `pods`, `blocks`): desired.ts Moves. */
  private neighborsDirty = true;
  private localDirty = true;
  private policyApplying = false;
  private dataplaneApplied = false;
  private local: LocalAddress[] = [];
  /** What the speaker was last given to originate; originate() calls, and those still waiting on an apply. */
  private advertised: { speaker: Speaker; prefixes: Set<string> } | undefined;
  private originSeq = 0;
  private originWaits = 0;
  /** The incremental policy compiler's input (made at the first policy apply). */
  private policyInput: PolicyInput | undefined;

  private allocator: Allocator | undefined;
  private cni: { handler: CniHandler; server: CniServer } | undefined;
  /** The netlink socket the CNI endpoint wires pods' host sides through. */
  private cniKernel: NetlinkKernel | undefined;
  private api: Server | undefined;
  private health: Server | undefined;
  readonly metrics: AgentMetrics;

  private recomputeQueued = false;
  private statusTimer: TimerHandle | undefined;
  private statusSoonTimer: TimerHandle | undefined;
  private reclaimTimer: TimerHandle | undefined;
  private emptyBlockTimer: TimerHandle | undefined;
  private lastStatus: WrittenStatus = NOTHING_WRITTEN;

  constructor(
    readonly config: AgentConfig,
    private readonly opts: AgentOptions,
  ) {
    this.log = opts.log;
    this.clock = opts.clock ?? systemClock;
    this.startedAt = this.clock.now();
    for (const k of [...WATCHED, ...WATCHED_FOR_IPAM]) this.objects.set(k, new Map());
    this.metrics = new AgentMetrics(
      {
        speaker: () => this.speaker?.status(),
        ipam: () => this.ipamUse(),
        ipamAssigns: () => this.allocator?.assigns ?? { watch: 0, store: 0 },
        watches: () =>
          Object.fromEntries(
            [...WATCHED, ...WATCHED_FOR_IPAM].map((k) => [k, this.watchTrouble.get(k)?.failures ?? 0]),
          ),
        bfd: () => this.speaker?.bfdStats(),
        routes: () => ({
          pods: podRoutes(this.local).length,
          blocks: this.myBlocks().length,
          bgp: this.bgpRoutes.size,
        }),
      },
      { peerLimit: config.metricsPeerLimit },
    );
    this.reconciler = new RouteReconciler({
      kernel: opts.kernel ?? (() => new NetlinkKernel()),
      clock: this.clock,
      readBackMs: config.routeRefreshMs,
      expectOwners: ['pods', 'blocks', 'bgp'],
      log: this.log.child({ component: 'routes' }),
      onError: (err) => this.log.error({ err: err.message }, 'route apply failed'),
      onApplied: (_s, seconds) => {
        this.metrics.routeApply.observe(seconds);
        if (!this.dataplaneApplied && this.inSync) this.dataplaneApplied = true;
      },
    });
    this.policy = new PolicyTable({
      exec: opts.exec ?? execLocal,
      log: this.log.child({ component: 'policy' }),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  async start(): Promise<void> {
    const c = this.config;
    this.store = this.opts.store ?? (await openDatastore(c.datastore, { kubeconfig: c.kubeconfig }));
    if (c.healthListen) {
      this.health = await serveHealth(c.healthListen, {
        ready: () => this.ready(),
        metrics: async () => ({ contentType: this.metrics.contentType, body: await this.metrics.text() }),
      });
      this.log.info(
        { listen: `${c.healthListen.host}:${c.healthListen.port}` },
        'health and metrics listening',
      );
    }
    await this.retrying('register the node', () => this.registerNode());
    if (c.pool) await this.retrying('create the default IP pool', () => this.ensurePool());
    this.restarting = await this.kernelHasOurRoutes();
    if (this.restarting) this.log.info({}, 'routes of ours in the kernel: restarting (graceful restart)');
    await this.forwarding();

    this.allocator = new Allocator({
      store: this.store,
      clock: { now: () => this.clock.now() },
      backoff: jitteredBackoff(),
      onInvalid: (errors) => this.log.warn({ errors: errors.map(String) }, 'IPAM skipped invalid objects'),
      // The common ADD reads what the watches hold (once in sync) instead of the store.
      cache: new WatchReadCache(
        (kind) => (this.inSync && this.synced.has(kind) ? (this.objects.get(kind) ?? null) : null),
        () => this.clock.now(),
      ),
    });
    const handler = new CniHandler({
      allocator: this.allocator,
      node: c.nodename,
      onAssigned: (e) =>
        this.log.info(
          { pod: `${e.namespace}/${e.pod}`, addresses: e.addresses, veth: e.hostIfname },
          'CNI ADD',
        ),
      onReleased: (e) => this.log.info({ handle: e.handle, released: e.released }, 'CNI DEL'),
      // The host side of each new pod over this agent's netlink socket (host-wiring.ts); with
      // a test's kernel the plugin does it itself.
      ...(this.opts.kernel
        ? {}
        : {
            wireHost: async (e: AttachmentEvent) => {
              const routes = await wireHostSide(
                { kernel: this.wiringKernel(), sysctlRoot: dirname(c.procSysNet) },
                e,
              );
              // The reconciler would otherwise add them again when the block's change comes.
              this.reconciler.noteWritten(routes);
            },
          }),
    });
    const server = new CniServer({
      handler,
      path: c.cniSocket,
      onError: (err) => this.log.warn({ err: err.message }, 'CNI socket'),
    });
    await server.listen();
    this.cni = { handler, server };
    this.api = await serveApi(
      { kind: 'unix', path: c.apiSocket },
      {
        '/status': () => this.status(),
        '/routes': (q) => this.speaker?.routes(q.get('prefix') ?? undefined) ?? [],
        '/ipam': () => this.ipam(),
      },
    );
    this.log.info({ api: c.apiSocket, cni: c.cniSocket }, 'local API and CNI socket listening');

    for (const kind of [...WATCHED, ...WATCHED_FOR_IPAM]) this.watch(kind);
    this.statusTimer = this.clock.every(STATUS_MIN_INTERVAL_MS, () => void this.publishStatus());
    // Pods are the truth about which addresses are in use only on Kubernetes (the file
    // datastore has no Pod objects unless a lab writes them).
    if (c.datastore === 'kubernetes')
      this.reclaimTimer = this.clock.every(
        Math.max(1000, Math.min(RECLAIM_EVERY_MS, c.leakGraceMs / 2)),
        () => void this.reclaim(),
      );
    this.emptyBlockTimer = this.clock.every(c.emptyBlockReleaseMs, () => void this.releaseEmptyBlocks());
  }

  /**
   * Give back this node's blocks that no pod uses: the allocator releases one it has seen empty
   * and unchanged on two runs in a row, and keeps one block per family (allocator.ts). The
   * block's route and blackhole go with the IPAMBlock's deletion, through the watch.
   */
  private async releaseEmptyBlocks(): Promise<void> {
    if (!this.inSync || this.stopping || !this.allocator) return;
    try {
      for (const block of await this.allocator.releaseEmptyBlocks(this.config.nodename))
        this.log.info({ block }, 'released an empty block');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'releasing empty blocks failed; trying again later');
    }
  }

  /** Release addresses this node allocated for pods that no longer exist (reclaim.ts). */
  private async reclaim(): Promise<void> {
    if (!this.inSync || this.stopping || !this.allocator) return;
    const pods = new Set(this.objects.get('Pod')!.keys());
    try {
      const done = await this.allocator.reclaimLeaked(pods, this.config.leakGraceMs, this.config.nodename);
      for (const c of done)
        this.log.warn(
          { address: c.address, pod: `${c.namespace}/${c.pod}` },
          'released a leaked address (its pod is gone)',
        );
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'leaked-address reclamation failed; trying again later');
    }
  }

  /** Stop: graceful-restart-aware close to peers; kernel routes and iptables stay. */
  async stop(reason = 'Twill agent stopped'): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.statusTimer?.cancel();
    this.statusSoonTimer?.cancel();
    this.reclaimTimer?.cancel();
    this.emptyBlockTimer?.cancel();
    this.bgpWaitTimer?.cancel();
    for (const w of this.watches.splice(0)) w.stop();
    this.cni?.handler.setReady(false, 'the agent is stopping');
    await this.speaker?.stop(reason);
    this.reconciler.stop();
    this.reconciler.close();
    this.policy.stopRefresh();
    await this.cni?.server.close();
    this.cniKernel?.close();
    await Promise.all(
      [this.api, this.health].map((s) => (s ? new Promise<void>((r) => s.close(() => r())) : undefined)),
    );
    await this.store?.close();
  }

  /** Retry `fn` while the datastore is unavailable, with a jittered backoff up to 30 s. */
  private async retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const wait = jitteredBackoff(500, 30_000);
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.stopping) throw err;
        if (!isDatastoreError(err, 'Unavailable') && !isDatastoreError(err, 'Conflict')) throw err;
        this.log.warn({ attempt, err: (err as Error).message }, `cannot ${what} yet; retrying`);
        await wait(attempt);
      }
    }
  }

  private async registerNode(): Promise<void> {
    const c = this.config;
    const store = this.store!;
    let node = await store.get({ kind: 'Node', name: c.nodename });
    if (!node) {
      if (c.datastore === 'kubernetes')
        throw new DatastoreError(
          'Unavailable',
          `Node ${c.nodename} does not exist yet (the kubelet registers it)`,
        );
      node = await store.create({
        apiVersion: API_VERSIONS.Node,
        kind: 'Node',
        metadata: { name: c.nodename, labels: { 'kubernetes.io/hostname': c.nodename } },
        spec: {},
      });
    }
    if (c.ip.kind === 'fixed') this.address = c.ip.address;
    else this.address = await autodetect(c.ip.method, nodeInfo(node).internalIP);
    const want = myAnnotations(this.address, c.asn, c.bgpPort);
    const annotations = { ...(node.metadata.annotations ?? {}) };
    for (const [k, v] of Object.entries(want)) {
      if (v === undefined) delete annotations[k];
      else annotations[k] = v;
    }
    if (JSON.stringify(annotations) !== JSON.stringify(node.metadata.annotations ?? {}))
      await store.update({ ...node, metadata: { ...node.metadata, annotations } });
    this.log.info({ address: this.address }, 'node registered');
  }

  private async ensurePool(): Promise<void> {
    const store = this.store!;
    const pools = await store.list('IPPool');
    if (pools.length > 0) return;
    const pool = this.config.pool!;
    try {
      await store.create({
        apiVersion: API_VERSIONS.IPPool,
        kind: 'IPPool',
        metadata: { name: DEFAULT_POOL_NAME },
        spec: { cidr: pool.cidr, blockSize: pool.blockSize, nodeSelector: 'all()' },
      });
      this.log.info({ cidr: pool.cidr, blockSize: pool.blockSize }, 'created the default IP pool');
    } catch (err) {
      if (!isDatastoreError(err, 'AlreadyExists')) throw err;
    }
  }

  private async kernelHasOurRoutes(): Promise<boolean> {
    const k = (this.opts.kernel ?? (() => new NetlinkKernel()))();
    try {
      return (await k.listRoutes()).some((r) => r.protocol === RTPROT_TWILL);
    } finally {
      k.close();
    }
  }

  private async forwarding(): Promise<void> {
    if (this.opts.kernel) return; // a test kernel: not this host's sysctls
    try {
      await enableForwarding({ root: dirname(this.config.procSysNet), ipv4: true });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot enable IP forwarding');
    }
  }

  // -------------------------------------------------------------------------------------------
  // Watches

  private watch(kind: Kind): void {
    const map = this.objects.get(kind)!;
    const handle = this.store!.watch(
      kind,
      (e) => {
        if (e.type === 'synced') {
          // At start, or after the watch started again: everything once more.
          this.watchWorks(kind);
          this.synced.add(kind);
          this.log.debug({ kind, count: map.size }, 'in sync');
          this.neighborsDirty = this.localDirty = this.policyDirty = true;
        } else {
          const key = keyOf(e.object);
          const before = map.get(key);
          const after = e.type === 'deleted' ? undefined : e.object;
          if (after) map.set(key, after);
          else map.delete(key);
          // Only what this change can move is recomputed (desired.ts changeMoves).
          const moves = changeMoves(this.config.nodename, kind, before, after);
          if (!moves.neighbors && !moves.local && !moves.policy) return;
          if (moves.neighbors) this.neighborsDirty = true;
          if (moves.local) this.localDirty = true;
          if (moves.policy) this.policyDirty = true;
        }
        this.queueRecompute();
      },
      {
        onError: (err) => {
          const failures = this.watchFailed(kind, err, 'ended');
          const i = this.watches.indexOf(handle);
          if (i >= 0) this.watches.splice(i, 1);
          const wait = Math.min(WATCH_RETRY_MAX_MS, WATCH_RETRY_MIN_MS * 2 ** Math.min(failures - 1, 16));
          if (!this.stopping) this.clock.after(wait, () => !this.stopping && this.watch(kind));
        },
        onRetry: (err) => (err ? this.watchFailed(kind, err, 'retried') : this.watchWorks(kind)),
      },
    );
    this.watches.push(handle);
  }

  /**
   * A watch that failed: logged as a warning the first time and when its error changes (a
   * missing CRD would otherwise say the same thing every retry), shown by `twill status` and
   * counted in the metrics until it works again. Returns the failures in a row.
   */
  private watchFailed(kind: Kind, err: DatastoreError, how: 'ended' | 'retried'): number {
    const message = `${err.code}: ${err.message}`;
    const was = this.watchTrouble.get(kind);
    const now: WatchTrouble = {
      kind,
      error: message,
      since: was?.since ?? this.clock.date().toISOString(),
      failures: (was?.failures ?? 0) + 1,
    };
    this.watchTrouble.set(kind, now);
    const fields = { kind, err: message, failures: now.failures };
    const what = how === 'ended' ? 'watch ended; starting it again' : 'watch failing; the store retries it';
    if (!was || was.error !== message) this.log.warn(fields, what);
    else this.log.debug(fields, what);
    return now.failures;
  }

  /** A watch that had failed works again (it delivered its snapshot, or a request succeeded). */
  private watchWorks(kind: Kind): void {
    const was = this.watchTrouble.get(kind);
    if (!was) return;
    this.watchTrouble.delete(kind);
    this.log.info({ kind, failures: was.failures, since: was.since }, 'watch works again');
  }

  private queueRecompute(): void {
    if (this.recomputeQueued || this.stopping) return;
    this.recomputeQueued = true;
    this.clock.soon(() => {
      this.recomputeQueued = false;
      if (this.stopping) return;
      try {
        this.recompute();
      } catch (err) {
        this.log.error({ err: (err as Error).stack }, 'recomputing the desired state failed');
      }
    });
  }

  private list<T = unknown>(kind: Kind): StoredObject<T>[] {
    return [...this.objects.get(kind)!.values()] as StoredObject<T>[];
  }

  private blockSpecs(): IPAMBlockSpec[] {
    return this.list<IPAMBlockSpec>('IPAMBlock').flatMap((b) => (b.spec ? [b.spec] : []));
  }

  private myBlocks(): IPAMBlockSpec[] {
    const mine = affinityOf(this.config.nodename);
    return this.blockSpecs().filter((b) => b.affinity === mine);
  }

  private ipamUse(): { inUse: number; free: number; blocks: number } {
    let inUse = 0;
    let free = 0;
    const blocks = this.myBlocks();
    for (const b of blocks)
      for (const a of b.allocations ?? [])
        if (a === null) free++;
        else inUse++;
    return { inUse, free, blocks: blocks.length };
  }

  // -------------------------------------------------------------------------------------------
  // Desired state

  private recompute(): void {
    if (!this.inSync) {
      if (!WATCHED.every((k) => this.synced.has(k))) return;
      this.inSync = true;
      this.log.info({}, 'datastore in sync');
    }
    if (this.neighborsDirty || this.localDirty || this.speaker === undefined) this.recomputeRouting();
    if (this.speaker === undefined) return;
    if (this.policyDirty) void this.applyPolicy();
    if (!this.cni!.handler.isReady()) {
      this.cni!.handler.setReady(true);
      this.log.info({}, 'ready for CNI requests');
    }
    this.statusSoon();
  }

  /**
   * The status after a change, once it has settled: its write would wake every watcher of the
   * store while the change itself is still being carried out.
   */
  private statusSoon(): void {
    if (this.statusSoonTimer !== undefined) return;
    this.statusSoonTimer = this.clock.after(STATUS_SETTLE_MS, () => {
      this.statusSoonTimer = undefined;
      void this.publishStatus();
    });
  }

  /**
   * The speaker (made, or remade when what every session hangs on changed), then what is dirty:
   * the neighbors; this node's own part, the originated prefixes and the `pods` and `blocks` routes.
   */
  private recomputeRouting(): void {
    const c = this.config;
    const globalObj = this.objects.get('BGPConfiguration')!.get(BGP_CONFIGURATION_NAME);
    const global = bgpGlobal(globalObj);
    const asn = c.asn ?? global.asn;
    const port = c.bgpPort ?? global.listenPort;

    const key = `${asn}/${port}/${global.gracefulRestartTime}`;
    if (this.speakerStarting) return; // it recomputes when started
    if (this.speaker === undefined || key !== this.speakerKey) {
      this.global = global;
      // A new speaker has neither neighbors nor originated prefixes.
      this.neighborsDirty = this.localDirty = true;
      void this.startSpeaker(asn, port, global, key);
      return;
    }
    this.global = global;
    if (this.neighborsDirty) {
      this.neighborsDirty = false;
      this.recomputeNeighbors(this.speaker, asn, global);
    }
    if (this.localDirty) {
      this.localDirty = false;
      const blocks = this.blockSpecs();
      const affinities = this.list<BlockAffinitySpec>('BlockAffinity').flatMap((a) =>
        a.spec ? [a.spec] : [],
      );
      const next = originated(c.nodename, blocks, affinities);
      this.local = localAddresses(c.nodename, blocks);
      this.reconciler.setDesired('pods', podRoutes(this.local));
      this.reconciler.setDesired('blocks', blockRoutes(c.nodename, blocks, affinities));
      this.startDataplane();
      this.originate(this.speaker, next);
    }
  }

  /**
   * A new block is advertised once its blackhole is in the kernel, as calico-node's BIRD only
   * exports what Felix has programmed: a peer's traffic for the block's unused addresses must
   * not find this node without a route for them. A block going away is withdrawn first, then
   * its blackhole removed. Only the latest recomputation's set is handed to the speaker.
   */
  private originate(speaker: Speaker, next: string[]): void {
    const seq = ++this.originSeq;
    const shown = this.advertised?.speaker === speaker ? this.advertised.prefixes : new Set<string>();
    // Nothing new, and no apply still on its way for a block that is: hand it over now.
    if (this.originWaits === 0 && next.every((p) => shown.has(p))) {
      this.advertise(speaker, next);
      this.reconciler.applySoon();
      return;
    }
    this.originWaits++;
    void this.reconciler
      .apply()
      .catch((err: Error) => {
        // Advertised all the same; the apply goes on being retried as any other.
        this.log.warn({ err: err.message }, 'route apply failed before advertising a block; retrying');
        this.reconciler.applySoon();
      })
      .then(() => {
        this.originWaits--;
        if (seq === this.originSeq && this.speaker === speaker && !this.stopping)
          this.advertise(speaker, next);
      });
  }

  private advertise(speaker: Speaker, prefixes: string[]): void {
    speaker.setOriginated(prefixes);
    this.advertised = { speaker, prefixes: new Set(prefixes) };
  }

  private recomputeNeighbors(speaker: Speaker, asn: number, global: BgpGlobal): void {
    const c = this.config;
    const nodes = this.list('Node').map(nodeInfo);
    const me = nodes.find((n) => n.name === c.nodename) ?? {
      name: c.nodename,
      labels: {},
      address: this.address,
      asn: c.asn,
      port: c.bgpPort,
      internalIP: undefined,
    };
    me.address = this.address;
    const peers = [];
    for (const o of this.list('BGPPeer')) {
      const p = bgpPeerSpec(o);
      if (typeof p === 'string') this.log.warn({}, `${p}; ignored`);
      else peers.push(p);
    }
    const poolCidrs = this.list<{ cidr?: string; disabled?: boolean }>('IPPool').flatMap((p) =>
      typeof p.spec?.cidr === 'string' ? [p.spec.cidr] : [],
    );
    const { neighbors, kinds } = desiredNeighbors({ me, asn, global, nodes, peers, poolCidrs });
    this.kinds = kinds;
    speaker.setNeighbors(neighbors);
  }

  private wiringKernel(): NetlinkKernel {
    if (this.cniKernel === undefined) this.cniKernel = new NetlinkKernel();
    return this.cniKernel;
  }

  private dataplaneStarted = false;

  private startDataplane(): void {
    if (this.dataplaneStarted) return;
    this.dataplaneStarted = true;
    if (!this.restarting) this.reportBgp();
    else this.waitForBgp();
    this.reconciler.start();
    void this.reconciler
      .apply()
      .catch((err: Error) => this.log.error({ err: err.message }, 'first route apply failed'));
    this.policy.startRefresh(180_000);
  }

  /** After a restart: set the `bgp` owner once BGP has converged (see the header). */
  private waitForBgp(): void {
    const deadline = this.clock.now() + this.global.gracefulRestartTime * 1000;
    const check = () => {
      const st = this.speaker?.status();
      const all = st?.peers.every((p) => p.state === 'Established') === true;
      const quiet = this.clock.now() - this.lastRouteChange >= BGP_SETTLE_MS;
      if ((all && quiet) || this.clock.now() >= deadline) {
        this.log.info(
          { peers: st?.peers.length ?? 0, routes: this.bgpRoutes.size },
          'BGP converged after restart',
        );
        this.reportBgp();
        return;
      }
      this.bgpWaitTimer = this.clock.after(250, check);
    };
    this.bgpWaitTimer = this.clock.after(BGP_SETTLE_MS, check);
  }

  private reportBgp(): void {
    this.bgpReported = true;
    this.reconciler.setDesired('bgp', this.bgpRoutes.values());
    this.reconciler.applySoon();
  }

  private async startSpeaker(asn: number, port: number, global: BgpGlobal, key: string): Promise<void> {
    this.speakerStarting = true;
    try {
      await this.replaceSpeaker(asn, port, global, key);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'BGP cannot start; trying again in 5 s');
      this.clock.after(5000, () => {
        this.neighborsDirty = this.localDirty = true;
        this.queueRecompute();
      });
    } finally {
      this.speakerStarting = false;
    }
  }

  private async replaceSpeaker(asn: number, port: number, global: BgpGlobal, key: string): Promise<void> {
    const old = this.speaker;
    this.speakerKey = key;
    this.speaker = undefined;
    if (old) {
      this.log.warn({ asn, port }, 'the cluster BGP configuration changed: restarting every session');
      await old.stop('Twill: BGP configuration changed');
      // The new speaker delivers every route it learns afresh.
      this.bgpRoutes.clear();
      if (this.bgpReported) this.reconciler.setDesired('bgp', []);
    }
    const config: SpeakerConfig = {
      routerId: this.address,
      asn,
      listen: { address: '::', port },
      neighbors: [] as NeighborConfig[],
      originate: [],
      api: { listen: { kind: 'unix', path: this.config.apiSocket } },
      mesh: { lowerAddressDials: true },
      clusterId: this.address,
      gracefulRestart: { enabled: true, restartTime: global.gracefulRestartTime, deferralTime: 60 },
      decision: { alwaysCompareMed: false },
    };
    await this.warmUpBlockPath();
    const speaker = new Speaker(config, this.log.child({ component: 'bgp' }), {
      // The warm-up for a mesh's tables (warmup.ts SMALL_WARM_UP), unless the caller says otherwise.
      warmUp: 'small',
      ...this.opts.speaker,
      clock: this.clock,
      restarting: this.restarting && old === undefined,
    });
    speaker.onRoutes((changes) => this.onRoutes(changes));
    await speaker.start();
    if (this.stopping) {
      await speaker.stop();
      return;
    }
    this.speaker = speaker;
    this.log.info({ asn, port, routerId: this.address }, 'BGP listening');
    this.queueRecompute();
  }

  /**
   * Once, before the first speaker starts: the code a pod block runs, through scratch parts
   * (warmup.ts). Left out where the speaker's own warm-up is (tests).
   */
  private async warmUpBlockPath(): Promise<void> {
    if (this.blockPathWarm || this.opts.speaker?.warmUp === false) return;
    this.blockPathWarm = true;
    const pools = this.list<{ cidr?: string }>('IPPool').flatMap((p) =>
      typeof p.spec?.cidr === 'string' ? [p.spec.cidr] : [],
    );
    // Without an IPv4 pool yet, one of its own: what is warmed is code, not a pool's blocks.
    const v4 = pools.find((c) => !c.includes(':'));
    const poolCidr = v4 ?? '10.244.0.0/16';
    const t0 = performance.now();
    try {
      // Its garbage is collected with the speaker's warm-up's, at its start; the young
      // generation is not grown for it (release-memory.ts).
      await withoutYoungGrowthAsync(() =>
        warmUpBlockPath({ clock: this.clock, poolCidr, poolCidrs: v4 ? pools : [poolCidr] }),
      );
      this.log.debug({ ms: Math.round(performance.now() - t0) }, 'block path warmed up');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'block path warm-up failed; nothing depends on it');
    }
  }
  private blockPathWarm = false;

  private onRoutes(changes: readonly RouteChange[]): void {
    if (changes.length === 0) return;
    this.lastRouteChange = this.clock.now();
    this.metrics.routeChanges.inc(changes.length);
    applyRouteChanges(this.bgpRoutes, changes);
    if (!this.bgpReported) return;
    // Only the changed prefixes: a full table's trickle of changes costs what changed.
    this.reconciler.updateDesired(
      'bgp',
      changes.map((c) => [c.prefix, this.bgpRoutes.get(c.prefix) ?? null] as const),
    );
    this.reconciler.applySoon();
  }

  private async applyPolicy(): Promise<void> {
    if (this.policyApplying) return;
    this.policyApplying = true;
    try {
      while (this.policyDirty && !this.stopping) {
        this.policyDirty = false;
        const state = clusterState({
          node: this.config.nodename,
          namespaces: this.list('Namespace'),
          pods: this.list('Pod'),
          policies: this.list('NetworkPolicy'),
          addresses: localAddresses(undefined, this.blockSpecs()),
        });
        this.policyInput ??= new PolicyInput(this.config.nodename, this.log.child({ component: 'policy' }));
        this.policy.setDesired(this.policyInput.update(state));
        const t0 = performance.now();
        try {
          await this.policy.apply();
          this.metrics.policyApply.observe((performance.now() - t0) / 1000);
        } catch (err) {
          this.log.error({ err: (err as Error).message }, 'policy apply failed; retrying in 1 s');
          await new Promise((r) => this.clock.after(1000, () => r(undefined)));
          this.policyDirty = true;
        }
      }
    } finally {
      this.policyApplying = false;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Views

  ready(): { ready: boolean; reasons: string[] } {
    return readiness({
      inSync: this.inSync,
      dataplaneApplied: this.dataplaneApplied,
      uptimeMs: this.clock.now() - this.startedAt,
      peers: this.speaker?.status().peers ?? [],
    });
  }

  status(): SpeakerStatus & {
    node: string;
    ready: boolean;
    reasons: string[];
    peerTypes: Record<string, NeighborKind>;
    watchErrors: WatchTrouble[];
    routes: { desired: number; installed: number; waiting: number; conflicts: number };
  } {
    const st = this.speaker?.status() ?? {
      routerId: this.address,
      asn: this.config.asn ?? this.global.asn,
      listen: null,
      peers: [],
    };
    const r = this.reconciler.status();
    const ready = this.ready();
    return {
      ...st,
      node: this.config.nodename,
      ready: ready.ready,
      reasons: ready.reasons,
      peerTypes: Object.fromEntries(this.kinds),
      watchErrors: [...this.watchTrouble.values()],
      routes: {
        desired: r.desired,
        installed: r.installed,
        waiting: r.waiting.length,
        conflicts: r.conflicts.length,
      },
    };
  }

  private async ipam(): Promise<unknown> {
    const handles = await this.store!.list('IPAMHandle');
    return ipamReport({
      pools: this.list('IPPool'),
      blocks: this.list('IPAMBlock'),
      affinities: this.list('BlockAffinity'),
      handles,
      nodes: this.list('Node'),
      pods: this.list('Pod'),
    });
  }

  /** Write this node's TwillNodeStatus when what it says changed (node-status.ts: when). */
  private async publishStatus(): Promise<void> {
    if (!this.inSync || !this.speaker || this.stopping) return;
    // Within the interval nothing is written (the status timer comes back): build nothing.
    const now = this.clock.now();
    if (now - this.lastStatus.at < STATUS_MIN_INTERVAL_MS) return;
    const body = nodeStatusBody(this.speaker.status(), (a) => this.kinds.get(a), {
      originated: this.myBlocks().length,
      installed: this.reconciler.status().installed,
    });
    const texts = statusTexts(body);
    if (!statusDue(this.lastStatus, texts, now)) return;
    this.lastStatus = { ...texts, at: now };
    const store = this.store!;
    const name = this.config.nodename;
    try {
      let obj = await store.get({ kind: 'TwillNodeStatus', name });
      if (!obj)
        obj = await store.create({
          apiVersion: API_VERSIONS.TwillNodeStatus,
          kind: 'TwillNodeStatus',
          metadata: { name },
          spec: { node: name },
        });
      await store.updateStatus({ ...obj, status: { updated: new Date().toISOString(), ...body } });
    } catch (err) {
      this.lastStatus = NOTHING_WRITTEN;
      this.log.warn({ err: (err as Error).message }, 'cannot write the node status; trying again later');
    }
  }
}
