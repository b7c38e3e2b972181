/**
 * Three `twill agent` processes in network namespaces on one segment, sharing a file datastore,
 * as the lab runs them: they find each other through their Node annotations, the iBGP mesh comes
 * up, each node's blocks are originated and installed in the others' kernels (protocol 84), a
 * BGPPeer (BIRD, eBGP) added and removed applies live without touching the mesh sessions, the
 * health port answers with real values (and `promtool check metrics` accepts /metrics), an idle
 * agent's event loop sleeps (a few wake-ups a second, counted by the kernel), the
 * sockets keep non-root processes out and the metrics port does not answer on the node's
 * address, and SIGTERM then a restart deletes no kernel route of ours and makes the peers
 * withdraw nothing (`ip monitor route` in every node).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openFileDatastore } from '../../src/datastore/file.js';
import type { Datastore } from '../../src/datastore/types.js';
import { Allocator } from '../../src/ipam/allocator.js';
import { describeSystem } from '../helpers/env.js';
import { Lab, sh, waitFor } from '../helpers/netns.js';
import { BIN } from '../helpers/twill.js';
import { type Daemon, startBird } from '../interop/daemons.js';
import {
  type AgentRun,
  agentStatus,
  buildSegment,
  ourRoutes,
  type Segment,
  startAgent,
  stopAgent,
  waitEstablished,
} from './helpers.js';

describeSystem(
  'three agents on a file datastore',
  { root: true, tools: ['ip', 'bird', 'birdc', 'curl', 'promtool', 'setpriv'] },
  () => {
    const lab = new Lab();
    let dir: string;
    let seg: Segment;
    let store: Datastore;
    const agents: AgentRun[] = [];
    const blockOf = new Map<string, string>();

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'twill-agents-'));
      chmodSync(dir, 0o755);
      seg = buildSegment(lab, 3);
      const datastore = `file:${join(dir, 'store')}`;
      for (const n of seg.nodes) agents.push(startAgent(lab, n, { dir, datastore }));
      store = await openFileDatastore(join(dir, 'store'));
    }, 60_000);

    afterAll(async () => {
      await store?.close();
      await lab.cleanup();
      rmSync(dir, { recursive: true, force: true });
    });

    const others = (i: number) => seg.nodes.filter((_, j) => j !== i).map((n) => n.address);

    it('the agents find each other and the mesh comes up', async () => {
      for (let i = 0; i < 3; i++) {
        const st = await waitEstablished(agents[i]!, others(i));
        expect(st.peers).toHaveLength(2);
        expect(Object.values(st.peerTypes)).toEqual(['node-to-node mesh', 'node-to-node mesh']);
      }
    }, 90_000);

    it("each node's block is originated and installed in the others' kernels", async () => {
      const alloc = new Allocator({ store, clock: { now: () => Date.now() } });
      for (const [i, n] of seg.nodes.entries()) {
        const a = await alloc.assign({
          handle: `k8s-pod-network.c${i}`,
          node: n.name,
          family: 4,
          namespace: 'default',
          pod: `p${i}`,
        });
        blockOf.set(n.name, a.block);
      }
      for (const [i, n] of seg.nodes.entries()) {
        const mine = blockOf.get(n.name)!;
        await waitFor(`${n.name} blackholes its block ${mine}`, () =>
          ourRoutes(n.ns).some((r) => r.dst === mine && r.type === 'blackhole'),
        );
        for (const [j, m] of seg.nodes.entries()) {
          if (j === i) continue;
          const theirs = blockOf.get(m.name)!;
          await waitFor(`${n.name} routes ${theirs} via ${m.address}`, () =>
            ourRoutes(n.ns).some((r) => r.dst === theirs && r.gateway === m.address),
          );
        }
      }
    }, 60_000);

    it('twill status, twill routes and twill ipam ask the local agent', () => {
      const twill = (args: string[]) =>
        lab.exec(seg.nodes[0]!.ns, process.execPath, [BIN, ...args, '--api', agents[0]!.api]);
      const status = twill(['status']);
      expect(status).toMatch(/^Twill agent on node n1: router id 10\.77\.0\.1, AS 64512/);
      expect(status).toMatch(/\| 10\.77\.0\.2 +\| node-to-node mesh, iBGP AS 64512 \| Established \|/);
      const routes = JSON.parse(twill(['routes', '--json'])) as { prefix: string }[];
      expect(routes.map((r) => r.prefix).sort()).toEqual([...blockOf.values()].sort());
      const ipam = JSON.parse(twill(['ipam', '--json'])) as { nodes: { node: string; inUse: number }[] };
      expect(JSON.stringify(ipam)).toContain(blockOf.get('n1')!);
    });

    it('the per-node status object shows the sessions', async () => {
      await waitFor(
        'TwillNodeStatus n1 with two Established sessions',
        async () => {
          const o = await store.get({ kind: 'TwillNodeStatus', name: 'n1' });
          const s = o?.status as
            | { established?: number; sessions?: { state: string; type: string }[] }
            | undefined;
          return s?.established === 2 && s.sessions?.every((x) => x.type === 'node-to-node mesh');
        },
        20_000,
      );
    });

    it('/livez, /readyz and /metrics answer with real values; promtool accepts the metrics', async () => {
      const ns = seg.nodes[0]!.ns;
      const curl = (path: string) =>
        lab.exec(ns, 'curl', ['-s', '-w', '\n%{http_code}', `http://127.0.0.1:9099${path}`]);
      expect(curl('/livez').trim().split('\n').at(-1)).toBe('200');
      await waitFor('n1 ready', () => curl('/readyz').trim().endsWith('200'), 20_000);
      const metrics = lab.exec(ns, 'curl', ['-s', 'http://127.0.0.1:9099/metrics']);
      expect(metrics).toMatch(/^twill_bgp_sessions\{state="Established"\} 2$/m);
      expect(metrics).toMatch(/^twill_bgp_peer_up\{peer="10\.77\.0\.2"\} 1$/m);
      expect(metrics).toMatch(/^twill_ipam_addresses\{state="in_use"\} 1$/m);
      expect(metrics).toMatch(/^twill_ipam_blocks 1$/m);
      expect(Number(/^twill_bgp_updates_received_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
      expect(Number(/^twill_route_apply_seconds_count (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
      expect(Number(/^twill_routes_installed\{owner="bgp"\} (\d+)$/m.exec(metrics)?.[1])).toBe(2);
      // The event loop's lag taken at the scrape; the sampler's gauges, which read its interval, not.
      expect(metrics).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
      expect(metrics).not.toMatch(/^nodejs_eventloop_lag_p99_seconds/m);
      // promtool exits non-zero on a format error or a lint problem.
      execFileSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    });

    it('an idle agent sleeps: its main thread wakes a few times a second, not a hundred', async () => {
      // Each sleep of the event loop in epoll_pwait is one voluntary context switch of the main
      // thread. A timer of 10 ms (prom-client's default event loop sampler, metrics.ts) made about
      // 100 a second; what is left is the store's poll, keepalives and the status timer.
      await waitEstablished(agents[0]!, others(0));
      const pid = agents[0]!.proc.pid!;
      const switches = () =>
        Number(
          /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(
            readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'),
          )![1],
        );
      const a = switches();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 3000));
      const perSecond = (switches() - a) / ((performance.now() - t0) / 1000);
      expect(perSecond).toBeLessThan(30);
    });

    it('the metrics port does not answer on the node address; non-root cannot reach the sockets', () => {
      const [n1, n2] = seg.nodes;
      const out = lab.exec(
        n2!.ns,
        'curl',
        ['-s', '-m', '3', '-o', '/dev/null', '-w', '%{http_code}', `http://${n1!.address}:9099/metrics`],
        {
          allowFail: true,
        },
      );
      expect(out).not.toBe('200');
      const a = agents[0]!;
      expect(statSync(a.api).mode & 0o777).toBe(0o600);
      expect(statSync(a.cni).mode & 0o777).toBe(0o600);
      expect(statSync(join(a.dir, 'cni')).mode & 0o777).toBe(0o700);
      // The API socket's folder is open (0755): only the socket's own mode keeps nobody out.
      const asNobody = (sock: string) =>
        lab.exec(
          n1!.ns,
          'setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            'curl',
            '-s',
            '-m',
            '3',
            '--unix-socket',
            sock,
            'http://agent/status',
          ],
          {
            allowFail: true,
          },
        );
      expect(asNobody(a.api)).toBe('');
      expect(asNobody(a.cni)).toBe('');
      // The positive control: root gets an answer through the same command.
      expect(
        lab.exec(n1!.ns, 'curl', ['-s', '-m', '3', '--unix-socket', a.api, 'http://agent/status']),
      ).toContain('"routerId"');
    });

    it('a BGPPeer added applies live, and removed, without touching the mesh sessions', async () => {
      const bird = lab.ns('bird');
      const port = `pb${bird.slice(-6)}`.replace(/[^a-zA-Z0-9]/g, '');
      sh('ip', ['link', 'add', 'eth1', 'netns', bird, 'type', 'veth', 'peer', 'name', port, 'netns', seg.sw]);
      sh('ip', ['-n', seg.sw, 'link', 'set', port, 'master', 'br0', 'up']);
      sh('ip', ['-n', bird, 'addr', 'add', '10.77.0.100/24', 'dev', 'eth1']);
      sh('ip', ['-n', bird, 'link', 'set', 'eth1', 'up']);
      const d: Daemon = await startBird(lab, {
        ns: bird,
        dir: join(dir, 'bird'),
        routerId: '10.77.0.100',
        asn: 65100,
        peers: seg.nodes.map((n) => ({ address: n.address, asn: 64512, families: ['ipv4-unicast'] })),
        originate: ['192.0.2.0/24'],
      });
      const before = await agentStatus(agents[0]!);
      const since = new Map(before.peers.map((p) => [p.address, p.since]));
      await store.create({
        apiVersion: 'crd.twill.dev/v1',
        kind: 'BGPPeer',
        metadata: { name: 'tor' },
        spec: { peerIP: '10.77.0.100', asNumber: 65100 },
      });
      for (const a of agents) await waitEstablished(a, ['10.77.0.100']);
      for (const n of seg.nodes) await d.waitEstablished(n.address, 30_000);
      // BIRD learns every block (eBGP); the agents install BIRD's prefix.
      await waitFor('BIRD holds the three blocks', async () => {
        const routes = await d.routes();
        return [...blockOf.values()].every((b) => routes.some((r) => r.prefix === b));
      });
      await waitFor('n1 routes 192.0.2.0/24 via BIRD', () =>
        ourRoutes(seg.nodes[0]!.ns).some((r) => r.dst === '192.0.2.0/24' && r.gateway === '10.77.0.100'),
      );
      const st = await agentStatus(agents[0]!);
      expect(st.peerTypes['10.77.0.100']).toBe('global');
      await store.delete({ kind: 'BGPPeer', name: 'tor' });
      await waitFor(
        'n1 drops the BGPPeer',
        async () => !(await agentStatus(agents[0]!)).peers.some((p) => p.address === '10.77.0.100'),
      );
      await waitFor(
        'n1 removes 192.0.2.0/24',
        () => !ourRoutes(seg.nodes[0]!.ns).some((r) => r.dst === '192.0.2.0/24'),
      );
      const after = await agentStatus(agents[0]!);
      for (const p of after.peers) {
        expect(p.state).toBe('Established');
        expect(p.since).toBe(since.get(p.address));
      }
      await d.stop();
    }, 90_000);

    it('BGPConfiguration turns the mesh off and on again, and changes the AS, live', async () => {
      const cfg = await store.create({
        apiVersion: 'crd.twill.dev/v1',
        kind: 'BGPConfiguration',
        metadata: { name: 'default' },
        spec: { nodeToNodeMeshEnabled: false },
      });
      await waitFor('n1 has no peers', async () => (await agentStatus(agents[0]!)).peers.length === 0);
      await waitFor(
        'n1 no longer routes n2’s block',
        () => !ourRoutes(seg.nodes[0]!.ns).some((r) => r.dst === blockOf.get('n2')),
      );
      await store.update({ ...cfg, spec: { nodeToNodeMeshEnabled: true, asNumber: 64600 } });
      for (let i = 0; i < 3; i++) {
        const st = await waitEstablished(agents[i]!, others(i));
        // A new cluster AS restarts the speaker: every session comes back in the new AS.
        await waitFor(
          `${agents[i]!.name} in AS 64600`,
          async () => (await agentStatus(agents[i]!)).asn === 64600,
        );
        expect(st.peers.every((p) => p.asn === 64600 || p.state === 'Established')).toBe(true);
      }
      for (let i = 0; i < 3; i++) {
        const st = await waitEstablished(agents[i]!, others(i));
        expect(st.peers.map((p) => p.asn)).toEqual([64600, 64600]);
      }
      await waitFor('n1 routes n2’s block again', () =>
        ourRoutes(seg.nodes[0]!.ns).some(
          (r) => r.dst === blockOf.get('n2') && r.gateway === seg.nodes[1]!.address,
        ),
      );
    }, 90_000);

    it('SIGTERM then a restart: no route of ours deleted, no withdrawal at the peers', async () => {
      const monitors: { ns: string; proc: ChildProcess; out: string }[] = [];
      for (const n of seg.nodes) {
        const proc = spawn('ip', ['-n', n.ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
        lab.procs.push(proc);
        const m = { ns: n.ns, proc, out: '' };
        proc.stdout.on('data', (c: Buffer) => {
          m.out += c.toString();
        });
        monitors.push(m);
      }
      await new Promise((r) => setTimeout(r, 300));
      const routesBefore = ourRoutes(seg.nodes[0]!.ns);
      const code = await stopAgent(agents[0]!);
      expect(code).toBe(0);
      expect(ourRoutes(seg.nodes[0]!.ns)).toEqual(routesBefore);
      const restarted = startAgent(lab, seg.nodes[0]!, { dir, datastore: `file:${join(dir, 'store')}` });
      agents[0] = restarted;
      await waitEstablished(restarted, others(0));
      await waitFor(
        'n1 converged after the restart',
        () => /BGP converged after restart/.test(restarted.log()),
        30_000,
      );
      await waitFor('n2 and n3 hold n1’s block again, not stale', async () => {
        for (const i of [1, 2]) {
          const st = await agentStatus(agents[i]!);
          const p = st.peers.find((x) => x.address === seg.nodes[0]!.address);
          if (p?.state !== 'Established' || p.prefixesStale !== 0 || p.prefixesReceived < 1) return false;
        }
        return true;
      });
      await new Promise((r) => setTimeout(r, 500));
      for (const m of monitors) m.proc.kill('SIGTERM');
      for (const m of monitors) {
        const deleted = m.out.split('\n').filter((l) => l.startsWith('Deleted') && l.includes('proto 84'));
        expect(deleted, `${m.ns}: ${m.out}`).toEqual([]);
      }
      expect(restarted.log()).toMatch(/restarting \(graceful restart\)/);
      expect(ourRoutes(seg.nodes[0]!.ns)).toEqual(routesBefore);
    }, 120_000);
  },
);
