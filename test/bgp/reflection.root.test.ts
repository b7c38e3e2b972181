/**
 * Route reflection (RFC 4456) between Twill and real routers, in network namespaces.
 *
 * 1. Twill as a client: containerlab/bird-rr.clab.yml, built from namespaces by reading the file
 *    (test/bgp/lab-helpers.ts buildClab): BIRD 2 reflects for three Twill speakers on one bridge.
 *    Every Twill holds the other two Twills' prefixes, learned from BIRD, with ORIGINATOR_ID = the
 *    originating Twill's router id and CLUSTER_LIST = [BIRD's cluster id] in `twill routes`, and
 *    BIRD's `show route all` holds all three.
 * 2. Twill as the reflector (cluster id 10.41.255.1) on one bridged segment, with a BIRD client,
 *    an FRR client, and two non-clients (GoBGP, which originates, and a second BIRD, which only
 *    listens). A client's route reaches the other client and both non-clients with
 *    ORIGINATOR_ID = the client's router id and CLUSTER_LIST = [10.41.255.1], as BIRD's
 *    `show route all` (BGP.originator_id, BGP.cluster_list), FRR's `show bgp ... json` and
 *    GoBGP's `global rib -j` show; the non-client's route reaches the clients only (§6).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { ROOT, Twill, type TwillNeighbor, type TwillRoute } from '../helpers/twill.js';
import {
  cleanupDaemons,
  type Daemon,
  type Route,
  startBird,
  startFrr,
  startGobgp,
} from '../interop/daemons.js';
import { birdc, buildClab, type ClabRun, twillRoutes } from './lab-helpers.js';

const TOOLS = ['ip', 'bird', 'birdc', 'gobgpd', 'gobgp', 'vtysh', '/usr/lib/frr/bgpd', '/usr/lib/frr/zebra'];

describeSystem('route reflection with BIRD, FRR and GoBGP (namespaces)', { root: true, tools: TOOLS }, () => {
  const lab = new Lab();
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'twill-rr-'));
  });
  afterAll(async () => {
    await cleanupDaemons();
    await lab.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('containerlab/bird-rr.clab.yml: BIRD reflects for three Twill clients', () => {
    const FILE = join(ROOT, 'containerlab/bird-rr.clab.yml');
    const CLUSTER_ID = '10.30.255.1';
    const TWILLS = [1, 2, 3].map((i) => ({
      node: `twill${i}`,
      routerId: `10.30.0.${i}`,
      prefix: `10.31.${i}.0/24`,
    }));
    let run: ClabRun;

    beforeAll(() => {
      run = buildClab(lab, FILE, dir);
    });

    it('the file has the reflector, three Twills and a link from each to the reflector', () => {
      expect(run.topo.nodes.map((n) => n.name)).toEqual(['bird-rr', 'twill1', 'twill2', 'twill3']);
      expect(run.topo.links.map((l) => l.endpoints.map((e) => `${e.node}:${e.interface}`))).toEqual([
        ['bird-rr:eth1', 'twill1:eth1'],
        ['bird-rr:eth2', 'twill2:eth1'],
        ['bird-rr:eth3', 'twill3:eth1'],
      ]);
      // The reflector's cluster id, which the Twills must see in CLUSTER_LIST, is BIRD's config.
      const birdConf = readFileSync(join(ROOT, 'containerlab/bird-rr/bird.conf'), 'utf8');
      expect(birdConf).toMatch(new RegExp(`rr cluster id ${CLUSTER_ID.replace(/\./g, '\\.')};`));
      expect(birdConf.match(/^protocol bgp twill\d from rr_client/gm)).toHaveLength(3);
    });

    it('every Twill holds the other two prefixes, reflected by BIRD with ORIGINATOR_ID and CLUSTER_LIST', async () => {
      for (const t of TWILLS) {
        const sock = run.twillSock.get(t.node)!;
        const others = TWILLS.filter((o) => o !== t);
        const routes = await waitFor(
          `${t.node} holds ${others.map((o) => o.prefix).join(' and ')}`,
          async () => {
            const r = await twillRoutes(sock);
            return others.every((o) => r.some((x) => x.prefix === o.prefix)) && r;
          },
          45_000,
        ).catch((err: Error) => {
          throw new Error(
            `${err.message}\n${birdc(run.birdSock.get('bird-rr')!, 'show', 'protocols', 'all')}`,
          );
        });
        for (const o of others) {
          const route = routes.find((x) => x.prefix === o.prefix) as TwillRoute;
          expect(route.paths).toHaveLength(1);
          expect(route.paths[0]).toMatchObject({
            from: '10.30.0.254',
            best: true,
            stale: false,
            reachable: true,
            // The reflector leaves NEXT_HOP and AS_PATH as the originating client sent them.
            nextHops: [o.routerId],
            asPath: '',
            originatorId: o.routerId,
            clusterList: [CLUSTER_ID],
          });
        }
        // Its own prefix does not come back (BIRD does not reflect to the route's source).
        expect(routes.find((x) => x.prefix === t.prefix)?.paths.map((p) => p.from)).toEqual(['local']);
      }
    });

    it('BIRD’s show route all holds the three prefixes, each from its Twill', async () => {
      const out = birdc(run.birdSock.get('bird-rr')!, 'show', 'route', 'all');
      for (const t of TWILLS) {
        expect(out).toMatch(
          new RegExp(
            `${t.prefix.replace(/\./g, '\\.')}\\s+unicast \\[${t.node} [^\\]]*\\] \\* \\(100\\) \\[i\\]`,
          ),
        );
      }
      expect(out.match(/BGP\.originator_id/g) ?? []).toHaveLength(0);
    });
  });

  describe('Twill reflects for a BIRD client and an FRR client; GoBGP and BIRD are non-clients', () => {
    const CLUSTER_ID = '10.41.255.1';
    const T = '10.41.0.1';
    const C_BIRD = '10.41.0.2';
    const C_FRR = '10.41.0.3';
    const N_GOBGP = '10.41.0.4';
    const N_BIRD = '10.41.0.5';
    const P_BIRD = '10.42.2.0/24';
    const P_FRR = '10.42.3.0/24';
    const P_GOBGP = '10.42.4.0/24';
    let twill: Twill;
    let cBird: Daemon;
    let cFrr: Daemon;
    let nGobgp: Daemon;
    let nBird: Daemon;

    beforeAll(async () => {
      // One segment: a bridge in a namespace of its own, so every NEXT_HOP is directly reachable.
      const sw = lab.ns('sw');
      sh('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
      sh('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
      const attach = (tag: string, addr: string): string => {
        const n = lab.ns(tag);
        sh('ip', [
          'link',
          'add',
          `p-${tag}`,
          'netns',
          sw,
          'type',
          'veth',
          'peer',
          'name',
          'eth1',
          'netns',
          n,
        ]);
        sh('ip', ['-n', sw, 'link', 'set', `p-${tag}`, 'master', 'br0', 'up']);
        sh('ip', ['-n', n, 'addr', 'add', `${addr}/24`, 'dev', 'eth1']);
        sh('ip', ['-n', n, 'link', 'set', 'eth1', 'up']);
        return n;
      };
      const nsT = attach('rt', T);
      const nsB = attach('rcb', C_BIRD);
      const nsF = attach('rcf', C_FRR);
      const nsG = attach('rng', N_GOBGP);
      const nsN = attach('rnb', N_BIRD);
      const client = (address: string): TwillNeighbor & { routeReflectorClient: boolean } => ({
        address,
        asn: 64512,
        holdTime: 9,
        connectRetry: 1,
        families: ['ipv4-unicast'],
        routeReflectorClient: true,
      });
      const nonClient = (address: string): TwillNeighbor => ({
        address,
        asn: 64512,
        holdTime: 9,
        connectRetry: 1,
        families: ['ipv4-unicast'],
      });
      twill = new Twill(lab, {
        ns: nsT,
        dir,
        routerId: T,
        asn: 64512,
        neighbors: [client(C_BIRD), client(C_FRR), nonClient(N_GOBGP), nonClient(N_BIRD)],
        extra: { clusterId: CLUSTER_ID },
      });
      const peer = [{ address: T, asn: 64512, families: ['ipv4-unicast' as const] }];
      [cBird, cFrr, nGobgp, nBird] = await Promise.all([
        startBird(lab, {
          ns: nsB,
          dir: join(dir, 'c-bird'),
          routerId: C_BIRD,
          asn: 64512,
          peers: peer,
          originate: [P_BIRD],
        }),
        startFrr(lab, {
          ns: nsF,
          dir: join(dir, 'c-frr'),
          routerId: C_FRR,
          asn: 64512,
          peers: peer,
          originate: [P_FRR],
        }),
        startGobgp(lab, {
          ns: nsG,
          dir: join(dir, 'n-gobgp'),
          routerId: N_GOBGP,
          asn: 64512,
          peers: peer,
          originate: [P_GOBGP],
        }),
        startBird(lab, { ns: nsN, dir: join(dir, 'n-bird'), routerId: N_BIRD, asn: 64512, peers: peer }),
        twill.start(),
      ]);
      for (const a of [C_BIRD, C_FRR, N_GOBGP, N_BIRD]) await twill.waitState(a, 'Established');
    });

    /** The routes `d` learned, once every prefix in `want` is among them. */
    const routesOf = async (d: Daemon, want: string[]): Promise<Route[]> => {
      await waitFor(
        `${d.kind} ${d.spec.routerId} holds ${want.join(', ')}`,
        async () => {
          const r = await d.routes();
          return want.every((p) => r.some((x) => x.prefix === p));
        },
        30_000,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n--- twill log ---\n${twill.log.slice(-3000)}`);
      });
      return d.routes();
    };

    const reflected = (originatorId: string) => ({
      from: T,
      originatorId,
      clusterList: [CLUSTER_ID],
      asPath: [],
      localPref: 100,
    });

    it('Twill holds the three originated prefixes, each from its originator', async () => {
      await waitFor(
        'three prefixes at Twill',
        async () => (await twill.routes()).filter((r) => r.prefix.startsWith('10.42.')).length === 3,
        30_000,
      );
      expect(await twill.prefixesFrom(C_BIRD)).toEqual([P_BIRD]);
      expect(await twill.prefixesFrom(C_FRR)).toEqual([P_FRR]);
      expect(await twill.prefixesFrom(N_GOBGP)).toEqual([P_GOBGP]);
      expect(await twill.prefixesFrom(N_BIRD)).toEqual([]);
    });

    it('the BIRD client gets the FRR client’s and the non-client’s routes, reflected (show route all)', async () => {
      const routes = await routesOf(cBird, [P_FRR, P_GOBGP]);
      expect(routes.find((r) => r.prefix === P_FRR)).toMatchObject({
        ...reflected(C_FRR),
        nextHop: C_FRR,
        best: true,
      });
      expect(routes.find((r) => r.prefix === P_GOBGP)).toMatchObject({
        ...reflected(N_GOBGP),
        nextHop: N_GOBGP,
        best: true,
      });
      expect(routes.map((r) => r.prefix).sort()).toEqual([P_FRR, P_GOBGP]);
    });

    it('the FRR client gets the BIRD client’s and the non-client’s routes, reflected (show bgp json)', async () => {
      const routes = await routesOf(cFrr, [P_BIRD, P_GOBGP]);
      expect(routes.find((r) => r.prefix === P_BIRD)).toMatchObject({
        ...reflected(C_BIRD),
        nextHop: C_BIRD,
      });
      expect(routes.find((r) => r.prefix === P_GOBGP)).toMatchObject({
        ...reflected(N_GOBGP),
        nextHop: N_GOBGP,
      });
      expect(routes.map((r) => r.prefix).sort()).toEqual([P_BIRD, P_GOBGP]);
    });

    it('each non-client gets both clients’ routes, reflected, and never the other non-client’s', async () => {
      const g = await routesOf(nGobgp, [P_BIRD, P_FRR]);
      expect(g.find((r) => r.prefix === P_BIRD)).toMatchObject({
        from: T,
        originatorId: C_BIRD,
        clusterList: [CLUSTER_ID],
      });
      expect(g.find((r) => r.prefix === P_FRR)).toMatchObject({
        from: T,
        originatorId: C_FRR,
        clusterList: [CLUSTER_ID],
      });
      const n = await routesOf(nBird, [P_BIRD, P_FRR]);
      expect(n.find((r) => r.prefix === P_BIRD)).toMatchObject({ ...reflected(C_BIRD), nextHop: C_BIRD });
      expect(n.find((r) => r.prefix === P_FRR)).toMatchObject({ ...reflected(C_FRR), nextHop: C_FRR });
      // RFC 4456 §6: a route from a non-client is reflected to clients only. By now the clients
      // have held P_GOBGP for a while, so it would have reached the other non-client too.
      expect(n.map((r) => r.prefix).sort()).toEqual([P_BIRD, P_FRR]);
      expect(g.map((r) => r.prefix).sort()).toEqual([P_BIRD, P_FRR]);
    });
  });
});
