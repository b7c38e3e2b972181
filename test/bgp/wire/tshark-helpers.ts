/**
 * Reading a capture back with tshark (Wireshark 4.0) and boiling each BGP message it decoded
 * down to a `Digest`: the values a test can compare with what the sender meant to encode.
 *
 * tshark runs once per capture with `-T json --no-duplicate-keys` (repeated fields of one tree
 * node become arrays, in wire order) and the capture's port decoded as BGP. Every node of every
 * frame is searched for `_ws.malformed` and for expert items of warning or error severity, so a
 * problem anywhere in the dissection (TCP reassembly included) is reported, not only inside BGP.
 *
 * Field names are tshark's (`tshark -G fields`); a digest leaves out what tshark did not show, so
 * a field tshark stops decoding makes the comparison fail rather than pass with less.
 *
 * What tshark 4.0 cannot tell us, and the test must work around:
 * - it does not track the OPEN exchange: ADD-PATH in UPDATEs is guessed per NLRI block (a
 *   block that parses both ways is read as plain, unless the plain reading holds a 0/0 that is
 *   not its only prefix — then it is read as ADD-PATH);
 * - the AS number size in AS_PATH/AGGREGATOR is guessed per message (pref `bgp.asn_len`);
 * - long-lived graceful restart (capability 71) is shown as raw bytes;
 * - the RFC 9072 extended optional parameters form of OPEN is not understood.
 */
import { execFileSync } from 'node:child_process';

export type Tree = Record<string, unknown>;

/** tshark's severity values (epan/proto.h PI_WARN, PI_ERROR). */
const PI_WARN = 0x00600000;

export function tshark(args: string[]): string {
  return execFileSync('tshark', args, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

export interface Dissection {
  /** Every BGP message tshark found, in capture order. */
  messages: Tree[];
  /** "frame N: message" for each malformed mark and each warning/error expert item. */
  problems: string[];
}

/** Decode `pcap` with TCP port `port` as BGP. */
export function dissect(pcap: string, port: number): Dissection {
  const json = tshark(['-r', pcap, '-d', `tcp.port==${port},bgp`, '-T', 'json', '--no-duplicate-keys']);
  const packets = JSON.parse(json) as { _source: { layers: Tree } }[];
  const messages: Tree[] = [];
  const problems: string[] = [];
  for (const p of packets) {
    const layers = p._source.layers;
    const frame = str((layers.frame as Tree | undefined)?.['frame.number']);
    for (const m of list(layers.bgp)) messages.push(m as Tree);
    walk(layers, (key, value) => {
      if (key === '_ws.malformed') problems.push(`frame ${frame}: malformed (${JSON.stringify(value)})`);
      if (key === '_ws.expert') {
        for (const e of list(value) as Tree[]) {
          if (Number(e['_ws.expert.severity']) >= PI_WARN)
            problems.push(`frame ${frame}: ${str(e['_ws.expert.message'])}`);
        }
      }
    });
  }
  return { messages, problems };
}

/** The warning and error sections of `tshark -z expert` (empty when there are none). */
export function expertWarnings(pcap: string, port: number): string {
  const out = tshark(['-r', pcap, '-d', `tcp.port==${port},bgp`, '-q', '-z', 'expert,warn']);
  return out.includes('Errors (') || out.includes('Warns (') ? out : '';
}

function walk(node: unknown, visit: (key: string, value: unknown) => void): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, visit);
  } else if (node !== null && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      visit(k, v);
      walk(v, visit);
    }
  }
}

