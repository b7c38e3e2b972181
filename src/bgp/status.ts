/**
 * What `twill status` reports, as data: the speaker fills it, the local API serves it as JSON,
 * and the CLI prints it as a table like `calicoctl node status`. Scripts read the JSON form, so
 * field names here are a stable interface: add fields, never rename or repurpose them.
 */

export type PeerStateName = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';

export interface NotificationRecord {
  /** Whether Twill sent this NOTIFICATION or received it from the peer. */
  direction: 'sent' | 'received';
  code: number;
  subcode: number;
  /** e.g. "Cease/Administrative Shutdown (6/2): \"maintenance\"". */
  text: string;
  /** ISO 8601 time. */
  at: string;
}

export interface PeerStatus {
  address: string;
  port: number;
  asn: number;
  /** "ibgp" when the peer's AS is ours, else "ebgp". */
  type: 'ibgp' | 'ebgp';
  state: PeerStateName;
  /** ISO 8601 time the peer entered its current state. */
  since: string;
  /** The last NOTIFICATION sent or received, or the last connection error, if any. */
  lastError: NotificationRecord | { direction: 'local'; text: string; at: string } | null;
  /** Negotiated hold time and keepalive interval, seconds; null when not Established. */
  holdTime: number | null;
  keepalive: number | null;
  /** Peer's BGP identifier, when known. */
  routerId: string | null;
  /** Negotiated capabilities, by name: "ipv4-unicast", "route-refresh", "4-octet-as", ... */
  capabilities: string[];
  prefixesReceived: number;
  /**
   * Of those, paths kept stale for a restarting peer (RFC 4724 graceful restart), until its
   * End-of-RIB or its restart time runs out.
   */
  prefixesStale: number;
  prefixesAdvertised: number;
  /** Whether Twill dials this peer or only waits for it. */
  passive: boolean;
}

export interface SpeakerStatus {
  routerId: string;
  asn: number;
  listen: { address: string; port: number } | null;
  peers: PeerStatus[];
}
