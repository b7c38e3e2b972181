/**
 * What a pod's host-side veth gets besides its route: permanent neighbour entries (against the
 * in-memory kernel) and sysctls (against a temporary directory laid out like /proc/sys).
 * route-reconciler.root.test.ts repeats both on a real veth in a namespace.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { NUD_PERMANENT } from '../../src/dataplane/kernel.js';
import { FakeKernel } from '../helpers/kernel-fake.js';
import { PodNeighbours } from '../../src/dataplane/neigh.js';
import { configureHostVeth, enableForwarding, vethSysctls } from '../../src/dataplane/sysctl.js';

describe('pod neighbour entries', () => {
  it('writes a permanent entry per pod, leaves right ones alone, removes ours nobody wants', async () => {
    const k = new FakeKernel();
    const i1 = k.addLink('twl1');
    const i2 = k.addLink('twl2');
    const h = k.handle();
    const n = new PodNeighbours();
    n.setDesired([
      { dev: 'twl1', address: '10.1.0.1', lladdr: 'EE:EE:EE:EE:EE:01' },
      { dev: 'twl2', address: 'fd00:0::2', lladdr: 'ee:ee:ee:ee:ee:02' },
      { dev: 'twl3', address: '10.1.0.3', lladdr: 'ee:ee:ee:ee:ee:03' },
    ]);
    expect(await n.apply(h)).toEqual({ written: 2, removed: 0, waiting: 1 });
    expect(k.neighbours.get(`${i1}|10.1.0.1`)).toMatchObject({
      lladdr: 'ee:ee:ee:ee:ee:01',
      state: NUD_PERMANENT,
      protocol: 84,
    });
    expect(k.neighbours.get(`${i2}|fd00::2`)?.family).toBe(6);
    expect(await n.apply(h)).toEqual({ written: 0, removed: 0, waiting: 1 });
    // Someone else's entry on our veth is not ours to remove.
    k.neighbours.set(`${i1}|10.1.0.99`, {
      family: 4,
      ifindex: i1,
      address: '10.1.0.99',
      lladdr: 'aa:aa:aa:aa:aa:aa',
      state: NUD_PERMANENT,
      protocol: undefined,
    });
    n.setDesired([{ dev: 'twl1', address: '10.1.0.1', lladdr: 'ee:ee:ee:ee:ee:01' }]);
    expect(await n.apply(h)).toEqual({ written: 0, removed: 1, waiting: 0 });
    expect([...k.neighbours.keys()].sort()).toEqual([`${i1}|10.1.0.1`, `${i1}|10.1.0.99`]);
  });

  it('rejects a bad MAC naming the entry', () => {
    expect(() =>
      new PodNeighbours().setDesired([{ dev: 'twl1', address: '10.1.0.1', lladdr: 'nope' }]),
    ).toThrow(/10\.1\.0\.1 on twl1: not a MAC/);
  });
});

describe('veth sysctls', () => {
  let root: string | undefined;
  afterEach(() => {
    if (root) rmSync(root, { recursive: true, force: true });
    root = undefined;
  });

  function fakeProc(values: Record<string, string>): string {
    root = mkdtempSync(join(tmpdir(), 'twl-sysctl-'));
    for (const [p, v] of Object.entries(values)) {
      mkdirSync(dirname(join(root, p)), { recursive: true });
      writeFileSync(join(root, p), `${v}\n`);
    }
    return root;
  }

  it('lists proxy_arp, proxy_delay, forwarding and accept_ra; never rp_filter', () => {
    const list = vethSysctls('twl1', { ipv4: true, ipv6: true });
    expect(list).toEqual([
      ['net/ipv4/conf/twl1/proxy_arp', '1'],
      ['net/ipv4/neigh/twl1/proxy_delay', '0'],
      ['net/ipv4/conf/twl1/forwarding', '1'],
      ['net/ipv6/conf/twl1/accept_ra', '0'],
      ['net/ipv6/conf/twl1/forwarding', '1'],
    ]);
    expect(list.some(([p]) => p.includes('rp_filter'))).toBe(false);
    expect(() => vethSysctls('../x')).toThrow(/interface name/);
  });

  it('writes only what differs and leaves rp_filter as it was', async () => {
    const r = fakeProc({
      'net/ipv4/conf/twl1/proxy_arp': '0',
      'net/ipv4/neigh/twl1/proxy_delay': '80',
      'net/ipv4/conf/twl1/forwarding': '1',
      'net/ipv4/conf/twl1/rp_filter': '2',
      'net/ipv6/conf/twl1/accept_ra': '1',
      'net/ipv6/conf/twl1/forwarding': '0',
      'net/ipv4/ip_forward': '0',
      'net/ipv6/conf/all/forwarding': '0',
    });
    expect(await configureHostVeth('twl1', { root: r, ipv6: true })).toEqual([
      'net/ipv4/conf/twl1/proxy_arp',
      'net/ipv4/neigh/twl1/proxy_delay',
      'net/ipv6/conf/twl1/accept_ra',
      'net/ipv6/conf/twl1/forwarding',
    ]);
    expect(readFileSync(join(r, 'net/ipv4/conf/twl1/proxy_arp'), 'utf8')).toBe('1\n');
    expect(readFileSync(join(r, 'net/ipv4/conf/twl1/rp_filter'), 'utf8')).toBe('2\n');
    expect(await configureHostVeth('twl1', { root: r, ipv6: true })).toEqual([]);
    expect(await enableForwarding({ root: r, ipv6: true })).toEqual([
      'net/ipv4/ip_forward',
      'net/ipv6/conf/all/forwarding',
    ]);
  });

  it('a missing interface is an error naming the sysctl', async () => {
    const r = fakeProc({});
    await expect(configureHostVeth('twl9', { root: r })).rejects.toThrow(
      /net\.ipv4\.conf\.twl9\.proxy_arp: ENOENT/,
    );
  });
});
