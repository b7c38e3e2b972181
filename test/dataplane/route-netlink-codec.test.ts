/**
 * rtnetlink route, link and neighbour messages: the bytes we send (flags that decide whether
 * we can overwrite, the fields a delete matches on) and decoding them back, IPv4 and IPv6,
 * single path, ECMP and blackhole.
 */
import { describe, expect, it } from 'vitest';
import { NUD_PERMANENT } from '../../src/dataplane/kernel.js';
import {
  decodeError,
  decodeLink,
  decodeNeigh,
  decodeRoute,
  encodeNeigh,
  encodeRouteOp,
  encodeSetLink,
  forEachMessage,
  NlFlags,
  NlMsgType,
  routeMsgSize,
} from '../../src/dataplane/netlink-codec.js';
import { type KernelRoute, type RouteOp, RtnType, RtScope } from '../../src/dataplane/route-model.js';
import { parsePrefix } from '../../src/net/addr.js';

function route(dst: string, over: Partial<KernelRoute> = {}): KernelRoute {
  const key = parsePrefix(dst);
  const family = typeof key === 'number' ? 4 : 6;
  return {
    key,
    family,
    table: 254,
    protocol: 84,
    metric: family === 4 ? 0 : 1024,
    type: RtnType.Unicast,
    scope: RtScope.Universe,
    nexthops: [],
    ...over,
  };
}

function encodeAll(ops: RouteOp[], firstSeq = 100): Buffer {
  const buf = Buffer.alloc(ops.reduce((n, op) => n + routeMsgSize(op), 0));
  let off = 0;
  ops.forEach((op, i) => {
    off = encodeRouteOp(buf, off, op, firstSeq + i, i === ops.length - 1);
  });
  expect(off).toBe(buf.length);
  return buf;
}

const cases: [string, KernelRoute][] = [
  [
    'v4 pod /32 on its veth',
    route('10.1.0.5/32', { scope: RtScope.Link, nexthops: [{ gateway: undefined, oif: 7 }] }),
  ],
  ['v4 blackhole', route('10.2.0.0/26', { type: RtnType.Blackhole })],
  ['v4 via', route('10.3.0.0/26', { nexthops: [{ gateway: '10.9.0.2', oif: 0 }] })],
  [
    'v4 ECMP',
    route('10.3.0.64/26', {
      nexthops: [
        { gateway: '10.9.0.2', oif: 3 },
        { gateway: '10.9.0.3', oif: 4 },
      ],
    }),
  ],
  ['v6 pod /128', route('fd00::5/128', { nexthops: [{ gateway: undefined, oif: 7 }] })],
  ['v6 blackhole', route('fd00:1::/122', { type: RtnType.Blackhole })],
  [
    'v6 ECMP',
    route('fd00:2::/122', {
      nexthops: [
        { gateway: 'fd09::2', oif: 3 },
        { gateway: 'fd09::3', oif: 3 },
      ],
    }),
  ],
  [
    'v4 default in another table',
    route('0.0.0.0/0', { table: 1000, nexthops: [{ gateway: '10.0.0.1', oif: 2 }] }),
  ],
];

describe('route messages', () => {
  it.each(cases)('%s: encodes and decodes back', (_name, r) => {
    const buf = encodeAll([{ op: 'add', route: r }]);
    let seen = 0;
    forEachMessage(buf, (type, flags, seq, off, end) => {
      seen++;
      expect(type).toBe(NlMsgType.NewRoute);
      expect(seq).toBe(100);
      expect(flags).toBe(NlFlags.Request | NlFlags.Ack | NlFlags.Create | NlFlags.Excl);
      expect(decodeRoute(buf, off, end)).toEqual(r);
    });
    expect(seen).toBe(1);
  });

  it('add never overwrites (EXCL), replace does (REPLACE), only the last message asks for an ACK', () => {
    const r = route('10.3.0.0/26', { nexthops: [{ gateway: '10.9.0.2', oif: 0 }] });
    const buf = encodeAll([
      { op: 'add', route: r },
      { op: 'replace', route: r },
      { op: 'del', route: r },
    ]);
    const got: [number, number, number][] = [];
    forEachMessage(buf, (type, flags, seq) => {
      got.push([type, flags, seq]);
    });
    expect(got).toEqual([
      [NlMsgType.NewRoute, NlFlags.Request | NlFlags.Create | NlFlags.Excl, 100],
      [NlMsgType.NewRoute, NlFlags.Request | NlFlags.Create | NlFlags.Replace, 101],
      [NlMsgType.DelRoute, NlFlags.Request | NlFlags.Ack, 102],
    ]);
  });

  it('a delete names table, prefix, metric and our protocol, with any scope and type', () => {
    const r = route('fd00:2::/122', { nexthops: [{ gateway: 'fd09::2', oif: 3 }] });
    const buf = encodeAll([{ op: 'del', route: r }]);
    forEachMessage(buf, (_t, _f, _s, off, end) => {
      expect(buf[off + 5]).toBe(84); // protocol
      expect(buf[off + 6]).toBe(255); // RT_SCOPE_NOWHERE: any scope
      expect(buf[off + 7]).toBe(0); // any type
      expect(decodeRoute(buf, off, end)).toMatchObject({
        key: 'fd00:2::/122',
        metric: 1024,
        table: 254,
        nexthops: [],
      });
    });
  });

  it('a table id above 255 travels in RTA_TABLE', () => {
    const buf = encodeAll([
      { op: 'add', route: route('10.3.0.0/26', { table: 1000, type: RtnType.Blackhole }) },
    ]);
    expect(buf[16 + 4]).toBe(0);
    forEachMessage(buf, (_t, _f, _s, off, end) => expect(decodeRoute(buf, off, end)?.table).toBe(1000));
  });

  it('an error answer carries the errno and the sequence number it answers', () => {
    const err = Buffer.alloc(36);
    err.writeUInt32LE(36, 0);
    err.writeUInt16LE(NlMsgType.Error, 4);
    err.writeInt32LE(-17, 16); // EEXIST
    err.writeUInt32LE(4242, 16 + 4 + 8);
    forEachMessage(err, (type, _f, _s, off) => {
      expect(type).toBe(NlMsgType.Error);
      expect(decodeError(err, off)).toEqual({ errno: -17, seq: 4242 });
    });
  });
});

