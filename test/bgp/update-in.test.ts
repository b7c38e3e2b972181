/**
 * The UPDATE-in pipeline (src/bgp/update-in.ts) with sets named by their bytes: a set keeps no
 * decoded attributes until they are read, and what it decodes then is what the UPDATE decoded
 * to, on 4-octet and 2-octet sessions (AS4_PATH merged); best-path selection between two peers'
 * paths reads them and picks as it would with the decoded attributes in hand.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type LocalInfo, peerPolicy } from '../../src/bgp/policy.js';
import { attrsOfRawKey } from '../../src/bgp/rib/attrs.js';
import { type PeerRef, Rib } from '../../src/bgp/rib/rib.js';
import { UpdateIn } from '../../src/bgp/update-in.js';
import {
  AsPathSegmentType,
  type CodecContext,
  type DecodedUpdate,
  decodeMessage,
  encodeUpdate,
  Framer,
  MsgType,
  makeContext,
  type PathAttributes,
} from '../../src/bgp/wire/index.js';
import { encodeAttributeBytes } from '../../src/bgp/wire/update.js';
import { parseIpv4, parsePrefix } from '../../src/net/addr.js';
import { as4OverAs2Attributes, pathAttributes } from './wire/arbitraries.js';

const runs = Number(process.env.FC_RUNS ?? 200);
const AS4 = makeContext({ as4: true });
const AS2 = makeContext({ as4: false });
const ME: LocalInfo = { asn: 65000, routerId: '10.255.0.1', clusterId: '10.255.0.1' };
const peer = (id: string, asn: number): PeerRef => ({
  id,
  asn,
  routerId: parseIpv4(id),
  ebgp: true,
  local: false,
  rrClient: false,
});
const seq = (...asns: number[]) => [{ type: AsPathSegmentType.AsSequence, asns }];

/** An UPDATE as a session's decoder gives it. */
function received(attrs: PathAttributes, prefixes: string[], ctx: CodecContext): DecodedUpdate {
  const framer = new Framer();
  framer.push(
    encodeUpdate({ withdrawn: [], attrs, nlri: prefixes.map((p) => parsePrefix(p) as number) }, ctx),
  );
  const m = decodeMessage(framer.next()!, ctx);
  if (m.type !== MsgType.Update) throw new Error('not an UPDATE');
  return m;
}

describe('UpdateIn, sets named by their bytes', () => {
  it('a raw key decodes to what the UPDATE decoded to, on both AS sizes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          pathAttributes(AS4, true).map((a) => [a, AS4] as const),
          as4OverAs2Attributes().map((a) => [a, AS2] as const),
        ),
        ([attrs, ctx]) => {
          const bytes = encodeAttributeBytes(attrs, ctx);
          const u = received(attrs, ['192.0.2.0/24'], ctx);
          if (u.errors.length) return;
          expect(u.attrBytes).toEqual(bytes);
          expect(attrsOfRawKey(`w${ctx.as4 ? 4 : 2}${bytes.toString('latin1')}`)).toEqual(u.attrs);
        },
      ),
      { numRuns: runs },
    );
  });

  it('keeps no decoded attributes until read, and best-path selection between two peers picks the shorter path', () => {
    const rib = new Rib();
    const pipeline = new UpdateIn(rib, ME);
    const a = peer('192.0.2.1', 65001);
    const b = peer('192.0.2.2', 65002);
    const P = '198.51.100.0/24';
    const long = received({ origin: 0, asPath: seq(65001, 7, 8), nextHop: a.id, communities: [1] }, [P], AS4);
    const short = received({ origin: 0, asPath: seq(65002, 9), nextHop: b.id }, [P], AS4);
    pipeline.receive(long, a, peerPolicy(), undefined, true, []);
    const first = rib.entry(parsePrefix(P))!.best!;
    expect(first.peer.id).toBe(a.id);
    // Not decoded yet: the set holds only its key (`decoded` is the class's own field).
    expect((first.ra as unknown as { decoded?: PathAttributes }).decoded).toBeUndefined();
    const changed: never[] = [];
    pipeline.receive(short, b, peerPolicy(), undefined, true, changed);
    const best = rib.entry(parsePrefix(P))!.best!;
    expect(best.peer.id).toBe(b.id);
    // Both were read to compare: the new one's are the UPDATE's own, the old one's decoded again.
    expect(best.ra.attrs).toBe(short.attrs);
    expect(first.ra.attrs).toEqual(long.attrs);
    expect(changed).toHaveLength(1);
  });
});
