/**
 * Packing: many prefixes with one attribute set go out in as few UPDATEs as the negotiated size
 * allows, each full, and decode back to exactly the prefixes given, in order.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeAll,
  encodeEndOfRib,
  IPV4_UNICAST,
  IPV6_UNICAST,
  makeContext,
  type Message,
  MsgType,
  packUpdates,
  type PathAttributes,
  Writer,
} from '../../../src/bgp/wire/index.js';
import { prefix4, prefix6 } from './arbitraries.js';

const attrs: PathAttributes = {
  origin: 0,
  asPath: [{ type: 2, asns: [64512, 4200000001] }],
  nextHop: '192.0.2.1',
  med: 10,
  localPref: 100,
  communities: [64512 * 65536 + 1],
};
const ctx = makeContext({ as4: true });

function updates(ms: Message[]) {
  return ms.map((m) => {
    if (m.type !== MsgType.Update) throw new Error('not an UPDATE');
    return m;
  });
}

describe('packUpdates', () => {
  it('fills each 4096-octet UPDATE with /24s: 10,000 prefixes in 11 messages', () => {
    const prefixes = Array.from({ length: 10_000 }, (_, i) => (0x0a000000 + i * 256) * 64 + 24);
    const w = new Writer();
    const n = packUpdates(w, { family: IPV4_UNICAST, prefixes, attrs }, ctx);
    const msgs = updates(decodeAll(w.take(), ctx));
    expect(msgs.length).toBe(n);
    // Every message but the last is within 4 octets (one /24) of the limit.
    const sizes = msgs.map((m) => 23 + m.attrBytes.length + m.nlri.length * 4);
    for (const s of sizes.slice(0, -1)) expect(s).toBeGreaterThan(4096 - 4);
    expect(msgs.flatMap((m) => m.nlri)).toEqual(prefixes);
    expect(n).toBe(Math.ceil(10_000 / Math.floor((4096 - 23 - msgs[0]!.attrBytes.length) / 4)));
    for (const m of msgs) expect(m.attrs).toEqual(attrs);
  });

  it('any IPv4 or IPv6 prefixes, announce or withdraw, with or without ADD-PATH, decode back in order', () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        fc.array(prefix4, { minLength: 1, maxLength: 3000 }),
        fc.array(prefix6, { minLength: 1, maxLength: 600 }),
        (v6, withdraw, addPath, p4, p6) => {
          const fam = v6 ? IPV6_UNICAST : IPV4_UNICAST;
          const c = makeContext({
            as4: true,
            addPathTx: addPath ? new Set([fam]) : new Set(),
            addPathRx: addPath ? new Set([fam]) : new Set(),
          });
          const prefixes = v6 ? p6 : p4;
          const pathIds = addPath ? prefixes.map((_, i) => i + 1) : undefined;
          const w = new Writer();
          packUpdates(
            w,
            {
              family: fam,
              prefixes,
              pathIds,
              withdraw,
              attrs: v6 ? { origin: 0, asPath: [] } : attrs,
              nextHops: ['2001:db8::1'],
            },
            c,
          );
          const msgs = updates(decodeAll(w.take(), c));
          for (const m of msgs) expect(m.errors).toEqual([]);
          const got = v6
            ? msgs.flatMap((m) => (withdraw ? m.mpUnreach!.prefixes : m.mpReach!.prefixes))
            : msgs.flatMap((m) => (withdraw ? m.withdrawn : m.nlri));
          expect(got).toEqual(prefixes);
          if (pathIds) {
            const ids = v6
              ? msgs.flatMap((m) => (withdraw ? m.mpUnreach!.pathIds! : m.mpReach!.pathIds!))
              : msgs.flatMap((m) => (withdraw ? m.withdrawnIds! : m.nlriIds!));
            expect(ids).toEqual(pathIds);
          }
          for (const m of msgs) expect(m.attrBytes.length + 23).toBeLessThanOrEqual(4096);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('End-of-RIB markers decode as End-of-RIB for their family', () => {
    for (const fam of [IPV4_UNICAST, IPV6_UNICAST]) {
      const [m] = updates(decodeAll(encodeEndOfRib(fam, ctx), ctx));
      expect(m!.endOfRib).toBe(fam);
    }
  });
});
