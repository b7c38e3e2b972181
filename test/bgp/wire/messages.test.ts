/**
 * Codec fixtures, STYLE.md §12 layers 1-3: each fixture is written one commented field per line
 * and expanded into a decode test, an encode test (hex compare) and a round trip.
 */
import { describe, expect, it } from 'vitest';
import { parsePrefix4 } from '../../../src/net/addr.js';
import {
  type CodecContext,
  decodeAll,
  encodeMessage,
  forwardUnknown,
  IPV4_UNICAST,
  IPV6_UNICAST,
  KEEPALIVE,
  type Message,
  makeContext,
  MsgType,
  type OutMessage,
} from '../../../src/bgp/wire/index.js';
import { frame, h } from './hex.js';

const AS4 = makeContext({ as4: true });
const AS2 = makeContext({ as4: false });
const ADDPATH = makeContext({
  as4: true,
  addPathRx: new Set([IPV4_UNICAST]),
  addPathTx: new Set([IPV4_UNICAST]),
});
const p4 = (t: string) => parsePrefix4(t);

interface Fixture {
  name: string;
  ctx: CodecContext;
  wire: Buffer;
  /** The decoded message, less the fields only a decoder adds (errors, action, attrBytes). */
  msg: OutMessage & Record<string, unknown>;
  /** End-of-RIB family the decoder must report. */
  endOfRib?: number;
}

