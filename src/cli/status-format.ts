/**
 * The human form of `twill status`: a pure function from a `SpeakerStatus` (what the local API
 * serves as JSON) and the current time to text, laid out like `calicoctl node status` so Calico
 * operators read it without thinking:
 *
 *   Twill BGP speaker: router id 10.10.0.1, AS 64512, listening on 0.0.0.0:179
 *
 *   IPv4 BGP status
 *   +--------------+----------------+-------------+----------+------------------------+
 *   | PEER ADDRESS |   PEER TYPE    |    STATE    |  SINCE   |          INFO          |
 *   +--------------+----------------+-------------+----------+------------------------+
 *   | 10.10.0.2    | eBGP AS 64513  | Established | 09:14:07 | hold 90s, 1 in / 1 out |
 *   +--------------+----------------+-------------+----------+------------------------+
 *
 *   IPv6 BGP status
 *   No IPv6 peers found.
 *
 * As in calicoctl (which prints BIRD's and BIRD6's protocols), peers are split into an IPv4 and
 * an IPv6 table by their address, headers are centred and cells left-aligned. Departures: STATE
 * is the RFC 4271 FSM state rather than BIRD's up/start, and PEER TYPE says iBGP or eBGP with
 * the peer's AS, plus "passive" when Twill only waits for the peer; INFO ends with the BFD
 * session's state ("BFD Up") for a neighbor with BFD. From an agent, PEER TYPE
 * starts with where the peer came from, as calicoctl says it ("node-to-node mesh", "global",
 * "node specific"), and the first line names the node and whether it is ready (with why not),
 * followed by a line for each datastore watch that is failing (what the agent holds is then the
 * truth as of the failure: a missing CRD, an unreachable API server). INFO shows, for an
 * Established peer, the negotiated hold time and the
 * prefixes received and advertised; otherwise the last error: a NOTIFICATION we sent or
 * received, or a connection error.
 *
 * SINCE is HH:MM:SS when the peer changed state on the same calendar day as `now`, else the date
 * (YYYY-MM-DD), in local time by default (as calicoctl shows BIRD's local times) or UTC.
 *
 * Text that came from a peer (a shutdown communication, RFC 9003) is printed with control
 * characters replaced and long text shortened, so a peer cannot break the table or send escape
 * sequences to the operator's terminal. The JSON form carries it unchanged.
 */
import type { PeerStatus, SpeakerStatus } from '../bgp/status.js';

/** What an agent's /status adds to the speaker's (agent/agent.ts `status()`). */
export interface AgentStatusExtras {
  node: string;
  ready: boolean;
  reasons: string[];
  /** Peer address -> "node-to-node mesh", "global" or "node specific", as calicoctl says. */
  peerTypes: Record<string, string>;
  /** Datastore watches failing now (agent.ts WatchTrouble). */
  watchErrors?: { kind: string; error: string; since: string; failures: number }[];
}

export interface FormatStatusOptions {
  /** Time zone for SINCE; 'local' (the default) or 'utc'. */
  timeZone?: 'local' | 'utc';
}

/** INFO text longer than this is cut, with "..." at the end. */
const MAX_INFO = 80;

export function formatStatus(
  s: SpeakerStatus & Partial<AgentStatusExtras>,
  now: Date,
  opts: FormatStatusOptions = {},
): string {
  const utc = opts.timeZone === 'utc';
  const listen =
    s.listen === null ? 'not listening' : `listening on ${hostPort(s.listen.address, s.listen.port)}`;
  const out =
    s.node === undefined
      ? [`Twill BGP speaker: router id ${s.routerId}, AS ${s.asn}, ${listen}`, '']
      : [
          `Twill agent on node ${s.node}: router id ${s.routerId}, AS ${s.asn}, ${listen}`,
          s.ready ? 'Ready.' : `Not ready: ${(s.reasons ?? []).map(clean).join('; ')}.`,
          ...(s.watchErrors ?? []).map(
            (w) =>
              `Datastore: the ${w.kind} watch has failed since ${since(w.since, now, utc)}` +
              ` (${w.failures} ${w.failures === 1 ? 'time' : 'times'}): ${clean(w.error)}`,
          ),
          '',
        ];
  const kinds = s.peerTypes ?? {};
  for (const [label, v6] of [
    ['IPv4', false],
    ['IPv6', true],
  ] as const) {
    const peers = s.peers.filter((p) => p.address.includes(':') === v6);
    out.push(`${label} BGP status`);
    if (peers.length === 0) out.push(`No ${label} peers found.`);
    else
      out.push(
        ...table(
          ['PEER ADDRESS', 'PEER TYPE', 'STATE', 'SINCE', 'INFO'],
          peers.map((p) => [
            peerAddress(p),
            kinds[p.address] ? `${kinds[p.address]}, ${peerType(p)}` : peerType(p),
            p.state,
            since(p.since, now, utc),
            info(p),
          ]),
        ),
      );
    out.push('');
  }
  return out.join('\n');
}

