/**
 * Twill's standalone speaker against BIRD 2, FRR bgpd and GoBGP in network namespaces, each
 * checked in its own CLI (test/interop/daemons.ts) and in `twill status --json`:
 *   - every daemon, eBGP with Twill dialing and a 4-octet AS on Twill's side, and iBGP with Twill
 *     passive; IPv4 and IPv6 prefixes flow both ways;
 *   - a peer killed with SIGKILL goes down and comes back when restarted; a peer frozen with
 *     SIGSTOP gets NOTIFICATION 4/0 when the hold timer runs out;
 *   - a peer sending malformed UPDATEs gets what RFC 7606 asks (treat-as-withdraw: no
 *     NOTIFICATION, the route goes; a broken header: NOTIFICATION 1/1), and Twill's other session
 *     stays up with its routes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { Twill } from '../helpers/twill.js';
import {
  type Daemon,
  type DaemonKind,
  type DaemonSpec,
  startBird,
  startFrr,
  startGobgp,
} from '../interop/daemons.js';
import {
  bgpMessage,
  ipv4RouteAttributes,
  pathAttribute,
  startRawPeer,
  updateMessage,
} from '../interop/rawpeer.js';

const START: Record<DaemonKind, (lab: Lab, spec: DaemonSpec) => Promise<Daemon>> = {
  bird: startBird,
  frr: startFrr,
  gobgp: startGobgp,
};

const TOOLS = ['ip', 'bird', 'birdc', 'gobgpd', 'gobgp', 'vtysh', '/usr/lib/frr/bgpd'];

interface Case {
  kind: DaemonKind;
  mode: 'ebgp' | 'ibgp';
  /** Twill dials (the daemon is passive), or Twill waits (the daemon dials). */
  twill: 'dialing' | 'passive';
  /** The session runs over IPv6 (both families still carried). */
  v6: boolean;
  i: number;
}

// Every daemon, eBGP and iBGP, Twill dialing and Twill passive; and one session over IPv6.
const CASES: Case[] = [
  ...(['bird', 'frr', 'gobgp'] as DaemonKind[]).flatMap((kind, k) =>
    (['ebgp', 'ibgp'] as const).flatMap((mode, m) =>
      (['dialing', 'passive'] as const).map((twill, t) => ({
        kind,
        mode,
        twill,
        v6: false,
        i: k * 4 + m * 2 + t + 1,
      })),
    ),
  ),
  { kind: 'bird', mode: 'ebgp', twill: 'dialing', v6: true, i: 13 },
];

