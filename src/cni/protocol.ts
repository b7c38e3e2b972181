/**
 * The agent's CNI endpoint: what the plugin (plugin.ts) asks the node's agent (server.ts), and
 * how. The agent owns its node's IPAM; the plugin never talks to the datastore.
 *
 * Transport: a unix stream socket, default `/run/twill/cni.sock` (the folder 0700, the socket
 * 0600: only root reaches it). One request per connection: the client writes one JSON object
 * and a newline, the server answers with one JSON object and a newline and closes. No
 * multiplexing, no keep-alive: a plugin process makes one request (two at most) and exits, and a
 * connection per request keeps a half-read request from ever confusing the next one. Requests
 * larger than `MAX_MESSAGE` are refused.
 *
 * Requests (`op`):
 * - `assign`: addresses for a pod attachment (network, containerID, ifname, the pod's namespace
 *   and name when known, the families wanted, and the host veth and pod MAC the plugin will
 *   use, so the agent can hand the reconciler the pod's route and neighbour entry). Idempotent:
 *   the handle (names.ts `handleFor`) already holding an address gets it back.
 * - `wire`: the host side of an attachment this agent has just assigned, done by the agent over
 *   its netlink socket (the host veth up with its alias, the pod's host route and neighbour
 *   entry, the veth's sysctls), once the plugin has made the veth from inside the pod. The
 *   request names the attachment only: the interface, MAC and addresses are the ones the agent
 *   recorded at `assign`, so a request cannot point the agent at anything else. An agent
 *   without a kernel to write to (a test's endpoint) answers `Unsupported`, and the plugin does
 *   the host side itself.
 * - `release`: free the attachment's addresses (by handle). Idempotent.
 * - `check`: does the attachment's handle hold exactly these addresses?
 * - `gc`: release the addresses of this node's attachments to `network` that are not in
 *   `valid` (CNI GC's `cni.dev/valid-attachments`).
 * - `status`: is the agent ready to serve ADD?
 * Every request carries `v` (PROTOCOL_VERSION); a server refuses other versions (`Invalid`), so
 * a plugin and an agent from different releases fail loudly instead of misreading each other.
 *
 * Responses: `{ ok: true, ... }` per op, or `{ ok: false, error: { code, message } }` with an
 * `AgentErrorCode` that the plugin maps to a CNI error code (plugin.ts `cniCodeOf`).
 *
 * Loaded by the plugin on every invocation: no imports at all.
 */

export const PROTOCOL_VERSION = 1;
export const DEFAULT_SOCKET = '/run/twill/cni.sock';
/** Longest request or response line, in bytes. */
export const MAX_MESSAGE = 1 << 20;

export type Family = 4 | 6;

/** A (containerID, ifname) pair: CNI's identity of an attachment. */
export interface AttachmentId {
  containerID: string;
  ifname: string;
}

export interface AssignRequest extends AttachmentId {
  v: number;
  op: 'assign';
  /** The CNI network name (the conflist's `name`); the handle is `<network>.<containerID>`. */
  network: string;
  /** The pod, when the runtime is Kubernetes (K8S_POD_NAMESPACE, K8S_POD_NAME). */
  namespace?: string;
  pod?: string;
  families: Family[];
  /** The host-side veth the plugin creates. */
  hostIfname: string;
  /** The pod-side MAC the plugin gives the container interface. */
  mac: string;
}

export interface WireRequest extends AttachmentId {
  v: number;
  op: 'wire';
  network: string;
}

export interface ReleaseRequest extends AttachmentId {
  v: number;
  op: 'release';
  network: string;
}

export interface CheckRequest extends AttachmentId {
  v: number;
  op: 'check';
  network: string;
  /** The addresses (no prefix length) the attachment should hold. */
  addresses: string[];
}

export interface GcRequest {
  v: number;
  op: 'gc';
  network: string;
  valid: AttachmentId[];
}

export interface StatusRequest {
  v: number;
  op: 'status';
}

export type AgentRequest =
  | AssignRequest
  | WireRequest
  | ReleaseRequest
  | CheckRequest
  | GcRequest
  | StatusRequest;

export interface AssignedAddress {
  /** Address text without prefix length. */
  address: string;
  family: Family;
  /** The IPAM block it came from. */
  block: string;
  /** Taken from another node's block (the node originates a host route for it). */
  borrowed: boolean;
}