function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function peerAddress(p: PeerStatus): string {
  return p.port === 179 ? p.address : hostPort(p.address, p.port);
}

function peerType(p: PeerStatus): string {
  const t = `${p.type === 'ibgp' ? 'iBGP' : 'eBGP'} AS ${p.asn}`;
  return p.passive ? `${t}, passive` : t;
}

function info(p: PeerStatus): string {
  const i = infoText(p);
  if (p.bfd === undefined) return i;
  return i === '' ? `BFD ${p.bfd}` : `${i}; BFD ${p.bfd}`;
}

function infoText(p: PeerStatus): string {
  if (p.state === 'Established') {
    const hold = p.holdTime === null ? 'hold ?' : p.holdTime === 0 ? 'no hold timer' : `hold ${p.holdTime}s`;
    const stale = p.prefixesStale ? `, ${p.prefixesStale} stale` : '';
    const g = p.updateGroup;
    const group = g && g.peers > 1 ? `, update group ${g.id} (${g.peers} peers)` : '';
    return `${hold}, ${p.prefixesReceived} in / ${p.prefixesAdvertised} out${stale}${group}`;
  }
  const e = p.lastError;
  // A restarting peer's routes are still in use: say so first (RFC 4724).
  const kept = p.prefixesStale ? `graceful restart: ${p.prefixesStale} routes kept; ` : '';
  if (e === null) return kept.replace(/; $/, '');
  return clean(`${kept}${e.direction === 'local' ? e.text : `${e.direction} ${e.text}`}`);
}

/** Replace control characters (C0, DEL, C1) with spaces, collapse runs, cut long text. */
function clean(text: string): string {
  const flat = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return flat.length > MAX_INFO ? `${flat.slice(0, MAX_INFO - 3)}...` : flat;
}

const pad2 = (n: number) => String(n).padStart(2, '0');

function since(iso: string, now: Date, utc: boolean): string {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return clean(iso);
  const parts = (d: Date) =>
    utc
      ? [
          d.getUTCFullYear(),
          d.getUTCMonth() + 1,
          d.getUTCDate(),
          d.getUTCHours(),
          d.getUTCMinutes(),
          d.getUTCSeconds(),
        ]
      : [d.getFullYear(), d.getMonth() + 1, d.getDate(), d.getHours(), d.getMinutes(), d.getSeconds()];
  const [y, mo, da, h, mi, se] = parts(t) as [number, number, number, number, number, number];
  const [ny, nmo, nda] = parts(now);
  if (y === ny && mo === nmo && da === nda) return `${pad2(h)}:${pad2(mi)}:${pad2(se)}`;
  return `${y}-${pad2(mo)}-${pad2(da)}`;
}

/** A table boxed with +---+ borders, headers centred (left-leaning), cells left-aligned. */
function table(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const centred = headers.map((h, i) => {
    const gap = widths[i]! - h.length;
    const left = Math.floor(gap / 2);
    return ' '.repeat(left) + h + ' '.repeat(gap - left);
  });
  return [
    rule,
    line(centred),
    rule,
    ...rows.map((r) => line(widths.map((w, i) => (r[i] ?? '').padEnd(w)))),
    rule,
  ];
}
