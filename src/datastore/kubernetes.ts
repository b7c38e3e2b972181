/**
 * The Kubernetes datastore (`--datastore kubernetes`): the contract of types.ts over the API
 * server's REST API. Twill's kinds are the CRDs in deploy/crds (group crd.twill.dev, version v1,
 * cluster-scoped, each with the status subresource); Nodes, Namespaces, Pods and NetworkPolicies
 * are the built-in kinds.
 *
 * Credentials come from @kubernetes/client-node's KubeConfig (a kubeconfig file, or in-cluster:
 * the ServiceAccount token file, re-read as it rotates); the requests themselves are plain HTTPS
 * on one keep-alive agent, so that every status code and every watch line is ours to interpret.
 *
 * Mapping onto the API (Kubernetes API conventions, "Concurrency Control and Consistency"):
 * - get/list/create: GET and POST. List items lack kind and apiVersion on the wire; they are
 *   filled in. `metadata.managedFields` is dropped from what callers see (and so omitted from
 *   updates, which keeps the server's copy); every other metadata field (finalizers,
 *   ownerReferences, generation...) is kept, so a PUT never strips what another controller set.
 * - update/updateStatus: PUT (to `/status` for the status). With a resourceVersion it is the
 *   server's compare-and-swap: 409 is `Conflict`. Without one, the current version is read and
 *   the PUT retried on 409 with jittered backoff (custom resources refuse an update without a
 *   resourceVersion).
 * - delete: DELETE with DeleteOptions preconditions (resourceVersion, uid); 409 is `Conflict`.
 * - watch: a reflector, as client-go's: list, deliver `added` for each, `synced`, then watch from
 *   the list's resourceVersion with bookmarks on (a bookmark moves the resume point without an
 *   event). When the server ends the watch (its timeout) it resumes from the last version seen;
 *   so it does when the watch has been silent for WATCH_IDLE_MS (a connection dropped on the way
 *   without a FIN: the server's bookmarks come every minute).
 *   410 Gone (the version was compacted) relists and delivers only the difference from what the
 *   watcher already has, so a consumer never sees the gap. A lost connection or a server error
 *   is retried with jittered exponential backoff (0.5 s to 30 s), reported to `onTransient`
 *   and to the watch's `onRetry`, which hears `undefined` once a request succeeds again (a
 *   missing CRD is such a failure: its 404 is retried until the CRD exists); 401/403 end the
 *   watch through `onError` (RBAC must change first).
 * - Errors: 404 NotFound, 409 AlreadyExists or Conflict (by the Status reason), 400/422 Invalid
 *   (the server's message names the object and the field), 401/403 Forbidden, anything else and
 *   every network failure Unavailable.
 *
 * Not here: informers' local caches and indexes (the agent keeps its own state from watch
 * events), protobuf, server-side apply.
 */
import { Agent, type RequestOptions, request } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';
import {
  API_VERSIONS,
  type Datastore,
  DatastoreError,
  type DeletePreconditions,
  type Kind,
  type ListOptions,
  NAMESPACED_KINDS,
  type ObjectKey,
  type StoredObject,
  TWILL_GROUP,
  type WatchEvent,
  type WatchHandle,
  type WatchOptions,
} from './types.js';

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON; its fields are checked where read
type Json = any;

/** Each kind's plural resource name (its apiVersion is in types.ts). */
const PLURALS: Readonly<Record<Kind, string>> = {
  IPPool: 'ippools',
  IPAMBlock: 'ipamblocks',
  BlockAffinity: 'blockaffinities',
  IPAMHandle: 'ipamhandles',
  IPAMConfig: 'ipamconfigs',
  BGPConfiguration: 'bgpconfigurations',
  BGPPeer: 'bgppeers',
  TwillNodeStatus: 'twillnodestatuses',
  Node: 'nodes',
  Namespace: 'namespaces',
  Pod: 'pods',
  NetworkPolicy: 'networkpolicies',
};

export { TWILL_GROUP };

/**
 * How long a watch may go without a byte before it is taken for dead: the API server sends a
 * bookmark to every watch that allows them about once a minute (its watch cache's bookmark
 * frequency), so a healthy watch is never silent for longer. A connection that a NAT, a load
 * balancer or a lost peer dropped without a FIN or RST otherwise stays open forever, and the agent
 * would hear of no change again. client-go finds such a connection with HTTP/2 pings (30 s idle,
 * 15 s to answer); these requests are HTTP/1.1, so silence is the sign.
 */
