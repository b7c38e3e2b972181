/**
 * The framer (STYLE.md §12, after pg-protocol's split-buffer tests): a stream of every message
 * type split at every offset, fed a byte at a time, and several messages in one chunk all give
 * the same messages; extended messages are accepted only once negotiated.
 */
import { describe, expect, it } from 'vitest';
import { parsePrefix4 } from '../../../src/net/addr.js';
import {
  BgpError,
  decodeMessage,
  encodeCease,
  encodeMessage,
  Framer,
  IPV4_UNICAST,
  KEEPALIVE,
  type Message,
  makeContext,
  makeOpen,
  MAX_EXTENDED_MESSAGE_LEN,
  MsgType,
  packUpdates,
  Writer,
} from '../../../src/bgp/wire/index.js';

const ctx = makeContext({ as4: true });
const stream = Buffer.concat([
  encodeMessage(
    {
      type: MsgType.Open,
      ...makeOpen(4200000001, 90, 0x0a000001, { multiprotocol: [IPV4_UNICAST], routeRefresh: true }),
    },
    ctx,
  ),
  KEEPALIVE,
  encodeMessage(
    {
      type: MsgType.Update,
      withdrawn: [parsePrefix4('10.9.0.0/16')],
      attrs: { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1', communities: [1, 2] },
      nlri: [parsePrefix4('10.1.0.0/24'), parsePrefix4('10.2.0.0/24')],
    },
    ctx,
  ),
  encodeMessage({ type: MsgType.RouteRefresh, afi: 1, safi: 1, subtype: 0 }, ctx),
  encodeCease(2, 'bye'),
]);
const TYPES = [MsgType.Open, MsgType.Keepalive, MsgType.Update, MsgType.RouteRefresh, MsgType.Notification];

function drain(f: Framer): Message[] {
  const out: Message[] = [];
  for (let fr = f.next(); fr; fr = f.next()) out.push(decodeMessage(fr, ctx));
  return out;
}

const whole = (() => {
  const f = new Framer();
  f.push(stream);
  return drain(f);
})();

describe('framer', () => {
  it('several messages in one chunk', () => {
    expect(whole.map((m) => m.type)).toEqual(TYPES);
  });

  it('the stream split at every offset gives the same messages', () => {
    for (let i = 0; i <= stream.length; i++) {
      const f = new Framer();
      f.push(stream.subarray(0, i));
      const a = drain(f);
      f.push(stream.subarray(i));
      const b = drain(f);
      expect([...a, ...b]).toEqual(whole);
      expect(f.pending).toBe(0);
    }
  });

  it('a byte at a time gives the same messages', () => {
    const f = new Framer();
    const out: Message[] = [];
    for (let i = 0; i < stream.length; i++) {
      f.push(stream.subarray(i, i + 1));
      out.push(...drain(f));
    }
    expect(out).toEqual(whole);
  });

  it('a header error sticks: the stream is out of sync', () => {
    const f = new Framer();
    const bad = Buffer.from(KEEPALIVE);
    bad[3] = 0;
    f.push(Buffer.concat([bad, KEEPALIVE]));
    expect(() => f.next()).toThrow(BgpError);
    expect(() => f.next()).toThrow(/marker/);
  });

  it('messages over 4096 octets only after extended messages are negotiated (RFC 8654)', () => {
    const big = makeContext({ as4: true, maxLength: MAX_EXTENDED_MESSAGE_LEN });
    const w = new Writer();
    const prefixes = Array.from({ length: 3000 }, (_, i) => (0x0a000000 + i * 256) * 64 + 24);
    expect(
      packUpdates(
        w,
        { family: IPV4_UNICAST, prefixes, attrs: { origin: 0, asPath: [], nextHop: '192.0.2.1' } },
        big,
      ),
    ).toBe(1);
    const msg = w.take();
    expect(msg.length).toBeGreaterThan(4096);
    const strict = new Framer();
    strict.push(msg);
    expect(() => strict.next()).toThrow(expect.objectContaining({ code: 1, subcode: 2 }));
    const ext = new Framer();
    ext.setMaxLength(MAX_EXTENDED_MESSAGE_LEN);
    ext.push(msg);
    const m = decodeMessage(ext.next()!, big);
    expect(m.type === MsgType.Update && m.nlri.length).toBe(3000);
  });
});
