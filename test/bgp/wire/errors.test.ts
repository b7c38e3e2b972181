/**
 * Every malformed case of RFC 4271 §6.1-6.3 and RFC 7606 §7, with the exact code, subcode, data
 * and action each must produce (STYLE.md §12 layer 4). A row that decodes must leave the session
 * up and report its errors on the UPDATE; a row that resets must throw the BgpError that becomes
 * the NOTIFICATION.
 */
import { describe, expect, it } from 'vitest';
import { parsePrefix4 } from '../../../src/net/addr.js';
import {
  BgpError,
  type CodecContext,
  checkOpen,
  decodeAll,
  decodeOpen,
  type DecodedUpdate,
  type ErrorAction,
  makeContext,
  MsgType,
} from '../../../src/bgp/wire/index.js';
import { ACTION, AS_PATH_EMPTY, frame, h, NEXT_HOP, NLRI_10_1, ORIGIN_IGP, update } from './hex.js';

const AS4 = makeContext({ as4: true });
const AS2 = makeContext({ as4: false });

interface Row {
  name: string;
  wire: Buffer;
  ctx?: CodecContext;
  code: number;
  subcode: number;
  /** Expected NOTIFICATION data, hex ('' for none). */
  data: string;
  action: ErrorAction;
  /** For non-fatal rows: a check on the decoded UPDATE. */
  check?: (u: DecodedUpdate) => void;
}

function decodeOne(wire: Buffer, ctx: CodecContext) {
  const [m] = decodeAll(wire, ctx);
  return m!;
}

/** A well-formed route around one attribute under test. */
const withAttr = (attr: Buffer, extra = Buffer.alloc(0)) =>
  update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP, attr, extra]), NLRI_10_1);

const headerRows: Row[] = [
  {
    name: 'marker not all ones -> 1/1 Connection Not Synchronized',
    wire: Buffer.concat([h`ffffffffffffffffffffffffffff00ff 0013 04`]),
    code: 1,
    subcode: 1,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'length 18 -> 1/2 with the length',
    wire: frame(4, h``, 18),
    code: 1,
    subcode: 2,
    data: '0012',
    action: ACTION.reset,
  },
  {
    name: 'length 4097 -> 1/2 with the length',
    wire: frame(2, Buffer.alloc(4078), 4097),
    code: 1,
    subcode: 2,
    data: '1001',
    action: ACTION.reset,
  },
  {
    name: 'unknown type 6 -> 1/3 with the type',
    wire: frame(6, h``),
    code: 1,
    subcode: 3,
    data: '06',
    action: ACTION.reset,
  },
  {
    name: 'unknown type 0 -> 1/3 with the type',
    wire: frame(0, h``),
    code: 1,
    subcode: 3,
    data: '00',
    action: ACTION.reset,
  },
  {
    name: 'KEEPALIVE of 20 octets -> 1/2',
    wire: frame(4, h`00`),
    code: 1,
    subcode: 2,
    data: '0014',
    action: ACTION.reset,
  },
  {
    name: 'OPEN of 28 octets -> 1/2',
    wire: frame(1, Buffer.alloc(9)),
    code: 1,
    subcode: 2,
    data: '001c',
    action: ACTION.reset,
  },
  {
    name: 'UPDATE of 22 octets -> 1/2',
    wire: frame(2, Buffer.alloc(3)),
    code: 1,
    subcode: 2,
    data: '0016',
    action: ACTION.reset,
  },
  {
    name: 'NOTIFICATION of 20 octets -> 1/2',
    wire: frame(3, h`06`),
    code: 1,
    subcode: 2,
    data: '0014',
    action: ACTION.reset,
  },
  {
    name: 'ROUTE-REFRESH of 22 octets -> 1/2',
    wire: frame(5, h`000100`),
    code: 1,
    subcode: 2,
    data: '0016',
    action: ACTION.reset,
  },
  {
    name: 'ROUTE-REFRESH of 24 octets -> 7/1 with the whole message (RFC 7313 §5)',
    wire: frame(5, h`0001 01 01 00`),
    code: 7,
    subcode: 1,
    data: frame(5, h`0001 01 01 00`).toString('hex'),
    action: ACTION.reset,
  },
];