export const WATCH_IDLE_MS = 90_000;

export interface KubernetesStoreOptions {
  /** A kubeconfig file; absent: in-cluster (ServiceAccount) when there, else the default loading rules. */
  kubeconfig?: string;
  /** One request's limit (watches excepted). Default 30 s. */
  requestTimeoutMs?: number;
  /** Watch backoff bounds. Defaults 500 ms and 30 s. */
  backoffMs?: { min: number; max: number };
  /**
   * A watch connection silent for this long is taken for dead, closed and resumed. Default
   * WATCH_IDLE_MS.
   */
  watchIdleMs?: number;
  /** Told of each transient failure a watch retries (a lost connection, a 5xx). */
  onTransient?: (kind: Kind, error: DatastoreError) => void;
}

interface Reply {
  status: number;
  body: Json;
  headers: import('node:http').IncomingHttpHeaders;
}

/** Counters for metrics and tests: how the watches have kept up. */
export interface KubernetesStoreStats {
  /** Lists made by watches (the first of each watch included). */
  lists: number;
  /** Lists made because the server answered 410 Gone (the resume point was compacted). */
  relistsAfterGone: number;
  /** Watch requests opened. */
  watches: number;
  /** Watches ended by this side after WATCH_IDLE_MS of silence (and resumed). */
  idleRestarts: number;
}