/** A repeated field is an array, a single one is not: always an array. */
function list(v: unknown): unknown[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function str(v: unknown): string {
  if (typeof v !== 'string') throw new Error(`expected one tshark value, got ${JSON.stringify(v)}`);
  return v;
}

function num(v: unknown): number {
  const s = str(v);
  return s.startsWith('0x') ? Number.parseInt(s, 16) : Number(s);
}

/** Every value of `key` anywhere under `node`, in tree order (arrays flattened). */
export function find(node: unknown, key: string): unknown[] {
  const out: unknown[] = [];
  walk(node, (k, v) => {
    if (k === key) out.push(...list(v));
  });
  return out;
}

/** Prefixes under `node` whose address field is `addrKey`, as "addr/len" (+ " path N"). */
function prefixes(node: unknown, addrKey: string): string[] {
  const out: string[] = [];
  walk(node, (_k, v) => {
    for (const o of list(v)) {
      if (o === null || typeof o !== 'object' || Array.isArray(o) || !(addrKey in o)) continue;
      const t = o as Tree;
      const id = t['bgp.nlri_path_id'];
      out.push(
        `${str(t[addrKey])}/${str(t['bgp.prefix_length'])}${id === undefined ? '' : ` path ${str(id)}`}`,
      );
    }
  });
  return out;
}

/** What tshark decoded from one message, in plain values. Keys are absent when tshark showed nothing. */
export interface Digest {
  type: number;
  // OPEN
  version?: number;
  myAs?: number;
  holdTime?: number;
  bgpId?: string;
  /** Capability codes in wire order. */
  caps?: number[];
  /** Multiprotocol families as "afi/safi". */
  mp?: string[];
  fourOctetAs?: number;
  gr?: { restarting: boolean; notification: boolean; time: number; families: string[] };
  /** ADD-PATH as "afi/safi send-receive". */
  addPath?: string[];
  fqdn?: { hostname: string; domain: string };
  /** Raw values of capabilities tshark shows only as bytes, by code, as hex. */
  capBytes?: Record<number, string>;
  // UPDATE
  withdrawn?: string[];
  nlri?: string[];
  /** Attribute type codes in wire order. */
  attrTypes?: number[];
  origin?: number;
  /** "65001 4200000001 {65010 65011}" */
  asPath?: string;
  /** Octets per AS number tshark used for AS_PATH (its own guess). */
  asSize?: 2 | 4;
  as4Path?: string;
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: true;
  /** "AS address" */
  aggregator?: string;
  as4Aggregator?: string;
  /** "high:low", sorted (tshark lists well-known communities apart from the others). */
  communities?: string[];
  originatorId?: string;
  clusterList?: string[];
  /** "type/subtype value:value" as tshark splits them, e.g. "0x00/0x02 65000:1". */
  extCommunities?: string[];
  /** "global:local1:local2" */
  largeCommunities?: string[];
  mpReach?: { afi: number; safi: number; nextHops: string[]; prefixes: string[] };
  mpUnreach?: { afi: number; safi: number; prefixes: string[] };
  /** Attributes tshark does not know: "type flags 0x.. length n". */
  unknownAttrs?: string[];
  // NOTIFICATION
  code?: number;
  subcode?: number;
  /** Data tshark shows as bytes, as hex. */
  data?: string;
  shutdownMessage?: string;
  // ROUTE-REFRESH
  afi?: number;
  safi?: number;
  subtype?: number;
}

const hex = (v: unknown) => str(v).replaceAll(':', '');

export function digest(m: Tree): Digest {
  const type = num(m['bgp.type']);
  const d: Digest = { type };
  switch (type) {
    case 1:
      openDigest(m, d);
      break;
    case 2:
      updateDigest(m, d);
      break;
    case 3: {
      d.code = num(m['bgp.notify.major_error']);
      const sub = Object.keys(m).find((k) => k.startsWith('bgp.notify.minor_error'));
      if (sub !== undefined && sub !== 'bgp.notify.minor_data') d.subcode = num(m[sub]);
      if (m['bgp.notify.minor_data'] !== undefined) d.data = hex(m['bgp.notify.minor_data']);
      if (m['bgp.notify.communication'] !== undefined) d.shutdownMessage = str(m['bgp.notify.communication']);
      break;
    }
    case 5:
      d.afi = num(m['bgp.route_refresh.afi']);
      d.subtype = num(m['bgp.route_refresh.subtype']);
      d.safi = num(m['bgp.route_refresh.safi']);
      break;
  }
  return d;
}

function openDigest(m: Tree, d: Digest): void {
  d.version = num(m['bgp.open.version']);
  d.myAs = num(m['bgp.open.myas']);
  d.holdTime = num(m['bgp.open.holdtime']);
  d.bgpId = str(m['bgp.open.identifier']);
  const caps = find(m, 'bgp.cap') as Tree[];
  d.caps = caps.map((c) => num(c['bgp.cap.type']));
  for (const c of caps) {
    const code = num(c['bgp.cap.type']);
    if (code === 1) d.mp = [...(d.mp ?? []), `${num(c['bgp.cap.mp.afi'])}/${num(c['bgp.cap.mp.safi'])}`];
    if (code === 65) d.fourOctetAs = num(c['bgp.cap.4as']);
    if (code === 64) {
      const timers = c['bgp.cap.gr.timers_tree'] as Tree;
      const afis = list(c['bgp.cap.gr.afi']);
      const safis = list(c['bgp.cap.gr.safi']);
      const pfs = find(c['bgp.cap.gr.flag_tree'], 'bgp.cap.gr.flag.pfs');
      d.gr = {
        restarting: num(timers['bgp.cap.gr.timers.restart_flag']) === 1,
        notification: num(timers['bgp.cap.gr.timers.notification_flag']) === 1,
        time: num(timers['bgp.cap.gr.timers.restart_time']),
        families: afis.map((a, i) => `${num(a)}/${num(safis[i])}${num(pfs[i]) ? ' F' : ''}`),
      };
    }
    if (code === 69) {
      const safis = list(c['bgp.cap.ap.safi']);
      const modes = list(c['bgp.cap.ap.sendreceive']);
      d.addPath = list(c['bgp.cap.ap.afi']).map((a, i) => `${num(a)}/${num(safis[i])} ${num(modes[i])}`);
    }
    if (code === 73) {
      d.fqdn = {
        hostname: str(c['bgp.cap.orf.fqdn.hostname']),
        domain: str(c['bgp.cap.orf.fqdn.domain_name']),
      };
    }
    if (c['bgp.cap.unknown'] !== undefined) d.capBytes = { ...d.capBytes, [code]: hex(c['bgp.cap.unknown']) };
  }
}

function asPathText(attr: Tree): { text: string; size: 2 | 4 } {
  let size: 2 | 4 = 4;
  const segs = (find(attr, 'bgp.update.path_attribute.as_path_segment') as Tree[]).map((s) => {
    const as2 = s['bgp.update.path_attribute.as_path_segment.as2'];
    if (as2 !== undefined) size = 2;
    const asns = list(as2 ?? s['bgp.update.path_attribute.as_path_segment.as4']).map(num);
    const t = num(s['bgp.update.path_attribute.as_path_segment.type']);
    return t === 1 ? `{${asns.join(' ')}}` : asns.join(' ');
  });
  return { text: segs.join(' '), size };
}

function updateDigest(m: Tree, d: Digest): void {
  const w = prefixes(m['bgp.update.withdrawn_routes'], 'bgp.withdrawn_prefix');
  if (w.length) d.withdrawn = w;
  const n = prefixes(m['bgp.update.nlri'], 'bgp.nlri_prefix');
  if (n.length) d.nlri = n;
  const attrs = find(m['bgp.update.path_attributes'], 'bgp.update.path_attribute') as Tree[];
  if (attrs.length) d.attrTypes = [];
  for (const a of attrs) {
    const t = num(a['bgp.update.path_attribute.type_code']);
    d.attrTypes!.push(t);
    const f = (k: string) => a[`bgp.update.path_attribute.${k}`];
    switch (t) {
      case 1:
        d.origin = num(f('origin'));
        break;
      case 2: {
        const p = asPathText(a);
        d.asPath = p.text;
        d.asSize = p.size;
        break;
      }
      case 3:
        d.nextHop = str(f('next_hop'));
        break;
      case 4:
        d.med = num(f('multi_exit_disc'));
        break;
      case 5:
        d.localPref = num(f('local_pref'));
        break;
      case 6:
        d.atomicAggregate = true;
        break;
      case 7:
        d.aggregator = `${num(f('aggregator_as'))} ${str(f('aggregator_origin'))}`;
        break;
      case 8: {
        const regular = find(a, 'bgp.update.path_attribute.community') as Tree[];
        const wellKnown = find(a, 'bgp.update.path_attribute.community_wellknown').map(num);
        d.communities = [
          ...regular.map(
            (c) =>
              `${num(c['bgp.update.path_attribute.community_as'])}:${num(c['bgp.update.path_attribute.community_value'])}`,
          ),
          ...wellKnown.map((c) => `${Math.floor(c / 65536)}:${c % 65536}`),
        ].sort();
        break;
      }
      case 9:
        d.originatorId = str(f('originator_id'));
        break;
      case 10:
        d.clusterList = find(a, 'bgp.path_attribute.cluster_id').map(str);
        break;
      case 14: {
        const hops = [
          ...find(a, 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv4'),
          ...find(a, 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6'),
          ...find(a, 'bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local'),
        ].map(str);
        const nlri = f('mp_reach_nlri');
        d.mpReach = {
          afi: num(f('mp_reach_nlri.afi')),
          safi: num(f('mp_reach_nlri.safi')),
          nextHops: hops,
          prefixes: [
            ...prefixes(nlri, 'bgp.mp_reach_nlri_ipv4_prefix'),
            ...prefixes(nlri, 'bgp.mp_reach_nlri_ipv6_prefix'),
          ],
        };
        break;
      }
      case 15: {
        const nlri = f('mp_unreach_nlri');
        d.mpUnreach = {
          afi: num(f('mp_unreach_nlri.afi')),
          safi: num(f('mp_unreach_nlri.safi')),
          prefixes: [
            ...prefixes(nlri, 'bgp.mp_unreach_nlri_ipv4_prefix'),
            ...prefixes(nlri, 'bgp.mp_unreach_nlri_ipv6_prefix'),
          ],
        };
        break;
      }
      case 16:
        d.extCommunities = (find(a, 'bgp.ext_community') as Tree[]).map((c) => {
          const keys = Object.keys(c);
          const sub = keys.find((k) => k.startsWith('bgp.ext_com.stype'));
          const values = keys.filter((k) => k.startsWith('bgp.ext_com.value')).map((k) => str(c[k]));
          return `${str(c['bgp.ext_com.type'])}/${sub ? str(c[sub]) : '?'} ${values.join(':')}`;
        });
        break;
      case 17:
        d.as4Path = asPathText(a).text;
        break;
      case 18:
        d.as4Aggregator = `${num(f('aggregator_as'))} ${str(f('aggregator_origin'))}`;
        break;
      case 32:
        d.largeCommunities = (find(a, 'bgp.large_communities_tree') as Tree[]).map(
          (c) =>
            `${num(c['bgp.large_communities.ga'])}:${num(c['bgp.large_communities.ldp1'])}:${num(c['bgp.large_communities.ldp2'])}`,
        );
        break;
      default:
        d.unknownAttrs = [
          ...(d.unknownAttrs ?? []),
          `${t} flags ${str(f('flags'))} length ${num(f('length'))}`,
        ];
    }
  }
}