const openRows: Row[] = [
  {
    name: 'version 3 -> 2/1 with our version 4',
    wire: frame(1, h`03 fde8 00b4 0a000001 00`),
    code: 2,
    subcode: 1,
    data: '0004',
    action: ACTION.reset,
  },
  {
    name: 'AS 0 -> 2/2 (RFC 7607)',
    wire: frame(1, h`04 0000 00b4 0a000001 00`),
    code: 2,
    subcode: 2,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'hold time 1 -> 2/6',
    wire: frame(1, h`04 fde8 0001 0a000001 00`),
    code: 2,
    subcode: 6,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'hold time 2 -> 2/6',
    wire: frame(1, h`04 fde8 0002 0a000001 00`),
    code: 2,
    subcode: 6,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'BGP identifier 0 -> 2/3',
    wire: frame(1, h`04 fde8 00b4 00000000 00`),
    code: 2,
    subcode: 3,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'optional parameter type 1 (authentication) -> 2/4',
    wire: frame(1, h`04 fde8 00b4 0a000001 03 01 01 00`),
    code: 2,
    subcode: 4,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'optional parameters length past the message -> 1/2',
    wire: frame(1, h`04 fde8 00b4 0a000001 05 02 02 02 00`),
    code: 1,
    subcode: 2,
    data: '0021',
    action: ACTION.reset,
  },
  {
    name: 'capability overrunning its parameter -> 2/0',
    wire: frame(1, h`04 fde8 00b4 0a000001 04 02 02 41 04`),
    code: 2,
    subcode: 0,
    data: '',
    action: ACTION.reset,
  },
  {
    name: '4-octet AS capability of 2 octets -> 2/0',
    wire: frame(1, h`04 fde8 00b4 0a000001 06 02 04 41 02 fde8`),
    code: 2,
    subcode: 0,
    data: '',
    action: ACTION.reset,
  },
];

