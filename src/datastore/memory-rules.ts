/**
 * The object rules the embedded stores (memory.ts, file.ts) share, so both answer exactly as the
 * API server would for the cases the contract (types.ts) names.
 *
 * - Validation: `kind` must be a Twill or core kind; `apiVersion` is filled in when absent and
 *   must otherwise be the kind's (`crd.twill.dev/v1`, `v1`, `networking.k8s.io/v1`); names are
 *   DNS subdomains (namespaces DNS labels), which also makes them safe file names; labels and
 *   annotations are string maps. A namespaced kind needs `metadata.namespace`; a cluster-scoped
 *   kind has it cleared (as the API server's BeforeCreate does). Every failure is
 *   `DatastoreError('Invalid')` whose message names the object and the field.
 * - Create: the store sets uid, creationTimestamp and resourceVersion; a resourceVersion given
 *   to create is refused (Kubernetes does the same).
 * - Update (`mergeUpdate`): spec, labels and annotations come from the caller; name, namespace,
 *   uid and creationTimestamp stay. Status changes through `update` only for kinds without a
 *   status subresource (NetworkPolicy); every other kind's status changes through
 *   `updateStatus` only, as on a cluster whose CRDs declare `subresources: {status: {}}`.
 *   A caller's uid that differs from the stored one is a Conflict (another incarnation).
 *   An update that changes nothing keeps the resourceVersion and sends no watch event.
 * - Preconditions (`checkVersion`, `checkDelete`): compare-and-swap on resourceVersion, delete
 *   also on uid; a mismatch is `Conflict`.
 * - `WatchQueue`: per-watch delivery, asynchronous (a microtask) but in order, nothing after
 *   `stop()`. Each event's object is the watcher's own: copied as it is queued, or handed over
 *   when the store made it for that event alone (file.ts: parsed from a change log line). An
 *   exception thrown by a handler is the consumer's bug: it is re-thrown outside the store (an
 *   uncaught exception) and delivery of later events goes on.
 *
 * Not here: storage, versions, locking (each store), watch resumption (file.ts).
 */
import {
  DatastoreError,
  type DeletePreconditions,
  type Kind,
  type ListOptions,
  NAMESPACED_KINDS,
  type ObjectKey,
  type StoredObject,
  type WatchEvent,
  API_VERSIONS,
  KINDS,
  STATUS_SUBRESOURCE_KINDS,
} from './types.js';

export { KINDS, STATUS_SUBRESOURCE_KINDS };

export function apiVersionOf(kind: Kind): string {
  return API_VERSIONS[kind];
}

export function isKind(kind: unknown): kind is Kind {
  return typeof kind === 'string' && Object.hasOwn(API_VERSIONS, kind);
}

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `Pod default/web`, `IPAMBlock 10-0-0-0-26`: how messages name an object. */
export function describeKey(key: { kind: unknown; name?: unknown; namespace?: unknown }): string {
  const name = typeof key.name === 'string' ? key.name : '(no name)';
  const ns = typeof key.namespace === 'string' && key.namespace !== '' ? `${key.namespace}/` : '';
  return `${String(key.kind)} ${ns}${name}`;
}

function invalid(what: string, message: string): DatastoreError {
  return new DatastoreError('Invalid', `${what}: ${message}`);
}

function checkName(what: string, field: string, value: unknown, dnsLabel: boolean): string {
  if (typeof value !== 'string' || value === '') throw invalid(what, `${field} is required (a string)`);
  const ok = dnsLabel
    ? value.length <= 63 && LABEL.test(value)
    : value.length <= 253 && SUBDOMAIN.test(value);
  if (!ok)
    throw invalid(
      what,
      `${field} ${JSON.stringify(value)} is not a DNS ${dnsLabel ? 'label' : 'subdomain'} ` +
        `(lowercase letters, digits, '-'${dnsLabel ? '' : ", '.'"}; starts and ends alphanumeric)`,
    );
  return value;
}

/** Checks a key and returns it in normal form (namespace only for namespaced kinds). */
export function checkKey(key: ObjectKey): ObjectKey {
  const what = describeKey(key);
  if (!isKind(key.kind)) throw invalid(what, `kind ${JSON.stringify(key.kind)} is not a known kind`);
  const name = checkName(what, 'name', key.name, false);
  if (!NAMESPACED_KINDS.has(key.kind)) return { kind: key.kind, name };
  return { kind: key.kind, name, namespace: checkName(what, 'namespace', key.namespace, true) };
}

