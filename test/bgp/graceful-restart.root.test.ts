/**
 * Graceful restart (RFC 4724) between Twill and BIRD 2, in network namespaces, each side watched
 * by a raw BGP peer (test/interop/rawpeer.ts) that records every UPDATE it is sent, so "no
 * withdrawal at any point" is checked on the wire rather than by sampling a table.
 *
 * 1. Twill restarts, BIRD helps:
 *      Twill 10.50.0.1 AS 64512 --eBGP, GR-- BIRD 10.50.0.2 / 10.50.1.1 AS 64513 --eBGP-- watcher 10.50.1.2 AS 64514
 *    Twill originates two prefixes; the watcher learns them through BIRD. Twill is stopped with
 *    SIGTERM, which closes the GR session without a NOTIFICATION, and started again with
 *    `--graceful-restart` well within its restart time (30 s). BIRD 2.0.12 does not mark
 *    GR-stale routes in `show route all` (the route lines do not change); `show protocols all`
 *    shows "Neighbor graceful restart active" and a running "Restart timer", and the routes stay.
 *    After the restart Twill's OPEN carries the R bit and the F bit for IPv4, BIRD's GR ends on
 *    Twill's End-of-RIB, BIRD counts both routes received again and unchanged, and the watcher
 *    was sent no withdrawal and no second announcement.
 * 2. BIRD restarts, Twill helps:
 *      BIRD 10.60.0.2 AS 64513 --eBGP, GR-- Twill 10.60.0.1 / 10.60.1.1 AS 64512 --eBGP-- watcher 10.60.1.2 AS 64514
 *    BIRD originates two prefixes. `birdc graceful restart` ends BIRD without a NOTIFICATION, and
 *    BIRD is started again with `-R` (graceful restart recovery: R bit, F bit, routes and
 *    End-of-RIB held back until its recovery ends). The restarted config adds a GR peer that
 *    never comes up and `graceful restart wait 4`, so BIRD's End-of-RIB comes 4 s after its
 *    start, long after the session is up. `twill routes` shows BIRD's paths stale (and best)
 *    while BIRD is down, still stale once the new session is Established, and fresh only after
 *    BIRD ends its recovery; the watcher behind Twill was sent no withdrawal.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, waitFor } from '../helpers/netns.js';
import { Twill } from '../helpers/twill.js';
import { cleanupDaemons, type Daemon, startBird } from '../interop/daemons.js';
import { type RawPeer, startRawPeer } from '../interop/rawpeer.js';
import { birdc, decodeUpdate } from './lab-helpers.js';

const TOOLS = ['ip', 'bird', 'birdc'];

/** Start (or start again) a Twill, with `--graceful-restart` when `restarting`. */
async function startTwill(_lab: Lab, twill: Twill, restarting: boolean): Promise<void> {
  twill.spec.restarting = restarting;
  twill.log += `--- started${restarting ? ' with --graceful-restart' : ''} ---\n`;
  await twill.start();
}

const RECOVERY_HOLD = `
# Added for the restart: a GR peer that never answers keeps BIRD's recovery open for
# \`graceful restart wait\` seconds, so its End-of-RIB to Twill comes that much later.
graceful restart wait 4;
protocol bgp never_up {
	local as 64513;
	neighbor 10.60.0.99 as 64599;
	graceful restart on;
	ipv4 { import all; export none; };
}
`;

/** Every UPDATE the watcher received: withdrawn prefixes and announced NLRI, in order. */
function watcherUpdates(w: RawPeer) {
  return w
    .received()
    .filter((m) => m.type === 2)
    .map((m) => decodeUpdate(m.hex));
}