const updateResetRows: Row[] = [
  {
    name: 'withdrawn routes length past the message -> 3/1',
    wire: frame(2, h`0010 0000`),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'total path attribute length past the message -> 3/1',
    wire: frame(2, h`0000 0020 40010100`),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'unrecognized well-known attribute -> 3/2 with the attribute',
    wire: withAttr(h`40 63 01 ff`),
    code: 3,
    subcode: 2,
    data: '406301ff',
    action: ACTION.reset,
  },
  {
    name: 'NLRI prefix length 33 -> 3/10 (RFC 7606 §5.3)',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP]), h`21 0a010000 00`),
    code: 3,
    subcode: 10,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'NLRI prefix running past the message -> 3/10',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP]), h`18 0a01`),
    code: 3,
    subcode: 10,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'withdrawn prefix length 33 -> 3/10',
    wire: update(h`21 0a010000 00`, h``, h``),
    code: 3,
    subcode: 10,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'MP_REACH_NLRI twice -> 3/1 (RFC 7606 §3(g))',
    wire: update(
      h``,
      Buffer.concat([h`80 0e 05 0002 01 00 00`, h`80 0e 05 0002 01 00 00`, ORIGIN_IGP, AS_PATH_EMPTY]),
      h``,
    ),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'MP_UNREACH_NLRI twice -> 3/1',
    wire: update(h``, Buffer.concat([h`80 0f 03 0002 01`, h`80 0f 03 0002 01`]), h``),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'MP_REACH_NLRI of 3 octets -> 3/9 with the attribute (RFC 7606 §7.11)',
    wire: update(h``, Buffer.concat([h`80 0e 03 0002 01`, ORIGIN_IGP, AS_PATH_EMPTY]), h``),
    code: 3,
    subcode: 9,
    data: '800e03000201',
    action: ACTION.reset,
  },
  {
    name: 'MP_REACH_NLRI next hop length 5 -> 3/9',
    wire: update(h``, Buffer.concat([h`80 0e 0a 0002 01 05 0102030405 00`, ORIGIN_IGP, AS_PATH_EMPTY]), h``),
    code: 3,
    subcode: 9,
    data: '800e0a00020105010203040500',
    action: ACTION.reset,
  },
  {
    // Regression: the data started one octet late when a short MP_REACH_NLRI carried the
    // Extended Length flag (FRR and BIRD send 0x90), because the header size was guessed from
    // the length instead of read from the flag.
    name: 'MP_REACH_NLRI with the Extended Length flag and a next hop length of 5 -> 3/9 with the whole attribute',
    wire: update(
      h``,
      Buffer.concat([h`90 0e 000a 0002 01 05 0102030405 00`, ORIGIN_IGP, AS_PATH_EMPTY]),
      h``,
    ),
    code: 3,
    subcode: 9,
    data: '900e000a00020105010203040500',
    action: ACTION.reset,
  },
  {
    name: 'MP_REACH_NLRI IPv6 prefix length 129 -> 3/10',
    wire: update(
      h``,
      Buffer.concat([
        h`80 0e 17 0002 01 10 20010db8000000000000000000000001 00 81 20`,
        ORIGIN_IGP,
        AS_PATH_EMPTY,
      ]),
      h``,
    ),
    code: 3,
    subcode: 10,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'MP_UNREACH_NLRI prefix overrun -> 3/10',
    wire: update(h``, h`80 0f 05 0002 01 30 20`, h``),
    code: 3,
    subcode: 10,
    data: '',
    action: ACTION.reset,
  },
  {
    name: 'MP_UNREACH_NLRI with wrong flags (transitive) -> 3/4, still a reset',
    wire: update(h``, h`c0 0f 03 0002 01`, h``),
    code: 3,
    subcode: 4,
    data: 'c00f03000201',
    action: ACTION.reset,
  },
  {
    name: 'treat-as-withdraw with no NLRI to withdraw -> reset (RFC 7606 §5.2)',
    wire: update(h``, h`40 01 01 07`, h``),
    code: 3,
    subcode: 6,
    data: '40010107',
    action: ACTION.reset,
  },
];

const withdrawn = (u: DecodedUpdate) => {
  expect(u.nlri).toEqual([parsePrefix4('10.1.0.0/24')]);
};
const kept = (check: (u: DecodedUpdate) => void) => (u: DecodedUpdate) => {
  expect(u.nlri).toEqual([parsePrefix4('10.1.0.0/24')]);
  check(u);
};

