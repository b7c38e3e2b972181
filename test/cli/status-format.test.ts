/**
 * `twill status` in human form: the calicoctl-style table, whole strings compared so any change
 * to the layout shows up in review.
 */
import { describe, expect, it } from 'vitest';
import type { PeerStatus, SpeakerStatus } from '../../src/bgp/status.js';
import { formatStatus } from '../../src/cli/status-format.js';

const now = new Date('2026-11-23T15:04:05Z');
const utc = { timeZone: 'utc' } as const;

function peer(p: Partial<PeerStatus> & Pick<PeerStatus, 'address'>): PeerStatus {
  return {
    port: 179,
    asn: 64513,
    type: 'ebgp',
    state: 'Established',
    since: '2026-11-23T09:14:07Z',
    lastError: null,
    holdTime: 90,
    keepalive: 30,
    routerId: '10.10.0.2',
    capabilities: ['ipv4-unicast', 'route-refresh', '4-octet-as'],
    prefixesReceived: 1,
    prefixesStale: 0,
    prefixesAdvertised: 1,
    passive: false,
    ...p,
  };
}

const base: SpeakerStatus = {
  routerId: '10.10.0.1',
  asn: 64512,
  listen: { address: '0.0.0.0', port: 179 },
  peers: [],
};

describe('formatStatus', () => {
  it('prints an Established eBGP peer like calicoctl node status', () => {
    expect(formatStatus({ ...base, peers: [peer({ address: '10.10.0.2' })] }, now, utc)).toBe(
      [
        'Twill BGP speaker: router id 10.10.0.1, AS 64512, listening on 0.0.0.0:179',
        '',
        'IPv4 BGP status',
        '+--------------+---------------+-------------+----------+------------------------+',
        '| PEER ADDRESS |   PEER TYPE   |    STATE    |  SINCE   |          INFO          |',
        '+--------------+---------------+-------------+----------+------------------------+',
        '| 10.10.0.2    | eBGP AS 64513 | Established | 09:14:07 | hold 90s, 1 in / 1 out |',
        '+--------------+---------------+-------------+----------+------------------------+',
        '',
        'IPv6 BGP status',
        'No IPv6 peers found.',
        '',
      ].join('\n'),
    );
  });

  it('splits peers by family, shows errors for peers that are not up, dates for older changes', () => {
    const s: SpeakerStatus = {
      ...base,
      listen: { address: '::', port: 1179 },
      peers: [
        peer({
          address: '10.10.0.3',
          type: 'ibgp',
          asn: 64512,
          state: 'Active',
          since: '2026-11-20T23:59:59Z',
          holdTime: null,
          keepalive: null,
          prefixesReceived: 0,
          prefixesAdvertised: 0,
          lastError: {
            direction: 'received',
            code: 6,
            subcode: 2,
            text: 'Cease/Administrative Shutdown (6/2): "maintenance"',
            at: '2026-11-20T23:59:59Z',
          },
        }),
        peer({
          address: 'fd00::2',
          port: 1179,
          state: 'Connect',
          passive: true,
          holdTime: null,
          lastError: { direction: 'local', text: 'connect ECONNREFUSED', at: '2026-11-23T15:00:00Z' },
          since: '2026-11-23T15:00:00Z',
        }),
        peer({ address: '10.10.0.4', state: 'Idle', lastError: null, since: '2026-11-23T00:00:00Z' }),
        peer({
          address: '10.10.0.5',
          holdTime: 0,
          prefixesReceived: 12000,
          prefixesAdvertised: 3,
          lastError: { direction: 'sent', code: 4, subcode: 0, text: 'Hold Timer Expired (4/0)', at: '' },
        }),
      ],
    };
    expect(formatStatus(s, now, utc)).toBe(
      [
        'Twill BGP speaker: router id 10.10.0.1, AS 64512, listening on [::]:1179',
        '',
        'IPv4 BGP status',
        '+--------------+---------------+-------------+------------+-------------------------------------------------------------+',
        '| PEER ADDRESS |   PEER TYPE   |    STATE    |   SINCE    |                            INFO                             |',
        '+--------------+---------------+-------------+------------+-------------------------------------------------------------+',
        '| 10.10.0.3    | iBGP AS 64512 | Active      | 2026-11-20 | received Cease/Administrative Shutdown (6/2): "maintenance" |',
        '| 10.10.0.4    | eBGP AS 64513 | Idle        | 00:00:00   |                                                             |',
        '| 10.10.0.5    | eBGP AS 64513 | Established | 09:14:07   | no hold timer, 12000 in / 3 out                             |',
        '+--------------+---------------+-------------+------------+-------------------------------------------------------------+',
        '',
        'IPv6 BGP status',
        '+----------------+------------------------+---------+----------+----------------------+',
        '|  PEER ADDRESS  |       PEER TYPE        |  STATE  |  SINCE   |         INFO         |',
        '+----------------+------------------------+---------+----------+----------------------+',
        '| [fd00::2]:1179 | eBGP AS 64513, passive | Connect | 15:00:00 | connect ECONNREFUSED |',
        '+----------------+------------------------+---------+----------+----------------------+',
        '',
      ].join('\n'),
    );
  });

  it('says so when not listening and when there are no peers', () => {
    expect(formatStatus({ ...base, listen: null }, now, utc)).toBe(
      [
        'Twill BGP speaker: router id 10.10.0.1, AS 64512, not listening',
        '',
        'IPv4 BGP status',
        'No IPv4 peers found.',
        '',
        'IPv6 BGP status',
        'No IPv6 peers found.',
        '',
      ].join('\n'),
    );
  });

  it('keeps control characters a peer sent out of the terminal and cuts long text', () => {
    const text = `Cease/Administrative Shutdown (6/2): "bye\u001b[2J\r\n${'x'.repeat(200)}"`;
    const out = formatStatus(
      {
        ...base,
        peers: [
          peer({
            address: '10.10.0.2',
            state: 'Idle',
            lastError: { direction: 'received', code: 6, subcode: 2, text, at: '' },
          }),
        ],
      },
      now,
      utc,
    );
    // Lines are joined with \n; no other control character may appear.
    expect(out.replaceAll('\n', '')).not.toMatch(/[\u0000-\u001f\u007f]/);
    const row = out.split('\n').find((l) => l.startsWith('| 10.10.0.2'))!;
    expect(row).toContain('received Cease/Administrative Shutdown (6/2): "bye [2J xxx');
    const info = row.split('|')[5]!.trim();
    expect(info).toHaveLength(80);
    expect(info.endsWith('...')).toBe(true);
  });

  it('SINCE uses local time by default', () => {
    const since = new Date(now.getTime() - 60_000);
    const pad = (n: number) => String(n).padStart(2, '0');
    const sameDay = since.getDate() === now.getDate();
    const want = sameDay
      ? `${pad(since.getHours())}:${pad(since.getMinutes())}:${pad(since.getSeconds())}`
      : `${since.getFullYear()}-${pad(since.getMonth() + 1)}-${pad(since.getDate())}`;
    const out = formatStatus(
      { ...base, peers: [peer({ address: '10.10.0.2', since: since.toISOString() })] },
      now,
    );
    expect(out).toContain(`| Established | ${want} |`);
  });

  it('shows an unparseable SINCE as it is', () => {
    const out = formatStatus({ ...base, peers: [peer({ address: '10.10.0.2', since: 'soon' })] }, now, utc);
    expect(out).toContain('| Established | soon  |');
  });

  it('says a restarting peer’s routes are kept, before the error, and counts stale paths when it is back', () => {
    const down = peer({
      address: '10.10.0.2',
      state: 'Active',
      prefixesStale: 12,
      lastError: {
        direction: 'local',
        text: 'connection lost: connection closed',
        at: '2026-11-23T09:14:07Z',
      },
    });
    expect(formatStatus({ ...base, peers: [down] }, now, utc)).toContain(
      '| graceful restart: 12 routes kept; connection lost: connection closed |',
    );
    const back = peer({ address: '10.10.0.2', prefixesReceived: 12, prefixesStale: 5 });
    expect(formatStatus({ ...base, peers: [back] }, now, utc)).toContain(
      '| hold 90s, 12 in / 1 out, 5 stale |',
    );
  });

  it('names the update group of a peer that shares one, and says nothing for a peer on its own', () => {
    const shared = peer({
      address: '10.10.0.2',
      prefixesAdvertised: 1000,
      updateGroup: { id: 3, peers: 12 },
    });
    expect(formatStatus({ ...base, peers: [shared] }, now, utc)).toContain(
      '| hold 90s, 1 in / 1000 out, update group 3 (12 peers) |',
    );
    const alone = peer({ address: '10.10.0.2', updateGroup: { id: 4, peers: 1 } });
    expect(formatStatus({ ...base, peers: [alone] }, now, utc)).toContain('| hold 90s, 1 in / 1 out |');
  });
});

