/**
 * Proves the interop harness with real routers on both sides (no Twill involved): three
 * daemon-to-daemon sessions brought up in parallel, hold-timer expiry under SIGSTOP, a restart,
 * and the raw peer's malformed UPDATEs answered by BIRD.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import {
  cleanupDaemons,
  type Daemon,
  normalizeState,
  parseBirdRoutes,
  type Route,
  splitJsonDocuments,
  startBird,
  startFrr,
  startGobgp,
} from './daemons.js';
import { bgpMessage, ipv4RouteAttributes, KEEPALIVE_HEX, startRawPeer, updateMessage } from './rawpeer.js';

const TOOLS = ['ip', 'bird', 'birdc', 'gobgpd', 'gobgp', 'vtysh', '/usr/lib/frr/bgpd'];

/** Resolves once `d` has learned every prefix in `prefixes` from `from`. */
async function waitRoutes(d: Daemon, from: string, prefixes: string[], ms = 20_000): Promise<Route[]> {
  let last: Route[] = [];
  try {
    return await waitFor(
      `${d.kind} to learn ${prefixes.join(', ')} from ${from}`,
      async () => {
        last = await d.routes();
        return prefixes.every((p) => last.some((r) => r.prefix === p && r.from === from)) && last;
      },
      ms,
      250,
    );
  } catch (err) {
    throw new Error(`${String(err)}; has ${JSON.stringify(last)}`);
  }
}