export function checkListOptions(kind: Kind, options: ListOptions | undefined): void {
  if (!isKind(kind)) throw invalid(String(kind), 'not a known kind');
  if (options?.namespace !== undefined) {
    if (!NAMESPACED_KINDS.has(kind)) throw invalid(kind, 'namespace given for a cluster-scoped kind');
    checkName(kind, 'namespace', options.namespace, true);
  }
  checkStringMap(kind, 'labels', options?.labels);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkStringMap(what: string, field: string, v: unknown): void {
  if (v === undefined) return;
  if (!isPlainObject(v)) throw invalid(what, `${field} must be a map of strings`);
  for (const [k, s] of Object.entries(v))
    if (typeof s !== 'string') throw invalid(what, `${field}.${k} must be a string, not ${typeof s}`);
}

/** The JSON an object is stored as: what goes in is what the API server would keep. */
function toJson(object: unknown, what: string): unknown {
  try {
    return JSON.parse(JSON.stringify(object));
  } catch (e) {
    throw invalid(what, `not representable as JSON (${(e as Error).message})`);
  }
}

/**
 * Checks an object as a caller hands it in and returns a normalised deep copy (JSON round trip,
 * apiVersion filled in, namespace cleared for cluster-scoped kinds).
 */
export function checkObject(object: StoredObject): StoredObject {
  if (!isPlainObject(object)) throw invalid('object', 'expected a JSON object');
  const meta0: Record<string, unknown> = isPlainObject(object.metadata) ? object.metadata : {};
  const what = describeKey({ kind: object.kind, name: meta0.name, namespace: meta0.namespace });
  const o = toJson(object, what) as StoredObject;
  if (!isKind(o.kind)) throw invalid(what, `kind ${JSON.stringify(o.kind)} is not a known kind`);
  const want = API_VERSIONS[o.kind];
  if (o.apiVersion === undefined) o.apiVersion = want;
  else if (o.apiVersion !== want)
    throw invalid(what, `apiVersion is ${JSON.stringify(o.apiVersion)}, expected ${JSON.stringify(want)}`);
  if (!isPlainObject(o.metadata)) throw invalid(what, 'metadata is required (an object)');
  const m = o.metadata;
  checkName(what, 'metadata.name', m.name, false);
  if (NAMESPACED_KINDS.has(o.kind)) checkName(what, 'metadata.namespace', m.namespace, true);
  else delete m.namespace;
  checkStringMap(what, 'metadata.labels', m.labels);
  checkStringMap(what, 'metadata.annotations', m.annotations);
  for (const f of ['resourceVersion', 'uid', 'creationTimestamp'] as const)
    if (m[f] !== undefined && typeof m[f] !== 'string') throw invalid(what, `metadata.${f} must be a string`);
  return o;
}

/** Checks an object read back from storage (a file): everything a reader relies on is there. */
export function checkStored(o: unknown, what: string): StoredObject {
  if (!isPlainObject(o)) throw invalid(what, 'expected a JSON object');
  if (!isKind(o.kind)) throw invalid(what, `kind ${JSON.stringify(o.kind)} is not a known kind`);
  if (o.apiVersion !== API_VERSIONS[o.kind])
    throw invalid(
      what,
      `apiVersion is ${JSON.stringify(o.apiVersion)}, expected ${JSON.stringify(API_VERSIONS[o.kind])}`,
    );
  if (!isPlainObject(o.metadata)) throw invalid(what, 'metadata is required (an object)');
  const m = o.metadata;
  checkName(what, 'metadata.name', m.name, false);
  if (NAMESPACED_KINDS.has(o.kind)) checkName(what, 'metadata.namespace', m.namespace, true);
  checkStringMap(what, 'metadata.labels', m.labels);
  checkStringMap(what, 'metadata.annotations', m.annotations);
  for (const f of ['resourceVersion', 'uid'] as const)
    if (typeof m[f] !== 'string' || m[f] === '') throw invalid(what, `metadata.${f} is required (a string)`);
  return o as unknown as StoredObject;
}

export function keyOf(o: StoredObject): ObjectKey {
  return NAMESPACED_KINDS.has(o.kind)
    ? { kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace! }
    : { kind: o.kind, name: o.metadata.name };
}

/** One string per object, for maps: `Pod/default/web`, `IPPool//default-ipv4`. */
export function keyString(key: ObjectKey): string {
  return `${key.kind}/${key.namespace ?? ''}/${key.name}`;
}

export function matches(o: StoredObject, options: ListOptions | undefined): boolean {
  if (options?.namespace !== undefined && o.metadata.namespace !== options.namespace) return false;
  const want = options?.labels;
  if (want === undefined) return true;
  const have = o.metadata.labels ?? {};
  for (const [k, v] of Object.entries(want)) if (have[k] !== v) return false;
  return true;
}

/** The stored form of a new object; the store adds resourceVersion. */
export function newObject(checked: StoredObject, uid: string, now: Date): StoredObject {
  const what = describeKey(keyOf(checked));
  if (checked.metadata.resourceVersion !== undefined)
    throw invalid(what, 'metadata.resourceVersion must not be set on create');
  const meta = { ...checked.metadata, uid, creationTimestamp: now.toISOString().replace(/\.\d+Z$/, 'Z') };
  delete meta.resourceVersion;
  return { ...checked, metadata: meta };
}

/** Compare-and-swap: the caller's resourceVersion and uid (when given) must be the stored ones. */
export function checkVersion(stored: StoredObject, incoming: StoredObject): void {
  const what = describeKey(keyOf(stored));
  const rv = incoming.metadata.resourceVersion;
  if (rv !== undefined && rv !== stored.metadata.resourceVersion)
    throw new DatastoreError(
      'Conflict',
      `${what}: resourceVersion ${rv} is stale (stored: ${stored.metadata.resourceVersion}); read it again`,
    );
  const uid = incoming.metadata.uid;
  if (uid !== undefined && uid !== stored.metadata.uid)
    throw new DatastoreError(
      'Conflict',
      `${what}: uid ${uid} is another incarnation (stored: ${stored.metadata.uid})`,
    );
}

export function checkDelete(stored: StoredObject, pre: DeletePreconditions | undefined): void {
  const what = describeKey(keyOf(stored));
  if (pre?.resourceVersion !== undefined && pre.resourceVersion !== stored.metadata.resourceVersion)
    throw new DatastoreError(
      'Conflict',
      `${what}: precondition resourceVersion ${pre.resourceVersion} does not hold (stored: ${stored.metadata.resourceVersion})`,
    );
  if (pre?.uid !== undefined && pre.uid !== stored.metadata.uid)
    throw new DatastoreError(
      'Conflict',
      `${what}: precondition uid ${pre.uid} does not hold (stored: ${stored.metadata.uid})`,
    );
}

/**
 * The stored object after `update` (mode 'update') or `updateStatus` (mode 'status'), without a
 * new resourceVersion yet; `undefined` when nothing would change. Call `checkVersion` first.
 */
export function mergeUpdate(
  stored: StoredObject,
  incoming: StoredObject,
  mode: 'update' | 'status',
): StoredObject | undefined {
  const next: StoredObject = { ...stored, metadata: { ...stored.metadata } };
  if (mode === 'status') {
    if (!STATUS_SUBRESOURCE_KINDS.has(stored.kind))
      throw invalid(describeKey(keyOf(stored)), `${stored.kind} has no status subresource; use update`);
    setOrDelete(next, 'status', incoming.status);
  } else {
    setOrDelete(next, 'spec', incoming.spec);
    setOrDelete(next.metadata, 'labels', incoming.metadata.labels);
    setOrDelete(next.metadata, 'annotations', incoming.metadata.annotations);
    if (!STATUS_SUBRESOURCE_KINDS.has(stored.kind)) setOrDelete(next, 'status', incoming.status);
  }
  return sameJson(stored, next) ? undefined : next;
}

function setOrDelete<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v === undefined) delete o[k];
  else o[k] = v;
}