describe('twill status from an agent', () => {
  it('names the node, says whether it is ready, and where each peer came from', () => {
    const text = formatStatus(
      {
        routerId: '10.0.0.1',
        asn: 64512,
        listen: { address: '::', port: 179 },
        peers: [
          {
            address: '10.0.0.2',
            port: 179,
            asn: 64512,
            type: 'ibgp',
            state: 'Active',
            since: '2026-01-01T00:00:00Z',
            lastError: null,
            holdTime: null,
            keepalive: null,
            routerId: null,
            capabilities: [],
            prefixesReceived: 0,
            prefixesStale: 0,
            prefixesAdvertised: 0,
            passive: false,
          },
        ],
        node: 'n1',
        ready: false,
        reasons: ['BGP not established with 10.0.0.2'],
        peerTypes: { '10.0.0.2': 'node-to-node mesh' },
      },
      new Date('2026-01-02T00:00:00Z'),
      { timeZone: 'utc' },
    );
    expect(text.split('\n').slice(0, 2)).toEqual([
      'Twill agent on node n1: router id 10.0.0.1, AS 64512, listening on [::]:179',
      'Not ready: BGP not established with 10.0.0.2.',
    ]);
    expect(text).toContain('| 10.0.0.2     | node-to-node mesh, iBGP AS 64512 | Active | 2026-01-01 |');
  });
});