export class KubernetesStore implements Datastore {
  readonly stats: KubernetesStoreStats = { lists: 0, relistsAfterGone: 0, watches: 0, idleRestarts: 0 };
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });
  private readonly server: URL;
  private readonly watches = new Set<Reflector>();
  private closed = false;

  constructor(
    private readonly kc: KubeConfig,
    readonly options: KubernetesStoreOptions = {},
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster)
      throw new DatastoreError('Invalid', 'kubeconfig: no current cluster (current-context names none)');
    this.server = new URL(cluster.server);
  }

  /** Opens the store from options.kubeconfig, the in-cluster ServiceAccount, or KUBECONFIG/~/.kube/config. */
  static open(options: KubernetesStoreOptions = {}): KubernetesStore {
    const kc = new KubeConfig();
    try {
      if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
      else kc.loadFromDefault();
    } catch (e) {
      throw new DatastoreError(
        'Invalid',
        `kubeconfig ${options.kubeconfig ?? '(default)'}: ${(e as Error).message}`,
      );
    }
    return new KubernetesStore(kc, options);
  }

  // -------------------------------------------------------------------------------------------
  // Datastore

  async get(key: ObjectKey): Promise<StoredObject | undefined> {
    const r = await this.call('GET', objectPath(key));
    if (r.status === 404) return undefined;
    this.check(r, key);
    return normalize(key.kind, r.body);
  }

  async list(kind: Kind, options: ListOptions = {}): Promise<StoredObject[]> {
    return (await this.listWithVersion(kind, options)).items;
  }

  async create(object: StoredObject): Promise<StoredObject> {
    const key = keyOf(object);
    const { resourceVersion: _rv, uid: _uid, ...metadata } = object.metadata;
    const body = { ...object, apiVersion: API_VERSIONS[object.kind], metadata };
    const r = await this.call('POST', collectionPath(object.kind, object.metadata.namespace), body);
    this.check(r, key);
    return normalize(object.kind, r.body);
  }

  update(object: StoredObject): Promise<StoredObject> {
    return this.put(object, '');
  }

  updateStatus(object: StoredObject): Promise<StoredObject> {
    return this.put(object, '/status');
  }

  async delete(key: ObjectKey, preconditions: DeletePreconditions = {}): Promise<void> {
    const body = { apiVersion: 'v1', kind: 'DeleteOptions', preconditions };
    const r = await this.call('DELETE', objectPath(key), body);
    this.check(r, key);
  }

  watch(kind: Kind, onEvent: (event: WatchEvent) => void, options: WatchOptions = {}): WatchHandle {
    const reflector = new Reflector(this, kind, onEvent, options);
    this.watches.add(reflector);
    reflector.start();
    return {
      stop: () => {
        reflector.stop();
        this.watches.delete(reflector);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches) w.stop();
    this.watches.clear();
    this.agent.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // Internals (the reflector uses these)

  async listWithVersion(
    kind: Kind,
    options: ListOptions,
  ): Promise<{ items: StoredObject[]; resourceVersion: string }> {
    const r = await this.call('GET', collectionPath(kind, options.namespace) + query(options));
    this.check(r, { kind, name: '(list)', namespace: options.namespace });
    const items = (r.body.items as Json[]).map((o) => normalize(kind, o));
    return { items, resourceVersion: r.body.metadata.resourceVersion as string };
  }

  private async put(object: StoredObject, sub: '' | '/status'): Promise<StoredObject> {
    const key = keyOf(object);
    const path = objectPath(key) + sub;
    const body = { ...object, apiVersion: API_VERSIONS[object.kind] };
    if (object.metadata.resourceVersion !== undefined) {
      const r = await this.call('PUT', path, body);
      this.check(r, key);
      return normalize(object.kind, r.body);
    }
    // Last writer wins: take the current version and try again if another writer got between.
    for (let attempt = 0; ; attempt++) {
      const current = await this.get(key);
      if (!current) throw new DatastoreError('NotFound', `${describe(key)}: not found`);
      const r = await this.call('PUT', path, {
        ...body,
        metadata: { ...object.metadata, resourceVersion: current.metadata.resourceVersion },
      });
      if (r.status === 409 && r.body?.reason === 'Conflict' && attempt < 10) {
        await sleep(jitter(20 * 2 ** attempt));
        continue;
      }
      this.check(r, key);
      return normalize(object.kind, r.body);
    }
  }

  /** Throws the DatastoreError for a non-2xx reply. */
  check(r: Reply, key: ObjectKey): void {
    if (r.status >= 200 && r.status < 300) return;
    throw statusError(r, key);
  }

  /**
   * One request; network failures become Unavailable. 429 (the server's "not now": priority and
   * fairness, or a resource's storage still initializing) was not acted on, so it is retried
   * after the Retry-After the server gives (at most 1 s each, 5 times), as client-go does.
   */
  async call(method: string, path: string, body?: unknown): Promise<Reply> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.callOnce(method, path, body);
      if (r.status !== 429 || attempt === 5) return r;
      const after = Number(r.headers['retry-after']);
      await sleep(
        jitter(Math.min(1000, Number.isFinite(after) && after > 0 ? after * 1000 : 100 * 2 ** attempt)),
      );
    }
  }

  private async callOnce(method: string, path: string, body?: unknown): Promise<Reply> {
    if (this.closed) throw new DatastoreError('Unavailable', 'the datastore is closed');
    const opts = await this.requestOptions(method, path);
    const data = body === undefined ? undefined : JSON.stringify(body);
    if (data) {
      (opts.headers as Record<string, string>)['content-type'] = 'application/json';
      (opts.headers as Record<string, string | number>)['content-length'] = Buffer.byteLength(data);
    }
    opts.timeout = this.options.requestTimeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = request(opts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {}
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
        res.on('error', (e) => reject(unavailable(method, path, e)));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeout} ms`)));
      req.on('error', (e) => reject(unavailable(method, path, e)));
      req.end(data);
    });
  }

  async requestOptions(method: string, path: string): Promise<RequestOptions> {
    const opts: RequestOptions = {
      method,
      protocol: this.server.protocol,
      hostname: this.server.hostname,
      port: this.server.port,
      path: this.server.pathname.replace(/\/$/, '') + path,
      headers: { accept: 'application/json' },
      agent: this.agent,
    };
    await this.kc.applyToHTTPSOptions(opts);
    return opts;
  }
}

// ---------------------------------------------------------------------------------------------
// Watch: list, synced, watch; resume from bookmarks; relist on 410 and deliver the difference.

class Reflector {
  private readonly known = new Map<string, StoredObject>();
  private resourceVersion = '';
  private stopped = false;
  private current: import('node:http').ClientRequest | undefined;
  private failures = 0;
  private synced = false;

  constructor(
    private readonly store: KubernetesStore,
    private readonly kind: Kind,
    private readonly onEvent: (event: WatchEvent) => void,
    private readonly options: WatchOptions,
  ) {}

  start(): void {
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.current?.destroy();
    this.current = undefined;
  }

  private emit(event: WatchEvent): void {
    if (!this.stopped) this.onEvent(event);
  }

  /** List, and deliver what differs from what the watcher has (everything, the first time). */
  private async relist(): Promise<void> {
    this.store.stats.lists++;
    let listed: { items: StoredObject[]; resourceVersion: string };
    try {
      listed = await this.store.listWithVersion(this.kind, this.options);
    } catch (e) {
      return this.failed(e, () => this.relist());
    }
    if (this.stopped) return;
    this.working();
    const seen = new Set<string>();
    for (const o of listed.items) {
      const id = idOf(o);
      seen.add(id);
      const before = this.known.get(id);
      this.known.set(id, o);
      if (!before) this.emit({ type: 'added', object: o });
      else if (before.metadata.resourceVersion !== o.metadata.resourceVersion)
        this.emit({ type: 'modified', object: o });
    }
    for (const [id, o] of this.known)
      if (!seen.has(id)) {
        this.known.delete(id);
        this.emit({ type: 'deleted', object: o });
      }
    if (!this.synced) {
      this.synced = true;
      this.emit({ type: 'synced' });
    }
    this.resourceVersion = listed.resourceVersion;
    void this.watch();
  }

  private async watch(): Promise<void> {
    if (this.stopped) return;
    // The server ends a watch after timeoutSeconds; spread them as client-go does (5-10 min).
    const timeoutSeconds = 300 + Math.floor(Math.random() * 300);
    const q = query(this.options, {
      watch: '1',
      allowWatchBookmarks: 'true',
      resourceVersion: this.resourceVersion,
      timeoutSeconds: String(timeoutSeconds),
    });
    const path = collectionPath(this.kind, this.options.namespace) + q;
    let opts: RequestOptions;
    try {
      opts = await this.store.requestOptions('GET', path);
    } catch (e) {
      return this.failed(e, () => this.watch());
    }
    if (this.stopped) return;
    let gone = false;
    let ended = false;
    const end = (err?: unknown) => {
      if (ended || this.stopped) return;
      ended = true;
      this.current = undefined;
      if (gone) {
        this.store.stats.relistsAfterGone++;
        void this.relist();
      } else if (err) this.failed(err, () => this.watch());
      else void this.watch();
    };
    const req = request(opts, (res) => {
      if (res.statusCode !== 200) {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let body: Json;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {}
          if (res.statusCode === 410) gone = true;
          end(
            gone
              ? undefined
              : statusError({ status: res.statusCode ?? 0, body, headers: res.headers }, this.listKey()),
          );
        });
        return;
      }
      this.working();
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim() && !this.stopped) {
            if (this.line(line) === 'gone') {
              gone = true;
              req.destroy();
              end();
              return;
            }
          }
        }
      });
      res.on('end', () => end());
      res.on('error', (e) => end(e));
    });
    req.on('error', (e) => end(unavailable('GET', path, e)));
    // The socket's idle timer: restarted by every byte either way, headers and events alike.
    const idleMs = this.store.options.watchIdleMs ?? WATCH_IDLE_MS;
    // Silence ends the watch as the server's own timeout does: resumed at once, quietly (an API
    // server without periodic bookmarks goes through this every WATCH_IDLE_MS). If the way to
    // the server is gone, the new request fails, and that is reported and retried as usual.
    req.setTimeout(idleMs, () => {
      this.store.stats.idleRestarts++;
      end();
      req.destroy();
    });
    this.current = req;
    this.store.stats.watches++;
    req.end();
  }

  /** One watch event line. Returns 'gone' when the server says the version was compacted. */
  private line(text: string): 'gone' | undefined {
    let e: { type: string; object: Json };
    try {
      e = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (e.type === 'ERROR') {
      if (e.object?.code === 410) return 'gone';
      // Other errors end this watch; the server closes the stream and we resume.
      return undefined;
    }
    const rv = e.object?.metadata?.resourceVersion as string | undefined;
    if (e.type === 'BOOKMARK') {
      if (rv) this.resourceVersion = rv;
      return undefined;
    }
    const o = normalize(this.kind, e.object);
    const id = idOf(o);
    if (e.type === 'DELETED') {
      this.known.delete(id);
      this.emit({ type: 'deleted', object: o });
    } else if (e.type === 'ADDED' || e.type === 'MODIFIED') {
      const had = this.known.has(id);
      this.known.set(id, o);
      this.emit({ type: had ? 'modified' : 'added', object: o });
    }
    if (rv) this.resourceVersion = rv;
    return undefined;
  }

  private listKey(): ObjectKey {
    return { kind: this.kind, name: '(watch)', namespace: this.options.namespace };
  }

  /** A list or watch request succeeded: the backoff starts again, and onRetry hears of it. */
  private working(): void {
    if (this.failures === 0) return;
    this.failures = 0;
    this.options.onRetry?.(undefined);
  }

  /** A failed list or watch: Forbidden ends the watch; anything else is retried with backoff. */
  private failed(e: unknown, retry: () => Promise<void>): void {
    if (this.stopped) return;
    const err =
      e instanceof DatastoreError ? e : new DatastoreError('Unavailable', String((e as Error)?.message ?? e));
    if (err.code === 'Forbidden' || err.code === 'Invalid') {
      this.stopped = true;
      this.options.onError?.(err);
      return;
    }
    this.store.options.onTransient?.(this.kind, err);
    this.options.onRetry?.(err);
    const { min, max } = this.store.options.backoffMs ?? { min: 500, max: 30_000 };
    const delay = jitter(Math.min(max, min * 2 ** this.failures++));
    setTimeout(() => {
      if (!this.stopped) void retry();
    }, delay).unref();
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers

function collectionPath(kind: Kind, namespace?: string): string {
  const apiVersion = API_VERSIONS[kind];
  const plural = PLURALS[kind];
  const prefix = apiVersion === 'v1' ? '/api/v1' : `/apis/${apiVersion}`;
  if (NAMESPACED_KINDS.has(kind) && namespace)
    return `${prefix}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
  return `${prefix}/${plural}`;
}

