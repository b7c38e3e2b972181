/**
 * Update groups in a running speaker (src/bgp/update-group.ts): receivers that send no routes
 * share one group, `twill status` says so, each of them holds the whole table; a receiver that
 * starts announcing leaves the group before its route enters the RIB, so it is not sent its own
 * route back while the others are. An in-process speaker on loopback with scripted peers
 * speaking BGP from 127.0.0.2-5: no namespaces, no root.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseSpeakerConfig } from '../../src/bgp/config.js';
import { ALWAYS_REACHABLE } from '../../src/bgp/rib/rib.js';
import { sessionCounters } from '../../src/bgp/session.js';
import { Speaker } from '../../src/bgp/speaker.js';
import {
  AsPathSegmentType,
  decodeMessage,
  encodeEndOfRib,
  Framer,
  IPV4_UNICAST,
  MsgType,
  makeContext,
  packUpdates,
  Writer,
} from '../../src/bgp/wire/index.js';
import { formatPrefix, parsePrefix } from '../../src/net/addr.js';
import { dialSpeaker } from '../helpers/bgp-peer.js';
import { eventually } from '../helpers/eventually.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const CTX = makeContext({ as4: true });
const RECEIVERS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

/** A scripted peer: OPEN, KEEPALIVE, then whatever the test writes; keeps what it is sent. */
class Receiver {
  readonly table = new Map<string, string>();
  sock!: Socket;
  private readonly framer = new Framer();

  read(chunk: Buffer): void {
    this.framer.push(chunk);
    for (let f = this.framer.next(); f; f = this.framer.next()) {
      const m = decodeMessage(f, CTX);
      if (m.type !== MsgType.Update) continue;
      for (const k of m.withdrawn) this.table.delete(formatPrefix(k));
      for (const k of m.nlri)
        this.table.set(formatPrefix(k), m.attrs.asPath!.flatMap((s) => s.asns).join(' '));
    }
  }
}

describe('speaker: update groups (loopback)', () => {
  let speaker: Speaker | undefined;
  const socks: Socket[] = [];
  afterEach(async () => {
    for (const s of socks.splice(0)) s.destroy();
    await speaker?.stop();
    speaker = undefined;
  });

  async function peer(local: string, asn: number, port: number): Promise<Receiver> {
    const r = new Receiver();
    r.sock = await dialSpeaker(port, local, asn, socks, (chunk) => r.read(chunk));
    return r;
  }

  it('receivers share a group, hold the whole table, and one that announces leaves before its route is passed on', async () => {
    const originate = Array.from({ length: 3000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const config = parseSpeakerConfig(
      `routerId: 127.0.0.9\nasn: 64512\nlisten: {address: 127.0.0.1, port: 0}\nneighbors:\n${RECEIVERS.map(
        (a, i) => `  - {address: ${a}, asn: ${64600 + i}, passive: true}\n`,
      ).join('')}originate: [${originate.join(', ')}]\n`,
      'groups test',
    );
    speaker = new Speaker(config, quiet, { warmUp: false, resolver: ALWAYS_REACHABLE });
    await speaker.start();
    const port = speaker.port!;
    const rs: Receiver[] = [];
    for (const [i, a] of RECEIVERS.entries()) rs.push(await peer(a, 64600 + i, port));

    // Every receiver holds the table, and all are in one group.
    await eventually(() => {
      for (const r of rs) expect(r.table.size).toBe(3000);
      const peers = speaker!.status().peers;
      expect(peers.every((p) => p.state === 'Established')).toBe(true);
      expect(new Set(peers.map((p) => p.updateGroup?.id)).size).toBe(1);
      expect(peers.map((p) => p.updateGroup?.peers)).toEqual([4, 4, 4, 4]);
      expect(peers.map((p) => p.prefixesAdvertised)).toEqual([3000, 3000, 3000, 3000]);
      // Our table sent whole to each; none of them has said its own is complete.
      expect(peers.map((p) => p.endOfRib)).toEqual(rs.map(() => ({ received: [], sent: ['ipv4-unicast'] })));
    });
    // A receiver's End-of-RIB shows as received for it alone.
    rs[3]!.sock.write(encodeEndOfRib(IPV4_UNICAST, CTX));
    await eventually(() =>
      expect(speaker!.status().peers.map((p) => p.endOfRib?.received)).toEqual([
        [],
        [],
        [],
        ['ipv4-unicast'],
      ]),
    );

    // The first receiver announces a prefix of its own.
    const w = new Writer(4096);
    packUpdates(
      w,
      {
        family: IPV4_UNICAST,
        prefixes: [parsePrefix('192.0.2.0/24') as number],
        attrs: {
          origin: 0,
          asPath: [{ type: AsPathSegmentType.AsSequence, asns: [64600] }],
          nextHop: '192.0.2.1',
        },
      },
      CTX,
    );
    rs[0]!.sock.write(Buffer.from(w.take()));
    // The others hold it; the announcer does not, and is on its own.
    await eventually(() => {
      for (const r of rs.slice(1)) expect(r.table.get('192.0.2.0/24')).toBe('64512 64600');
      const peers = speaker!.status().peers;
      expect(peers[0]!.updateGroup?.peers).toBe(1);
      expect(peers.slice(1).map((p) => p.updateGroup?.peers)).toEqual([3, 3, 3]);
      expect(peers[0]!.prefixesAdvertised).toBe(3000);
      expect(peers[1]!.prefixesAdvertised).toBe(3001);
    });
    expect(rs[0]!.table.has('192.0.2.0/24')).toBe(false);
    expect(rs[0]!.table.size).toBe(3000);

    // setOriginated writes its change before it returns, not at the loop's next turn (a node
    // agent removes a withdrawn block's blackhole right after it): one UPDATE per receiver, the
    // group of three and the announcer on its own, counted out in the same tick.
    const out = sessionCounters.updatesOut;
    speaker.setOriginated([...originate, '10.200.0.0/24']);
    expect(sessionCounters.updatesOut - out).toBe(4);
    await eventually(() => {
      for (const r of rs) expect(r.table.get('10.200.0.0/24')).toBe('64512');
    });
  });
});
