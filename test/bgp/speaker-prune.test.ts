/**
 * The speaker frees the RIB's dead slots (rib.ts prune) once changes pause: slots that die as a
 * withdrawal arrives (nobody was sent the prefix) and slots that die only when the withdrawal has
 * gone out to a peer (the Adj-RIB-Out held them). And once a table has grown, it asks for a
 * collection when changes pause (release-memory.ts), once per growth. An in-process speaker on loopback, with two
 * scripted peers speaking BGP from 127.0.0.1 and 127.0.0.2: no namespaces, no root.
 */
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { parseSpeakerConfig } from '../../src/bgp/config.js';
import { ALWAYS_REACHABLE } from '../../src/bgp/rib/rib.js';
import { Speaker } from '../../src/bgp/speaker.js';
import {
  AsPathSegmentType,
  IPV4_UNICAST,
  makeContext,
  packUpdates,
  Writer,
} from '../../src/bgp/wire/index.js';
import { parsePrefix } from '../../src/net/addr.js';
import { dialSpeaker } from '../helpers/bgp-peer.js';

// Collections counted, not made (release-memory.ts's own test makes them).
const collections = vi.hoisted(() => ({ n: 0 }));
vi.mock('../../src/bgp/release-memory.js', async (real) => ({
  ...(await real<typeof import('../../src/bgp/release-memory.js')>()),
  collectGarbage: () => {
    collections.n++;
  },
}));

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CTX = makeContext({ as4: true });

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  for (const end = Date.now() + ms; !ok(); await sleep(10))
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
}

describe('speaker: dead slots are pruned when changes pause (loopback)', () => {
  let speaker: Speaker | undefined;
  const socks: Socket[] = [];
  afterEach(async () => {
    for (const s of socks.splice(0)) s.destroy();
    await speaker?.stop();
    speaker = undefined;
  });

  /** A scripted peer: OPEN, KEEPALIVE, then whatever the test writes; reads and drops the rest. */
  const peer = (local: string, asn: number, port: number) => dialSpeaker(port, local, asn, socks);

  function updates(asn: number, keys: number[], withdraw: boolean): Buffer {
    const w = new Writer(1 << 16);
    const attrs = {
      origin: 0,
      asPath: [{ type: AsPathSegmentType.AsSequence, asns: [asn] }],
      nextHop: '192.0.2.1', // Not loopback, which is no next hop; resolved by ALWAYS_REACHABLE.
    };
    packUpdates(w, { family: IPV4_UNICAST, prefixes: keys, ...(withdraw ? { withdraw } : { attrs }) }, CTX);
    return Buffer.from(w.take());
  }

  it('frees the slots of withdrawn prefixes, whether or not a peer was sent them', async () => {
    const config = parseSpeakerConfig(
      'routerId: 127.0.0.9\nasn: 64512\nlisten: {address: 127.0.0.1, port: 0}\n' +
        'neighbors:\n' +
        '  - {address: 127.0.0.1, asn: 64513, passive: true}\n' +
        '  - {address: 127.0.0.2, asn: 64514, passive: true}\n',
      'prune test',
    );
    speaker = new Speaker(config, quiet, { warmUp: false, resolver: ALWAYS_REACHABLE });
    await speaker.start();
    const port = speaker.port!;
    const established = () => speaker!.status().peers.filter((p) => p.state === 'Established').length;

    // Only the source is up: nobody is sent the prefixes, so they die as they are withdrawn.
    const a = await peer('127.0.0.1', 64513, port);
    await until('the first session', () => established() === 1);
    const first = Array.from(
      { length: 2000 },
      (_, i) => parsePrefix(`10.1.${i >> 4}.${(i & 15) * 16}/28`) as number,
    );
    a.write(updates(64513, first, false));
    await until('the first table', () => speaker!.rib.size === 2000);
    a.write(updates(64513, first, true));
    await until('the withdrawals', () => speaker!.rib.size === 0);
    await until('the prune', () => speaker!.rib.deadCount === 0, 2000);
    expect(first.every((k) => speaker!.rib.slotOf(k) === -1)).toBe(true);

    // Now a receiver is up: its Adj-RIB-Out holds the slots until the withdrawals go out to it.
    await peer('127.0.0.2', 64514, port);
    await until('the second session', () => established() === 2);
    const second = first.map((k) => k + (1 << 16) * 64);
    a.write(updates(64513, second, false));
    await until(
      'the second table to reach the receiver',
      () => speaker!.status().peers[1]!.prefixesAdvertised === 2000,
    );
    a.write(updates(64513, second, true));
    await until(
      'the withdrawals to reach the receiver',
      () => speaker!.status().peers[1]!.prefixesAdvertised === 0,
    );
    await until('the prune', () => speaker!.rib.deadCount === 0, 2000);
    expect(second.every((k) => speaker!.rib.slotOf(k) === -1)).toBe(true);
    expect(speaker.rib.slotCount).toBeLessThanOrEqual(4096);
  });

  it('asks for one collection once a table has grown and changes pause, none for a small one', async () => {
    const config = parseSpeakerConfig(
      'routerId: 127.0.0.9\nasn: 64512\nlisten: {address: 127.0.0.1, port: 0}\n' +
        'neighbors:\n  - {address: 127.0.0.1, asn: 64513, passive: true}\n',
      'collection test',
    );
    speaker = new Speaker(config, quiet, { warmUp: false, resolver: ALWAYS_REACHABLE });
    await speaker.start();
    const a = await peer('127.0.0.1', 64513, speaker.port!);
    await until('the session', () => speaker!.status().peers[0]!.state === 'Established');
    collections.n = 0;
    const small = Array.from(
      { length: 1000 },
      (_, i) => (parsePrefix('10.0.0.0/24') as number) + i * 256 * 64,
    );
    a.write(updates(64513, small, false));
    await until('the small table', () => speaker!.rib.size === 1000);
    await sleep(400);
    expect(collections.n).toBe(0);
    const big = Array.from(
      { length: 70_000 },
      (_, i) => (parsePrefix('20.0.0.0/24') as number) + i * 256 * 64,
    );
    a.write(updates(64513, big, false));
    await until('the big table', () => speaker!.rib.size === 71_000, 10_000);
    await until('the collection', () => collections.n === 1, 2000);
    await sleep(400);
    expect(collections.n).toBe(1);
  });
});
