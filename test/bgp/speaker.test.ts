/**
 * The speaker as a library, on a fake clock, with no socket: no listener (`listen: false`) and
 * passive neighbors that never dial. Reconfiguration through setNeighbors, origination and the
 * prune after changes pause, selection deferral running out, and the best-route stream.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../src/bgp/clock.js';
import { parseSpeakerConfig } from '../../src/bgp/config.js';
import { ALWAYS_REACHABLE } from '../../src/bgp/rib/rib.js';
import { type RouteChange, Speaker } from '../../src/bgp/speaker.js';
import { TxGroups } from '../../src/bgp/update-group.js';

function logger() {
  const lines: string[] = [];
  const rec = (obj: object, msg: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
  return { lines, debug: rec, info: rec, warn: rec, error: rec };
}

const BASE = 'routerId: 10.0.0.1\nasn: 64512\nlisten: false\n';
const A = '  - {address: 10.0.0.2, asn: 64512, passive: true}\n';
const B = '  - {address: 10.0.0.3, asn: 64513, passive: true}\n';

function speaker(yaml: string, restarting = false) {
  const clock = new FakeClock();
  const log = logger();
  const config = parseSpeakerConfig(BASE + yaml, 'test');
  const s = new Speaker(config, log, {
    clock,
    warmUp: false,
    resolver: ALWAYS_REACHABLE,
    host: { interfaces: () => ({}) },
    restarting,
  });
  return { s, clock, log, config };
}

describe('speaker on a fake clock, no sockets', () => {
  it('setNeighbors adds, removes and changes neighbors level-triggered', async () => {
    const { s, clock } = speaker(`neighbors:\n${A}`);
    await s.start();
    const peers = () => s.status().peers.map((p) => `${p.address} ${p.type} ${p.state}`);
    expect(peers()).toEqual(['10.0.0.2 ibgp Active']);
    const next = (yaml: string) => parseSpeakerConfig(BASE + yaml, 'test').neighbors;
    s.setNeighbors(next(`neighbors:\n${A}${B}`));
    expect(peers()).toEqual(['10.0.0.2 ibgp Active', '10.0.0.3 ebgp Active']);
    s.setNeighbors(next(`neighbors:\n${B}`));
    expect(peers()).toEqual(['10.0.0.3 ebgp Active']);
    // The same list again changes nothing, not even the time of the state.
    const since = s.status().peers[0]!.since;
    clock.advance(5000);
    s.setNeighbors(next(`neighbors:\n${B}`));
    expect(s.status().peers[0]!.since).toBe(since);
    s.setNeighbors([]);
    expect(peers()).toEqual([]);
    const stopping = s.stop();
    clock.advance(50);
    await stopping;
  });

  it('setOriginated replaces the set; the dead slots are pruned once a 100 ms check finds no change since the last', async () => {
    const { s, clock } = speaker('originate: [10.1.0.0/24, 10.2.0.0/24]\n');
    await s.start();
    expect(s.routes().map((r) => r.prefix)).toEqual(['10.1.0.0/24', '10.2.0.0/24']);
    s.setOriginated(['10.2.0.0/24', '2001:db8::/48']);
    expect(s.routes().map((r) => r.prefix)).toEqual(['10.2.0.0/24', '2001:db8::/48']);
    expect(s.rib.deadCount).toBe(1);
    clock.advance(60);
    s.setOriginated(['2001:db8::/48']);
    clock.advance(60);
    expect(s.rib.deadCount).toBe(2); // the check at 100 ms saw the second change: put off
    clock.advance(79);
    expect(s.rib.deadCount).toBe(2);
    clock.advance(1); // 100 ms after that check, with no change since
    expect(s.rib.deadCount).toBe(0);
    const stopping = s.stop();
    clock.advance(50);
    await stopping;
  });

  it('a restarting speaker defers advertising until the deferral time passes', async () => {
    const { s, clock, log } = speaker(`gracefulRestart: {deferralTime: 30}\nneighbors:\n${A}`, true);
    await s.start();
    expect(log.lines.some((l) => l.startsWith('restarting: deferring'))).toBe(true);
    clock.advance(29_999);
    expect(log.lines.some((l) => l.startsWith('restart: advertising'))).toBe(false);
    clock.advance(1);
    expect(log.lines.filter((l) => l.startsWith('restart: advertising'))).toEqual([
      'restart: advertising {"why":"deferral time passed"}',
    ]);
    const stopping = s.stop();
    clock.advance(50);
    await stopping;
  });

  it('onRoutes gives every route there is, then the changes', async () => {
    const { s, clock } = speaker('originate: [10.1.0.0/24]\n');
    await s.start();
    const seen: RouteChange[][] = [];
    s.onRoutes((c) => seen.push([...c]));
    expect(seen).toEqual([[{ prefix: '10.1.0.0/24', nextHops: [], local: true }]]);
    s.setOriginated(['10.1.0.0/24', '10.3.0.0/24']);
    s.setOriginated(['10.3.0.0/24']);
    expect(seen.slice(1)).toEqual([
      [{ prefix: '10.3.0.0/24', nextHops: [], local: true }],
      [{ prefix: '10.1.0.0/24', nextHops: [], local: false }],
    ]);
    const stopping = s.stop();
    clock.advance(50);
    await stopping;
  });
  it('the 5 s check reads the interfaces once, and the update groups look again only when they changed', async () => {
    // The check read the interfaces twice (the resolver, then the groups) and walked every
    // group's members each time; on a node with a veth per pod a read is a long list.
    const clock = new FakeClock();
    const addr = (address: string, cidr: string): NetworkInterfaceInfo => ({
      address,
      cidr,
      netmask: '255.255.255.0',
      family: 'IPv4',
      mac: '00:00:00:00:00:00',
      internal: false,
    });
    let ifs: Record<string, NetworkInterfaceInfo[]> = { eth0: [addr('10.0.0.1', '10.0.0.1/24')] };
    let reads = 0;
    const host = {
      interfaces: () => {
        reads++;
        return ifs;
      },
    };
    const config = parseSpeakerConfig(`${BASE}neighbors:\n${A}`, 'test');
    // The default resolver (connected subnets), on the same host.
    const s = new Speaker(config, logger(), { clock, warmUp: false, host });
    const walks = vi.spyOn(TxGroups.prototype, 'forgetNextHops');
    try {
      await s.start();
      const tick = () => {
        const r0 = reads;
        const w0 = walks.mock.calls.length;
        clock.advance(5000);
        return { reads: reads - r0, walks: walks.mock.calls.length - w0 };
      };
      expect(tick()).toEqual({ reads: 1, walks: 1 }); // the first check: nothing to compare with
      expect(tick()).toEqual({ reads: 1, walks: 0 });
      ifs = { eth0: [addr('10.0.0.1', '10.0.0.1/24'), addr('10.0.1.1', '10.0.1.1/24')] };
      expect(tick()).toEqual({ reads: 1, walks: 1 }); // an address came
      // The groups were given the new interfaces, not an old read.
      const given = walks.mock.calls.at(-1)![0].interfaces();
      expect(given.eth0!.map((a) => a.address)).toEqual(['10.0.0.1', '10.0.1.1']);
      expect(tick()).toEqual({ reads: 1, walks: 0 });
      ifs = { eth1: ifs.eth0! }; // the same addresses on another interface
      expect(tick()).toEqual({ reads: 1, walks: 1 });
      // The resolver got that read too: a next hop in the new subnet resolves without another.
      const r0 = reads;
      const resolver = (s as unknown as { resolver: { resolve(nh: string): number | undefined } }).resolver;
      expect(resolver.resolve('10.0.1.7')).toBe(0);
      expect(reads).toBe(r0);
    } finally {
      walks.mockRestore();
      const stopping = s.stop();
      clock.advance(50);
      await stopping;
    }
  });
});
