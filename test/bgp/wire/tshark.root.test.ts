/**
 * An independent decoder agrees: every kind of message the codec writes is sent over a real TCP
 * connection between two throwaway network namespaces, captured on the wire, and read back by
 * tshark (Wireshark 4.0). tshark must find nothing malformed, raise no expert warning or error,
 * and decode the same values the test meant to send — written out here by hand, not taken from
 * Twill's own decoder, so the two codecs cannot agree on a mistake.
 *
 * Set-up: namespace A (10.200.0.1) captures on its veth with `tshark -w` and sends the encoded
 * messages with `socat`; namespace B (10.200.0.2) accepts with `socat` and keeps what it received.
 * Node cannot enter a namespace itself, so both ends are child processes.
 *
 * Left out, and why (see tshark-helpers.ts for tshark's limits):
 * - An OPEN whose capabilities outgrow 255 octets (RFC 9072 extended optional parameters):
 *   tshark 4.0 and tcpdump 4.99 predate RFC 9072 and misread it (checked by hand: the codec writes
 *   255, 255, u16 total, 2, u16 length, as RFC 9072 §2 says).
 * - A default route next to other IPv4 prefixes in one NLRI field: tshark's ADD-PATH guess reads
 *   such a block as ADD-PATH (a plain block with 0/0 that also parses with path identifiers), and
 *   the bad guess then breaks every later message in the same TCP segment. 0.0.0.0/0 gets an
 *   UPDATE of its own instead, where the guess is right.
 * - ADD-PATH itself is in: the UPDATE below uses small path identifiers, whose leading zero octets
 *   read as 0/0 prefixes in the plain reading, so tshark's guess picks ADD-PATH as it should.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  BgpError,
  CeaseSubcode,
  emptyCapabilities,
  encodeCease,
  encodeEndOfRib,
  encodeMessage,
  encodeOpen,
  IPV4_UNICAST,
  IPV6_UNICAST,
  KEEPALIVE,
  makeContext,
  makeOpen,
  MsgType,
  notificationFor,
  type PackRequest,
  packUpdates,
  Writer,
} from '../../../src/bgp/wire/index.js';
import { parseIpv4, parsePrefix4 } from '../../../src/net/addr.js';
import { describeSystem } from '../../helpers/env.js';
import { Lab, waitFor } from '../../helpers/netns.js';
import { type Digest, type Dissection, digest, dissect, expertWarnings, tshark } from './tshark-helpers.js';

const PORT = 17179;
const AS4 = makeContext({ as4: true });
const AS2 = makeContext({ as4: false });
const ADDPATH = makeContext({ as4: true, addPathTx: new Set([IPV4_UNICAST]) });
const p4 = (t: string) => parsePrefix4(t);

interface Case {
  name: string;
  /** One message, or several for the packed cases. */
  wire: Buffer;
  /** What tshark must decode from each message. */
  want: Digest[];
}

/**
 * A packUpdates case: every message repeats `each` (its attributes), and the prefixes of all the
 * messages, in order, are `prefixes`.
 */
interface PackedCase {
  name: string;
  wire: Buffer;
  each: Digest;
  prefixes: string[];
}

function packed(req: PackRequest): Buffer {
  const w = new Writer();
  packUpdates(w, req, AS4);
  return w.take();
}

const many4 = Array.from({ length: 1500 }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);
const many6 = Array.from({ length: 600 }, (_, i) => `2001:db8:${(0x1000 + i).toString(16)}::/48`);
const hopsV6 = ['2001:db8::1', 'fe80::1'];