export type AgentErrorCode =
  /** The agent is starting or lost its datastore: try again later (CNI 11). */
  | 'NotReady'
  /** The store kept changing under the allocator: try again later (CNI 11). */
  | 'Conflict'
  /** A request field is malformed (CNI 7). */
  | 'Invalid'
  /** No address left for this node and family (Twill's CNI 100). */
  | 'Exhausted'
  /** `check`: the attachment does not hold what it should (Twill's CNI 102). */
  | 'Mismatch'
  /** `wire`: this agent does not write to the kernel; the plugin does the host side itself. */
  | 'Unsupported'
  /** Anything else (Twill's CNI 103). */
  | 'Internal';

export interface AgentError {
  code: AgentErrorCode;
  message: string;
}

export type AssignResponse = { ok: true; handle: string; addresses: AssignedAddress[] };
export type WireResponse = { ok: true; handle: string };
export type ReleaseResponse = { ok: true; handle: string; released: string[] };
export type CheckResponse = { ok: true; handle: string };
export type GcResponse = { ok: true; released: string[]; errors: string[] };
export type StatusResponse = { ok: true; ready: boolean; node: string; reason?: string };
export type ErrorResponse = { ok: false; error: AgentError };

export interface ResponseOf {
  assign: AssignResponse;
  wire: WireResponse;
  release: ReleaseResponse;
  check: CheckResponse;
  gc: GcResponse;
  status: StatusResponse;
}

export type AgentResponse = ResponseOf[keyof ResponseOf] | ErrorResponse;

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

const FAMILIES = new Set([4, 6]);

function str(o: Record<string, unknown>, field: string, optional = false): string | undefined {
  const v = o[field];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string' || v === '') throw new ProtocolError(`${field}: expected a non-empty string`);
  return v;
}

function attachment(o: unknown, where: string): AttachmentId {
  if (typeof o !== 'object' || o === null) throw new ProtocolError(`${where}: expected an object`);
  const r = o as Record<string, unknown>;
  return { containerID: str(r, 'containerID')!, ifname: str(r, 'ifname')! };
}

/** Parse and check one request line (the server's side). Throws ProtocolError. */
export function parseRequest(line: string): AgentRequest {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (e) {
    throw new ProtocolError(`not JSON: ${(e as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ProtocolError('expected an object');
  const r = o as Record<string, unknown>;
  if (r.v !== PROTOCOL_VERSION)
    throw new ProtocolError(
      `v: protocol version ${JSON.stringify(r.v)} is not ${PROTOCOL_VERSION} (plugin and agent from different releases?)`,
    );
  const v = PROTOCOL_VERSION;
  switch (r.op) {
    case 'status':
      return { v, op: 'status' };
    case 'assign': {
      const families = r.families;
      if (
        !Array.isArray(families) ||
        families.length === 0 ||
        !families.every((f) => FAMILIES.has(f as number)) ||
        new Set(families).size !== families.length
      )
        throw new ProtocolError('families: expected [4], [6] or [4, 6]');
      const namespace = str(r, 'namespace', true);
      const pod = str(r, 'pod', true);
      if ((namespace === undefined) !== (pod === undefined))
        throw new ProtocolError('namespace and pod: give both or neither');
      return {
        v,
        op: 'assign',
        network: str(r, 'network')!,
        ...attachment(r, 'assign'),
        ...(namespace !== undefined ? { namespace, pod } : {}),
        families: families as Family[],
        hostIfname: str(r, 'hostIfname')!,
        mac: str(r, 'mac')!,
      };
    }
    case 'wire':
      return { v, op: 'wire', network: str(r, 'network')!, ...attachment(r, 'wire') };
    case 'release':
      return { v, op: 'release', network: str(r, 'network')!, ...attachment(r, 'release') };
    case 'check': {
      const addresses = r.addresses;
      if (!Array.isArray(addresses) || !addresses.every((a) => typeof a === 'string'))
        throw new ProtocolError('addresses: expected a list of strings');
      return { v, op: 'check', network: str(r, 'network')!, ...attachment(r, 'check'), addresses };
    }
    case 'gc': {
      if (!Array.isArray(r.valid)) throw new ProtocolError('valid: expected a list');
      return {
        v,
        op: 'gc',
        network: str(r, 'network')!,
        valid: r.valid.map((a, i) => attachment(a, `valid[${i}]`)),
      };
    }
    default:
      throw new ProtocolError(
        `op: ${JSON.stringify(r.op)} is not assign, wire, release, check, gc or status`,
      );
  }
}
