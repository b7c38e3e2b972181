/**
 * The datastore contract: the cluster's truth behind one interface, so IPAM, the agent and the
 * lab run the same on Kubernetes (`--datastore kubernetes`) and on the embedded file store
 * (`--datastore file:DIR`).
 *
 * Objects are Kubernetes-shaped everywhere (apiVersion, kind, metadata, spec, status), so a file
 * store's files and the API server's objects are the same JSON and `kubectl get -o yaml` output
 * can be dropped into a file store. Twill's own kinds live in the API group `crd.twill.dev`,
 * version `v1` (as Calico's live in `crd.projectcalico.org`); they are cluster-scoped. Nodes,
 * Namespaces, Pods and NetworkPolicies are the core and networking.k8s.io kinds.
 *
 * Semantics every implementation keeps (the contract suite in test/datastore checks each):
 * - `resourceVersion` is opaque text. `update` and `delete` with a resourceVersion are
 *   compare-and-swap: if the stored object has another version the call fails with `Conflict`
 *   and changes nothing (Kubernetes' 409). `create` of an existing name fails `AlreadyExists`.
 * - `watch` delivers the current objects first (`added` for each), then `synced` once, then
 *   every later change in order. A watch that loses its place (Kubernetes' 410 Gone after a
 *   compaction, a restarted store) relists and delivers only the difference, so a consumer that
 *   applies events to a map is always level-correct; it does not see the gap.
 * - A watch with a label filter delivers an object that stops matching as `deleted` and one that
 *   starts matching as `added`.
 * - An update that changes nothing keeps the resourceVersion and delivers no event; a `create`
 *   that carries a resourceVersion is `Invalid`; an update or delete whose uid differs from the
 *   stored object's is `Conflict` (another incarnation of the name); cluster-scoped kinds have
 *   `metadata.namespace` cleared.
 * - A store may fill in the defaults of a kind's schema (the API server applies the CRDs' in
 *   deploy/crds; the embedded stores do not): read a field with its documented default.
 * - Errors are `DatastoreError` with a code; `Unavailable` means try again later (the caller
 *   keeps what it has: its sessions, routes and allocations).
 *
 * This module is types only: no I/O.
 */

export const TWILL_GROUP = 'crd.twill.dev';
export const TWILL_API_VERSION = `${TWILL_GROUP}/v1`;

/** Twill's own kinds (CRDs under crd.twill.dev/v1, cluster-scoped). */
export type TwillKind =
  | 'IPPool'
  | 'IPAMBlock'
  | 'BlockAffinity'
  | 'IPAMHandle'
  | 'IPAMConfig'
  | 'BGPConfiguration'
  | 'BGPPeer'
  | 'TwillNodeStatus';

/** Kubernetes' own kinds Twill reads. */
export type CoreKind = 'Node' | 'Namespace' | 'Pod' | 'NetworkPolicy';

export type Kind = TwillKind | CoreKind;

export const NAMESPACED_KINDS: ReadonlySet<Kind> = new Set<Kind>(['Pod', 'NetworkPolicy']);

/** Each kind's apiVersion, as the API server serves it. */
export const API_VERSIONS: Readonly<Record<Kind, string>> = {
  IPPool: TWILL_API_VERSION,
  IPAMBlock: TWILL_API_VERSION,
  BlockAffinity: TWILL_API_VERSION,
  IPAMHandle: TWILL_API_VERSION,
  IPAMConfig: TWILL_API_VERSION,
  BGPConfiguration: TWILL_API_VERSION,
  BGPPeer: TWILL_API_VERSION,
  TwillNodeStatus: TWILL_API_VERSION,
  Node: 'v1',
  Namespace: 'v1',
  Pod: 'v1',
  NetworkPolicy: 'networking.k8s.io/v1',
};

export const KINDS: readonly Kind[] = Object.keys(API_VERSIONS) as Kind[];

/**
 * Kinds whose status changes through `updateStatus` only: every Twill CRD declares the status
 * subresource, and so do Node, Namespace and Pod; NetworkPolicy has none.
 */