const updateSoftRows: Row[] = [
  {
    name: 'ORIGIN missing -> 3/3 with type 1, treat-as-withdraw',
    wire: update(h``, Buffer.concat([AS_PATH_EMPTY, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 3,
    data: '01',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS_PATH missing -> 3/3 with type 2',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 3,
    data: '02',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'NEXT_HOP missing with IPv4 NLRI -> 3/3 with type 3',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY]), NLRI_10_1),
    code: 3,
    subcode: 3,
    data: '03',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'ORIGIN with the optional bit -> 3/4 with the attribute, treat-as-withdraw (RFC 7606 §3(c))',
    wire: update(h``, Buffer.concat([h`c0 01 01 00`, AS_PATH_EMPTY, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 4,
    data: 'c0010100',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'MULTI_EXIT_DISC marked transitive -> 3/4',
    wire: withAttr(h`c0 04 04 00000001`),
    code: 3,
    subcode: 4,
    data: 'c0040400000001',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'LOCAL_PREF with the Partial bit -> 3/4',
    wire: withAttr(h`60 05 04 00000064`),
    code: 3,
    subcode: 4,
    data: '60050400000064',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'ORIGIN of 2 octets -> 3/5 (RFC 7606 §7.1)',
    wire: update(h``, Buffer.concat([h`40 01 02 0000`, AS_PATH_EMPTY, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 5,
    data: '4001020000',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'ORIGIN 3 -> 3/6 with the attribute',
    wire: update(h``, Buffer.concat([h`40 01 01 03`, AS_PATH_EMPTY, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 6,
    data: '40010103',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS_PATH segment type 5 -> 3/11 (RFC 7606 §7.2)',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, h`40 02 04 05 01 fde8`, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 11,
    data: '4002040501fde8',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS_PATH segment of length 0 -> 3/11',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, h`40 02 02 02 00`, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 11,
    data: '4002020200',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS_PATH segment overrunning the attribute -> 3/11',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, h`40 02 04 02 02 fde8`, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 11,
    data: '4002040202fde8',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS_PATH with one trailing octet -> 3/11',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, h`40 02 05 02 01 fde8 02`, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 11,
    data: '4002050201fde802',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS_PATH with 2-octet numbers on a 4-octet session -> 3/11',
    ctx: AS4,
    wire: update(h``, Buffer.concat([ORIGIN_IGP, h`40 02 04 02 01 fde8`, NEXT_HOP]), NLRI_10_1),
    code: 3,
    subcode: 11,
    data: '4002040201fde8',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'NEXT_HOP of 5 octets -> 3/5 (RFC 7606 §7.3)',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, h`40 03 05 c000020100`]), NLRI_10_1),
    code: 3,
    subcode: 5,
    data: '400305c000020100',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'NEXT_HOP 0.0.0.0 -> 3/8',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, h`40 03 04 00000000`]), NLRI_10_1),
    code: 3,
    subcode: 8,
    data: '40030400000000',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'NEXT_HOP 224.0.0.1 (multicast) -> 3/8',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, h`40 03 04 e0000001`]), NLRI_10_1),
    code: 3,
    subcode: 8,
    data: '400304e0000001',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'NEXT_HOP 127.0.0.1 (loopback) -> 3/8',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, h`40 03 04 7f000001`]), NLRI_10_1),
    code: 3,
    subcode: 8,
    data: '4003047f000001',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'MULTI_EXIT_DISC of 3 octets -> 3/5 (RFC 7606 §7.4)',
    wire: withAttr(h`80 04 03 000001`),
    code: 3,
    subcode: 5,
    data: '800403000001',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'LOCAL_PREF of 2 octets -> 3/5 (RFC 7606 §7.5)',
    wire: withAttr(h`40 05 02 0064`),
    code: 3,
    subcode: 5,
    data: '4005020064',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'ATOMIC_AGGREGATE of 1 octet -> 3/5, attribute discarded (RFC 7606 §7.6)',
    wire: withAttr(h`40 06 01 00`),
    code: 3,
    subcode: 5,
    data: '40060100',
    action: ACTION.discard,
    check: kept((u) => expect(u.attrs.atomicAggregate).toBeUndefined()),
  },
  {
    name: 'AGGREGATOR of 7 octets on a 4-octet session -> 3/5, discarded (RFC 7606 §7.7)',
    ctx: AS4,
    wire: withAttr(h`c0 07 07 0000fde8 c00002`),
    code: 3,
    subcode: 5,
    data: 'c007070000fde8c00002',
    action: ACTION.discard,
    check: kept((u) => expect(u.attrs.aggregator).toBeUndefined()),
  },
  {
    name: 'AGGREGATOR of 8 octets on a 2-octet session -> 3/5, discarded',
    wire: withAttr(h`c0 07 08 0000fde8 c0000201`),
    code: 3,
    subcode: 5,
    data: 'c007080000fde8c0000201',
    action: ACTION.discard,
    check: kept((u) => expect(u.attrs.aggregator).toBeUndefined()),
  },
  {
    name: 'COMMUNITIES of 0 octets -> 3/5 (RFC 7606 §7.8)',
    wire: withAttr(h`c0 08 00`),
    code: 3,
    subcode: 5,
    data: 'c00800',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'COMMUNITIES of 6 octets -> 3/5',
    wire: withAttr(h`c0 08 06 fde80064 0001`),
    code: 3,
    subcode: 5,
    data: 'c00806fde800640001',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'ORIGINATOR_ID of 5 octets -> 3/5 (RFC 7606 §7.9)',
    wire: withAttr(h`80 09 05 0a00000100`),
    code: 3,
    subcode: 5,
    data: '8009050a00000100',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'CLUSTER_LIST of 6 octets -> 3/5 (RFC 7606 §7.10)',
    wire: withAttr(h`80 0a 06 0a0000010000`),
    code: 3,
    subcode: 5,
    data: '800a060a0000010000',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'CLUSTER_LIST of 0 octets -> 3/5',
    wire: withAttr(h`80 0a 00`),
    code: 3,
    subcode: 5,
    data: '800a00',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'EXTENDED_COMMUNITIES of 12 octets -> 3/5 (RFC 7606 §7.14)',
    wire: withAttr(h`c0 10 0c 0002fde800000001 00000000`),
    code: 3,
    subcode: 5,
    data: 'c0100c0002fde80000000100000000',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'LARGE_COMMUNITY of 8 octets -> 3/5 (RFC 8092 §5)',
    wire: withAttr(h`c0 20 08 00000001 00000002`),
    code: 3,
    subcode: 5,
    data: 'c020080000000100000002',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'AS4_PATH malformed on a 2-octet session -> discarded (RFC 6793 §6)',
    wire: withAttr(h`c0 11 03 02 01 00`),
    code: 3,
    subcode: 9,
    data: 'c01103020100',
    action: ACTION.discard,
    check: kept((u) => expect(u.attrs.asPath).toEqual([])),
  },
  {
    name: 'AS4_PATH with a confederation segment -> discarded',
    wire: withAttr(h`c0 11 06 03 01 0000fde8`),
    code: 3,
    subcode: 9,
    data: 'c0110603010000fde8',
    action: ACTION.discard,
    check: kept((u) => expect(u.attrs.asPath).toEqual([])),
  },
  {
    name: 'AS4_AGGREGATOR of 6 octets -> discarded',
    wire: withAttr(h`c0 12 06 fde8 c0000201`),
    code: 3,
    subcode: 5,
    data: 'c01206fde8c0000201',
    action: ACTION.discard,
    check: kept(() => {}),
  },
  {
    name: 'ORIGIN twice -> the second is discarded (RFC 7606 §3(g))',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP, h`40 01 01 02`]), NLRI_10_1),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.discard,
    check: kept((u) => expect(u.attrs.origin).toBe(0)),
  },
  {
    name: 'attribute length past the total attribute length -> treat-as-withdraw (RFC 7606 §4)',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP, h`80 04 09 00000001`]), NLRI_10_1),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'two octets left where an attribute header belongs -> treat-as-withdraw (RFC 7606 §4)',
    wire: update(h``, Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP, h`40 01`]), NLRI_10_1),
    code: 3,
    subcode: 1,
    data: '',
    action: ACTION.withdraw,
    check: withdrawn,
  },
  {
    name: 'several errors: the strongest action wins (RFC 7606 §3(h))',
    wire: update(
      h``,
      Buffer.concat([ORIGIN_IGP, AS_PATH_EMPTY, NEXT_HOP, h`40 06 01 00`, h`c0 08 00`]),
      NLRI_10_1,
    ),
    code: 3,
    subcode: 5,
    data: 'c00800',
    action: ACTION.withdraw,
    check: withdrawn,
  },
];