/** Deep equality of two JSON values, key order ignored. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameJson(x, bb[i]));
  }
  const ak = Object.keys(a);
  const bo = b as Record<string, unknown>;
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.hasOwn(bo, k) && sameJson((a as Record<string, unknown>)[k], bo[k]));
}

export function copy<T>(o: T): T {
  return structuredClone(o);
}

/**
 * One watch's delivery: events are queued in the order the store commits them and handed to
 * the consumer from a microtask, one at a time; `stop()` drops whatever is still queued.
 */
export class WatchQueue {
  private queue: WatchEvent[] = [];
  private scheduled = false;
  private stopped = false;

  constructor(private readonly onEvent: (event: WatchEvent) => void) {}

  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Queues an event; the object is copied now, so later changes to it are not seen. `owned`: the
   * object was made for this event alone (parsed from a change log line) and nothing else holds
   * it, so it is handed over as it is.
   */
  push(event: WatchEvent, owned = false): void {
    if (this.stopped) return;
    this.queue.push(
      event.type === 'synced' || owned ? event : { type: event.type, object: copy(event.object) },
    );
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.drain());
    }
  }

  stop(): void {
    this.stopped = true;
    this.queue = [];
  }

  private drain(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    for (let i = 0; i < batch.length && !this.stopped; i++) {
      try {
        this.onEvent(batch[i]!);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }
}
