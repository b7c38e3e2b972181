/**
 * When the TwillNodeStatus object is written (src/agent/node-status.ts): a change of state at the
 * next chance (at most every 5 s), a change of counts alone a minute after the last write, and
 * nothing when nothing changed. A regression makes every node of a mesh write its status for
 * every block claimed anywhere, which wakes every watcher of the store N times per block.
 */
import { describe, expect, it } from 'vitest';
import {
  NOTHING_WRITTEN,
  nodeStatusBody,
  STATUS_COUNTS_INTERVAL_MS,
  STATUS_MIN_INTERVAL_MS,
  statusDue,
  statusTexts,
  type WrittenStatus,
} from '../../src/agent/node-status.js';
import type { SpeakerStatus } from '../../src/bgp/status.js';

type Peer = SpeakerStatus['peers'][number];

function speaker(peers: Partial<Peer>[]): SpeakerStatus {
  return {
    peers: peers.map((p, i) => ({
      address: `10.0.0.${i + 2}`,
      asn: 64512,
      state: 'Established',
      since: '2026-12-04T00:00:00.000Z',
      holdTime: 90,
      keepalive: 30,
      prefixesReceived: 1,
      prefixesAdvertised: 1,
      lastError: null,
      ...p,
    })),
  } as unknown as SpeakerStatus;
}

const texts = (peers: Partial<Peer>[], installed = 2, originated = 1) =>
  statusTexts(nodeStatusBody(speaker(peers), () => 'node-to-node mesh', { originated, installed }));

describe('TwillNodeStatus: when it is written', () => {
  const t0 = 1_000_000;
  const first = texts([{}, {}]);
  const written: WrittenStatus = { ...first, at: t0 };

  it('the first status is written; the same again is not, however late', () => {
    expect(statusDue(NOTHING_WRITTEN, first, t0)).toBe(true);
    expect(statusDue(written, texts([{}, {}]), t0 + 10 * STATUS_COUNTS_INTERVAL_MS)).toBe(false);
  });

  it('a change of state is written once the minimum interval has passed, not before', () => {
    const down = texts([{}, { state: 'Active', holdTime: null, keepalive: null }]);
    expect(statusDue(written, down, t0 + STATUS_MIN_INTERVAL_MS - 1)).toBe(false);
    expect(statusDue(written, down, t0 + STATUS_MIN_INTERVAL_MS)).toBe(true);
    // A new session, a last error, another block originated: state too.
    expect(statusDue(written, texts([{}, {}, {}]), t0 + STATUS_MIN_INTERVAL_MS)).toBe(true);
    const err = texts([{}, { lastError: { direction: 'local', text: 'hold timer expired', at: '' } }]);
    expect(statusDue(written, err, t0 + STATUS_MIN_INTERVAL_MS)).toBe(true);
    expect(statusDue(written, texts([{}, {}], 2, 2), t0 + STATUS_MIN_INTERVAL_MS)).toBe(true);
  });

  it('a change of counts alone waits a minute after the last write', () => {
    for (const counts of [
      texts([{ prefixesReceived: 5 }, {}]),
      texts([{}, { prefixesAdvertised: 3 }]),
      texts([{}, {}], 7),
    ]) {
      expect(counts.text).not.toBe(first.text);
      expect(counts.state).toBe(first.state);
      expect(statusDue(written, counts, t0 + STATUS_MIN_INTERVAL_MS)).toBe(false);
      expect(statusDue(written, counts, t0 + STATUS_COUNTS_INTERVAL_MS - 1)).toBe(false);
      expect(statusDue(written, counts, t0 + STATUS_COUNTS_INTERVAL_MS)).toBe(true);
    }
  });

  it('the written body keeps every field, counts included', () => {
    const body = JSON.parse(texts([{ prefixesReceived: 4, prefixesAdvertised: 6 }], 9).text);
    expect(body).toEqual({
      established: 1,
      sessions: [
        {
          peer: '10.0.0.2',
          asNumber: 64512,
          type: 'node-to-node mesh',
          state: 'Established',
          since: '2026-12-04T00:00:00.000Z',
          holdTime: 90,
          keepalive: 30,
          prefixesReceived: 4,
          prefixesAdvertised: 6,
        },
      ],
      routes: { originated: 1, installed: 9 },
    });
  });
});