function expectError(err: unknown, row: Row): void {
  expect(err).toBeInstanceOf(BgpError);
  const e = err as BgpError;
  expect({ code: e.code, subcode: e.subcode, data: e.data.toString('hex'), action: e.action }).toEqual({
    code: row.code,
    subcode: row.subcode,
    data: row.data,
    action: row.action,
  });
}

describe('malformed messages (RFC 4271 §6, RFC 7606)', () => {
  describe.each([
    ['message header (RFC 4271 §6.1)', headerRows],
    ['OPEN (RFC 4271 §6.2)', openRows],
    ['UPDATE that resets the session (RFC 4271 §6.3, RFC 7606)', updateResetRows],
  ])('%s', (_title, rows) => {
    it.each(rows.map((r) => [r.name, r] as const))('%s', (_n, row) => {
      let thrown: unknown;
      try {
        decodeOne(row.wire, row.ctx ?? AS2);
      } catch (err) {
        thrown = err;
      }
      expectError(thrown, row);
    });
  });

  describe('UPDATE errors that keep the session (RFC 7606 §7)', () => {
    it.each(updateSoftRows.map((r) => [r.name, r] as const))('%s', (_n, row) => {
      const m = decodeOne(row.wire, row.ctx ?? AS2);
      expect(m.type).toBe(MsgType.Update);
      const u = m as DecodedUpdate;
      expect(u.action).toBe(row.action);
      // The error that set the action is reported with the RFC's code, subcode and data.
      const worst = u.errors.filter((e) => e.action === u.action);
      expect(worst.length).toBeGreaterThan(0);
      expectError(worst[worst.length - 1], row);
      row.check?.(u);
    });
  });
});