describeSystem('graceful restart with BIRD 2 (namespaces)', { root: true, tools: TOOLS }, () => {
  const lab = new Lab();
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'twill-gr-'));
  });
  afterAll(async () => {
    await cleanupDaemons();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('Twill restarts; BIRD keeps its routes; a watcher behind BIRD sees no withdrawal', () => {
    const T = '10.50.0.1';
    const B = '10.50.0.2';
    const BW = '10.50.1.1';
    const W = '10.50.1.2';
    const PREFIXES = ['10.51.0.0/24', '10.51.1.0/24'];
    let twill: Twill;
    let bird: Daemon;
    let watcher: RawPeer;
    let birdSock: string;
    const PROTO = 'peer_10_50_0_1';
    const fromTwill = async () =>
      (await bird.routes())
        .filter((r) => r.from === T)
        .map((r) => r.prefix)
        .sort();

    beforeAll(async () => {
      const nsT = lab.ns('grt');
      const nsB = lab.ns('grb');
      const nsW = lab.ns('grw');
      lab.link(nsT, `${T}/24`, nsB, `${B}/24`);
      lab.link(nsB, `${BW}/24`, nsW, `${W}/24`);
      twill = new Twill(lab, {
        ns: nsT,
        dir,
        routerId: T,
        asn: 64512,
        neighbors: [{ address: B, asn: 64513, holdTime: 9, connectRetry: 1, families: ['ipv4-unicast'] }],
        originate: PREFIXES,
        extra: { gracefulRestart: { enabled: true, restartTime: 30, deferralTime: 10 } },
      });
      const birdDir = join(dir, 'bird-helper');
      birdSock = join(birdDir, 'bird.ctl');
      [bird] = await Promise.all([
        startBird(lab, {
          ns: nsB,
          dir: birdDir,
          routerId: B,
          asn: 64513,
          peers: [
            { address: T, asn: 64512, families: ['ipv4-unicast'], gracefulRestart: true },
            { address: W, asn: 64514, families: ['ipv4-unicast'], passive: true },
          ],
        }),
        startTwill(lab, twill, false),
      ]);
      watcher = await startRawPeer(lab, {
        ns: nsW,
        dir: join(dir, 'watcher-behind-bird'),
        asn: 64514,
        routerId: W,
        connect: { address: BW },
        families: ['ipv4'],
        holdTime: 90,
        script: [],
      });
      await watcher.waitEvent('established', 30_000);
      await twill.waitState(B, 'Established');
    });

    it('the watcher learns Twill’s prefixes through BIRD', async () => {
      await waitFor(
        'watcher holds both prefixes',
        () => {
          const nlri = watcherUpdates(watcher).flatMap((u) => u.nlri);
          return PREFIXES.every((p) => nlri.includes(p));
        },
        30_000,
      );
      expect(twill.peer(B).capabilities).toContain('graceful-restart');
    });

    it('SIGTERM: BIRD keeps Twill’s routes while Twill is down, helping its restart', async () => {
      await twill.stop();
      await bird.waitNotEstablished(T, 10_000);
      const proto = birdc(birdSock, 'show', 'protocols', 'all', PROTO);
      // BIRD 2.0.12 marks no GR-stale route in `show route`; the protocol says it is helping.
      expect(proto).toMatch(/Neighbor graceful restart active/);
      expect(proto).toMatch(/Restart timer:\s+[\d.]+\/-/);
      // No NOTIFICATION reached BIRD: the session ended with the connection closing.
      expect(proto).toMatch(/Last error:\s+Socket: Connection closed/);
      expect(twill.log).toMatch(/closing without NOTIFICATION/);
      expect(await fromTwill()).toEqual(PREFIXES);
      // And a while later, still there.
      await new Promise((r) => setTimeout(r, 2000));
      expect(await fromTwill()).toEqual(PREFIXES);
    });

    it('Twill restarts with --graceful-restart: Established again, routes fresh, no withdrawal ever', async () => {
      await startTwill(lab, twill, true);
      await twill.waitState(B, 'Established');
      await bird.waitEstablished(T, 30_000);
      // BIRD's GR ends on Twill's End-of-RIB (its restart timer, 30 s, is far off).
      const proto = await waitFor(
        'BIRD ends graceful restart',
        () => {
          const out = birdc(birdSock, 'show', 'protocols', 'all', PROTO);
          return !/Neighbor graceful restart active/.test(out) && out;
        },
        20_000,
      );
      // Twill's new OPEN: R bit ("Restart recovery") and the F bit for IPv4 ("AF preserved").
      const caps = proto.slice(proto.indexOf('Neighbor capabilities'), proto.indexOf('Session:'));
      expect(caps).toMatch(
        /Graceful restart\s+Restart time: 30\s+Restart recovery\s+AF supported: ipv4\s+AF preserved: ipv4/,
      );
      // Twill sent both routes again; BIRD found them unchanged (ignored: only the stale mark
      // went) and got no withdrawal. Columns: received rejected filtered ignored accepted.
      expect(proto).toMatch(/Import updates:\s+4\s+0\s+0\s+2\s+2\n/);
      expect(proto).toMatch(/Import withdraws:\s+0\s/);
      expect(await fromTwill()).toEqual(PREFIXES);
      // Give a late withdrawal time to arrive, then read everything the watcher was sent.
      await new Promise((r) => setTimeout(r, 1000));
      const ups = watcherUpdates(watcher);
      expect(ups.flatMap((u) => u.withdrawn)).toEqual([]);
      expect(ups.flatMap((u) => u.mp)).toEqual([]);
      // Each prefix was announced once, before the restart: the watcher saw no change at all.
      expect(ups.flatMap((u) => u.nlri).sort()).toEqual(PREFIXES);
      expect(watcher.events().some((e) => 'event' in e && e.event === 'closed')).toBe(false);
    });
  });

  describe('BIRD restarts; Twill keeps its routes stale until End-of-RIB; a watcher behind Twill sees no withdrawal', () => {
    const T = '10.60.0.1';
    const B = '10.60.0.2';
    const TW = '10.60.1.1';
    const W = '10.60.1.2';
    const PREFIXES = ['10.61.0.0/24', '10.61.1.0/24'];
    let twill: Twill;
    let bird: Daemon;
    let watcher: RawPeer;
    let birdDir: string;
    let nsB: string;

    const birdPaths = async () =>
      (await twill.routes())
        .filter((r) => PREFIXES.includes(r.prefix))
        .map((r) => ({ prefix: r.prefix, paths: r.paths.filter((p) => p.from === B) }));

    beforeAll(async () => {
      const nsT = lab.ns('hgt');
      nsB = lab.ns('hgb');
      const nsW = lab.ns('hgw');
      lab.link(nsT, `${T}/24`, nsB, `${B}/24`);
      lab.link(nsT, `${TW}/24`, nsW, `${W}/24`);
      twill = new Twill(lab, {
        ns: nsT,
        dir,
        routerId: T,
        asn: 64512,
        neighbors: [
          { address: B, asn: 64513, holdTime: 9, connectRetry: 1, families: ['ipv4-unicast'] },
          { address: W, asn: 64514, holdTime: 90, passive: true, families: ['ipv4-unicast'] },
        ],
      });
      birdDir = join(dir, 'bird-restarting');
      [bird] = await Promise.all([
        startBird(lab, {
          ns: nsB,
          dir: birdDir,
          routerId: B,
          asn: 64513,
          gracefulRestart: true,
          peers: [{ address: T, asn: 64512, families: ['ipv4-unicast'] }],
          originate: PREFIXES,
        }),
        startTwill(lab, twill, false),
      ]);
      watcher = await startRawPeer(lab, {
        ns: nsW,
        dir: join(dir, 'watcher-behind-twill'),
        asn: 64514,
        routerId: W,
        connect: { address: TW },
        families: ['ipv4'],
        holdTime: 90,
        script: [],
      });
      await watcher.waitEvent('established', 30_000);
      await twill.waitState(B, 'Established');
    });

    it('Twill holds BIRD’s prefixes, fresh, and the watcher learns them from Twill', async () => {
      await waitFor(
        'twill holds BIRD’s prefixes',
        async () => (await twill.prefixesFrom(B)).length === 2,
        30_000,
      );
      for (const r of await birdPaths()) expect(r.paths).toMatchObject([{ best: true, stale: false }]);
      await waitFor(
        'watcher holds both prefixes',
        () => {
          const nlri = watcherUpdates(watcher).flatMap((u) => u.nlri);
          return PREFIXES.every((p) => nlri.includes(p));
        },
        30_000,
      );
    });

    it('`birdc graceful restart`: Twill keeps BIRD’s paths, stale and still best', async () => {
      expect(birdc(join(birdDir, 'bird.ctl'), 'graceful', 'restart')).toMatch(/Graceful restart requested/);
      await waitFor(
        'BIRD exits',
        () => {
          try {
            bird.pid();
            return false;
          } catch {
            return true;
          }
        },
        10_000,
      );
      await waitFor('Twill notices', () => twill.peer(B).state !== 'Established', 10_000);
      // No NOTIFICATION: the session just closed.
      expect(twill.peer(B).lastError).toMatchObject({ direction: 'local' });
      const kept = await birdPaths();
      expect(kept.map((r) => r.prefix).sort()).toEqual(PREFIXES);
      for (const r of kept) expect(r.paths).toMatchObject([{ best: true, stale: true, reachable: true }]);
      // twill status tells the operator the routes are kept, and how many.
      expect(twill.peer(B)).toMatchObject({
        prefixesReceived: PREFIXES.length,
        prefixesStale: PREFIXES.length,
      });
      expect(twill.statusText()).toContain(`graceful restart: ${PREFIXES.length} routes kept`);
    });

    it('BIRD comes back with -R: its paths stay stale until its End-of-RIB, then are fresh; the watcher saw no withdrawal', async () => {
      // What `twill routes` and `twill status` say about BIRD's paths, each change with its time.
      const seen: { at: number; what: string }[] = [];
      let polling = true;
      const poll = (async () => {
        while (polling) {
          try {
            const st = twill.peer(B).state;
            const paths = await birdPaths();
            const flags = paths.map((r) => r.paths.map((p) => (p.stale ? 'stale' : 'fresh')).join('+'));
            const what = `${st} ${flags.join(',')}`;
            if (seen[seen.length - 1]?.what !== what) seen.push({ at: Date.now(), what });
          } catch {
            // the API is busy; try again
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const conf = join(birdDir, 'bird-restarted.conf');
      writeFileSync(conf, `${readFileSync(join(birdDir, 'bird.conf'), 'utf8')}${RECOVERY_HOLD}`);
      const started = Date.now();
      lab.spawn(nsB, 'bird', [
        '-f',
        '-R',
        '-c',
        conf,
        '-s',
        join(birdDir, 'bird.ctl'),
        '-P',
        join(birdDir, 'bird.pid'),
      ]);
      try {
        await twill.waitState(B, 'Established', 30_000);
        await waitFor(
          'BIRD’s paths fresh',
          async () => (await birdPaths()).every((r) => r.paths.length === 1 && !r.paths[0]!.stale),
          30_000,
        );
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        polling = false;
        await poll;
      }
      const whats = seen.map((x) => x.what);
      // Never without the paths, never stale after fresh: down and stale, up and stale, up and fresh.
      expect(
        whats.filter((w) => !/^(Idle|Connect|Active|OpenSent|OpenConfirm) stale,stale$/.test(w)),
      ).toEqual(['Established stale,stale', 'Established fresh,fresh']);
      // BIRD ends its recovery (and only then sends its routes and End-of-RIB) 4 s after start;
      // Twill's paths turned fresh no sooner. BIRD logs local time, as Date parses it.
      const done = /^(\S+ \S+) <INFO> Graceful restart done$/m.exec(
        readFileSync(join(birdDir, 'bird.log'), 'utf8'),
      );
      expect(done, 'BIRD logged the end of its graceful restart').not.toBeNull();
      const doneAt = new Date(done![1]!.replace(' ', 'T')).getTime();
      const freshAt = seen.find((x) => x.what === 'Established fresh,fresh')!.at;
      const upStaleAt = seen.find((x) => x.what === 'Established stale,stale')!.at;
      expect(doneAt - started).toBeGreaterThan(3000);
      expect(freshAt).toBeGreaterThanOrEqual(doneAt - 20);
      expect(freshAt - upStaleAt).toBeGreaterThan(1000);
      const ups = watcherUpdates(watcher);
      expect(ups.flatMap((u) => u.withdrawn)).toEqual([]);
      expect(ups.flatMap((u) => u.mp)).toEqual([]);
      expect(watcher.events().some((e) => 'event' in e && e.event === 'closed')).toBe(false);
    });
  });
});