export const STATUS_SUBRESOURCE_KINDS: ReadonlySet<Kind> = new Set(
  KINDS.filter((k) => k !== 'NetworkPolicy'),
);

export interface ObjectMeta {
  name: string;
  /** Only for namespaced kinds (Pod, NetworkPolicy). */
  namespace?: string;
  /** Set by the store; opaque. Give it back on update/delete for compare-and-swap. */
  resourceVersion?: string;
  /** Set by the store at create; a delete can be made conditional on it. */
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  /** Kubernetes only: a graceful delete has begun (a Pod waits for its kubelet). */
  deletionTimestamp?: string;
}

export interface StoredObject<Spec = unknown, Status = unknown> {
  apiVersion: string;
  kind: Kind;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: Status;
}

export type DatastoreErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  /** Stale resourceVersion or uid on update/delete: re-read and try again. */
  | 'Conflict'
  /** The object breaks the kind's schema; the message names the object and the field. */
  | 'Invalid'
  /** The store refused us (RBAC, file permissions). */
  | 'Forbidden'
  /** The store cannot be reached or answered with a server error: try again later. */
  | 'Unavailable';

export class DatastoreError extends Error {
  override readonly name = 'DatastoreError';
  constructor(
    readonly code: DatastoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export function isDatastoreError(e: unknown, code?: DatastoreErrorCode): e is DatastoreError {
  return e instanceof DatastoreError && (code === undefined || e.code === code);
}

export interface ObjectKey {
  kind: Kind;
  name: string;
  namespace?: string;
}

export interface ListOptions {
  /** Namespaced kinds only; all namespaces when absent. */
  namespace?: string;
  /** Equality selector on labels (`{ app: 'web' }`). */
  labels?: Record<string, string>;
}

export interface DeletePreconditions {
  /** Delete only if the stored object still has this version. */
  resourceVersion?: string;
  /** Delete only if the stored object is this incarnation. */
  uid?: string;
}

export type WatchEvent =
  | { type: 'added' | 'modified' | 'deleted'; object: StoredObject }
  /** The initial snapshot has been delivered; sent once per watch. */
  | { type: 'synced' };

/** How a watch reports trouble besides its events. */
export interface WatchOptions extends ListOptions {
  /** An error that ends the watch: the caller starts another one if it wants one. */
  onError?: (e: DatastoreError) => void;
  /**
   * A failure the store retries by itself (Kubernetes: a list or watch request that failed,
   * tried again with backoff), then `undefined` once a request succeeds again. The watch goes
   * on meanwhile; what the caller holds is the truth as of before the failure.
   */
  onRetry?: (e: DatastoreError | undefined) => void;
}

export interface WatchHandle {
  /** Stops delivery; no event is delivered after it returns. */
  stop(): void;
}

export interface Datastore {
  get(key: ObjectKey): Promise<StoredObject | undefined>;
  list(kind: Kind, options?: ListOptions): Promise<StoredObject[]>;
  /**
   * Snapshot (`added` each), `synced`, then changes. Errors that end the watch go to onError;
   * failures the store retries by itself, to onRetry.
   */
  watch(kind: Kind, onEvent: (event: WatchEvent) => void, options?: WatchOptions): WatchHandle;
  /** Fails AlreadyExists. Returns the stored object with its resourceVersion and uid. */
  create(object: StoredObject): Promise<StoredObject>;
  /**
   * Replaces spec, labels and annotations (status for kinds without a status subresource).
   * With metadata.resourceVersion set: compare-and-swap, fails Conflict when stale.
   * Without it: last writer wins. Fails NotFound when absent.
   */
  update(object: StoredObject): Promise<StoredObject>;
  /** Replaces status only (Kubernetes' status subresource); same compare-and-swap rules. */
  updateStatus(object: StoredObject): Promise<StoredObject>;
  /** Fails NotFound when absent, Conflict when a precondition does not hold. */
  delete(key: ObjectKey, preconditions?: DeletePreconditions): Promise<void>;
  /** Stops every watch and releases what the store holds. */
  close(): Promise<void>;
}