describe('OPEN checks that depend on configuration (checkOpen)', () => {
  const open = decodeOpen(frame(1, h`04 fde8 00b4 0a000001 08 02 06 41 04 0000fde8`), 0, 37);
  it('a peer AS other than configured -> 2/2', () => {
    expect(() => checkOpen(open, { peerAs: 65001, localId: 2 })).toThrow(
      expect.objectContaining({ code: 2, subcode: 2 }),
    );
  });
  it('our own identifier -> 2/3', () => {
    expect(() => checkOpen(open, { localId: 0x0a000001 })).toThrow(
      expect.objectContaining({ code: 2, subcode: 3 }),
    );
  });
  it('a hold time below our minimum -> 2/6', () => {
    expect(() => checkOpen(open, { localId: 2, minHoldTime: 200 })).toThrow(
      expect.objectContaining({ code: 2, subcode: 6 }),
    );
  });
  it('a required capability missing -> 2/7 with that capability as data (RFC 5492 §5)', () => {
    try {
      checkOpen(open, { localId: 2, required: [{ code: 1, value: h`0002 00 01` }] });
      expect.unreachable();
    } catch (err) {
      const e = err as BgpError;
      expect([e.code, e.subcode, e.data.toString('hex')]).toEqual([2, 7, '010400020001']);
    }
  });
  it('an acceptable OPEN passes', () => {
    expect(() =>
      checkOpen(open, { peerAs: 65000, localId: 2, required: [{ code: 65, value: h`0000fde8` }] }),
    ).not.toThrow();
  });
});

describe('repeated attributes, across the whole range of type codes (RFC 7606 §3(g))', () => {
  // The decoder keeps the types it has seen as bits: types 0-63 in two numbers, the rest in an
  // array. Optional transitive attributes of unknown types are kept as bytes, so each type code
  // shows whether its first copy was kept and its second dropped.
  const unknown = (type: number, v: number) => Buffer.from([0xc0, type, 1, v]);
  const types = [31, 33, 34, 63, 64, 65, 95, 96, 97, 129, 200, 255];

  it.each(types)('type %i twice: the first copy kept, the second discarded', (type) => {
    const u = decodeOne(withAttr(unknown(type, 1), unknown(type, 2)), AS4) as DecodedUpdate;
    expect(u.attrs.unknown?.map((a) => [a.type, a.value[0]])).toEqual([[type, 1]]);
    expect(u.errors.map((e) => [e.attrType, e.action])).toEqual([[type, ACTION.discard]]);
  });

  it('types a multiple of 32 apart are not taken for each other', () => {
    const all = Buffer.concat(types.map((t) => unknown(t, t & 0xff)));
    const u = decodeOne(withAttr(all), AS4) as DecodedUpdate;
    expect(u.errors).toEqual([]);
    expect(u.attrs.unknown?.map((a) => a.type)).toEqual(types);
  });
});