describe('link and neighbour messages', () => {
  it('decodes a link: index, name, administratively up', () => {
    const buf = Buffer.alloc(16 + 16 + 12);
    buf.writeUInt32LE(buf.length, 0);
    buf.writeUInt16LE(NlMsgType.NewLink, 4);
    buf.writeInt32LE(7, 16 + 4);
    buf.writeUInt32LE(0x1 | 0x40, 16 + 8);
    buf.writeUInt16LE(4 + 6, 32);
    buf.writeUInt16LE(3, 34); // IFLA_IFNAME
    buf.write('twl1\0', 36);
    forEachMessage(buf, (_t, _f, _s, off, end) =>
      expect(decodeLink(buf, off, end)).toEqual({ index: 7, name: 'twl1', up: true }),
    );
  });

  it('a neighbour entry encodes as permanent with our protocol and decodes back', () => {
    const buf = encodeNeigh(
      {
        family: 4,
        ifindex: 7,
        address: '10.1.0.5',
        lladdr: 'ee:ee:ee:ee:ee:01',
        state: NUD_PERMANENT,
        protocol: 84,
      },
      9,
      false,
    );
    forEachMessage(buf, (type, flags, seq, off, end) => {
      expect([type, seq]).toEqual([NlMsgType.NewNeigh, 9]);
      expect(flags & (NlFlags.Create | NlFlags.Replace)).toBe(NlFlags.Create | NlFlags.Replace);
      expect(decodeNeigh(buf, off, end)).toEqual({
        family: 4,
        ifindex: 7,
        address: '10.1.0.5',
        lladdr: 'ee:ee:ee:ee:ee:01',
        state: NUD_PERMANENT,
        protocol: 84,
      });
    });
    const v6 = encodeNeigh({ family: 6, ifindex: 7, address: 'fd00::5' }, 10, true);
    forEachMessage(v6, (type, _f, _s, off, end) => {
      expect(type).toBe(NlMsgType.DelNeigh);
      expect(decodeNeigh(v6, off, end)?.address).toBe('fd00::5');
    });
  });

  it('a link change names the link, sets IFF_UP in flags and change, and carries the alias', () => {
    const buf = encodeSetLink('twl0123456789a', { up: true, alias: 'twill:c1' }, 11);
    forEachMessage(buf, (type, flags, seq, off, end) => {
      expect([type, seq]).toEqual([NlMsgType.NewLink, 11]);
      // No create, no replace: the kernel changes the existing link of that name.
      expect(flags).toBe(NlFlags.Request | NlFlags.Ack);
      expect([buf.readInt32LE(off + 4), buf.readUInt32LE(off + 8), buf.readUInt32LE(off + 12)]).toEqual([
        0, 1, 1,
      ]);
      const attrs = new Map<number, string>();
      for (let a = off + 16; a < end; ) {
        const len = buf.readUInt16LE(a);
        attrs.set(buf.readUInt16LE(a + 2), buf.toString('utf8', a + 4, a + len));
        a += (len + 3) & ~3;
      }
      expect(attrs).toEqual(
        new Map([
          [3, 'twl0123456789a\0'],
          [20, 'twill:c1'],
        ]),
      );
    });
    const down = encodeSetLink('eth0', { up: false }, 12);
    forEachMessage(down, (_t, _f, _s, off) => {
      expect([down.readUInt32LE(off + 8), down.readUInt32LE(off + 12)]).toEqual([0, 1]);
    });
    expect(() => encodeSetLink('a-name-longer-than-15', {}, 1)).toThrow(/not an interface name/);
  });
});