const fixtures: Fixture[] = [
  {
    name: 'OPEN without optional parameters',
    ctx: AS2,
    wire: frame(
      MsgType.Open,
      h`
      04            # version 4
      fde8          # my AS 65000
      00b4          # hold time 180
      0a000001      # BGP identifier 10.0.0.1
      00            # optional parameters length 0
    `,
    ),
    msg: {
      type: MsgType.Open,
      version: 4,
      myAs: 65000,
      holdTime: 180,
      bgpId: 0x0a000001,
      caps: {
        multiprotocol: [],
        routeRefresh: false,
        enhancedRouteRefresh: false,
        extendedMessage: false,
        addPath: [],
        unknown: [],
      },
    },
  },
  {
    name: 'OPEN with every capability Twill knows and one it does not',
    ctx: AS2,
    wire: frame(
      MsgType.Open,
      h`
      04                        # version 4
      5ba0                      # my AS = AS_TRANS (23456)
      005a                      # hold time 90
      c0000201                  # BGP identifier 192.0.2.1
      4d                        # optional parameters length 77
      02 4b                     # parameter: capabilities, 75 octets
      01 04 0001 00 01          # multiprotocol ipv4 unicast
      01 04 0002 00 01          # multiprotocol ipv6 unicast
      02 00                     # route refresh
      46 00                     # enhanced route refresh
      06 00                     # extended message
      41 04 fa56ea01            # 4-octet AS 4200000001
      40 0a                     # graceful restart, 10 octets
      4078                      #   R=0 N=1, restart time 120
      0001 01 80                #   ipv4 unicast, forwarding preserved
      0002 01 00                #   ipv6 unicast
      45 08                     # ADD-PATH, 8 octets
      0001 01 03                #   ipv4 unicast send+receive
      0002 01 01                #   ipv6 unicast receive
      47 07                     # long-lived graceful restart
      0001 01 80 000e10         #   ipv4 unicast, F bit, stale time 3600
      49 0e                     # FQDN, 14 octets
      05 6e6f646531             #   hostname "node1"
      07 636c7573746572         #   domain "cluster"
      83 02 beef                # unknown capability 131
    `,
    ),
    msg: {
      type: MsgType.Open,
      version: 4,
      myAs: 23456,
      holdTime: 90,
      bgpId: 0xc0000201,
      caps: {
        multiprotocol: [IPV4_UNICAST, IPV6_UNICAST],
        routeRefresh: true,
        enhancedRouteRefresh: true,
        extendedMessage: true,
        fourOctetAs: 4200000001,
        gracefulRestart: {
          restarting: false,
          notification: true,
          time: 120,
          families: [
            { family: IPV4_UNICAST, forwarding: true },
            { family: IPV6_UNICAST, forwarding: false },
          ],
        },
        addPath: [
          { family: IPV4_UNICAST, mode: 3 },
          { family: IPV6_UNICAST, mode: 1 },
        ],
        llgr: { families: [{ family: IPV4_UNICAST, forwarding: true, staleTime: 3600 }] },
        fqdn: { hostname: 'node1', domain: 'cluster' },
        unknown: [{ code: 131, value: Buffer.from('beef', 'hex') }],
      },
    },
  },
  {
    name: 'UPDATE with every IPv4 attribute on a 4-octet session',
    ctx: AS4,
    wire: frame(
      MsgType.Update,
      h`
      0003                      # withdrawn routes length 3
      10 0a09                   #   10.9.0.0/16
      0067                      # total path attribute length 103
      40 01 01 00               # ORIGIN IGP
      40 02 0a                  # AS_PATH, 10 octets
      02 02 0000fde9 fa56ea01   #   AS_SEQUENCE 65001 4200000001
      40 03 04 c0000201         # NEXT_HOP 192.0.2.1
      80 04 04 00000032         # MULTI_EXIT_DISC 50
      40 05 04 000000c8         # LOCAL_PREF 200
      40 06 00                  # ATOMIC_AGGREGATE
      c0 07 08 0000fde9 c0000201  # AGGREGATOR AS 65001, 192.0.2.1
      c0 08 08 fde80064 fde800c8  # COMMUNITIES 65000:100 65000:200
      80 09 04 0a000009         # ORIGINATOR_ID 10.0.0.9
      80 0a 04 0a000001         # CLUSTER_LIST 10.0.0.1
      c0 10 08 0002fde800000001 # EXTENDED_COMMUNITIES rt 65000:1
      c0 20 0c fa56ea01 00000001 00000002  # LARGE_COMMUNITY 4200000001:1:2
      18 0a0100                 # NLRI 10.1.0.0/24
      17 0a0200                 #      10.2.0.0/23
      00                        #      0.0.0.0/0
      19 c0a80180               #      192.168.1.128/25
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [p4('10.9.0.0/16')],
      attrs: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001, 4200000001] }],
        nextHop: '192.0.2.1',
        med: 50,
        localPref: 200,
        atomicAggregate: true,
        aggregator: { asn: 65001, address: '192.0.2.1' },
        communities: [65000 * 65536 + 100, 65000 * 65536 + 200],
        originatorId: '10.0.0.9',
        clusterList: ['10.0.0.1'],
        extCommunities: [0x0002fde800000001n],
        largeCommunities: [[4200000001, 1, 2]],
      },
      nlri: [p4('10.1.0.0/24'), p4('10.2.0.0/23'), p4('0.0.0.0/0'), p4('192.168.1.128/25')],
    },
  },
  {
    name: 'UPDATE on a 2-octet session: AS_TRANS in AS_PATH, the real path in AS4_PATH',
    ctx: AS2,
    wire: frame(
      MsgType.Update,
      h`
      0000                      # no withdrawn routes
      0021                      # total path attribute length 33
      40 01 01 00               # ORIGIN IGP
      40 02 06 02 02 fde9 5ba0  # AS_PATH AS_SEQUENCE 65001 23456
      40 03 04 c0000201         # NEXT_HOP 192.0.2.1
      c0 11 0a 02 02 0000fde9 fa56ea01  # AS4_PATH AS_SEQUENCE 65001 4200000001
      18 0a0100                 # NLRI 10.1.0.0/24
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [],
      attrs: { origin: 0, asPath: [{ type: 2, asns: [65001, 4200000001] }], nextHop: '192.0.2.1' },
      nlri: [p4('10.1.0.0/24')],
    },
  },
  {
    name: 'UPDATE with IPv6 prefixes in MP_REACH_NLRI, global and link-local next hop',
    ctx: AS4,
    wire: frame(
      MsgType.Update,
      h`
      0000                      # no withdrawn routes
      003f                      # total path attribute length 63
      80 0e 35                  # MP_REACH_NLRI, 53 octets
      0002 01                   #   AFI ipv6, SAFI unicast
      20                        #   next hop length 32
      20010db8000000000000000000000001  # 2001:db8::1
      fe800000000000000000000000000001  # fe80::1
      00                        #   reserved
      30 20010db80001           #   2001:db8:1::/48
      40 20010db800020000       #   2001:db8:2::/64
      40 01 01 00               # ORIGIN IGP
      40 02 00                  # AS_PATH empty
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [],
      attrs: { origin: 0, asPath: [] },
      nlri: [],
      mpReach: {
        afi: 2,
        safi: 1,
        nextHops: ['2001:db8::1', 'fe80::1'],
        prefixes: ['2001:db8:1::/48', '2001:db8:2::/64'],
      },
    },
  },
  {
    name: 'UPDATE withdrawing IPv6 in MP_UNREACH_NLRI',
    ctx: AS4,
    wire: frame(
      MsgType.Update,
      h`
      0000                      # no withdrawn routes
      000d                      # total path attribute length 13
      80 0f 0a                  # MP_UNREACH_NLRI, 10 octets
      0002 01                   #   ipv6 unicast
      30 20010db80001           #   2001:db8:1::/48
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [],
      attrs: {},
      nlri: [],
      mpUnreach: { afi: 2, safi: 1, prefixes: ['2001:db8:1::/48'] },
    },
  },
  {
    name: 'End-of-RIB for IPv4 unicast',
    ctx: AS4,
    wire: frame(
      MsgType.Update,
      h`
      0000                      # no withdrawn routes
      0000                      # no path attributes
    `,
    ),
    msg: { type: MsgType.Update, withdrawn: [], attrs: {}, nlri: [] },
    endOfRib: IPV4_UNICAST,
  },
  {
    name: 'End-of-RIB for IPv6 unicast',
    ctx: AS4,
    wire: frame(
      MsgType.Update,
      h`
      0000                      # no withdrawn routes
      0006                      # total path attribute length 6
      80 0f 03 0002 01          # MP_UNREACH_NLRI ipv6 unicast, nothing in it
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [],
      attrs: {},
      nlri: [],
      mpUnreach: { afi: 2, safi: 1, prefixes: [] },
    },
    endOfRib: IPV6_UNICAST,
  },
  {
    name: 'UPDATE with ADD-PATH identifiers',
    ctx: ADDPATH,
    wire: frame(
      MsgType.Update,
      h`
      0008                      # withdrawn routes length 8
      00000002 18 0a0200        #   path 2: 10.2.0.0/24
      000e                      # total path attribute length 14
      40 01 01 00               # ORIGIN IGP
      40 02 00                  # AS_PATH empty
      40 03 04 c0000201         # NEXT_HOP 192.0.2.1
      00000001 18 0a0100        # NLRI path 1: 10.1.0.0/24
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [p4('10.2.0.0/24')],
      withdrawnIds: [2],
      attrs: { origin: 0, asPath: [], nextHop: '192.0.2.1' },
      nlri: [p4('10.1.0.0/24')],
      nlriIds: [1],
    },
  },
  {
    name: 'UPDATE carrying an unknown optional transitive attribute (Partial set)',
    ctx: AS4,
    wire: frame(
      MsgType.Update,
      h`
      0000                      # no withdrawn routes
      0013                      # total path attribute length 19
      40 01 01 00               # ORIGIN IGP
      40 02 00                  # AS_PATH empty
      40 03 04 c0000201         # NEXT_HOP 192.0.2.1
      e0 63 02 abcd             # attribute 99, optional transitive partial, 2 octets
      18 0a0100                 # NLRI 10.1.0.0/24
    `,
    ),
    msg: {
      type: MsgType.Update,
      withdrawn: [],
      attrs: {
        origin: 0,
        asPath: [],
        nextHop: '192.0.2.1',
        unknown: [{ flags: 0xe0, type: 99, value: Buffer.from('abcd', 'hex') }],
      },
      nlri: [p4('10.1.0.0/24')],
    },
  },
  {
    name: 'NOTIFICATION Cease/Administrative Shutdown with an RFC 8203 message',
    ctx: AS4,
    wire: frame(
      MsgType.Notification,
      h`
      06                        # Cease
      02                        # Administrative Shutdown
      0b 6d61696e74656e616e6365 # message "maintenance"
    `,
    ),
    msg: {
      type: MsgType.Notification,
      code: 6,
      subcode: 2,
      data: h`0b 6d61696e74656e616e6365`,
      shutdownMessage: 'maintenance',
    },
  },
  {
    name: 'NOTIFICATION Message Header Error/Bad Message Length',
    ctx: AS4,
    wire: frame(
      MsgType.Notification,
      h`
      01                        # Message Header Error
      02                        # Bad Message Length
      0005                      # the bad length field
    `,
    ),
    msg: { type: MsgType.Notification, code: 1, subcode: 2, data: h`0005` },
  },
  { name: 'KEEPALIVE', ctx: AS4, wire: frame(MsgType.Keepalive, h``), msg: { type: MsgType.Keepalive } },
  {
    name: 'ROUTE-REFRESH for IPv4 unicast',
    ctx: AS4,
    wire: frame(
      MsgType.RouteRefresh,
      h`
      0001                      # AFI ipv4
      00                        # subtype: normal request
      01                        # SAFI unicast
    `,
    ),
    msg: { type: MsgType.RouteRefresh, afi: 1, safi: 1, subtype: 0 },
  },
  {
    name: 'ROUTE-REFRESH Beginning of Route Refresh for IPv6 (RFC 7313)',
    ctx: AS4,
    wire: frame(
      MsgType.RouteRefresh,
      h`
      0002                      # AFI ipv6
      01                        # subtype: BoRR
      01                        # SAFI unicast
    `,
    ),
    msg: { type: MsgType.RouteRefresh, afi: 2, safi: 1, subtype: 1 },
  },
];