describeSystem('interop harness: real BGP daemons in namespaces', { root: true, tools: TOOLS }, () => {
  const lab = new Lab();
  let work = '';
  // Pair A: BIRD <-> GoBGP, eBGP, 4-octet ASNs, hold time 3.
  let birdA: Daemon;
  let gobgpA: Daemon;
  // Pair B: FRR <-> BIRD, iBGP.
  let frrB: Daemon;
  let birdB: Daemon;
  // Pair C: GoBGP -> FRR, eBGP; FRR passive and listening on port 1790.
  let gobgpC: Daemon;
  let frrC: Daemon;
  // BIRD facing the raw peer.
  let birdR: Daemon;
  let rawNs = '';
  // Route reflection: BIRD reflects between FRR and GoBGP clients (iBGP, AS 65300).
  let rrBird: Daemon;
  let rrFrr: Daemon;
  let rrGobgp: Daemon;

  const dir = (name: string) => join(work, name);

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'twt-interop-'));
    const pair = (tag: string, n: number) => {
      const a = lab.ns(`${tag}1`);
      const b = lab.ns(`${tag}2`);
      lab.link(a, `10.0.${n}.1/24`, b, `10.0.${n}.2/24`, {
        v6: [`2001:db8:${n}::1/64`, `2001:db8:${n}::2/64`],
      });
      return [a, b] as const;
    };
    const [a1, a2] = pair('a', 1);
    const [b1, b2] = pair('b', 2);
    const [c1, c2] = pair('c', 3);
    const [r1, r2] = pair('r', 4);
    rawNs = r2;
    const [rrFrrNs, rrNs] = pair('f', 5);
    const rrGobgpNs = lab.ns('g');
    lab.link(rrNs, '10.0.6.1/24', rrGobgpNs, '10.0.6.2/24', { v6: ['2001:db8:6::1/64', '2001:db8:6::2/64'] });

    [birdA, gobgpA, frrB, birdB, gobgpC, frrC, rrBird, rrFrr, rrGobgp, birdR] = await Promise.all([
      startBird(lab, {
        ns: a1,
        dir: dir('bird-a'),
        routerId: '10.0.1.1',
        asn: 4200000001,
        holdTime: 3,
        peers: [{ address: '10.0.1.2', asn: 4200000002 }],
        originate: ['10.101.0.0/24', '2001:db8:a1::/48'],
      }),
      startGobgp(lab, {
        ns: a2,
        dir: dir('gobgp-a'),
        routerId: '10.0.1.2',
        asn: 4200000002,
        holdTime: 3,
        peers: [{ address: '10.0.1.1', asn: 4200000001 }],
        originate: ['10.102.0.0/24', '2001:db8:a2::/48'],
      }),
      startFrr(lab, {
        ns: b1,
        dir: dir('frr-b'),
        routerId: '10.0.2.1',
        asn: 65000,
        peers: [{ address: '10.0.2.2', asn: 65000 }],
        originate: ['10.201.0.0/24', '2001:db8:b1::/48'],
      }),
      startBird(lab, {
        ns: b2,
        dir: dir('bird-b'),
        routerId: '10.0.2.2',
        asn: 65000,
        peers: [{ address: '10.0.2.1', asn: 65000 }],
        originate: ['10.202.0.0/24', '2001:db8:b2::/48'],
      }),
      startGobgp(lab, {
        ns: c1,
        dir: dir('gobgp-c'),
        routerId: '10.0.3.1',
        asn: 65100,
        peers: [{ address: '10.0.3.2', asn: 65200, port: 1790 }],
        originate: ['10.31.0.0/24', '2001:db8:c1::/48'],
      }),
      startFrr(lab, {
        ns: c2,
        dir: dir('frr-c'),
        routerId: '10.0.3.2',
        asn: 65200,
        listenPort: 1790,
        peers: [{ address: '10.0.3.1', asn: 65100, passive: true }],
        originate: ['10.32.0.0/24', '2001:db8:c2::/48'],
      }),
      startBird(lab, {
        ns: rrNs,
        dir: dir('bird-rr'),
        routerId: '10.0.5.2',
        asn: 65300,
        routeReflector: { clusterId: '10.255.0.1' },
        peers: [
          { address: '10.0.5.1', asn: 65300, routeReflectorClient: true },
          { address: '10.0.6.2', asn: 65300, routeReflectorClient: true },
        ],
      }),
      startFrr(lab, {
        ns: rrFrrNs,
        dir: dir('frr-rr'),
        routerId: '10.0.5.1',
        asn: 65300,
        peers: [{ address: '10.0.5.2', asn: 65300 }],
        originate: ['10.51.0.0/24', '2001:db8:51::/48'],
      }),
      startGobgp(lab, {
        ns: rrGobgpNs,
        dir: dir('gobgp-rr'),
        routerId: '10.0.6.2',
        asn: 65300,
        peers: [{ address: '10.0.6.1', asn: 65300 }],
        originate: ['10.62.0.0/24', '2001:db8:62::/48'],
      }),
      startBird(lab, {
        ns: r1,
        dir: dir('bird-r'),
        routerId: '10.0.4.1',
        asn: 65001,
        peers: [{ address: '10.0.4.2', asn: 65010, passive: true }],
      }),
    ]);
  });

  afterAll(async () => {
    await cleanupDaemons();
    await lab.cleanup();
    if (work && !process.env.KEEP_WORK) rmSync(work, { recursive: true, force: true });
  });

  it('three daemon pairs reach Established and each side learns the other side’s IPv4 and IPv6 prefixes', async () => {
    await Promise.all([
      birdA.waitEstablished('10.0.1.2'),
      gobgpA.waitEstablished('10.0.1.1'),
      frrB.waitEstablished('10.0.2.2'),
      birdB.waitEstablished('10.0.2.1'),
      gobgpC.waitEstablished('10.0.3.2'),
      frrC.waitEstablished('10.0.3.1'),
    ]);
    const [ra, ga, fb, bb, gc, fc] = await Promise.all([
      waitRoutes(birdA, '10.0.1.2', ['10.102.0.0/24', '2001:db8:a2::/48']),
      waitRoutes(gobgpA, '10.0.1.1', ['10.101.0.0/24', '2001:db8:a1::/48']),
      waitRoutes(frrB, '10.0.2.2', ['10.202.0.0/24', '2001:db8:b2::/48']),
      waitRoutes(birdB, '10.0.2.1', ['10.201.0.0/24', '2001:db8:b1::/48']),
      waitRoutes(gobgpC, '10.0.3.2', ['10.32.0.0/24', '2001:db8:c2::/48']),
      waitRoutes(frrC, '10.0.3.1', ['10.31.0.0/24', '2001:db8:c1::/48']),
    ]);
    const get = (rs: Route[], p: string) => rs.find((r) => r.prefix === p);
    // eBGP with 4-octet ASNs: the neighbour's AS, next hops of each family on the shared link.
    expect(get(ra, '10.102.0.0/24')).toMatchObject({ asPath: [4200000002], nextHop: '10.0.1.2', best: true });
    expect(get(ra, '2001:db8:a2::/48')).toMatchObject({ asPath: [4200000002], nextHop: '2001:db8:1::2' });
    expect(get(ga, '10.101.0.0/24')).toMatchObject({ asPath: [4200000001], nextHop: '10.0.1.1' });
    expect(get(ga, '2001:db8:a1::/48')).toMatchObject({ asPath: [4200000001], nextHop: '2001:db8:1::1' });
    // iBGP: empty AS_PATH, LOCAL_PREF 100.
    expect(get(fb, '10.202.0.0/24')).toMatchObject({ asPath: [], localPref: 100, nextHop: '10.0.2.2' });
    expect(get(fb, '2001:db8:b2::/48')).toMatchObject({ asPath: [], nextHop: '2001:db8:2::2' });
    expect(get(bb, '10.201.0.0/24')).toMatchObject({ asPath: [], localPref: 100, nextHop: '10.0.2.1' });
    expect(get(bb, '2001:db8:b1::/48')).toMatchObject({ asPath: [], nextHop: '2001:db8:2::1' });
    // Passive FRR on port 1790.
    expect(get(gc, '10.32.0.0/24')).toMatchObject({ asPath: [65200], nextHop: '10.0.3.2' });
    expect(get(gc, '2001:db8:c2::/48')).toMatchObject({ asPath: [65200], nextHop: '2001:db8:3::2' });
    expect(get(fc, '10.31.0.0/24')).toMatchObject({ asPath: [65100], nextHop: '10.0.3.1' });
    expect(get(fc, '2001:db8:c1::/48')).toMatchObject({ asPath: [65100], nextHop: '2001:db8:3::1' });
  });

  it('route reflection: FRR and GoBGP clients see ORIGINATOR_ID and CLUSTER_LIST set by the BIRD reflector', async () => {
    const [f, g] = await Promise.all([
      waitRoutes(rrFrr, '10.0.5.2', ['10.62.0.0/24', '2001:db8:62::/48']),
      waitRoutes(rrGobgp, '10.0.6.1', ['10.51.0.0/24', '2001:db8:51::/48']),
    ]);
    const reflected = { asPath: [], clusterList: ['10.255.0.1'] };
    expect(f.find((r) => r.prefix === '10.62.0.0/24')).toMatchObject({
      ...reflected,
      originatorId: '10.0.6.2',
      nextHop: '10.0.6.2',
    });
    expect(f.find((r) => r.prefix === '2001:db8:62::/48')).toMatchObject({
      ...reflected,
      originatorId: '10.0.6.2',
    });
    expect(g.find((r) => r.prefix === '10.51.0.0/24')).toMatchObject({
      ...reflected,
      originatorId: '10.0.5.1',
      nextHop: '10.0.5.1',
    });
    const atReflector = await rrBird.routes();
    expect(atReflector.find((r) => r.prefix === '10.51.0.0/24')).toMatchObject({
      from: '10.0.5.1',
      best: true,
    });
  });

  it('announce and withdraw at run time reach the peer', async () => {
    await Promise.all([
      birdA.announce('10.111.0.0/24'),
      gobgpA.announce('2001:db8:a3::/48'),
      frrB.announce('2001:db8:b3::/48'),
    ]);
    await Promise.all([
      waitRoutes(gobgpA, '10.0.1.1', ['10.111.0.0/24']),
      waitRoutes(birdA, '10.0.1.2', ['2001:db8:a3::/48']),
      waitRoutes(birdB, '10.0.2.1', ['2001:db8:b3::/48']),
    ]);
    await Promise.all([birdA.withdraw('10.111.0.0/24'), frrB.withdraw('2001:db8:b3::/48')]);
    await Promise.all([
      waitFor('GoBGP to drop 10.111.0.0/24', async () =>
        (await gobgpA.routes()).every((r) => r.prefix !== '10.111.0.0/24'),
      ),
      waitFor('BIRD to drop 2001:db8:b3::/48', async () =>
        (await birdB.routes()).every((r) => r.prefix !== '2001:db8:b3::/48'),
      ),
    ]);
  });

  it('SIGSTOP of GoBGP expires BIRD’s 3 s hold timer and SIGCONT recovers; FRR stop/start recovers', async () => {
    const holdExpiry = async () => {
      await birdA.waitEstablished('10.0.1.2');
      gobgpA.kill('SIGSTOP');
      const stoppedAt = Date.now();
      try {
        await birdA.waitNotEstablished('10.0.1.2', 10_000);
        expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1500);
        expect(birdA.log()).toMatch(/Hold timer expired/i);
      } finally {
        gobgpA.kill('SIGCONT');
      }
      await Promise.all([
        birdA.waitEstablished('10.0.1.2', 30_000),
        gobgpA.waitEstablished('10.0.1.1', 30_000),
      ]);
      await waitRoutes(birdA, '10.0.1.2', ['10.102.0.0/24', '2001:db8:a2::/48']);
    };
    const restart = async () => {
      await birdB.waitEstablished('10.0.2.1');
      const before = frrB.pid();
      await frrB.stop();
      await birdB.waitNotEstablished('10.0.2.1', 10_000);
      await frrB.start();
      expect(frrB.pid()).not.toBe(before);
      await Promise.all([
        birdB.waitEstablished('10.0.2.1', 30_000),
        frrB.waitEstablished('10.0.2.2', 30_000),
      ]);
      await waitRoutes(birdB, '10.0.2.1', ['10.201.0.0/24', '2001:db8:b1::/48']);
    };
    await Promise.all([holdExpiry(), restart()]);
  });

  it('raw peer: BIRD treats ORIGIN 5 as withdraw (RFC 7606) and answers a bad marker with NOTIFICATION 1/1', async () => {
    const attrs = (origin: number) => ipv4RouteAttributes({ origin, asPath: [65010], nextHop: '10.0.4.2' });
    const good = updateMessage({ attributes: attrs(0), nlri: ['10.77.1.0/24'] });
    const badOrigin = updateMessage({ attributes: attrs(5), nlri: ['10.77.2.0/24'] });
    const badMarker = `${'ff'.repeat(15)}fe${KEEPALIVE_HEX.slice(32)}`;
    expect(bgpMessage(4, '')).toBe(KEEPALIVE_HEX);
    const raw = await startRawPeer(lab, {
      ns: rawNs,
      dir: dir('raw'),
      asn: 65010,
      routerId: '10.0.4.2',
      connect: { address: '10.0.4.1' },
      holdTime: 30,
      script: [good, badOrigin, 'waitfile go', badMarker],
    });
    await raw.waitEvent('established');
    await birdR.waitEstablished('10.0.4.2');
    const routes = await waitRoutes(birdR, '10.0.4.2', ['10.77.1.0/24']);
    // Give BIRD time to process the second UPDATE, which it must drop without a NOTIFICATION.
    await waitFor('BIRD to log the malformed ORIGIN', () => /ORIGIN/i.test(birdR.log()), 5000);
    expect(routes.map((r) => r.prefix)).not.toContain('10.77.2.0/24');
    expect((await birdR.routes()).map((r) => r.prefix)).not.toContain('10.77.2.0/24');
    expect(raw.received().filter((m) => m.type === 3)).toEqual([]);
    expect(await birdR.peerState('10.0.4.2')).toBe('Established');

    raw.signal('go');
    const n = await raw.waitNotification();
    expect({ code: n.code, subcode: n.subcode }).toEqual({ code: 1, subcode: 1 });
    await raw.stop();
  });
});