const cases: (Case | PackedCase)[] = [
  {
    name: 'OPEN with every capability',
    wire: encodeOpen(
      makeOpen(4200000001, 90, parseIpv4('10.200.0.1'), {
        multiprotocol: [IPV4_UNICAST, IPV6_UNICAST],
        routeRefresh: true,
        enhancedRouteRefresh: true,
        extendedMessage: true,
        gracefulRestart: {
          restarting: false,
          notification: true,
          time: 120,
          families: [
            { family: IPV4_UNICAST, forwarding: true },
            { family: IPV6_UNICAST, forwarding: false },
          ],
        },
        llgr: {
          families: [
            { family: IPV4_UNICAST, forwarding: true, staleTime: 3600 },
            { family: IPV6_UNICAST, forwarding: false, staleTime: 86400 },
          ],
        },
        addPath: [
          { family: IPV4_UNICAST, mode: 3 },
          { family: IPV6_UNICAST, mode: 1 },
        ],
        fqdn: { hostname: 'node-a', domain: 'twill.test' },
      }),
    ),
    want: [
      {
        type: 1,
        version: 4,
        myAs: 23456, // AS_TRANS: the real AS is in the 4-octet AS capability
        holdTime: 90,
        bgpId: '10.200.0.1',
        // multiprotocol x2, route refresh, enhanced route refresh, extended message, 4-octet AS,
        // graceful restart, ADD-PATH, long-lived graceful restart, FQDN
        caps: [1, 1, 2, 70, 6, 65, 64, 69, 71, 73],
        mp: ['1/1', '2/1'],
        fourOctetAs: 4200000001,
        gr: { restarting: false, notification: true, time: 120, families: ['1/1 F', '2/1'] },
        addPath: ['1/1 3', '2/1 1'],
        // tshark 4.0 shows LLGR as bytes; RFC 9494 §3: AFI, SAFI, flags (F = 0x80), stale time (3 octets)
        capBytes: {
          // ipv4 unicast, F, 3600 s; ipv6 unicast, no F, 86400 s
          71: ['0001', '01', '80', '000e10', '0002', '01', '00', '015180'].join(''),
        },
        fqdn: { hostname: 'node-a', domain: 'twill.test' },
      },
    ],
  },
  {
    name: 'OPEN without capabilities',
    wire: encodeOpen({
      version: 4,
      myAs: 65000,
      holdTime: 180,
      bgpId: parseIpv4('10.200.0.2'),
      caps: emptyCapabilities(),
    }),
    want: [{ type: 1, version: 4, myAs: 65000, holdTime: 180, bgpId: '10.200.0.2', caps: [] }],
  },
  {
    name: 'UPDATE with every attribute on a 4-octet session',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [p4('10.9.0.0/16')],
        attrs: {
          origin: 0,
          asPath: [
            { type: 2, asns: [65001, 4200000001] },
            { type: 1, asns: [65010, 65011] },
          ],
          nextHop: '192.0.2.1',
          med: 50,
          localPref: 200,
          atomicAggregate: true,
          aggregator: { asn: 65001, address: '192.0.2.1' },
          communities: [65000 * 65536 + 100, 0xffffff01],
          originatorId: '10.0.0.9',
          clusterList: ['10.0.0.1', '10.0.0.2'],
          extCommunities: [0x0002fde800000001n, 0x0102c0000201000an, 0x0202fa56ea010007n],
          largeCommunities: [
            [4200000001, 1, 2],
            [65000, 3, 4],
          ],
          // 126 is unassigned; tshark 4.0 reads 99 as its old BGP-LS code point and warns.
          unknown: [{ flags: 0xe0, type: 126, value: Buffer.from('abcd', 'hex') }],
        },
        nlri: [p4('10.1.0.0/24'), p4('10.2.0.0/23'), p4('192.168.1.128/25')],
      },
      AS4,
    ),
    want: [
      {
        type: 2,
        withdrawn: ['10.9.0.0/16'],
        attrTypes: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 126],
        origin: 0,
        asPath: '65001 4200000001 {65010 65011}',
        asSize: 4,
        nextHop: '192.0.2.1',
        med: 50,
        localPref: 200,
        atomicAggregate: true,
        aggregator: '65001 192.0.2.1',
        communities: ['65000:100', '65535:65281'], // 65535:65281 is NO_EXPORT
        originatorId: '10.0.0.9',
        clusterList: ['10.0.0.1', '10.0.0.2'],
        extCommunities: [
          '0x00/0x02 65000:1', // route target, 2-octet AS
          '0x01/0x02 192.0.2.1:10', // route target, IPv4 address
          '0x02/0x02 4200000001:7', // route target, 4-octet AS
        ],
        largeCommunities: ['4200000001:1:2', '65000:3:4'],
        unknownAttrs: ['126 flags 0xe0 length 2'],
        nlri: ['10.1.0.0/24', '10.2.0.0/23', '192.168.1.128/25'],
      },
    ],
  },
  {
    name: 'UPDATE announcing the default route alone',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [],
        attrs: { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '10.200.0.1' },
        nlri: [p4('0.0.0.0/0')],
      },
      AS4,
    ),
    want: [
      {
        type: 2,
        attrTypes: [1, 2, 3],
        origin: 0,
        asPath: '65001',
        asSize: 4,
        nextHop: '10.200.0.1',
        nlri: ['0.0.0.0/0'],
      },
    ],
  },
  {
    name: 'UPDATE on a 2-octet session: AS_TRANS in AS_PATH and AGGREGATOR, the real ones in AS4_*',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [],
        attrs: {
          origin: 2,
          asPath: [
            { type: 2, asns: [65001, 4200000001] },
            { type: 1, asns: [4200000002, 65020] },
          ],
          nextHop: '192.0.2.1',
          aggregator: { asn: 4200000001, address: '192.0.2.9' },
        },
        nlri: [p4('10.3.0.0/24')],
      },
      AS2,
    ),
    want: [
      {
        type: 2,
        attrTypes: [1, 2, 3, 7, 17, 18],
        origin: 2,
        asPath: '65001 23456 {23456 65020}',
        asSize: 2,
        nextHop: '192.0.2.1',
        aggregator: '23456 192.0.2.9',
        as4Path: '65001 4200000001 {4200000002 65020}',
        as4Aggregator: '4200000001 192.0.2.9',
        nlri: ['10.3.0.0/24'],
      },
    ],
  },
  {
    name: 'UPDATE with IPv6 in MP_REACH_NLRI, global and link-local next hop',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [],
        attrs: { origin: 0, asPath: [{ type: 2, asns: [65001] }], med: 10, communities: [65000 * 65536 + 6] },
        nlri: [],
        mpReach: { afi: 2, safi: 1, nextHops: hopsV6, prefixes: ['2001:db8:1::/48', '2001:db8:2::/64'] },
      },
      AS4,
    ),
    want: [
      {
        type: 2,
        attrTypes: [14, 1, 2, 4, 8], // MP attributes first (RFC 7606 §5.1)
        mpReach: { afi: 2, safi: 1, nextHops: hopsV6, prefixes: ['2001:db8:1::/48', '2001:db8:2::/64'] },
        origin: 0,
        asPath: '65001',
        asSize: 4,
        med: 10,
        communities: ['65000:6'],
      },
    ],
  },
  {
    name: 'UPDATE withdrawing IPv6 in MP_UNREACH_NLRI',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [],
        attrs: {},
        nlri: [],
        mpUnreach: { afi: 2, safi: 1, prefixes: ['2001:db8:1::/48', '2001:db8:ff::/56'] },
      },
      AS4,
    ),
    want: [
      {
        type: 2,
        attrTypes: [15],
        mpUnreach: { afi: 2, safi: 1, prefixes: ['2001:db8:1::/48', '2001:db8:ff::/56'] },
      },
    ],
  },
  {
    name: 'UPDATE withdrawing IPv4 in the Withdrawn Routes field',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [p4('10.1.0.0/24'), p4('10.2.0.0/23'), p4('192.168.1.128/25')],
        attrs: {},
        nlri: [],
      },
      AS4,
    ),
    want: [{ type: 2, withdrawn: ['10.1.0.0/24', '10.2.0.0/23', '192.168.1.128/25'] }],
  },
  { name: 'End-of-RIB for IPv4 unicast', wire: encodeEndOfRib(IPV4_UNICAST, AS4), want: [{ type: 2 }] },
  {
    name: 'End-of-RIB for IPv6 unicast',
    wire: encodeEndOfRib(IPV6_UNICAST, AS4),
    want: [{ type: 2, attrTypes: [15], mpUnreach: { afi: 2, safi: 1, prefixes: [] } }],
  },
  {
    name: 'UPDATE with ADD-PATH identifiers',
    wire: encodeMessage(
      {
        type: MsgType.Update,
        withdrawn: [p4('10.5.0.0/24')],
        withdrawnIds: [7],
        attrs: { origin: 0, asPath: [], nextHop: '192.0.2.1' },
        nlri: [p4('10.6.0.0/24')],
        nlriIds: [8],
      },
      ADDPATH,
    ),
    want: [
      {
        type: 2,
        withdrawn: ['10.5.0.0/24 path 7'],
        attrTypes: [1, 2, 3],
        origin: 0,
        asPath: '',
        asSize: 4,
        nextHop: '192.0.2.1',
        nlri: ['10.6.0.0/24 path 8'],
      },
    ],
  },
  {
    name: 'packUpdates: 1500 IPv4 prefixes',
    wire: packed({
      family: IPV4_UNICAST,
      prefixes: many4.map(p4),
      attrs: { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '10.200.0.1', localPref: 100 },
    }),
    each: {
      type: 2,
      attrTypes: [1, 2, 3, 5],
      origin: 0,
      asPath: '65001',
      asSize: 4,
      nextHop: '10.200.0.1',
      localPref: 100,
    },
    prefixes: many4,
  },
  {
    name: 'packUpdates: 600 IPv6 prefixes',
    wire: packed({
      family: IPV6_UNICAST,
      prefixes: many6,
      nextHops: hopsV6,
      attrs: { origin: 0, asPath: [{ type: 2, asns: [65001] }] },
    }),
    each: {
      type: 2,
      attrTypes: [14, 1, 2],
      mpReach: { afi: 2, safi: 1, nextHops: hopsV6, prefixes: [] },
      origin: 0,
      asPath: '65001',
      asSize: 4,
    },
    prefixes: many6,
  },
  {
    name: 'packUpdates: withdrawing 1500 IPv4 prefixes',
    wire: packed({ family: IPV4_UNICAST, prefixes: many4.map(p4), withdraw: true }),
    each: { type: 2 },
    prefixes: many4,
  },
  {
    name: 'packUpdates: withdrawing 600 IPv6 prefixes',
    wire: packed({ family: IPV6_UNICAST, prefixes: many6, withdraw: true }),
    each: { type: 2, attrTypes: [15], mpUnreach: { afi: 2, safi: 1, prefixes: [] } },
    prefixes: many6,
  },
  {
    name: 'NOTIFICATION Cease/Administrative Shutdown with an RFC 8203 message',
    wire: encodeCease(CeaseSubcode.AdministrativeShutdown, 'maintenance — back at 14:00'),
    want: [{ type: 3, code: 6, subcode: 2, shutdownMessage: 'maintenance — back at 14:00' }],
  },
  {
    name: 'NOTIFICATION Cease/Administrative Reset with a message',
    wire: encodeCease(CeaseSubcode.AdministrativeReset, 'rebooting node-a'),
    want: [{ type: 3, code: 6, subcode: 4, shutdownMessage: 'rebooting node-a' }],
  },
  {
    name: 'NOTIFICATION Hold Timer Expired',
    wire: encodeMessage({ type: MsgType.Notification, code: 4, subcode: 0 }, AS4),
    want: [{ type: 3, code: 4, subcode: 0 }],
  },
  {
    name: 'NOTIFICATION Message Header Error/Bad Message Length with the bad length as data',
    wire: notificationFor(new BgpError(1, 2, Buffer.from([0x00, 0x05]), 'bad length 5')),
    want: [{ type: 3, code: 1, subcode: 2, data: '0005' }],
  },
  { name: 'KEEPALIVE', wire: KEEPALIVE, want: [{ type: 4 }] },
  {
    name: 'ROUTE-REFRESH for IPv4 unicast',
    wire: encodeMessage({ type: MsgType.RouteRefresh, afi: 1, safi: 1, subtype: 0 }, AS4),
    want: [{ type: 5, afi: 1, subtype: 0, safi: 1 }],
  },
  {
    name: 'ROUTE-REFRESH Beginning of Route Refresh for IPv6 (RFC 7313)',
    wire: encodeMessage({ type: MsgType.RouteRefresh, afi: 2, safi: 1, subtype: 1 }, AS4),
    want: [{ type: 5, afi: 2, subtype: 1, safi: 1 }],
  },
  {
    name: 'ROUTE-REFRESH End of Route Refresh for IPv6 (RFC 7313)',
    wire: encodeMessage({ type: MsgType.RouteRefresh, afi: 2, safi: 1, subtype: 2 }, AS4),
    want: [{ type: 5, afi: 2, subtype: 2, safi: 1 }],
  },
];