describe('formatStatus: failing datastore watches', () => {
  it('says which watch fails, since when, how often and why, below the readiness line', () => {
    const text = formatStatus(
      {
        routerId: '10.0.0.1',
        asn: 64512,
        listen: { address: '::', port: 179 },
        peers: [],
        node: 'n1',
        ready: true,
        reasons: [],
        peerTypes: {},
        watchErrors: [
          {
            kind: 'IPAMConfig',
            error: 'NotFound: the server could not find the requested resource\n\u001b[31m',
            since: '2026-01-02T09:14:07Z',
            failures: 12,
          },
          { kind: 'Pod', error: 'Unavailable: connect ECONNREFUSED', since: '2026-01-01T23:00:00Z', failures: 1 },
        ],
      },
      new Date('2026-01-02T10:00:00Z'),
      { timeZone: 'utc' },
    );
    expect(text.split('\n').slice(0, 5)).toEqual([
      'Twill agent on node n1: router id 10.0.0.1, AS 64512, listening on [::]:179',
      'Ready.',
      'Datastore: the IPAMConfig watch has failed since 09:14:07 (12 times): NotFound: the server could not find the requested resource [31m',
      'Datastore: the Pod watch has failed since 2026-01-01 (1 time): Unavailable: connect ECONNREFUSED',
      '',
    ]);
  });
});