describeSystem('interop with BIRD 2, FRR and GoBGP (namespaces)', { root: true, tools: TOOLS }, () => {
  const lab = new Lab();
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'twill-interop-'));
  });
  afterAll(async () => {
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  describe.each(CASES)(
    '$kind $mode, Twill $twill, IPv6 transport: $v6',
    ({ kind, mode, twill: role, v6, i }) => {
      const t4 = `10.90.${i}.1`;
      const tAddr = v6 ? `fd90:${i}::1` : t4;
      const dAddr = v6 ? `fd90:${i}::2` : `10.90.${i}.2`;
      const ebgp = mode === 'ebgp';
      const dialing = role === 'dialing';
      const twillAs = ebgp ? 4200000001 : 64512;
      const daemonAs = ebgp ? 64513 : 64512;
      let twill: Twill;
      let daemon: Daemon;

      beforeAll(async () => {
        const nsT = lab.ns(`t${i}`);
        const nsD = lab.ns(`d${i}`);
        lab.link(nsT, `${t4}/24`, nsD, `10.90.${i}.2/24`, { v6: [`fd90:${i}::1/64`, `fd90:${i}::2/64`] });
        twill = new Twill(lab, {
          ns: nsT,
          dir,
          routerId: t4,
          asn: twillAs,
          listen: { address: v6 ? '::' : '0.0.0.0', port: 179 },
          neighbors: [{ address: dAddr, asn: daemonAs, passive: !dialing, holdTime: 9, connectRetry: 1 }],
          originate: [`10.100.${i}.0/24`, `fd10:${i}::/48`],
        });
        [daemon] = await Promise.all([
          START[kind](lab, {
            ns: nsD,
            dir: join(dir, `${kind}-${mode}-${role}${v6 ? '-v6' : ''}`),
            routerId: `10.90.${i}.2`,
            asn: daemonAs,
            peers: [{ address: tAddr, asn: twillAs, passive: dialing }],
            originate: [`10.200.${i}.0/24`, `fd20:${i}::/48`],
          }),
          twill.start(),
        ]);
      });

      it('reaches Established on both sides', async () => {
        await daemon.waitEstablished(tAddr, 30_000);
        await twill.waitState(dAddr, 'Established');
        const p = twill.peer(dAddr);
        expect(p).toMatchObject({ asn: daemonAs, type: mode, holdTime: 9, passive: !dialing });
        expect(p.capabilities).toEqual(
          expect.arrayContaining(['ipv4-unicast', 'ipv6-unicast', '4-octet-as']),
        );
      });

      it(`${kind} holds Twill's IPv4 and IPv6 prefixes, in its own CLI`, async () => {
        const routes = await waitFor(
          `${kind} routes`,
          async () => {
            const r = await daemon.routes();
            return (
              r.some((x) => x.prefix === `10.100.${i}.0/24`) &&
              r.some((x) => x.prefix === `fd10:${i}::/48`) &&
              r
            );
          },
          20_000,
        );
        const v4 = routes.find((r) => r.prefix === `10.100.${i}.0/24`)!;
        expect(v4.asPath).toEqual(ebgp ? [twillAs] : []);
        expect(v4.nextHop).toBe(t4);
        if (!ebgp) expect(v4.localPref).toBe(100);
        const v6 = routes.find((r) => r.prefix === `fd10:${i}::/48`)!;
        expect(v6.nextHop).toBe(`fd90:${i}::1`);
      });

      it(`Twill holds ${kind}'s IPv4 and IPv6 prefixes, in twill status`, async () => {
        await waitFor(
          'twill routes',
          async () => (await twill.prefixesFrom(dAddr)).length === 2,
          20_000,
        ).catch((err) => {
          throw new Error(
            `${err.message}\n--- twill log ---\n${twill.log.slice(-3000)}\n--- ${kind} log ---\n${daemon.log().slice(-2000)}`,
          );
        });
        expect(await twill.prefixesFrom(dAddr)).toEqual([`10.200.${i}.0/24`, `fd20:${i}::/48`]);
        const p = twill.peer(dAddr);
        expect(p.prefixesReceived).toBe(2);
        expect(p.prefixesAdvertised).toBe(2);
      });
    },
  );

  describe('peer failures (BIRD)', () => {
    const tAddr = '10.90.20.1';
    const dAddr = '10.90.20.2';
    let twill: Twill;
    let bird: Daemon;
    let nsD: string;
    let birdIf: string;

    beforeAll(async () => {
      const nsT = lab.ns('tf');
      nsD = lab.ns('df');
      birdIf = lab.link(nsT, `${tAddr}/24`, nsD, `${dAddr}/24`).bIf;
      twill = new Twill(lab, {
        ns: nsT,
        dir,
        routerId: tAddr,
        asn: 64512,
        neighbors: [{ address: dAddr, asn: 64513, holdTime: 3, connectRetry: 1, families: ['ipv4-unicast'] }],
        originate: ['10.100.20.0/24'],
      });
      [bird] = await Promise.all([
        startBird(lab, {
          ns: nsD,
          dir: join(dir, 'bird-fail'),
          routerId: dAddr,
          asn: 64513,
          holdTime: 3,
          // Without graceful restart: a dead peer's routes go at once.
          gracefulRestart: false,
          peers: [{ address: tAddr, asn: 64512, families: ['ipv4-unicast'] }],
          originate: ['10.200.20.0/24'],
        }),
        twill.start(),
      ]);
      await twill.waitState(dAddr, 'Established');
    });

    it('a peer killed with SIGKILL is detected by the hold timer, and the session comes back when it restarts', async () => {
      // Like a node that loses power: take BIRD's link down first, so no FIN or RST reaches Twill
      // and only the hold timer (3 s) can tell.
      lab.exec(nsD, 'ip', ['link', 'set', birdIf, 'down']);
      bird.kill('SIGKILL');
      const t0 = Date.now();
      await waitFor('twill notices', () => twill.peer(dAddr).state !== 'Established', 10_000);
      expect(Date.now() - t0).toBeGreaterThan(1500);
      expect(twill.peer(dAddr).lastError).toMatchObject({ direction: 'sent', code: 4, subcode: 0 });
      expect(await twill.prefixesFrom(dAddr)).toEqual([]);
      lab.exec(nsD, 'ip', ['link', 'set', birdIf, 'up']);
      await bird.start();
      await twill.waitState(dAddr, 'Established', 30_000);
      await waitFor('routes back', async () => (await twill.prefixesFrom(dAddr)).length === 1, 20_000);
    });

    it('a peer frozen with SIGSTOP gets NOTIFICATION 4/0 from the hold timer', async () => {
      await bird.waitEstablished(tAddr, 30_000);
      bird.kill('SIGSTOP');
      try {
        await waitFor('hold timer expiry', () => twill.peer(dAddr).state !== 'Established', 10_000);
        expect(twill.peer(dAddr).lastError).toMatchObject({ direction: 'sent', code: 4, subcode: 0 });
        // The session ended with a NOTIFICATION: no graceful restart, BIRD's routes are gone.
        expect(await twill.prefixesFrom(dAddr)).toEqual([]);
      } finally {
        bird.kill('SIGCONT');
      }
      await twill.waitState(dAddr, 'Established', 30_000);
    });
  });

  describe('malformed UPDATEs from a raw peer; the BIRD session stays up', () => {
    const tAddr = '10.90.30.1';
    const bAddr = '10.90.30.2';
    const rAddr = '10.90.31.2';
    let twill: Twill;
    let bird: Daemon;
    let nsR: string;

    beforeAll(async () => {
      const nsT = lab.ns('tm');
      const nsB = lab.ns('bm');
      nsR = lab.ns('rm');
      lab.link(nsT, `${tAddr}/24`, nsB, `${bAddr}/24`);
      lab.link(nsT, '10.90.31.1/24', nsR, `${rAddr}/24`);
      twill = new Twill(lab, {
        ns: nsT,
        dir,
        routerId: tAddr,
        asn: 64512,
        neighbors: [
          { address: bAddr, asn: 64513, holdTime: 9, connectRetry: 1, families: ['ipv4-unicast'] },
          { address: rAddr, asn: 64514, holdTime: 90, passive: true, families: ['ipv4-unicast'] },
        ],
      });
      [bird] = await Promise.all([
        startBird(lab, {
          ns: nsB,
          dir: join(dir, 'bird-malformed'),
          routerId: bAddr,
          asn: 64513,
          peers: [{ address: tAddr, asn: 64512, families: ['ipv4-unicast'] }],
          originate: ['10.200.30.0/24'],
        }),
        twill.start(),
      ]);
      await twill.waitState(bAddr, 'Established');
      await waitFor(
        'BIRD routes at twill',
        async () => (await twill.prefixesFrom(bAddr)).length === 1,
        20_000,
      );
    });

    const good = (prefix: string) =>
      updateMessage({ attributes: ipv4RouteAttributes({ asPath: [64514], nextHop: rAddr }), nlri: [prefix] });

    it('ORIGIN 5 is treat-as-withdraw: no NOTIFICATION, the route is withdrawn, the session stays (RFC 7606 §7.1)', async () => {
      // Good route, wait, then the same prefix with ORIGIN 5, then another good route.
      const bad = updateMessage({
        attributes: ipv4RouteAttributes({ origin: 5, asPath: [64514], nextHop: rAddr }),
        nlri: ['10.150.0.0/24'],
      });
      const raw = await startRawPeer(lab, {
        ns: nsR,
        dir: join(dir, 'raw-taw'),
        asn: 64514,
        routerId: rAddr,
        connect: { address: '10.90.31.1' },
        families: ['ipv4'],
        script: [
          good('10.150.0.0/24'),
          good('10.151.0.0/24'),
          'waitfile step2',
          bad,
          'sleep 300',
          good('10.152.0.0/24'),
          'waitfile end',
        ],
      });
      await waitFor('good routes', async () => (await twill.prefixesFrom(rAddr)).length === 2, 15_000);
      raw.signal('step2');
      await waitFor('withdrawn by TAW', async () => {
        const p = await twill.prefixesFrom(rAddr);
        return p.includes('10.152.0.0/24') && !p.includes('10.150.0.0/24');
      });
      expect(await twill.prefixesFrom(rAddr)).toEqual(['10.151.0.0/24', '10.152.0.0/24']);
      expect(raw.received().filter((m) => m.type === 3)).toEqual([]);
      expect(twill.peer(rAddr).state).toBe('Established');
      raw.signal('end');
      await raw.stop();
    });

    it('an unrecognized well-known attribute resets with 3/2 and the attribute as data', async () => {
      const attrs =
        ipv4RouteAttributes({ asPath: [64514], nextHop: rAddr }) + pathAttribute(0x40, 0x63, 'ab');
      const raw = await startRawPeer(lab, {
        ns: nsR,
        dir: join(dir, 'raw-wk'),
        asn: 64514,
        routerId: rAddr,
        connect: { address: '10.90.31.1' },
        families: ['ipv4'],
        script: [updateMessage({ attributes: attrs, nlri: ['10.153.0.0/24'] }), 'waitfile end'],
      });
      expect(await raw.waitNotification()).toEqual({ code: 3, subcode: 2, dataHex: '406301ab' });
      raw.signal('end');
      await raw.stop();
    });

    it('a broken marker gets NOTIFICATION 1/1 (RFC 4271 §6.1)', async () => {
      const raw = await startRawPeer(lab, {
        ns: nsR,
        dir: join(dir, 'raw-marker'),
        asn: 64514,
        routerId: rAddr,
        connect: { address: '10.90.31.1' },
        families: ['ipv4'],
        script: [bgpMessage(4, '', `${'ff'.repeat(15)}00`), 'waitfile end'],
      });
      expect(await raw.waitNotification()).toMatchObject({ code: 1, subcode: 1 });
      raw.signal('end');
      await raw.stop();
    });

    it("Twill's session with BIRD stayed up through all of it, with its routes", async () => {
      const p = twill.peer(bAddr);
      expect(p.state).toBe('Established');
      expect(await twill.prefixesFrom(bAddr)).toEqual(['10.200.30.0/24']);
      expect(await bird.peerState(tAddr)).toBe('Established');
      // The sessions that were reset are counted against the raw peer only.
      expect(twill.peer(rAddr).lastError).toMatchObject({ direction: 'sent', code: 1, subcode: 1 });
    });
  });
});