/** The messages in a buffer, by their length fields. */
function split(wire: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < wire.length; ) {
    const len = wire.readUInt16BE(p + 16);
    out.push(wire.subarray(p, p + len));
    p += len;
  }
  return out;
}

/** A digest without its prefixes, and the prefixes. */
function takePrefixes(d: Digest): [Digest, string[]] {
  const rest: Digest = { ...d };
  const found = [...(d.nlri ?? []), ...(d.withdrawn ?? [])];
  delete rest.nlri;
  delete rest.withdrawn;
  if (d.mpReach) {
    found.push(...d.mpReach.prefixes);
    rest.mpReach = { ...d.mpReach, prefixes: [] };
  }
  if (d.mpUnreach) {
    found.push(...d.mpUnreach.prefixes);
    rest.mpUnreach = { ...d.mpUnreach, prefixes: [] };
  }
  return [rest, found];
}

function exited(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`process ${child.pid} still running after ${ms} ms`)), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

describeSystem(
  'tshark decodes what the codec writes',
  { root: true, tools: ['tshark', 'ip', 'ss', 'socat'] },
  () => {
    const lab = new Lab();
    let dir = '';
    let pcap = '';
    const wire = Buffer.concat(cases.map((c) => c.wire));
    const sent = cases.map((c) => split(c.wire));
    let received: Buffer;
    let seen: Dissection;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-tshark-'));
      pcap = join(dir, 'bgp.pcapng');
      const a = lab.ns('tsa');
      const b = lab.ns('tsb');
      const { aIf } = lab.link(a, '10.200.0.1/24', b, '10.200.0.2/24');
      const out = join(dir, 'sent.bin');
      const inbox = join(dir, 'received.bin');
      writeFileSync(out, wire);

      let capLog = '';
      const cap = lab.spawn(a, 'tshark', ['-i', aIf, '-w', pcap, '-f', `tcp port ${PORT}`]);
      cap.stderr?.on('data', (c: Buffer) => {
        capLog += c.toString();
      });
      // tshark prints "Capturing on" before dumpcap has opened the interface (packets sent then
      // were lost); dumpcap writes the file header only once the interface and filter are set.
      await waitFor(
        'the capture to start',
        () => existsSync(pcap) && statSync(pcap).size > 0,
        // tshark loads every dissector before dumpcap starts: seconds, more on a busy machine.
        30_000,
        50,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; tshark said: ${capLog}`);
      });

      const sink = lab.spawn(b, 'socat', ['-u', `TCP-LISTEN:${PORT},reuseaddr`, `CREATE:${inbox}`]);
      await waitFor(
        'the listener',
        () => lab.exec(b, 'ss', ['-Hltn', `sport = :${PORT}`]).includes(`:${PORT}`),
        10_000,
        50,
      );
      lab.exec(a, 'socat', ['-u', `OPEN:${out}`, `TCP:10.200.0.2:${PORT}`]);
      await exited(sink, 10_000);
      received = readFileSync(inbox);

      // dumpcap flushes the file every half second or so: wait for both FINs to be in it.
      await waitFor(
        'both FINs in the capture',
        () =>
          tshark(['-r', pcap, '-Y', 'tcp.flags.fin==1', '-T', 'fields', '-e', 'frame.number'])
            .split('\n')
            .filter(Boolean).length >= 2,
        10_000,
        200,
      );
      cap.kill('SIGINT');
      await exited(cap, 10_000);
      seen = dissect(pcap, PORT);
    }, 90_000);

    afterAll(async () => {
      await lab.cleanup();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('the listener received every octet sent', () => {
      expect(received.equals(wire)).toBe(true);
    });

    it('tshark finds nothing malformed and raises no expert warning or error', () => {
      expect(seen.problems).toEqual([]);
      expect(expertWarnings(pcap, PORT)).toBe('');
    });

    it('tshark finds every message, in order, with its length', () => {
      const want = sent.flat().map((m) => `${m[18]}:${m.length}`);
      const got = seen.messages.map((m) => `${String(m['bgp.type'])}:${String(m['bgp.length'])}`);
      expect(got).toEqual(want);
    });

    let at = 0;
    cases.forEach((c, i) => {
      const first = at;
      const count = split(c.wire).length;
      at += count;
      it(c.name, () => {
        const got = seen.messages.slice(first, first + count).map(digest);
        expect(got.length, 'messages decoded').toBe(sent[i]!.length);
        if ('want' in c) {
          expect(got).toEqual(c.want);
        } else {
          // A packed case must really pack: more than one message, none over 4096 octets.
          expect(count).toBeGreaterThan(1);
          for (const m of sent[i]!) expect(m.length).toBeLessThanOrEqual(4096);
          const parts = got.map(takePrefixes);
          for (const [rest] of parts) expect(rest).toEqual(c.each);
          expect(parts.flatMap(([, p]) => p)).toEqual(c.prefixes);
        }
      });
    });
  },
);