function objectPath(key: ObjectKey): string {
  if (NAMESPACED_KINDS.has(key.kind) && !key.namespace)
    throw new DatastoreError('Invalid', `${describe(key)}: metadata.namespace is required for ${key.kind}`);
  return `${collectionPath(key.kind, key.namespace)}/${encodeURIComponent(key.name)}`;
}

function query(options: ListOptions, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams(extra);
  if (options.labels && Object.keys(options.labels).length)
    q.set(
      'labelSelector',
      Object.entries(options.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    );
  const s = q.toString();
  return s ? `?${s}` : '';
}

function keyOf(o: StoredObject): ObjectKey {
  return { kind: o.kind, name: o.metadata?.name, namespace: o.metadata?.namespace };
}

function idOf(o: StoredObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function describe(key: ObjectKey): string {
  return `${key.kind} ${key.namespace ? `${key.namespace}/` : ''}${key.name}`;
}

/** The object as callers see it: kind and apiVersion filled in, managedFields left out. */
function normalize(kind: Kind, raw: Json): StoredObject {
  const { managedFields: _m, ...metadata } = raw.metadata ?? {};
  return { ...raw, apiVersion: API_VERSIONS[kind], kind, metadata };
}

function statusError(r: Reply, key: ObjectKey): DatastoreError {
  const message =
    typeof r.body === 'object' && r.body?.message ? (r.body.message as string) : String(r.body ?? '');
  const what = describe(key);
  switch (r.status) {
    case 404:
      return new DatastoreError('NotFound', `${what}: not found`);
    case 409:
      return new DatastoreError(
        r.body?.reason === 'AlreadyExists' ? 'AlreadyExists' : 'Conflict',
        message || `${what}: conflict`,
      );
    case 400:
    case 422:
      return new DatastoreError('Invalid', message || `${what}: invalid`);
    case 401:
    case 403:
      return new DatastoreError('Forbidden', message || `${what}: forbidden`);
    default:
      return new DatastoreError(
        'Unavailable',
        `${what}: the API server answered ${r.status}${message ? `: ${message}` : ''}`,
      );
  }
}

function unavailable(method: string, path: string, e: Error): DatastoreError {
  return new DatastoreError('Unavailable', `${method} ${path}: ${e.message}`);
}

function jitter(ms: number): number {
  return ms * (0.5 + Math.random() * 0.5);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