describe('interop harness parsers', () => {
  it('parses BIRD route lines with reflection attributes, stale routes and further paths of a network', () => {
    const text = [
      'BIRD 2.0.12 ready.',
      'Table master4:',
      '10.1.0.0/24          unicast [peer_10_0_0_2 12:00:00.000 from 10.0.0.9] * (100s) [AS65010i]',
      '\tvia 10.0.0.2 on ta0',
      '\tType: BGP univ',
      '\tBGP.origin: IGP',
      '\tBGP.as_path: 65010 {65020 65030}',
      '\tBGP.next_hop: 10.0.0.2 fe80::1',
      '\tBGP.med: 5',
      '\tBGP.local_pref: 200',
      '\tBGP.community: (65000,100) (65535,65281)',
      '\tBGP.originator_id: 10.0.0.9',
      '\tBGP.cluster_list: 10.0.0.1 10.0.0.7',
      '                     unreachable [peer_10_0_0_3 12:00:01.000] (100) [i]',
      '\tType: BGP univ',
      '\tBGP.as_path: ',
      '\tBGP.next_hop: 192.0.2.7',
      '10.9.0.0/24          unicast [direct1 12:00:00.000] * (240)',
      '\tdev ta0',
    ].join('\n');
    const byProto = new Map([
      ['peer_10_0_0_2', '10.0.0.2'],
      ['peer_10_0_0_3', '10.0.0.3'],
    ]);
    expect(parseBirdRoutes(text, byProto)).toEqual([
      {
        prefix: '10.1.0.0/24',
        from: '10.0.0.2',
        best: true,
        stale: true,
        asPath: [65010, 65020, 65030],
        nextHop: '10.0.0.2',
        med: 5,
        localPref: 200,
        communities: ['65000:100', '65535:65281'],
        originatorId: '10.0.0.9',
        clusterList: ['10.0.0.1', '10.0.0.7'],
      },
      { prefix: '10.1.0.0/24', from: '10.0.0.3', best: false, asPath: [], nextHop: '192.0.2.7' },
    ]);
  });

  it('splits the JSON documents vtysh prints for several commands', () => {
    expect(splitJsonDocuments('{"a":"}{"}\n{\n "b":[1,{"c":2}]\n}\n').map((d) => JSON.parse(d))).toEqual([
      { a: '}{' },
      { b: [1, { c: 2 }] },
    ]);
  });

  it('normalises state names', () => {
    expect(
      ['BGP_FSM_ESTABLISHED', 'established', 'Established', 'OpenSent', 'Clearing'].map(normalizeState),
    ).toEqual(['Established', 'Established', 'Established', 'OpenSent', 'Clearing']);
  });
});