function strip(m: Message): Record<string, unknown> {
  const { errors, action, attrBytes, endOfRib, ...rest } = m as Message & Record<string, unknown>;
  return rest;
}

describe('codec fixtures', () => {
  for (const f of fixtures) {
    describe(f.name, () => {
      it('decodes', () => {
        const [m, ...more] = decodeAll(f.wire, f.ctx);
        expect(more).toEqual([]);
        expect(strip(m!)).toEqual(f.msg);
        if (m!.type === MsgType.Update) {
          expect(m!.errors).toEqual([]);
          expect(m!.endOfRib).toBe(f.endOfRib);
        }
      });
      it('encodes to the same bytes', () => {
        expect(encodeMessage(f.msg, f.ctx).toString('hex')).toBe(f.wire.toString('hex'));
      });
      it('round-trips', () => {
        const [m] = decodeAll(encodeMessage(f.msg, f.ctx), f.ctx);
        expect(strip(m!)).toEqual(f.msg);
      });
    });
  }

  it('every UPDATE decodes to one shape: the same fields, in the same order', () => {
    // The session's UPDATE path is compiled for the shape it meets; an End-of-RIB, an ADD-PATH or
    // an MP_REACH_NLRI UPDATE with fields of its own would throw that code away (wire/update.ts).
    const shapes = new Set<string>();
    let updates = 0;
    for (const f of fixtures) {
      const [m] = decodeAll(f.wire, f.ctx);
      if (m!.type !== MsgType.Update) continue;
      updates++;
      shapes.add(Object.keys(m!).join(','));
    }
    expect(updates).toBeGreaterThan(5);
    expect([...shapes]).toEqual([
      'withdrawn,withdrawnIds,attrs,nlri,nlriIds,mpReach,mpUnreach,errors,action,endOfRib,attrBytes,type',
    ]);
  });

  it('KEEPALIVE is one constant buffer', () => {
    expect(encodeMessage({ type: MsgType.Keepalive }, AS4)).toBe(KEEPALIVE);
    expect(KEEPALIVE.toString('hex')).toBe(`${'ff'.repeat(16)}001304`);
  });
});

describe('unknown attributes passed on to another peer (RFC 4271 §5)', () => {
  it('optional transitive ones keep going with Partial set; optional non-transitive ones stop', () => {
    const v = Buffer.from('ab', 'hex');
    expect(
      forwardUnknown([
        { flags: 0xc0, type: 99, value: v },
        { flags: 0x80, type: 100, value: v },
        { flags: 0xe0, type: 101, value: v },
      ]),
    ).toEqual([
      { flags: 0xe0, type: 99, value: v },
      { flags: 0xe0, type: 101, value: v },
    ]);
    expect(forwardUnknown([{ flags: 0x80, type: 100, value: v }])).toBeUndefined();
  });
});
